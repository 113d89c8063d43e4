"""Safety figures, short versions: watchdog on host silence, e-stop latency, limits under random commands."""

from __future__ import annotations

import functools

from armbus.bus.wire import NS_PER_MS as MS
from armbus.hil.faults import LinkFaults
from armbus.joints.control import DEFAULT_PERIOD_NS, Command, CommandKind
from armbus.joints.node import make_joint
from armbus.tools.campaigns.safety import (
    WATCHDOG_MS,
    EstopResult,
    WatchdogResult,
    estop_floor_ns,
    estop_trials,
    random_command_trial,
    watchdog_trials,
)

PERIOD_MS = DEFAULT_PERIOD_NS / MS


@functools.cache
def _watchdog() -> WatchdogResult:
    return watchdog_trials(2, seed=3)


@functools.cache
def _lossy_estop() -> EstopResult:
    return estop_trials(3, LinkFaults(drop_frame=0.05), "lossy", seed=2)


def test_host_silence_every_joint_reaches_a_safe_stop() -> None:
    r = _watchdog()
    assert r.safe_states_ok
    assert len(r.from_heartbeat_ms) == 12
    # a loose bound here; the tight one (period + one control period) is the next test
    assert max(r.from_heartbeat_ms) <= WATCHDOG_MS + 2 * PERIOD_MS
    assert min(r.from_heartbeat_ms) >= WATCHDOG_MS  # and never early
    assert max(r.to_standstill_ms) < WATCHDOG_MS + 200


def test_watchdog_trips_within_period_plus_one_control_period() -> None:
    r = _watchdog()
    assert max(r.from_heartbeat_ms) <= WATCHDOG_MS + PERIOD_MS


def test_estop_on_a_clean_link_is_close_to_the_wire_floor() -> None:
    r = estop_trials(4, None, "clean", seed=2)
    assert r.all_stopped
    floor_us = estop_floor_ns() / 1000
    assert min(r.latency_us) >= floor_us  # nothing beats the wire
    assert max(r.latency_us) <= 4 * floor_us  # at worst a goal frame and its ack ahead of it on each hop


def test_estop_under_frame_loss_still_stops_every_joint() -> None:
    r = _lossy_estop()
    assert r.all_stopped
    assert max(r.latency_us) < 300_000


def test_estop_under_frame_loss_does_not_wait_behind_queued_goals() -> None:
    r = _lossy_estop()
    assert max(r.latency_us) <= 20 * estop_floor_ns() / 1000  # a few retransmit timeouts, not 100 ms of goals


def test_random_commands_keep_every_joint_inside_its_limits() -> None:
    """Position range fixed (see the xfail below for a range moved away from the joint), gains left alone."""
    r = random_command_trial(1500, seed=4, gains=False, exclude=frozenset({"position_min", "position_max"}))
    assert r.commands == 1500 and r.ticks_checked > 1000
    assert not r.excursions, r.first


def test_random_commands_with_any_register_keep_every_joint_inside_its_limits() -> None:
    r = random_command_trial(1500, seed=4, gains=False)
    assert not r.excursions, r.first


def test_joint_powered_outside_its_position_range_returns_within_the_velocity_limit() -> None:
    j = make_joint(0x1001)
    j.set_address(1)
    regs = j.registers
    regs.set("position_min", -2_000_000)  # the joint rests at 0: 1 rad above its new range
    regs.set("position_max", -1_000_000)
    regs.set("velocity_limit", 200_000)  # 0.2 rad/s
    j.control.reload()
    j.control.commands.put(Command(CommandKind.TORQUE, 1))
    top = 0.0
    for t in range(1, 300):
        j.handle_timer(t * MS)
        top = max(top, abs(j.control.velocity))
    assert j.control.torque
    assert top <= 1.2 * 0.2 + 0.2  # the joint's own VELOCITY_LIMIT excursion level


def test_joint_powered_while_coasting_does_not_accelerate_past_its_velocity_limit() -> None:
    """Torque off for one tick while moving at the velocity limit, then on with a goal further along: the
    velocity plan starts at the joint's measured velocity, not at rest (whose acceleration feed-forward pushed
    a coasting joint 50 % past its limit)."""
    j = make_joint(0x1001)
    j.set_address(1)
    j.registers.set("velocity_limit", 1_075_000)
    box = j.control.commands
    box.put(Command(CommandKind.TORQUE, 1))
    box.put(Command(CommandKind.SET_GOAL, 2, -2_600_000))  # velocity mode, beyond the limit: runs at -1.075
    t = 0
    for t in range(1, 400):
        j.handle_timer(t * MS)
    assert j.control.velocity < -1.0
    box.put(Command(CommandKind.TORQUE, 0))
    j.handle_timer((t + 1) * MS)
    box.put(Command(CommandKind.TORQUE, 1))
    box.put(Command(CommandKind.SET_GOAL, 1, -2_000_000))  # position goal far along the way it coasts
    top = 0.0
    for k in range(t + 2, t + 100):
        j.handle_timer(k * MS)
        top = max(top, abs(j.control.velocity))
    assert top <= 1.075 + 0.05
