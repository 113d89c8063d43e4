"""Trace statistics on a crafted two-hop capture whose latencies, retries and gaps are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from armbus.bus.codec import Packet, encode_control, encode_data
from armbus.bus.messages import Heartbeat, PingReply, Read, ReadReply, SetGoal, Undeliverable, make_packet
from armbus.bus.messages import Ping as PingMsg
from armbus.bus.wire import FrameFlag, FrameKind
from armbus.hil.trace.decode import decode_file
from armbus.hil.trace.pcapng import TraceWriter
from armbus.hil.trace.stats import compute, main

US = 1_000


def ack(seq: int) -> bytes:
    return encode_control(FrameKind.ACK, seq)


def data(seq: int, pkt: Packet, flags: int = 0) -> bytes:
    return encode_data(seq, flags, pkt)


READ1 = make_packet(Read(0x20, 4), 0, 2, 1)
REPLY1 = make_packet(ReadReply(0x20, b"\x01\x02\x03\x04"), 2, 0, 1)
PING2 = make_packet(PingMsg(), 0, 1, 2)
PONG2 = make_packet(PingReply(7, 1, 0, 1234, 1), 1, 0, 2)
READ3 = make_packet(Read(0x20, 4), 0, 1, 3)
GOAL4 = make_packet(SetGoal(1, 1000), 0, 1, 4)
UNDEL = make_packet(Undeliverable(1, 2, 0, 2, 3, 5, 1), 1, 0, 9)
BEAT = make_packet(Heartbeat(200), 0, 0xFF, 10)

#: (time in us, link, direction, bytes); the hop latencies are the differences noted on the right.
SCENARIO = [
    (0, "host-j1", "down", data(0, READ1)),
    (100, "host-j1", "up", ack(0)),  # hop 100
    (200, "j1-j2", "down", data(0, READ1._replace(ttl=31))),
    (500, "j1-j2", "up", ack(0)),  # hop 300
    (800, "j1-j2", "up", data(0, REPLY1)),
    (850, "j1-j2", "down", ack(0)),  # hop 50
    (900, "host-j1", "up", data(0, REPLY1._replace(ttl=31))),  # e2e READ 900
    (1000, "host-j1", "down", ack(0)),  # hop 100
    (2000, "host-j1", "down", data(1, PING2)),
    (2500, "host-j1", "down", data(1, PING2, FrameFlag.RETRANSMIT)),
    (2520, "host-j1", "up", ack(1)),  # hop 20, measured from the retransmission
    (2600, "host-j1", "up", data(1, PONG2)),  # e2e PING 600
    (2610, "host-j1", "down", ack(1)),  # hop 10
    (3000, "host-j1", "down", data(2, READ3)),  # never answered
    (3010, "host-j1", "up", ack(2)),  # hop 10
    (4000, "host-j1", "down", data(3, GOAL4)),  # never acked
    (4100, "host-j1", "up", b"zz\x00"),  # line noise
    (4200, "host-j1", "up", data(2, UNDEL)),
    (4205, "host-j1", "down", ack(2)),  # hop 5
    (200_000, "host-j1", "down", data(4, BEAT)),  # after a 196 ms silence on host-j1:down
    (200_010, "host-j1", "up", ack(4)),  # hop 10
]
HOPS_US = [100, 300, 50, 100, 20, 10, 10, 5, 10]


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "s.pcapng"
    with TraceWriter(path) as w:
        for t_us, link, direction, wire in SCENARIO:
            w(link, direction, t_us * US, wire)
    return path


def test_known_latencies_retries_errors_and_gaps(capture: Path) -> None:
    s = compute(decode_file(str(capture)), gap_ns=50_000 * US)
    assert sorted((s.hop_samples // US).tolist()) == sorted(HOPS_US)
    assert s.hop_latency["all"].max_ns == 300 * US
    assert s.hop_latency["all"].p50_ns == np.percentile(np.array(HOPS_US) * US, 50)
    assert s.hop_latency["j1-j2"].count == 2 and s.hop_latency["host-j1"].count == 7
    assert s.e2e_latency["READ"].max_ns == 900 * US and s.e2e_latency["PING"].max_ns == 600 * US
    assert s.e2e_latency["all"].count == 2
    assert s.unanswered_requests == 1
    assert s.unacked_frames == 1
    assert s.retransmissions == 1
    assert s.undeliverable == 1
    assert sum(s.line_errors.values()) == 1
    assert s.frames_by_type["READ"] == 3 and s.messages_by_type["READ"] == 2
    assert s.frames_by_type["PING"] == 2 and s.messages_by_type["PING"] == 1
    assert s.frames_by_type["ACK"] == len(HOPS_US)
    big = [g for g in s.gaps if g["interface"] == "host-j1:down" and g["length_ns"] > 100_000 * US]
    assert [(g["start_ns"], g["length_ns"]) for g in big] == [(4205 * US, (200_000 - 4205) * US)]
    assert s.duration_ns == 200_010 * US


def test_no_gaps_below_threshold(capture: Path) -> None:
    s = compute(decode_file(str(capture)), gap_ns=300_000 * US)
    assert s.gaps == []


def test_main_text_and_json(capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(capture), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["hop_latency"]["all"]["count"] == len(HOPS_US)
    assert main([str(capture)]) == 0
    assert "hop latency" in capsys.readouterr().out
    assert main([str(capture), "--gap", "later"]) == 2


def test_broadcast_requests_the_host_sent_get_their_end_to_end_latency(tmp_path: Path) -> None:
    from trace_sessions import record_session

    from armbus.hil.trace.stats import compute

    path = tmp_path / "session.pcapng"
    record_session(path)  # enumerates (ENUMERATE, then SYNC_READ of status) and sync-reads the states
    s = compute(decode_file(str(path)))
    assert s.e2e_latency["ENUMERATE"].count == 1 and s.e2e_latency["SYNC_READ"].count == 2
    assert s.e2e_latency["SYNC_READ"].p50_ns > s.e2e_latency["READ"].p50_ns  # it travels the whole chain
    assert s.unanswered_requests == 0  # the copies the joints forward are not requests waiting for a reply
