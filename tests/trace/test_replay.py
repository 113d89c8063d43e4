"""Replay: a recorded virtual-arm session replayed against a fresh arm is a regression test."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from trace_sessions import JOINTS, SEED, record_session

from armbus.bus.codec import Frame, LineError, encode_control
from armbus.bus.messages import CycleRecord, CycleReply, State, make_packet
from armbus.bus.wire import FrameFlag, FrameKind, LineErrorKind
from armbus.hil.trace import replay
from armbus.hil.trace.compare import Tolerances, compare, decode_rows, make_row
from armbus.hil.trace.pcapng import TraceWriter
from armbus.hil.trace.reader import read_trace


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "session.pcapng"
    record_session(path)
    return path


def test_same_seed_replays_without_differences(session: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay.main([str(session)]) == 0
    out = capsys.readouterr().out
    assert "difference:" not in out and "replay: OK" in out
    result = replay.replay_virtual(read_trace(session))
    assert result.ok and result.comparison.matched == len(result.recorded) > 6
    assert set(result.comparison.shifts) == {0}  # simulated replay: every answer at its recorded time


def test_other_joint_count_is_reported(session: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay.main([str(session), "--joints", "2"]) == 1
    out = capsys.readouterr().out
    assert "ENUMERATE_REPLY" in out and "replay: DIFFERENCES" in out


def test_changed_register_is_reported(session: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay.main([str(session), "--set", "3:position_max=1000000"]) == 1
    diffs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("difference:")]
    assert len(diffs) == 1 and "READ_REPLY" in diffs[0] and "payload" in diffs[0]
    # a register the session writes before reading it does not show
    assert replay.main([str(session), "--set", "2:velocity_limit=1000"]) == 0


def test_slowed_replay_makes_joints_retransmit_and_says_so(session: Path) -> None:
    """The host's acks are recorded bytes: replayed at half speed they come too late, the joints retransmit."""
    trace = read_trace(session)
    slow = replay.replay_virtual(trace, speed=0.5)
    assert not slow.ok
    retransmitted = [r for r in slow.replayed if isinstance(r.item, Frame) and r.item.flags & FrameFlag.RETRANSMIT]
    assert retransmitted and any("not in the recording" in d for d in slow.comparison.differences)
    assert not any(isinstance(r.item, Frame) and r.item.flags for r in slow.recorded)


