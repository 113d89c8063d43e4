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
(:mod:`armbus.bus.codec`, :mod:`armbus.bus.deframer`) is tested against, and as the baseline of ``python -m
armbus.tools.bench.codec``.
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

from armbus.bus.codec import MAX_CHUNK, Frame, LineError, Packet
from armbus.bus.crc import crc16
from armbus.bus.wire import (
    CONTROL_FRAME_SIZE,
    CRC_SIZE,
    DATA_OVERHEAD,
    KNOWN_TYPES,
    MAX_ENCODED,
    PROTOCOL_VERSION,
    Address,
    ErrorKind,
    FaultCode,
    FrameFlag,
    FrameKind,
    GoalMode,
    LineErrorKind,
    MsgType,
    StatusFlag,
    UndeliverableReason,
)

# ----------------------------------------------------------------------------------------------------- frame
#: Byte 0: protocol version in the high nibble (BitStruct reads the most significant bits first), frame kind low.
VER_KIND = BitStruct(
    "version" / Const(PROTOCOL_VERSION, Nibble),  # 1; anything else is a VERSION error
    "kind" / OneOf(Nibble, [int(k) for k in FrameKind]),  # DATA=0 ACK=1 RESET=2 RESET_ACK=3, else KIND error
)

LINK_HEADER = Struct(
    "ver_kind" / VER_KIND * "version << 4 | kind: high nibble protocol version (1), low nibble FrameKind",
    "seq" / Int8ul * "DATA: per-link sequence number; ACK: the seq acked; RESET/RESET_ACK: a nonce",
    "flags" / Int8ul * "FrameFlag: 0x01 RETRANSMIT; reserved bits sent as 0, ignored on receipt",
)

