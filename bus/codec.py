"""Hot-path frame codec: struct + COBS + CRC, byte-identical to the construct layout in :mod:`bus.layout`.

Theory of operation
-------------------
Two layers live here, both sans-I/O and allocation-light:

* ``encode_data`` / ``encode_control`` turn a :class:`Packet` (network layer) plus a link header into wire bytes:
  header via one precompiled ``struct``, CRC-16 appended big-endian, COBS-encoded, one 0x00 delimiter.
  Out-of-range fields raise :class:`~bus.errors.EncodeError` naming the field (caller misuse).
* ``decode_frame`` turns one delimiter-free COBS chunk back into a :class:`Frame`, or raises
  :class:`~bus.errors.DecodeError` with a :class:`~bus.wire.LineErrorKind`. Checks run in a fixed order so that
  every bad chunk gets exactly one kind: COBS, TRUNCATED, CRC, VERSION, KIND, LENGTH, TYPE.

The streaming receiver (:mod:`bus.deframer`) uses the same checks inlined; it never raises.
``Packet`` and ``Frame`` are NamedTuples: cheap to build and compare, immutable, and they unpack like tuples.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from cobs import cobs

from bus.crc import CRC16_CORE, CRC16_INIT, CRC16_TABLE, crc16
from bus.errors import DecodeError, EncodeError
from bus.wire import (
    CONTROL_FRAME_SIZE,
    DATA_OVERHEAD,
    DEFAULT_TTL,
    KNOWN_TYPES,
    LINK_HEADER_SIZE,
    MAX_PAYLOAD,
    NET_HEADER_SIZE,
    PROTOCOL_VERSION,
    FrameKind,
    LineErrorKind,
)


class Packet(NamedTuple):
    """A network-layer message: travels end to end, hop by hop."""

    src: int
    dst: int
    type: int
    msg_id: int
    ttl: int = DEFAULT_TTL
    payload: bytes = b""


class Frame(NamedTuple):
    """One hop's frame: link header plus, for DATA frames, the packet it carries."""

    kind: int
    seq: int
    flags: int
    packet: Packet | None = None


class LineError(NamedTuple):
    """A receive-side error: counted and reported, never raised by stream receivers."""

    kind: LineErrorKind
    size: int  # size of the offending chunk as received (COBS-encoded, delimiter excluded)


DATA_HEADER = struct.Struct("<BBBBBBHBB")  # ver_kind seq flags | src dst type msg_id ttl length
CONTROL_HEADER = struct.Struct("<BBB")  # ver_kind seq flags
_VER_DATA = PROTOCOL_VERSION << 4 | FrameKind.DATA
_VER = PROTOCOL_VERSION
_HDR_LEN = LINK_HEADER_SIZE + NET_HEADER_SIZE
_MIN_DATA = DATA_OVERHEAD
_cobs_encode = cobs.encode
_cobs_decode = cobs.decode
_CobsError = cobs.DecodeError
_pack_data = DATA_HEADER.pack
_unpack_data = DATA_HEADER.unpack_from
_KNOWN = KNOWN_TYPES
_crc_core = CRC16_CORE
_CRC_INIT = CRC16_INIT
_CRC_TABLE = CRC16_TABLE
_pack_crc = struct.Struct(">H").pack
_tuple_new = tuple.__new__

_DATA_FIELDS = (
    ("seq", 0, 0xFF),
    ("flags", 0, 0xFF),
    ("src", 0, 0xFF),
    ("dst", 0, 0xFF),
    ("type", 0, 0xFF),
    ("msg_id", 0, 0xFFFF),
    ("ttl", 0, 0xFF),
)


