"""The corners of the spec a port from docs/ alone has to get right, checked on the wire against the virtual arm
(simulated time): ERROR details (the table in docs/protocol.md), the smallest payloads (their vectors), UNASSIGNED
and BROADCAST as destinations, reboot announcements and routing through an unassigned joint."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from armbus.bus.codec import Frame, Packet
from armbus.bus.cycle import Cycle
from armbus.bus.deframer import Deframer
from armbus.bus.messages import (
    Enumerate,
    EnumerateReply,
    Error,
    EStop,
    Fault,
    Message,
    Ping,
    PingReply,
    Read,
    Reboot,
    SetGoal,
    Torque,
    Undeliverable,
    Write,
    decode_packet,
)
from armbus.bus.wire import Address, ErrorKind, FaultCode, FrameKind, MsgType, StatusFlag, UndeliverableReason
from armbus.hil.virtual_arm import VirtualArm
from armbus.joints.registers import BY_NAME
from armbus.tools.conformance.wire import SimTransport, WireHost
from armbus.tools.gen.vectors import frame_from_json

DOCS = Path(__file__).resolve().parents[2] / "docs"
VECTORS = {v["name"]: v for v in json.loads((DOCS / "test-vectors.json").read_text(encoding="utf-8"))["vectors"]}
BCAST, UNASSIGNED = int(Address.BROADCAST), int(Address.UNASSIGNED)
T = 0.2  # seconds of simulated time to wait for an answer


def _host(joints: int = 3, *, enumerate_: bool = True) -> tuple[VirtualArm, WireHost]:
    arm = VirtualArm(joints, seed=7)
    host = WireHost(SimTransport(arm), seed=3)
    assert host.handshake(T) is not None
    if enumerate_:
        _, reply = host.request(Enumerate(), BCAST, T)
        assert reply is not None and isinstance(decode_packet(reply), EnumerateReply)
    return arm, host


def _ask(host: WireHost, packet: Packet) -> Message:
    first = len(host.delivered)
    assert host.send_acked(packet, T) is not None
    reply = host.wait_packet(lambda p: p.msg_id == packet.msg_id and p.type != MsgType.FAULT, T, first)
    assert reply is not None, packet
    return decode_packet(reply)


def _reports(host: WireHost, since: int) -> list[Message]:
    return [decode_packet(p) for _, p in host.delivered[since:]]


# ------------------------------------------------------------------------------------------ ERROR details
def _doc_rows() -> list[tuple[str, str, str]]:
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    table = text.split("<!-- error details: kind | request | detail -->", 1)[1].split("\n\n", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("|")][2:]
    return [tuple(c.strip() for c in r.strip("|").split("|")) for r in rows]  # type: ignore[misc]


Provoke = Callable[[WireHost], tuple[Packet, dict[str, int]]]
GOAL = BY_NAME["goal_position"].address
TORQUE_ENABLE = BY_NAME["torque_enable"].address

#: How to provoke each row of the table (kind, the request's first word, its detail cell), and the values the
#: detail cell names. The rows that need an e-stopped joint come last (see the test).
PROVOKE: dict[tuple[str, str, str], Provoke] = {
    ("INSTRUCTION", "CYCLE", "0"): lambda h: (h.packet(Cycle(0x38, 0), 1), {}),
    ("RANGE", "READ,", "`reg`"): lambda h: (h.packet(Read(0x0100, 1), 1), {"`reg`": 0x0100}),
    ("LENGTH", "any", "payload length received"):
        lambda h: (h.packet(Ping(), 1)._replace(payload=b"\x01\x02\x03"), {"payload length received": 3}),
    ("LENGTH", "READ,", "`reg`"): lambda h: (h.packet(Read(8, 2), 1), {"`reg`": 8}),
    ("ACCESS", "WRITE:", "`reg`"): lambda h: (h.packet(Write(4, bytes(4)), 1), {"`reg`": 4}),
    ("LIMIT", "WRITE:", "`reg`"): lambda h: (h.packet(Write(38, b"\x09"), 1), {"`reg`": 38}),
    ("LIMIT", "SET_GOAL:", "`mode`"): lambda h: (h.packet(SetGoal(9, 0), 1), {"`mode`": 9}),
    ("LIMIT", "SET_GOAL:", "goal register address"):
        lambda h: (h.packet(SetGoal(1, 200_000_000), 1), {"goal register address": GOAL}),
    # e-stopped from here on (the REBOOT first: the first newer packet makes the joint forget the ESTOP's id)
    ("BUSY", "REBOOT", "0"): lambda h: (h.packet(Reboot(), 1, msg_id=(h.msg_id - 1) & 0xFFFF), {}),
    ("BUSY", "WRITE:", "`reg`"): lambda h: (h.packet(Write(TORQUE_ENABLE, b"\x01"), 1), {"`reg`": TORQUE_ENABLE}),
    ("BUSY", "SET_GOAL", "goal register address"):
        lambda h: (h.packet(SetGoal(1, 1000), 1), {"goal register address": GOAL}),
    ("BUSY", "TORQUE", "37 (`torque_enable`)"): lambda h: (h.packet(Torque(1), 1), {}),
}


def test_error_details_are_what_the_table_in_protocol_md_says() -> None:
    rows = _doc_rows()
    keys = [(kind, request.split()[0], detail) for kind, request, detail in rows]
    assert set(keys) == set(PROVOKE), "the table in docs/protocol.md and PROVOKE list different rows"
    _, host = _host()
    estopped = False
    for key in PROVOKE:  # PROVOKE's order: the BUSY rows last
        kind, _, detail = key
        if kind == "BUSY" and not estopped:
            assert host.send_acked(host.packet(EStop(1), BCAST), T) is not None
            host.settle(0.01)
            estopped = True
        packet, values = PROVOKE[key](host)
        msg = _ask(host, packet)
        expected = values.get(detail, int(detail.split()[0]) if detail[0].isdigit() else None)
        assert isinstance(msg, Error), (key, msg)
        assert (msg.orig_type, ErrorKind(msg.kind).name, msg.detail) == (packet.type, kind, expected), key


# ---------------------------------------------------------------------------------------- smallest payloads
def _vector_packet(host: WireHost, name: str, dst: int) -> Packet:
    packet = frame_from_json(VECTORS[name]["frame"]).packet
    assert packet is not None
    return packet._replace(dst=dst, msg_id=host.next_msg_id())


def test_the_smallest_payloads_behave_as_specified() -> None:
    arm, host = _host()
    write_empty = _vector_packet(host, "write_empty", 1)
    msg = _ask(host, write_empty)
    assert isinstance(msg, Error) and (msg.kind, msg.detail) == (ErrorKind.LENGTH, 0x0020)
    msg = _ask(host, host.packet(Read(0x0010, 0), 1))
    assert isinstance(msg, Error) and (msg.kind, msg.detail) == (ErrorKind.LENGTH, 0x0010)
    handled = [j.counters.handled for j in arm.joints]
    first = len(host.delivered)
    assert host.send_acked(_vector_packet(host, "sync_write_no_slices", BCAST), T) is not None
    host.settle(0.05)
    assert _reports(host, first) == []  # no reply, no ERROR
    assert [j.counters.handled - h for j, h in zip(arm.joints, handled, strict=True)] == [1, 0, 0]  # not forwarded
    empty = decode_packet(frame_from_json(VECTORS["read_reply_empty"]["frame"]).packet)  # type: ignore[arg-type]
    assert empty.data == b""  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------- UNASSIGNED and BROADCAST
def test_unassigned_reaches_unassigned_joints_only_and_enumerate_goes_to_broadcast() -> None:
    _, host = _host(enumerate_=False)
    reply = _ask(host, host.packet(Ping(), UNASSIGNED))  # nobody is enumerated: joint 1 takes it
    assert isinstance(reply, PingReply) and reply.address == UNASSIGNED
    assert isinstance(_ask(host, host.packet(Enumerate(), BCAST)), EnumerateReply)
    for message in (Enumerate(), Ping()):  # now every joint is assigned: 0xFE goes down and off the end
        packet = host.packet(message, UNASSIGNED)
        report = _ask(host, packet)
        assert isinstance(report, Undeliverable), report
        assert (report.reporter, report.orig_dst, report.orig_type, report.reason) == (
            3, UNASSIGNED, packet.type, UndeliverableReason.LINK_DOWN)
    again = _ask(host, host.packet(Enumerate(), BCAST))  # re-enumeration: to BROADCAST, as the first time
    assert isinstance(again, EnumerateReply) and len(again.records) == 3


def test_ttl_of_forwarded_packets_counts_the_joints_that_passed_them_on() -> None:
    _, host = _host()
    reply = host.wait_packet(lambda p: p.type == MsgType.ENUMERATE_REPLY, 0)
    assert reply is not None and (reply.src, reply.ttl) == (3, 30)  # enumeration reply: 32 - 2 forwarding joints
    packet = host.packet(Ping(), 3)
    first = len(host.delivered)
    assert host.send_acked(packet, T) is not None
    answer = host.wait_packet(lambda p: p.msg_id == packet.msg_id, T, first)
    assert answer is not None and answer.ttl == 30


# ------------------------------------------------------------------------------------------------ reboots
@pytest.mark.parametrize("joints", [3])
def test_reboot_is_announced_from_unassigned_and_the_unassigned_joint_routes_down(joints: int) -> None:
    arm, host = _host(joints)
    host.settle(0.05)
    faults = [m for m in _reports(host, 0) if isinstance(m, Fault)]
    assert faults == []  # power-on: the flag only, no FAULT
    status = _ask(host, host.packet(Read(BY_NAME["status"].address, 1), 1))
    assert status.data[0] & StatusFlag.REBOOTED  # type: ignore[attr-defined]
    for boots in (1, 2):
        first = len(host.delivered)
        dst = 2 if boots == 1 else UNASSIGNED  # the second time it is unassigned: reached at 0xFE
        assert host.send_acked(host.packet(Reboot(), dst), T) is not None
        host.settle(0.1)  # 20 ms boot, then the links' handshakes
        sent = [p for _, p in host.delivered[first:] if p.type == MsgType.FAULT]
        assert [(p.src, decode_packet(p)) for p in sent] == [(UNASSIGNED, Fault(int(FaultCode.REBOOTED), 1, boots))]
        assert arm.joints[1].address == UNASSIGNED
    reply = _ask(host, host.packet(Ping(), 3))  # joint 2 is unassigned and passes it down: joint 3 answers
    assert isinstance(reply, PingReply) and reply.address == 3
    packet = host.packet(Ping(), 4)  # no joint 4: down through joint 2 and joint 3, off the end
    report = _ask(host, packet)
    assert isinstance(report, Undeliverable) and (report.reporter, report.reason) == (3, UndeliverableReason.LINK_DOWN)


# ------------------------------------------------------------------------------------------------ start-up
def _first_reset_nonce(seed: int) -> int:
    arm = VirtualArm(2, seed=seed)
    arm.run_for(2_000_000)
    assert arm.port is not None
    frame = Deframer().feed(arm.port.read())[0]
    assert isinstance(frame, Frame) and frame.kind == FrameKind.RESET
    return frame.seq


def test_joint_1_s_first_nonce_depends_on_the_seed_and_is_reproducible() -> None:
    nonces = [_first_reset_nonce(seed) for seed in range(16)]
    assert len(set(nonces)) >= 12, nonces  # a random start per seed (docs/hoplink.md), not one fixed value
    assert _first_reset_nonce(5) == nonces[5]


@pytest.mark.parametrize("late_ms", [0, 3, 17, 250])
def test_a_host_that_connects_late_keeps_its_session(late_ms: int) -> None:
    # joint 1 has been probing its UP port with RESET since power-on; the host's handshake must be the last one:
    # no RESET from the joint afterwards, and the host's first frame is acked and answered
    arm = VirtualArm(3, seed=late_ms)
    arm.run_for(late_ms * 1_000_000)
    host = WireHost(SimTransport(arm), seed=late_ms)
    opened = host.handshake(T)
    assert opened is not None
    start = host.log.index(opened) + 1
    host.settle(0.1)
    assert [r for r in host.log[start:] if r.frame is not None and r.frame.kind == FrameKind.RESET] == []
    reply = _ask(host, host.packet(Ping(), UNASSIGNED))
    assert isinstance(reply, PingReply) and reply.serial == arm.joints[0].serial
    assert arm.joints[0].links[0].counters.resets_accepted == 1


# ---------------------------------------------------------------------------------------------------- msg_id
def test_a_release_needs_a_msg_id_after_the_estop_s_in_serial_number_order() -> None:
    # docs/protocol.md, section 3, "msg_id": increasing ids modulo 2^16, RFC 1982 order, across the wrap
    _, host = _host()
    estop_reg = BY_NAME["estop"].address
    host.msg_id = 0xFFFE
    estop = host.packet(EStop(1), BCAST)  # msg_id 0xFFFF
    assert host.send_acked(estop, T) is not None
    host.settle(0.01)
    older = _ask(host, host.packet(Write(estop_reg, b"\x00"), 1, msg_id=0xFFF0))  # 15 before: older
    assert isinstance(older, Error) and (older.kind, older.detail) == (ErrorKind.BUSY, estop_reg)
    newer = _ask(host, host.packet(Write(estop_reg, b"\x00"), 1, msg_id=0x0001))  # 2 after, across the wrap
    assert not isinstance(newer, Error), newer
