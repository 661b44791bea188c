"""A name → spec registry: what the workload, scenario and policy tables share.

``register`` refuses a second spec with the same id (``unregister`` removes one); ``get`` raises
:class:`~memsched.errors.UnknownNameError` listing the known names (the CLI turns it into exit status 2);
``names`` lists ids in registration order, or by ``order`` when given. ``load`` runs once, before the first
lookup or registration, for tables whose entries are registered lazily (built-in tables, installed plug-ins).

:class:`VersionedRegistry` is the same table for specs whose ids carry a version, as Gymnasium's registry
does: ``mainline-v1`` names one version exactly, a bare ``mainline`` names the latest one. Result files
record the version, so a later change of a plug-in's behaviour gets a new version instead of a silently
different figure under the old name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from memsched.errors import UnknownNameError

__all__ = ["Registry", "VersionedRegistry", "split_version", "versioned_id"]


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


class _HasVersion(_HasId, Protocol):
    @property
    def version(self) -> int: ...


S = TypeVar("S", bound=_HasId)
V = TypeVar("V", bound=_HasVersion)

_VERSIONED = re.compile(r"(?P<name>.+)-v(?P<version>[0-9]+)")


def versioned_id(name: str, version: int) -> str:
    """The exact id of one version: ``versioned_id("mainline", 1) == "mainline-v1"``."""
    return f"{name}-v{version}"


def split_version(text: str) -> tuple[str, int | None]:
    """``"mainline-v1"`` → ``("mainline", 1)``; an id without a version → ``(text, None)``."""
    m = _VERSIONED.fullmatch(text)
    if m is None:
        return text, None
    return m["name"], int(m["version"])


class Registry(Generic[S]):
    """Specs of one kind (``"workload"``, ``"policy"``, …) by id."""

    def __init__(
        self,
        kind: str,
        *,
        order: Callable[[S], Any] | None = None,
        load: Callable[[], None] | None = None,
    ) -> None:
        self.kind = kind
        self._specs: dict[str, S] = {}
        self._order = order
        self._load = load

    def _key(self, spec: S) -> str:
        return spec.id

    def _ensure_loaded(self) -> None:
        load, self._load = self._load, None
        if load is not None:
            load()

    def register(self, spec: S) -> S:
        self._ensure_loaded()  # a caller's spec never shadows a lazily loaded one unnoticed
        key = self._key(spec)
        if key in self._specs:
            raise ValueError(f"{self.kind} {key} registered twice")
        self._specs[key] = spec
        return spec

    def unregister(self, name: str) -> None:
        """Remove a spec registered by the caller (a test, a plugin being unloaded)."""
        del self._specs[name]

    def get(self, name: str) -> S:
        self._ensure_loaded()
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def specs(self) -> list[S]:
        """Every registered spec, in listing order."""
        self._ensure_loaded()
        if self._order is None:
            return list(self._specs.values())
        return sorted(self._specs.values(), key=self._order)

    def names(self) -> list[str]:
        return [s.id for s in self.specs()]


class VersionedRegistry(Registry[V]):
    """A registry keyed by ``<id>-v<version>``; a bare id resolves to its latest version.

    ``names()`` lists each id once; ``specs()`` lists every version. ``get`` of an id whose version does not
    exist raises :class:`~memsched.errors.UnknownNameError` listing the versions that do.
    """

    def _key(self, spec: V) -> str:
        return versioned_id(spec.id, spec.version)

    def register(self, spec: V) -> V:
        if split_version(spec.id)[1] is not None:
            raise ValueError(f"{self.kind} id {spec.id!r} must not end in a version (-v<N>); set version instead")
        if spec.version < 1:
            raise ValueError(f"{self.kind} {spec.id}: version must be >= 1 (got {spec.version})")
        return super().register(spec)

    def unregister(self, name: str) -> None:
        """Remove one version (``name-vN``) or, given a bare id, every version of it."""
        doomed = [name] if name in self._specs else [self._key(s) for s in self.versions(name)]
        if not doomed:
            raise KeyError(name)
        for key in doomed:
            del self._specs[key]

    def versions(self, name: str) -> list[V]:
        """Every registered version of the id ``name``, oldest first (empty if there is none)."""
        self._ensure_loaded()
        return sorted((s for s in self._specs.values() if s.id == name), key=lambda s: s.version)

    def get(self, name: str) -> V:
        self._ensure_loaded()
        exact = self._specs.get(name)
        if exact is not None:
            return exact
        latest = self.versions(name)
        if latest:
            return latest[-1]
        base, version = split_version(name)
        known = self.versions(base) if version is not None else []
        if known:
            raise UnknownNameError(self.kind, name, [base, *(self._key(s) for s in known)])
        raise UnknownNameError(self.kind, name, self.names())

    def names(self) -> list[str]:
        return list(dict.fromkeys(s.id for s in self.specs()))
