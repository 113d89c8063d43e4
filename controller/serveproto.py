"""The serve protocol: what ``armbus serve`` and its clients say on the unix socket; sans-I/O framing.

Theory of operation
-------------------
A client of ``armbus serve`` speaks bus packets, not bytes of the serial line: the server owns the hop link to
joint 1 (and with it the sequence numbers, the retransmissions and the msg_ids on the bus), the client owns its
requests (its own msg_ids, its own timeouts, its own correlation). Each frame on the socket is

    u32 length (little-endian, of what follows) | u8 kind | body

at most :data:`MAX_FRAME` bytes after the length. Strings are UTF-8, the rest of the body after the fixed fields.
A packet is ``src u8 | dst u8 | type u8 | msg_id u16 | ttl u8 | payload`` (:func:`pack_packet`).

Client -> server:

* ``HELLO`` version, flags (:data:`WANT_PACKETS`: the bus traffic of a host; :data:`WANT_WIRE`: the line bytes,
  for a tap), the client's name (the holder name the lease shows by default). First frame, once.
* ``SEND`` urgent flag, a packet (the client's msg_id in it): put it on the bus. Exactly one ``ACKED`` or
  ``FAILED`` follows for it, as from a hop link.
* ``LEASE`` token, op (:data:`ACQUIRE` / :data:`RELEASE`), name: exactly one ``LEASE_ANSWER`` follows.

Server -> client:

* ``WELCOME`` version, the host link's baud rate, whether the link to joint 1 is open, the lease holder.
* ``ACKED`` msg_id / ``FAILED`` msg_id, reason (an :class:`~armbus.bus.wire.UndeliverableReason`), whether the
  packet may have been delivered, a text.
* ``RECEIVED`` a packet from the bus: the answers to this client's packets (msg_id put back to the client's),
  and everything unsolicited (STATE, FAULT, reports not about a client's packet), which every host client gets.
* ``LINK`` what happened to the host link (:class:`LinkNews`), with a detail byte (a line error's kind).
* ``LEASE_ANSWER`` token, granted, holder; ``LEASE_HOLDER`` yours flag, holder ("" = nobody): sent to every
  client whenever the holder changes.
* ``WIRE`` direction (:data:`TO_ARM` / :data:`TO_HOST`), the monotonic ns the bytes were read or written, the
  bytes: the line as the server sees it, for taps.
* ``DROPPED`` how many frames this client missed so far because it read too slowly (telemetry and wire bytes
  only: the answers to its own packets are never dropped; see :mod:`armbus.controller.servehub`).

:class:`FrameReader` buffers bytes in any chunking and yields whole frames; a frame longer than
:data:`MAX_FRAME` or of an unknown kind is the peer's fault (:class:`ServeProtocolError`): the server drops that
client, a client treats it as a lost port.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from armbus.bus.codec import Packet
from armbus.bus.errors import PeerError

#: Protocol version in HELLO and WELCOME; a server refuses another.
VERSION = 1
#: Longest frame after its length field: a packet is at most a few hundred bytes; a WIRE chunk is cut to fit.
MAX_FRAME = 16_384
#: Line bytes per WIRE frame at most.
WIRE_CHUNK = MAX_FRAME - 16
WANT_PACKETS = 0x01
WANT_WIRE = 0x02
ACQUIRE, RELEASE = 1, 2
TO_ARM, TO_HOST = 0, 1

_LEN = struct.Struct("<I")
_PACKET = struct.Struct("<BBBHB")
_U16 = struct.Struct("<H")
_HELLO = struct.Struct("<BB")
_WELCOME = struct.Struct("<BIB")
_FAILED = struct.Struct("<HBB")
_LEASE = struct.Struct("<HB")
_WIRE = struct.Struct("<BQ")


class Kind(enum.IntEnum):
    HELLO = 0x01
    SEND = 0x02
    LEASE = 0x03
    WELCOME = 0x81
    ACKED = 0x82
    FAILED = 0x83
    RECEIVED = 0x84
    LINK = 0x85
    LEASE_ANSWER = 0x86
    LEASE_HOLDER = 0x87
    WIRE = 0x88
    DROPPED = 0x89


class LinkNews(enum.IntEnum):
    """What a ``LINK`` frame says about the server's host link."""

    OPENED = 1
    RESET_BY_PEER = 2
    RESET_BY_HOST = 3
    DOWN = 4
    LINE_ERROR = 5


class ServeProtocolError(PeerError):
    """The other end broke the serve protocol (a bad frame)."""


def frame(kind: Kind, body: bytes = b"") -> bytes:
    return _LEN.pack(len(body) + 1) + bytes((kind,)) + body


def pack_packet(p: Packet) -> bytes:
    return _PACKET.pack(p.src, p.dst, p.type, p.msg_id, p.ttl) + bytes(p.payload)


def unpack_packet(body: bytes) -> Packet:
    if len(body) < _PACKET.size:
        raise ServeProtocolError(f"a packet of {len(body)} bytes is shorter than its header")
    src, dst, typ, msg_id, ttl = _PACKET.unpack_from(body)
    return Packet(src, dst, typ, msg_id, ttl, bytes(body[_PACKET.size:]))


# ------------------------------------------------------------------------------------------ the frames, as values
@dataclass(frozen=True)
class Hello:
    version: int
    flags: int
    name: str

    def encode(self) -> bytes:
        return frame(Kind.HELLO, _HELLO.pack(self.version, self.flags) + self.name.encode())


