"""Message handlers of the joint's comm core, and the table that dispatches to them by MsgType.

Theory of operation
-------------------
:func:`dispatch` gets every packet addressed to this joint (its address, UNASSIGNED before enumeration, or
BROADCAST). It looks the type up in :data:`HANDLERS`; a type without a handler (replies, STATE, FAULT,
UNDELIVERABLE: nothing a joint should receive) is counted and dropped, never answered (no error storms). The
payload is decoded with :mod:`armbus.bus.messages`; a payload of the wrong size is answered with ERROR LENGTH.

Errors are replied only to unicast requests (contract), plus one exception: a SYNC_WRITE slice this joint
cannot apply is reported with ERROR (msg_id of the SYNC_WRITE) to the host, because a slice is addressed to one
joint and a silent failure would leave the host guessing. Every register change goes through
:func:`apply_write`: it checks the whole write first (register rules, then whether the control core can act,
then mailbox room) and changes nothing on error.

Broadcast handling per type: the router forwards PING, READ, WRITE, SET_GOAL, TORQUE, HEARTBEAT and REBOOT
unchanged (PING to BROADCAST: every joint answers; READ: nobody does). The handlers forward the rest
(:meth:`JointNode.pass_down`): ESTOP after stopping the motor; SYNC_WRITE with the slices after its own;
SYNC_READ and ENUMERATE with this joint's record appended; CYCLE with its own slice taken (joints/cyclic.py, which
also appends this joint's record to a CYCLE_REPLY on its way up). The chain end turns SYNC_READ and ENUMERATE into the
reply: when no neighbour has answered on its DOWN link since boot (after a few probes, see
:meth:`JointNode.hold_enumerate`), when its DOWN link is known dead, when it learnt at enumeration that it is
last, or when the forward fails (:func:`delivery_failed`; an ENUMERATE failed by a link reset goes down again
instead). After a failure with ``maybe_delivered`` the host may get two replies for one request (the longer one
is from further down). The chain end forwards no other
broadcast (see joints/node.py, "The chain end").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from armbus.bus.codec import Packet
from armbus.bus.errors import DecodeError, EncodeError
from armbus.bus.messages import (
    Enumerate,
    EnumerateReply,
    Error,
    JointRecord,
    Message,
    PingReply,
    Read,
    ReadReply,
    SetGoal,
    SyncRead,
    SyncReadReply,
    SyncRecord,
    SyncWrite,
    Torque,
    Write,
    WriteReply,
    decode_packet,
    make_packet,
)
from armbus.bus.router import DOWN, UP
from armbus.bus.wire import Address, ErrorKind, GoalMode, MsgType, StatusFlag, UndeliverableReason
from armbus.joints import rates
from armbus.joints.control import BLOCKING, Command, CommandKind
from armbus.joints.cyclic import HEADS as CYCLIC_HEADS
from armbus.joints.cyclic import on_cycle, on_cycle_reply, start_reply
from armbus.joints.registers import BY_NAME, PERSISTENT_END

if TYPE_CHECKING:
    from armbus.joints.node import JointNode

GOAL_REGISTER = {GoalMode.POSITION: "goal_position", GoalMode.VELOCITY: "goal_velocity",
                 GoalMode.CURRENT: "goal_current"}
_GOAL_NAMES = {"goal_mode", *GOAL_REGISTER.values()}
_ESTOPPED = int(StatusFlag.ESTOPPED)

#: A handler gets the decoded message, or for the frames the joint edits on their way (CYCLE, CYCLE_REPLY) the
#: checked header of their payload (joints/cyclic.py HEADS).
Handler = Callable[["JointNode", int, Packet, Any, int], None]


def error(node: JointNode, request: Packet, kind: ErrorKind, detail: int = 0, now: int = 0,
          force: bool = False) -> None:
    """ERROR reply to a unicast request (or, with ``force``, to the host for a broadcast)."""
    if request.dst == Address.BROADCAST and not force:
        return
    node.counters.errors_sent += 1
    msg = Error(request.type, int(kind), detail & 0xFFFF)
    dst = request.src if request.dst != Address.BROADCAST else Address.HOST
    node.send(make_packet(msg, node.address, dst, request.msg_id), now)


def apply_write(node: JointNode, address: int, data: bytes, now: int, msg_id: int | None = None
                ) -> ErrorKind | None:
    """Check a register write completely, then apply it and its side effects; on error change nothing.
    ``msg_id``: the request's, to refuse (BUSY) an e-stop release that an ESTOP overtook (joints/node.py)."""
    regs, control = node.registers, node.control
    torque_on = control.torque or bool(regs.get("torque_enable"))
    err, values = regs.check_write(address, data, torque_on)
    if err is None:
        err = rates.check_write(node, values)
    if err is not None:
        return err
    releases = values.get("estop") == 0 or bool(values.get("clear_flags", 0) & _ESTOPPED)
    if releases and msg_id is not None and node.overtaken_by_estop(msg_id):
        node.counters.stale_refused += 1
        return ErrorKind.BUSY
    # A flag cleared by this write or by a CLEAR still in the mailbox does not block: the control core applies
    # the clear first (the mailbox is FIFO) and checks again when it takes the command.
    clearing = values.get("clear_flags", 0) | (_ESTOPPED if values.get("estop") == 0 else 0)
    blocked = bool(control.flags & BLOCKING & ~(clearing | node.pending_clears()))
    cmds: list[Command] = []
    if "torque_enable" in values:
        if values["torque_enable"] and blocked:
            return ErrorKind.BUSY
        cmds.append(Command(CommandKind.TORQUE, values["torque_enable"]))
    if _GOAL_NAMES & values.keys():
        if blocked:
            return ErrorKind.BUSY
        mode = GoalMode(values.get("goal_mode", regs.get("goal_mode")))
        name = GOAL_REGISTER[mode]
        if "goal_mode" in values or name in values:
            cmds.append(Command(CommandKind.SET_GOAL, mode, values.get(name, regs.get(name))))
    if values.get("estop") == 0:
        cmds.append(Command(CommandKind.RELEASE_ESTOP))
    if "watchdog_period" in values:
        cmds.append(Command(CommandKind.WATCHDOG, values["watchdog_period"]))
    if values.get("clear_flags"):
        cmds.append(Command(CommandKind.CLEAR, values["clear_flags"]))
    if address < PERSISTENT_END:
        cmds.append(Command(CommandKind.RELOAD))
    box = control.commands
    if box.capacity - len(box) < len(cmds):
        node.counters.commands_refused += 1
        return ErrorKind.BUSY
    regs.write(address, data, torque_on)
    for cmd in cmds:
        box.put(cmd)
    if clearing:
        node.note_clear(clearing)
    if values.get("estop") == 1:
        control.estop(now)
    if "clear_flags" in values:
        regs.set("clear_flags", 0)
    if "state_period" in values:
        node.set_telemetry(values["state_period"], now)
    rates.apply_write(node, values, now)
    return None


