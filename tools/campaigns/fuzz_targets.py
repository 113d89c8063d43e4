"""Fuzz targets: every receive path of armbus, each with its invariants, fed one input (bytes) at a time.

Theory of operation
-------------------
A target turns one input into calls on the code under test and checks what must hold whatever the input:

* the call returns a valid result or a counted, reported error (the errors a target expects are listed per
  target; anything else escaping is a finding);
* buffers stay bounded (deframer buffer, link queues and event queues, router and host backlogs, pending
  requests): a violated bound raises :class:`InvariantViolation`, a finding too;
* no hang: simulated-time targets run in :class:`armbus.hil.kernel.Kernel`, which raises ``SimulationError`` when a
  node's timer never lets time move on; the runner also times every input.

Stateless targets (``deframer``, ``decode``, ``trace``) build everything from the input. Stateful targets
(``joint``, ``host``) keep one session (a node wired to peer link endpoints in a small simulation) across inputs,
because building a joint costs about a millisecond; :meth:`FuzzTarget.renew` starts a new session, and a
finding is reproduced by replaying the inputs of its session (the runner keeps them). The first byte of a
stateful input is an opcode: raw bytes on a port (whole, or byte by byte as a UART interrupt would see them),
a structurally valid packet of any type and payload sent by a peer's link (so it passes framing, CRC and the
link's sequence check and reaches the router and the message handlers), a host API call, or a time step.

Seeds (:meth:`FuzzTarget.seeds`) are valid inputs to mutate: wire frames of every message type, control frames,
payloads that decode, well-formed pcapng captures in both byte orders and several timestamp resolutions.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from armbus.bus.codec import (
    MAX_CHUNK,
    Frame,
    LineError,
    Packet,
    decode_frame,
    encode_control,
    encode_data,
    encode_frame,
)
from armbus.bus.deframer import Deframer
from armbus.bus.errors import DecodeError
from armbus.bus.link import LinkConfig, LinkEndpoint
from armbus.bus.messages import (
    REGISTRY,
    Enumerate,
    EStop,
    Heartbeat,
    JointRecord,
    Message,
    Ping,
    Read,
    Reboot,
    SetGoal,
    SyncRead,
    SyncWrite,
    Torque,
    Write,
    decode_payload,
)
from armbus.bus.router import REPORT_BACKLOG
from armbus.bus.wire import MAX_PAYLOAD, NS_PER_MS, Address, FrameKind, GoalMode, MsgType
from armbus.controller.host import BACKLOG_LIMIT, HostNode
from armbus.hil.kernel import Kernel
from armbus.hil.trace.pcapng import TraceFileError, epb_block, idb_block, shb_block
from armbus.hil.trace.reader import parse_trace
from armbus.joints.node import DOWN, UP, JointNode

#: Every message type, in a fixed order: a selector byte picks one by index (mod len).
TYPES = tuple(sorted(int(t) for t in MsgType))
#: Link events a node may hold between two pumps: a burst of line errors from one large chunk (one per
#: delimiter-separated piece: at most 270 on a 1 kB input split by many 0x00) is drained on the next pump.
EVENTS_BOUND = 1024
#: Pending host requests the host target allows before it stops issuing new ones.
MAX_PENDING = 32


class InvariantViolation(AssertionError):
    """A fuzz invariant failed: the message names the bound or property and the observed value."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise InvariantViolation(what)


def sample_messages() -> list[Message]:
    """One or more valid messages of every request type a joint handles (seed material)."""
    return [
        Ping(), Enumerate(), Enumerate((JointRecord(0x0A01, 0x1001),)), Read(37, 1), Read(56, 15),
        Write(37, b"\x01"), Write(40, b"\x64\x00"), Write(54, b"\xff"), Write(39, b"\x00"),
        SyncWrite(44, 4, 1, struct.pack("<ii", 300_000, -200_000)), SyncRead(56, 15),
        SetGoal(int(GoalMode.POSITION), 500_000), SetGoal(int(GoalMode.VELOCITY), -1_000_000),
        SetGoal(int(GoalMode.CURRENT), 400), Torque(1), Torque(0), EStop(3), Heartbeat(1234), Reboot(),
    ]


