"""Hot-path frame codec: struct + COBS + CRC, byte-identical to the construct layout in :mod:`armbus.bus.layout`.

Theory of operation
-------------------
Two layers live here, both sans-I/O and allocation-light:

* ``encode_data`` / ``encode_control`` turn a :class:`Packet` (network layer) plus a link header into wire bytes:
  header via one precompiled ``struct``, CRC-16 appended big-endian, COBS-encoded, one 0x00 delimiter.
  Out-of-range fields raise :class:`~armbus.bus.errors.EncodeError` naming the field (caller misuse).
* ``decode_frame`` turns one delimiter-free COBS chunk back into a :class:`Frame`, or raises
  :class:`~armbus.bus.errors.DecodeError` with a :class:`~armbus.bus.wire.LineErrorKind`. Checks run in a fixed order so
  that every bad chunk gets exactly one kind: OVERSIZE, COBS, TRUNCATED, CRC, VERSION, KIND, then TYPE and LENGTH
  (:func:`classify_body`). A receiver checks the CRC before trusting any header bit.

Fast path / slow path: a valid DATA frame passes four cheap tests (decoded size >= 12, first byte 0x10, length
byte == size - 12, CRC residue 0) and a type lookup; everything else (control frames, errors) goes through
:func:`classify_chunk`, the one complete classifier. The streaming receiver (:mod:`armbus.bus.deframer`) inlines the
same fast path and shares the slow path, so both give identical results by construction.
``Packet`` and ``Frame`` are NamedTuples: cheap to build and compare, immutable, and they unpack like tuples.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, NamedTuple

from cobs import cobs

from armbus.bus.crc import CRC16_CORE, CRC16_INIT, CRC16_TABLE
from armbus.bus.errors import DecodeError, EncodeError
from armbus.bus.wire import (
    CONTROL_FRAME_SIZE,
    DATA_OVERHEAD,
    DEFAULT_TTL,
    KNOWN_TYPES,
    LINK_HEADER_SIZE,
    MAX_ENCODED,
    MAX_FRAME,
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
    size: int  # bytes of the offending chunk as received (COBS-encoded, no delimiter); OVERSIZE: MAX_ENCODED


DATA_HEADER = struct.Struct("<BBBBBBHBB")  # ver_kind seq flags | src dst type msg_id ttl length
CONTROL_HEADER = struct.Struct("<BBB")  # ver_kind seq flags
#: Largest valid COBS chunk (delimiter excluded); anything longer is OVERSIZE without being decoded.
MAX_CHUNK = MAX_ENCODED - 1
#: First byte of every DATA frame of this protocol version: the one value the receive fast path compares.
VER_DATA = PROTOCOL_VERSION << 4 | FrameKind.DATA
_VER = PROTOCOL_VERSION
_HDR_LEN = LINK_HEADER_SIZE + NET_HEADER_SIZE
_MIN_DATA = DATA_OVERHEAD
_LAST_KIND = int(FrameKind.RESET_ACK)
_CONTROL_KINDS = frozenset((int(FrameKind.ACK), int(FrameKind.RESET), int(FrameKind.RESET_ACK)))
# Hot-path bindings: module globals resolve faster than attribute chains, and plain ints compare faster than enums.
_cobs_encode = cobs.encode
_cobs_decode = cobs.decode
_CobsError = cobs.DecodeError
_pack_data = DATA_HEADER.pack
_unpack_data = DATA_HEADER.unpack_from
_KNOWN = KNOWN_TYPES
_crc = CRC16_CORE  # crcmod's CRC-16/CCITT-FALSE core: _crc(data, 0xFFFF, _TABLE) (armbus.bus.crc)
_TABLE = CRC16_TABLE
_CRC_INIT = CRC16_INIT
_pack_crc = struct.Struct(">H").pack
_tuple_new = tuple.__new__
#: DATA_PACKERS[n].pack(ver_kind, seq, flags, src, dst, type, msg_id, ttl, n, payload): header and an n-byte payload
#: in one call (saves a concatenation); DATA_UNPACKERS[m](raw) the inverse for an m-byte frame, CRC skipped. Both
#: are precompiled for every payload size 0..MAX_PAYLOAD (256 small Struct objects).
DATA_PACKERS = tuple(struct.Struct(f"<BBBBBBHBB{n}s").pack for n in range(MAX_PAYLOAD + 1))
DATA_UNPACKERS: tuple[Any, ...] = (None,) * DATA_OVERHEAD + tuple(
    struct.Struct(f"<BBBBBBHBB{n}s").unpack_from for n in range(MAX_PAYLOAD + 1)
)
_PACKERS = DATA_PACKERS
_UNPACKERS = DATA_UNPACKERS
#: Decoded sizes a DATA frame can have: _MIN_DATA <= size < _END_DATA (the fast path's first test).
_END_DATA = MAX_FRAME + 1

#: Every integer field a sender sets, with its range (all unsigned bytes except msg_id, a u16).
_DATA_FIELDS = (
    ("seq", 0, 0xFF),
    ("flags", 0, 0xFF),
    ("src", 0, 0xFF),
    ("dst", 0, 0xFF),
    ("type", 0, 0xFF),
    ("msg_id", 0, 0xFFFF),
    ("ttl", 0, 0xFF),
)


def _check_fields(values: Mapping[str, object], payload: object) -> None:
    """Validate every field, raising EncodeError naming the first that is wrong (the encoders' slow path)."""
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
    """The unencoded DATA frame (header + payload + CRC), before COBS. Raises EncodeError naming a bad field."""
    try:
        src, dst, typ, msg_id, ttl, payload = packet
    except (TypeError, ValueError):
        raise EncodeError("packet", f"must be a Packet, got {type(packet).__name__}") from None
    values = {"seq": seq, "flags": flags, "src": src, "dst": dst, "type": typ, "msg_id": msg_id, "ttl": ttl}
    _check_fields(values, payload)
    if typ not in _KNOWN:
        raise EncodeError("type", f"0x{typ:02x} is not a known message type")
    body = _pack_data(VER_DATA, seq, flags, src, dst, typ, msg_id, ttl, len(payload)) + bytes(payload)
    return body + _pack_crc(_crc(body, _CRC_INIT, _TABLE))


def encode_data(seq: int, flags: int, packet: Packet) -> bytes:
    """Wire bytes of a DATA frame: COBS(header + payload + CRC) + 0x00. Raises EncodeError naming a bad field."""
    try:
        src, dst, typ, msg_id, ttl, payload = packet
        if typ in _KNOWN and payload.__class__ is bytes:
            n = len(payload)
            body = _PACKERS[n](VER_DATA, seq, flags, src, dst, typ, msg_id, ttl, n, payload)  # IndexError if n > 255
            return _cobs_encode(body + _pack_crc(_crc(body, _CRC_INIT, _TABLE))) + b"\x00"
    except (struct.error, TypeError, ValueError, IndexError):
        pass
    return _cobs_encode(frame_body(seq, flags, packet)) + b"\x00"  # slow path: validates, names the field


def control_body(kind: int, seq: int, flags: int = 0) -> bytes:
    """The unencoded 5-byte ACK / RESET / RESET_ACK frame."""
    if isinstance(kind, bool) or kind not in _CONTROL_KINDS:
        raise EncodeError("kind", f"{kind!r} is not a control frame kind (ACK=1, RESET=2, RESET_ACK=3)")
    _check_fields({"seq": seq, "flags": flags}, None)
    body = CONTROL_HEADER.pack(_VER << 4 | kind, seq, flags)
    return body + _pack_crc(_crc(body, _CRC_INIT, _TABLE))


def encode_control(kind: int, seq: int, flags: int = 0) -> bytes:
    """Wire bytes of a control frame: COBS(5 bytes) + 0x00."""
    if not flags and seq.__class__ is int and 0 <= seq <= 0xFF:
        row = _CONTROL_WIRE.get(kind)  # fast path: the precomputed wire bytes of every flags-0 control frame
        if row is not None:
            return row[seq]
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


def classify_body(raw: bytes) -> Frame | LineErrorKind:
    """Check an unencoded frame in the protocol's fixed order; return the Frame or the first LineErrorKind.

    Order: TRUNCATED (< 5 bytes), CRC (residue over the whole frame is not 0), VERSION, KIND, then for DATA
    TRUNCATED (< 12 bytes), TYPE, LENGTH (length field != bytes present); for control frames LENGTH (!= 5 bytes).
    After the CRC, fields are checked in wire order, as the construct reference (armbus.bus.layout) parses them.
    """
    n = len(raw)
    if n < CONTROL_FRAME_SIZE:
        return LineErrorKind.TRUNCATED
    if _crc(raw, _CRC_INIT, _TABLE):
        return LineErrorKind.CRC
    vk = raw[0]
    if vk >> 4 != _VER:
        return LineErrorKind.VERSION
    kind = vk & 0x0F
    if kind > _LAST_KIND:
        return LineErrorKind.KIND
    if kind == 0:
        if n < _MIN_DATA:
            return LineErrorKind.TRUNCATED
        _, seq, flags, src, dst, typ, msg_id, ttl, length = _unpack_data(raw)
        if typ not in _KNOWN:
            return LineErrorKind.TYPE
        if length != n - _MIN_DATA:
            return LineErrorKind.LENGTH
        return _tuple_new(Frame, (0, seq, flags, _tuple_new(Packet, (src, dst, typ, msg_id, ttl, raw[_HDR_LEN:-2]))))
    if n != CONTROL_FRAME_SIZE:
        return LineErrorKind.LENGTH
    return _tuple_new(Frame, (kind, raw[1], raw[2], None))


def classify_chunk(chunk: bytes) -> Frame | LineError:
    """Decode one delimiter-free COBS chunk to a Frame or a LineError; never raises (the receivers' slow path)."""
    n = len(chunk)
    if n > MAX_CHUNK:
        return LineError(LineErrorKind.OVERSIZE, MAX_ENCODED)
    try:
        raw = _cobs_decode(chunk)
    except _CobsError:
        return LineError(LineErrorKind.COBS, n)
    result = classify_body(raw)
    if isinstance(result, Frame):
        return result
    return LineError(result, n)


_MESSAGES = {
    LineErrorKind.OVERSIZE: "chunk longer than the largest frame",
    LineErrorKind.COBS: "invalid COBS encoding",
    LineErrorKind.TRUNCATED: "frame shorter than its header",
    LineErrorKind.CRC: "CRC mismatch",
    LineErrorKind.VERSION: "unknown protocol version",
    LineErrorKind.KIND: "unknown frame kind",
    LineErrorKind.LENGTH: "length field disagrees with the frame size",
    LineErrorKind.TYPE: "unknown message type",
}


def parse_body(raw: bytes) -> Frame:
    """Decode an unencoded frame (after COBS). Raises DecodeError."""
    result = classify_body(raw)
    if isinstance(result, Frame):
        return result
    kind = LineErrorKind(result)
    raise DecodeError(kind, f"{kind.name}: {_MESSAGES[kind]} ({len(raw)}-byte frame {bytes(raw[:12]).hex()})")


def decode_frame(encoded: bytes) -> Frame:
    """Decode one COBS-encoded frame (no delimiter). Raises :class:`DecodeError` naming what is wrong."""
    if encoded.__class__ is not bytes:
        encoded = bytes(encoded)
    if encoded[-1:] == b"\x00":  # COBS never produces a 0x00: a COBS error, which the classifier names
        return _decode_slow(encoded)
    return decode_wire(encoded)


def decode_wire(data: bytes) -> Frame:
    """Decode exactly one wire frame, with or without its trailing 0x00 delimiter.

    A 0x00 anywhere else means more than one frame: COBS never produces it, so it is a COBS error. This is the
    one-shot hot path: the DATA fast path is written here, once (Deframer.feed inlines the same tests).
    """
    if data.__class__ is not bytes:
        data = bytes(data)
    if data[-1:] == b"\x00":
        data = data[:-1]
    try:
        raw = _cobs_decode(data)
    except _CobsError:
        raw = b""
    m = len(raw)
    if _MIN_DATA <= m < _END_DATA:
        vk, seq, flags, src, dst, typ, msg_id, ttl, length, payload = _UNPACKERS[m](raw)
        if vk == VER_DATA and length == m - _MIN_DATA and typ in _KNOWN and not _crc(raw, _CRC_INIT, _TABLE):
            return _tuple_new(Frame, (0, seq, flags, _tuple_new(Packet, (src, dst, typ, msg_id, ttl, payload))))
    return _decode_slow(data)


def _decode_slow(encoded: bytes) -> Frame:
    """Everything but a valid DATA frame: the control-frame table, then the complete classifier."""
    control = CONTROL_FRAMES.get(encoded)
    if control is not None:
        return control
    item = classify_chunk(encoded)
    if isinstance(item, Frame):
        return item
    kind = LineErrorKind(item.kind)
    raise DecodeError(kind, f"{kind.name}: {_MESSAGES[kind]} ({len(encoded)} encoded bytes)")


_CONTROL_WIRE: dict[int, tuple[bytes, ...]] = {
    int(k): tuple(_cobs_encode(control_body(k, seq)) + b"\x00" for seq in range(256))
    for k in (FrameKind.ACK, FrameKind.RESET, FrameKind.RESET_ACK)
}

#: Every ordinary control frame (ACK / RESET / RESET_ACK, any seq, flags 0) keyed by its COBS-encoded chunk: a
#: constant lookup table (768 entries, ~100 kB) that lets receivers skip decoding the most common short frames.
#: Values are immutable, so sharing them is safe; any other control chunk takes the full path.
CONTROL_FRAMES: dict[bytes, Frame] = {
    encode_control(k, seq)[:-1]: Frame(int(k), seq, 0, None)
    for k in (FrameKind.ACK, FrameKind.RESET, FrameKind.RESET_ACK)
    for seq in range(256)
}
