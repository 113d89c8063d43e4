"""The C control core against the Python ControlCore: the same scripts of commands, goals, e-stops, watchdog and
injected faults, compared exactly after every step (state snapshot, flags, torque, fault events, ring marks,
hooks, and the actuator's state to the last bit). Each scenario also asserts what it exercises happened, so that
agreement is not agreement on doing nothing."""

from __future__ import annotations

import ctypes
import random

import pytest
from ctl_harness import MS, Pair

from armbus.bus.wire import FaultCode, GoalMode, StatusFlag
from armbus.joints.actuator import ActuatorParams
from armbus.joints.control import CommandKind as K

POS, VEL, CUR = int(GoalMode.POSITION), int(GoalMode.VELOCITY), int(GoalMode.CURRENT)
#: The board behind the C core: the C physics (None) or a Python Actuator with this noise seed (callbacks).
BOARDS = pytest.mark.parametrize("noise_seed", [None, 7], ids=["c-board", "py-actuator"])


def codes(pair: Pair, active: bool = True) -> list[int]:
    return [int(e.code) for e in pair.events if e.active == active]


@BOARDS
def test_position_moves_goals_beyond_limits_and_the_envelope(ctl_lib: ctypes.CDLL, noise_seed: int | None) -> None:
    p = Pair(ctl_lib, noise_seed=noise_seed, position_max=1_500_000)
    p.run(3)
    p.command(K.TORQUE, 1)
    p.run(50)  # holds where it is
    p.command(K.SET_GOAL, POS, 1_000_000)
    p.run(600)
    p.command(K.SET_GOAL, POS, 3_000_000)  # beyond position_max: clamped, AT_LIMIT
    saw_limit = False
    for _ in range(150):
        p.run(4)
        saw_limit |= bool(p.py.state.status & StatusFlag.AT_LIMIT)
    assert saw_limit and abs(p.py.state.position - 1_500_000) < 20_000
    p.command(K.SET_GOAL, POS, -2_000_000)
    p.run(1200, step_ns=700_000)  # odd steps: some calls run no tick, some two
    assert abs(p.py.state.position + 2_000_000) < 20_000


@BOARDS
def test_velocity_and_current_modes_run_into_the_envelope(ctl_lib: ctypes.CDLL, noise_seed: int | None) -> None:
    p = Pair(ctl_lib, noise_seed=noise_seed, velocity_limit=3_000_000, current_limit=1200)
    p.command(K.TORQUE, 1)
    p.command(K.SET_GOAL, VEL, 5_000_000)  # beyond the velocity limit
    p.run(1500, step_ns=3 * MS)  # catch-up: three ticks per call; runs into position_max and brakes there
    assert p.py.state.status & StatusFlag.AT_LIMIT
    assert 2_400_000 < p.py.state.position <= 2_617_994 + 50_000
    p.command(K.SET_GOAL, CUR, -800)  # current mode, toward the other limit
    p.run(2500)
    assert p.py.state.position < -2_000_000
    p.command(K.SET_GOAL, VEL, 1_000_000)  # from current mode back to a velocity mode
    p.run(300)
    assert p.py.state.velocity > 500_000


@BOARDS
def test_goal_slot_latched_at_its_instant(ctl_lib: ctypes.CDLL, noise_seed: int | None) -> None:
    p = Pair(ctl_lib, noise_seed=noise_seed)
    p.command(K.TORQUE, 1)
    p.run(10)
    for k in range(40):
        at = p.now + 300_000 + 17_000 * k  # between two ticks
        p.post_goal(POS if k % 2 else VEL, (k % 7) * 150_000 - 400_000, at, 1000 + k)
        if k % 5 == 0:  # replaced before it is latched: only the newer one counts
            p.post_goal(POS, 200_000, at + 50_000, 5000 + k)
        if k % 3 == 0:
            p.timer(at - 1)  # just before: not latched yet
        p.run(5 if k % 4 else 0.5, step_ns=MS if k % 2 else 2_500_000)
    assert len(p.c.latched) >= 30 and p.c.latched[0] == (10_350_000, 5000)  # some were replaced unlatched
    at = p.now + 400_000
    p.post_goal(POS, 0, at, 77)
    p.estop(p.now + 100_000)  # a stop clears the slot
    p.run(5)
    assert all(tag != 77 for _, tag in p.c.latched)
    p.post_goal(POS, 0, p.now + 200_000, 78)  # latched while e-stopped: ignored
    p.run(5)
    assert all(tag != 78 for _, tag in p.c.latched)


