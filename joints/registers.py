"""The joint's register table (a control table after the Dynamixel pattern) and its checked access.

Theory of operation
-------------------
Every joint exposes one flat byte array addressed by u16 register addresses. :data:`REGISTERS` declares it as
data: address, size, signedness, access (RO/RW), persistence, limits, default, unit and meaning; the table is
checked at import (no gaps, no overlaps) and :func:`register_map_markdown` renders it for the docs.

* The persistent area (addresses 0..35, EEPROM-like) survives a reboot and may be written only with torque
  off (the same rule as Dynamixel's EEPROM area: limits and gains never change under a moving joint).
* The volatile area (36..70) is reset to its defaults by a reboot.
* The line-rate block (71..92, appended after the state block so that no earlier address moved) holds the two
  ports' rates (``up_baud``, ``down_baud``: persistent, read-only to the host, changed only by a confirmed rate
  switch) and the volatile registers of the switch procedure (``baud_next_*`` .. ``baud_state``; docs/joints.md,
  "Line rate", and :mod:`armbus.joints.rates`). A staged rate must be 0 (keep) or one of
  :data:`armbus.bus.wire.SUPPORTED_BAUDS`.
* ``present_position .. status`` (56..70, 15 bytes, :data:`STATE_BLOCK`) is contiguous and laid out like
  :data:`STATE_BLOCK_FORMAT`, so one SYNC_READ of (56, 15) returns a joint's whole state.

Access goes by (address, length). A span must start at a register's first byte and end at a register's last
byte (RANGE / LENGTH otherwise). A write is checked completely first (access, then every value against its
register's limits, then cross-register rules) and applied only if everything passes: on error nothing changes
and the :class:`~armbus.bus.wire.ErrorKind` is returned, never raised. Firmware-side updates (present values, the
bus address) use :meth:`RegisterFile.set`, which bypasses the host access rules but not the type range.

The register limits here are the static bounds of each value. The configurable limits (``position_min`` and
friends) are enforced by the control core by clamping, and reported through ``StatusFlag.AT_LIMIT``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from armbus.bus.wire import DEFAULT_BAUD, SUPPORTED_BAUDS, Address, ErrorKind, GoalMode


class Access(enum.Enum):
    """Host access to a register."""

    RO = "R"
    RW = "RW"


@dataclass(frozen=True)
class Register:
    """One entry of the register table."""

    name: str
    address: int
    size: int  # bytes: 1, 2 or 4, little-endian on the wire
    signed: bool
    access: Access
    persistent: bool
    minimum: int
    maximum: int
    default: int
    unit: str
    doc: str

    @property
    def end(self) -> int:
        """Address one past the register's last byte."""
        return self.address + self.size


class RateCommand(enum.IntEnum):
    """Values written to ``baud_command`` (docs/joints.md, "Line rate")."""

    NONE = 0
    COMMIT = 1  # switch both ports to the staged rates baud_delay ms from now, on trial
    CONFIRM = 2  # the trial rates stick: stored in up_baud / down_baud
    CANCEL = 3  # drop a commit not yet carried out, or end a trial now (back to the old rates)


class RateState(enum.IntEnum):
    """Values of ``baud_state``: where the joint is in the rate switch."""

    IDLE = 0  # running at up_baud / down_baud
    ARMED = 1  # a commit was taken: switching at the end of baud_delay
    TRIAL = 2  # running at the staged rates; back to the old ones unless confirmed within baud_trial
    REVERTED = 3  # the last trial ended unconfirmed (or cancelled): back at up_baud / down_baud


RO, RW = Access.RO, Access.RW
_BAUD = (0, max(SUPPORTED_BAUDS))
_I32, _U8, _U16, _I16 = (-(2**31), 2**31 - 1), (0, 255), (0, 65535), (-(2**15), 2**15 - 1)
#: Goal and limit position bound: +-100 rad (about 16 turns) leaves i32 urad headroom for arithmetic.
POSITION_BOUND = 100_000_000
#: Velocity bound: 20 rad/s, four times the default actuator's no-load speed (4.6 rad/s).
VELOCITY_BOUND = 20_000_000
#: Current bound: the default actuator driver's hardware limit (2.5 A).
CURRENT_BOUND = 2500
#: Loop-gain ranges (register units): the box inside which the cascade of joints/control.py on the default actuator
#: model is stable for every combination of the five gains. ``python -m armbus.tools.campaigns.gainsweep`` finds it: for
#: each gain alone (others at default) the first value whose stress moves show a limit excursion or a limit cycle; a
#: factor 2 of gain margin inside it, rounded inward; then the box's 32 corners and seeded random points inside it run
#: clean. First unstable values: pos_kp none over its u16 range (the position loop's request is capped by what the drive
#: can brake within the distance left; under the plain linear law 13454 already made a limit cycle around the goal at
#: full current); vel_kp 25600 (current chatter heats the winding to its trip) and, below, 565 (current mode's
#: proportional speed limiter lets a joint allowed no speed creep past 0.2 rad/s under the gravity load; twice that is
#: above the default, so the default is the minimum); cur_kp 6727 (the current loop oscillates to an over-current trip);
#: cur_ki 6727 (a limit cycle in the hold); vel_ki none over its u16 range. Zero current or integral gains leave the
#: model feed-forward or a P loop, which are stable. A write outside a range is refused (LIMIT).
POS_KP_RANGE = _U16
VEL_KP_RANGE = (800, 12800)
VEL_KI_RANGE = _U16
CUR_KP_RANGE = (0, 3300)
CUR_KI_RANGE = (0, 3300)