# ----------------------------------------------------------------------------------------------- handlers
def on_ping(node: JointNode, port: int, packet: Packet, msg: Message, now: int) -> None:
    regs = node.registers
    node.reply(packet, PingReply(regs.get("model_number"), regs.get("firmware_major"), regs.get("firmware_minor"),
                                 regs.get("serial_number"), node.address), now)


def on_enumerate(node: JointNode, port: int, packet: Packet, msg: Message, now: int) -> None:
    assert isinstance(msg, Enumerate)
    address = len(msg.records) + 1
    if address > Address.LAST_JOINT:
        error(node, packet, ErrorKind.LIMIT, address, now, force=True)
        return
    node.set_address(address)
    try:
        payload = Enumerate((*msg.records, JointRecord(node.model, node.serial))).pack()
    except EncodeError:
        error(node, packet, ErrorKind.LENGTH, address, now, force=True)
        return
    # forwarded at once if it can go; held while no neighbour has answered since boot (until one does, or enough
    # probes say there is none) and while the queue below is full (a backlog is no reason to end the chain)
    node.hold_enumerate(packet._replace(payload=payload), now)


def turn_around(node: JointNode, packet: Packet, now: int) -> None:
    """Answer an ENUMERATE / SYNC_READ that could not go further. Only an ENUMERATE makes this joint the chain
    end (``is_last``): a SYNC_READ also turns around when its forward failed for a passing reason (the next
    joint rebooting, a link resync, a full queue), and marking the joint last then made it drop every SYNC_WRITE
    remainder for the joints below, unreported, until the next ENUMERATE."""
    msg = decode_packet(packet)
    reply: Message
    if isinstance(msg, SyncRead):
        reply = SyncReadReply(msg.reg, msg.length, msg.records)
    else:
        assert isinstance(msg, Enumerate)
        node.is_last = True
        reply = EnumerateReply(msg.records)
    node.send(make_packet(reply, node.address, Address.HOST, packet.msg_id), now)


