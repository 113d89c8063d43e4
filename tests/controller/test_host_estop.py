"""HostNode.estop: ahead of the host backlog and the link queue, stale goals taken back and reported, the rest
delivered in order after it."""

from __future__ import annotations

from armbus.bus.codec import Packet
from armbus.bus.link import LinkEndpoint, PacketReceived
from armbus.bus.messages import Heartbeat, SyncWrite, Write
from armbus.bus.wire import Address, MsgType
from armbus.controller import ops
from armbus.controller.events import PacketAcked, SendFailed
from armbus.controller.host import BACKLOG_LIMIT, STALE_GOAL_REASON, HostConfig, HostNode

MS = 1_000_000
BCAST = Address.BROADCAST


class Wire:
    """Host + a peer endpoint playing joint 1, zero delay; ``cut`` holds the host's bytes (its link cannot open,
    so everything queues) until released."""

    def __init__(self, config: HostConfig | None = None) -> None:
        self.now = 0
        self.host = HostNode(config, now=0)
        self.peer = LinkEndpoint(seed=99, name="joint1")
        self.cut = True
        self.received: list[Packet] = []
        self.events: list[object] = []

    def run(self, duration_ns: int) -> None:
        end = self.now + duration_ns
        while True:
            for _ in range(1000):
                up = self.host.data_to_send(0, self.now)
                if up and not self.cut:
                    self.peer.receive_data(up, self.now)
                self.received += [ev.packet for ev in self.peer.events() if isinstance(ev, PacketReceived)]
                down = self.peer.data_to_send(self.now)
                if down and not self.cut:
                    self.host.receive_data(0, down, self.now)
                while (ev := self.host.next_event()) is not None:
                    self.events.append(ev)
                if not up and not down:
                    break
            times = [t for t in (self.host.next_deadline(), self.peer.next_deadline()) if t is not None]
            if not times or min(times) > end:
                self.now = end
                return
            self.now = max(self.now, min(times))
            self.host.handle_timer(self.now)
            self.peer.handle_timer(self.now)


def goal(k: int) -> SyncWrite:
    return ops.sync_write_goals({1: k * 0.001, 2: -k * 0.001})


def fill(w: Wire) -> tuple[list[int], list[int]]:
    """16 goal SYNC_WRITEs with two config writes among them (the link takes 8, the backlog the rest)."""
    goals, others = [], []
    for k in range(16):
        if k in (5, 12):
            others.append(w.host.send(Write(ops.register("watchdog_period").address, b"\x00\x00"), 1, w.now))
        goals.append(w.host.send(goal(k), BCAST, w.now))
    return goals, others


def test_estop_overtakes_everything_and_takes_back_stale_goals() -> None:
    w = Wire()
    w.run(MS)
    goals, others = fill(w)
    assert w.host.link.queue_space == 0
    stop = w.host.estop(2, w.now)
    w.run(0)
    dropped = [e for e in w.events if isinstance(e, SendFailed)]
    assert [e.msg_id for e in dropped] == goals and {e.reason for e in dropped} == {STALE_GOAL_REASON}
    assert w.host.counters.goals_dropped == len(goals) and w.host.counters.estops == 1
    assert [p.msg_id for p in w.host.link.queued] == [stop, others[0]]  # the rest: still in the host backlog
    w.cut = False
    w.run(200 * MS)
    assert [p.msg_id for p in w.received] == [stop, *others]  # the ESTOP first, the rest in order, once
    assert w.received[0].type == MsgType.ESTOP
    assert [e.msg_id for e in w.events if isinstance(e, PacketAcked)] == [stop, *others]


def test_without_dropping_goals_the_estop_still_goes_first_and_nothing_is_lost() -> None:
    w = Wire(HostConfig(estop_drops_goals=False))
    w.run(MS)
    goals, others = fill(w)
    stop = w.host.estop(2, w.now)
    w.cut = False
    w.run(200 * MS)
    rest = sorted(goals + others)  # msg ids are allocated in send order
    assert [p.msg_id for p in w.received] == [stop, *rest]
    assert not [e for e in w.events if isinstance(e, SendFailed)]


def test_estops_beyond_the_urgent_slots_wait_ahead_of_the_backlog() -> None:
    w = Wire()
    w.run(MS)
    beats = [w.host.send(Heartbeat(k), BCAST, w.now) for k in range(12)]
    stops = [w.host.estop(k, w.now) for k in range(4)]  # the link holds two, the host the others
    assert [p.msg_id for p in w.host.link.queued[:2]] == stops[:2]
    w.cut = False
    w.run(200 * MS)
    assert [p.msg_id for p in w.received] == [*stops, *beats]


def test_an_estop_is_refused_only_beyond_its_own_backlog() -> None:
    w = Wire()
    w.run(MS)
    limit = w.host.link.config.urgent_limit + BACKLOG_LIMIT
    [w.host.estop(0, w.now) for _ in range(limit)]
    w.run(0)
    assert not [e for e in w.events if isinstance(e, SendFailed)]
    over = w.host.estop(0, w.now)
    w.run(0)
    assert [e.msg_id for e in w.events if isinstance(e, SendFailed)] == [over]
