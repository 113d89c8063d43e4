"""The armbus byte layout, declared once with ``construct``: the single source of truth and its readable form.

Theory of operation
-------------------
Read this module top to bottom as the wire format (docs/protocol.md is generated in part from it):

    wire      = COBS(frame) 0x00                                   WIRE, COBS_FRAME (the Cobs construct below)
    frame     = body crc16be                                       FRAME: Checksum over a RawCopy of the body
    body      = link_header [network_header payload]               BODY: the network part only for DATA frames
    payload   = PAYLOADS[network_header.type]                      one Struct per MsgType, little-endian

A receiver checks a frame's fields in the order they appear on the wire, with one exception: the CRC is checked
first, over the whole frame (:data:`ENVELOPE`), because no header bit can be trusted before it. So the error kinds
come out as: OVERSIZE, COBS, TRUNCATED (< 5 bytes), CRC, VERSION, KIND, then TRUNCATED (DATA < 12 bytes), TYPE,
LENGTH. :func:`decode_chunk` is that receiver written against these declarations: slow (construct interprets the
declarations for every frame) but obviously right, so it serves as the reference that the hand-written fast codec
(:mod:`bus.codec`, :mod:`bus.deframer`) is tested against, and as the baseline of ``python -m bus.bench``.
"""

from __future__ import annotations

import io
from typing import Any

from cobs import cobs
from construct import (
    BitStruct,
    Bytes,
    Check,
    Checksum,
    ChecksumError,
    Const,
    ConstError,
    Construct,
    ConstructError,
    Container,
    GreedyBytes,
    GreedyRange,
    If,
    Int8ul,
    Int16sl,
    Int16ub,
    Int16ul,
    Int32sl,
    Int32ul,
    ListContainer,
    Nibble,
    NullTerminated,
    OneOf,
    PrefixedArray,
    RawCopy,
    Struct,
    Subconstruct,
    Terminated,
    ValidationError,
    stream_read_entire,
    stream_write,
    this,
)

from bus.codec import MAX_CHUNK, Frame, LineError, Packet
from bus.crc import crc16
from bus.wire import (
    CONTROL_FRAME_SIZE,
    CRC_SIZE,
    DATA_OVERHEAD,
    KNOWN_TYPES,
    MAX_ENCODED,
    PROTOCOL_VERSION,
    FrameKind,
    LineErrorKind,
    MsgType,
)

# ----------------------------------------------------------------------------------------------------- frame
#: Byte 0: protocol version in the high nibble (BitStruct reads the most significant bits first), frame kind low.
VER_KIND = BitStruct(
    "version" / Const(PROTOCOL_VERSION, Nibble),  # 1; anything else is a VERSION error
    "kind" / OneOf(Nibble, [int(k) for k in FrameKind]),  # DATA=0 ACK=1 RESET=2 RESET_ACK=3, else KIND error
)

LINK_HEADER = Struct(
    "ver_kind" / VER_KIND,
    "seq" / Int8ul,  # per-link sequence number (DATA, ACK) or nonce (RESET, RESET_ACK)
    "flags" / Int8ul,  # FrameFlag: 0x01 RETRANSMIT; reserved bits sent as 0, ignored on receipt
)

NET_HEADER = Struct(
    "src" / Int8ul,  # Address: HOST=0, joints 1..253, UNASSIGNED=0xFE
    "dst" / Int8ul,  # Address, or BROADCAST=0xFF
    "type" / OneOf(Int8ul, sorted(KNOWN_TYPES)),  # MsgType, else TYPE error
    "msg_id" / Int16ul,  # end-to-end id chosen by src; replies reuse the request's
    "ttl" / Int8ul,  # decremented by each forwarding hop
    "length" / Int8ul,  # payload bytes, 0..255
)

BODY = Struct(
    "link" / LINK_HEADER,
    "net" / If(this.link.ver_kind.kind == FrameKind.DATA, NET_HEADER),
    "payload" / If(this.link.ver_kind.kind == FrameKind.DATA, Bytes(this.net.length)),
)

#: The unencoded frame: body, then CRC-16/CCITT-FALSE of the body, big-endian, then nothing.
FRAME = Struct(
    "body" / RawCopy(BODY),
    "crc" / Checksum(Int16ub, crc16, this.body.data),
    Terminated,
)

