"""Round trips and error kinds of the hot-path codec and the streaming deframer."""

from __future__ import annotations

import pytest
from cobs import cobs

from armbus.bus.codec import Frame, LineError, Packet, decode_frame, decode_wire, encode_control, encode_data
from armbus.bus.deframer import Deframer
from armbus.bus.errors import DecodeError, EncodeError
from armbus.bus.wire import MAX_ENCODED, FrameKind, LineErrorKind, MsgType


def _frames() -> list[bytes]:
    return [
        encode_data(1, 0, Packet(0, 1, MsgType.PING, 7, 32, b"")),
        encode_control(FrameKind.ACK, 1),
        encode_data(2, 1, Packet(3, 0, MsgType.STATE, 0xFFFF, 1, bytes(range(15)))),
        encode_data(3, 0, Packet(0, 255, MsgType.SYNC_WRITE, 9, 32, bytes(255))),
        encode_control(FrameKind.RESET, 0x5A),
    ]


def test_round_trip_data_and_control() -> None:
    p = Packet(0, 1, MsgType.PING, 7, 32, b"abc")
    assert decode_wire(encode_data(3, 0, p)) == Frame(FrameKind.DATA, 3, 0, p)
    assert decode_wire(encode_control(FrameKind.ACK, 3)) == Frame(FrameKind.ACK, 3, 0, None)


def test_encode_names_bad_field() -> None:
    with pytest.raises(EncodeError) as exc:
        encode_data(0, 0, Packet(0, 1, MsgType.PING, 70000))
    assert exc.value.field == "msg_id"
    with pytest.raises(EncodeError) as exc:
        encode_data(0, 0, Packet(0, 1, MsgType.PING, 1, 32, bytes(256)))
    assert exc.value.field == "payload"
    with pytest.raises(EncodeError) as exc:
        encode_data(0, 0, Packet(0, 1, 0x77, 1))
    assert exc.value.field == "type"


@pytest.mark.parametrize(
    ("mangle", "kind"),
    [
        (lambda b: cobs.encode(cobs.decode(b)[:-1] + bytes([cobs.decode(b)[-1] ^ 1])), LineErrorKind.CRC),
        (lambda b: b"\x05\x01", LineErrorKind.COBS),
        (lambda b: b"\x03\x11\x01", LineErrorKind.TRUNCATED),
    ],
)
def test_decode_errors(mangle: object, kind: LineErrorKind) -> None:
    wire = encode_data(1, 0, Packet(0, 1, MsgType.PING, 7))[:-1]
    with pytest.raises(DecodeError) as exc:
        decode_frame(mangle(wire))  # type: ignore[operator]
    assert exc.value.kind == kind


@pytest.mark.parametrize("chunk", [1, 2, 7, 1000])
def test_deframer_any_chunking(chunk: int) -> None:
    stream = b"".join(_frames())
    d = Deframer()
    out: list[Frame | LineError] = []
    for i in range(0, len(stream), chunk):
        out += d.feed(stream[i:i + chunk])
    assert out == [decode_wire(f) for f in _frames()]
    assert d.counters.frames == 5 and d.counters.error_total == 0


def test_deframer_resyncs_after_garbage_and_bounds_memory() -> None:
    good = encode_data(1, 0, Packet(0, 1, MsgType.PING, 7))
    d = Deframer()
    out = d.feed(b"\x13\x37garbage\x00" + good)
    assert out[-1] == decode_wire(good)
    assert isinstance(out[0], LineError)
    for _ in range(100):
        out = d.feed(b"\xff" * 100)
        assert d.buffered <= MAX_ENCODED
    assert d.counters.errors[LineErrorKind.OVERSIZE] == 1
    assert d.feed(b"\x00" + good) == [decode_wire(good)]
