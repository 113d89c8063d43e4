"""Control core of a joint: the fixed-rate motor loop running on the second core, sans-I/O.

Theory of operation
-------------------
The loop ticks at ``t0 + k * period`` (default 1 kHz). The driver calls :meth:`ControlCore.handle_timer` at
:meth:`ControlCore.next_deadline`; each tick runs, in this order (then the observers in ``tick_hooks``, if any,
see its result: measurement campaigns watch limits and stops there without touching the loop):

1. advance the actuator physics to the tick instant (the voltage set at the previous tick was held);
2. drain the command mailbox (goals, torque, heartbeat, watchdog period, flag clears, e-stop release, config);
3. sample the sensors: encoder -> position, differenced and low-pass filtered -> velocity, current, temperature,
   supply voltage;
4. safety checks, each producing a FAULT event (to the comm core, through the event mailbox) and latching
   status flags: over-temperature, under-voltage, over-current, stall (these switch the bridge off),
   heartbeat watchdog (safe stop), position/velocity excursions (reported, not latched);
5. cascaded control: position (P, capped at ``sqrt(2 a_brake |error|)`` so that the joint is never asked to
   approach its goal faster than it can stop within the distance left) -> velocity reference, slew-limited to
   80 % of the acceleration the current limit allows (no integrator wind-up behind steps) -> velocity (PI,
   conditional integration, plus J*a/Kt acceleration feed-forward) -> current (R*i + Ke*w feed-forward plus a
   PI correction) -> voltage. The current sampled at a
   tick answers the voltage held since the previous tick, so the PI compares it with the *previous* reference:
   a new reference is reached by the feed-forward (the 40 us electrical time constant settles well within a
   tick), and the PI only corrects model error. (Comparing the sample with the new reference read every step of
   the reference as an error: a proportional kick plus integrator wind-up drove the current ~30 % over its
   reference for several ticks and the joint past its velocity limit.) The velocity loop likewise compares the
   measured velocity (an encoder difference over the last tick, filtered) with the reference passed through
   the same tick mean and filter, so it does not push the joint ahead of the slew plan. A joint powered while it
   still coasts faster than the envelope allows is braked back inside it without integrating (the braking
   error, integrated, once swung it to 4x its velocity limit the other way), and the plan restarts there.
   Whatever the host asked, the goal is clamped to the configured limits, and a velocity envelope
   ``v_hi = min(v_lim, k (p_max - p), sqrt(2 a_brake (p_max - p)))`` (and its mirror ``v_lo``) keeps every mode
   (current mode too) from running into a position limit; any clamping sets ``StatusFlag.AT_LIMIT``;
6. publish the state snapshot (:class:`ControlState`, latest wins, read by the comm core).

Stops: a safe stop (watchdog) and an e-stop both brake at the current limit to standstill and then remove torque
(IEC 60204-1 stop category 1: the TORQUE_ON flag and the ``torque_enable`` register then read 0); goals are
refused while the stop is latched. Clearing the stop (a release, or heartbeats coming back and a CLEAR) only makes
the joint *ready*: it stays unpowered until an explicit torque-on, which holds the position where the joint is
until a new goal arrives, so nothing moves by itself and nothing jumps.
An e-stop acts immediately (:meth:`ControlCore.estop`, an inter-core interrupt, not a mailbox entry): the
physics is advanced to the e-stop instant and the bridge shorts the winding (0 V, dynamic braking) at once;
the next tick takes over with the braking loop. After torque enable the joint also holds where it is until the
first goal: the old goal register never makes a joint jump.

Cyclic goals (the CYCLE exchange, docs/protocol.md) do not go through the mailbox: the comm core writes them into a
*goal slot* (:meth:`ControlCore.post_goal`: mode, value, the instant to apply it, and the cycle's msg_id as a tag),
latest wins, as the state snapshot goes the other way. The core latches the slot's goal at exactly that instant
(an alarm on real hardware; here an extra deadline of :meth:`next_deadline`) rather than at its next tick, so that
joints whose frames arrived hundreds of microseconds apart take their goals together; the loop acts on it from
the next tick. A latched cyclic goal also counts as a heartbeat. A stop clears the slot, and a goal latched while
a stop or fault holds the joint is ignored like any other. ``latch_hooks`` observe each latch (measurement only).

Limits and gains come from the persistent registers, which can only change with torque off, so the core
reloads them on torque enable and on a RELOAD command; they never change under a moving joint.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import NamedTuple

from armbus.bus.wire import FaultCode, GoalMode, StatusFlag
from armbus.joints.actuator import COPPER_ALPHA, Actuator, ActuatorParams
from armbus.joints.mailbox import Mailbox
from armbus.joints.registers import RegisterFile

#: Default loop period: 1 kHz, the usual position/velocity loop rate of small servo drives.
DEFAULT_PERIOD_NS = 1_000_000
#: Velocity filter cut-off (Hz): the motor-side encoder quantizes velocity to 4 mrad/s at 1 kHz, so little
#: filtering is needed; 400 Hz adds under 0.4 ms of lag to a velocity loop of about 16 Hz bandwidth.
VELOCITY_FILTER_HZ = 400.0
#: Standstill / moving threshold (rad/s): about 1 deg/s.
MOVING_THRESHOLD = 0.02
#: Fraction of the current limit assumed available for braking when shaping the position-limit envelope.
BRAKE_FRACTION = 0.5
#: Fraction of the current limit the velocity reference may use to accelerate (slew limit): above the envelope's
#: braking fraction so the reference can follow the envelope, below 1 so that friction and the loop keep headroom
#: and the velocity integrator does not wind up behind an unreachable step.
SLEW_FRACTION = 0.8
#: Over-current trip: measured current above 1.25 x limit + 0.2 A for 10 ms (a transient over one tick is normal).
OVERCURRENT_FACTOR, OVERCURRENT_MARGIN, OVERCURRENT_TIME = 1.25, 0.2, 0.010
#: Stall: commanded current at >= 90 % of the limit while slower than 0.05 rad/s for 0.5 s.
STALL_FRACTION, STALL_SPEED, STALL_TIME = 0.9, 0.05, 0.5
#: Under-voltage must last 10 ms (ignores a single noisy sample).
UNDERVOLTAGE_TIME = 0.010
#: Over-temperature clears 5 K below the limit (hysteresis, so the flag does not chatter).
OVERTEMP_HYSTERESIS = 5.0
#: Position / velocity excursions beyond the limits reported as faults (not latched): 0.05 rad, 20 % + 0.2 rad/s.
POSITION_EXCURSION, VELOCITY_EXCURSION = 0.05, 0.2
# StatusFlag bits as plain ints: the tick tests and sets them every millisecond and IntFlag arithmetic is slow.
_TORQUE_ON, _MOVING, _AT_LIMIT = int(StatusFlag.TORQUE_ON), int(StatusFlag.MOVING), int(StatusFlag.AT_LIMIT)
_FAULT, _ESTOPPED, _WATCHDOG = int(StatusFlag.FAULT), int(StatusFlag.ESTOPPED), int(StatusFlag.WATCHDOG)
_OVERHEAT, _REBOOTED = int(StatusFlag.OVERHEAT), int(StatusFlag.REBOOTED)
_I32 = 2**31
_I32_MAX = _I32 - 1
_BIT_UNDERVOLTAGE = 1 << FaultCode.UNDERVOLTAGE
_BIT_POSITION_LIMIT = 1 << FaultCode.POSITION_LIMIT
_BIT_VELOCITY_LIMIT = 1 << FaultCode.VELOCITY_LIMIT
#: Latched flags that keep the bridge off (or the joint stopped) until the host clears them.
BLOCKING = _FAULT | _ESTOPPED | _WATCHDOG
#: Stops that brake the joint to standstill and then remove torque (faults switch the bridge off at once).
_STOPS = _ESTOPPED | _WATCHDOG


class CommandKind(enum.IntEnum):
    """Comm core -> control core commands (the mailbox carries ``Command(kind, a, b)``)."""

    SET_GOAL = 1  # a = GoalMode, b = value (urad, urad/s or mA)
    TORQUE = 2  # a = 0/1
    HEARTBEAT = 3  # a = host time (ms), for traces only
    WATCHDOG = 4  # a = period in ms (0 = off); restarts the timer
    CLEAR = 5  # a = StatusFlag bits to clear
    RELEASE_ESTOP = 6
    RELOAD = 7  # persistent registers changed: reload limits and gains


class Command(NamedTuple):
    kind: CommandKind
    a: int = 0
    b: int = 0


class FaultEvent(NamedTuple):
    """Control core -> comm core: a fault became active (``active``) or cleared; ``value`` in register units."""

    code: FaultCode
    active: bool
    value: int


class ControlState(NamedTuple):
    """Snapshot in register units, published every tick (the state block of the register table)."""

    position: int  # urad
    velocity: int  # urad/s
    current: int  # mA
    temperature: int  # 0.1 degC
    voltage: int  # mV
    status: int  # StatusFlag


_new_state = tuple.__new__


class ControlCore:
    """The motor loop. ``commands`` and ``events`` are the two mailboxes shared with the comm core."""

    def __init__(self, actuator: Actuator, registers: RegisterFile, period_ns: int = DEFAULT_PERIOD_NS,
                 now: int = 0) -> None:
        self.act = actuator
        self.motor: ActuatorParams = actuator.params
        self.regs = registers
        self.period_ns = period_ns
        self.dt = period_ns * 1e-9
        self.commands: Mailbox[Command] = Mailbox()
        self.events: Mailbox[FaultEvent] = Mailbox(8)
        #: Producer index of the command mailbox when the last e-stop came: a release queued before it (and so
        #: sent before the e-stop) must not undo it. A C port reads the ring's write index the same way.
        self._estop_mark = 0
        self.stale_releases = 0
        #: Observers called as ``hook(t)`` right after each tick at ``t``, in order (measurement only: a hook reads
        #: the core and must not change it). Empty by default: the tick loop then only tests the list.
        self.tick_hooks: list[Callable[[int], None]] = []
        self._next_tick = now + period_ns
        self.sampled_at = now  # instant of the latest sensor sample (the state snapshot's age starts here)
        #: The cyclic goal slot (see "Cyclic goals"): None, or (apply_at, mode, value, tag).
        self._slot: tuple[int, int, int, int] | None = None
        self.goals_latched = 0
        #: Observers called as ``hook(t, tag)`` when a cyclic goal is latched (measurement only).
        self.latch_hooks: list[Callable[[int, int], None]] = []
        self._alpha = 1.0 - math.exp(-2.0 * math.pi * VELOCITY_FILTER_HZ * self.dt)
        self.flags = _REBOOTED
        self.torque = False
        self.mode = GoalMode.POSITION
        self.goal = 0
        self.holding = True  # hold the rest position until the first goal
        self.hold_position = 0.0
        self.braking = False  # safe stop / e-stop: brake to standstill first
        self.watchdog_ns = 0
        self.last_heartbeat = now
        self.active_faults: set[FaultCode] = set()
        self._active_bits = 0  # the same set as bits (1 << code): the per-tick tests hash no enum member
        self._t_overcurrent = self._t_stall = self._t_undervoltage = 0.0  # seconds a condition has lasted
        self._v_int = 0.0
        self._i_int = 0.0
        #: Powered while faster than the velocity envelope allows (torque-on while the joint still coasts): the
        #: loop brings it back inside at the current limit without integrating (see :meth:`_velocity_loop`).
        self._recovering = False
        self._v_cmd = 0.0  # slew-limited velocity reference
        self._v_prev = 0.0  # the reference of the previous tick (the measured velocity answers both)
        self._v_seen = 0.0  # the reference as the velocity measurement sees it (tick mean, then the same filter)
        self.i_ref = 0.0
        self._i_applied = 0.0  # the current reference the held voltage was computed for (0: bridge off/shorted)
        self.position = actuator.encoder_counts() / self.motor.counts_per_output_rad
        self.velocity = 0.0
        self.current = 0.0
        self.temperature = actuator.sensed_temperature()
        self.voltage = actuator.sensed_voltage()
        self._counts_per_rad = self.motor.counts_per_output_rad
        self.reload()
        self.state = self._snapshot()

    # --- configuration -----------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read limits and gains (SI units) from the persistent registers."""
        g = self.regs.get
        self.p_min, self.p_max = g("position_min") * 1e-6, g("position_max") * 1e-6
        self.v_lim = g("velocity_limit") * 1e-6
        self.i_lim = g("current_limit") * 1e-3
        self.t_lim = g("temperature_limit") * 0.1
        self.v_min = g("min_voltage") * 1e-3
        self.kp_p = g("pos_kp") * 0.01
        self.kp_v, self.ki_v = g("vel_kp") * 1e-3, g("vel_ki") * 1e-3
        self.kp_i, self.ki_i = g("cur_kp") * 1e-3, float(g("cur_ki"))
        a_max = self.i_lim * self.motor.output_torque_constant / self.motor.output_inertia
        self.a_brake = BRAKE_FRACTION * a_max
        self.a_slew = SLEW_FRACTION * a_max
        self._j_over_kt = self.motor.output_inertia / self.motor.output_torque_constant
        # thresholds the safety checks compare with every tick (the same arithmetic, done once)
        self._overtemp_clear = self.t_lim - OVERTEMP_HYSTERESIS
        self._overcurrent = OVERCURRENT_FACTOR * self.i_lim + OVERCURRENT_MARGIN
        self._stall_current = STALL_FRACTION * self.i_lim
        self._velocity_excursion = self.v_lim * 1.2 + VELOCITY_EXCURSION

    # --- sans-I/O driving --------------------------------------------------------------------------------
    def next_deadline(self) -> int:
        """Time of the next tick, or of the cyclic goal's latch when that comes first."""
        slot = self._slot
        if slot is not None and slot[0] < self._next_tick:
            return slot[0]
        return self._next_tick

    def post_goal(self, mode: int, value: int, at: int, tag: int) -> None:
        """Comm core: put a cyclic goal in the slot, to be latched at ``at`` (replaces one not yet latched)."""
        self._slot = (at, mode, value, tag)

    def handle_timer(self, now: int) -> None:
        """Run every tick due at or before ``now`` (each followed by the ``tick_hooks``), and latch a cyclic goal
        that falls due among them at its own instant."""
        hooks = self.tick_hooks
        slot = self._slot
        if slot is not None and slot[0] <= now:
            while self._next_tick <= slot[0]:  # the ticks before the latch instant run first
                self._run_tick(hooks)
            self._latch(slot)
        while self._next_tick <= now:
            self._run_tick(hooks)

    def _run_tick(self, hooks: list[Callable[[int], None]]) -> None:
        t = self._next_tick
        self._next_tick += self.period_ns
        self._tick(t)
        if hooks:
            for hook in hooks:
                hook(t)

    def _latch(self, slot: tuple[int, int, int, int]) -> None:
        at, mode, value, tag = slot
        self._slot = None
        if not self.flags & BLOCKING:
            self.mode, self.goal, self.holding = GoalMode(mode), value, False
            self.last_heartbeat = at
            self.goals_latched += 1
            for hook in self.latch_hooks:
                hook(at, tag)

    def estop(self, now: int) -> None:
        """Emergency stop, effective at ``now``: short-brake at once, then brake to standstill and hold."""
        self.act.advance(now)
        if self.torque:
            self.act.set_voltage(0.0)
            self._i_applied = 0.0
        self._estop_mark = self.commands.posted
        self._slot = None  # a cyclic goal not yet latched never follows a stop
        if not self.flags & _ESTOPPED:
            self.flags |= _ESTOPPED
            self._start_stop()
            self._event(FaultCode.ESTOP, True, 0)

    # --- the tick ----------------------------------------------------------------------------------------
    def _tick(self, t: int) -> None:
        act = self.act
        act.advance(t)
        box = self.commands
        if box:  # the consumer's own test of the ring indices (Mailbox.__bool__) before any get()
            while box.taken < self._estop_mark:  # queued before the last e-stop: no release may undo it
                cmd = box.get()
                if cmd is not None and self._releases_estop(cmd):
                    self.stale_releases += 1
                elif cmd is not None:
                    self._command(cmd, t)
            while (cmd := box.get()) is not None:
                self._command(cmd, t)
        pos = act.encoder_counts() / self._counts_per_rad
        self.sampled_at = t
        raw = (pos - self.position) / self.dt
        self.velocity += self._alpha * (raw - self.velocity)
        self.position = pos
        self.current = act.sensed_current()
        self.temperature = act.sensed_temperature()
        self.voltage = act.sensed_voltage()
        self._safety(t)
        self.flags &= ~_AT_LIMIT
        if self.torque:
            act.set_voltage(self._control())
            if self.flags & _STOPS and not self.braking:  # braked to standstill: a stop removes torque
                self.torque = False
                self.i_ref = self._i_applied = 0.0
                act.coast()
        else:
            self.i_ref = self._i_applied = 0.0
            act.coast()
        moving = abs(self.velocity) > MOVING_THRESHOLD
        self.flags = (self.flags | _MOVING) if moving else (self.flags & ~_MOVING)
        self.state = self._snapshot()

    @staticmethod
    def _releases_estop(cmd: Command) -> bool:
        kind = cmd.kind
        return kind is CommandKind.RELEASE_ESTOP or (kind is CommandKind.CLEAR and bool(cmd.a & _ESTOPPED))

    def _command(self, cmd: Command, t: int) -> None:
        kind = cmd.kind
        if kind is CommandKind.SET_GOAL:
            if not self.flags & BLOCKING:
                self.mode, self.goal, self.holding = GoalMode(cmd.a), cmd.b, False
        elif kind is CommandKind.TORQUE:
            if cmd.a and not self.torque and not self.flags & BLOCKING:
                self.reload()
                self.torque = True
                self.last_heartbeat = t
                # the velocity plan starts at the measured velocity: a joint powered while it still coasts is
                # not at rest, and a plan from 0 toward a goal further along fed its acceleration forward on top
                # of the motion (seen: 1.59 rad/s with a 1.075 limit)
                self._v_int = self._i_int = 0.0
                self._v_cmd = self._v_prev = self._v_seen = self.velocity
                self.holding, self.braking, self.hold_position = True, False, self.position
                self._recovering = abs(self.velocity) > self.v_lim
            elif not cmd.a:
                self.torque = False
        elif kind is CommandKind.HEARTBEAT:
            self.last_heartbeat = t
        elif kind is CommandKind.WATCHDOG:
            self.watchdog_ns = cmd.a * 1_000_000
            self.last_heartbeat = t
        elif kind is CommandKind.CLEAR:
            self._clear(cmd.a & 0xFF, t)
        elif kind is CommandKind.RELEASE_ESTOP:
            self._clear(_ESTOPPED, t)
        elif kind is CommandKind.RELOAD:
            self.reload()

    def _clear(self, bits: int, t: int) -> None:
        if bits & _ESTOPPED and self.flags & _ESTOPPED:
            self.flags &= ~_ESTOPPED
            self._event(FaultCode.ESTOP, False, 0)
        if bits & _WATCHDOG and self.flags & _WATCHDOG:
            self.flags &= ~_WATCHDOG
            self.last_heartbeat = t
            self._event(FaultCode.WATCHDOG, False, 0)
        latched = {FaultCode.OVER_TEMPERATURE, FaultCode.UNDERVOLTAGE}
        if bits & _FAULT and not (self.active_faults & latched):
            self.flags &= ~_FAULT
        self.flags &= ~(bits & _REBOOTED)

    def _event(self, code: FaultCode, active: bool, value: int) -> None:
        if active:
            self.active_faults.add(code)
            self._active_bits |= 1 << code
        else:
            self.active_faults.discard(code)
            self._active_bits &= ~(1 << code)
        self.events.put(FaultEvent(code, active, value))  # refused: still latched in flags / fault_code

    def _trip(self, code: FaultCode, value: int) -> None:
        """A fault that switches the bridge off."""
        self.torque = False
        self.flags |= _FAULT
        self._event(code, True, value)

    def _start_stop(self) -> None:
        self.braking, self.holding = True, True
        self._slot = None

    def _safety(self, t: int) -> None:
        dt, flags, active = self.dt, self.flags, self._active_bits
        temp = self.temperature
        if temp >= self.t_lim and not flags & _OVERHEAT:
            self.flags |= _OVERHEAT
            self._trip(FaultCode.OVER_TEMPERATURE, round(temp * 10))
        elif flags & _OVERHEAT and temp < self._overtemp_clear:
            self.flags &= ~_OVERHEAT
            self._event(FaultCode.OVER_TEMPERATURE, False, round(temp * 10))
        low_v = self.voltage < self.v_min
        if low_v:
            self._t_undervoltage += dt
            if self._t_undervoltage >= UNDERVOLTAGE_TIME and not active & _BIT_UNDERVOLTAGE:
                self._trip(FaultCode.UNDERVOLTAGE, round(self.voltage * 1000))
        else:
            self._t_undervoltage = 0.0
            if active & _BIT_UNDERVOLTAGE:
                self._event(FaultCode.UNDERVOLTAGE, False, round(self.voltage * 1000))
        if abs(self.current) > self._overcurrent:
            self._t_overcurrent += dt
            if self._t_overcurrent >= OVERCURRENT_TIME and self.torque:
                self._trip(FaultCode.OVER_CURRENT, round(self.current * 1000))
        else:
            self._t_overcurrent = 0.0
        vel = self.velocity
        if (self.torque and abs(self.i_ref) >= self._stall_current and self.i_lim > 0.0
                and abs(vel) < STALL_SPEED):
            self._t_stall += dt
            if self._t_stall >= STALL_TIME:
                self._t_stall = 0.0
                self._trip(FaultCode.STALL, round(self.i_ref * 1000))
        else:
            self._t_stall = 0.0
        wd = self.watchdog_ns
        if wd and self.torque and not self.flags & _WATCHDOG and t - self.last_heartbeat >= wd:
            self.flags |= _WATCHDOG | _FAULT
            self._start_stop()
            self._event(FaultCode.WATCHDOG, True, (t - self.last_heartbeat) // 1_000_000)
        # excursions beyond the limits: reported when they start and when they end (values only then)
        pos = self.position
        beyond = max(self.p_min - pos, pos - self.p_max) > POSITION_EXCURSION
        if beyond != bool(self._active_bits & _BIT_POSITION_LIMIT):
            self._event(FaultCode.POSITION_LIMIT, beyond, round(pos * 1e6))
        too_fast = abs(vel) > self._velocity_excursion
        if too_fast != bool(self._active_bits & _BIT_VELOCITY_LIMIT):
            self._event(FaultCode.VELOCITY_LIMIT, too_fast, round(vel * 1e6))

    def _control(self) -> float:
        """One pass of the cascade; returns the terminal voltage."""
        pos, vel = self.position, self.velocity
        limited = False
        d_hi, d_lo = self.p_max - pos, pos - self.p_min
        v_hi = min(self.v_lim, self.kp_p * d_hi if self.kp_p > 0 else d_hi * 20.0,
                   math.sqrt(2.0 * self.a_brake * d_hi) if d_hi > 0 else 0.0)
        v_lo = -min(self.v_lim, self.kp_p * d_lo if self.kp_p > 0 else d_lo * 20.0,
                    math.sqrt(2.0 * self.a_brake * d_lo) if d_lo > 0 else 0.0)
        # outside the range (a limit moved past the joint) the envelope points back inside: the way back is
        # bounded by the velocity limit too, whatever the distance
        v_hi, v_lo = max(v_hi, -self.v_lim), min(v_lo, self.v_lim)
        if self.braking:
            v_ref: float | None = 0.0
            if abs(vel) < MOVING_THRESHOLD:
                self.braking, self.hold_position = False, pos
        elif self.holding:
            v_ref = self._approach(self.hold_position - pos)
        elif self.mode is GoalMode.POSITION:
            goal = self.goal * 1e-6
            if not self.p_min <= goal <= self.p_max:
                goal, limited = min(max(goal, self.p_min), self.p_max), True
            v_ref = self._approach(goal - pos)
        elif self.mode is GoalMode.VELOCITY:
            v_ref = self.goal * 1e-6
        else:
            v_ref = None
        if self._recovering and v_lo <= vel <= v_hi:
            # back inside the envelope: the plan starts again from here with an empty integrator (what it
            # integrated while the joint was being slowed down belonged to that, and pushed it past its limit)
            self._recovering = False
            self._v_cmd = self._v_prev = self._v_seen = vel
            self._v_int = 0.0
        if v_ref is not None:
            if v_ref > v_hi or v_ref < v_lo:
                v_ref, limited = min(max(v_ref, v_lo), v_hi), True
            # the reference for now is last tick's plan; the plan for the next tick is slewed toward v_ref and
            # its acceleration is fed forward (the current applied now shapes the velocity at the next tick)
            step = self.a_slew * self.dt
            now_ref = min(max(self._v_cmd, v_lo), v_hi) if v_hi >= v_lo else v_hi
            nxt = min(max(v_ref, now_ref - step, v_lo), now_ref + step, v_hi) if v_hi >= v_lo else v_hi
            self._v_cmd = nxt
            # the measured velocity is the encoder difference over the last tick (the mean of that tick's
            # reference ramp, not its end), low-pass filtered: the loop compares it with the reference passed
            # through the same two steps (else it pushes a*dt/2 plus the filter lag ahead of the plan)
            seen = self._v_seen = self._v_seen + self._alpha * (0.5 * (self._v_prev + now_ref) - self._v_seen)
            self._v_prev = now_ref
            i_ref = self._velocity_loop(seen) + (nxt - now_ref) / self.dt * self._j_over_kt
        else:
            # transfer to a velocity-based mode later: the reference starts at the present velocity and the
            # integrator empty (a value left from an earlier velocity mode belongs to another motion, and pushed
            # the joint past its plan by up to 0.1 A x 1.8 N m/A; a load estimate from the differenced
            # velocity is too noisy right after a current step)
            self._v_cmd = self._v_prev = self._v_seen = vel
            self._v_int = 0.0
            # current mode: a proportional speed limiter shrinks the allowed current to zero at the envelope
            i_goal = self.goal * 1e-3
            i_ref = min(max(i_goal, self.kp_v * (v_lo - vel)), self.kp_v * (v_hi - vel))
            limited = i_ref != i_goal
        if i_ref > self.i_lim or i_ref < -self.i_lim:
            i_ref = min(max(i_ref, -self.i_lim), self.i_lim)
            limited = limited or v_ref is None  # saturating the velocity loop is normal, not a clamp
        if limited:
            self.flags |= _AT_LIMIT
        self.i_ref = i_ref
        return self._current_loop(i_ref)

    def _approach(self, err: float) -> float:
        """Velocity toward a position ``err`` away: ``kp_p * err`` near it, but never faster than the joint can
        stop from within that distance at the braking deceleration (``sqrt(2 a_brake |err|)``). With a weak
        drive (a low current limit) the linear law alone asks ``kp_p * v`` of deceleration near the goal, far
        more than the motor gives, and the joint overshoots and swings about the goal."""
        v = self.kp_p * err
        if err > 0.0:
            return min(v, math.sqrt(2.0 * self.a_brake * err))
        if err < 0.0:
            return max(v, -math.sqrt(-2.0 * self.a_brake * err))
        return 0.0

    def _velocity_loop(self, v_ref: float) -> float:
        err = v_ref - self.velocity
        i = self.kp_v * err + self._v_int
        lim = self.i_lim
        if self._recovering:  # slowing a joint powered while too fast: integrate nothing (see _control)
            return i
        if -lim < i < lim or (i >= lim and err < 0) or (i <= -lim and err > 0):
            self._v_int = min(max(self._v_int + self.ki_v * err * self.dt, -lim), lim)  # conditional integration
        return i

    def _current_loop(self, i_ref: float) -> float:
        m = self.motor
        r = m.resistance * (1.0 + COPPER_ALPHA * (self.temperature - 20.0))
        vmax = self.voltage
        # the sampled current answers the voltage held since the last tick, i.e. the previous reference: compare it
        # with that one, so that a step of the reference is not mistaken for a tracking error (a kick + wind-up)
        err = self._i_applied - self.current
        self._i_applied = i_ref
        v = r * i_ref + m.torque_constant * m.gear_ratio * self.velocity + self.kp_i * err + self._i_int
        if -vmax < v < vmax or (v >= vmax and err < 0) or (v <= -vmax and err > 0):
            self._i_int = min(max(self._i_int + self.ki_i * err * self.dt, -vmax), vmax)
        return min(max(v, -vmax), vmax)

    def _snapshot(self) -> ControlState:
        flags = self.flags
        flags = (flags | _TORQUE_ON) if self.torque else (flags & ~_TORQUE_ON)
        self.flags = flags
        # saturate to the register types (i32, i32, i16, i16, u16): a sensor never overflows its register
        p = round(self.position * 1e6)
        p = p if -_I32 <= p <= _I32_MAX else (_I32_MAX if p > 0 else -_I32)
        v = round(self.velocity * 1e6)
        v = v if -_I32 <= v <= _I32_MAX else (_I32_MAX if v > 0 else -_I32)
        i = round(self.current * 1000)
        i = i if -32768 <= i <= 32767 else (32767 if i > 0 else -32768)
        c = round(self.temperature * 10)
        c = c if -32768 <= c <= 32767 else (32767 if c > 0 else -32768)
        u = round(self.voltage * 1000)
        u = u if 0 <= u <= 65535 else (65535 if u > 0 else 0)
        return _new_state(ControlState, (p, v, i, c, u, flags))  # tuple.__new__: no Python-level __new__