def check_link(link: LinkEndpoint, where: str) -> None:
    """Bounded buffers of one hop link, read through its public queries."""
    cfg = link.config
    deframer = link.deframer
    queued = cfg.queue_limit - link.queue_space  # ordinary packets queued (not the one in flight)
    events = len(link.event_queue())
    check(deframer.buffered <= MAX_CHUNK, f"{where}: deframer holds {deframer.buffered} bytes")
    check(queued <= cfg.queue_limit, f"{where}: link queue {queued} > {cfg.queue_limit}")
    check(events <= EVENTS_BOUND, f"{where}: {events} undrained link events")
    check(link.output_frames <= 2 * EVENTS_BOUND, f"{where}: {link.output_frames} undrained output frames")
    c, d = link.counters, deframer.counters
    check(c.crc_errors + c.framing_errors == d.error_total,
          f"{where}: deframer saw {d.error_total} line errors, link counted {c.crc_errors + c.framing_errors}")


class FuzzTarget:
    """Base: ``run(data)`` returns "ok" or "error" (a counted, reported error) or raises (a finding)."""

    name = ""
    stateful = False

    def seeds(self) -> list[bytes]:
        raise NotImplementedError

    def run(self, data: bytes) -> str:
        raise NotImplementedError

    def renew(self) -> None:
        """Start a fresh session (stateful targets)."""


# ------------------------------------------------------------------------------------------- stateless
class DeframerTarget(FuzzTarget):
    """The streaming deframer: same items whole, split at a data-chosen cut and byte by byte; bounded."""

    name = "deframer"

    def seeds(self) -> list[bytes]:
        out = [encode_control(k, s) for k in (FrameKind.ACK, FrameKind.RESET, FrameKind.RESET_ACK) for s in (0, 7)]
        for i, m in enumerate(sample_messages()):
            out.append(encode_data(i, 0, Packet(0, 1 + i % 3, int(m.TYPE), i * 77, 32, m.pack())))
        out.append(encode_data(1, 1, Packet(0, 2, int(MsgType.WRITE), 9, 32, bytes(range(MAX_PAYLOAD)))))
        return [b"".join(out[i:i + 3]) for i in range(0, len(out), 3)] + out

    def run(self, data: bytes) -> str:
        whole = Deframer()
        items = whole.feed(data)
        check(whole.buffered <= MAX_CHUNK, f"deframer holds {whole.buffered} bytes")
        cut = data[0] * len(data) // 256 if data else 0
        split = Deframer()
        parts = split.feed(data[:cut])
        check(split.buffered <= MAX_CHUNK, f"deframer holds {split.buffered} bytes after the first part")
        parts += split.feed(data[cut:])
        check(parts == items, f"split at {cut} gives {len(parts)} items, whole {len(items)}")
        if len(data) <= 300:  # byte by byte is slow; the short inputs are the interesting ones for it
            bytewise = Deframer()
            one: list[Frame | LineError] = []
            for i in range(len(data)):
                one += bytewise.feed(data[i:i + 1])
            check(one == items, "byte-by-byte feeding disagrees with the whole input")
        errors = sum(1 for it in items if isinstance(it, LineError))
        c = whole.counters
        check(c.error_total == errors and c.frames == len(items) - errors, "deframer counters disagree with output")
        check(c.bytes == len(data), "deframer byte counter")
        for it in items:
            if isinstance(it, Frame):  # every frame it accepts re-encodes to a frame that decodes the same
                check(decode_frame(encode_frame(it)[:-1]) == it, f"frame does not survive re-encoding: {it}")
        return "error" if errors else "ok"


