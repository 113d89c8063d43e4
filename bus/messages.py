"""Message payloads: one frozen dataclass per message type, packed with precompiled ``struct`` formats.

Theory of operation
-------------------
The network header names a :class:`~armbus.bus.wire.MsgType`; the payload's layout depends on it. Each message class
knows its ``TYPE`` and how to ``pack()`` itself into payload bytes and ``unpack(payload)`` back. Fixed-layout
messages declare ``_FMT`` (a ``struct`` format) and list their fields in order; variable-length ones (register
data, sync-write slices, sync-read and enumeration records) override ``pack``/``unpack``.

``decode_payload(type, payload)`` picks the class from the registry; a payload of the wrong size raises
:class:`~armbus.bus.errors.DecodeError` with kind LENGTH, an unknown type kind TYPE. ``pack()`` raises
:class:`~armbus.bus.errors.EncodeError` naming the field when a value does not fit. The construct declarations in
:mod:`armbus.bus.layout` describe the same layouts and are tested to produce identical bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeVar

from armbus.bus.codec import Packet
from armbus.bus.cycle import Cycle, CycleRecord, CycleReply
from armbus.bus.errors import DecodeError, EncodeError
from armbus.bus.payload import Message, check_u, fit, need
from armbus.bus.wire import DEFAULT_TTL, LineErrorKind, MsgType

__all__ = ["REGISTRY", "Cycle", "CycleRecord", "CycleReply", "EStop", "Enumerate", "EnumerateReply", "Error",
           "Fault", "Heartbeat", "JointRecord", "Message", "Ping", "PingReply", "Read", "ReadReply", "Reboot",
           "SetGoal", "State", "SyncRead", "SyncReadReply", "SyncRecord", "SyncWrite", "Torque", "Undeliverable",
           "Write", "WriteReply", "decode_packet", "decode_payload", "make_packet"]

# --------------------------------------------------------------------------------------------- fixed layouts
@dataclass(frozen=True)
class Ping(Message):
    TYPE = MsgType.PING
    _FMT = struct.Struct("<")


@dataclass(frozen=True)
class PingReply(Message):
    TYPE = MsgType.PING_REPLY
    _FMT = struct.Struct("<HBBIB")
    model: int
    fw_major: int
    fw_minor: int
    serial: int
    address: int


@dataclass(frozen=True)
class Read(Message):
    TYPE = MsgType.READ
    _FMT = struct.Struct("<HB")
    reg: int
    length: int


@dataclass(frozen=True)
class WriteReply(Message):
    TYPE = MsgType.WRITE_REPLY
    _FMT = struct.Struct("<HB")
    reg: int
    length: int


@dataclass(frozen=True)
class SetGoal(Message):
    TYPE = MsgType.SET_GOAL
    _FMT = struct.Struct("<Bi")
    mode: int
    value: int


@dataclass(frozen=True)
class Torque(Message):
    TYPE = MsgType.TORQUE
    _FMT = struct.Struct("<B")
    enable: int


@dataclass(frozen=True)
class EStop(Message):
    TYPE = MsgType.ESTOP
    _FMT = struct.Struct("<B")
    reason: int = 0


@dataclass(frozen=True)
class Heartbeat(Message):
    TYPE = MsgType.HEARTBEAT
    _FMT = struct.Struct("<I")
    host_time_ms: int


@dataclass(frozen=True)
class Reboot(Message):
    TYPE = MsgType.REBOOT
    _FMT = struct.Struct("<")


@dataclass(frozen=True)
class State(Message):
    TYPE = MsgType.STATE
    _FMT = struct.Struct("<BiihhH")
    status: int
    position: int  # urad
    velocity: int  # urad/s
    current: int  # mA
    temperature: int  # 0.1 degC
    voltage: int  # mV


@dataclass(frozen=True)
class Fault(Message):
    TYPE = MsgType.FAULT
    _FMT = struct.Struct("<BBi")
    code: int
    active: int
    value: int


@dataclass(frozen=True)
class Undeliverable(Message):
    TYPE = MsgType.UNDELIVERABLE
    _FMT = struct.Struct("<BBBBBHB")
    reporter: int
    next_hop: int
    orig_src: int
    orig_dst: int
    orig_type: int
    orig_msg_id: int
    reason: int


@dataclass(frozen=True)
class Error(Message):
    TYPE = MsgType.ERROR
    _FMT = struct.Struct("<BBH")
    orig_type: int
    kind: int
    detail: int = 0


# ------------------------------------------------------------------------------------------ variable layouts
_REG = struct.Struct("<H")
_REG_LEN = struct.Struct("<HB")
_SYNC_W = struct.Struct("<HBB")
_RECORD = struct.Struct("<HI")  # enumeration record: model, serial


RD = TypeVar("RD", bound="_RegisterData")


@dataclass(frozen=True)
class _RegisterData(Message):
    """Layout shared by READ_REPLY and WRITE: a register address (u16) and the register bytes."""

    reg: int
    data: bytes

    def pack(self) -> bytes:
        check_u("reg", self.reg, 0xFFFF)
        return fit("data", _REG.pack(self.reg) + bytes(self.data))

    @classmethod
    def unpack(cls: type[RD], payload: bytes) -> RD:
        need(cls, payload, 2)
        return cls(_REG.unpack_from(payload)[0], bytes(payload[2:]))


@dataclass(frozen=True)
class ReadReply(_RegisterData):
    TYPE = MsgType.READ_REPLY


@dataclass(frozen=True)
class Write(_RegisterData):
    TYPE = MsgType.WRITE


@dataclass(frozen=True)
class JointRecord:
    """One joint's line in an enumeration: its model and serial number."""

    model: int
    serial: int


