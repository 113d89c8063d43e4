"""The C board (joints/firmware/sil/sil_board.c) against joints/actuator.py's Actuator, noise off: the same
voltages, coasts, advances and injected faults give the same state to the last bit."""

from __future__ import annotations

import ctypes
import random

import pytest

from armbus.bus.errors import UsageError
from armbus.hil.firmware.cboard import CBoard, HalMotor, MotorParams
from armbus.joints.actuator import Actuator, ActuatorParams

MS = 1_000_000
FIELDS = ("position", "velocity", "current", "temperature", "voltage_cmd", "bridge_on", "time", "supply_voltage",
          "ambient_temperature", "load_torque", "jammed")


def same(act: Actuator, board: CBoard) -> None:
    for name in FIELDS:
        assert getattr(act, name) == getattr(board, name), (name, getattr(act, name), getattr(board, name))
    assert act.encoder_counts() == board.encoder_counts()
    assert act.sensed_current() == board.sensed_current()
    assert act.sensed_temperature() == board.sensed_temperature()
    assert act.sensed_voltage() == board.sensed_voltage()


def test_params_struct_mirrors_actuator_params() -> None:
    p = ActuatorParams(gear_ratio=100.0, max_step_ns=123_456)
    m = MotorParams.from_params(p)
    assert m.gear_ratio == 100.0 and m.max_step_ns == 123_456 and m.encoder_counts_per_motor_rev == 4096


@pytest.mark.parametrize("params", [ActuatorParams(), ActuatorParams(max_step_ns=333_333, gear_ratio=100.3,
                                                                     load_inertia=1.7e-3, hw_current_limit=1.1)],
                         ids=["default", "odd"])
def test_board_equals_actuator(ctl_lib: ctypes.CDLL, params: ActuatorParams) -> None:
    rng = random.Random(5)
    act = Actuator(params, now=0, position=0.25)
    board = CBoard(ctl_lib, params, now=0, position=0.25)
    same(act, board)
    now = 0
    moved = False
    for _ in range(3000):
        r = rng.random()
        if r < 0.5:
            v = rng.uniform(-15.0, 15.0)  # beyond the supply too: clipped
            act.set_voltage(v)
            board.set_voltage(v)
        elif r < 0.6:
            act.coast()
            board.coast()
        elif r < 0.65:
            fault = rng.choice(["load_torque", "jammed", "supply_voltage", "ambient_temperature", "temperature"])
            value: float | bool = {"load_torque": rng.choice([0.0, 0.05, -3.0, 2.0]), "jammed": rng.random() < 0.3,
                                   "supply_voltage": rng.uniform(6.0, 13.0),
                                   "ambient_temperature": rng.uniform(-10.0, 60.0),
                                   "temperature": rng.uniform(20.0, 90.0)}[fault]
            setattr(act, fault, value)
            setattr(board, fault, value)
        now += rng.choice([0, 1, 250_000, MS, MS, 1_700_001, 20 * MS, 1_000 * MS])
        act.advance(now)
        board.advance(now)
        moved |= act.velocity != 0.0
        same(act, board)
    assert moved and act.position != 0.25


def test_idle_board_cools_like_the_actuator(ctl_lib: ctypes.CDLL) -> None:
    """At rest and unpowered only the winding temperature moves (the idle shortcut): the same numbers."""
    act, board = Actuator(), CBoard(ctl_lib)
    for x in (act, board):
        x.temperature = 70.0
    for now in (1, 7 * MS, 3_000 * MS, 3_000 * MS + 250_001, 60_000 * MS):
        act.advance(now)
        board.advance(now)
        same(act, board)
    assert 25.0 < act.temperature < 70.0 and act.position == 0.0


def test_callback_mode_forwards_to_a_python_actuator(ctl_lib: ctypes.CDLL) -> None:
    """Callback mode: the HAL's calls (made in C) reach the Python Actuator, noise and all; physics mode after."""
    act, twin = Actuator(seed=3), Actuator(seed=3)
    board = CBoard(ctl_lib, actuator=act)
    hal = ctypes.cast(board.hal, ctypes.POINTER(HalMotor)).contents
    hal.set_voltage(hal.ctx, 6.0)
    twin.set_voltage(6.0)
    hal.advance(hal.ctx, 5 * MS)
    twin.advance(5 * MS)
    assert act.time == 5 * MS and act.position == twin.position != 0.0
    assert hal.encoder_counts(hal.ctx) == twin.encoder_counts()
    assert hal.sensed_current(hal.ctx) == twin.sensed_current() != act.current  # the noise stream, in step
    assert hal.sensed_temperature(hal.ctx) == twin.sensed_temperature()
    assert hal.sensed_voltage(hal.ctx) == twin.sensed_voltage()
    hal.coast(hal.ctx)
    assert not act.bridge_on and board.time == 0  # the C physics was not touched
    board.use_physics()
    hal.advance(hal.ctx, 5 * MS)
    assert board.time == 5 * MS and act.time == 5 * MS and board.actuator is None


def test_noise_on_the_c_board_is_a_usage_error(ctl_lib: ctypes.CDLL) -> None:
    board = CBoard(ctl_lib)
    assert not board.noisy
    with pytest.raises(UsageError, match="actuator=Actuator"):
        board.set_noise(current=0.1, seed=1)
