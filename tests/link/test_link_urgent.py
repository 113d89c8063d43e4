"""Urgent sends: they overtake the ordinary queue (never the frame in flight), have slots of their own, and
change nothing else: every packet still arrives exactly once, ordinary packets in their order, or is reported."""

from __future__ import annotations

import random

import pytest
from linksim import Pair

from armbus.bus.codec import Packet, decode_wire, encode_control, encode_data
from armbus.bus.errors import UsageError
from armbus.bus.link import URGENT_WAIT_TIMEOUTS, DeliveryFailed, LinkConfig, LinkEndpoint, PacketAcked, PacketReceived
from armbus.bus.linktable import LinkState
from armbus.bus.router import UP, Delivered, Router
from armbus.bus.wire import FrameKind, MsgType, UndeliverableReason

CFG = LinkConfig(baud=1_000_000, turnaround_ns=0, queue_limit=3, urgent_limit=2)


def goal(i: int) -> Packet:
    return Packet(0, 0xFF, MsgType.SYNC_WRITE, i, 32, bytes(12))


def stop(i: int) -> Packet:
    return Packet(0, 0xFF, MsgType.ESTOP, i, 32, b"\x01")


def open_pair(fault=None, cfg: LinkConfig = CFG) -> Pair:  # type: ignore[no-untyped-def]
    pair = Pair(LinkEndpoint(cfg, seed=1), LinkEndpoint(cfg, seed=2), fault)
    pair.run_while(lambda: not all(e.is_open for e in pair.ends), 10_000_000)
    assert all(e.is_open for e in pair.ends)
    return pair


def lossy(seed: int, p: float):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)

    def fault(side: int, index: int, frame: bytes) -> list[bytes]:
        r = rng.random()
        return [] if r < p else [frame, frame] if r < 1.5 * p else [frame]

    return fault


def test_urgent_overtakes_a_full_queue_but_not_the_frame_in_flight() -> None:
    pair = open_pair()
    a, _ = pair.ends
    assert [a.send(goal(i), pair.now) for i in range(5)] == [True, True, True, True, False]  # 1 in flight + 3
    assert a.queue_space == 0
    assert a.send(stop(100), pair.now, urgent=True)  # the full ordinary queue does not refuse it
    assert a.send(stop(101), pair.now, urgent=True)
    assert not a.send(stop(102), pair.now, urgent=True)  # its own slots are bounded too
    assert a.urgent_space == 0 and a.counters.urgent == 2
    assert a.queued == (stop(100), stop(101), goal(1), goal(2), goal(3))
    pair.run_while(lambda: not a.idle, 100_000_000)
    assert pair.received(1) == [goal(0), stop(100), stop(101), goal(1), goal(2), goal(3)]
    acked = [ev.packet for _, ev in pair.events[0] if isinstance(ev, PacketAcked)]
    assert acked == pair.received(1)


@pytest.mark.parametrize("seed", range(6))
def test_under_loss_and_duplicates_urgent_is_the_only_reordering(seed: int) -> None:
    """Random sends, a fifth of them urgent, on a line losing 10 % and duplicating 5 % of frames."""
    rng = random.Random(seed)
    pair = open_pair(lossy(seed, 0.1))
    a, _ = pair.ends
    accepted: list[Packet] = []
    overtaken: dict[Packet, tuple[Packet, ...]] = {}  # urgent packet -> ordinary packets queued when it came
    for i in range(300):
        urgent = rng.random() < 0.2
        p = stop(i) if urgent else goal(i)
        waiting = a.queued
        if a.send(p, pair.now, urgent=urgent):
            accepted.append(p)
            if urgent:
                overtaken[p] = tuple(q for q in waiting if q.type == MsgType.SYNC_WRITE)
        pair.run_until(pair.now + rng.randrange(0, 400_000))
    pair.run_while(lambda: not a.idle, 2_000_000_000)
    got = [ev.packet for _, ev in pair.events[1] if isinstance(ev, PacketReceived)]
    acked = [ev.packet for _, ev in pair.events[0] if isinstance(ev, PacketAcked)]
    failed = [ev.packet for _, ev in pair.events[0] if isinstance(ev, DeliveryFailed)]
    assert not failed  # 10 % loss never exhausts 10 retries here
    assert sorted(acked) == sorted(accepted)  # exactly one outcome per accepted send
    assert len(got) == len(set(got)) and set(got) == set(accepted)  # exactly once, nothing lost
    ordinary = [p for p in accepted if p.type == MsgType.SYNC_WRITE]
    assert [p for p in got if p.type == MsgType.SYNC_WRITE] == ordinary  # ordinary order unchanged
    assert [p for p in got if p.type == MsgType.ESTOP] == [p for p in accepted if p.type == MsgType.ESTOP]
    position = {p: k for k, p in enumerate(got)}
    for u, behind in overtaken.items():
        assert all(position[u] < position[q] for q in behind)  # ahead of everything queued when it came
    assert sum(1 for v in overtaken.values() if v) >= 3 and len(got) >= 40  # the run did exercise overtaking


