"""The action-policy registry: versioned ids, ``module:Class`` entry points, one ``make()``.

Ids: ``kernel-oom``, ``vmpressure-shed``, ``earlyoom``, ``systemd-oomd``, ``lmkd``, ``nohang``; a bare id
names the latest version (``earlyoom-v1``). Installed plug-ins register through the entry-point group
``memsched.act_policies`` (name = id, value = ``module:Class``; the class's ``config`` parameter annotation
names its config dataclass), library users through :func:`register`. Plug-ins that are not built in must pass
:func:`memsched.policies.act.conformance.check_act_policy` when loaded with :func:`load_policy`.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from memsched.errors import PolicyError
from memsched.policies.act.base import ActPolicy
from memsched.policies.plugin import PluginSpec
from memsched.registry import VersionedRegistry, split_version

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "ActPolicySpec", "get", "names", "register", "specs", "unregister"]

ENTRY_POINT_GROUP = "memsched.act_policies"


@dataclass(frozen=True, kw_only=True)
class ActPolicySpec(PluginSpec[ActPolicy]):
    """An action policy's spec (the fields and ``make()`` are :class:`~memsched.policies.plugin.PluginSpec`'s)."""


def _spec(id: str, module: str, cls: str, description: str, models: str, rank: int) -> ActPolicySpec:
    return ActPolicySpec(
        id=id,
        entry_point=f"memsched.policies.act.{module}:{cls}",
        config_entry_point=f"memsched.policies.act.{module}:{cls}Config",
        description=description,
        models=models,
        rank=rank,
    )


BUILTIN: tuple[ActPolicySpec, ...] = (
    _spec("kernel-oom", "kernel_oom", "KernelOom", "nothing in user space: the kernel's OOM killer only",
          "mm/oom_kill.c (the backstop every other policy keeps)", 0),
    _spec("vmpressure-shed", "vmpressure_shed", "VmpressureShed",
          "services shed caches on MEDIUM, everything on CRITICAL; the kernel is the backstop",
          "vmpressure_fd() RFC (Anton Vorontsov, linux-mm, Nov 2012) and mm/vmpressure.c's levels", 10),
    _spec("earlyoom", "earlyoom", "Earlyoom",
          "MemAvailable and SwapFree below 10 %: SIGTERM the highest oom_score, SIGKILL below 5 %",
          "earlyoom 1.6-1.8 (rfjakob/earlyoom main.c, kill.c, meminfo.c)", 20),
    _spec("systemd-oomd", "systemd_oomd", "SystemdOomd",
          "PSI full avg10 above 60 % for 30 s kills the opted-in cgroup reclaiming most; swap above 90 % kills "
          "the largest swap user", "systemd 254-256 src/oom/oomd-manager.c, oomd-util.c, oomd.conf(5)", 30),
    _spec("lmkd", "lmkd", "Lmkd",
          "PSI events (some 70 ms, full 700 ms per 1 s), then watermark, swap and thrashing rules by oom_score_adj",
          "AOSP system/memory/lmkd lmkd.cpp mp_event_psi() (Android 11, PSI new strategy)", 40),
    _spec("nohang", "nohang", "Nohang",
          "MemAvailable/SwapFree at 5 %/10 %: SIGTERM, 2 %/4 %: SIGKILL; PSI 40/90 for 30 s if enabled (off)",
          "nohang 0.2 (hakavlad/nohang conf/nohang/nohang.conf.in defaults)", 50),
)


def _load() -> None:
    for spec in BUILTIN:
        register(spec)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        name, version = split_version(ep.name)
        try:
            register(ActPolicySpec(id=name, version=version or 1, entry_point=ep.value,
                                   description=f"plug-in {ep.value}", models="third-party", rank=1000))
        except ValueError as e:
            raise PolicyError(name, f"entry point {ep.value!r} of group {ENTRY_POINT_GROUP}: {e}") from None


def is_builtin(spec: ActPolicySpec) -> bool:
    return spec in BUILTIN


_REGISTRY: VersionedRegistry[ActPolicySpec] = VersionedRegistry(
    "action policy", order=lambda s: (s.rank, s.id, s.version), load=_load
)
register = _REGISTRY.register
unregister = _REGISTRY.unregister
get = _REGISTRY.get
names = _REGISTRY.names
specs = _REGISTRY.specs
