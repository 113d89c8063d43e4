"""Fault schedules: at simulated time t, do fault f. New kinds of fault plug in by registering a class.

Theory of operation
-------------------
A :class:`FaultSchedule` is a time-ordered tuple of :class:`ScheduledFault` objects. Installing it on a
simulation (:meth:`FaultSchedule.install`) asks the target to call each fault's :meth:`ScheduledFault.apply` at
its time, in sequence with every other event, so a schedule replays exactly. Each application is recorded in the
fault decision log (:meth:`armbus.hil.faults.FaultInjector.record`) like the random decisions.

Every kind is a frozen dataclass with a ``kind`` name, registered with :func:`register_fault_kind`; a fault file
entry ``{"kind": "cut_link", "at_ms": 120, "link": "j2-j3", "duration_ms": 50}`` is parsed by that class's
``from_fields``. The link kinds live here (``cut_link``, ``link_faults``); the joint kinds (``reboot``,
``freeze``, ``overheat``, ``stall``, ``cut_cable``, ``sensor_noise``) register the same way from
:mod:`armbus.hil.joint_faults`, imported at the end of this module so that every kind is known to fault files.
Before a schedule is installed, :meth:`FaultSchedule.check` asks every fault whether its joint or link exists.
Times in files are ``at_ns``/``at_us``/``at_ms``/``at_s`` (and ``duration_*``); in code they are integer nanoseconds.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from armbus.bus.errors import ConfigError, UsageError
from armbus.hil.faults import FaultInjector, LinkFaults
from armbus.hil.wire import Direction

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Nanoseconds per unit suffix accepted in fault files.
_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


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


FAULT_KINDS: dict[str, type[ScheduledFault]] = {}
_F = TypeVar("_F", bound=type[ScheduledFault])


def register_fault_kind(cls: _F) -> _F:
    """Class decorator: make a :class:`ScheduledFault` subclass known to fault files by its ``kind``."""
    if not cls.kind or cls.kind in FAULT_KINDS:
        raise UsageError(f"fault kind {cls.kind!r} of {cls.__name__} is empty or already registered")
    FAULT_KINDS[cls.kind] = cls
    return cls


@register_fault_kind
@dataclasses.dataclass(frozen=True)
class CutLink(ScheduledFault):
    """Cut a link (both directions or one) for ``duration_ns`` from ``at_ns``."""

    link: str = ""
    duration_ns: int = 0
    direction: Direction | None = None
    kind: ClassVar[str] = "cut_link"

    def apply(self, target: FaultTarget, now: int) -> None:
        target.faults.cut(self.link, now, now + self.duration_ns, self.direction)
        d = "both directions" if self.direction is None else self.direction.label
        target.faults.record(now, self.link, self.direction, self.kind, f"cut for {self.duration_ns} ns ({d})")

    def check(self, target: FaultTarget) -> None:
        _check_link(target, self.link)

    @classmethod
    def from_fields(cls, at_ns: int, fields: Fields) -> CutLink:
        return cls(at_ns, fields.text("link"), fields.time("duration"), fields.direction())


@register_fault_kind
@dataclasses.dataclass(frozen=True)
class SetLinkFaults(ScheduledFault):
    """From ``at_ns`` on, a link (both directions or one) has fault configuration ``faults``."""

    link: str = ""
    faults: LinkFaults = dataclasses.field(default_factory=LinkFaults)
    direction: Direction | None = None
    kind: ClassVar[str] = "link_faults"

    def apply(self, target: FaultTarget, now: int) -> None:
        target.faults.set_link(self.link, self.faults, self.direction)
        target.faults.record(now, self.link, self.direction, self.kind, repr(self.faults))

    def check(self, target: FaultTarget) -> None:
        _check_link(target, self.link)

    @classmethod
    def from_fields(cls, at_ns: int, fields: Fields) -> SetLinkFaults:
        faults = LinkFaults.from_dict(fields.table("faults"), where=f"{fields.where}: faults")
        return cls(at_ns, fields.text("link"), faults, fields.direction())


def _check_link(target: FaultTarget, link: str) -> None:
    links = getattr(target, "links", None)
    if links is not None and link not in links:
        raise ConfigError(f"no link named {link!r}; links: {', '.join(links)}")


def _applier(fault: ScheduledFault, target: FaultTarget) -> Callable[[int], None]:
    def run(now: int) -> None:
        fault.apply(target, now)

    return run


@dataclasses.dataclass(frozen=True)
class FaultSchedule:
    """Scheduled faults in time order (stable for equal times)."""

    faults: tuple[ScheduledFault, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", tuple(sorted(self.faults, key=lambda f: f.at_ns)))

    def __len__(self) -> int:
        return len(self.faults)

    def check(self, target: FaultTarget) -> None:
        """Raise :class:`ConfigError` naming the first fault that cannot act on ``target``."""
        for i, fault in enumerate(self.faults):
            try:
                fault.check(target)
            except UsageError as exc:
                raise ConfigError(f"fault {i + 1} ({fault.kind} at {fault.at_ns} ns): {exc}") from None

    def install(self, target: FaultTarget) -> None:
        """Check every fault against ``target`` (:meth:`check`), then have ``target`` apply each at its time
        (faults already in the past apply now)."""
        self.check(target)
        for fault in self.faults:
            target.call_at(max(fault.at_ns, target.now), _applier(fault, target))

    @classmethod
    def parse(cls, entries: Iterable[Mapping[str, object]], source: str = "fault schedule") -> FaultSchedule:
        """Build from parsed entries (dicts with ``kind`` and ``at_*``); errors name the entry and key."""
        out: list[ScheduledFault] = []
        for i, entry in enumerate(entries):
            where = f"{source}: entry {i + 1}"
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where}: must be a table, got {type(entry).__name__}")
            kind = entry.get("kind")
            if kind not in FAULT_KINDS:
                known = ", ".join(sorted(FAULT_KINDS))
                raise ConfigError(f"{where}: kind: unknown fault kind {kind!r}; known: {known}")
            fields = Fields(entry, f"{where} ({kind})")
            at_ns = fields.time("at")
            try:
                fault = FAULT_KINDS[kind].from_fields(at_ns, fields)
            except ConfigError:
                raise
            except UsageError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            fields.check_all_used()
            out.append(fault)
        return cls(tuple(out))

    @classmethod
    def load(cls, path: str | Path) -> FaultSchedule:
        """Read a ``.toml`` (``[[fault]]`` tables) or ``.json`` (a list, or ``{"fault": [...]}``) file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            data: object = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read fault schedule: {exc.strerror}") from None
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {exc}") from None
        entries = data.get("fault", []) if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise ConfigError(f"{p}: expected a list of faults (TOML: [[fault]] tables)")
        return cls.parse(entries, source=str(p))


# The joint fault kinds register themselves on import; imported last because they build on this module.
from armbus.hil import joint_faults as _joint_faults  # noqa: E402,F401
