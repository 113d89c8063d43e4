"""The columnar trace decoder gives the same FrameTable as the Deframer-based reference, on every kind of capture."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from trace_sessions import record_session

from armbus.bus.codec import Packet, encode_control, encode_data
from armbus.bus.wire import FrameKind, MsgType
from armbus.hil.trace.decode import COLUMNS, FrameTable, decode_trace
from armbus.hil.trace.pcapng import epb_block, idb_block, shb_block
from armbus.hil.trace.reader import parse_trace, read_trace
from armbus.hil.trace.reference import decode_trace_reference
from armbus.tools.gen.replicate import MSG_ID_STRIDE, distinct_pieces, replicate
from armbus.tools.gen.synthetic import generate


def assert_same(a: FrameTable, b: FrameTable) -> None:
    for name in COLUMNS:
        if name != "payload_index":  # an index into each table's own payload store
            assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    assert [a.payloads[i] for i in a.payload_index[a.payload_index >= 0].tolist()] == \
        [b.payloads[i] for i in b.payload_index[b.payload_index >= 0].tolist()]
    assert a.leftover == b.leftover


def _frames(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            pkt = Packet(rng.randrange(7), rng.randrange(7), rng.choice([int(t) for t in MsgType]),
                         rng.randrange(65536), 32, rng.randbytes(rng.choice([0, 5, 60, 250])))
            out.append(encode_data(rng.randrange(256), rng.choice([0, 1]), pkt))
        elif r < 0.8:
            out.append(encode_control(FrameKind.ACK, rng.randrange(256)))
        elif r < 0.9:
            out.append(rng.randbytes(rng.randrange(1, 12)) + b"\x00")  # noise
        else:
            out.append(b"\x01" * rng.randrange(250, 400) + b"\x00")  # oversize piece
    return out


def _mixed_capture(seed: int, byte_order: str = "<") -> bytes:
    """Interfaces 0 and 2 deliver whole frames; interface 1 cuts frames anywhere (chunks interleaved in file
    order, equal times between interfaces, empty chunks, an unfinished frame at the end of interface 1)."""
    rng = random.Random(seed)
    blocks = [shb_block({"joints": 2}, "test", byte_order=byte_order)]
    blocks += [idb_block(name, byte_order=byte_order) for name in ("host-j1:a>b", "host-j1:b>a", "j1-j2:a>b")]
    cut_stream = b"".join(_frames(rng, 200)) + encode_data(3, 0, Packet(0, 1, MsgType.PING, 9))[:6]
    pos, t = 0, 0
    whole = {0: iter(_frames(rng, 200)), 2: iter(_frames(rng, 200))}
    while pos < len(cut_stream) or whole:
        t += rng.choice([0, 0, 1000])  # ties between interfaces on purpose
        iface = rng.choice([0, 1, 1, 2]) if whole else 1
        if iface == 1:
            n = rng.randrange(0, 40)
            blocks.append(epb_block(1, t, cut_stream[pos:pos + n], byte_order))  # n == 0: an empty chunk
            pos += n
            if pos >= len(cut_stream) and not whole:
                break
        elif iface in whole:
            frame = next(whole[iface], None)
            if frame is None:
                del whole[iface]
            else:
                blocks.append(epb_block(iface, t, frame, byte_order))
    return b"".join(blocks)


@pytest.mark.parametrize(("seed", "byte_order"), [(1, "<"), (2, "<"), (3, ">")])
def test_mixed_whole_and_cut_interfaces(seed: int, byte_order: str) -> None:
    trace = parse_trace(_mixed_capture(seed, byte_order))
    fast, ref = decode_trace(trace), decode_trace_reference(trace)
    assert_same(fast, ref)
    assert 1 in fast.leftover and len(fast) > 500
    assert (fast.kind == -1).any() and (fast.kind == FrameKind.DATA).any()


def test_recorded_session(tmp_path: Path) -> None:
    record_session(tmp_path / "s.pcapng")
    trace = read_trace(tmp_path / "s.pcapng")
    assert_same(decode_trace(trace), decode_trace_reference(trace))


def test_large_synthetic_capture_with_split_frames_and_noise(tmp_path: Path) -> None:
    generate(str(tmp_path / "big.pcapng"), 1_500_000, seed=4)
    trace = read_trace(tmp_path / "big.pcapng")
    fast = decode_trace(trace)
    assert_same(fast, decode_trace_reference(trace))
    assert len(fast) > 25_000 and (fast.kind == -1).sum() > 5


def test_replicated_session_keeps_the_traffic_and_moves_msg_ids(tmp_path: Path) -> None:
    record_session(tmp_path / "s.pcapng")
    size, k = replicate(tmp_path / "s.pcapng", tmp_path / "r.pcapng", 20_000)
    assert k >= 4 and size >= 20_000
    one, many = read_trace(tmp_path / "s.pcapng"), read_trace(tmp_path / "r.pcapng")
    assert len(many) == k * len(one)
    assert np.all(np.diff(many.chunk_t_ns) >= 0)
    t1, tk = decode_trace(one), decode_trace(many)
    assert_same(tk, decode_trace_reference(many))
    n = len(t1)
    assert tk.kind[n:2 * n].tolist() == t1.kind.tolist() and tk.type[n:2 * n].tolist() == t1.type.tolist()
    data = t1.kind == FrameKind.DATA
    assert (tk.msg_id[n:2 * n][data] == (t1.msg_id[data] + MSG_ID_STRIDE) % 65536).all()
    pieces, distinct = distinct_pieces(many)
    assert distinct > pieces // 3  # DATA frames do not repeat across replicas; ACKs do
