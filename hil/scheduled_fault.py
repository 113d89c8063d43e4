"""A scheduled fault: the base class of every fault kind, the fault-file entry it is parsed from, its target.

Theory of operation
-------------------
A kind of fault is a frozen dataclass deriving from :class:`ScheduledFault`, with a ``kind`` name, an ``at_ns`` (the
simulated time it acts at), ``apply(target, now)`` to act, ``check(target)`` to refuse a joint or link the target
lacks, and ``from_fields(at_ns, fields)`` to build one from a fault-file entry. :class:`Fields` gives that entry typed
access: times as ``<name>_ns``/``_us``/``_ms``/``_s`` in integer nanoseconds, bounded integers and numbers, flags,
directions, tables; each problem is a :class:`armbus.bus.errors.ConfigError` naming the entry and the key, and keys
no kind asked for are refused. :class:`FaultTarget` is what a fault acts on: the simulation kernel (or the virtual
arm around it).

This module knows no kind: the link kinds are in :mod:`armbus.hil.link_faults`, the joint kinds in
:mod:`armbus.hil.joint_faults`, the table of names in :mod:`armbus.hil.fault_kinds`, and the schedule that applies
them in time order in :mod:`armbus.hil.schedule`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

from armbus.bus.errors import ConfigError, UsageError
from armbus.bus.wire import NS_PER_MS, NS_PER_S, NS_PER_US
from armbus.hil.faults import FaultInjector
from armbus.hil.wire import Direction

__all__ = ["FaultTarget", "Fields", "ScheduledFault"]

#: Nanoseconds per unit suffix accepted in fault files.
_UNITS = {"ns": 1, "us": NS_PER_US, "ms": NS_PER_MS, "s": NS_PER_S}


class FaultTarget(Protocol):
    """What a scheduled fault acts on: the simulation kernel (or the virtual arm around it)."""

    @property
    def faults(self) -> FaultInjector: ...
    @property
    def now(self) -> int: ...
    def node(self, name: str) -> Any: ...
    def call_at(self, t: int, fn: Callable[[int], None]) -> None: ...


class Fields:
    """Typed access to one fault-file entry; every problem is a :class:`ConfigError` naming entry and key."""

    def __init__(self, entry: Mapping[str, object], where: str) -> None:
        self.entry = dict(entry)
        self.where = where
        self.used = {"kind"}

    def _fail(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.where}: {key}: {msg}")

    def time(self, name: str, default: int | None = None) -> int:
        """A time given as ``<name>_ns``/``_us``/``_ms``/``_s``, in integer nanoseconds."""
        found = [(f"{name}_{u}", f) for u, f in _UNITS.items() if f"{name}_{u}" in self.entry]
        if len(found) > 1:
            raise self._fail(name, f"given more than once ({', '.join(k for k, _ in found)})")
        if not found:
            if default is None:
                raise self._fail(name, f"missing (give {name}_ms, {name}_us, {name}_ns or {name}_s)")
            return default
        key, factor = found[0]
        self.used.add(key)
        value = self.entry[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise self._fail(key, f"must be a non-negative number, got {value!r}")
        return round(value * factor)

    def text(self, key: str) -> str:
        self.used.add(key)
        value = self.entry.get(key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, f"must be a non-empty string, got {value!r}")
        return value

    def integer(self, key: str, lo: int, hi: int, default: int | None = None) -> int:
        """An integer in ``lo..hi`` (required unless ``default`` is given)."""
        self.used.add(key)
        value = self.entry.get(key, default)
        if value is None:
            raise self._fail(key, f"missing (an integer {lo}..{hi})")
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self._fail(key, f"must be an integer {lo}..{hi}, got {value!r}")
        return value

    def number(self, key: str, lo: float = float("-inf"), hi: float = float("inf")) -> float | None:
        """An optional number in ``lo..hi``; None when absent."""
        self.used.add(key)
        value = self.entry.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise self._fail(key, f"must be a number in {lo}..{hi}, got {value!r}")
        return float(value)

    def flag(self, key: str, default: bool = False) -> bool:
        self.used.add(key)
        value = self.entry.get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, f"must be true or false, got {value!r}")
        return value

    def direction(self, key: str = "direction") -> Direction | None:
        self.used.add(key)
        value = self.entry.get(key)
        if value is None or value == "both":
            return None
        names = {"a>b": Direction.A_TO_B, "b>a": Direction.B_TO_A, "down": Direction.A_TO_B,
                 "up": Direction.B_TO_A}
        if value not in names:
            raise self._fail(key, f"must be one of both, {', '.join(names)}; got {value!r}")
        return names[value]

    def table(self, key: str) -> Mapping[str, object]:
        self.used.add(key)
        value = self.entry.get(key, {})
        if not isinstance(value, Mapping):
            raise self._fail(key, "must be a table of fault settings")
        return value

    def check_all_used(self) -> None:
        unknown = sorted(set(self.entry) - self.used)
        if unknown:
            raise ConfigError(f"{self.where}: unknown key(s) {', '.join(unknown)}")


@dataclasses.dataclass(frozen=True)
class ScheduledFault:
    """Base of every scheduled fault: ``at_ns`` and a ``kind`` name; subclasses implement ``apply``."""

    at_ns: int
    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if isinstance(self.at_ns, bool) or not isinstance(self.at_ns, int) or self.at_ns < 0:
            raise UsageError(f"{type(self).__name__}.at_ns must be a non-negative integer, got {self.at_ns!r}")

    def apply(self, target: FaultTarget, now: int) -> None:
        raise NotImplementedError

    def check(self, target: FaultTarget) -> None:
        """Raise :class:`ConfigError` if this fault cannot act on ``target`` (a joint or link it lacks)."""

    @classmethod
    def from_fields(cls, at_ns: int, fields: Fields) -> ScheduledFault:
        raise NotImplementedError