def test_truncated_capture_is_replayed_partially_with_a_note(session: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    whole = session.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(whole[: len(whole) * 2 // 3 + 5])
    assert replay.main([str(cut)]) == 0
    out = capsys.readouterr().out
    assert "note: the capture is truncated" in out and "replay: OK" in out
    full, part = replay.replay_virtual(read_trace(session)), replay.replay_virtual(read_trace(cut))
    assert 0 < part.sent_chunks < full.sent_chunks
    assert part.comparison.beyond_end > 0  # answers to the last requests, after the cut: counted, not differences


def test_mid_stream_capture_ignores_sequence_numbers(session: Path, tmp_path: Path) -> None:
    trace = read_trace(session)
    path = tmp_path / "mid.pcapng"
    with TraceWriter(path, trace.metadata) as w:
        for iface, t, data in trace.chunks():
            itf = trace.interfaces[iface]
            if t > 10_000_000:  # after the handshakes and the enumeration
                w(itf.link, itf.direction, t, data)
    result = replay.replay_virtual(read_trace(path))
    assert any("mid-stream" in n for n in result.notes)


def test_bad_inputs_exit_2(session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay.main([str(tmp_path / "missing.pcapng")]) == 2
    assert replay.main([str(session), "--link", "nowhere"]) == 2
    assert replay.main([str(session), "--set", "1:no_such_register=1"]) == 2
    assert replay.main([str(session), "--tolerance", "colour=3"]) == 2
    assert replay.main([str(session), "--to", "/dev/no-such-port"]) == 3
    nometa = tmp_path / "nometa.pcapng"
    trace = read_trace(session)
    with TraceWriter(nometa) as w:
        for iface, t, data in trace.chunks():
            w(trace.interfaces[iface].link, trace.interfaces[iface].direction, t, data)
    err = capsys.readouterr().err
    assert "no such file" in err and "nowhere" in err and "no_such_register" in err
    assert err.count("error:") == 5
    assert replay.main([str(nometa)]) == 0  # the joint count comes from the capture's ENUMERATE_REPLY
    assert "from its ENUMERATE_REPLY" in "".join(capsys.readouterr())


def _state_row(position: int, t: int = 0) -> object:
    pkt = make_packet(State(0, position, 0, 0, 250, 12_000), 1, 0, 5)
    return make_row(t, Frame(FrameKind.DATA, 1, 0, pkt))


def test_compare_tolerates_measured_values_and_nonces() -> None:
    a = [_state_row(1000), make_row(0, Frame(FrameKind.RESET, 17, 0, None))]
    near = [_state_row(1000 + 19_999), make_row(0, Frame(FrameKind.RESET, 99, 0, None))]
    far = [_state_row(1000 + 20_001), make_row(0, Frame(FrameKind.RESET, 99, 0, None))]
    assert compare(a, near).differences == []  # type: ignore[arg-type]
    diffs = compare(a, far).differences  # type: ignore[arg-type]
    assert len(diffs) == 1 and "present_position" in diffs[0] and "tolerance 20000" in diffs[0]
    assert compare(a, far, Tolerances(present_position=30_000)).differences == []  # type: ignore[arg-type]


def _cycle_row(position: int, age_us: int, goal_result: int = 0) -> object:
    data = struct.pack("<iih", position, 0, 0)
    reply = CycleReply(0x38, 10, (CycleRecord(2, 1, goal_result, age_us, data), CycleRecord(1, 1, 0, 5, data)))
    return make_row(0, Frame(FrameKind.DATA, 1, 0, make_packet(reply, 1, 0, 9)))


def test_compare_cycle_replies_masks_ages_and_measured_values_not_outcomes() -> None:
    a = [_cycle_row(1000, 120)]
    assert compare(a, [_cycle_row(1500, 870)]).differences == []  # type: ignore[arg-type]
    far = compare(a, [_cycle_row(1000 + 20_001, 120)]).differences  # type: ignore[arg-type]
    assert len(far) == 1 and "j1/present_position" in far[0] and "j2/present_position" in far[0]
    assert compare(a, [_cycle_row(1000, 120, goal_result=7)]).differences  # type: ignore[arg-type]


def test_compare_aligns_around_a_missing_frame() -> None:
    frames = [encode_control(FrameKind.ACK, i) for i in range(6)]
    rec, _ = decode_rows([(i, f) for i, f in enumerate(frames)])
    rep, _ = decode_rows([(i, f) for i, f in enumerate(frames[:2] + frames[3:] + [b"zz\x00"])])
    c = compare(rec, rep)
    assert c.matched == 5 and len(c.differences) == 2
    assert "missing" in c.differences[0] and "#2" in c.differences[0]
    assert "not in the recording" in c.differences[1]
    assert isinstance(rep[-1].item, LineError) and rep[-1].item.kind == LineErrorKind.COBS
    assert compare(rec, rep, end_ns=4).beyond_end == 1


@pytest.mark.realtime
def test_replay_to_a_real_time_port_reports_timing(session: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"armbus://?joints={JOINTS}&seed={SEED}"
    code = replay.main([str(session), "--to", url, "--settle", "100ms"])
    out = capsys.readouterr().out
    assert code in (0, 1), out  # a running arm differs from a simulated boot (its own RESET is not replayed)
    line = next(x for x in out.splitlines() if x.startswith("send timing error"))
    p99_us = float(line.split("p99 ")[1].split()[0])
    assert 0 <= p99_us < 50_000  # absolute deadlines: tens of us normally, tolerant of a loaded machine
    assert "ENUMERATE_REPLY" not in "".join(x for x in out.splitlines() if "missing" in x)
