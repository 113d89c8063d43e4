"""The hand-written codec is byte-identical to the construct declaration in armbus.bus.layout, both directions."""

from __future__ import annotations

import pytest
from cobs import cobs
from codec_strategies import control_frames, data_frames, fields_of, message_strategy, messages
from construct import ConstructError
from hypothesis import given, settings
from hypothesis import strategies as st

from armbus.bus import layout
from armbus.bus.codec import Frame, LineError, classify_chunk, decode_wire, encode_frame
from armbus.bus.crc import crc16
from armbus.bus.deframer import Deframer
from armbus.bus.errors import DecodeError
from armbus.bus.messages import Message, decode_payload, make_packet
from armbus.bus.wire import MAX_PAYLOAD, MsgType


@pytest.mark.parametrize("msg_type", list(MsgType), ids=lambda t: t.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_payload_build_and_parse_match_construct(msg_type: MsgType, data: st.DataObject) -> None:
    msg: Message = data.draw(message_strategy(msg_type))
    packed = msg.pack()
    assert packed == layout.build_payload(msg_type, fields_of(msg))  # build: same bytes
    assert layout.parse_payload(msg_type, packed) == fields_of(msg)  # parse: same fields
    assert decode_payload(msg_type, layout.build_payload(msg_type, fields_of(msg))) == msg


@pytest.mark.parametrize("msg_type", list(MsgType), ids=lambda t: t.name)
@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=40))
def test_payload_acceptance_matches_construct(msg_type: MsgType, payload: bytes) -> None:
    """On arbitrary bytes both decoders accept the same payloads, with the same fields, and reject the rest."""
    try:
        expected = layout.parse_payload(msg_type, payload)
    except ConstructError:
        with pytest.raises(DecodeError):
            decode_payload(msg_type, payload)
        return
    assert fields_of(decode_payload(msg_type, payload)) == expected


@settings(max_examples=300, deadline=None)
@given(frame=st.one_of(data_frames, control_frames))
def test_frame_build_and_parse_match_construct(frame: Frame) -> None:
    wire = encode_frame(frame)
    assert wire == layout.build_frame(frame)
    assert layout.decode_chunk(wire[:-1]) == decode_wire(wire) == frame
    assert layout.WIRE.parse(wire).crc == crc16(wire and cobs.decode(wire[:-1])[:-2])


@settings(max_examples=100, deadline=None)
@given(msg=messages, src=st.integers(0, 255), dst=st.integers(0, 255), msg_id=st.integers(0, 0xFFFF))
def test_message_frames_match_construct(msg: Message, src: int, dst: int, msg_id: int) -> None:
    frame = Frame(0, msg_id & 0xFF, 0, make_packet(msg, src, dst, msg_id))
    assert encode_frame(frame) == layout.build_frame(frame)


def _mangled_chunks() -> st.SearchStrategy[bytes]:
    """Chunks near the valid set: right CRC mostly, header bytes pushed to interesting values."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        raw = bytearray(draw(st.binary(max_size=30)))
        n = len(raw)
        if n and draw(st.booleans()):
            raw[0] = draw(st.sampled_from([0x10, 0x11, 0x12, 0x13, 0x14, 0x1F, 0x20, 0x00]))
        if n >= 6 and draw(st.booleans()):
            raw[5] = draw(st.sampled_from([0x01, 0x07, 0x40, 0x86, 0x00, 0x7F, 0xFF]))
        if n >= 12 and draw(st.booleans()):
            raw[9] = draw(st.sampled_from([n - 12, n - 11, max(n - 13, 0), 255]))
        if n >= 3 and draw(st.integers(0, 9)):
            raw[-2:] = crc16(bytes(raw[:-2])).to_bytes(2, "big")
        return cobs.encode(bytes(raw)) if draw(st.integers(0, 4)) else bytes(raw).replace(b"\x00", b"\x01")

    return build()


@settings(max_examples=800, deadline=None)
@given(chunk=_mangled_chunks())
def test_error_kinds_match_the_construct_reference(chunk: bytes) -> None:
    """The fast classifier, the deframer and the construct reference agree on every chunk, good or bad."""
    expected = layout.decode_chunk(chunk)
    assert classify_chunk(chunk) == expected
    assert Deframer().feed(chunk + b"\x00") == ([expected] if chunk else [])  # an empty chunk is idle fill
    if isinstance(expected, LineError):
        with pytest.raises(DecodeError) as exc:
            decode_wire(chunk)
        assert exc.value.kind == expected.kind
    else:
        assert decode_wire(chunk) == expected


def test_oversize_chunk_is_one_error_in_every_decoder() -> None:
    chunk = b"\x01" * (MAX_PAYLOAD + 20)
    assert layout.decode_chunk(chunk) == classify_chunk(chunk) == Deframer().feed(chunk + b"\x00")[0]
