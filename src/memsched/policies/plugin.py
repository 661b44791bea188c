"""What a registry knows about one policy plug-in (NUMA or action): its id and version, where its class lives,
one ``make()``.

A spec names its policy class and config class by ``module:Class`` entry points, as Gymnasium's ``EnvSpec``
does, so a table of specs imports no policy module; the class is imported when a policy is made (or its
config class is asked for). ``make()`` is the one way to create a policy: it builds the config if none is
given, calls the class, and tells the object its id (``policy.id``), which is written nowhere else.

A class or a callable may stand in for an entry point string (``register()`` from a library user's own
code). An entry point that does not load, or a class with no annotated ``config`` parameter, is the plug-in's
fault: :class:`~memsched.errors.PolicyError` naming the policy.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from memsched.config import from_sets
from memsched.errors import PolicyError
from memsched.registry import versioned_id

__all__ = ["PluginSpec", "load_entry_point"]


class _Named(Protocol):
    id: str


P = TypeVar("P", bound=_Named)


def load_entry_point(value: str, *, owner: str) -> Any:
    """The object a ``module:Attr`` (or ``module:Class.attr``) string names; ``owner`` is the policy id."""
    module, sep, attr = value.partition(":")
    if not sep or not module or not attr:
        raise PolicyError(owner, f"entry point {value!r} is not of the form 'module:Class'")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise PolicyError(owner, f"entry point {value!r} does not load: {type(e).__name__}: {e}") from e
    return obj


def _name(obj: object) -> str:
    """``module:Class`` of a class or function, as an entry point names it."""
    qualname = getattr(obj, "__qualname__", None)
    return f"{getattr(obj, '__module__', '?')}:{qualname}" if qualname else repr(obj)


@dataclass(frozen=True, kw_only=True)
class PluginSpec(Generic[P]):
    #: The name ``--policy`` takes (``mainline``); with the version, :attr:`versioned_id` (``mainline-v1``).
    id: str
    #: The policy class (or any callable ``config -> policy``), or its ``module:Class`` string.
    entry_point: str | Callable[[Any], P]
    #: The frozen config dataclass, or its ``module:Class`` string; ``None``: the annotated type of the
    #: policy class's ``config`` parameter (what an installed plug-in's entry point gives).
    config_entry_point: str | type | None = None
    description: str
    #: The patch set / code the policy models, for reports and ``memsched list policies``.
    models: str
    #: Bumped whenever the policy's behaviour changes, so result files say which one produced a figure.
    version: int = 1
    #: Position in listings and comparisons (the order of the debate: baseline first, later designs after).
    rank: int = 100

    @property
    def versioned_id(self) -> str:
        return versioned_id(self.id, self.version)

    @property
    def factory(self) -> Callable[[Any], P]:
        """The policy class (or callable), imported on first use."""
        ep = self.entry_point
        if isinstance(ep, str):
            loaded = load_entry_point(ep, owner=self.id)
            if not callable(loaded):
                raise PolicyError(self.id, f"entry point {ep!r} is a {type(loaded).__name__}, not a class")
            return typing.cast(Callable[[Any], P], loaded)
        return ep

    @property
    def config_cls(self) -> type:
        """The config dataclass, imported on first use."""
        ep = self.config_entry_point
        if isinstance(ep, str):
            cls: Any = load_entry_point(ep, owner=self.id)
        else:
            cls = ep if ep is not None else self._annotated_config()
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise PolicyError(self.id, f"config class {_name(cls)} is not a dataclass")
        return cls

    def _annotated_config(self) -> Any:
        factory = self.factory
        init: object = factory
        if isinstance(factory, type):  # the class's own (or inherited) __init__ carries the annotation
            init = next(vars(k)["__init__"] for k in factory.__mro__ if "__init__" in vars(k))
        try:
            hints = typing.get_type_hints(init)
        except Exception as e:  # a NameError from a string annotation names the plug-in's mistake
            raise PolicyError(self.id, f"the annotations of {_name(factory)} do not resolve: {e}") from e
        if "config" not in hints:
            raise PolicyError(self.id, f"{_name(factory)} has no annotated 'config' parameter naming its config class")
        return hints["config"]

    def make_config(self, sets: Mapping[str, str]) -> Any:
        return from_sets(self.config_cls, sets, owner=f"policy {self.id}")

    def make(self, config: Any | None = None) -> P:
        """A new policy object with ``config`` (default: the config class's defaults), told its id."""
        policy = self.factory(config if config is not None else self.config_cls())
        policy.id = self.id
        return policy