class DecodeTarget(FuzzTarget):
    """``decode_payload`` for every type (byte 0 picks it; 0xFF: byte 1 is the raw type) and ``decode_frame``."""

    name = "decode"

    def seeds(self) -> list[bytes]:
        out = []
        for m in sample_messages():
            out.append(bytes((TYPES.index(int(m.TYPE)),)) + m.pack())
        out += [b"\xff\x40" + bytes(15), b"\xff\x86\x38\x00\x04\x01\x00" + bytes(4), b"\xff\x55"]
        return out

    def run(self, data: bytes) -> str:
        if not data:
            return "ok"
        if data[0] == 0xFF and len(data) >= 2:
            msg_type, payload = data[1], data[2:2 + MAX_PAYLOAD]
        else:  # a payload on the wire is at most MAX_PAYLOAD bytes (one length byte)
            msg_type, payload = TYPES[data[0] % len(TYPES)], data[1:1 + MAX_PAYLOAD]
        outcome = "ok"
        try:
            msg = decode_payload(msg_type, payload)
        except DecodeError:
            outcome = "error"
        else:
            check(int(msg.TYPE) == msg_type, f"type 0x{msg_type:02x} decoded as {msg.TYPE.name}")
            check(type(msg) is REGISTRY[msg_type], "wrong payload class")
            packed = msg.pack()
            check(packed == payload, f"{msg.TYPE.name}: pack(unpack(p)) != p ({payload.hex()} -> {packed.hex()})")
        try:
            frame = decode_frame(data)
        except DecodeError:
            return "error"
        check(decode_frame(encode_frame(frame)[:-1]) == frame, "decoded frame does not survive re-encoding")
        return outcome


def sample_captures() -> list[bytes]:
    """Well-formed pcapng captures: both byte orders, ns/us/binary timestamp resolutions, a second section."""
    out = []
    frames = [encode_data(i, 0, Packet(0, 1, int(m.TYPE), i, 32, m.pack())) for i, m in enumerate(sample_messages())]
    for bo in ("<", ">"):
        for tsresol in (9, 6, 0x80 | 20):
            parts = [shb_block({"baud": 1_000_000, "joints": 2, "seed": 7}, "fuzz seed", ["a comment"],
                               byte_order=bo),
                     idb_block("host-j1:a>b", "down", byte_order=bo, tsresol=tsresol),
                     idb_block("host-j1:b>a", "up", byte_order=bo, tsresol=tsresol)]
            for i, f in enumerate(frames[:8]):
                parts.append(epb_block(i % 2, 1_000_000 * i + 17, f, byte_order=bo))
            out.append(b"".join(parts))
    other = idb_block("eth0", link_type=1)
    out.append(out[0] + other + epb_block(2, 5, b"\x01\x02\x03") + out[1])
    return out


class TraceTarget(FuzzTarget):
    """``parse_trace`` on any bytes: a Trace whose columns index inside the buffer, or a TraceFileError."""

    name = "trace"

    def seeds(self) -> list[bytes]:
        return sample_captures()

    def run(self, data: bytes) -> str:
        try:
            trace = parse_trace(data)
        except TraceFileError:
            return "error"
        n = len(trace)
        check(len(trace.chunk_t_ns) == len(trace.chunk_off) == len(trace.chunk_len) == n, "column lengths differ")
        armbus = {i.index for i in trace.interfaces if i.armbus}
        for iid, off, size in zip(trace.chunk_iface.tolist(), trace.chunk_off.tolist(), trace.chunk_len.tolist(),
                                  strict=True):
            check(iid in armbus, f"chunk on interface {iid}, not an armbus interface")
            check(off >= 0 and size >= 0 and off + size <= len(data), f"chunk [{off}, +{size}) outside the file")
        for _ in trace.chunks():
            pass
        return "error" if trace.truncated or trace.warnings else "ok"


# -------------------------------------------------------------------------------------------- stateful
class LinkPeer:
    """A neighbour that is only a hop link (node-driving contract, one port): it acks, resets, sends packets."""

    def __init__(self, name: str, seed: int) -> None:
        self.link = LinkEndpoint(LinkConfig(), seed=seed, name=name)
        self.received = 0

    def receive_data(self, port: int, data: bytes, now: int) -> None:
        self.link.receive_data(data, now)
        self._drain()

    def data_to_send(self, port: int, now: int) -> bytes:
        return self.link.data_to_send(now)

    def next_deadline(self) -> int | None:
        return self.link.next_deadline()

    def handle_timer(self, now: int) -> None:
        self.link.handle_timer(now)
        self._drain()

    def _drain(self) -> None:
        for _ in self.link.events():
            self.received += 1


