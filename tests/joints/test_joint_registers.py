"""Register table: layout, every error kind, nothing changes on error, persistence across reboot."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from armbus.bus.wire import ErrorKind
from armbus.joints.registers import (
    BY_NAME,
    REGISTERS,
    STATE_BLOCK,
    STATE_BLOCK_FORMAT,
    TABLE_SIZE,
    Access,
    RegisterFile,
    register_map_markdown,
)


def enc(name: str, value: int) -> bytes:
    r = BY_NAME[name]
    return value.to_bytes(r.size, "little", signed=r.signed)


def test_state_block_is_contiguous_and_matches_format() -> None:
    addr, length = STATE_BLOCK
    assert addr == BY_NAME["present_position"].address
    assert addr + length == BY_NAME["status"].end
    rf = RegisterFile()
    rf.set("present_position", -123456)
    rf.set("present_voltage", 12000)
    rf.set("status", 0x81)
    err, data = rf.read(addr, length)
    assert err is None
    pos, _vel, _cur, temp, volt, status = struct.unpack(STATE_BLOCK_FORMAT, data)
    assert (pos, volt, status, temp) == (-123456, 12000, 0x81, 250)


def test_identity_and_defaults() -> None:
    rf = RegisterFile(model=0x0430, serial=0xDEADBEEF, firmware=(2, 3))
    assert rf.get("model_number") == 0x0430
    assert rf.get("serial_number") == 0xDEADBEEF
    assert (rf.get("firmware_major"), rf.get("firmware_minor")) == (2, 3)
    for r in REGISTERS[4:]:
        assert rf.get(r.name) == r.default


@pytest.mark.parametrize(
    ("address", "length", "kind"),
    [(1, 1, ErrorKind.RANGE), (TABLE_SIZE, 1, ErrorKind.RANGE), (9999, 1, ErrorKind.RANGE),
     (0, 0, ErrorKind.LENGTH), (0, 1, ErrorKind.LENGTH), (4, 3, ErrorKind.LENGTH),
     (56, TABLE_SIZE, ErrorKind.LENGTH)],
)
def test_read_errors(address: int, length: int, kind: ErrorKind) -> None:
    assert RegisterFile().read(address, length) == (kind, b"")


def test_multi_register_read_and_write() -> None:
    rf = RegisterFile()
    data = enc("goal_position", 1000) + enc("goal_velocity", -2000) + enc("goal_current", 300)
    assert rf.write(BY_NAME["goal_position"].address, data, torque_on=True) is None
    assert rf.read(BY_NAME["goal_position"].address, len(data)) == (None, data)


def _image(rf: RegisterFile) -> bytes:
    return bytes(rf.mem)


@pytest.mark.parametrize(
    ("address", "data", "torque_on", "kind"),
    [
        (1, b"\x00", False, ErrorKind.RANGE),  # not a register start
        (37, b"", False, ErrorKind.LENGTH),
        (44, b"\x00\x00", False, ErrorKind.LENGTH),  # half a goal_position
        (0, enc("model_number", 5), False, ErrorKind.ACCESS),  # read-only
        (56, enc("present_position", 5), False, ErrorKind.ACCESS),
        (BY_NAME["position_max"].address, enc("position_max", 0), True, ErrorKind.ACCESS),  # persistent, torque on
        (37, b"\x02", False, ErrorKind.LIMIT),  # torque_enable is 0/1
        (38, b"\x00", False, ErrorKind.LIMIT),  # goal_mode 0 is not a GoalMode
        (44, enc("goal_position", 100_000_001), False, ErrorKind.LIMIT),
        (BY_NAME["position_min"].address, enc("position_min", 3_000_000), False, ErrorKind.LIMIT),  # min > max
        # a good first register does not get written when a later one fails
        (37, b"\x01\x07", False, ErrorKind.LIMIT),
    ],
)
def test_write_errors_change_nothing(address: int, data: bytes, torque_on: bool, kind: ErrorKind) -> None:
    rf = RegisterFile(model=1, serial=2)
    before = _image(rf)
    assert rf.write(address, data, torque_on) == kind
    assert _image(rf) == before


def test_persistent_write_with_torque_off_then_reboot_keeps_it() -> None:
    rf = RegisterFile()
    assert rf.write(BY_NAME["position_max"].address, enc("position_max", 1_000_000), torque_on=False) is None
    assert rf.write(BY_NAME["goal_position"].address, enc("goal_position", 5), torque_on=False) is None
    rf.set("bus_address", 3)
    rf.reset_volatile()
    assert rf.get("position_max") == 1_000_000
    assert rf.get("goal_position") == 0
    assert rf.get("bus_address") == BY_NAME["bus_address"].default


def test_firmware_set_saturates() -> None:
    rf = RegisterFile()
    rf.set("present_current", 10**9)
    assert rf.get("present_current") == 2**15 - 1


@given(st.integers(0, 300), st.binary(max_size=20), st.booleans())
def test_random_writes_either_apply_exactly_or_change_nothing(address: int, data: bytes, torque: bool) -> None:
    rf = RegisterFile()
    before = _image(rf)
    err = rf.write(address, data, torque)
    after = _image(rf)
    if err is not None:
        assert after == before
    else:
        assert after[address:address + len(data)] == data
        assert after[:address] == before[:address] and after[address + len(data):] == before[address + len(data):]
        assert all(r.access is Access.RW for r in REGISTERS if address <= r.address < address + len(data))


def test_markdown_lists_every_register() -> None:
    md = register_map_markdown()
    for r in REGISTERS:
        assert f"| {r.address} | {r.name} |" in md