@dataclass(frozen=True)
class Send:
    packet: Packet
    urgent: bool

    def encode(self) -> bytes:
        return frame(Kind.SEND, bytes((int(self.urgent),)) + pack_packet(self.packet))


@dataclass(frozen=True)
class Lease:
    token: int
    op: int
    name: str

    def encode(self) -> bytes:
        return frame(Kind.LEASE, _LEASE.pack(self.token, self.op) + self.name.encode())


@dataclass(frozen=True)
class Welcome:
    version: int
    baud: int
    link_open: bool
    holder: str

    def encode(self) -> bytes:
        return frame(Kind.WELCOME, _WELCOME.pack(self.version, self.baud, int(self.link_open)) + self.holder.encode())


@dataclass(frozen=True)
class Acked:
    msg_id: int

    def encode(self) -> bytes:
        return frame(Kind.ACKED, _U16.pack(self.msg_id))


@dataclass(frozen=True)
class Failed:
    msg_id: int
    reason: int
    maybe_delivered: bool
    text: str

    def encode(self) -> bytes:
        return frame(Kind.FAILED, _FAILED.pack(self.msg_id, self.reason, int(self.maybe_delivered))
                     + self.text.encode())


@dataclass(frozen=True)
class Received:
    packet: Packet

    def encode(self) -> bytes:
        return frame(Kind.RECEIVED, pack_packet(self.packet))


@dataclass(frozen=True)
class Link:
    news: LinkNews
    detail: int = 0

    def encode(self) -> bytes:
        return frame(Kind.LINK, bytes((self.news, self.detail)))


@dataclass(frozen=True)
class LeaseAnswer:
    token: int
    granted: bool
    holder: str

    def encode(self) -> bytes:
        return frame(Kind.LEASE_ANSWER, _LEASE.pack(self.token, int(self.granted)) + self.holder.encode())


@dataclass(frozen=True)
class LeaseHolder:
    yours: bool
    holder: str  # "" = nobody

    def encode(self) -> bytes:
        return frame(Kind.LEASE_HOLDER, bytes((int(self.yours),)) + self.holder.encode())


@dataclass(frozen=True)
class Wire:
    direction: int
    time: int  # monotonic ns
    data: bytes

    def encode(self) -> bytes:
        return frame(Kind.WIRE, _WIRE.pack(self.direction, self.time) + self.data)


@dataclass(frozen=True)
class Dropped:
    count: int

    def encode(self) -> bytes:
        return frame(Kind.DROPPED, _LEN.pack(self.count))


Message = Hello | Send | Lease | Welcome | Acked | Failed | Received | Link | LeaseAnswer | LeaseHolder | Wire | Dropped


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def decode(kind: int, body: bytes) -> Message:
    """The frame ``kind`` with ``body`` as a value; ServeProtocolError if it is malformed."""
    try:
        if kind == Kind.HELLO:
            version, flags = _HELLO.unpack_from(body)
            return Hello(version, flags, _text(body[_HELLO.size:]))
        if kind == Kind.SEND:
            return Send(unpack_packet(body[1:]), bool(body[0]))
        if kind == Kind.LEASE:
            token, op = _LEASE.unpack_from(body)
            return Lease(token, op, _text(body[_LEASE.size:]))
        if kind == Kind.WELCOME:
            version, baud, is_open = _WELCOME.unpack_from(body)
            return Welcome(version, baud, bool(is_open), _text(body[_WELCOME.size:]))
        if kind == Kind.ACKED:
            return Acked(_U16.unpack_from(body)[0])
        if kind == Kind.FAILED:
            msg_id, reason, maybe = _FAILED.unpack_from(body)
            return Failed(msg_id, reason, bool(maybe), _text(body[_FAILED.size:]))
        if kind == Kind.RECEIVED:
            return Received(unpack_packet(body))
        if kind == Kind.LINK:
            return Link(LinkNews(body[0]), body[1])
        if kind == Kind.LEASE_ANSWER:
            token, granted = _LEASE.unpack_from(body)
            return LeaseAnswer(token, bool(granted), _text(body[_LEASE.size:]))
        if kind == Kind.LEASE_HOLDER:
            return LeaseHolder(bool(body[0]), _text(body[1:]))
        if kind == Kind.WIRE:
            direction, t = _WIRE.unpack_from(body)
            return Wire(direction, t, bytes(body[_WIRE.size:]))
        if kind == Kind.DROPPED:
            return Dropped(_LEN.unpack_from(body)[0])
    except (struct.error, IndexError, ValueError) as exc:
        raise ServeProtocolError(f"malformed {Kind(kind).name} frame ({len(body)} bytes): {exc}") from None
    raise ServeProtocolError(f"unknown frame kind 0x{kind:02x}")


class FrameReader:
    """Buffers bytes in any chunking; :meth:`frames` yields every whole frame as a value. The buffer never holds
    more than one frame's bytes plus one read's."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def frames(self) -> Iterator[Message]:
        buf = self._buf
        start = 0
        try:
            while len(buf) - start >= _LEN.size:
                (size,) = _LEN.unpack_from(buf, start)
                if not 1 <= size <= MAX_FRAME:
                    raise ServeProtocolError(f"frame of {size} bytes (the limit is {MAX_FRAME})")
                end = start + _LEN.size + size
                if len(buf) < end:
                    break
                kind, body = buf[start + _LEN.size], bytes(buf[start + _LEN.size + 1:end])
                start = end
                yield decode(kind, body)
        finally:
            del buf[:start]