def on_read(node: JointNode, port: int, packet: Packet, msg: Message, now: int) -> None:
    assert isinstance(msg, Read)
    err, data = node.registers.read(msg.reg, msg.length)
    if err is not None:
        error(node, packet, err, msg.reg, now)
    elif packet.dst != Address.BROADCAST:
        node.reply(packet, ReadReply(msg.reg, data), now)


def on_write(node: JointNode, port: int, packet: Packet, msg: Message, now: int) -> None:
    assert isinstance(msg, Write)
    err = apply_write(node, msg.reg, msg.data, now, packet.msg_id)
    if err is not None:
        error(node, packet, err, msg.reg, now)
    elif packet.dst != Address.BROADCAST:
        node.reply(packet, WriteReply(msg.reg, len(msg.data)), now)


def on_sync_write(node: JointNode, port: int, packet: Packet, msg: Message, now: int) -> None:
    assert isinstance(msg, SyncWrite)
    addr = node.address
    mine = msg.slice_for(addr) if addr != Address.UNASSIGNED else None
    rest: SyncWrite | None = msg
    if addr != Address.UNASSIGNED and msg.first <= addr:
        skip = (addr - msg.first + 1) * msg.slice_len
        data = msg.data[skip:]
        rest = SyncWrite(msg.reg, msg.slice_len, addr + 1, data) if data else None
    if rest is not None and port == UP:
        node.pass_down(packet._replace(payload=rest.pack()), now)
    if mine is not None:
        err = apply_write(node, msg.reg, mine, now, packet.msg_id)
        if err is not None:
            error(node, packet, err, msg.reg, now, force=True)


def on_sync_read(node: JointNode, port: int, packet: Packet, msg: Message, now: int) -> None:
    assert isinstance(msg, SyncRead)
    err, data = node.registers.read(msg.reg, msg.length)
    if err is not None:
        error(node, packet, err, msg.reg, now, force=True)
        data = bytes(msg.length)
    grown_msg = msg.with_record(SyncRecord(node.address, node.control.state.status, data))
    try:
        grown = packet._replace(payload=grown_msg.pack())
    except EncodeError:  # the records no longer fit one frame: answer with what we have
        error(node, packet, ErrorKind.LENGTH, msg.reg, now, force=True)
        grown = packet
    if grown is packet or node.is_last or not node.pass_down(grown, now):
        turn_around(node, grown, now)


def on_set_goal(node: JointNode, port: int, packet: Packet, msg: Message, now: int) -> None:
    assert isinstance(msg, SetGoal)
    if msg.mode not in GOAL_REGISTER:
        error(node, packet, ErrorKind.LIMIT, msg.mode, now)
        return
    mode = GoalMode(msg.mode)
    name = GOAL_REGISTER[mode]
    r = BY_NAME[name]
    if not r.minimum <= msg.value <= r.maximum:
        error(node, packet, ErrorKind.LIMIT, r.address, now)
        return
    box = node.control.commands
    if node.control.flags & BLOCKING or len(box) >= box.capacity:
        error(node, packet, ErrorKind.BUSY, r.address, now)
        return
    node.registers.set(name, msg.value)
    node.registers.set("goal_mode", mode)
    box.put(Command(CommandKind.SET_GOAL, mode, msg.value))


