"""The streaming deframer: never raises, bounded memory, same result however the input is chunked."""

from __future__ import annotations

from codec_strategies import frames
from hypothesis import given, settings
from hypothesis import strategies as st

from armbus.bus.codec import MAX_CHUNK, Frame, LineError, encode_frame
from armbus.bus.deframer import Deframer
from armbus.bus.layout import decode_chunk
from armbus.bus.wire import MAX_ENCODED, LineErrorKind


def _feed_all(pieces: list[bytes]) -> tuple[list[Frame | LineError], Deframer]:
    d = Deframer()
    out: list[Frame | LineError] = []
    for p in pieces:
        out += d.feed(p)
        assert d.buffered <= MAX_CHUNK < MAX_ENCODED
    return out, d


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _check_invariants(data: bytes, cuts: list[int]) -> list[Frame | LineError]:
    whole, d = _feed_all([data])
    chunked, dc = _feed_all(_split(data, cuts))
    bytewise, db = _feed_all([data[i:i + 1] for i in range(len(data))])
    assert whole == chunked == bytewise
    for item in whole:
        assert isinstance(item, Frame | LineError)
    for x in (d, dc, db):
        assert x.counters.frames == sum(isinstance(i, Frame) for i in whole)
        assert x.counters.error_total == sum(isinstance(i, LineError) for i in whole)
        assert x.counters.bytes == len(data)
    return whole


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=700), cuts=st.lists(st.integers(0, 10_000), max_size=20))
def test_arbitrary_bytes_any_chunking(data: bytes, cuts: list[int]) -> None:
    _check_invariants(data, cuts)


@settings(max_examples=100, deadline=None)
@given(
    parts=st.lists(
        st.one_of(
            frames.map(encode_frame),
            st.binary(max_size=40),
            st.binary(min_size=MAX_ENCODED - 5, max_size=MAX_ENCODED + 40).map(lambda b: b.replace(b"\x00", b"\x01")),
            st.just(b"\x00"),
        ),
        max_size=12,
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_frames_mixed_with_noise(parts: list[bytes], cuts: list[int]) -> None:
    """Frames interleaved with noise, long runs and idle fill: the same items as decoding each chunk alone."""
    data = b"".join(parts)
    got = _check_invariants(data, cuts)
    *complete, tail = data.split(b"\x00")
    expected = [decode_chunk(c) for c in complete if c]
    if len(tail) > MAX_CHUNK:  # an unfinished chunk is reported as soon as it is too long
        expected.append(LineError(LineErrorKind.OVERSIZE, MAX_ENCODED))
    assert got == expected


def test_oversize_is_reported_once_and_then_resyncs() -> None:
    good = encode_frame(Frame(1, 9, 0, None))
    d = Deframer()
    out: list[Frame | LineError] = []
    for _ in range(1000):  # 100 kB without a delimiter
        out += d.feed(b"\x55" * 100)
        assert d.buffered <= MAX_CHUNK
    assert out == [LineError(LineErrorKind.OVERSIZE, MAX_ENCODED)]
    assert d.counters.errors[LineErrorKind.OVERSIZE] == 1
    assert d.feed(b"\x00" + good) == [Frame(1, 9, 0, None)]


def test_largest_chunk_is_accepted_and_one_more_byte_is_oversize() -> None:
    largest = b"\x01" * MAX_CHUNK  # COBS for 268 zero bytes: a legal chunk length, decoded as a long frame
    assert Deframer().feed(largest + b"\x00")[0].kind != LineErrorKind.OVERSIZE
    assert Deframer().feed(largest + b"\x01\x00") == [LineError(LineErrorKind.OVERSIZE, MAX_ENCODED)]


def test_idle_fill_and_reset() -> None:
    d = Deframer()
    assert d.feed(b"\x00\x00\x00") == []
    d.feed(b"\x05\x11")
    assert d.buffered == 2
    d.reset()
    assert d.buffered == 0
    assert d.feed(b"\x00") == []
    assert d.counters.error_total == 0


def test_accepts_bytearray_and_memoryview() -> None:
    wire = encode_frame(Frame(1, 3, 0, None))
    assert Deframer().feed(bytearray(wire)) == Deframer().feed(memoryview(wire)) == [Frame(1, 3, 0, None)]
