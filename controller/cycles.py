"""The host's side of the cyclic exchange: timing of one exchange, and cycles in flight matched to replies; sans-I/O.

Theory of operation
-------------------
:class:`CycleTiming` knows the line rates and the joints' forwarding latency and turns sizes into wire times: the
exchange's *latency floor* (the CYCLE's way down through every hop, shrinking, plus the CYCLE_REPLY's way up,
growing: what one exchange takes on idle links), and each record's *transit*, the time between the joint handing
its record to its link and the reply's arrival at the host (the reply frames it rode in: one record more per
hop). A record says how old its sample was when the joint sent it (``age_us``); the host adds the transit and
puts the sample on its own clock: ``sampled_at = arrival - age - transit``. Retransmissions and queueing on the
way are not in the transit, so an age is exact for an exchange alone on clean links and a lower bound otherwise:
with cycles pipelined, a record may wait behind an ACK of a newer cycle's frame on its way up (measured on a clean
6-joint chain: within 90 us of the true sample instant at 1 Mbaud, 14 us at 3 Mbaud; tests/controller/test_cyclic.py).

:class:`CycleTracker` follows the cycles the host node sent (:meth:`armbus.controller.host.HostNode.cycle`). Up to
``max_in_flight`` are in flight at once: when a new one needs a slot, or when one has waited ``timeout_ns``, the
oldest is given up and reported :class:`~armbus.controller.events.CycleMissed`. A reply is matched by msg_id and
reported :class:`~armbus.controller.events.CycleReplied`: ``late`` when its cycle had already been given up; a
second reply with the same msg_id (a joint above restarted the reply after a link reset) is counted and dropped.
The host node takes back a cycle still waiting in its queues when the next one is sent ("superseded": a goal
that has not left is stale once a newer one exists), so a bus slower than the loop costs cycles, not latency.
"""

from __future__ import annotations

import functools
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from armbus.bus.cycle import CycleReply, cycle_size, reply_size
from armbus.bus.linkconfig import CONTROL_WIRE_SIZE
from armbus.bus.wire import DEFAULT_BAUD, NS_PER_US, StatusFlag, data_wire_size, wire_time_ns
from armbus.controller.events import CycleMissed, CycleReplied, CycleSample, HostEvent
from armbus.joints.node import FORWARD_LATENCY_NS

#: Cycles in flight at once by default: enough for a 6-joint exchange at 1 Mbaud (6.3 ms) paced at 1 kHz, and
#: half of what a joint remembers goal outcomes for (joints/cyclic.py RESULTS_KEPT).
DEFAULT_MAX_IN_FLIGHT = 8
#: Cycle ids remembered after they were answered or given up (to tell a duplicate or a late reply).
_REMEMBERED = 64


@dataclass(frozen=True)
class CycleTiming:
    """Line rates of the host link and of the joint-to-joint links, and each joint's forwarding latency."""

    host_baud: int = DEFAULT_BAUD
    chain_baud: int = DEFAULT_BAUD
    forward_latency_ns: int = FORWARD_LATENCY_NS

    def _hop(self, hop: int, nbytes: int) -> int:
        """Wire time of a frame of ``nbytes`` payload bytes on hop ``hop`` (1: host - joint 1)."""
        return wire_time_ns(data_wire_size(nbytes), self.host_baud if hop == 1 else self.chain_baud)

    def down_ns(self, joints: int, goals: int) -> int:
        """The CYCLE's way from the host to joint ``joints``, ``goals`` slices at the start, one fewer per hop;
        every joint but the last forwards it after its latency."""
        wire = sum(self._hop(h, cycle_size(max(0, goals - h + 1))) for h in range(1, joints + 1))
        return wire + (joints - 1) * self.forward_latency_ns

    def reply_ns(self, records: int, length: int, hops: int) -> int:
        """The reply's way over the last ``hops`` hops toward the host, arriving with ``records`` records; each
        hop's sender is a joint, which adds its latency."""
        wire = sum(self._hop(h, reply_size(records - h + 1, length)) for h in range(1, hops + 1))
        return wire + hops * self.forward_latency_ns

    def floor_ns(self, joints: int, length: int, goals: int) -> int:
        """Latency floor of one exchange with ``joints`` joints, ``length`` bytes read, ``goals`` slices."""
        return self.down_ns(joints, goals) + self.reply_ns(joints, length, joints)

    def transit_ns(self, index: int, records: int, length: int) -> int:
        """Time the record at ``index`` (0: chain end, first) of a ``records``-record reply spent going up. The
        first record's joint started the reply right after acking the CYCLE on the same link: the ACK goes first.
        (A reply started where a forward failed has no ACK before it: that record's age comes out one ACK's wire
        time too large.) Asked for every record of every reply: remembered per timing and arguments."""
        return _transit_ns(self, index, records, length)