NET_HEADER = Struct(
    "src" / Int8ul * "Address of the sender: HOST 0, joints 1..253, UNASSIGNED 0xFE",
    "dst" / Int8ul * "Address of the receiver, or BROADCAST 0xFF",
    "type" / OneOf(Int8ul, sorted(KNOWN_TYPES)) * "MsgType",
    "msg_id" / Int16ul * "end-to-end id chosen by src; a reply reuses its request's id",
    "ttl" / Int8ul * "time to live, decremented by every forwarding hop",
    "length" / Int8ul * "payload bytes that follow, 0..255",
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
# ``"name" / Type * "text"`` documents a field; docs/protocol.md's tables are generated from these declarations.
JOINT_RECORD = Struct("model" / Int16ul * "joint model number", "serial" / Int32ul * "joint serial number")
SYNC_RECORD = Struct(
    "address" / Int8ul * "the joint's address",
    "status" / Int8ul * "StatusFlag bits",
    "data" / Bytes(this._.length) * "`length` bytes read from `reg`",
)
_RECORDS = PrefixedArray(Int8ul, JOINT_RECORD) * "count u8, then count records: model u16, serial u32"
_ENUMERATE = Struct("records" / _RECORDS, Terminated)
_SYNC_READ = Struct(
    "reg" / Int16ul * "first register",
    "length" / Int8ul * "bytes per joint",
    "records" / GreedyRange(SYNC_RECORD) * "to the end: records of address u8, status u8, data[length]",
    Terminated,
)
_REG_DATA = "data" / GreedyBytes * "register bytes, to the end of the payload"
CYCLE_RECORD = Struct(
    "address" / Int8ul * "the joint's address",
    "status" / Int8ul * "StatusFlag bits",
    "result" / Int8ul * "high nibble: read outcome (0 or ErrorKind); low nibble: goal outcome (0 taken, "
                        "ErrorKind refused, 0xF no slice)",
    "age_us" / Int16ul * "age of the sample when the joint sent the record, us (saturates at 65535)",
    "data" / Bytes(this._.length) * "`length` bytes read from `reg`",
)

#: Payload layout of every message type. Every Struct ends with Terminated: trailing bytes are a LENGTH error.
PAYLOADS: dict[MsgType, Construct] = {
    MsgType.PING: Struct(Terminated),
    MsgType.PING_REPLY: Struct(
        "model" / Int16ul * "joint model number",
        "fw_major" / Int8ul * "firmware major version",
        "fw_minor" / Int8ul * "firmware minor version",
        "serial" / Int32ul * "joint serial number",
        "address" / Int8ul * "the joint's current address",
        Terminated,
    ),
    MsgType.ENUMERATE: _ENUMERATE,
    MsgType.ENUMERATE_REPLY: _ENUMERATE,
    MsgType.READ: Struct("reg" / Int16ul * "first register", "length" / Int8ul * "bytes to read", Terminated),
    MsgType.READ_REPLY: Struct("reg" / Int16ul * "first register", _REG_DATA),
    MsgType.WRITE: Struct("reg" / Int16ul * "first register", _REG_DATA),
    MsgType.WRITE_REPLY: Struct("reg" / Int16ul * "first register", "length" / Int8ul * "bytes written", Terminated),
    MsgType.SYNC_WRITE: Struct(
        "reg" / Int16ul * "first register",
        "slice_len" / Int8ul * "bytes per joint (> 0)",
        "first" / Int8ul * "address of the joint the first slice is for",
        "data" / GreedyBytes * "n slices of slice_len bytes, to the end",
        Check(lambda c: c.slice_len > 0 and len(c.data) % c.slice_len == 0),  # n whole slices
    ),
    MsgType.SYNC_READ: _SYNC_READ,
    MsgType.SYNC_READ_REPLY: _SYNC_READ,
    MsgType.CYCLE: Struct(
        "reg" / Int16ul * "first register each joint reads back",
        "length" / Int8ul * "bytes each joint reads back",
        "mode" / Int8ul * "GoalMode of every slice, or 0: no goals (a read-only cycle)",
        "first" / Int8ul * "address of the joint the first slice is for",
        "goals" / GreedyRange(Int32sl) * "to the end: one i32 goal per joint (urad, urad/s or mA by mode)",
        Terminated,
        Check(lambda c: c.mode != 0 or len(c.goals) == 0),  # a read-only cycle carries no slices
    ),
    MsgType.CYCLE_REPLY: Struct(
        "reg" / Int16ul * "first register read",
        "length" / Int8ul * "bytes per joint",
        "records" / GreedyRange(CYCLE_RECORD) * "to the end: records of 5 + length bytes, chain end first",
        Terminated,
    ),
    MsgType.SET_GOAL: Struct(
        "mode" / Int8ul * "GoalMode: 1 POSITION, 2 VELOCITY, 3 CURRENT",
        "value" / Int32sl * "urad, urad/s or mA according to mode",
        Terminated,
    ),
    MsgType.TORQUE: Struct("enable" / Int8ul * "1 on, 0 off", Terminated),
    MsgType.ESTOP: Struct("reason" / Int8ul * "application-defined reason code", Terminated),
    MsgType.HEARTBEAT: Struct("host_time_ms" / Int32ul * "host clock, ms (wraps)", Terminated),
    MsgType.REBOOT: Struct(Terminated),
    MsgType.STATE: Struct(
        "status" / Int8ul * "StatusFlag bits",
        "position" / Int32sl * "urad",
        "velocity" / Int32sl * "urad/s",
        "current" / Int16sl * "mA",
        "temperature" / Int16sl * "0.1 degC",
        "voltage" / Int16ul * "mV",
        Terminated,
    ),
    MsgType.FAULT: Struct(
        "code" / Int8ul * "FaultCode",
        "active" / Int8ul * "1 raised, 0 cleared",
        "value" / Int32sl * "the measurement that tripped it (code-specific unit)",
        Terminated,
    ),
    MsgType.UNDELIVERABLE: Struct(
        "reporter" / Int8ul * "address of the hop that gave up",
        "next_hop" / Int8ul * "address it could not reach",
        "orig_src" / Int8ul * "src of the lost packet",
        "orig_dst" / Int8ul * "dst of the lost packet",
        "orig_type" / Int8ul * "type of the lost packet",
        "orig_msg_id" / Int16ul * "msg_id of the lost packet",
        "reason" / Int8ul * "UndeliverableReason",
        Terminated,
    ),
    MsgType.ERROR: Struct(
        "orig_type" / Int8ul * "type of the failed request",
        "kind" / Int8ul * "ErrorKind",
        "detail" / Int16ul * "kind-specific (e.g. the register address)",
        Terminated,
    ),
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


# ------------------------------------------------------------------------------------------ docs generation
_TYPE_NAMES = {"<B": "u8", "<H": "u16 LE", "<L": "u32 LE", "<b": "i8", "<h": "i16 LE", "<l": "i32 LE",
               ">H": "u16 BE"}


def _field_rows(struct: Any) -> list[tuple[str, str, str, str]]:
    """(offset, name, type, meaning) for each named field of a construct Struct."""
    rows = []
    offset: int | None = 0
    for sc in struct.subcons:
        if sc.name is None:
            continue
        inner = sc.subcon
        while inner.__class__.__name__ in ("Renamed", "ExprValidator"):  # names, docs, OneOf checks
            inner = inner.subcon
        kind = inner.__class__.__name__
        if kind == "FormatField":
            typ, size = _TYPE_NAMES[inner.fmtstr], inner.sizeof()
        elif kind == "Transformed":  # BitStruct: one byte of two nibbles
            typ, size = "u8 (2 nibbles)", 1
        elif kind == "FocusedSeq":  # PrefixedArray
            typ, size = "u8 + records", None
        elif kind == "GreedyRange":
            typ, size = "records", None
        else:  # GreedyBytes / Bytes
            typ, size = "bytes", None
        rows.append(("-" if offset is None else str(offset), sc.name, typ, (sc.docs or "").replace("|", "\\|")))
        offset = None if offset is None or size is None else offset + size
    return rows


def markdown_table(struct: Any) -> str:
    """A Markdown table of a Struct's fields (offsets relative to the start of the Struct)."""
    rows = _field_rows(struct)
    if not rows:
        return "(empty payload)\n"
    lines = ["| offset | field | type | meaning |", "|---|---|---|---|"]
    lines += [f"| {o} | `{n}` | {t} | {d} |" for o, n, t, d in rows]
    return "\n".join(lines) + "\n"


def catalogue_markdown() -> str:
    """The generated part of docs/protocol.md: header tables and one payload table per message type."""
    out = ["#### Link header (every frame)\n\n", markdown_table(LINK_HEADER),
           "\n#### Network header (DATA frames only, offsets from byte 3)\n\n", markdown_table(NET_HEADER)]
    for t in sorted(MsgType):
        out.append(f"\n#### 0x{int(t):02X} {t.name}\n\n")
        out.append(markdown_table(PAYLOADS[t]))
        if t in (MsgType.ENUMERATE, MsgType.ENUMERATE_REPLY):
            out.append("\nEach record (6 bytes):\n\n" + markdown_table(JOINT_RECORD))
        if t in (MsgType.SYNC_READ, MsgType.SYNC_READ_REPLY):
            out.append("\nEach record (2 + `length` bytes):\n\n" + markdown_table(SYNC_RECORD))
        if t == MsgType.CYCLE_REPLY:
            out.append("\nEach record (5 + `length` bytes):\n\n" + markdown_table(CYCLE_RECORD))
    out.append("\n#### Enumerations\n")
    for enum_cls in (FrameKind, FrameFlag, Address, MsgType, LineErrorKind, ErrorKind, FaultCode, UndeliverableReason,
                     StatusFlag, GoalMode):
        members = [f"{e.name} = 0x{int(e):02X}" for e in enum_cls if e.name is not None and e.name != "NONE"]
        out.append(f"\n- `{enum_cls.__name__}`: " + ", ".join(members) + "\n")
    return "".join(out)


BEGIN_MARK = "<!-- BEGIN GENERATED by `python -m armbus.bus.layout --update docs/protocol.md`; do not edit -->"
END_MARK = "<!-- END GENERATED -->"


def update_doc(text: str) -> str:
    """``text`` with the part between the generated-section marks replaced by :func:`catalogue_markdown`."""
    head, sep, rest = text.partition(BEGIN_MARK)
    _, sep2, tail = rest.partition(END_MARK)
    if not sep or not sep2:
        raise ValueError("the document lacks the generated-section marks")
    return head + BEGIN_MARK + "\n" + catalogue_markdown() + END_MARK + tail


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--update":
        with open(sys.argv[2], encoding="utf-8") as f:
            updated = update_doc(f.read())
        with open(sys.argv[2], "w", encoding="utf-8") as f:
            f.write(updated)
    else:
        sys.stdout.write(catalogue_markdown())