# name, address, size, signed, access, persistent, min, max, default, unit, meaning
REGISTERS: tuple[Register, ...] = tuple(Register(*row) for row in (
    ("model_number", 0, 2, False, RO, True, *_U16, 0, "", "joint model (set at manufacture)"),
    ("firmware_major", 2, 1, False, RO, True, *_U8, 1, "", "firmware major version"),
    ("firmware_minor", 3, 1, False, RO, True, *_U8, 0, "", "firmware minor version"),
    ("serial_number", 4, 4, False, RO, True, 0, 2**32 - 1, 0, "", "serial number (set at manufacture)"),
    ("position_min", 8, 4, True, RW, True, -POSITION_BOUND, POSITION_BOUND, -2_617_994, "urad",
     "lower position limit (default -150 deg)"),
    ("position_max", 12, 4, True, RW, True, -POSITION_BOUND, POSITION_BOUND, 2_617_994, "urad",
     "upper position limit (default +150 deg)"),
    ("velocity_limit", 16, 4, True, RW, True, 0, VELOCITY_BOUND, 4_000_000, "urad/s",
     "speed limit in every mode (default 4 rad/s, below the 4.6 rad/s no-load speed)"),
    ("current_limit", 20, 2, True, RW, True, 0, CURRENT_BOUND, 1500, "mA",
     "current limit in every mode (default 1.5 A, 65 % of stall current)"),
    ("temperature_limit", 22, 2, True, RW, True, 200, 1250, 800, "0.1 degC",
     "over-temperature trip (default 80 degC, as Dynamixel)"),
    ("min_voltage", 24, 2, False, RW, True, 0, 24000, 9500, "mV", "under-voltage trip (default 9.5 V)"),
    ("pos_kp", 26, 2, False, RW, True, *POS_KP_RANGE, 2000, "0.01/s",
     "position loop gain: velocity per error (range: the stable box, armbus.tools.campaigns.gainsweep)"),
    ("vel_kp", 28, 2, False, RW, True, *VEL_KP_RANGE, 800, "mA/(rad/s)",
     "velocity loop proportional gain (range: the stable box, armbus.tools.campaigns.gainsweep)"),
    ("vel_ki", 30, 2, False, RW, True, *VEL_KI_RANGE, 16000, "mA/rad",
     "velocity loop integral gain (range: the stable box, armbus.tools.campaigns.gainsweep)"),
    ("cur_kp", 32, 2, False, RW, True, *CUR_KP_RANGE, 1000, "mOhm",
     "current loop proportional gain (range: the stable box, armbus.tools.campaigns.gainsweep)"),
    ("cur_ki", 34, 2, False, RW, True, *CUR_KI_RANGE, 2000, "Ohm/s",
     "current loop integral gain (range: the stable box, armbus.tools.campaigns.gainsweep)"),
    ("bus_address", 36, 1, False, RO, False, *_U8, int(Address.UNASSIGNED), "",
     "bus address, assigned at enumeration"),
    ("torque_enable", 37, 1, False, RW, False, 0, 1, 0, "",
     "1 = motor powered (0 once a stop has braked to standstill)"),
    ("goal_mode", 38, 1, False, RW, False, int(min(GoalMode)), int(max(GoalMode)), int(GoalMode.POSITION),
     "GoalMode", "which goal register the control core follows"),
    ("estop", 39, 1, False, RW, False, 0, 1, 0, "", "1 = e-stop latched; write 0 to release (ready, unpowered)"),
    ("watchdog_period", 40, 2, False, RW, False, 0, 60000, 0, "ms",
     "safe stop if no HEARTBEAT for this long (0 = off)"),
    ("state_period", 42, 2, False, RW, False, 0, 60000, 0, "ms", "STATE telemetry period (0 = off)"),
    ("goal_position", 44, 4, True, RW, False, -POSITION_BOUND, POSITION_BOUND, 0, "urad", "position goal"),
    ("goal_velocity", 48, 4, True, RW, False, -VELOCITY_BOUND, VELOCITY_BOUND, 0, "urad/s", "velocity goal"),
    ("goal_current", 52, 2, True, RW, False, -CURRENT_BOUND, CURRENT_BOUND, 0, "mA", "current goal"),
    ("clear_flags", 54, 1, False, RW, False, *_U8, 0, "StatusFlag",
     "write flags to clear latched status (FAULT, WATCHDOG, REBOOTED, ...); reads 0"),
    ("fault_code", 55, 1, False, RO, False, *_U8, 0, "FaultCode", "last latched fault (0 = none)"),
    ("present_position", 56, 4, True, RO, False, *_I32, 0, "urad", "measured position"),
    ("present_velocity", 60, 4, True, RO, False, *_I32, 0, "urad/s", "estimated velocity"),
    ("present_current", 64, 2, True, RO, False, *_I16, 0, "mA", "measured current"),
    ("present_temperature", 66, 2, True, RO, False, *_I16, 250, "0.1 degC", "winding temperature"),
    ("present_voltage", 68, 2, False, RO, False, *_U16, 0, "mV", "supply voltage"),
    ("status", 70, 1, False, RO, False, *_U8, 0, "StatusFlag", "status flags"),
    ("up_baud", 71, 4, False, RO, True, *_BAUD, DEFAULT_BAUD, "baud",
     "UP port rate (toward the host), kept across reboots; changed only by a confirmed rate switch"),
    ("down_baud", 75, 4, False, RO, True, *_BAUD, DEFAULT_BAUD, "baud",
     "DOWN port rate (toward the next joint), kept across reboots; changed only by a confirmed rate switch"),
    ("baud_next_up", 79, 4, False, RW, False, *_BAUD, 0, "baud", "UP rate of the next switch (0 = keep)"),
    ("baud_next_down", 83, 4, False, RW, False, *_BAUD, 0, "baud", "DOWN rate of the next switch (0 = keep)"),
    ("baud_delay", 87, 2, False, RW, False, 1, 10000, 20, "ms", "switch this long after the commit"),
    ("baud_trial", 89, 2, False, RW, False, 10, 60000, 500, "ms",
     "back to the old rates unless confirmed within this long after the switch"),
    ("baud_command", 91, 1, False, RW, False, 0, max(RateCommand), 0, "RateCommand",
     "1 commit, 2 confirm, 3 cancel the rate switch; reads 0"),
    ("baud_state", 92, 1, False, RO, False, 0, max(RateState), 0, "RateState",
     "rate switch: 0 idle, 1 armed, 2 on trial, 3 reverted"),
))