@functools.lru_cache(maxsize=1024)
def _transit_ns(timing: CycleTiming, index: int, records: int, length: int) -> int:
    transit = timing.reply_ns(records, length, records - index)
    if index == 0:
        transit += wire_time_ns(CONTROL_WIRE_SIZE, timing.host_baud if records == 1 else timing.chain_baud)
    return transit


@dataclass
class CycleCounters:
    sent: int = 0
    replied: int = 0
    late: int = 0  # replies that came after their cycle was given up
    missed: int = 0  # cycles given up: no reply in time
    superseded: int = 0  # cycles taken back before they left: a newer one was sent
    failed: int = 0  # cycles the host link could not deliver
    duplicates: int = 0


@dataclass
class _Flight:
    sent_at: int
    deadline: int


@dataclass
class CycleTracker:
    """Cycles in flight; see the module docstring."""

    timing: CycleTiming = field(default_factory=CycleTiming)
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    counters: CycleCounters = field(default_factory=CycleCounters)

    def __post_init__(self) -> None:
        self._flight: OrderedDict[int, _Flight] = OrderedDict()
        self._gone: OrderedDict[int, int] = OrderedDict()  # given up: msg_id -> sent_at
        self._answered: deque[int] = deque(maxlen=_REMEMBERED)

    @property
    def in_flight(self) -> int:
        return len(self._flight)

    def next_deadline(self) -> int | None:
        return next(iter(self._flight.values())).deadline if self._flight else None

    def sent(self, msg_id: int, now: int, timeout_ns: int) -> list[HostEvent]:
        """Cycle ``msg_id`` left now; returns the cycles given up to make room for it."""
        out = []
        while len(self._flight) >= self.max_in_flight:
            old, _ = next(iter(self._flight.items()))
            out.append(self._give_up(old, now, "no reply while newer cycles needed its slot"))
        self._flight[msg_id] = _Flight(now, now + timeout_ns)
        self.counters.sent += 1
        return out

    def expire(self, now: int) -> list[HostEvent]:
        out = []
        while self._flight:
            msg_id, f = next(iter(self._flight.items()))
            if f.deadline > now:
                break
            out.append(self._give_up(msg_id, now, "no reply before its deadline"))
        return out

    def withdrawn(self, msg_id: int, now: int, reason: str, superseded: bool) -> HostEvent | None:
        """Cycle ``msg_id`` never reached joint 1 (taken back, or the link gave up)."""
        f = self._flight.pop(msg_id, None)
        if f is None:
            return None
        if superseded:
            self.counters.superseded += 1
        else:
            self.counters.failed += 1
        self._remember_gone(msg_id, f.sent_at)
        return CycleMissed(now, msg_id, f.sent_at, reason)

    def knows(self, msg_id: int) -> bool:
        return msg_id in self._flight or msg_id in self._gone or msg_id in self._answered

    def replied(self, msg_id: int, reply: CycleReply, now: int) -> HostEvent | None:
        """The event for a CYCLE_REPLY with ``msg_id``, or None for a duplicate (counted)."""
        f = self._flight.pop(msg_id, None)
        late = f is None
        if f is not None:
            sent_at = f.sent_at
            self.counters.replied += 1
        else:
            gone = self._gone.pop(msg_id, None)
            if gone is None:
                self.counters.duplicates += 1
                return None
            sent_at = gone
            self.counters.late += 1
        self._answered.append(msg_id)
        return CycleReplied(now, msg_id, sent_at, self.samples(reply, now), late)

    def samples(self, reply: CycleReply, now: int) -> tuple[CycleSample, ...]:
        """The records of a reply that arrived at ``now``, in address order, each placed on the host's clock."""
        n, length = len(reply.records), reply.length
        return tuple(sorted((CycleSample(r.address, StatusFlag(r.status), r.result, r.data,
                                         now - r.age_us * NS_PER_US - self.timing.transit_ns(i, n, length))
                             for i, r in enumerate(reply.records)), key=lambda s: s.address))

    def _give_up(self, msg_id: int, now: int, reason: str) -> HostEvent:
        f = self._flight.pop(msg_id)
        self.counters.missed += 1
        self._remember_gone(msg_id, f.sent_at)
        return CycleMissed(now, msg_id, f.sent_at, reason)

    def _remember_gone(self, msg_id: int, sent_at: int) -> None:
        self._gone[msg_id] = sent_at
        while len(self._gone) > _REMEMBERED:
            self._gone.popitem(last=False)
