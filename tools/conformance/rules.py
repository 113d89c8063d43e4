"""The conformance rules: what an arm must do on the wire, each checked by playing host, each citing the spec.

Theory of operation
-------------------
Every rule is a :class:`Rule`: a name, the section of docs/ it checks, and a function that drives a
:class:`~armbus.tools.conformance.wire.WireHost` and either returns a one-line account of what it saw or raises
:class:`RuleFailed` saying what the arm did instead. :func:`run_rules` runs them in order (a rule whose
prerequisite failed is skipped, not failed) and returns one :class:`Outcome` per rule.

The rules run against whatever is on the port: a reference virtual arm, or firmware someone else wrote. They use
only the joints' documented behaviour, and they leave the arm as they found it but enumerated and out of any
e-stop. A rule that needs the chain's length learns it from the enumeration rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from armbus.bus.codec import Frame, LineError, Packet
from armbus.bus.cycle import Cycle
from armbus.bus.errors import DecodeError
from armbus.bus.messages import (
    Enumerate,
    EnumerateReply,
    Error,
    EStop,
    Fault,
    JointRecord,
    Ping,
    PingReply,
    Read,
    Write,
    WriteReply,
    decode_packet,
)
from armbus.bus.wire import DEFAULT_TTL, Address, ErrorKind, FaultCode, FrameFlag, FrameKind, MsgType
from armbus.joints.registers import BY_NAME
from armbus.tools.conformance.wire import Received, WireHost

__all__ = ["RULES", "Context", "Outcome", "Rule", "RuleFailed", "run_rules"]

_RETX = int(FrameFlag.RETRANSMIT)
#: How long the arm has to stay quiet after the handshake: ten times the 20 ms backoff cap, the longest a joint's
#: own RESET retransmission timer can run at 1 Mbaud.
QUIET_AFTER_HANDSHAKE_S = 0.2
#: How long the arm may keep sending a frame after the ack that closed it (one more copy may cross the ack).
SETTLE_S = 0.2


class RuleFailed(Exception):
    """The arm broke the rule; the message says how."""


class Skipped(Exception):
    """The rule cannot run (a rule it needs failed)."""


@dataclass
class Context:
    host: WireHost
    timeout: float  # seconds to wait for each answer
    joints: list[JointRecord] = field(default_factory=list)  # from the enumeration rule
    passed: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Rule:
    name: str
    section: str  # where the rule is written
    check: Callable[[Context], str]
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    rule: Rule
    status: str  # "pass", "fail" or "skip"
    detail: str


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise RuleFailed(message)


def _decode(packet: Packet) -> object:
    try:
        return decode_packet(packet)
    except DecodeError as exc:
        raise RuleFailed(f"{MsgType(packet.type).name} from {packet.src} has a malformed payload: {exc}") from None


def _ask(ctx: Context, message: object, dst: int, what: str, timeout: float | None = None) -> tuple[Packet, object]:
    request, reply = ctx.host.request(message, dst, timeout or ctx.timeout)  # type: ignore[arg-type]
    if reply is None:
        raise RuleFailed(f"{what}: no answer with msg_id {request.msg_id} within {timeout or ctx.timeout:g} s")
    return request, _decode(reply)


def _answer(msg_id: int, src: int) -> Callable[[Packet], bool]:
    return lambda p: p.msg_id == msg_id and p.src == src


# ------------------------------------------------------------------------------------------------- rules
def reset_answered(ctx: Context) -> str:
    t0 = ctx.host.transport.now()
    got = ctx.host.handshake(ctx.timeout)
    nonce = ctx.host.nonce
    _expect(got is not None, f"RESET(0x{nonce:02x}) got no RESET_ACK(0x{nonce:02x}) within {ctx.timeout:g} s "
                             "(is the arm powered, the baud rate right?)")
    assert got is not None and got.frame is not None
    _expect(got.frame.flags == 0, f"RESET_ACK carries flags 0x{got.frame.flags:02x}; it must send 0")
    return f"RESET(0x{nonce:02x}) answered in {_ms(got.t - t0)}"


def quiet_after_handshake(ctx: Context) -> str:
    start = len(ctx.host.log)
    ctx.host.settle(QUIET_AFTER_HANDSHAKE_S)
    resets = [r for r in ctx.host.log[start:] if r.frame is not None and r.frame.kind == FrameKind.RESET]
    if resets:
        first, opened = resets[0], ctx.host.log[start - 1]
        seq = first.frame.seq if first.frame is not None else 0
        raise RuleFailed(f"the arm sent RESET(0x{seq:02x}) {_ms(first.t - opened.t)} after answering our "
                         "handshake: it resets the session the host just opened")
    return f"no RESET from the arm in the {_ms(QUIET_AFTER_HANDSHAKE_S)} after the handshake"


def first_data_acked(ctx: Context) -> str:
    host = ctx.host
    packet = host.packet(Enumerate(), int(Address.BROADCAST))
    seq, start, first = host.tx_seq, len(host.log), len(host.delivered)
    sent = host.transport.now()
    host.send_packet(packet)
    ack = host.wait_for(lambda r: r.frame is not None and r.frame.kind == FrameKind.ACK, ctx.timeout, start)
    _expect(ack is not None, f"DATA seq {seq} (ENUMERATE) got no ACK within {ctx.timeout:g} s")
    assert ack is not None and ack.frame is not None
    _expect(ack.frame.seq == seq, f"DATA seq {seq} was acked with seq {ack.frame.seq}")
    _expect(ack.frame.flags == 0, f"the ACK carries flags 0x{ack.frame.flags:02x}; it must send 0")
    host.tx_seq = (seq + 1) & 0xFF
    host.wait_packet(lambda p: p.msg_id == packet.msg_id, max(2 * ctx.timeout, 1.0), first)  # let it finish
    return f"DATA seq {seq} acked after {_ms(ack.t - sent)}"


def enumeration(ctx: Context) -> str:
    request, reply = _ask(ctx, Enumerate(), int(Address.BROADCAST), "ENUMERATE to BROADCAST",
                          max(2 * ctx.timeout, 1.0))
    _expect(isinstance(reply, EnumerateReply), f"ENUMERATE answered with {type(reply).__name__}, not EnumerateReply")
    assert isinstance(reply, EnumerateReply)
    n = len(reply.records)
    _expect(n >= 1, "ENUMERATE_REPLY carries no record")
    packet = ctx.host.wait_packet(lambda p: p.msg_id == request.msg_id and p.type == MsgType.ENUMERATE_REPLY, 0)
    assert packet is not None
    _expect(packet.src == n, f"ENUMERATE_REPLY with {n} records comes from src {packet.src}, not from joint {n}")
    _expect(packet.ttl == DEFAULT_TTL - (n - 1), f"ENUMERATE_REPLY from joint {n} arrived with ttl {packet.ttl}: "
                                                f"a new packet starts at {DEFAULT_TTL} and each of the {n - 1} "
                                                f"joints that forward it decrements it")
    ctx.joints = list(reply.records)
    return f"{n} joint(s): " + ", ".join(f"{i + 1}: model 0x{r.model:04x} serial {r.serial}"
                                         for i, r in enumerate(reply.records))


def ack_then_reply(ctx: Context) -> str:
    host = ctx.host
    packet = host.packet(Ping(), 1)
    start, first = len(host.log), len(host.delivered)
    seq = host.tx_seq
    sent = host.transport.now()
    ack = host.send_acked(packet, ctx.timeout)
    _expect(ack is not None, f"PING to joint 1 (DATA seq {seq}) was never acked")
    assert ack is not None and ack.frame is not None
    _expect(ack.frame.flags == 0, f"the ACK carries flags 0x{ack.frame.flags:02x}; it must send 0")
    wrong = [r.frame for r in host.log[start:] if r.frame is not None and r.frame.kind == FrameKind.ACK
             and r.frame.seq != seq]
    _expect(not wrong, f"the arm acked seq {wrong[0].seq if wrong else 0} for a DATA frame with seq {seq}")
    reply = host.wait_packet(lambda p: p.msg_id == packet.msg_id and p.src == 1, ctx.timeout, first)
    _expect(reply is not None, f"joint 1 acked the PING but sent no PING_REPLY with msg_id {packet.msg_id}")
    assert reply is not None
    msg = _decode(reply)
    _expect(isinstance(msg, PingReply), f"PING answered with {type(msg).__name__}")
    assert isinstance(msg, PingReply)
    _expect(msg.address == 1, f"PING_REPLY says address {msg.address}, not 1")
    if ctx.joints:
        _expect(msg.serial == ctx.joints[0].serial, f"PING_REPLY serial {msg.serial} is not the enumerated one")
    return f"ACK seq {seq} after {_ms(ack.t - sent)}, then PING_REPLY from joint 1"


def duplicates_acked_not_delivered(ctx: Context) -> str:
    host = ctx.host
    packet = host.packet(Ping(), 1)
    first = len(host.delivered)
    seq = host.tx_seq
    _expect(host.send_acked(packet, ctx.timeout) is not None, f"PING (DATA seq {seq}) was never acked")
    _expect(host.wait_packet(lambda p: p.msg_id == packet.msg_id, ctx.timeout, first) is not None,
            "no PING_REPLY to the original")
    start = len(host.log)
    host.send_packet(packet, seq=seq, flags=_RETX)  # the same frame again: as if our first ACK had been lost
    again = host.wait_for(lambda r: r.frame is not None and r.frame.kind == FrameKind.ACK and r.frame.seq == seq,
                          ctx.timeout, start)
    _expect(again is not None, f"a retransmission of DATA seq {seq} was not acked again")
    host.settle(SETTLE_S)
    replies = [p for _, p in host.delivered[first:] if p.msg_id == packet.msg_id]
    _expect(len(replies) == 1, f"a retransmitted PING (same seq {seq}) was delivered again: "
                               f"{len(replies)} PING_REPLYs with msg_id {packet.msg_id}")
    return f"DATA seq {seq} sent twice: acked twice, delivered once"


def retransmits_until_acked(ctx: Context) -> str:
    host = ctx.host
    packet = host.packet(Ping(), 1)
    start = len(host.log)
    host.auto_ack = False
    try:
        _expect(host.send_acked(packet, ctx.timeout) is not None, "PING was never acked")

        def reply(r: Received) -> bool:
            f = r.frame
            return f is not None and f.kind == FrameKind.DATA and f.packet is not None \
                and f.packet.msg_id == packet.msg_id and f.packet.src == 1

        first = host.wait_for(reply, ctx.timeout, start)
        _expect(first is not None, "no PING_REPLY frame")
        assert first is not None and first.frame is not None
        copy = host.wait_for(reply, max(2 * ctx.timeout, 1.0), host.log.index(first) + 1)
        _expect(copy is not None, f"the PING_REPLY (seq {first.frame.seq}) was not retransmitted while unacked")
        assert copy is not None and copy.frame is not None
        f0, f1 = first.frame, copy.frame
        _expect(f1.seq == f0.seq, f"the retransmission has seq {f1.seq}, the original {f0.seq}")
        _expect(f1.packet == f0.packet, "the retransmission carries a different packet")
        _expect(f1.flags == _RETX, f"the retransmission has flags 0x{f1.flags:02x}, not RETRANSMIT (0x01)")
        _expect(f0.flags == 0, f"the first transmission has flags 0x{f0.flags:02x}, not 0")
        waited = copy.t - first.t
    finally:
        host.auto_ack = True
    host.send_control(FrameKind.ACK, f0.seq)
    host.rx_expected = (f0.seq + 1) & 0xFF
    acked = len(host.log)
    host.settle(SETTLE_S)
    later = [r for r in host.log[acked:] if reply(r)]
    _expect(len(later) <= 1, f"the arm sent the PING_REPLY {len(later)} more times after it was acked")
    return f"PING_REPLY repeated after {_ms(waited)} with RETRANSMIT set; stopped once acked"


def out_of_window_resets(ctx: Context) -> str:
    host = ctx.host
    packet = host.packet(Ping(), 1)
    start, first = len(host.log), len(host.delivered)
    bad = (host.tx_seq + 2) & 0xFF
    host.send_packet(packet, seq=bad)
    reset = host.wait_for(lambda r: r.frame is not None and r.frame.kind == FrameKind.RESET, ctx.timeout, start)
    _expect(reset is not None, f"DATA seq {bad} (expected {host.tx_seq}) did not make the arm start a reset")
    host.settle(SETTLE_S)  # our answer went out in poll(); let the arm open
    _expect(not any(p.msg_id == packet.msg_id for _, p in host.delivered[first:]),
            f"the arm delivered DATA seq {bad}, which was out of window")
    _, msg = _ask(ctx, Ping(), 1, "PING after the reset")
    _expect(isinstance(msg, PingReply), f"PING after the reset answered with {type(msg).__name__}")
    return f"DATA seq {bad} refused, RESET sent, the new session works"


def reset_starts_new_session(ctx: Context) -> str:
    host = ctx.host
    _expect(host.handshake(ctx.timeout) is not None, "a second RESET was not answered")
    _, msg = _ask(ctx, Ping(), 1, "PING as DATA seq 0 of the new session")
    _expect(isinstance(msg, PingReply), f"PING answered with {type(msg).__name__}")
    return "RESET answered mid-session; DATA seq 0 delivered after it"


def error_replies(ctx: Context) -> str:
    host = ctx.host
    read_only = BY_NAME["model_number"]
    cases: list[tuple[str, Packet, ErrorKind, int]] = [
        ("READ of register 0xFFF0", host.packet(Read(0xFFF0, 1), 1), ErrorKind.RANGE, 0xFFF0),
        ("WRITE to read-only model_number", host.packet(Write(read_only.address, b"\x01\x00"), 1),
         ErrorKind.ACCESS, read_only.address),
        ("PING with a 1-byte payload", host.packet(Ping(), 1)._replace(payload=b"\x00"), ErrorKind.LENGTH, 1),
        ("CYCLE sent to one joint", host.packet(Cycle(0x38, 0), 1), ErrorKind.INSTRUCTION, 0),
    ]
    for what, packet, kind, detail in cases:
        first = len(host.delivered)
        _expect(host.send_acked(packet, ctx.timeout) is not None, f"{what}: never acked")
        reply = host.wait_packet(_answer(packet.msg_id, 1), ctx.timeout, first)
        _expect(reply is not None, f"{what}: no ERROR reply with msg_id {packet.msg_id}")
        assert reply is not None
        msg = _decode(reply)
        _expect(isinstance(msg, Error), f"{what}: answered with {type(msg).__name__}, not ERROR")
        assert isinstance(msg, Error)
        got = (msg.orig_type, msg.kind, msg.detail)
        want = (packet.type, int(kind), detail)
        _expect(got == want, f"{what}: ERROR orig_type 0x{got[0]:02x} kind {got[1]} detail {got[2]}, expected "
                             f"orig_type 0x{want[0]:02x} kind {kind.name} ({int(kind)}) detail {detail}")
    return "RANGE, ACCESS, LENGTH and INSTRUCTION with their details"


def estop_latches(ctx: Context) -> str:
    host = ctx.host
    n = len(ctx.joints)
    first = len(host.delivered)
    estop = host.packet(EStop(1), int(Address.BROADCAST))
    _expect(host.send_acked(estop, ctx.timeout) is not None, "the ESTOP frame was not acked")

    def reported(p: Packet) -> bool:
        if p.type != MsgType.FAULT:
            return False
        m = _decode(p)
        return isinstance(m, Fault) and m.code == FaultCode.ESTOP and m.active == 1

    end = host.transport.now() + max(ctx.timeout, 0.5)
    while host.transport.now() < end and len({p.src for _, p in host.delivered[first:] if reported(p)}) < n:
        host.poll(end - host.transport.now())
    srcs = [p.src for _, p in host.delivered[first:] if reported(p)]
    _expect(sorted(set(srcs)) == list(range(1, n + 1)), f"FAULT ESTOP came from joints {sorted(set(srcs))}, "
                                                        f"expected every joint 1..{n}")
    estop_reg = BY_NAME["estop"].address
    stale = host.packet(Write(estop_reg, b"\x00"), 1, msg_id=(estop.msg_id - 1) & 0xFFFF)
    first = len(host.delivered)
    _expect(host.send_acked(stale, ctx.timeout) is not None, "the stale release was not acked")
    reply = host.wait_packet(lambda p: p.msg_id == stale.msg_id and p.src == 1, ctx.timeout, first)
    msg = _decode(reply) if reply is not None else None
    _expect(isinstance(msg, Error) and msg.kind == ErrorKind.BUSY and msg.detail == estop_reg,
            f"a release older than the ESTOP (msg_id {stale.msg_id} < {estop.msg_id}) was answered "
            f"{msg!r}, not ERROR BUSY detail {estop_reg}")
    for address in range(1, n + 1):
        _, ok = _ask(ctx, Write(estop_reg, b"\x00"), address, f"release of joint {address}")
        _expect(isinstance(ok, WriteReply), f"joint {address}: a release newer than the ESTOP was answered {ok!r}")
    return f"all {n} joint(s) reported FAULT ESTOP; the older release refused BUSY, newer ones accepted"


def frame_hygiene(ctx: Context) -> str:
    frames = 0
    for r in ctx.host.log:
        item = r.item
        _expect(not isinstance(item, LineError), f"the arm sent a chunk that does not decode: {item}")
        assert isinstance(item, Frame)
        frames += 1
        if item.kind in (FrameKind.ACK, FrameKind.RESET_ACK):
            _expect(item.flags == 0, f"{FrameKind(item.kind).name} {item.seq} has flags 0x{item.flags:02x}")
        else:
            _expect(item.flags & ~_RETX == 0, f"{FrameKind(item.kind).name} {item.seq} sets reserved flag bits "
                                              f"0x{item.flags & ~_RETX:02x}")
        if item.packet is not None:
            p = item.packet
            _expect(p.ttl <= DEFAULT_TTL, f"{MsgType(p.type).name} from {p.src} has ttl {p.ttl} > {DEFAULT_TTL}")
            _expect(p.dst == Address.HOST, f"{MsgType(p.type).name} from {p.src} came up addressed to {p.dst}")
    return f"{frames} frames from the arm: all decode, reserved flags 0, ttl <= {DEFAULT_TTL}, all to HOST"


HOPLINK, PROTOCOL, JOINTS = "docs/hoplink.md", "docs/protocol.md", "docs/joints.md"
RULES: tuple[Rule, ...] = (
    Rule("reset-answered", f'{HOPLINK} "Reset after a reboot"', reset_answered),
    Rule("quiet-after-handshake", f'{HOPLINK} "Start-up"', quiet_after_handshake, ("reset-answered",)),
    Rule("ack", f'{HOPLINK} "Duties", "Stop-and-wait"', first_data_acked, ("reset-answered",)),
    Rule("enumeration", f'{PROTOCOL} 6 "ENUMERATE", 3 "ttl"', enumeration, ("ack",)),
    Rule("ack-then-reply", f'{HOPLINK} "Duties"; {PROTOCOL} 3 "msg_id"', ack_then_reply, ("enumeration",)),
    Rule("dedup", f'{HOPLINK} "Stop-and-wait"', duplicates_acked_not_delivered, ("ack-then-reply",)),
    Rule("retransmit", f'{HOPLINK} "Timers"; {PROTOCOL} 3 "flags"', retransmits_until_acked, ("ack-then-reply",)),
    Rule("out-of-window-reset", f'{HOPLINK} "Reset after a reboot", point 5', out_of_window_resets,
         ("ack-then-reply",)),
    Rule("reset-new-session", f'{HOPLINK} "Reset after a reboot"', reset_starts_new_session, ("ack-then-reply",)),
    Rule("error-replies", f'{PROTOCOL} 6 "Error replies"', error_replies, ("ack-then-reply",)),
    Rule("estop", f'{JOINTS} "E-stop: order and latency"', estop_latches, ("enumeration",)),
    Rule("frame-hygiene", f'{PROTOCOL} 2, 3', frame_hygiene, ("reset-answered",)),
)


def run_rules(host: WireHost, timeout: float, rules: tuple[Rule, ...] = RULES,
              report: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run ``rules`` in order against the arm behind ``host``; ``report`` is called with each outcome."""
    ctx = Context(host, timeout)
    outcomes = []
    for rule in rules:
        missing = [n for n in rule.needs if n not in ctx.passed]
        if missing:
            outcome = Outcome(rule, "skip", f"needs {', '.join(missing)}")
        else:
            try:
                outcome = Outcome(rule, "pass", rule.check(ctx))
                ctx.passed.add(rule.name)
            except RuleFailed as exc:
                outcome = Outcome(rule, "fail", str(exc))
        outcomes.append(outcome)
        if report is not None:
            report(outcome)
    return outcomes