BY_NAME: dict[str, Register] = {r.name: r for r in REGISTERS}
_BY_START: dict[int, int] = {r.address: k for k, r in enumerate(REGISTERS)}
_BY_END: dict[int, int] = {r.end: k for k, r in enumerate(REGISTERS)}
TABLE_SIZE = REGISTERS[-1].end
PERSISTENT_END = BY_NAME["bus_address"].address  # first volatile address: the limits and gains end here
#: The persistent registers after the volatile area: the ports' rates (see the module docstring).
PERSISTENT_RATES = frozenset({"up_baud", "down_baud"})
#: Staged rates: each must be 0 (keep the port's rate) or a supported rate.
STAGED_RATES = ("baud_next_up", "baud_next_down")

#: The joint state block: present_position .. status, one SYNC_READ returns it.
STATE_BLOCK = (BY_NAME["present_position"].address, BY_NAME["status"].end - BY_NAME["present_position"].address)
#: Layout of the state block: position i32, velocity i32, current i16, temperature i16, voltage u16, status u8.
STATE_BLOCK_FORMAT = "<iihhHB"


_STATE_STRUCT = struct.Struct(STATE_BLOCK_FORMAT)


def _check_table() -> None:
    at = 0
    for r in REGISTERS:
        assert r.address == at, f"register table gap or overlap at {r.name}"
        assert r.size in (1, 2, 4) and r.minimum <= r.default <= r.maximum, r.name
        at = r.end
    assert all(r.persistent == (r.address < PERSISTENT_END or r.name in PERSISTENT_RATES) for r in REGISTERS)
    assert struct.calcsize(STATE_BLOCK_FORMAT) == STATE_BLOCK[1]


_check_table()


