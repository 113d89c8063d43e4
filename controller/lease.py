"""The lease of a shared arm: which packets need it, and the table of who holds it; sans-I/O.

Theory of operation
-------------------
An arm shared through ``armbus serve`` has many clients and one lease. Whoever holds the lease may move the arm;
every other client may still read, monitor, tap and stop it. :func:`needs_lease` is the one definition of
"moves the arm", applied to a packet's type and payload (so the client refuses before anything is sent, and the
server refuses again whatever a client sends anyway):

* ESTOP never needs it: any client may stop the arm, always.
* TORQUE needs it to switch torque on; TORQUE 0 (stopping) is free.
* SET_GOAL needs it; a CYCLE needs it when it carries goals (a read-only cycle is free).
* WRITE and SYNC_WRITE need it, except writes that only stop or only observe: ``torque_enable`` = 0, ``estop``
  = 1 (latch an e-stop), ``clear_flags`` with no flag but REBOOTED (what every client's enumeration does), and
  ``state_period`` (the telemetry rate). Writing ``estop`` = 0 or clearing the ESTOPPED, WATCHDOG or FAULT flags
  re-arms a stopped joint, so it needs the lease like torque on; so does a write of a goal, of the goal mode,
  of a limit or a gain, or of the line-rate registers.
* REBOOT needs it (it takes a joint away from whoever moves it). Everything else (PING, ENUMERATE, READ,
  SYNC_READ, HEARTBEAT) is free.

:class:`LeaseTable` is the server's state: the holder (a client key and a display name) or nobody. Acquire
succeeds when nobody holds it or the same client does (re-entrant, keeping the first name); release by anyone
but the holder is a no-op that says so; :meth:`LeaseTable.dropped` is a client going away. Each method returns
whether the holder changed, so the server tells every client.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from armbus.bus.errors import DecodeError
from armbus.bus.messages import SyncWrite, Write
from armbus.bus.wire import MsgType, StatusFlag
from armbus.joints.registers import BY_NAME

_FREE_TYPES = frozenset({int(MsgType.PING), int(MsgType.ENUMERATE), int(MsgType.READ), int(MsgType.SYNC_READ),
                         int(MsgType.HEARTBEAT), int(MsgType.ESTOP)})
_WRITES = frozenset({int(MsgType.WRITE), int(MsgType.SYNC_WRITE)})
#: Registers a client without the lease may write, with the values that only stop or observe.
_TORQUE, _ESTOP, _CLEAR, _STATE_PERIOD = (BY_NAME[n] for n in ("torque_enable", "estop", "clear_flags",
                                                               "state_period"))
_FREE_FLAGS = int(StatusFlag.REBOOTED)


def _free_value(address: int, value: int) -> bool:
    if address == _TORQUE.address:
        return value == 0
    if address == _ESTOP.address:
        return value == 1
    if address == _CLEAR.address:
        return value & ~_FREE_FLAGS == 0
    return address == _STATE_PERIOD.address


_FREE_REGISTERS = {r.address: r.size for r in (_TORQUE, _ESTOP, _CLEAR, _STATE_PERIOD)}


def _free_write(reg: int, data: bytes) -> bool:
    """True when ``data`` written at ``reg`` touches only free registers, each with a free value."""
    offset = 0
    while offset < len(data):
        size = _FREE_REGISTERS.get(reg + offset)
        if size is None or offset + size > len(data):
            return False
        if not _free_value(reg + offset, int.from_bytes(data[offset:offset + size], "little")):
            return False
        offset += size
    return bool(data)


def needs_lease(msg_type: int, payload: bytes) -> bool:
    """Whether a packet of ``msg_type`` with ``payload`` can start motion (see the module docstring). A payload
    that does not decode needs the lease (the joint would refuse it anyway)."""
    if msg_type in _FREE_TYPES:
        return False
    if msg_type == MsgType.TORQUE:
        return payload[:1] != b"\x00"
    if msg_type == MsgType.CYCLE:
        return len(payload) > 3 and payload[3] != 0  # the goal byte count (armbus.bus.cycle)
    if msg_type in _WRITES:
        try:
            if msg_type == MsgType.WRITE:
                w = Write.unpack(payload)
                return not _free_write(w.reg, w.data)
            s = SyncWrite.unpack(payload)
        except DecodeError:  # not provably free
            return True
        if s.slice_len == 0:
            return True
        return not all(_free_write(s.reg, s.data[i:i + s.slice_len]) for i in range(0, len(s.data), s.slice_len))
    return True


@dataclass(frozen=True)
class Holder:
    key: Hashable  # the server's handle of the client
    name: str


class LeaseTable:
    """Who holds the lease of one arm (see the module docstring)."""

    def __init__(self) -> None:
        self.holder: Holder | None = None

    @property
    def name(self) -> str | None:
        return self.holder.name if self.holder is not None else None

    def held_by(self, key: Hashable) -> bool:
        return self.holder is not None and self.holder.key == key

    def acquire(self, key: Hashable, name: str) -> tuple[bool, bool]:
        """(granted, changed)."""
        if self.holder is None:
            self.holder = Holder(key, name)
            return True, True
        return self.holder.key == key, False

    def release(self, key: Hashable) -> bool:
        """True (changed) when ``key`` held it."""
        if self.held_by(key):
            self.holder = None
            return True
        return False

    def dropped(self, key: Hashable) -> bool:
        """Client ``key`` is gone; True when it held the lease (now free)."""
        return self.release(key)
