"""Arm operations as pure message builders and reply decoders, shared by the sync and asyncio APIs.

Theory of operation
-------------------
Each user-level operation (read a register, sync-write goals, sync-read states, enumerate...) is split into a
request builder that returns the :class:`armbus.bus.messages.Message` and its destination, and a decoder that turns
the reply message into SI values. :class:`armbus.controller.arm.Arm` and :class:`armbus.controller.aio.AsyncArm` only
add the waiting. Registers are named as in the joint register table (:mod:`armbus.joints.registers`, the shared control
table); values cross this module as integers in wire units, goals as SI floats through :mod:`armbus.controller.units`.

Sync-write requires the addressed joints to be consecutive (contracts: each joint takes the slice at
``address - first`` and forwards the rest); :func:`sync_write_goals` refuses a gap with a clear error.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from armbus.bus.errors import PeerError, UsageError
from armbus.bus.messages import (
    Cycle,
    EnumerateReply,
    Message,
    PingReply,
    Read,
    ReadReply,
    SetGoal,
    SyncRead,
    SyncReadReply,
    SyncWrite,
    Write,
    WriteReply,
)
from armbus.bus.wire import Address, GoalMode, StatusFlag
from armbus.controller import units
from armbus.controller.events import JointState
from armbus.joints.registers import BY_NAME, STATE_BLOCK, STATE_BLOCK_FORMAT, Register

_STATE = struct.Struct(STATE_BLOCK_FORMAT)  # position, velocity, current, temperature, voltage, status
_FORMATS = {(1, False): "<B", (1, True): "<b", (2, False): "<H", (2, True): "<h", (4, False): "<I", (4, True): "<i"}


@dataclass(frozen=True)
class DiscoveredJoint:
    """A joint found by enumeration: its address (position in the chain), model and serial number."""

    address: int
    model: int
    serial: int
    #: The joint reported REBOOTED (set at every power-on and reboot) when it was enumerated; enumeration
    #: acknowledged it (cleared the flag), so a later REBOOTED means a new reboot.
    rebooted: bool = False


def register(name: str) -> Register:
    reg = BY_NAME.get(name)
    if reg is None:
        raise UsageError(f"no register named {name!r} (see docs for the register map: {', '.join(BY_NAME)})")
    return reg


def read_request(name: str) -> Read:
    reg = register(name)
    return Read(reg.address, reg.size)


def decode_read(name: str, reply: Message) -> int:
    reg = register(name)
    if not isinstance(reply, ReadReply) or reply.reg != reg.address or len(reply.data) != reg.size:
        raise PeerError(f"unexpected reply to READ {name}: {reply!r}")
    return int(struct.unpack(_FORMATS[(reg.size, reg.signed)], reply.data)[0])


def write_request(name: str, value: int) -> Write:
    reg = register(name)
    if not reg.minimum <= value <= reg.maximum:
        raise UsageError(f"{name} = {value} is outside its range {reg.minimum}..{reg.maximum} {reg.unit}".rstrip())
    return Write(reg.address, struct.pack(_FORMATS[(reg.size, reg.signed)], value))


def check_write_reply(name: str, reply: Message) -> None:
    reg = register(name)
    if not isinstance(reply, WriteReply) or reply.reg != reg.address or reply.length != reg.size:
        raise PeerError(f"unexpected reply to WRITE {name}: {reply!r}")


def goal_message(mode: GoalMode, value: float) -> SetGoal:
    """SET_GOAL in SI: rad for POSITION, rad/s for VELOCITY, A for CURRENT (raw, calibration applied)."""
    convert = {
        GoalMode.POSITION: units.to_wire_position,
        GoalMode.VELOCITY: units.to_wire_velocity,
        GoalMode.CURRENT: units.to_wire_current,
    }[GoalMode(mode)]
    return SetGoal(int(mode), convert(value))


def sync_write_goals(raw_positions: Mapping[int, float]) -> SyncWrite:
    """One SYNC_WRITE of goal_position for joints {address: raw rad}; addresses must be consecutive."""
    if not raw_positions:
        raise UsageError("sync-write needs at least one joint")
    addresses = _consecutive(raw_positions)
    reg = register("goal_position")
    data = b"".join(struct.pack("<i", units.to_wire_position(raw_positions[a])) for a in addresses)
    return SyncWrite(reg.address, reg.size, addresses[0], data)


def cycle_goals(mode: GoalMode, raw_values: Mapping[int, float], reg: int, length: int) -> Cycle:
    """One CYCLE carrying goals {address: raw SI value} (consecutive addresses) and reading ``length`` bytes
    at ``reg`` back from every joint."""
    if not raw_values:
        return Cycle(reg, length)
    convert = {
        GoalMode.POSITION: units.to_wire_position,
        GoalMode.VELOCITY: units.to_wire_velocity,
        GoalMode.CURRENT: units.to_wire_current,
    }[GoalMode(mode)]
    addresses = _consecutive(raw_values)
    return Cycle(reg, length, int(mode), addresses[0], tuple(convert(raw_values[a]) for a in addresses))


def _consecutive(by_address: Mapping[int, object]) -> list[int]:
    addresses = sorted(by_address)
    first, last = addresses[0], addresses[-1]
    if last - first + 1 != len(addresses):
        missing = sorted(set(range(first, last + 1)) - set(addresses))
        raise UsageError(
            f"sync-write needs consecutive joint addresses; missing {missing} between {first} and {last}"
        )
    return addresses


def sync_write_register(name: str, values: Mapping[int, int]) -> SyncWrite:
    """One SYNC_WRITE of register ``name`` for joints {address: value in wire units}; consecutive addresses."""
    if not values:
        raise UsageError("sync-write needs at least one joint")
    reg = register(name)
    addresses = _consecutive(values)
    data = b"".join(write_request(name, values[a]).data for a in addresses)
    return SyncWrite(reg.address, reg.size, addresses[0], data)


def sync_read_register(name: str) -> SyncRead:
    """One SYNC_READ of register ``name`` from every joint."""
    reg = register(name)
    return SyncRead(reg.address, reg.size)


def decode_sync_read_register(name: str, reply: Message) -> dict[int, int]:
    """{address: value} from the reply to :func:`sync_read_register`."""
    reg = register(name)
    if not isinstance(reply, SyncReadReply) or (reply.reg, reply.length) != (reg.address, reg.size):
        raise PeerError(f"unexpected reply to SYNC_READ {name}: {reply!r}")
    fmt = _FORMATS[(reg.size, reg.signed)]
    return {r.address: int(struct.unpack(fmt, r.data)[0]) for r in reply.records}


def sync_read_states() -> SyncRead:
    """One SYNC_READ of the whole state block of every joint."""
    return SyncRead(STATE_BLOCK[0], STATE_BLOCK[1])


def decode_states(reply: Message, now: int) -> list[JointState]:
    if not isinstance(reply, SyncReadReply) or (reply.reg, reply.length) != STATE_BLOCK:
        raise PeerError(f"unexpected reply to SYNC_READ of the state block: {reply!r}")
    return [decode_state_block(now, r.address, r.data) for r in reply.records]


def state_read_request() -> Read:
    return Read(*STATE_BLOCK)


def decode_state_read(address: int, reply: Message, now: int) -> JointState:
    if not isinstance(reply, ReadReply) or reply.reg != STATE_BLOCK[0] or len(reply.data) != STATE_BLOCK[1]:
        raise PeerError(f"unexpected reply to READ of the state block: {reply!r}")
    return decode_state_block(now, address, reply.data)


def decode_state_block(now: int, address: int, data: bytes) -> JointState:
    pos, vel, cur, temp, volt, status = _STATE.unpack(data)
    return JointState(
        now,
        address,
        StatusFlag(status),
        units.from_wire_position(pos),
        units.from_wire_velocity(vel),
        units.from_wire_current(cur),
        units.from_wire_temperature(temp),
        units.from_wire_voltage(volt),
    )


def decode_enumeration(reply: Message) -> list[DiscoveredJoint]:
    if not isinstance(reply, EnumerateReply):
        raise PeerError(f"unexpected reply to ENUMERATE: {reply!r}")
    return [DiscoveredJoint(Address.FIRST_JOINT + i, r.model, r.serial) for i, r in enumerate(reply.records)]


def acknowledge_reboots(found: Sequence[DiscoveredJoint], statuses: Mapping[int, int]
                        ) -> tuple[list[DiscoveredJoint], Write | None]:
    """After an enumeration: mark the joints whose ``status`` (by address, from :func:`sync_read_register`)
    has REBOOTED, and the WRITE of ``clear_flags`` that acknowledges it (for BROADCAST: a joint without the flag
    clears nothing), or None when no joint reported a reboot."""
    flag = int(StatusFlag.REBOOTED)
    marked = [replace(j, rebooted=bool(statuses.get(j.address, 0) & flag)) for j in found]
    if not any(j.rebooted for j in marked):
        return marked, None
    return marked, Write(register("clear_flags").address, bytes((flag,)))


def decode_ping(reply: Message) -> PingReply:
    if not isinstance(reply, PingReply):
        raise PeerError(f"unexpected reply to PING: {reply!r}")
    return reply


def check_chain(found: Sequence[DiscoveredJoint], expected: Sequence[int]) -> None:
    """Raise UsageError when configured joint addresses are not on the bus."""
    present = {j.address for j in found}
    missing = [a for a in expected if a not in present]
    if missing:
        raise UsageError(
            f"configured joint address(es) {missing} not found: the bus has {len(found)} joint(s) "
            f"(addresses 1..{len(found)}); check the cabling and the config"
        )
