"""The conformance tool's side of the wire: a transport, and a host that speaks the link by hand.

Theory of operation
-------------------
A conformance check must see what the arm does, frame by frame, so it cannot use the host node's own
:class:`~armbus.bus.link.LinkEndpoint` (which would hide the arm's mistakes by retrying, deduplicating and
resynchronising for it). :class:`WireHost` is a minimal host written against the wire alone: frames are built
with :func:`~armbus.bus.codec.encode_data` / :func:`~armbus.bus.codec.encode_control` and
:func:`~armbus.bus.messages.make_packet`, and everything the arm sends goes through a
:class:`~armbus.bus.deframer.Deframer` into a log of timestamped frames that the rules read.

The host behaves as docs/hoplink.md asks of a peer, so that only the arm is under test: it acks every DATA frame
at once (unless a rule turns ``auto_ack`` off to provoke a retransmission), delivers each sequence number once,
answers every RESET with RESET_ACK (zeroing its sequence numbers unless the RESET is a copy), and numbers its
requests with increasing msg_ids (docs/protocol.md, section 3).

A :class:`Transport` moves bytes and tells the time: :class:`SerialTransport` is a pyserial port or URL in wall-
clock time; :class:`SimTransport` is a :class:`~armbus.hil.virtual_arm.VirtualArm` in simulated time (the tests
use it to check the tool itself, deterministically).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from armbus.bus.codec import Frame, LineError, Packet, encode_control, encode_data
from armbus.bus.deframer import Deframer
from armbus.bus.errors import PortError
from armbus.bus.messages import Message, make_packet
from armbus.bus.wire import NS_PER_S, Address, FrameFlag, FrameKind, MsgType
from armbus.hil.virtual_arm import VirtualArm

__all__ = ["Received", "SerialTransport", "SimTransport", "Transport", "WireHost"]

_DATA, _ACK, _RESET, _RESET_ACK = (int(k) for k in (FrameKind.DATA, FrameKind.ACK, FrameKind.RESET,
                                                     FrameKind.RESET_ACK))
_RETX = int(FrameFlag.RETRANSMIT)
#: Packets a joint originates with its own msg_ids: never the answer to a request, whatever their id.
_UNSOLICITED = frozenset({int(MsgType.STATE), int(MsgType.FAULT)})


class Transport(Protocol):
    """Bytes to and from the arm, and a clock in seconds."""

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes:
        """What arrived within ``timeout`` seconds (returns early once something did); b"" if nothing."""
        ...

    def now(self) -> float: ...

    def close(self) -> None: ...


class SerialTransport:
    """A serial port, pty or pyserial URL, in wall-clock time."""

    def __init__(self, port: str, baud: int) -> None:
        import serial

        try:
            self.port: Any = serial.serial_for_url(port, baudrate=baud, timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortError(f"cannot open {port}: {exc}") from None
        self.port.reset_input_buffer()

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"writing to the port failed: {exc}") from None

    def read(self, timeout: float) -> bytes:
        import serial

        try:
            self.port.timeout = max(0.0, timeout)
            first = self.port.read(1)
            if not first:
                return b""
            return first + self.port.read(self.port.in_waiting)
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"reading from the port failed: {exc}") from None

    def now(self) -> float:
        return time.monotonic()

    def close(self) -> None:
        self.port.close()


class SimTransport:
    """A virtual arm in simulated time: reading advances the simulation in steps of ``step_ns``."""

    def __init__(self, arm: VirtualArm, step_ns: int = 100_000) -> None:
        if arm.port is None:
            raise ValueError("SimTransport needs a VirtualArm built with its default HostPort")
        self.arm, self.step_ns = arm, step_ns
        arm.port.read()  # what arrived before we opened the port is gone, as with a serial port's input buffer

    def write(self, data: bytes) -> None:
        assert self.arm.port is not None
        self.arm.port.write(data)

    def read(self, timeout: float) -> bytes:
        port = self.arm.port
        assert port is not None
        end = self.arm.now + max(1, math.ceil(timeout * NS_PER_S))
        while not port.in_waiting and self.arm.now < end:
            self.arm.run_until(min(end, self.arm.now + self.step_ns))
        return port.read()

    def now(self) -> float:
        return self.arm.now / NS_PER_S

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Received:
    """One chunk from the arm: when it arrived (transport seconds) and what it decoded to."""

    t: float
    item: Frame | LineError

    @property
    def frame(self) -> Frame | None:
        return self.item if isinstance(self.item, Frame) else None


class WireHost:
    """A host that speaks the hop link by hand (see the module docstring). Times are transport seconds."""

    def __init__(self, transport: Transport, *, seed: int | None = None) -> None:
        self.transport = transport
        rng = random.Random(seed)
        self.nonce = rng.randrange(256)
        self.msg_id = rng.randrange(1, 0x8000)  # increasing from here, modulo 2^16 (docs/protocol.md)
        self.deframer = Deframer()
        self.log: list[Received] = []  # every chunk the arm sent, in order
        self.delivered: list[tuple[float, Packet]] = []  # DATA packets taken (each sequence number once)
        self.tx_seq = 0
        self.rx_expected = 0
        self.auto_ack = True
        self.peer_nonce: int | None = None
        self.heard = False  # DATA/ACK from the arm since we last answered a RESET (copy detection)

    # ------------------------------------------------------------------------------------------- sending
    def next_msg_id(self) -> int:
        self.msg_id = (self.msg_id + 1) & 0xFFFF
        return self.msg_id

    def send_control(self, kind: FrameKind, seq: int, flags: int = 0) -> None:
        self.transport.write(b"\x00" + encode_control(int(kind), seq, flags))

    def send_packet(self, packet: Packet, *, seq: int | None = None, flags: int = 0) -> int:
        """Put one DATA frame on the line (``seq`` defaults to the next one); returns the seq used."""
        s = self.tx_seq if seq is None else seq
        self.transport.write(encode_data(s, flags, packet))
        return s

    def packet(self, message: Message, dst: int, msg_id: int | None = None) -> Packet:
        return make_packet(message, int(Address.HOST), dst, self.next_msg_id() if msg_id is None else msg_id)

    # ----------------------------------------------------------------------------------------- receiving
    def poll(self, timeout: float) -> int:
        """Read what arrives within ``timeout`` (returning after the first bytes); returns the log length."""
        data = self.transport.read(timeout)
        if data:
            now = self.transport.now()
            for item in self.deframer.feed(data):
                self.log.append(Received(now, item))
                if isinstance(item, Frame):
                    self._react(item, now)
        return len(self.log)

    def _react(self, frame: Frame, now: float) -> None:
        kind, seq = frame.kind, frame.seq
        if kind == _DATA:
            self.heard = True
            if not self.auto_ack:
                return
            if seq == self.rx_expected:
                self.rx_expected = (seq + 1) & 0xFF
                assert frame.packet is not None
                self.delivered.append((now, frame.packet))
            elif seq != (self.rx_expected - 1) & 0xFF:
                return  # out of window: a real host would reset; the rules look at the log
            self.send_control(FrameKind.ACK, seq)
        elif kind == _ACK:
            self.heard = True
        elif kind == _RESET:
            if not (seq == self.peer_nonce and not self.heard):  # a new session, not a copy
                self.tx_seq = self.rx_expected = 0
            self.peer_nonce, self.heard = seq, False
            self.send_control(FrameKind.RESET_ACK, seq)

    def wait_for(self, match: Callable[[Received], bool], timeout: float, start: int | None = None
                 ) -> Received | None:
        """The first logged chunk from index ``start`` (default: the current end) that ``match`` accepts,
        reading for up to ``timeout`` seconds; None if none came."""
        i = len(self.log) if start is None else start
        end = self.transport.now() + timeout
        while True:
            while i < len(self.log):
                if match(self.log[i]):
                    return self.log[i]
                i += 1
            left = end - self.transport.now()
            if left <= 0:
                return None
            self.poll(left)

    def wait_packet(self, match: Callable[[Packet], bool], timeout: float, start: int = 0
                    ) -> Packet | None:
        """The first delivered packet from index ``start`` that ``match`` accepts, within ``timeout``."""
        end = self.transport.now() + timeout
        i = start
        while True:
            while i < len(self.delivered):
                if match(self.delivered[i][1]):
                    return self.delivered[i][1]
                i += 1
            left = end - self.transport.now()
            if left <= 0:
                return None
            self.poll(left)

    def settle(self, seconds: float) -> None:
        """Keep reading (and acking) for ``seconds``."""
        end = self.transport.now() + seconds
        while (left := end - self.transport.now()) > 0:
            self.poll(left)

    # ------------------------------------------------------------------------------------- transactions
    def handshake(self, timeout: float) -> Received | None:
        """RESET with a fresh nonce; the RESET_ACK that answers it, or None. Our sequence numbers start at 0."""
        self.nonce = (self.nonce + 1) & 0xFF
        start = len(self.log)
        self.send_control(FrameKind.RESET, self.nonce)
        self.tx_seq = self.rx_expected = 0
        nonce = self.nonce
        got = self.wait_for(lambda r: _is(r, _RESET_ACK, nonce), timeout, start)
        if got is not None:
            self.tx_seq = self.rx_expected = 0
            self.heard = False
        return got

    def send_acked(self, packet: Packet, timeout: float, tries: int = 3) -> Received | None:
        """Send ``packet`` as the next DATA frame and wait for its ACK (retransmitting with the RETRANSMIT flag
        as a host must); the ACK, or None. The sequence number advances once acked."""
        seq = self.tx_seq
        for attempt in range(tries):
            start = len(self.log)
            self.send_packet(packet, seq=seq, flags=_RETX if attempt else 0)
            ack = self.wait_for(lambda r: _is(r, _ACK, seq), timeout / tries, start)
            if ack is not None:
                self.tx_seq = (seq + 1) & 0xFF
                return ack
        return None

    def request(self, message: Message, dst: int, timeout: float) -> tuple[Packet, Packet | None]:
        """Send a request and wait for the packet from the arm that carries its msg_id (reply or ERROR)."""
        packet = self.packet(message, dst)
        start = len(self.delivered)
        if self.send_acked(packet, timeout) is None:
            return packet, None
        wide = dst in (Address.BROADCAST, Address.UNASSIGNED)

        def answer(p: Packet) -> bool:
            return (p.msg_id == packet.msg_id and p.dst == Address.HOST and (wide or p.src == dst)
                    and p.type not in _UNSOLICITED)

        return packet, self.wait_packet(answer, timeout, start)


def _is(r: Received, kind: int, seq: int) -> bool:
    f = r.frame
    return f is not None and f.kind == kind and f.seq == seq