def packet_from(data: bytes, default_dst: int, msg_ids: list[int] | None = None) -> Packet:
    """A valid packet from fuzz bytes: src, dst (biased to ``default_dst`` / BROADCAST), type, msg_id, ttl,
    payload. With ``msg_ids``, a msg_id high byte of 0xFF picks one of them (replies to pending requests)."""
    d = data.ljust(6, b"\x00")
    src, dst_sel, type_sel, msg_id, ttl = d[0], d[1], d[2], d[3] | d[4] << 8, d[5]
    dst = default_dst if dst_sel < 0x60 else int(Address.BROADCAST) if dst_sel < 0xA0 else dst_sel
    if msg_ids and d[4] == 0xFF:
        msg_id = msg_ids[d[3] % len(msg_ids)]
    return Packet(src, dst, TYPES[type_sel % len(TYPES)], msg_id, ttl, bytes(data[6:6 + MAX_PAYLOAD]))


def _op_seeds(op_packet: int, default_src: int, default_dst: int) -> list[bytes]:
    out = []
    for m in sample_messages():
        head = bytes((default_src, default_dst if m.TYPE not in (MsgType.SYNC_WRITE, MsgType.SYNC_READ,
                                                                  MsgType.ESTOP, MsgType.HEARTBEAT) else 0x80,
                      TYPES.index(int(m.TYPE)), 5, 0, 32))
        out.append(bytes((op_packet,)) + head + m.pack())
    return out


class JointTarget(FuzzTarget):
    """One joint between two peer links (host side on UP, a neighbour on DOWN) in a kernel.

    Opcode (byte 0) % 8: 0/1 raw bytes on UP/DOWN via ``receive_data``; 2/3 the same via ``rx_byte``; 4/5 a
    valid packet from the UP/DOWN peer (:func:`packet_from`); 6 time step of byte 1 ms; 7 a reboot.
    Every input also advances time by 1 ms.
    """

    name = "joint"
    stateful = True

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.sessions = 0
        self.renew()

    def renew(self) -> None:
        self.sessions += 1
        k = self.kernel = Kernel(seed=self.seed)
        self.joint = JointNode(serial=0x1001, seed=self.seed + self.sessions)
        self.up, self.down = LinkPeer("up", 1), LinkPeer("down", 2)
        k.add_node("up", self.up, ports=(0,))
        k.add_node("j", self.joint, ports=(UP, DOWN))
        k.add_node("down", self.down, ports=(0,))
        k.connect("up", 0, "j", UP, baud=1_000_000, turnaround_ns=10_000)
        k.connect("j", DOWN, "down", 0, baud=1_000_000, turnaround_ns=10_000)
        k.run_for(5 * NS_PER_MS)
        self.joint.set_address(1)

    def seeds(self) -> list[bytes]:
        out = _op_seeds(4, 0, 1)
        out += [b"\x00" + s for s in DeframerTarget().seeds()[:6]] + [b"\x06\x30", b"\x07", b"\x01\x00\x05\x12"]
        return out

    def run(self, data: bytes) -> str:
        if not data:
            return "ok"
        k, j, now = self.kernel, self.joint, self.kernel.now
        op, body = data[0] % 8, bytes(data[1:])
        if op in (0, 1):
            j.receive_data(op, body, now)
            k.wake("j")
        elif op in (2, 3):
            for b in body:
                j.rx_byte(op - 2, b, now)
            k.wake("j")
        elif op in (4, 5):
            peer = self.up if op == 4 else self.down
            peer.link.send(packet_from(body, j.address), now)
            k.wake("up" if op == 4 else "down")
        elif op == 6:
            k.run_for((body[0] if body else 1) * NS_PER_MS)
        elif op == 7:
            j.reboot(now)
            k.wake("j")
        k.run_for(1 * NS_PER_MS)
        self.check()
        return "ok"

    def check(self) -> None:
        j = self.joint
        for port, link in enumerate(j.links):
            check_link(link, f"joint port {port}")
        check_link(self.up.link, "up peer")
        check_link(self.down.link, "down peer")
        check(len(j.router.backlog) <= REPORT_BACKLOG, f"router backlog {len(j.router.backlog)}")
        box, ev = j.control.commands, j.control.events
        check(len(box) <= box.capacity and len(ev) <= ev.capacity, "joint mailbox over capacity")
        d = j.next_deadline()
        check(d is None or d >= self.kernel.now - 2 * NS_PER_MS, f"joint deadline {d} left behind at {self.kernel.now}")