@BOARDS
def test_estop_brakes_then_removes_torque_release_only_readies(ctl_lib: ctypes.CDLL, noise_seed: int | None) -> None:
    p = Pair(ctl_lib, noise_seed=noise_seed)
    p.command(K.TORQUE, 1)
    p.command(K.SET_GOAL, VEL, 3_000_000)
    p.run(400)
    p.command(K.RELEASE_ESTOP)  # queued before the e-stop: stale
    p.command(K.SET_GOAL, VEL, -1_000_000)  # queued before it too, not a release: taken (and refused, blocked)
    p.command(K.CLEAR, int(StatusFlag.ESTOPPED))
    p.command(K.TORQUE, 1)  # already on
    p.estop(p.now + MS // 2)
    p.run(100)
    assert p.py.stale_releases == 2  # and the C core's count equals it (Pair.check)
    status = p.py.state.status
    assert status & StatusFlag.ESTOPPED and not status & StatusFlag.TORQUE_ON
    p.command(K.TORQUE, 1)  # refused while e-stopped
    p.command(K.SET_GOAL, POS, 0)
    p.run(20)
    p.command(K.RELEASE_ESTOP)
    p.run(200)
    assert not p.py.state.status & (StatusFlag.ESTOPPED | StatusFlag.TORQUE_ON)
    p.command(K.SET_GOAL, POS, 1_000_000)  # a goal racing the torque-on
    p.command(K.TORQUE, 1)
    p.run(300)  # holds where it is
    p.command(K.SET_GOAL, POS, 1_000_000)
    p.run(1000)
    assert abs(p.py.state.position - 1_000_000) < 20_000
    p.estop(p.now)  # exactly at a tick instant
    p.estop(p.now + 10)  # twice: one event
    p.run(100)
    assert codes(p) == [FaultCode.ESTOP, FaultCode.ESTOP] and codes(p, active=False) == [FaultCode.ESTOP]


@BOARDS
def test_watchdog_safe_stop_and_clear(ctl_lib: ctypes.CDLL, noise_seed: int | None) -> None:
    p = Pair(ctl_lib, noise_seed=noise_seed)
    p.command(K.TORQUE, 1)
    p.command(K.WATCHDOG, 100)
    p.command(K.SET_GOAL, VEL, 2_000_000)
    for _ in range(5):
        p.run(50)
        p.command(K.HEARTBEAT, 123)
    p.run(400)
    assert codes(p) == [FaultCode.WATCHDOG] and not p.py.torque
    for _ in range(5):
        p.command(K.HEARTBEAT)
        p.run(20)
    p.command(K.CLEAR, int(StatusFlag.WATCHDOG | StatusFlag.FAULT | StatusFlag.REBOOTED))
    p.command(K.HEARTBEAT)
    p.run(20)
    assert not p.py.state.status & (StatusFlag.WATCHDOG | StatusFlag.FAULT | StatusFlag.REBOOTED)
    p.command(K.TORQUE, 1)
    p.command(K.WATCHDOG, 0)  # off
    p.run(300)
    assert p.py.torque


@BOARDS
def test_reload_takes_new_limits_and_gains(ctl_lib: ctypes.CDLL, noise_seed: int | None) -> None:
    p = Pair(ctl_lib, noise_seed=noise_seed)
    p.command(K.TORQUE, 1)
    p.command(K.SET_GOAL, POS, 2_000_000)
    p.run(200)
    for name, value in (("position_max", 1_000_000), ("velocity_limit", 1_500_000), ("current_limit", 600),
                        ("pos_kp", 900), ("vel_kp", 1600), ("vel_ki", 9000), ("cur_kp", 500), ("cur_ki", 1500)):
        p.set_reg(name, value)
    p.command(K.RELOAD)  # a limit moved past the joint: the envelope points back inside
    p.run(1500)
    assert abs(p.py.state.position - 1_000_000) < 20_000
    p.command(K.TORQUE, 0)
    p.run(50)
    p.set_reg("temperature_limit", 260)
    p.set_reg("min_voltage", 11000)
    p.command(K.TORQUE, 1)  # torque-on reloads too
    p.run(100)
    p.set_reg("position_max", 500_000)  # past the joint, and no current to brake with: the envelope is empty
    p.set_reg("current_limit", 0)
    p.set_reg("pos_kp", 0)
    p.command(K.RELOAD)
    p.command(K.SET_GOAL, VEL, 1_000_000)
    p.run(50)
    assert p.py.state.status & StatusFlag.AT_LIMIT


@BOARDS
def test_over_temperature_trips_and_clears_with_hysteresis(ctl_lib: ctypes.CDLL, noise_seed: int | None) -> None:
    p = Pair(ctl_lib, noise_seed=noise_seed, temperature_limit=300)
    p.command(K.TORQUE, 1)
    p.command(K.SET_GOAL, VEL, 1_000_000)
    p.run(100)
    p.inject(temperature=31.0)
    p.run(50)
    assert codes(p) == [FaultCode.OVER_TEMPERATURE] and not p.py.torque
    p.command(K.CLEAR, int(StatusFlag.FAULT))  # refused while hot
    p.run(10)
    assert p.py.state.status & StatusFlag.FAULT
    p.inject(temperature=24.0)
    p.run(10)
    p.command(K.CLEAR, int(StatusFlag.FAULT))
    p.run(10)
    assert codes(p, active=False) == [FaultCode.OVER_TEMPERATURE] and not p.py.state.status & StatusFlag.FAULT


@BOARDS
def test_undervoltage_trips_and_clears(ctl_lib: ctypes.CDLL, noise_seed: int | None) -> None:
    p = Pair(ctl_lib, noise_seed=noise_seed)
    p.command(K.TORQUE, 1)
    p.run(20)
    p.inject(supply_voltage=8.0)
    p.run(30)
    assert codes(p) == [FaultCode.UNDERVOLTAGE]
    p.inject(supply_voltage=12.0)
    p.run(10)
    assert codes(p, active=False) == [FaultCode.UNDERVOLTAGE]


@BOARDS
def test_stall_on_a_jammed_joint(ctl_lib: ctypes.CDLL, noise_seed: int | None) -> None:
    p = Pair(ctl_lib, noise_seed=noise_seed)
    p.inject(jammed=True)
    p.command(K.TORQUE, 1)
    p.command(K.SET_GOAL, POS, 1_000_000)
    p.run(700)
    assert FaultCode.STALL in codes(p) and not p.py.torque


@BOARDS
def test_over_current_and_excursions_when_backdriven(ctl_lib: ctypes.CDLL, noise_seed: int | None) -> None:
    p = Pair(ctl_lib, noise_seed=noise_seed)
    p.command(K.TORQUE, 1)
    p.run(20)
    p.inject(load_torque=-20.0)  # far beyond the stall torque: the joint is driven back past its limit
    p.run(400)
    got = codes(p)
    assert FaultCode.OVER_CURRENT in got and FaultCode.VELOCITY_LIMIT in got and FaultCode.POSITION_LIMIT in got
    p.inject(load_torque=0.0)
    p.run(3000)
    assert FaultCode.VELOCITY_LIMIT in codes(p, active=False)


def test_noisy_sensors_and_mailbox_full(ctl_lib: ctypes.CDLL) -> None:
    """Seeded noise on every sensor (the encoder too) behind the callbacks; the command ring refuses when full and
    the event ring when the comm core does not drain it."""
    p = Pair(ctl_lib, noise_seed=11)
    for act in (p.act, p.c_act):
        assert act is not None
        act.set_noise(current=0.05, temperature=0.5, voltage=0.3, encoder_counts=2.0)
    p.command(K.TORQUE, 1)
    p.command(K.SET_GOAL, POS, 500_000)
    p.run(300)
    refused = [p.command(K.HEARTBEAT) for _ in range(20)]
    assert refused.count(False) == 4 and p.py.commands.refused == 4
    p.run(300)
    for k in range(12):  # nobody drains the fault events: the ring of 8 refuses the rest
        p.inject(supply_voltage=8.0 if k % 2 == 0 else 12.0)
        p.run(15, check=False)
    assert p.py.events.refused > 0
    p.check()


def test_random_scripts(ctl_lib: ctypes.CDLL) -> None:
    """Seeded random scripts of every action, on the C board: still equal after every step. Odd registers too
    (no position gain, no current or speed allowed, limits moved past the joint) and stretches where nobody drains
    the fault events."""
    rng = random.Random(2026)
    kinds = [K.SET_GOAL, K.SET_GOAL, K.SET_GOAL, K.TORQUE, K.TORQUE, K.HEARTBEAT, K.WATCHDOG, K.CLEAR,
             K.RELEASE_ESTOP, K.RELOAD]
    for _ in range(4):
        p = Pair(ctl_lib, params=ActuatorParams(load_inertia=rng.uniform(1e-3, 6e-3)),
                 current_limit=rng.choice([0, 300, 1500, 2500]), pos_kp=rng.choice([0, 2000, 9000]),
                 velocity_limit=rng.choice([0, 500_000, 4_000_000]))
        for _ in range(150):
            r = rng.random()
            if r < 0.45:
                kind = rng.choice(kinds)
                mode = rng.choice([POS, VEL, CUR])
                value = {POS: rng.randint(-3_000_000, 3_000_000), VEL: rng.randint(-6_000_000, 6_000_000),
                         CUR: rng.randint(-2500, 2500)}[mode]
                a = {K.SET_GOAL: mode, K.TORQUE: rng.randint(0, 1), K.WATCHDOG: rng.choice([0, 30, 200]),
                     K.CLEAR: rng.randint(0, 255)}.get(kind, 0)
                p.command(kind, a, value)
            elif r < 0.55:
                p.estop(p.now + rng.randint(0, MS))
            elif r < 0.75:
                p.post_goal(rng.choice([POS, VEL, CUR]), rng.randint(-2_000_000, 2_000_000),
                            p.now + rng.randint(0, 3 * MS), rng.randint(0, 0xFFFF))
            elif r < 0.8:
                p.inject(load_torque=rng.choice([0.0, rng.uniform(-6.0, 6.0), rng.uniform(-30.0, 30.0)]))
            elif r < 0.85:
                lo = rng.randint(-3_000_000, 2_000_000)
                p.set_reg("position_min", lo)
                p.set_reg("position_max", rng.randint(lo, 3_000_000))
                p.set_reg(rng.choice(["current_limit", "velocity_limit", "pos_kp"]), rng.randint(0, 3000))
                p.command(K.RELOAD)
            p.run(rng.randint(1, 60), step_ns=rng.choice([MS, 250_000, 1_700_000, 5 * MS]), check=rng.random() < 0.8)
        p.check()
        assert p.checks > 100


@BOARDS
def test_powered_while_coasting_faster_than_the_envelope(ctl_lib: ctypes.CDLL, noise_seed: int | None) -> None:
    """Torque-on while the joint still coasts far faster than a velocity limit lowered meanwhile: braked back
    inside without integrating, then the plan restarts."""
    p = Pair(ctl_lib, noise_seed=noise_seed)
    p.command(K.TORQUE, 1)
    p.command(K.SET_GOAL, VEL, -4_200_000)
    p.run(400)
    p.command(K.TORQUE, 0)
    p.run(5)
    assert p.py.velocity < -3.5
    p.set_reg("velocity_limit", 90_568)
    p.command(K.TORQUE, 1)
    p.command(K.SET_GOAL, POS, 30_400_236)
    recovering = []
    for _ in range(360):
        p.run(1)
        recovering.append(p.py._recovering)
    assert recovering[0] and not recovering[-1] and abs(p.py.velocity) < 0.2
