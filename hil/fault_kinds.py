"""The fault-kind registry: the one table of fault-file ``kind`` names -> scheduled fault classes.

Theory of operation
-------------------
:data:`BUILTIN_FAULT_KINDS` lists every kind armbus ships: the link kinds of :mod:`armbus.hil.link_faults` and the
joint kinds of :mod:`armbus.hil.joint_faults`. :data:`FAULT_KINDS` maps each one's ``kind`` name to its class and is
filled here, from that list, when this module is first imported: importing a kind's module registers nothing, and
no module imports this one back (the kinds build on :mod:`armbus.hil.scheduled_fault`; the fault-file parser,
:meth:`armbus.hil.schedule.FaultSchedule.parse`, looks kinds up in this table).

:func:`register_fault_kind` adds a kind of one's own (a :class:`~armbus.hil.scheduled_fault.ScheduledFault`
subclass) to the same table, as a call or a class decorator; a name that is empty or already taken is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from armbus.bus.errors import UsageError
from armbus.hil.joint_faults import CutCable, Freeze, Overheat, Reboot, SensorNoise, Stall
from armbus.hil.link_faults import CutLink, SetLinkFaults
from armbus.hil.scheduled_fault import ScheduledFault

__all__ = ["BUILTIN_FAULT_KINDS", "FAULT_KINDS", "register_fault_kind"]

#: Every kind armbus ships, link kinds first.
BUILTIN_FAULT_KINDS: tuple[type[ScheduledFault], ...] = (
    CutLink, SetLinkFaults,
    Reboot, Freeze, Overheat, Stall, CutCable, SensorNoise,
)

_F = TypeVar("_F", bound=type[ScheduledFault])


def _add(table: dict[str, type[ScheduledFault]], cls: type[ScheduledFault]) -> None:
    if not cls.kind or cls.kind in table:
        raise UsageError(f"fault kind {cls.kind!r} of {cls.__name__} is empty or already registered")
    table[cls.kind] = cls


def _table(kinds: Iterable[type[ScheduledFault]]) -> dict[str, type[ScheduledFault]]:
    table: dict[str, type[ScheduledFault]] = {}
    for cls in kinds:
        _add(table, cls)
    return table


#: Fault-file ``kind`` name -> class: the built-in kinds, then any added with :func:`register_fault_kind`.
FAULT_KINDS: dict[str, type[ScheduledFault]] = _table(BUILTIN_FAULT_KINDS)


def register_fault_kind(cls: _F) -> _F:
    """Class decorator: make a :class:`ScheduledFault` subclass known to fault files by its ``kind``."""
    _add(FAULT_KINDS, cls)
    return cls
