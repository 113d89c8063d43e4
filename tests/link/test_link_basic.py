"""LinkEndpoint over a hand-stepped two-endpoint wire: handshake, latency, loss, duplicates, refusal, give-up."""

from __future__ import annotations

import itertools

import pytest
from linksim import Pair

from armbus.bus.codec import Packet, decode_wire, encode_control, encode_data
from armbus.bus.errors import EncodeError, UsageError
from armbus.bus.link import (
    CONTROL_WIRE_SIZE,
    DeliveryFailed,
    LinkConfig,
    LinkDown,
    LinkEndpoint,
    LinkReset,
    PacketAcked,
    PacketReceived,
)
from armbus.bus.linktable import LinkState
from armbus.bus.wire import FrameKind, MsgType, UndeliverableReason

CFG = LinkConfig(baud=1_000_000, turnaround_ns=0)


def pkt(i: int, payload: bytes = b"") -> Packet:
    return Packet(0, 1, MsgType.PING, i & 0xFFFF, 32, payload)


def open_pair(fault=None, cfg: LinkConfig = CFG) -> Pair:  # type: ignore[no-untyped-def]
    pair = Pair(LinkEndpoint(cfg, seed=1), LinkEndpoint(cfg, seed=2), fault)
    pair.run_while(lambda: not all(e.is_open for e in pair.ends), 10_000_000)
    assert all(e.is_open for e in pair.ends)
    pair.run_while(lambda: bool(pair.heap), 10_000_000)  # the answers to the crossed RESETs leave the line
    return pair


def test_boot_handshake_opens_both_sides() -> None:
    # both boot at once: their RESETs cross, and each opens on the other's (answering it); the late answers to
    # their own RESETs are stale and dropped, and neither sends its RESET again
    pair = open_pair()
    pair.run_until(pair.now + 100_000_000)
    for side in (0, 1):
        assert [ev for _, ev in pair.events[side]] == [LinkReset(by_peer=True)]
        assert pair.ends[side].counters.resets_sent == 1
        assert pair.ends[side].counters.retransmits == 0
        assert pair.ends[side].counters.stale_reset_acks == 1


def test_a_late_peer_s_handshake_is_not_reset_again() -> None:
    # one side booted long ago and probes with RESET; the other starts its own handshake later. The prober opens
    # on that RESET and withdraws its own, so nothing resets the new session: the first DATA gets through.
    a, b = LinkEndpoint(CFG, seed=1), LinkEndpoint(CFG, seed=2)
    connected = [False]
    pair = Pair(a, b, lambda side, i, frame: [frame] if connected[0] else [])
    pair.run_until(50_000_000)  # every frame is lost: the cable is not plugged in yet
    connected[0] = True
    assert not a.is_open and a.counters.retransmits >= 3
    b.reset(pair.now)  # b starts its own handshake (a host opening the port)
    pair.run_while(lambda: not b.is_open, 10_000_000)
    assert a.is_open and b.is_open
    assert b.send(pkt(1), pair.now)
    pair.run_until(pair.now + 200_000_000)
    assert [p.msg_id for p in pair.received(0)] == [1]
    assert not any(isinstance(ev, DeliveryFailed) for _, ev in pair.events[1])
    assert [ev for _, ev in pair.events[1]].count(LinkReset(by_peer=False)) == 1
    assert a.counters.resets_accepted == 1 and b.counters.resets_accepted == 0


def test_latency_equals_wire_time() -> None:
    pair = open_pair()
    a, _ = pair.ends
    t0 = pair.now
    p = pkt(7, b"x" * 20)
    wire_len = len(encode_data(0, 0, p))
    assert a.send(p, t0)
    pair.run_while(lambda: not any(isinstance(e, PacketAcked) for _, e in pair.events[0]), 10_000_000)
    t_rx = next(t for t, e in pair.events[1] if isinstance(e, PacketReceived))
    t_ack = next(t for t, e in pair.events[0] if isinstance(e, PacketAcked))
    # 10 bits per byte at 1 Mbaud = 10 us per byte
    assert t_rx - t0 == wire_len * 10_000
    assert t_ack - t0 == (wire_len + CONTROL_WIRE_SIZE) * 10_000


