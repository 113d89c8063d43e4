"""End to end: the kernel's capture tap writes a trace of a virtual arm; decode and stats read it back."""

from __future__ import annotations

from pathlib import Path

from armbus.bus.codec import Packet
from armbus.bus.link import LinkConfig, LinkEndpoint, PacketReceived
from armbus.bus.messages import Enumerate, EnumerateReply, Ping, PingReply, Read, ReadReply, decode_packet, make_packet
from armbus.bus.wire import Address, FrameKind, MsgType
from armbus.hil.trace.decode import decode_file, record
from armbus.hil.trace.pcapng import TraceWriter
from armbus.hil.trace.stats import compute
from armbus.hil.virtual_arm import VirtualArm

STEP_NS = 50_000  # host polling period: 50 us


class _Host:
    """A host link endpoint polled every STEP_NS against the arm's HostPort."""

    def __init__(self, arm: VirtualArm) -> None:
        self.arm = arm
        self.link = LinkEndpoint(LinkConfig(baud=1_000_000), seed=7, name="host")
        assert arm.port is not None
        self.port = arm.port

    def exchange(self, packets: list[Packet], replies: int, max_steps: int = 4000) -> list[Packet]:
        got: list[Packet] = []
        for p in packets:
            self.link.send(p, self.arm.now)
        for _ in range(max_steps):
            self.port.write(self.link.data_to_send(self.arm.now))
            self.arm.run_for(STEP_NS)
            data = self.port.read()
            if data:
                self.link.receive_data(data, self.arm.now)
            deadline = self.link.next_deadline()
            if deadline is not None and deadline <= self.arm.now:
                self.link.handle_timer(self.arm.now)
            got += [ev.packet for ev in self.link.events() if isinstance(ev, PacketReceived)]
            if len(got) >= replies and self.link.idle:
                self.port.write(self.link.data_to_send(self.arm.now))
                self.arm.run_for(10 * STEP_NS)  # let the last ACK reach the joint
                return got
        raise AssertionError(f"only {len(got)} of {replies} replies")


def test_virtual_arm_capture_decodes_with_latencies(tmp_path: Path) -> None:
    path = tmp_path / "arm.pcapng"
    arm = VirtualArm(3, seed=7)
    host = _Host(arm)
    with TraceWriter(path, {"baud": 1_000_000, "joints": 3, "seed": 7}) as writer:
        arm.kernel.add_tap(writer)
        enum = host.exchange([make_packet(Enumerate(), 0, Address.BROADCAST, 1)], 1)
        assert isinstance(decode_packet(enum[0]), EnumerateReply)
        replies = host.exchange([make_packet(Ping(), 0, 3, 2), make_packet(Read(0, 2), 0, 2, 3)], 2)
    assert {type(decode_packet(p)) for p in replies} == {PingReply, ReadReply}

    table = decode_file(str(path))
    assert table.trace.metadata["joints"] == "3"
    assert {i.link for i in table.trace.interfaces} == {"host-j1", "j1-j2", "j2-j3"}
    assert (table.error == 0).all()
    recs = [record(table, i) for i in range(len(table))]
    pings = [r for r in recs if r.get("type") == "PING"]
    assert [r["link"] for r in pings] == ["host-j1", "j1-j2", "j2-j3"]  # one hop after the other, in time order

    stats = compute(table)
    assert stats.e2e_latency["PING"].count == 1 and stats.e2e_latency["READ"].count == 1
    assert stats.e2e_latency["PING"].max_ns > stats.e2e_latency["READ"].max_ns > 0  # joint 3 is farther
    assert stats.unanswered_requests == 0 and sum(stats.line_errors.values()) == 0
    assert stats.frames_by_type["PING"] == 3 and stats.messages_by_type["PING"] == 1
    data_frames = int((table.kind == FrameKind.DATA).sum())
    assert stats.hop_latency["all"].count == data_frames - stats.retransmissions - stats.unacked_frames
    assert stats.hop_latency["all"].p50_ns > 0
    assert int((table.type == MsgType.PING_REPLY).sum()) == 3