def on_torque(node: JointNode, port: int, packet: Packet, msg: Message, now: int) -> None:
    assert isinstance(msg, Torque)
    err = apply_write(node, BY_NAME["torque_enable"].address, bytes((msg.enable & 0xFF,)), now)
    if err is not None:
        error(node, packet, err, BY_NAME["torque_enable"].address, now)


def on_estop(node: JointNode, port: int, packet: Packet, msg: Message, now: int) -> None:
    node.control.estop(now)  # first: the motor stops at this instant
    node.registers.set("estop", 1)
    node.took_estop(packet.msg_id, now)
    if packet.dst == Address.BROADCAST and port == UP:
        node.pass_down(packet, now, urgent=True)  # ahead of everything queued toward the next joint


def on_heartbeat(node: JointNode, port: int, packet: Packet, msg: Message, now: int) -> None:
    if not node.control.commands.put(Command(CommandKind.HEARTBEAT)):
        node.counters.commands_refused += 1
        error(node, packet, ErrorKind.BUSY, 0, now, force=True)


def on_reboot(node: JointNode, port: int, packet: Packet, msg: Message, now: int) -> None:
    if node.overtaken_by_estop(packet.msg_id):  # a reboot would drop the e-stop latch the host asked for later
        node.counters.stale_refused += 1
        error(node, packet, ErrorKind.BUSY, 0, now)
        return
    node.schedule_reboot(now)


HANDLERS: dict[int, Handler] = {
    MsgType.PING: on_ping,
    MsgType.ENUMERATE: on_enumerate,
    MsgType.READ: on_read,
    MsgType.WRITE: on_write,
    MsgType.SYNC_WRITE: on_sync_write,
    MsgType.SYNC_READ: on_sync_read,
    MsgType.SET_GOAL: on_set_goal,
    MsgType.TORQUE: on_torque,
    MsgType.ESTOP: on_estop,
    MsgType.HEARTBEAT: on_heartbeat,
    MsgType.REBOOT: on_reboot,
    MsgType.CYCLE: on_cycle,
    MsgType.CYCLE_REPLY: on_cycle_reply,
}


def dispatch(node: JointNode, port: int, packet: Packet, now: int) -> None:
    """Run the handler for a packet addressed to this joint. Never raises on packet content."""
    handler = HANDLERS.get(packet.type)
    if handler is None:
        node.counters.ignored += 1
        return
    head = CYCLIC_HEADS.get(packet.type)
    try:
        msg = decode_packet(packet) if head is None else head(packet.payload)
    except DecodeError:
        error(node, packet, ErrorKind.LENGTH, len(packet.payload), now)
        return
    handler(node, port, packet, msg, now)


def delivery_failed(node: JointNode, role: int, packet: Packet, reason: UndeliverableReason, now: int) -> None:
    """A link gave up on a packet this joint sent: at the chain end ENUMERATE / SYNC_READ turn around. An
    ENUMERATE failed by a link reset goes down again instead: the neighbour has just answered a new session (it
    rebooted, or the link resynchronised), so it is there; answering would make this joint the chain end. Each
    attempt costs a hop of ttl, which bounds the repeats. A newer ENUMERATE already held supersedes it."""
    if role != DOWN:
        return
    if packet.type == MsgType.ENUMERATE and reason == UndeliverableReason.LINK_RESET and node.down_usable():
        if node.held_enumerate is None:
            node.hold_enumerate(packet, now)
    elif packet.type in (MsgType.ENUMERATE, MsgType.SYNC_READ):
        turn_around(node, packet, now)
    elif packet.type == MsgType.CYCLE:
        start_reply(node, packet, now)
