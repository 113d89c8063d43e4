"""Wire constants of the armbus protocol, version 1: every number that appears on the bus.

Theory of operation
-------------------
A frame is a link header (one hop), an optional network header plus payload (end to end, DATA frames only)
and a CRC-16. It is COBS-encoded and followed by one 0x00 delimiter, so a receiver can always resynchronise at
the next 0x00. The byte layout is declared once with ``construct`` in :mod:`armbus.bus.layout`; the fast codec in
:mod:`armbus.bus.codec` is tested to be byte-identical to it. docs/protocol.md is the human-readable spec.

Every constant below says where its value comes from.
"""

from __future__ import annotations

import enum

#: Protocol version carried in the high nibble of the first byte. Bumped on any incompatible change.
PROTOCOL_VERSION = 1

#: Link header: ver_kind, seq, flags.
LINK_HEADER_SIZE = 3
#: Network header: src, dst, type, msg_id (u16 LE), ttl, length.
NET_HEADER_SIZE = 7
#: CRC-16/CCITT-FALSE, stored big-endian so that the CRC over frame+CRC is zero (one call checks a frame).
CRC_SIZE = 2
#: Payload length is one byte: 255 keeps the largest frame at 267 bytes (2.7 ms at 1 Mbaud), which bounds how long
#: an e-stop can wait behind a frame already on the wire, and fits a 512-byte firmware buffer with room to spare.
MAX_PAYLOAD = 255
DATA_OVERHEAD = LINK_HEADER_SIZE + NET_HEADER_SIZE + CRC_SIZE  # 12
CONTROL_FRAME_SIZE = LINK_HEADER_SIZE + CRC_SIZE  # 5: ACK, RESET, RESET_ACK
MAX_FRAME = DATA_OVERHEAD + MAX_PAYLOAD  # 267 bytes unencoded
#: COBS adds one byte per started 254-byte block; plus the 0x00 delimiter.
MAX_ENCODED = MAX_FRAME + (MAX_FRAME + 253) // 254 + 1  # 270 bytes on the wire, delimiter included
DELIMITER = 0x00

#: Default time-to-live of a new packet: each forwarding hop decrements it; longer than any supported chain.
DEFAULT_TTL = 32

# ------------------------------------------------------------------------------------- line and time base
#: Every time in armbus is an integer count of nanoseconds: sans-I/O entry points take ``now`` in ns.
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
NS_PER_US = 1_000
#: Every hop is a UART at 8N1: a start bit, 8 data bits and a stop bit per byte (docs/protocol.md).
BITS_PER_BYTE = 10
#: The bus's nominal line rate: the joints' default, and every tool's unless told otherwise (docs/protocol.md).
DEFAULT_BAUD = 1_000_000
#: Line rates a joint's UART ports take and the host may switch a chain to (docs/joints.md, "Line rate"): the
#: standard rates from 115200 up that Linux (termios B-constants) and the usual USB-serial bridges (FTDI, CP210x)
#: offer, up to 4 Mbaud, the fastest the real-time harness paces (armbus.hil.realtime). ``armbus scan`` tries them.
SUPPORTED_BAUDS = (115_200, 230_400, 460_800, 500_000, 921_600, 1_000_000, 2_000_000, 3_000_000, 4_000_000)


