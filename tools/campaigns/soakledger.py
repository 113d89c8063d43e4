"""The soak's ledger: every message the 1 kHz loop sent, where it arrived, how it ended.

Theory of operation
-------------------
The soak (:mod:`armbus.tools.campaigns.soak`) numbers every SYNC_WRITE (or CYCLE) it sends; its msg_id maps back to
the number. Observers on the joints call :meth:`Ledger.on_delivery` for each one a joint takes, so each joint
checks that the numbers only grow (a number seen before is a duplicate, a smaller new one is reordered). Reports
(:meth:`Ledger.on_report`: the host's SendFailed or CycleMissed, an UNDELIVERABLE from a joint) and reboots
(:meth:`Ledger.on_reboot`, with what the joint held at that instant: :func:`held_sync_writes`) are noted on the
message's record. :meth:`Ledger.settle` judges every message sent at least :data:`SETTLE_NS` ago, exactly once:

* delivered to all joints;
* lost and reported: the host was told (its own failure report), or an UNDELIVERABLE names it from a joint at or
  above every joint that missed it (a joint at address r reports what it could not pass to r + 1);
* lost in a reboot: a joint above every joint that missed it held it (queued or in flight on a link) or a report
  naming it (in a link or its report backlog) at the instant it rebooted. Nothing else excuses a loss: there is
  no time window around reboots;
* lost silently: none of these. The soak's claim is that there are none.

Settled records are dropped, so memory stays flat over an hour.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from armbus.bus.codec import Packet
from armbus.bus.messages import Undeliverable
from armbus.bus.wire import NS_PER_MS, Address, MsgType
from armbus.joints.node import JointNode

#: A message is judged this long after it was sent: longer than a hop's whole retry budget (~0.1 s at 1 Mbaud).
SETTLE_NS = 500 * NS_PER_MS
#: Sequence numbers each joint remembers to tell a duplicate from a reordered message.
RECENT = 4096
#: What the soak's loop sends and the ledger follows: SYNC_WRITEs, or CYCLEs (the cyclic exchange).
TRACKED = (int(MsgType.SYNC_WRITE), int(MsgType.CYCLE))
_UNDELIVERABLE = int(MsgType.UNDELIVERABLE)


@dataclass
class Sent:
    seq: int
    t: int
    joints: set[int] = field(default_factory=set)
    host_failed: bool = False
    reported_from: int | None = None  # lowest reporter address of an UNDELIVERABLE
    msg_id: int = -1
    held_by: set[int] = field(default_factory=set)  # joint indexes that held it (or its report) when they rebooted


@dataclass
class Ledger:
    """Per-message delivery bookkeeping (see the module docstring)."""

    joints: int
    sent: int = 0
    deliveries: int = 0
    delivered_all: int = 0
    lost_reported: int = 0
    lost_in_reboot: int = 0
    lost_silent: int = 0
    duplicates: int = 0
    reordered: int = 0
    pending: dict[int, Sent] = field(default_factory=dict)  # seq -> record
    seq_of: dict[int, int] = field(default_factory=dict)  # msg_id -> latest seq
    last: list[int] = field(default_factory=list)
    recent: list[deque[int]] = field(default_factory=list)
    recent_sets: list[set[int]] = field(default_factory=list)
    #: ``--trace-silent``: called with each silently lost record and its missing joint indexes.
    on_silent: Callable[[Sent, set[int]], None] | None = None

    def __post_init__(self) -> None:
        self.last = [-1] * self.joints
        self.recent = [deque() for _ in range(self.joints)]
        self.recent_sets = [set() for _ in range(self.joints)]

    def on_send(self, msg_id: int, now: int) -> None:
        seq = self.sent
        self.sent += 1
        self.pending[seq] = Sent(seq, now, msg_id=msg_id)
        self.seq_of[msg_id] = seq

    def on_delivery(self, joint: int, msg_id: int) -> None:
        seq = self.seq_of.get(msg_id)
        if seq is None:
            return
        seen = self.recent_sets[joint]
        if seq in seen:
            self.duplicates += 1
            return
        if seq < self.last[joint]:
            self.reordered += 1
        self.last[joint] = max(self.last[joint], seq)
        seen.add(seq)
        q = self.recent[joint]
        q.append(seq)
        if len(q) > RECENT:
            seen.discard(q.popleft())
        self.deliveries += 1
        rec = self.pending.get(seq)
        if rec is not None:
            rec.joints.add(joint)

    def on_report(self, msg_id: int, reporter: int | None) -> None:
        """A report naming ``msg_id``: from the joint at address ``reporter`` (it could not pass the message to the
        next joint), or the host's own SendFailed (``reporter`` None). A joint that rebooted and has not been
        enumerated since reports as UNASSIGNED: the host cannot place it in the chain, so its report covers every
        joint."""
        seq = self.seq_of.get(msg_id)
        rec = self.pending.get(seq) if seq is not None else None
        if rec is None:
            return
        if reporter == Address.UNASSIGNED:
            reporter = 0
        if reporter is None:
            rec.host_failed = True
        elif rec.reported_from is None or reporter < rec.reported_from:
            rec.reported_from = reporter

    def on_reboot(self, joint: int, msg_ids: list[int]) -> None:
        """Joint index ``joint`` rebooted holding these SYNC_WRITEs (or reports naming them): in its link queues,
        in flight, in its router's report backlog."""
        for msg_id in msg_ids:
            seq = self.seq_of.get(msg_id)
            rec = self.pending.get(seq) if seq is not None else None
            if rec is not None:
                rec.held_by.add(joint)

    def settle(self, now: int) -> None:
        for seq in list(self.pending):
            rec = self.pending[seq]
            if rec.t > now - SETTLE_NS:
                break
            del self.pending[seq]
            missing = set(range(self.joints)) - rec.joints
            if not missing:
                self.delivered_all += 1
            elif rec.host_failed or (rec.reported_from is not None and min(missing) >= rec.reported_from):
                self.lost_reported += 1  # reporter at address r could not pass it to r+1 (index r)
            elif any(j < min(missing) for j in rec.held_by):
                self.lost_in_reboot += 1  # a joint above every one that missed it held it when it rebooted
            else:
                self.lost_silent += 1
                if self.on_silent is not None:
                    self.on_silent(rec, missing)


def held_sync_writes(joint: JointNode) -> list[int]:
    """msg_ids of the SYNC_WRITEs ``joint`` holds now: queued or in flight on its links, or named by an
    UNDELIVERABLE waiting in its links or its router's backlog."""
    packets: list[Packet] = list(joint.router.backlog)
    for link in joint.links:
        packets.extend(link.queued)
        if link.inflight is not None:
            packets.append(link.inflight)
    held = []
    for p in packets:
        if p.type in TRACKED:
            held.append(p.msg_id)
        elif p.type == _UNDELIVERABLE:
            report = Undeliverable.unpack(p.payload)
            if report.orig_type in TRACKED:
                held.append(report.orig_msg_id)
    return held