def test_withdraw_takes_back_queued_ordinary_packets_only() -> None:
    pair = open_pair()
    a, _ = pair.ends
    for i in range(4):
        a.send(goal(i), pair.now)
    a.send(stop(9), pair.now, urgent=True)
    taken = a.withdraw(lambda p: p.msg_id in (0, 1, 3))  # 0 is in flight: it stays
    assert taken == [goal(1), goal(3)]
    assert a.queued == (stop(9), goal(2)) and a.queue_space == CFG.queue_limit - 1
    pair.run_while(lambda: not a.idle, 100_000_000)
    assert pair.received(1) == [goal(0), stop(9), goal(2)]
    outcomes = [ev.packet for _, ev in pair.events[0] if isinstance(ev, PacketAcked | DeliveryFailed)]
    assert outcomes == [goal(0), stop(9), goal(2)]  # withdrawn packets get no event


def test_link_down_fails_urgent_packets_too() -> None:
    cut = [False]

    def fault(side: int, index: int, frame: bytes) -> list[bytes]:
        return [] if cut[0] else [frame]

    cfg = LinkConfig(baud=1_000_000, turnaround_ns=0, max_retries=2, queue_limit=3, urgent_limit=2)
    pair = open_pair(fault, cfg)
    a, _ = pair.ends
    cut[0] = True
    a.send(goal(0), pair.now)
    a.send(goal(1), pair.now)
    a.send(stop(2), pair.now, urgent=True)
    pair.run_while(lambda: a.state is not LinkState.DOWN, 1_000_000_000)
    failed = [ev for _, ev in pair.events[0] if isinstance(ev, DeliveryFailed)]
    assert failed == [DeliveryFailed(goal(0), UndeliverableReason.RETRIES, True),
                      DeliveryFailed(stop(2), UndeliverableReason.LINK_DOWN, False),
                      DeliveryFailed(goal(1), UndeliverableReason.LINK_DOWN, False)]
    a.send(stop(3), pair.now, urgent=True)  # fails at once while down, like an ordinary send
    pair.drain()
    assert pair.events[0][-1][1] == DeliveryFailed(stop(3), UndeliverableReason.LINK_DOWN, False)


def test_urgent_send_waits_through_a_resync_at_the_head() -> None:
    """Queued while SYNCING, an urgent packet is the first one sent once the link opens."""
    a, b = LinkEndpoint(CFG, seed=1), LinkEndpoint(CFG, seed=2)
    pair = Pair(a, b)
    a.send(goal(0), 0)
    a.send(stop(1), 0, urgent=True)
    pair.run_while(lambda: not a.idle, 100_000_000)
    assert pair.received(1) == [stop(1), goal(0)]


def test_config_checks_urgent_limit() -> None:
    with pytest.raises(UsageError, match="urgent_limit"):
        LinkConfig(urgent_limit=-1)


def test_router_forwards_estop_urgently_and_never_withholds_its_ack() -> None:
    up, down = LinkEndpoint(CFG, seed=2), LinkEndpoint(CFG, seed=3)  # down: no neighbour, its queue fills
    router = Router(1, up, down)
    up.receive_data(encode_control(FrameKind.RESET_ACK, decode_wire(up.data_to_send(0)).seq), 0)
    assert up.is_open
    while down.send(goal(0), 0):
        pass
    ping = Packet(0, 5, MsgType.PING, 1, 32, b"")  # for joint 5, through the full down queue
    up.receive_data(encode_data(0, 0, ping), 0)
    assert up.data_to_send(0) == b"" and router.counters.refused == 1  # backpressure: no ack, retried later
    up.receive_data(encode_data(0, 0, stop(2)), 0)
    assert up.data_to_send(0) == encode_control(FrameKind.ACK, 0)  # the ESTOP frame is always taken
    assert [ev for ev in router.pump(0) if isinstance(ev, Delivered)] == [Delivered(stop(2), UP)]
    assert down.queued[0] == stop(2)._replace(ttl=31)  # forwarded ahead of the full queue
    assert router.counters.forwarded == 1 and router.counters.urgent == 1


def test_a_refused_frame_is_repeated_fast_then_given_up_so_the_urgent_packet_goes() -> None:
    pair = open_pair()
    a, b = pair.ends
    b.accepting = False  # the peer has no room for anything
    t0 = pair.now
    a.send(goal(0), t0)
    a.send(goal(1), t0)
    pair.run_until(t0 + 10_000_000)  # ordinary backoff: 3 ms, then 6 ms
    assert a.counters.retransmits == 2
    b.accept = lambda p: p.type == MsgType.ESTOP  # it would take an e-stop, never the goal
    b.accepting = True
    t1 = pair.now
    a.send(stop(2), t1, urgent=True)
    pair.run_while(lambda: not pair.received(1), 100_000_000)
    timeout = CFG.timeout_ns(len(encode_data(0, 0, goal(0))))
    assert pair.received(1) == [stop(2)]
    assert pair.now - t1 <= URGENT_WAIT_TIMEOUTS * timeout + 500_000  # the wait, a RESET round trip, the frame
    assert a.counters.retransmits - 2 >= 2 * URGENT_WAIT_TIMEOUTS  # repeated at the fast interval meanwhile
    failed = [ev for _, ev in pair.events[0] if isinstance(ev, DeliveryFailed)]
    assert failed == [DeliveryFailed(goal(0), UndeliverableReason.RETRIES, True)]  # reported, never resent
    b.accept = None
    pair.run_while(lambda: not a.idle, 100_000_000)
    assert pair.received(1) == [stop(2), goal(1)]