def wire_time_ns(nbytes: int, baud: int, bits_per_byte: int = BITS_PER_BYTE) -> int:
    """Nanoseconds that ``nbytes`` back-to-back bytes occupy the line at ``baud``, rounded up."""
    return -(-nbytes * bits_per_byte * NS_PER_S // baud)


def data_wire_size(payload_len: int) -> int:
    """Bytes a DATA frame with a ``payload_len``-byte payload occupies on the wire: headers and CRC, the COBS code
    bytes and the delimiter. Exact for frames under 254 bytes (COBS then adds one byte whatever the content),
    an upper bound above (a zero inside a 254-byte block saves its extra code byte). What a joint uses to know
    the wire time still ahead of a frame (docs/protocol.md, CYCLE)."""
    raw = DATA_OVERHEAD + payload_len
    return raw + (raw + 253) // 254 + 1


class FrameKind(enum.IntEnum):
    """Low nibble of byte 0. DATA carries a packet; the others are 5-byte link control frames."""

    DATA = 0
    ACK = 1  # seq = the seq of the DATA frame being acknowledged
    RESET = 2  # seq = a nonce; asks the peer to restart sequence numbering (after a reboot)
    RESET_ACK = 3  # seq = the nonce of the RESET it answers


class FrameFlag(enum.IntFlag):
    """Byte 2 of the link header. Reserved bits are sent as 0 and ignored on receipt."""

    NONE = 0
    RETRANSMIT = 0x01  # DATA: this frame is a retransmission (lets a trace count retries)


class Address(enum.IntEnum):
    """Network addresses. Joints get 1..253 at enumeration: their position in the chain."""

    HOST = 0
    FIRST_JOINT = 1
    LAST_JOINT = 0xFD
    UNASSIGNED = 0xFE  # a joint that has not been enumerated yet answers to this address too
    BROADCAST = 0xFF


class MsgType(enum.IntEnum):
    """Network-layer message types. Replies are ``request | 0x80``; ERROR is 0x80."""

    PING = 0x01
    ENUMERATE = 0x02
    READ = 0x03
    WRITE = 0x04
    SYNC_WRITE = 0x05
    SYNC_READ = 0x06
    SET_GOAL = 0x07
    TORQUE = 0x08
    ESTOP = 0x09
    HEARTBEAT = 0x0A
    REBOOT = 0x0B
    CYCLE = 0x0C  # the cyclic exchange: goals down, one record per joint back up (docs/protocol.md)
    # unsolicited, joint -> host
    STATE = 0x40
    FAULT = 0x41
    UNDELIVERABLE = 0x42
    # replies
    ERROR = 0x80
    PING_REPLY = 0x81
    ENUMERATE_REPLY = 0x82
    READ_REPLY = 0x83
    WRITE_REPLY = 0x84
    SYNC_READ_REPLY = 0x86
    CYCLE_REPLY = 0x8C


REPLY_BIT = 0x80
KNOWN_TYPES = frozenset(int(t) for t in MsgType)


class GoalMode(enum.IntEnum):
    """SET_GOAL mode byte; also the value of the joint's mode register."""

    POSITION = 1  # value in microradians
    VELOCITY = 2  # value in microradians per second
    CURRENT = 3  # value in milliamperes


class ErrorKind(enum.IntEnum):
    """ERROR reply kinds (after Dynamixel 2.0's status error field)."""

    INSTRUCTION = 1  # unknown or unsupported message type
    CRC = 2  # reserved: CRC failures are dropped silently per hop and retransmitted
    RANGE = 3  # register address outside the table
    LENGTH = 4  # payload or data length wrong for the message or register
    ACCESS = 5  # read-only register, or persistent register written with torque on
    LIMIT = 6  # value outside the register's limits
    BUSY = 7  # the joint cannot act now (e-stopped, rebooting, mailbox full)


class FaultCode(enum.IntEnum):
    """FAULT event codes sent by a joint."""

    OVER_TEMPERATURE = 1
    OVER_CURRENT = 2
    POSITION_LIMIT = 3
    VELOCITY_LIMIT = 4
    STALL = 5
    WATCHDOG = 6
    ESTOP = 7
    UNDERVOLTAGE = 8
    REBOOTED = 9


class UndeliverableReason(enum.IntEnum):
    """Why a hop gave up on a packet (UNDELIVERABLE payload)."""

    RETRIES = 1  # the next hop never acked within the retry limit
    TTL = 2  # time-to-live ran out
    NO_ROUTE = 3  # the destination lies past the end of the chain
    QUEUE_FULL = 4  # the hop's queue toward the next hop stayed full
    LINK_DOWN = 5  # the link to the next hop is known to be down
    LINK_RESET = 6  # the link was resynchronised while the packet was in flight: it may have been delivered


class StatusFlag(enum.IntFlag):
    """Joint status byte in STATE reports and SYNC_READ records."""

    NONE = 0
    TORQUE_ON = 0x01
    MOVING = 0x02
    AT_LIMIT = 0x04
    FAULT = 0x08
    ESTOPPED = 0x10
    WATCHDOG = 0x20
    OVERHEAT = 0x40
    REBOOTED = 0x80  # set after boot until the host reads or clears it

    def __str__(self) -> str:
        """The flags by name, ``TORQUE_ON|MOVING`` (``NONE`` when none is set), as a person reads them."""
        names = [f.name for f in type(self) if f.value and f.value & self.value and f.name is not None]
        unknown = self.value & ~sum(f.value for f in type(self))
        if unknown:
            names.append(f"0x{unknown:02x}")
        return "|".join(names) if names else "NONE"


class LineErrorKind(enum.IntEnum):
    """What a receiver saw wrong on the line. Each is counted and reported, never raised in a loop."""

    CRC = 1  # CRC mismatch
    COBS = 2  # invalid COBS encoding (a code byte pointing past the end, or an embedded zero)
    OVERSIZE = 3  # more than MAX_ENCODED bytes without a delimiter: dropped up to the next delimiter
    TRUNCATED = 4  # shorter than the smallest valid frame, or the length field points past the end
    VERSION = 5  # unknown protocol version
    KIND = 6  # unknown frame kind
    TYPE = 7  # unknown message type
    LENGTH = 8  # length field disagrees with the frame size, or a control frame with extra bytes