@dataclass(frozen=True)
class Enumerate(Message):
    TYPE = MsgType.ENUMERATE
    records: tuple[JointRecord, ...] = ()

    def pack(self) -> bytes:
        check_u("count", len(self.records), 0xFF)
        out = bytearray([len(self.records)])
        for i, r in enumerate(self.records):
            check_u(f"records[{i}].model", r.model, 0xFFFF)
            check_u(f"records[{i}].serial", r.serial, 0xFFFFFFFF)
            out += _RECORD.pack(r.model, r.serial)
        return fit("records", bytes(out))

    @classmethod
    def unpack(cls, payload: bytes) -> Enumerate:
        need(cls, payload, 1)
        count = payload[0]
        if len(payload) != 1 + count * _RECORD.size:
            raise DecodeError(LineErrorKind.LENGTH, f"{cls.TYPE.name}: count {count} disagrees with payload size")
        recs = tuple(JointRecord(*_RECORD.unpack_from(payload, 1 + i * _RECORD.size)) for i in range(count))
        return cls(recs)


@dataclass(frozen=True)
class EnumerateReply(Enumerate):
    TYPE = MsgType.ENUMERATE_REPLY


@dataclass(frozen=True)
class SyncWrite(Message):
    """One frame carrying a slice of ``slice_len`` bytes for each joint from address ``first`` on."""

    TYPE = MsgType.SYNC_WRITE
    reg: int
    slice_len: int
    first: int
    data: bytes

    def pack(self) -> bytes:
        check_u("reg", self.reg, 0xFFFF)
        check_u("slice_len", self.slice_len, 0xFF)
        check_u("first", self.first, 0xFF)
        if self.slice_len == 0 or len(self.data) % self.slice_len:
            raise EncodeError("data", f"{len(self.data)} bytes is not a whole number of {self.slice_len}-byte slices")
        return fit("data", _SYNC_W.pack(self.reg, self.slice_len, self.first) + bytes(self.data))

    @classmethod
    def unpack(cls, payload: bytes) -> SyncWrite:
        need(cls, payload, _SYNC_W.size)
        reg, slice_len, first = _SYNC_W.unpack_from(payload)
        data = bytes(payload[_SYNC_W.size:])
        if slice_len == 0 or len(data) % slice_len:
            raise DecodeError(LineErrorKind.LENGTH, f"SYNC_WRITE: {len(data)} bytes is not n x {slice_len}")
        return cls(reg, slice_len, first, data)

    @property
    def count(self) -> int:
        return len(self.data) // self.slice_len

    def slice_for(self, address: int) -> bytes | None:
        """The slice addressed to ``address``, or None when it has none."""
        i = address - self.first
        if 0 <= i < self.count:
            return self.data[i * self.slice_len:(i + 1) * self.slice_len]
        return None

    def rest(self) -> SyncWrite | None:
        """What the first addressee forwards: the message without its slice, or None when nothing remains."""
        if self.count <= 1:
            return None
        return SyncWrite(self.reg, self.slice_len, self.first + 1, self.data[self.slice_len:])


