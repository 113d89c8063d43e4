"""Test bench for joint nodes: a host link endpoint and a chain of joints, zero-latency wires, simulated time.

Bytes drained from a port reach the peer at the same instant; an unconnected port (the last joint's DOWN) loses
them. ``connected`` (default: all) is how many joints are cabled; the others run but hear nothing, until a test
raises it (a joint plugged in later). Time jumps from deadline to deadline. The full wire model is hil's; this
bench is for handler tests.
"""

from __future__ import annotations

from armbus.bus.codec import Packet, decode_wire, encode_control, encode_data
from armbus.bus.link import LinkEndpoint, PacketReceived
from armbus.bus.messages import Message, decode_packet, make_packet
from armbus.bus.wire import Address, FrameKind, MsgType
from armbus.joints.node import DOWN, UP, JointNode, make_joint

MS = 1_000_000


class Bench:
    def __init__(self, joints: int = 1, boot_ms: int = 300, connected: int | None = None) -> None:
        self.now = 0
        self.connected = joints if connected is None else connected
        self.host = LinkEndpoint(seed=99, name="host")
        self.nodes: list[JointNode] = [make_joint(serial=1000 + k) for k in range(joints)]
        self.received: list[Packet] = []
        self._msg_id = 0
        self.run(boot_ms * MS)  # links open; the last joint's DOWN link goes DOWN

    # --- plumbing --------------------------------------------------------------------------------------
    def _shuttle(self) -> bool:
        moved = False
        now = self.now
        data = self.host.data_to_send(now)
        if data:
            moved = True
            self.nodes[0].receive_data(UP, data, now)
        for k, node in enumerate(self.nodes):
            up = node.data_to_send(UP, now)
            if up and k < self.connected:
                moved = True
                if k == 0:
                    self.host.receive_data(up, now)
                else:
                    self.nodes[k - 1].receive_data(DOWN, up, now)
            down = node.data_to_send(DOWN, now)
            if down and k + 1 < self.connected:
                moved = True
                self.nodes[k + 1].receive_data(UP, down, now)
        for ev in self.host.events():
            if isinstance(ev, PacketReceived):
                self.received.append(ev.packet)
        return moved

    def run(self, duration_ns: int) -> None:
        end = self.now + duration_ns
        while True:
            while self._shuttle():
                pass
            deadlines = [d for d in [self.host.next_deadline(), *(n.next_deadline() for n in self.nodes)]
                         if d is not None]
            t = min(deadlines) if deadlines else end
            if t > end:
                self.now = end
                return
            self.now = max(self.now, t)
            self.host.handle_timer(self.now)
            for n in self.nodes:
                if (d := n.next_deadline()) is not None and d <= self.now:
                    n.handle_timer(self.now)

    # --- host side -------------------------------------------------------------------------------------
    def request(self, msg: Message, dst: int = 1, run_ms: int = 5) -> int:
        self._msg_id += 1
        assert self.host.send(make_packet(msg, Address.HOST, dst, self._msg_id), self.now)
        self.run(run_ms * MS)
        return self._msg_id

    def send_raw(self, packet: Packet, run_ms: int = 5) -> None:
        assert self.host.send(packet, self.now)
        self.run(run_ms * MS)

    def replies(self, msg_id: int) -> list[Message]:
        return [decode_packet(p) for p in self.received if p.msg_id == msg_id and p.type != MsgType.FAULT]

    def reply(self, msg_id: int) -> Message:
        got = self.replies(msg_id)
        assert len(got) == 1, got
        return got[0]

    def faults(self) -> list[Message]:
        return [decode_packet(p) for p in self.received if p.type == MsgType.FAULT]


def wire_frame(packet: Packet, seq: int = 0) -> bytes:
    """Wire bytes of a DATA frame (for feeding a node directly)."""
    return encode_data(seq, 0, packet)


def opened_node() -> tuple[JointNode, int]:
    """A fresh joint whose UP link has completed its RESET handshake with a fake host (which never acks DATA),
    and the time then."""
    node = make_joint(serial=5)
    now, wire = 0, node.data_to_send(UP, 0)
    while not wire:  # the link may stay quiet for a while after boot before its first RESET
        now = node.next_deadline() or now + MS
        node.handle_timer(now)
        node.data_to_send(DOWN, now)
        wire = node.data_to_send(UP, now)
    node.receive_data(UP, encode_control(FrameKind.RESET_ACK, decode_wire(wire).seq), now)
    assert node.links[UP].is_open
    return node, now
