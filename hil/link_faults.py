"""Link fault kinds for fault schedules: cut a link, or change its random fault configuration.

Theory of operation
-------------------
Each kind is a :class:`armbus.hil.scheduled_fault.ScheduledFault` that acts on one kernel link by name (``host-j1``,
``j1-j2``, ...; both directions, or one with ``direction``) through the kernel's fault injector
(:class:`armbus.hil.faults.FaultInjector`), and writes what it did to the fault decision log:

* ``cut_link`` (``link``, ``duration``, optional ``direction``): bytes arriving on the link meanwhile are lost;
* ``link_faults`` (``link``, ``faults`` = a :class:`armbus.hil.faults.LinkFaults` table, optional ``direction``):
  from then on the link has those random line faults.

Before a schedule is installed, ``check`` refuses a link the target does not have. The kinds are listed in the
table of :mod:`armbus.hil.fault_kinds`, which makes them known to fault files.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from armbus.bus.errors import ConfigError
from armbus.hil.faults import LinkFaults
from armbus.hil.scheduled_fault import FaultTarget, Fields, ScheduledFault
from armbus.hil.wire import Direction

__all__ = ["CutLink", "SetLinkFaults"]


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