@dataclass(frozen=True)
class SyncRecord:
    """One joint's answer in a sync-read: its address, status flags and register bytes."""

    address: int
    status: int
    data: bytes


@dataclass(frozen=True)
class SyncRead(Message):
    TYPE = MsgType.SYNC_READ
    reg: int
    length: int
    records: tuple[SyncRecord, ...] = ()

    def pack(self) -> bytes:
        check_u("reg", self.reg, 0xFFFF)
        check_u("length", self.length, 0xFF)
        out = bytearray(_REG_LEN.pack(self.reg, self.length))
        for i, r in enumerate(self.records):
            if len(r.data) != self.length:
                raise EncodeError(f"records[{i}].data", f"{len(r.data)} bytes, expected {self.length}")
            check_u(f"records[{i}].address", r.address, 0xFF)
            check_u(f"records[{i}].status", r.status, 0xFF)
            out += bytes((r.address, r.status)) + r.data
        return fit("records", bytes(out))

    @classmethod
    def unpack(cls: type[SR], payload: bytes) -> SR:
        need(cls, payload, _REG_LEN.size)
        reg, length = _REG_LEN.unpack_from(payload)
        size = 2 + length
        body = payload[_REG_LEN.size:]
        if len(body) % size:
            raise DecodeError(LineErrorKind.LENGTH, f"{cls.TYPE.name}: records are not whole {size}-byte units")
        recs = tuple(
            SyncRecord(body[i], body[i + 1], bytes(body[i + 2:i + size])) for i in range(0, len(body), size)
        )
        return cls(reg, length, recs)

    def with_record(self, record: SyncRecord) -> SyncRead:
        """This request with one more joint's record appended (what each joint forwards)."""
        return type(self)(self.reg, self.length, (*self.records, record))


SR = TypeVar("SR", bound=SyncRead)


@dataclass(frozen=True)
class SyncReadReply(SyncRead):
    TYPE = MsgType.SYNC_READ_REPLY


REGISTRY: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (Ping, PingReply, Enumerate, EnumerateReply, Read, ReadReply, Write, WriteReply, SyncWrite,
                SyncRead, SyncReadReply, SetGoal, Torque, EStop, Heartbeat, Reboot, Cycle, CycleReply, State, Fault,
                Undeliverable, Error)
}
assert set(REGISTRY) == {int(t) for t in MsgType}, "every MsgType needs a payload class"


def decode_payload(msg_type: int, payload: bytes) -> Message:
    """Decode a payload for ``msg_type``. Raises DecodeError (kind TYPE or LENGTH)."""
    cls = REGISTRY.get(msg_type)
    if cls is None:
        raise DecodeError(LineErrorKind.TYPE, f"unknown message type 0x{msg_type:02x}")
    return cls.unpack(payload)


def make_packet(msg: Message, src: int, dst: int, msg_id: int, ttl: int = DEFAULT_TTL) -> Packet:
    """Wrap a message in a network-layer :class:`~armbus.bus.codec.Packet`."""
    return Packet(src, dst, int(msg.TYPE), msg_id, ttl, msg.pack())


def decode_packet(packet: Packet) -> Message:
    """Decode the payload of a packet. Raises DecodeError (kind TYPE or LENGTH)."""
    return decode_payload(packet.type, packet.payload)
