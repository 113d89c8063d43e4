"""Trace decoding: frames and line errors per link direction, times, filters and rendering."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from armbus.bus.codec import Frame, LineError, Packet, encode_control, encode_data
from armbus.bus.deframer import Deframer
from armbus.bus.messages import Read, SetGoal, State, make_packet
from armbus.bus.wire import FrameFlag, FrameKind, LineErrorKind, MsgType
from armbus.hil.trace.decode import LINE_ERROR, FrameTable, decode_file, decode_trace, main, parse_time, record, select
from armbus.hil.trace.pcapng import TraceWriter
from armbus.hil.trace.reader import read_trace

READ = encode_data(0, 0, make_packet(Read(0x10, 4), 0, 2, 100))
ACK0 = encode_control(FrameKind.ACK, 0)
STATE = encode_data(5, FrameFlag.RETRANSMIT, make_packet(State(1, -2, 3, -4, 250, 12000), 2, 0, 7))


def _write(path: Path, chunks: list[tuple[str, str, int, bytes]]) -> Path:
    with TraceWriter(path, {"joints": 2}) as w:
        for c in chunks:
            w(*c)
    return path


def test_garbage_between_frames_is_counted_and_the_frames_survive(tmp_path: Path) -> None:
    path = _write(tmp_path / "g.pcapng", [
        ("host-j1", "down", 1000, READ[:5]),  # a frame split over two chunks: its time is the second chunk's
        ("host-j1", "down", 2000, READ[5:] + b"\x13\x37noise\x00" + STATE),
        ("host-j1", "up", 3000, ACK0),
        ("host-j1", "down", 4000, b"\x00\x00\xff\xfe" + b"\x00"),  # idle fill, then a garbage piece
        ("host-j1", "down", 5000, STATE[:3]),  # unfinished at the end of the trace
    ])
    table = decode_file(str(path))
    recs = [record(table, i) for i in range(len(table))]
    kinds = [(r["t_ns"], r["dir"], r["kind"], r.get("type"), r.get("error")) for r in recs]
    assert kinds == [
        (2000, "down", "DATA", "READ", None),
        (2000, "down", "LINE_ERROR", None, recs[1]["error"]),
        (2000, "down", "DATA", "STATE", None),
        (3000, "up", "ACK", None, None),
        (4000, "down", "LINE_ERROR", None, recs[4]["error"]),
    ]
    assert recs[1]["error"] in {k.name for k in LineErrorKind}
    assert recs[0]["fields"] == {"reg": 0x10, "length": 4}
    assert recs[2]["fields"]["position"] == -2 and recs[2]["retransmit"] is True
    assert table.leftover == {0: 3}


@pytest.mark.parametrize("seed", range(5))
def test_same_result_as_feeding_a_deframer_chunk_by_chunk(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    wire = b""
    for i in range(300):
        r = rng.random()
        if r < 0.4:
            wire += encode_data(i % 256, rng.choice([0, 1]),
                                Packet(rng.randrange(3), rng.randrange(3), MsgType.SET_GOAL, i, 32,
                                       SetGoal(1, rng.randrange(-1000, 1000)).pack()))
        elif r < 0.8:
            wire += encode_control(FrameKind.ACK, i % 256)
        elif r < 0.9:
            wire += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30)))
        else:
            wire += bytes(rng.randrange(1, 256) for _ in range(rng.randrange(250, 600)))  # oversize runs
    chunks, pos, t = [], 0, 0
    while pos < len(wire):
        n = rng.randrange(1, 80)
        t += rng.randrange(1, 10_000)
        chunks.append(("l", "down", t, wire[pos:pos + n]))
        pos += n
    table = decode_file(str(_write(tmp_path / "r.pcapng", chunks)))
    d = Deframer()
    expected: list[tuple[int, Frame | LineError]] = []
    for _, _, t, data in chunks:
        expected.extend((t, item) for item in d.feed(data))
    got: list[tuple[int, Frame | LineError]] = []
    for i in range(len(table)):
        if table.kind[i] == LINE_ERROR:
            got.append((int(table.t_ns[i]), LineError(LineErrorKind(int(table.error[i])), int(table.size[i]))))
        elif table.kind[i] == FrameKind.DATA:
            src, dst, typ, mid, ttl = (int(c[i]) for c in (table.src, table.dst, table.type, table.msg_id,
                                                            table.ttl))
            p = Packet(src, dst, typ, mid, ttl, table.payloads[int(table.payload_index[i])])
            got.append((int(table.t_ns[i]), Frame(0, int(table.seq[i]), int(table.flags[i]), p)))
        else:
            got.append((int(table.t_ns[i]), Frame(int(table.kind[i]), int(table.seq[i]), int(table.flags[i]))))
    # Fed chunk by chunk, an oversize run is reported when the buffer overflows (a chunk before the run ends,
    # with the size seen so far); the trace reports it at its delimiter with its whole size. All else is equal.
    def norm(items: list[tuple[int, Frame | LineError]]) -> list[object]:
        return [(None, it.kind) if isinstance(it, LineError) and it.kind == LineErrorKind.OVERSIZE else (t, it)
                for t, it in items]

    assert norm(got) == norm(expected)
    assert any(isinstance(it, LineError) and it.kind == LineErrorKind.OVERSIZE for _, it in got)


def _table(tmp_path: Path) -> FrameTable:
    return decode_file(str(_write(tmp_path / "f.pcapng", [
        ("host-j1", "down", 1_000, READ),
        ("host-j1", "up", 2_000, ACK0),
        ("j1-j2", "up", 3_000_000, STATE),
        ("host-j1", "up", 4_000_000, STATE),
        ("host-j1", "down", 5_000_000, b"junk\x00"),
    ])))


def test_filters_by_joint_type_link_and_time(tmp_path: Path) -> None:
    table = _table(tmp_path)
    assert select(table, joint=2).tolist() == [0, 2, 3]
    assert select(table, joint=1).tolist() == []
    assert select(table, types=["state"]).tolist() == [2, 3]
    assert select(table, types=["ack,line-error"]).tolist() == [1, 4]
    assert select(table, links=["j1-j2"]).tolist() == [2]
    assert select(table, links=["host-j1:up"]).tolist() == [1, 3]
    assert select(table, t_from=parse_time("2us"), t_to=parse_time("4ms")).tolist() == [1, 2]


def test_parse_time_units() -> None:
    assert [parse_time(t) for t in ("1.5", "250ms", "10us", "42ns", "2s")] == [
        1_500_000_000, 250_000_000, 10_000, 42, 2_000_000_000]


def test_main_prints_json_lines_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "m.pcapng", [("host-j1", "down", 1_000, READ), ("host-j1", "up", 2_000, ACK0)])
    assert main([str(path), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["kind"] for x in lines] == ["DATA", "ACK"] and lines[0]["msg_id"] == 100
    assert main([str(path), "--type", "READ"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("#") and len(out) == 2 and "READ" in out[1] and "reg=16" in out[1]


@pytest.mark.parametrize("args", [["--type", "BOGUS"], ["--from", "soon"], ["--link", "nowhere"]])
def test_main_bad_options_exit_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    args: list[str]) -> None:
    path = _write(tmp_path / "m.pcapng", [("host-j1", "down", 1_000, READ)])
    assert main([str(path), *args]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_main_on_missing_and_foreign_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.pcapng")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("hello")
    assert main([str(tmp_path / "x.txt")]) == 2
    assert "not a pcapng" in capsys.readouterr().err


def test_bad_payload_is_shown_not_raised(tmp_path: Path) -> None:
    bad = encode_data(0, 0, Packet(1, 0, MsgType.STATE, 3, 32, b"\x01\x02"))  # STATE needs 15 bytes
    table = decode_trace(read_trace(_write(tmp_path / "b.pcapng", [("l", "up", 1, bad)])))
    rec = record(table, 0)
    assert rec["type"] == "STATE" and "payload_error" in rec and rec["payload"] == "0102"
    assert np.all(table.error == 0)


def test_reference_falls_back_to_chunk_feeding_when_piece_count_disagrees(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from armbus.hil.trace.reference import decode_trace_reference

    chunks = [("l", "down", 10 * i, frame) for i, frame in enumerate([READ, ACK0, b"xx\x00", STATE] * 5)]
    path = _write(tmp_path / "f.pcapng", chunks)
    normal = decode_trace_reference(read_trace(path))

    class ExtraItem(Deframer):  # a deframer whose rules no longer give one item per piece on big inputs
        def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | LineError]:
            out = super().feed(data)
            return [*out, LineError(LineErrorKind.KIND, 1)] if len(data) > 100 else out

    monkeypatch.setattr("armbus.hil.trace.reference.Deframer", ExtraItem)
    fallback = decode_trace_reference(read_trace(path))
    assert len(fallback) == len(normal) == 20
    for col in ("t_ns", "kind", "seq", "type", "msg_id", "error"):
        assert getattr(fallback, col).tolist() == getattr(normal, col).tolist()
