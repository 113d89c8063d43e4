"""pcapng writer/reader: round trip, truncation at every byte, files from other tools, bad inputs."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest

from armbus.bus.codec import Packet, encode_control, encode_data
from armbus.bus.errors import TraceError, UsageError
from armbus.bus.wire import FrameKind, MsgType
from armbus.hil.trace.pcapng import (
    BT_IDB,
    IF_NAME,
    IF_TSOFFSET,
    IF_TSRESOL,
    LINKTYPE_ARMBUS,
    MAX_T_NS,
    TraceFileError,
    TraceWriter,
    _block,
    _options,
    epb_block,
    idb_block,
    shb_block,
)
from armbus.hil.trace.reader import parse_trace, read_trace


def _chunks(seed: int, n: int) -> list[tuple[str, str, int, bytes]]:
    rng = random.Random(seed)
    t = 0
    out = []
    for _ in range(n):
        t += rng.randrange(1, 1 << 40)  # pushes timestamps past 2**32 ns: both halves of the EPB time matter
        link = rng.choice(["host-j1", "j1-j2"])
        direction = rng.choice(["down", "up"])
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        out.append((link, direction, t, data))
    return out


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_round_trip_keeps_bytes_times_interfaces_and_metadata(tmp_path: Path, byte_order: str) -> None:
    chunks = _chunks(1, 200)
    path = tmp_path / "t.pcapng"
    with TraceWriter(path, {"baud": 1_000_000, "joints": 6, "seed": 42}, byte_order=byte_order) as w:
        for c in chunks:
            w(*c)
    trace = read_trace(path)
    assert not trace.truncated and trace.warnings == []
    assert trace.metadata == {"version": "1", "baud": "1000000", "joints": "6", "seed": "42"}
    assert trace.userappl == "armbus trace writer"
    names = [i.name for i in trace.interfaces]
    assert len(names) == len(set(names)) == len({(c[0], c[1]) for c in chunks})
    got = [(trace.interfaces[i].link, trace.interfaces[i].direction, t, d) for i, t, d in trace.chunks()]
    assert got == chunks
    assert all(i.link_type == LINKTYPE_ARMBUS and i.armbus for i in trace.interfaces)


def test_killed_writer_every_cut_of_the_last_block_is_reported_never_raised(tmp_path: Path) -> None:
    chunks = _chunks(2, 5)
    path = tmp_path / "t.pcapng"
    with TraceWriter(path) as w:
        for c in chunks[:-1]:
            w(*c)
        before = path.stat().st_size
        w(*chunks[-1])
    whole = path.read_bytes()
    assert len(whole) > before
    for cut in range(before, len(whole) + 1):
        trace = parse_trace(whole[:cut], "cut")
        complete = cut in (before, len(whole))
        assert trace.truncated is (not complete), cut
        assert any("truncated" in w for w in trace.warnings) is (not complete)
        expected = chunks if cut == len(whole) else chunks[:-1]
        assert [d for _, _, d in trace.chunks()] == [c[3] for c in expected]


def test_cut_inside_the_section_header_is_a_clear_error() -> None:
    whole = shb_block({"a": 1}, "x")
    for cut in range(1, len(whole)):
        try:
            trace = parse_trace(whole[:cut])
        except TraceFileError as exc:
            assert "truncated" in str(exc) or "not a pcapng" in str(exc)
        else:
            assert trace.truncated and trace.interfaces == []


def test_ethernet_capture_from_another_tool_is_named_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "eth.pcapng"
    path.write_bytes(shb_block({}, "tcpdump") + idb_block("eth0", link_type=1, tsresol=6)
                     + epb_block(0, 1_700_000_000_000_000, b"\xff" * 60))
    trace = read_trace(path)
    assert len(trace) == 0 and trace.skipped_packets == 1
    assert "ETHERNET" in trace.warnings[0]
    with pytest.raises(TraceFileError, match=r"not an armbus trace.*ETHERNET") as info:
        trace.require_armbus()
    assert info.value.partial is trace


def test_mixed_file_keeps_armbus_interfaces_and_scales_other_resolutions() -> None:
    frame = encode_control(FrameKind.ACK, 3)
    buf = (shb_block({}, "x") + idb_block("eth0", link_type=1) + idb_block("l:up", tsresol=6)
           + epb_block(0, 5, b"\x00" * 14) + epb_block(1, 7, frame))
    trace = parse_trace(buf)
    trace.require_armbus()
    assert list(trace.chunks()) == [(1, 7000, frame)]  # microsecond units converted to ns
    assert trace.skipped_packets == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"\xd4\xc3\xb2\xa1" + bytes(20), "classic pcap"),
        (b"hello world, this is text\n", "not a pcapng"),
        (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x99\x99\x99\x99" + bytes(16), "byte-order magic"),
    ],
)
def test_non_pcapng_inputs_raise_trace_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=message):
        read_trace(path)


def test_wrong_paths_raise_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file"):
        read_trace(tmp_path / "missing.pcapng")
    with pytest.raises(TraceError, match="directory"):
        read_trace(tmp_path)
    with pytest.raises(TraceError, match="cannot create"):
        TraceWriter(tmp_path / "no" / "such" / "dir.pcapng")


def test_corrupt_middle_block_stops_with_a_warning() -> None:
    good = shb_block({}, "x") + idb_block("l:down") + epb_block(0, 1, b"\x01\x02")
    bad = bytearray(epb_block(0, 2, b"\x03"))
    bad[-1] ^= 0xFF  # trailing length differs from the header's
    trace = parse_trace(good + bytes(bad) + epb_block(0, 3, b"\x04"))
    assert [d for _, _, d in trace.chunks()] == [b"\x01\x02"]
    assert any("corrupt" in w for w in trace.warnings)


def test_bad_metadata_key_and_timestamp_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="metadata key"):
        TraceWriter(tmp_path / "a", {"bad key=": 1})
    with TraceWriter(tmp_path / "b") as w, pytest.raises(UsageError, match="timestamp"):
        w("l", "down", -1, b"x")
    with TraceWriter(tmp_path / "c") as w, pytest.raises(UsageError, match="timestamp"):
        w("l", "down", MAX_T_NS + 1, b"x")


def _idb_with(name: str, tsresol: int, tsoffset_s: int) -> bytes:
    opts = [(IF_NAME, name.encode()), (IF_TSRESOL, bytes([tsresol])), (IF_TSOFFSET, struct.pack("<q", tsoffset_s))]
    return _block("<", BT_IDB, struct.pack("<HHI", LINKTYPE_ARMBUS, 0, 0) + _options("<", opts))


def _epb_raw(iface: int, ts: int, data: bytes) -> bytes:
    """An EPB with any raw 64-bit timestamp (the writer only takes times it can read back)."""
    body = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data
    return _block("<", 6, body + b"\x00" * (-len(data) % 4))


def test_times_outside_int64_ns_are_skipped_and_counted_not_raised() -> None:
    """Scaled times that do not fit 0..2**63-1 ns are dropped with one counted warning; the rest keep exact times."""
    big_offset = MAX_T_NS // 1_000_000_000  # seconds: only tiny timestamps still fit after the shift
    buf = (shb_block({}, "x")
           + _idb_with("ns:down", 9, big_offset) + _idb_with("us:down", 6, 0) + _idb_with("neg:down", 9, -1))
    chunks = [
        (0, 5, b"\x01"),  # big_offset s + 5 ns: fits
        (0, 2**40, b"\x02"),  # beyond 2**63-1 ns
        (1, 2**64 - 1, b"\x03"),  # microseconds: * 1000 overflows
        (1, 7, b"\x04"),  # 7000 ns
        (2, 2 * 10**9, b"\x05"),  # 2 s - 1 s = 1 s
        (2, 10, b"\x06"),  # 10 ns - 1 s: negative
        (0, 2**63 + 1, b"\x07"),
    ]
    trace = parse_trace(buf + b"".join(_epb_raw(*c) for c in chunks))
    assert list(trace.chunks()) == [(0, big_offset * 10**9 + 5, b"\x01"), (1, 7000, b"\x04"),
                                    (2, 10**9, b"\x05")]
    assert trace.out_of_range_times == 4
    assert [w for w in trace.warnings if "outside 0..2**63-1" in w] == [trace.warnings[0]]
    assert trace.warnings[0].startswith("4 packet block(s)")
    assert not trace.truncated


def test_chunk_columns_are_numpy_and_sorted_like_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.pcapng"
    frame = encode_data(0, 0, Packet(0, 1, MsgType.PING, 1))
    with TraceWriter(path) as w:
        for i in range(10):
            w("l", "down", i * 1000, frame)
    trace = read_trace(path)
    assert trace.chunk_t_ns.dtype == np.int64
    assert trace.chunk_t_ns.tolist() == [i * 1000 for i in range(10)]
    assert (trace.chunk_len == len(frame)).all()
    assert struct.unpack_from("<I", trace.buffer, int(trace.chunk_off[0]) - 4)[0] == len(frame)


def test_kernel_direction_enum_is_named_by_its_label(tmp_path: Path) -> None:
    from armbus.hil.wire import Direction

    path = tmp_path / "k.pcapng"
    with TraceWriter(path) as w:
        w("host-j1", Direction.A_TO_B, 5, b"\x01\x00")
        w("host-j1", Direction.B_TO_A, 6, b"\x02\x00")
        w("host-j1", Direction.A_TO_B, 7, b"\x03\x00")
    trace = read_trace(path)
    assert [(i.link, i.direction) for i in trace.interfaces] == [("host-j1", "a>b"), ("host-j1", "b>a")]
    assert [i for i, _, _ in trace.chunks()] == [0, 1, 0]