#: The integrity check a receiver runs before reading any field: everything but the last two bytes, then their
#: CRC. Parse with ``ENVELOPE.parse(raw, size=len(raw))``.
ENVELOPE = Struct(
    "body" / RawCopy(Bytes(this._params.size - CRC_SIZE)),
    "crc" / Checksum(Int16ub, crc16, this.body.data),
)


class CobsError(ConstructError):
    """The bytes are not valid COBS (a code byte points past the end, or a 0x00 inside)."""


class Cobs(Subconstruct):
    """COBS around a subconstruct: parse decodes the whole (sub)stream first, build encodes what subcon built."""

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        try:
            raw = cobs.decode(stream_read_entire(stream, path))
        except cobs.DecodeError as exc:
            raise CobsError(f"invalid COBS: {exc}", path=path) from None
        return self.subcon._parsereport(io.BytesIO(raw), context, path)

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        inner = io.BytesIO()
        built = self.subcon._build(obj, inner, context, path)
        encoded = cobs.encode(inner.getvalue())
        stream_write(stream, encoded, len(encoded), path)
        return built


#: One frame as it travels: COBS-encoded, then one 0x00 delimiter.
COBS_FRAME = Cobs(FRAME)
WIRE = NullTerminated(COBS_FRAME, term=b"\x00")
#: COBS alone, over raw bytes (the first step of a receiver).
COBS_BYTES = Cobs(GreedyBytes)

# --------------------------------------------------------------------------------------------------- payloads
JOINT_RECORD = Struct("model" / Int16ul, "serial" / Int32ul)
SYNC_RECORD = Struct("address" / Int8ul, "status" / Int8ul, "data" / Bytes(this._.length))
_ENUMERATE = Struct("records" / PrefixedArray(Int8ul, JOINT_RECORD), Terminated)  # count u8, then records
_SYNC_READ = Struct("reg" / Int16ul, "length" / Int8ul, "records" / GreedyRange(SYNC_RECORD), Terminated)

#: Payload layout of every message type. Every Struct ends with Terminated: trailing bytes are a LENGTH error.
PAYLOADS: dict[MsgType, Construct] = {
    MsgType.PING: Struct(Terminated),
    MsgType.PING_REPLY: Struct(
        "model" / Int16ul, "fw_major" / Int8ul, "fw_minor" / Int8ul, "serial" / Int32ul, "address" / Int8ul,
        Terminated,
    ),
    MsgType.ENUMERATE: _ENUMERATE,
    MsgType.ENUMERATE_REPLY: _ENUMERATE,
    MsgType.READ: Struct("reg" / Int16ul, "length" / Int8ul, Terminated),
    MsgType.READ_REPLY: Struct("reg" / Int16ul, "data" / GreedyBytes),
    MsgType.WRITE: Struct("reg" / Int16ul, "data" / GreedyBytes),
    MsgType.WRITE_REPLY: Struct("reg" / Int16ul, "length" / Int8ul, Terminated),
    MsgType.SYNC_WRITE: Struct(
        "reg" / Int16ul, "slice_len" / Int8ul, "first" / Int8ul, "data" / GreedyBytes,
        Check(lambda c: c.slice_len > 0 and len(c.data) % c.slice_len == 0),  # n whole slices
    ),
    MsgType.SYNC_READ: _SYNC_READ,
    MsgType.SYNC_READ_REPLY: _SYNC_READ,
    MsgType.SET_GOAL: Struct("mode" / Int8ul, "value" / Int32sl, Terminated),  # GoalMode; urad, urad/s or mA
    MsgType.TORQUE: Struct("enable" / Int8ul, Terminated),
    MsgType.ESTOP: Struct("reason" / Int8ul, Terminated),
    MsgType.HEARTBEAT: Struct("host_time_ms" / Int32ul, Terminated),
    MsgType.REBOOT: Struct(Terminated),
    MsgType.STATE: Struct(
        "status" / Int8ul,  # StatusFlag
        "position" / Int32sl,  # urad
        "velocity" / Int32sl,  # urad/s
        "current" / Int16sl,  # mA
        "temperature" / Int16sl,  # 0.1 degC
        "voltage" / Int16ul,  # mV
        Terminated,
    ),
    MsgType.FAULT: Struct("code" / Int8ul, "active" / Int8ul, "value" / Int32sl, Terminated),  # FaultCode
    MsgType.UNDELIVERABLE: Struct(
        "reporter" / Int8ul, "next_hop" / Int8ul, "orig_src" / Int8ul, "orig_dst" / Int8ul, "orig_type" / Int8ul,
        "orig_msg_id" / Int16ul, "reason" / Int8ul,  # UndeliverableReason
        Terminated,
    ),
    MsgType.ERROR: Struct("orig_type" / Int8ul, "kind" / Int8ul, "detail" / Int16ul, Terminated),  # ErrorKind
}
assert set(PAYLOADS) == set(MsgType), "every MsgType needs a payload layout"