class RegisterFile:
    """One joint's register memory. Host access through :meth:`read` / :meth:`write`; firmware through
    :meth:`get` / :meth:`set`. ``mem`` is the fixed-size image (TABLE_SIZE bytes)."""

    def __init__(self, model: int = 0, serial: int = 0, firmware: tuple[int, int] = (1, 0)) -> None:
        self.mem = bytearray(TABLE_SIZE)
        for r in REGISTERS:
            self._put(r, r.default)
        self.set("model_number", model)
        self.set("serial_number", serial)
        self.set("firmware_major", firmware[0])
        self.set("firmware_minor", firmware[1])

    # --- firmware side -----------------------------------------------------------------------------------
    def get(self, name: str) -> int:
        """Value of a register by name."""
        r = BY_NAME[name]
        return int.from_bytes(self.mem[r.address:r.end], "little", signed=r.signed)

    def set(self, name: str, value: int) -> None:
        """Firmware-side store: no access rule, but the value saturates to the register's range."""
        r = BY_NAME[name]
        self._put(r, min(max(int(value), r.minimum), r.maximum))

    def set_state_block(self, position: int, velocity: int, current: int, temperature: int, voltage: int,
                        status: int) -> None:
        """Firmware-side store of the whole state block in one go (the control core's per-tick publish)."""
        _STATE_STRUCT.pack_into(self.mem, STATE_BLOCK[0], position, velocity, current, temperature, voltage, status)

    def reset_volatile(self) -> None:
        """What a reboot does: volatile registers back to their defaults, persistent ones kept."""
        for r in REGISTERS:
            if not r.persistent:
                self._put(r, r.default)

    def _put(self, r: Register, value: int) -> None:
        self.mem[r.address:r.end] = value.to_bytes(r.size, "little", signed=r.signed)

    # --- host side ---------------------------------------------------------------------------------------
    @staticmethod
    def span(address: int, length: int) -> tuple[ErrorKind | None, range]:
        """Registers covered by (address, length) as an index range, or the error kind."""
        first = _BY_START.get(address)
        if first is None:
            return ErrorKind.RANGE, range(0)
        last = _BY_END.get(address + length)
        if length <= 0 or last is None or last < first:
            return ErrorKind.LENGTH, range(0)
        return None, range(first, last + 1)

    def read(self, address: int, length: int) -> tuple[ErrorKind | None, bytes]:
        """Bytes of (address, length), or an error kind and b""."""
        err, _ = self.span(address, length)
        if err is not None:
            return err, b""
        return None, bytes(self.mem[address:address + length])

    def check_write(self, address: int, data: bytes, torque_on: bool) -> tuple[ErrorKind | None, dict[str, int]]:
        """Check a host write completely; return (error, {}) or (None, {name: new value})."""
        err, idx = self.span(address, len(data))
        if err is not None:
            return err, {}
        values: dict[str, int] = {}
        for k in idx:
            r = REGISTERS[k]
            if r.access is Access.RO or (r.persistent and torque_on):
                return ErrorKind.ACCESS, {}
            v = int.from_bytes(data[r.address - address:r.end - address], "little", signed=r.signed)
            if not r.minimum <= v <= r.maximum:
                return ErrorKind.LIMIT, {}
            values[r.name] = v
        lo = values.get("position_min", self.get("position_min"))
        hi = values.get("position_max", self.get("position_max"))
        if lo > hi:
            return ErrorKind.LIMIT, {}
        if any(values.get(name, 0) not in (0, *SUPPORTED_BAUDS) for name in STAGED_RATES):
            return ErrorKind.LIMIT, {}
        return None, values

    def write(self, address: int, data: bytes, torque_on: bool) -> ErrorKind | None:
        """Check and apply a host write; on error nothing changes."""
        err, values = self.check_write(address, data, torque_on)
        if err is None:
            for name, v in values.items():
                self._put(BY_NAME[name], v)
        return err


def register_map_markdown() -> str:
    """The register map as a Markdown table (for docs/)."""
    lines = ["| addr | name | size | type | access | persistent | min | max | default | unit | meaning |",
             "|---:|---|---:|---|---|---|---:|---:|---:|---|---|"]
    for r in REGISTERS:
        typ = ("i" if r.signed else "u") + str(8 * r.size)
        lines.append(f"| {r.address} | {r.name} | {r.size} | {typ} | {r.access.value} | "
                     f"{'yes' if r.persistent else 'no'} | {r.minimum} | {r.maximum} | {r.default} | "
                     f"{r.unit} | {r.doc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - docs generation: python -m armbus.joints.registers > table.md
    print(register_map_markdown(), end="")
