"""armbus.bus.batch: the columnar decoder gives, row for row, what the streaming Deframer gives."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from armbus.bus.batch import LINE_ERROR, Columns, concat, decode_pieces, decode_stream
from armbus.bus.codec import MAX_CHUNK, Frame, LineError, Packet, encode_control, encode_data
from armbus.bus.deframer import Deframer
from armbus.bus.wire import MAX_PAYLOAD, FrameKind, LineErrorKind, MsgType

TYPES = [int(t) for t in MsgType]


def _data(rng: random.Random, payload_max: int = MAX_PAYLOAD) -> bytes:
    pkt = Packet(rng.randrange(256), rng.randrange(256), rng.choice(TYPES), rng.randrange(65536), rng.randrange(256),
                 rng.randbytes(rng.randrange(payload_max + 1)))
    return encode_data(rng.randrange(256), rng.randrange(256), pkt)


def _stream(rng: random.Random, n: int) -> bytes:
    """Frames of every kind, corrupted frames, garbage, idle fill, long pieces, in a random order."""
    parts = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            parts.append(_data(rng, rng.choice([8, 40, MAX_PAYLOAD])))
        elif r < 0.5:
            parts.append(encode_control(rng.randrange(1, 4), rng.randrange(256), rng.choice([0, 0, 0, 1, 0x80])))
        elif r < 0.7:  # one flipped bit: CRC, COBS, LENGTH ... whatever it hits
            f = bytearray(_data(rng, 30))
            f[rng.randrange(len(f) - 1)] ^= 1 << rng.randrange(8)
            parts.append(bytes(f))
        elif r < 0.8:
            parts.append(b"\x00" * rng.randrange(1, 4))  # idle fill
        elif r < 0.9:
            parts.append(rng.randbytes(rng.randrange(1, 20)))  # noise, zeros included
        else:
            parts.append(bytes(rng.randrange(1, 256) for _ in range(rng.randrange(250, 600))))  # oversize
    return b"".join(parts)


def _check(data: bytes) -> None:
    d = Deframer()
    expected = d.feed(data)
    res = decode_stream(data)
    assert res.columns.items() == expected
    assert res.buffered == d.buffered
    ends = res.ends.tolist()
    assert len(ends) == len(expected) and ends == sorted(set(ends))
    tail_oversize = len(data.rpartition(b"\x00")[2]) > MAX_CHUNK
    assert all(data[e] == 0 for e in ends[:len(ends) - tail_oversize])


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 60))
def test_decode_stream_equals_one_deframer_feed(seed: int, n: int) -> None:
    _check(_stream(random.Random(seed), n))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=800))
def test_decode_stream_equals_the_deframer_on_any_bytes(data: bytes) -> None:
    _check(data)


def test_every_line_error_kind_and_an_unfinished_tail() -> None:
    rng = random.Random(3)
    data = _stream(rng, 400) + b"\x00" + encode_data(1, 0, Packet(0, 1, MsgType.PING, 2))[:7]
    res = decode_stream(data)
    kinds = {LineErrorKind(int(k)) for k in res.columns.error[res.columns.kind == LINE_ERROR].tolist()}
    assert {LineErrorKind.CRC, LineErrorKind.COBS, LineErrorKind.OVERSIZE} <= kinds
    assert res.buffered == 7
    _check(data)


def test_trailing_oversize_piece_is_one_error_and_nothing_is_held() -> None:
    data = encode_control(FrameKind.ACK, 4) + b"\x01" * 400
    res = decode_stream(data)
    assert res.columns.items() == [Frame(FrameKind.ACK, 4, 0, None), LineError(LineErrorKind.OVERSIZE, 270)]
    assert res.buffered == 0 and res.ends.tolist()[-1] == len(data) - 1


def test_payloads_are_sliced_from_the_bodies_and_survive_take_and_concat() -> None:
    rng = random.Random(5)
    wires = [_data(rng) for _ in range(50)]
    pieces = [w[:-1] for w in wires]
    cols = decode_pieces(pieces)
    assert cols.items() == [Deframer().feed(w)[0] for w in wires]
    assert [cols.payload(i) for i in range(len(cols))] == [w.packet.payload for w in cols.items()]  # type: ignore[union-attr]
    rows = np.asarray([7, 3, 3, 0])
    assert cols.take(rows).items() == [cols.items()[i] for i in rows.tolist()]
    both = concat([cols.take(rows), Columns.empty(0), cols])
    assert both.items() == [cols.items()[i] for i in rows.tolist()] + cols.items()
    assert decode_pieces(pieces, np.asarray([len(p) for p in pieces])).items() == cols.items()