def plain(obj: Any) -> Any:
    """A parse result as plain dicts, lists and values (construct's bookkeeping keys dropped)."""
    if isinstance(obj, Container):
        return {k: plain(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, ListContainer | list | tuple):
        return [plain(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------- reference en/decoding
def build_frame(frame: Frame) -> bytes:
    """Wire bytes of ``frame`` built through the declarations (COBS + delimiter included)."""
    link = {"ver_kind": {"version": PROTOCOL_VERSION, "kind": int(frame.kind)}, "seq": frame.seq, "flags": frame.flags}
    net = payload = None
    if frame.packet is not None:
        p = frame.packet
        net = {"src": p.src, "dst": p.dst, "type": int(p.type), "msg_id": p.msg_id, "ttl": p.ttl,
               "length": len(p.payload)}
        payload = bytes(p.payload)
    return bytes(WIRE.build({"body": {"value": {"link": link, "net": net, "payload": payload}}}))


def _frame_of(parsed: Any) -> Frame:
    v = parsed.body.value
    link = v.link
    if v.net is None:
        return Frame(link.ver_kind.kind, link.seq, link.flags, None)
    n = v.net
    return Frame(0, link.seq, link.flags, Packet(n.src, n.dst, n.type, n.msg_id, n.ttl, bytes(v.payload)))


def _kind_of(exc: ConstructError) -> LineErrorKind:
    """Map a construct error met after the envelope check to the line error kind it means."""
    path = str(getattr(exc, "path", "") or "")
    last = path.rsplit("->", 1)[-1].strip()
    if isinstance(exc, ConstError) and last == "version":
        return LineErrorKind.VERSION
    if isinstance(exc, ValidationError) and last == "kind":
        return LineErrorKind.KIND
    if isinstance(exc, ValidationError) and last == "type":
        return LineErrorKind.TYPE
    return LineErrorKind.LENGTH  # payload or CRC not where the length field says, or bytes left over


def decode_chunk(chunk: bytes) -> Frame | LineError:
    """Reference receiver for one delimiter-free chunk, interpreted from the declarations above."""
    n = len(chunk)
    if n > MAX_CHUNK:
        return LineError(LineErrorKind.OVERSIZE, MAX_ENCODED)
    try:
        raw = COBS_BYTES.parse(chunk)
    except CobsError:
        return LineError(LineErrorKind.COBS, n)
    if len(raw) < CONTROL_FRAME_SIZE:
        return LineError(LineErrorKind.TRUNCATED, n)
    try:
        ENVELOPE.parse(raw, size=len(raw))
    except ChecksumError:
        return LineError(LineErrorKind.CRC, n)
    try:
        if VER_KIND.parse(raw).kind == FrameKind.DATA and len(raw) < DATA_OVERHEAD:
            return LineError(LineErrorKind.TRUNCATED, n)  # no room for both headers and the CRC
        return _frame_of(FRAME.parse(raw))
    except ConstructError as exc:
        return LineError(_kind_of(exc), n)


def decode_stream(data: bytes) -> list[Frame | LineError]:
    """Reference stream receiver: split at delimiters, decode each chunk (no partial-frame state, no OVERSIZE
    streaming: for whole captures and the benchmark baseline)."""
    return [decode_chunk(c) for c in data.split(b"\x00")[:-1] if c]


def build_payload(msg_type: int, fields: dict[str, Any]) -> bytes:
    """Payload bytes for ``msg_type`` built through :data:`PAYLOADS`."""
    return bytes(PAYLOADS[MsgType(msg_type)].build(fields))


def parse_payload(msg_type: int, payload: bytes) -> dict[str, Any]:
    """Payload fields parsed through :data:`PAYLOADS`, as plain dicts and lists."""
    result: dict[str, Any] = plain(PAYLOADS[MsgType(msg_type)].parse(payload))
    return result