def test_timeout_formula() -> None:
    cfg = LinkConfig(baud=115_200, turnaround_ns=1_000_000, reverse_bytes=270)
    frame, ack = 30, CONTROL_WIRE_SIZE
    assert cfg.timeout_ns(frame) == -(-(frame + ack + 270) * 10 * 10**9 // 115_200) + 1_000_000


def test_stream_in_order_both_directions() -> None:
    pair = open_pair()
    a, b = pair.ends
    sent_a, sent_b = [pkt(i) for i in range(300)], [pkt(1000 + i) for i in range(300)]
    ia = ib = 0
    while len(pair.received(1)) < 300 or len(pair.received(0)) < 300:
        while ia < 300 and a.send(sent_a[ia], pair.now):
            ia += 1
        while ib < 300 and b.send(sent_b[ib], pair.now):
            ib += 1
        pair.drain()
        assert pair.step()
    assert pair.received(1) == sent_a
    assert pair.received(0) == sent_b


def test_lost_data_and_lost_ack_retransmit_without_duplicate() -> None:
    losses = {(0, 2), (1, 3)}  # a's third frame (the first DATA after the RESET and the answer) and b's 4th

    def fault(side: int, index: int, frame: bytes) -> list[bytes]:
        return [] if (side, index) in losses else [frame]

    pair = open_pair(fault)
    a, b = pair.ends
    for i in range(3):
        assert a.send(pkt(i), pair.now)
    pair.run_while(lambda: a.counters.acked < 3, 100_000_000)
    assert pair.received(1) == [pkt(0), pkt(1), pkt(2)]
    assert a.counters.retransmits >= 2
    assert b.counters.duplicates >= 1


def test_duplicated_frames_delivered_once() -> None:
    pair = open_pair(lambda side, i, f: [f, f])
    a, _ = pair.ends
    for i in range(5):
        assert a.send(pkt(i), pair.now)
    pair.run_while(lambda: a.counters.acked < 5, 100_000_000)
    pair.run_until(pair.now + 1_000_000)  # let the last copies arrive
    assert pair.received(1) == [pkt(i) for i in range(5)]
    assert pair.ends[1].counters.duplicates == 5
    assert pair.ends[0].counters.stray_acks == 15  # 4 acks per frame (2 copies of 2 acks), 1 closes it


def test_queue_full_returns_false() -> None:
    cfg = LinkConfig(baud=1_000_000, turnaround_ns=0, queue_limit=2)
    pair = open_pair(cfg=cfg)
    a, _ = pair.ends
    results = [a.send(pkt(i), pair.now) for i in range(4)]
    assert results == [True, True, True, False]  # one in flight + two queued
    assert a.queue_space == 0


def test_refusal_withholds_ack_until_accepted() -> None:
    pair = open_pair()
    a, b = pair.ends
    b.accepting = False
    a.send(pkt(1), pair.now)
    pair.run_until(pair.now + 5_000_000)
    assert pair.received(1) == []
    assert b.counters.refused >= 1
    assert a.counters.retransmits >= 1
    b.accepting = True
    pair.run_while(lambda: a.counters.acked < 1, 100_000_000)
    assert pair.received(1) == [pkt(1)]


def test_give_up_reports_and_resyncs() -> None:
    cut = [False]

    def fault(side: int, index: int, frame: bytes) -> list[bytes]:
        return [] if cut[0] else [frame]

    cfg = LinkConfig(baud=1_000_000, turnaround_ns=0, max_retries=3)
    pair = open_pair(fault, cfg)
    a, _ = pair.ends
    cut[0] = True
    a.send(pkt(1), pair.now)
    a.send(pkt(2), pair.now)
    pair.run_until(pair.now + 200_000_000)
    evs = [e for _, e in pair.events[0]]
    failed = [e for e in evs if isinstance(e, DeliveryFailed)]
    assert failed[0] == DeliveryFailed(pkt(1), UndeliverableReason.RETRIES, True)
    assert failed[1] == DeliveryFailed(pkt(2), UndeliverableReason.LINK_DOWN, False)
    assert any(isinstance(e, LinkDown) for e in evs)
    assert a.state is LinkState.DOWN
    a.send(pkt(3), pair.now)  # fails at once while down
    pair.drain()
    assert pair.events[0][-1][1] == DeliveryFailed(pkt(3), UndeliverableReason.LINK_DOWN, False)
    cut[0] = False  # the line comes back: the next probe reopens the link
    pair.run_until(pair.now + 100_000_000)
    assert a.state is LinkState.OPEN
    a.send(pkt(4), pair.now)
    pair.run_while(lambda: not pair.received(1), 100_000_000)
    assert pair.received(1) == [pkt(4)]


def test_stray_ack_and_garbage_are_counted() -> None:
    pair = open_pair()
    a, _ = pair.ends
    a.receive_data(encode_control(FrameKind.ACK, 77) + b"\x01\x02\x03\x00" + b"junk\x00", pair.now)
    assert a.counters.stray_acks == 1
    assert a.counters.framing_errors + a.counters.crc_errors == 2
    assert a.is_open


def test_bad_packet_raises_before_queueing() -> None:
    a = LinkEndpoint(CFG)
    with pytest.raises(EncodeError):
        a.send(Packet(0, 1, MsgType.PING, 70000), 0)
    assert a.queue_space == CFG.queue_limit


def test_config_names_bad_field() -> None:
    with pytest.raises(UsageError, match="baud"):
        LinkConfig(baud=0)
    with pytest.raises(UsageError, match="queue_limit"):
        LinkConfig(queue_limit=-1)


def test_boot_silence_ignores_stale_answers_then_resets() -> None:
    cfg = LinkConfig(baud=1_000_000, turnaround_ns=0, boot_quiet_ns=1_000_000)
    a = LinkEndpoint(cfg, seed=5)
    assert a.data_to_send(0) == b""
    assert a.next_deadline() == 1_000_000
    for nonce in range(256):  # answers to a previous life's RESETs: none may open the link
        a.receive_data(encode_control(FrameKind.RESET_ACK, nonce), 10)
    assert a.state is LinkState.SYNCING
    assert a.counters.stale_reset_acks == 256
    a.handle_timer(999_999)
    assert a.data_to_send(999_999) == b""
    a.handle_timer(1_000_000)
    frame = decode_wire(a.data_to_send(1_000_000))
    assert frame.kind == FrameKind.RESET
    a.receive_data(encode_control(FrameKind.RESET_ACK, frame.seq), 1_100_000)
    assert a.is_open



def test_low_baud_link_delivers_large_frames_under_loss_without_spurious_retries() -> None:
    """At 9600 baud one largest frame's round trip (~0.3 s) exceeds the 20 ms backoff cap: a retry must still
    wait for the ack, so a lossy link delivers everything and never retransmits a frame whose ack is on its way."""
    cfg = LinkConfig(baud=9600)
    assert cfg.timeout_ns(270) > cfg.backoff_cap_ns
    lost = {(0, 3), (0, 6)}  # two of a's DATA frames vanish

    pair = Pair(LinkEndpoint(cfg, seed=1), LinkEndpoint(cfg, seed=2),
                lambda side, i, f: [] if (side, i) in lost else [f])
    pair.run_while(lambda: not all(e.is_open for e in pair.ends), 10**9)
    a, b = pair.ends
    assert a.is_open and b.is_open
    sent = [pkt(i, bytes(250)) for i in range(6)]
    for p in sent:
        assert a.send(p, pair.now)
    pair.run_while(lambda: a.counters.acked < len(sent), 60 * 10**9)
    assert pair.received(1) == sent
    assert a.counters.failures == 0
    assert a.counters.retransmits == len(lost)  # one retry per lost frame, none early
    assert b.counters.duplicates == 0


@pytest.mark.parametrize(("baud", "first", "cap"), [(1_000_000, 3_010_000, 20_000_000),
                                                   (115_200, 25_744_445, 51_488_890)])
def test_retransmit_intervals_are_the_formula_in_hoplink_md(baud: int, first: int, cap: int) -> None:
    # docs/hoplink.md, "Timers": wire(k) rounded up to whole ns; the doubling capped at max(20 ms, 2 x first)
    cfg = LinkConfig(baud=baud)
    a = LinkEndpoint(cfg, seed=1)
    pair = Pair(a, LinkEndpoint(cfg, seed=2), lambda side, i, frame: [frame] if side == 1 or i < 1 else [])
    pair.run_while(lambda: not a.is_open, 100_000_000)
    p = pkt(1, b"x" * 5)
    assert len(encode_data(0, 0, p)) == 19 and cfg.timeout_ns(19) == first
    t0 = pair.now
    assert a.send(p, t0)
    sent = [t0]
    while len(sent) < 6:
        before = a.counters.retransmits
        pair.run_until(a.next_deadline() or 0)
        if a.counters.retransmits > before:
            sent.append(pair.now)
    gaps = [t - s for s, t in itertools.pairwise(sent)]
    assert gaps == [min(first << k, cap) for k in range(5)]


def test_a_reset_sent_again_carries_retransmit_and_acks_never_do() -> None:
    # docs/protocol.md, section 3, "flags" (vectors reset_5a, reset_retransmit): the first RESET sends 0
    a = LinkEndpoint(CFG, seed=1)
    frames = []
    now = 0
    for _ in range(3):
        frames += [decode_wire(c + b"\x00") for c in a.data_to_send(now).split(b"\x00")[:-1] if c]
        now = a.next_deadline() or now
        a.handle_timer(now)
    assert [(f.kind, f.flags) for f in frames] == [(FrameKind.RESET, 0), (FrameKind.RESET, 1), (FrameKind.RESET, 1)]
    assert len({f.seq for f in frames}) == 1  # the same nonce: a copy