def _check_fields(values: dict[str, object], payload: object) -> None:
    """Slow path after struct refused the values: find and name the bad field."""
    for name, lo, hi in _DATA_FIELDS:
        if name not in values:
            continue
        v = values[name]
        if not isinstance(v, int):
            raise EncodeError(name, f"must be an int, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise EncodeError(name, f"{v} is outside {lo}..{hi}")
    if payload is not None:
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise EncodeError("payload", f"must be bytes, got {type(payload).__name__}")
        if len(payload) > MAX_PAYLOAD:
            raise EncodeError("payload", f"{len(payload)} bytes exceeds the maximum of {MAX_PAYLOAD}")


def frame_body(seq: int, flags: int, packet: Packet) -> bytes:
    """The unencoded DATA frame (header + payload + CRC), before COBS."""
    src, dst, typ, msg_id, ttl, payload = packet
    try:
        if typ not in _KNOWN:
            raise EncodeError("type", f"0x{typ:02x} is not a known message type")
        n = len(payload)
        if n > MAX_PAYLOAD:
            raise struct.error
        body = _pack_data(_VER_DATA, seq, flags, src, dst, typ, msg_id, ttl, n) + payload
        return body + _pack_crc(_crc_core(body, _CRC_INIT, _CRC_TABLE))
    except (struct.error, TypeError):
        _check_fields(
            {"seq": seq, "flags": flags, "src": src, "dst": dst, "type": typ, "msg_id": msg_id, "ttl": ttl},
            payload,
        )
        raise  # pragma: no cover - _check_fields always finds the culprit


def encode_data(seq: int, flags: int, packet: Packet) -> bytes:
    """Wire bytes of a DATA frame: COBS(header + payload + CRC) + 0x00."""
    src, dst, typ, msg_id, ttl, payload = packet
    if typ in _KNOWN and len(payload) <= MAX_PAYLOAD:
        try:
            body = _pack_data(_VER_DATA, seq, flags, src, dst, typ, msg_id, ttl, len(payload)) + payload
            return _cobs_encode(body + _pack_crc(_crc_core(body, _CRC_INIT, _CRC_TABLE))) + b"\x00"
        except (struct.error, TypeError):
            pass
    return _cobs_encode(frame_body(seq, flags, packet)) + b"\x00"  # raises EncodeError naming the field


def control_body(kind: int, seq: int, flags: int = 0) -> bytes:
    """The unencoded 5-byte ACK / RESET / RESET_ACK frame."""
    if kind not in (FrameKind.ACK, FrameKind.RESET, FrameKind.RESET_ACK):
        raise EncodeError("kind", f"{kind!r} is not a control frame kind (ACK, RESET, RESET_ACK)")
    try:
        body = CONTROL_HEADER.pack(_VER << 4 | kind, seq, flags)
    except struct.error:
        _check_fields({"seq": seq, "flags": flags}, None)
        raise  # pragma: no cover
    return body + _pack_crc(crc16(body))


def encode_control(kind: int, seq: int, flags: int = 0) -> bytes:
    """Wire bytes of a control frame: COBS(5 bytes) + 0x00."""
    return _cobs_encode(control_body(kind, seq, flags)) + b"\x00"


def encode_frame(frame: Frame) -> bytes:
    """Wire bytes of any :class:`Frame`."""
    if frame.kind == FrameKind.DATA:
        if frame.packet is None:
            raise EncodeError("packet", "a DATA frame needs a packet")
        return encode_data(frame.seq, frame.flags, frame.packet)
    if frame.packet is not None:
        raise EncodeError("packet", "only DATA frames carry a packet")
    return encode_control(frame.kind, frame.seq, frame.flags)


def parse_body(raw: bytes) -> Frame:
    """Decode an unencoded frame (after COBS). Raises DecodeError."""
    n = len(raw)
    if n < CONTROL_FRAME_SIZE:
        raise DecodeError(LineErrorKind.TRUNCATED, f"frame of {n} bytes is shorter than the minimum of 5")
    if _crc_core(raw, _CRC_INIT, _CRC_TABLE):
        raise DecodeError(LineErrorKind.CRC, "CRC mismatch")
    vk = raw[0]
    if vk == _VER_DATA:
        if n < _MIN_DATA:
            raise DecodeError(LineErrorKind.TRUNCATED, f"DATA frame of {n} bytes is shorter than 12")
        _, seq, flags, src, dst, typ, msg_id, ttl, length = _unpack_data(raw)
        if length != n - _MIN_DATA:
            raise DecodeError(LineErrorKind.LENGTH, f"length field {length} but {n - _MIN_DATA} payload bytes")
        if typ not in _KNOWN:
            raise DecodeError(LineErrorKind.TYPE, f"unknown message type 0x{typ:02x}")
        packet = _tuple_new(Packet, (src, dst, typ, msg_id, ttl, raw[_HDR_LEN:-2]))
        return _tuple_new(Frame, (0, seq, flags, packet))
    if vk >> 4 != _VER:
        raise DecodeError(LineErrorKind.VERSION, f"unknown protocol version {vk >> 4}")
    kind = vk & 0x0F
    if kind > FrameKind.RESET_ACK:
        raise DecodeError(LineErrorKind.KIND, f"unknown frame kind {kind}")
    if n != CONTROL_FRAME_SIZE:
        raise DecodeError(LineErrorKind.LENGTH, f"control frame of {n} bytes (must be 5)")
    return Frame(kind, raw[1], raw[2], None)


def decode_frame(encoded: bytes) -> Frame:
    """Decode one COBS-encoded frame (no delimiter). Raises :class:`DecodeError` naming what is wrong."""
    try:
        raw = _cobs_decode(encoded)
    except _CobsError as exc:
        raise DecodeError(LineErrorKind.COBS, f"invalid COBS encoding: {exc}") from None
    return parse_body(raw)


def decode_wire(data: bytes) -> Frame:
    """Decode exactly one wire frame, with or without its trailing 0x00 delimiter."""
    if data.endswith(b"\x00"):
        data = data[:-1]
    if b"\x00" in data:
        raise DecodeError(LineErrorKind.COBS, "more than one frame (embedded 0x00 delimiter)")
    return decode_frame(data)
