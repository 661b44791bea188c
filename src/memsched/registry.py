"""A name → spec registry: what the workload, scenario and policy tables share.

``register`` refuses a second spec with the same id (``unregister`` removes one); ``get`` raises
:class:`~memsched.errors.UnknownNameError` listing the known names (the CLI turns it into exit status 2);
``names`` lists ids in registration order, or by ``order`` when given. ``load`` runs before each lookup, for
tables whose built-in entries are registered lazily (to keep imports acyclic).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from memsched.errors import UnknownNameError

__all__ = ["Registry"]


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


S = TypeVar("S", bound=_HasId)


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

    def register(self, spec: S) -> S:
        if spec.id in self._specs:
            raise ValueError(f"{self.kind} {spec.id} registered twice")
        self._specs[spec.id] = spec
        return spec

    def unregister(self, name: str) -> None:
        """Remove a spec registered by the caller (a test, a plugin being unloaded)."""
        del self._specs[name]

    def get(self, name: str) -> S:
        if self._load is not None:
            self._load()
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        if self._load is not None:
            self._load()
        if self._order is None:
            return list(self._specs)
        order = self._order
        return [s.id for s in sorted(self._specs.values(), key=order)]