class HostTarget(FuzzTarget):
    """The host node behind one peer link (playing joint 1), heartbeats on, requests pending.

    Opcode (byte 0) % 6: 0 raw bytes via ``receive_data``; 1 a valid packet from the peer (msg_id may be a
    pending request's); 2 a host request (byte 1 picks the message, byte 2 the destination); 3 a host send;
    4 time step of byte 1 ms; 5 the port is lost and restored.
    """

    name = "host"
    stateful = True

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.events = 0
        self.renew()

    def renew(self) -> None:
        k = self.kernel = Kernel(seed=self.seed)
        self.host = HostNode()
        self.peer = LinkPeer("j1", 3)
        self.msg_ids: list[int] = []
        k.add_node("host", self.host, ports=(0,))
        k.add_node("j1", self.peer, ports=(0,))
        k.connect("host", 0, "j1", 0, baud=1_000_000, turnaround_ns=10_000)
        self.host.set_heartbeat(20 * NS_PER_MS, k.now)
        k.wake("host")
        k.run_for(5 * NS_PER_MS)

    def seeds(self) -> list[bytes]:
        out = _op_seeds(1, 1, 0)
        replies = [b"\x01\x01\x10\x01\x00\xff\x20" + bytes(9), b"\x01\x02\x10\x06\x00\xff\x20\x38\x00\x00",
                   b"\x01\x01\x10\x0e\x00\xff\x20\x03\x06\x00\x00", b"\x01\x01\x10\x0f\x00\x00\x20" + bytes(15)]
        return out + replies + [b"\x02\x00\x01", b"\x02\x05\xff", b"\x03\x01\x02", b"\x04\x64", b"\x05",
                                b"\x00" + encode_control(FrameKind.RESET, 9)]

    def _message(self, sel: int) -> Message:
        requests: list[Callable[[], Message]] = [Ping, lambda: Read(37, 1), lambda: Write(42, b"\x00\x00"),
                                                 lambda: SyncRead(56, 15), Enumerate, lambda: Read(0, 200)]
        return requests[sel % len(requests)]()

    def run(self, data: bytes) -> str:
        if not data:
            return "ok"
        k, h, now = self.kernel, self.host, self.kernel.now
        op, body = data[0] % 6, bytes(data[1:]).ljust(2, b"\x00")
        if op == 0:
            h.receive_data(0, bytes(data[1:]), now)
        elif op == 1:
            self.peer.link.send(packet_from(bytes(data[1:]), 0, self.msg_ids), now)
            k.wake("j1")
        elif op == 2 and h.pending_requests < MAX_PENDING:
            dst = body[1] if body[1] else 1
            self.msg_ids = [*self.msg_ids[-15:], h.request(self._message(body[0]), dst, now, 50 * NS_PER_MS)]
        elif op == 3:
            h.send(SetGoal(1 + body[0] % 3, body[1]), body[1] or 1, now)
        elif op == 4:
            k.run_for(body[0] * NS_PER_MS)
        elif op == 5:
            h.port_lost(now)
            h.port_restored(now)
        k.wake("host")
        k.run_for(1 * NS_PER_MS)
        while h.next_event() is not None:
            self.events += 1
        self.check()
        return "ok"

    def check(self) -> None:
        h = self.host
        check_link(h.link, "host link")
        check_link(self.peer.link, "peer")
        check(h.backlogged <= BACKLOG_LIMIT, f"host backlog {h.backlogged}")
        check(h.pending_requests <= MAX_PENDING, f"{h.pending_requests} pending requests")
        limit = BACKLOG_LIMIT + h.link.config.queue_limit + 2
        check(h.heartbeats_unacked <= limit, f"{h.heartbeats_unacked} heartbeat ids awaiting their ack (> {limit})")


TARGETS: dict[str, Callable[[], FuzzTarget]] = {
    "deframer": DeframerTarget, "decode": DecodeTarget, "joint": JointTarget, "host": HostTarget,
    "trace": TraceTarget,
}
