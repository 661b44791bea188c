"""The shared base pieces: the name → spec registry and the descriptor-owning object."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import pytest

from memsched.errors import UnknownNameError
from memsched.fdobj import OwnedFd, new_eventfd
from memsched.registry import Registry, VersionedRegistry, split_version


@dataclass(frozen=True)
class _Spec:
    id: str
    rank: int = 0


def test_registry_orders_refuses_twice_and_names_the_known_ids() -> None:
    loads: list[int] = []
    reg: Registry[_Spec] = Registry("widget", order=lambda s: (s.rank, s.id), load=lambda: loads.append(1))
    for spec in (_Spec("b", 1), _Spec("a", 1), _Spec("z", 0)):
        reg.register(spec)
    assert reg.names() == ["z", "a", "b"]
    assert reg.get("a") == _Spec("a", 1)
    assert loads, "load runs before lookups"
    with pytest.raises(ValueError, match="widget a registered twice"):
        reg.register(_Spec("a"))
    with pytest.raises(UnknownNameError) as info:
        reg.get("nope")
    assert info.value.valid == ("z", "a", "b")
    assert "widget" in str(info.value) and "nope" in str(info.value)
    reg.unregister("z")
    assert reg.names() == ["a", "b"]


@dataclass(frozen=True)
class _VSpec:
    id: str
    version: int = 1


def test_registry_loads_once_before_first_use() -> None:
    """The lazy loader runs once, before the first lookup or registration, however often the table is used."""
    loads: list[int] = []

    def load() -> None:
        loads.append(1)
        reg.register(_Spec("built-in"))

    reg: Registry[_Spec] = Registry("widget", load=load)
    reg.register(_Spec("mine"))
    assert reg.names() == ["built-in", "mine"] and reg.get("mine") == _Spec("mine")
    assert loads == [1]


def test_versioned_registry_latest_exact_and_unknown_versions() -> None:
    """Ids carry versions: bare id = latest, id-vN = exact, an unknown version lists the known ones."""
    reg: VersionedRegistry[_VSpec] = VersionedRegistry("widget")
    for spec in (_VSpec("a", 2), _VSpec("a", 1), _VSpec("b", 10)):
        reg.register(spec)
    assert reg.get("a") == _VSpec("a", 2) and reg.get("a-v1") == _VSpec("a", 1) and reg.get("b") == _VSpec("b", 10)
    assert reg.names() == ["a", "b"]
    with pytest.raises(UnknownNameError) as info:
        reg.get("a-v3")
    assert info.value.valid == ("a", "a-v1", "a-v2")
    with pytest.raises(UnknownNameError) as info:
        reg.get("c")
    assert info.value.valid == ("a", "b")
    with pytest.raises(ValueError, match="widget a-v1 registered twice"):
        reg.register(_VSpec("a", 1))
    reg.unregister("a")
    assert reg.names() == ["b"]
    assert split_version("b-v10") == ("b", 10) and split_version("numa02_SMT") == ("numa02_SMT", None)


def test_registry_without_order_keeps_registration_order() -> None:
    reg: Registry[_Spec] = Registry("widget")
    for name in ("c", "a", "b"):
        reg.register(_Spec(name))
    assert reg.names() == ["c", "a", "b"]


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class _WithCallback(OwnedFd):
    kind = "test file"

    def __init__(self, calls: list[str]) -> None:
        super().__init__(new_eventfd())
        self.calls = calls

    def close(self) -> None:
        if not self.closed:
            self.calls.append("close")
            self._release_fd()


def test_owned_fd_close_is_idempotent_and_fileno_refuses_after() -> None:
    calls: list[str] = []
    with _WithCallback(calls) as f:
        fd = f.fileno()
        assert _is_open(fd) and not f.closed
    assert f.closed and calls == ["close"]
    f.close()
    assert calls == ["close"]
    with pytest.raises(ValueError, match="closed test file"):
        f.fileno()


def test_owned_fd_finalizer_closes_the_descriptor_without_the_close_callbacks() -> None:
    calls: list[str] = []
    f = _WithCallback(calls)
    fd = f.fileno()
    gc.disable()  # nothing else may take the number between the drop and the check
    try:
        del f
        assert not _is_open(fd)
    finally:
        gc.enable()
    assert calls == []
