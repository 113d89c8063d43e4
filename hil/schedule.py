"""Fault schedules: at simulated time t, do fault f; fault files name each fault by its kind.

Theory of operation
-------------------
A :class:`FaultSchedule` is a time-ordered tuple of scheduled faults (:class:`ScheduledFault`). Installing it on a
simulation (:meth:`FaultSchedule.install`) asks the target to call each fault's :meth:`ScheduledFault.apply` at
its time, in sequence with every other event, so a schedule replays exactly. Each application is recorded in the
fault decision log (:meth:`armbus.hil.faults.FaultInjector.record`) like the random decisions.

Every kind is a frozen dataclass with a ``kind`` name (:mod:`armbus.hil.scheduled_fault` has the base class and
the field access). A fault file entry ``{"kind": "cut_link", "at_ms": 120, "link": "j2-j3", "duration_ms": 50}``
is parsed (:meth:`FaultSchedule.parse`, :meth:`FaultSchedule.load`) by the ``from_fields`` of the class that the
table :data:`armbus.hil.fault_kinds.FAULT_KINDS` names for it. That table lists the link kinds (``cut_link``,
``link_faults``: :mod:`armbus.hil.link_faults`) and the joint kinds (``reboot``, ``freeze``, ``overheat``,
``stall``, ``cut_cable``, ``sensor_noise``: :mod:`armbus.hil.joint_faults`) in one place;
:func:`register_fault_kind` adds one's own. This module imports the table; nothing it imports imports it back.
Before a schedule is installed, :meth:`FaultSchedule.check` asks every fault whether its joint or link exists.
Times in files are ``at_ns``/``at_us``/``at_ms``/``at_s`` (and ``duration_*``); in code they are integer nanoseconds.

The base class, the field access, the link kinds and the registry are also importable from here, as before.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from armbus.bus.errors import ConfigError, UsageError
from armbus.hil.fault_kinds import FAULT_KINDS, register_fault_kind
from armbus.hil.link_faults import CutLink, SetLinkFaults
from armbus.hil.scheduled_fault import FaultTarget, Fields, ScheduledFault

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "FAULT_KINDS", "CutLink", "FaultSchedule", "FaultTarget", "Fields", "ScheduledFault", "SetLinkFaults",
    "register_fault_kind",
]


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
