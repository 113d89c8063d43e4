"""Safety figures in simulated time: watchdog on host silence, e-stop latency, limits under random commands.

Theory of operation
-------------------
Each measurement drives a 6-joint :class:`armbus.hil.simdrive.SimDrive` whose joints are enumerated, powered and
following a 1 kHz stream of sync-written goals, with heartbeats every :data:`HEARTBEAT_NS`.

(a) :func:`watchdog_trials`: the joints' watchdog is :data:`WATCHDOG_MS`; at a random instant the host node is
    frozen (a dead process: not a byte leaves it). The kernel is run event by event and the instant each joint's
    published status first carries WATCHDOG is recorded (the safe stop starts at that tick: braking, then
    torque off), and the instant it is at standstill. The latency is measured from the last heartbeat the joint
    received (the watchdog's reference; bound: watchdog period + one control period) and from the moment the
    host died. Then the host thaws, clears the flags and powers the joints again for the next trial.
(b) :func:`estop_trials`: at random instants the host sends ESTOP (broadcast); an observer on each joint records
    the instant the packet is taken for that joint (its handler shorts the bridge at that same instant). The
    latency to the last joint is compared with the wire-time floor: per hop, the ESTOP frame's wire time plus
    the wire turnaround. Measured on clean links and with 5 % of frames dropped on every link direction.
(c) :func:`random_command_trial`: random SET_GOAL (any mode byte, any value), register writes (any writable
    register, any value, sometimes the wrong size) and torque toggles, a few per millisecond, to random joints
    and broadcast; after every control tick of every joint, while torque is on, the state is checked against its
    limit registers, with the joint's own fault thresholds as tolerance (:func:`excursions`).

``python -m armbus.tools.campaigns.safety`` prints every figure (``--quick``: fewer trials); ``--realtime`` measures (a)
and (b) on the real-time pty arm instead (:mod:`armbus.tools.campaigns.safety_realtime`); tests/reliability asserts
short runs.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from armbus.bus.codec import Packet, encode_data
from armbus.bus.errors import ExitCode, PeerError
from armbus.bus.messages import EStop, Message, SetGoal, Torque, Write, make_packet
from armbus.bus.wire import DEFAULT_BAUD, NS_PER_MS, Address, MsgType, StatusFlag, wire_time_ns
from armbus.controller import ops
from armbus.hil.faults import LinkFaults
from armbus.hil.simdrive import SimDrive, observe_deliveries
from armbus.hil.virtual_arm import DEFAULT_WIRE_TURNAROUND_NS
from armbus.joints.control import (
    DEFAULT_PERIOD_NS,
    MOVING_THRESHOLD,
    OVERCURRENT_FACTOR,
    OVERCURRENT_MARGIN,
    OVERCURRENT_TIME,
    POSITION_EXCURSION,
    VELOCITY_EXCURSION,
    ControlCore,
)
from armbus.joints.registers import REGISTERS, Access

WATCHDOG_MS = 100
HEARTBEAT_NS = 20 * NS_PER_MS
JOINTS = 6
_WATCHDOG, _ESTOPPED, _TORQUE = int(StatusFlag.WATCHDOG), int(StatusFlag.ESTOPPED), int(StatusFlag.TORQUE_ON)
_WRITABLE = [r for r in REGISTERS if r.access is Access.RW]
#: Loop gains: their register ranges are the box in which the cascade is stable for every combination (found by
#: ``python -m armbus.tools.campaigns.gainsweep``, see docs/reliability.md); (c) is measured with and without random
#: gain writes.
GAINS = frozenset({"pos_kp", "vel_kp", "vel_ki", "cur_kp", "cur_ki"})
_POWER_UP = [Write(ops.register("clear_flags").address, b"\xff"), Torque(1)]


class Rig:
    """A powered 6-joint arm following a 1 kHz goal stream (paused while ``streaming`` is False)."""

    def __init__(self, seed: int, faults: LinkFaults | None = None, watchdog_ms: int = 0) -> None:
        self.sim = SimDrive(JOINTS, seed=seed, faults=faults)
        self.rng = random.Random(seed)
        self.streaming = False
        self.sim.enumerate()
        for a in range(1, JOINTS + 1):
            self.sim.write(a, "watchdog_period", watchdog_ms)
            self.sim.write(a, "torque_enable", 1)
        self.sim.host.set_heartbeat(HEARTBEAT_NS, self.sim.now)
        self.sim.kernel.wake("host")
        self.streaming = True
        self._tick(self.sim.now)

    @property
    def joints(self) -> list[ControlCore]:
        return [j.control for j in self.sim.arm.joints]

    def _tick(self, now: int) -> None:
        sim = self.sim
        if self.streaming and not sim.kernel.frozen("host"):
            goals = {a: 0.5 * math.sin(2 * math.pi * 0.5 * now / 1e9 + a) for a in range(1, JOINTS + 1)}
            sim.call(lambda h, t: h.send(ops.sync_write_goals(goals), Address.BROADCAST, t))
            sim.pump_events()
        sim.kernel.call_at(now + NS_PER_MS, self._tick)

    def recover(self, clear: int) -> None:
        """Clear latched flags, power every joint again and resume the stream. The clear reaches the control
        core at its next tick; a torque enable before that is refused BUSY, so the torque writes follow a tick
        later (and are retried once)."""
        for a in range(1, JOINTS + 1):
            self.sim.write(a, "clear_flags", clear)
            if clear & _ESTOPPED:
                self.sim.write(a, "estop", 0)
        self.sim.kernel.run_for(2 * DEFAULT_PERIOD_NS)
        for a in range(1, JOINTS + 1):
            try:
                self.sim.write(a, "torque_enable", 1)
            except PeerError:
                self.sim.kernel.run_for(2 * DEFAULT_PERIOD_NS)
                self.sim.write(a, "torque_enable", 1)
        self.streaming = True

    def run_until(self, predicate: Callable[[], bool], timeout_ns: int) -> bool:
        return self.sim.kernel.run_until_true(predicate, timeout_ns)


def _first_times(cores: Callable[[], list[ControlCore]], test: Callable[[ControlCore], bool],
                 out: list[int | None], now: Callable[[], int]) -> Callable[[], bool]:
    """Predicate for run_until_true: records the first instant ``test`` holds for each joint."""

    def check() -> bool:
        for i, core in enumerate(cores()):
            if out[i] is None and test(core):
                out[i] = now()
        return all(t is not None for t in out)

    return check


def _stopped(core: ControlCore) -> bool:
    return abs(core.velocity) < MOVING_THRESHOLD


@dataclass
class WatchdogResult:
    from_heartbeat_ms: list[float] = field(default_factory=list)  # per joint per trial
    from_silence_ms: list[float] = field(default_factory=list)  # last joint per trial
    to_standstill_ms: list[float] = field(default_factory=list)  # last joint per trial, from silence
    safe_states_ok: bool = True
    bound_ms: float = WATCHDOG_MS + DEFAULT_PERIOD_NS / NS_PER_MS


def watchdog_trials(trials: int, seed: int = 1) -> WatchdogResult:
    rig = Rig(seed, watchdog_ms=WATCHDOG_MS)
    last_hb = [0] * JOINTS
    for i, joint in enumerate(rig.sim.arm.joints):
        def seen(port: int, packet: Packet, now: int, i: int = i) -> None:
            if packet.type == MsgType.HEARTBEAT:
                last_hb[i] = now
        observe_deliveries(joint, seen)
    res = WatchdogResult()
    k = rig.sim.kernel
    for _ in range(trials):
        k.run_for(rig.rng.randrange(200 * NS_PER_MS, 400 * NS_PER_MS))  # moving, at a random phase of beats and ticks
        t_kill = k.now
        k.freeze("host", t_kill + 10 * WATCHDOG_MS * NS_PER_MS)
        flagged: list[int | None] = [None] * JOINTS
        tripped = _first_times(lambda: rig.joints, lambda c: bool(c.state.status & _WATCHDOG), flagged, lambda: k.now)
        assert rig.run_until(tripped, 5 * WATCHDOG_MS * NS_PER_MS), "watchdog never tripped"
        still: list[int | None] = [None] * JOINTS
        rig.run_until(_first_times(lambda: rig.joints, _stopped, still, lambda: k.now), 2000 * NS_PER_MS)
        for i, t in enumerate(flagged):
            assert t is not None
            res.from_heartbeat_ms.append((t - last_hb[i]) / NS_PER_MS)
        res.from_silence_ms.append((max(t for t in flagged if t is not None) - t_kill) / NS_PER_MS)
        res.to_standstill_ms.append((max(t or k.now for t in still) - t_kill) / NS_PER_MS)
        res.safe_states_ok &= all(c.flags & _WATCHDOG and not c.torque for c in rig.joints)
        rig.streaming = False
        k.run_until(t_kill + 10 * WATCHDOG_MS * NS_PER_MS + NS_PER_MS)  # the host thaws
        rig.sim.pump_events()
        rig.recover(_WATCHDOG | int(StatusFlag.FAULT))
    return res


@dataclass
class EstopResult:
    label: str
    latency_us: list[float] = field(default_factory=list)  # host call -> last joint stopping (bridge shorted)
    standstill_ms: list[float] = field(default_factory=list)
    all_stopped: bool = True
    floor_us: float = 0.0


def estop_floor_ns(hops: int = JOINTS, baud: int = DEFAULT_BAUD) -> int:
    """Wire-time floor of an ESTOP from the host to the last joint: per hop, its frame plus the turnaround."""
    wire = encode_data(0, 0, make_packet(EStop(0), Address.HOST, Address.BROADCAST, 1))
    per_hop = wire_time_ns(len(wire), baud) + DEFAULT_WIRE_TURNAROUND_NS
    return hops * per_hop


def estop_trials(trials: int, faults: LinkFaults | None, label: str, seed: int = 1) -> EstopResult:
    rig = Rig(seed, faults=faults)
    got: list[int | None] = [None] * JOINTS
    for i, joint in enumerate(rig.sim.arm.joints):
        def seen(port: int, packet: Packet, now: int, i: int = i) -> None:
            if packet.type == MsgType.ESTOP and got[i] is None:
                got[i] = now
        observe_deliveries(joint, seen)
    res = EstopResult(label, floor_us=estop_floor_ns() / 1000)
    k = rig.sim.kernel
    for _ in range(trials):
        k.run_for(rig.rng.randrange(50 * NS_PER_MS, 150 * NS_PER_MS))
        got[:] = [None] * JOINTS
        t0 = k.now
        rig.streaming = False
        rig.sim.call(lambda h, t: h.send(EStop(1), Address.BROADCAST, t))
        done = rig.run_until(lambda: all(t is not None for t in got), 2000 * NS_PER_MS)
        res.all_stopped &= done and all(c.flags & _ESTOPPED for c in rig.joints)
        res.latency_us.append((max(t or k.now for t in got) - t0) / 1000)
        still: list[int | None] = [None] * JOINTS
        rig.run_until(_first_times(lambda: rig.joints, _stopped, still, lambda: k.now), 2000 * NS_PER_MS)
        res.standstill_ms.append((max(t or k.now for t in still) - t0) / NS_PER_MS)
        rig.sim.pump_events()
        rig.recover(_ESTOPPED)
    return res


@dataclass
class LimitResult:
    commands: int = 0
    ticks_checked: int = 0
    excursions: Counter[str] = field(default_factory=Counter)
    first: list[str] = field(default_factory=list)
    worst: dict[str, float] = field(default_factory=lambda: {"position": 0.0, "velocity": 0.0, "current": 0.0})
    kinds: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)


def excursions(core: ControlCore, res: LimitResult, over_i: list[float], i: int, t: int,
               outside: list[bool], fast: list[bool]) -> None:
    """Check one joint after one tick against its limit registers (see the module docstring).

    A joint powered while outside its position range or faster than its velocity limit (limits changed while
    torque was off and the joint coasted) is not checked on that quantity until it is back inside: the core
    cannot undo the past, only bring it back, which the check then holds it to.
    """
    if not core.torque:
        outside[i] = fast[i] = False
        over_i[i] = 0.0
        return
    g = core.regs.get
    p_min, p_max = g("position_min") * 1e-6, g("position_max") * 1e-6
    v_lim, i_lim, t_lim = g("velocity_limit") * 1e-6, g("current_limit") * 1e-3, g("temperature_limit") * 0.1
    res.ticks_checked += 1
    beyond = max(p_min - core.position, core.position - p_max)
    if outside[i] and beyond <= 0:
        outside[i] = False  # powered while outside (limits narrowed with torque off): back inside now
    v_bound = 1.2 * v_lim + VELOCITY_EXCURSION
    if fast[i] and abs(core.velocity) <= v_lim:
        fast[i] = False
    found = []
    if beyond > POSITION_EXCURSION and not outside[i]:
        found.append(f"position {core.position:.4f} rad outside [{p_min:.4f}, {p_max:.4f}]")
    if abs(core.velocity) > v_bound and not fast[i]:
        found.append(f"velocity {core.velocity:.3f} rad/s, limit {v_lim:.3f}")
    over_i[i] = over_i[i] + core.dt if abs(core.current) > OVERCURRENT_FACTOR * i_lim + OVERCURRENT_MARGIN else 0.0
    if over_i[i] > OVERCURRENT_TIME:
        found.append(f"current {core.current:.3f} A for {over_i[i] * 1e3:.0f} ms, limit {i_lim:.3f}")
    if core.temperature > t_lim:
        found.append(f"temperature {core.temperature:.1f} C, limit {t_lim:.1f}")
    if not outside[i]:
        res.worst["position"] = max(res.worst["position"], beyond)
    if v_lim > 0 and not fast[i]:
        res.worst["velocity"] = max(res.worst["velocity"], abs(core.velocity) / v_lim)
    if i_lim > 0:
        res.worst["current"] = max(res.worst["current"], abs(core.current) / i_lim)
    for f in found:
        res.excursions[f.split()[0]] += 1
        if len(res.first) < 10:
            res.first.append(f"joint {i + 1} at {t / NS_PER_MS:.0f} ms: {f}")


def random_command(rng: random.Random, gains: bool = True, exclude: frozenset[str] = frozenset()
                   ) -> tuple[str, Message]:
    """A random goal, register write or torque toggle (a few clear every latched flag and power the joint)."""
    r = rng.random()
    if r < 0.05:
        return "power", rng.choice(_POWER_UP)
    if r < 0.45:
        mode = rng.choice((1, 2, 3, 1, 2, 3, 0, 4, rng.randrange(256)))
        value = rng.choice((rng.randrange(-2**31, 2**31), rng.randrange(-3_000_000, 3_000_000),
                            rng.randrange(-30_000_000, 30_000_000), rng.randrange(-3000, 3000), 2**31 - 1, -2**31))
        return "goal", SetGoal(mode, value)
    if r < 0.85:
        reg = rng.choice([r for r in _WRITABLE if (gains or r.name not in GAINS) and r.name not in exclude])
        lo, hi = reg.minimum, reg.maximum
        value = rng.choice((rng.randint(lo, hi), lo, hi, rng.randint(lo, hi) // 10))
        data = value.to_bytes(reg.size, "little", signed=reg.signed)
        if rng.random() < 0.05:
            data = rng.randbytes(rng.randrange(0, 6))
        return f"write {reg.name}", Write(reg.address, data)
    return "torque", Torque(rng.choice((0, 1, 1, rng.randrange(256))))


def random_command_trial(commands: int, seed: int = 1, per_ms: int = 2, gains: bool = True,
                         exclude: frozenset[str] = frozenset()) -> LimitResult:
    """(c): ``commands`` random commands; ``gains`` False leaves the loop gains alone, ``exclude`` names
    registers never written."""
    rig = Rig(seed)
    rig.streaming = False  # only random commands from here on
    res = LimitResult()
    over_i, outside, fast = [0.0] * JOINTS, [False] * JOINTS, [False] * JOINTS
    # torque changes only inside a tick (commands, trips): its value after the previous tick is the one before this
    was_on = [joint.control.torque for joint in rig.sim.arm.joints]
    for i, joint in enumerate(rig.sim.arm.joints):
        core = joint.control

        def checked(t: int, core: ControlCore = core, i: int = i) -> None:
            if core.torque and not was_on[i]:  # powered: starting outside its (new) limits?
                outside[i] = core.position < core.p_min or core.position > core.p_max
                fast[i] = abs(core.velocity) > core.v_lim
            was_on[i] = core.torque
            excursions(core, res, over_i, i, t, outside, fast)

        core.tick_hooks.append(checked)  # observe every tick of this core
    rng, sim, k = rig.rng, rig.sim, rig.sim.kernel
    while res.commands < commands:
        for _ in range(per_ms):
            kind, msg = random_command(rng, gains, exclude)
            dst = rng.choice((*range(1, JOINTS + 1), int(Address.BROADCAST)))
            sim.call(lambda h, t, m=msg, d=dst: h.send(m, d, t))  # type: ignore[misc]
            res.kinds[kind.split()[0]] += 1
            res.commands += 1
        k.run_for(NS_PER_MS)
        while (ev := sim.host.next_event()) is not None:
            res.outcomes[type(ev).__name__] += 1
    k.run_for(500 * NS_PER_MS)
    return res


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _summary(values: list[float], unit: str) -> str:
    return (f"median {statistics.median(values):.3f} {unit}, p95 {_pct(values, 0.95):.3f}, "
            f"max {max(values):.3f} (n={len(values)})")


#: E-stop bounds, in multiples of the wire floor (per hop the ESTOP frame and the wire turnaround): on clean links
#: at worst a goal frame and its ack ahead of it on each hop (4x); under 5 % frame loss a few retransmit timeouts,
#: never the backlog of queued goals (20x, 19.2 ms on 6 hops; measured max 15.6 ms over 60 trials).
ESTOP_BOUND_FLOORS = {"clean links": 4.0, "5 % frame loss": 20.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m armbus.tools.campaigns.safety", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials and 10,000 random commands")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trials", type=int, default=None,
                    help="watchdog trials (e-stops: twice as many per condition; default 30, --quick 5)")
    ap.add_argument("--commands", type=int, default=None, help="random commands for (c) (default 100,000)")
    ap.add_argument("--realtime", action="store_true",
                    help="(a) and (b) in wall-clock time on the pty-served arm, through armbus.controller.arm.Arm")
    args = ap.parse_args(argv)
    if args.realtime:
        return realtime_main(args.trials or (3 if args.quick else 10), args.seed)
    trials = args.trials or (5 if args.quick else 30)
    commands = args.commands or (10_000 if args.quick else 100_000)
    broken: list[str] = []
    t0 = time.perf_counter()
    wd = watchdog_trials(trials, args.seed)
    within = sum(v <= wd.bound_ms for v in wd.from_heartbeat_ms)
    print(f"(a) host silence -> WATCHDOG safe stop, watchdog {WATCHDOG_MS} ms, "
          f"heartbeat {HEARTBEAT_NS // NS_PER_MS} ms, {trials} trials x {JOINTS} joints")
    print(f"    from the joint's last heartbeat: {_summary(wd.from_heartbeat_ms, 'ms')}; "
          f"within {wd.bound_ms:.0f} ms (watchdog + 1 control period): {within}/{len(wd.from_heartbeat_ms)}")
    print(f"    from host death to the last joint flagged: {_summary(wd.from_silence_ms, 'ms')}")
    print(f"    from host death to the last joint at standstill: {_summary(wd.to_standstill_ms, 'ms')}")
    print(f"    every joint WATCHDOG and torque off: {wd.safe_states_ok}")
    if len(wd.from_heartbeat_ms) != trials * JOINTS or within != len(wd.from_heartbeat_ms):
        broken.append(f"(a) watchdog latency: {within} of {trials * JOINTS} joint trips within "
                      f"{wd.bound_ms:.0f} ms of the last heartbeat")
    if not wd.safe_states_ok:
        broken.append("(a) watchdog safe state: a joint was not flagged WATCHDOG with torque off")
    for faults, label in ((None, "clean links"), (LinkFaults(drop_frame=0.05), "5 % frame loss")):
        es = estop_trials(trials * 2, faults, label, args.seed)
        ratio = statistics.median(es.latency_us) / es.floor_us
        bound_us = ESTOP_BOUND_FLOORS[label] * es.floor_us
        print(f"(b) e-stop, {label}: host call -> last joint stopping: {_summary(es.latency_us, 'us')}; "
              f"wire floor {es.floor_us:.0f} us ({JOINTS} hops), median/floor {ratio:.2f}; bound {bound_us:.0f} us")
        print(f"    to standstill: {_summary(es.standstill_ms, 'ms')}; every joint e-stopped: {es.all_stopped}")
        if not es.all_stopped:
            broken.append(f"(b) e-stop, {label}: a joint did not take the e-stop")
        if max(es.latency_us, default=math.inf) > bound_us:
            broken.append(f"(b) e-stop latency, {label}: max {max(es.latency_us, default=math.inf):.0f} us over "
                          f"the bound of {bound_us:.0f} us ({ESTOP_BOUND_FLOORS[label]:g} x the wire floor)")
    ranges = frozenset({"position_min", "position_max"})
    none: frozenset[str] = frozenset()
    variants = ((False, ranges, "position range and gains left alone"), (False, none, "gains left alone"),
                (True, none, "any register, loop gains too"))
    for gains, exclude, which in variants:
        lim = random_command_trial(commands, args.seed, gains=gains, exclude=exclude)
        print(f"(c) {lim.commands:,} random commands, {which} ({dict(lim.kinds)}), {lim.ticks_checked:,} powered "
              f"joint-ticks checked: excursions {sum(lim.excursions.values())} {dict(lim.excursions)}")
        print(f"    worst: {lim.worst['position'] * 1e3:+.2f} mrad beyond a position limit, velocity "
              f"{lim.worst['velocity']:.2f} x limit, current {lim.worst['current']:.2f} x limit; "
              f"host events {dict(lim.outcomes)}")
        for line in lim.first[:5]:
            print(f"    {line}")
        if lim.excursions:
            broken.append(f"(c) limits, {which}: {sum(lim.excursions.values())} excursions "
                          f"{dict(lim.excursions)}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    for line in broken:
        print(f"FAILED claim: {line}")
    if not broken:
        print("verdict: every watchdog, e-stop and limit bound met")
    return ExitCode.FAILED if broken else ExitCode.OK


def realtime_main(trials: int, seed: int) -> int:
    """``--realtime``: the watchdog and e-stop figures on the real-time pty arm (a few seconds per 10 trials)."""
    from armbus.tools.campaigns.safety_realtime import estop_trials_rt, watchdog_trials_rt

    t0 = time.perf_counter()
    wd = watchdog_trials_rt(trials, seed)
    within = sum(v <= wd.bound_ms for v in wd.from_heartbeat_ms)
    print(f"(a) real time, pty arm: host port closed -> WATCHDOG safe stop, watchdog {WATCHDOG_MS} ms, heartbeat "
          f"{HEARTBEAT_NS // NS_PER_MS} ms, {trials} trials x {JOINTS} joints")
    print(f"    from the joint's last heartbeat: {_summary(wd.from_heartbeat_ms, 'ms')}; "
          f"within {wd.bound_ms:.0f} ms (watchdog + 1 control period): {within}/{len(wd.from_heartbeat_ms)}")
    print(f"    from the host's close to the last joint flagged: {_summary(wd.from_silence_ms, 'ms')}")
    print(f"    from the host's close to the last joint at standstill: {_summary(wd.to_standstill_ms, 'ms')}")
    print(f"    every joint WATCHDOG and torque off: {wd.safe_states_ok}; driver slipped "
          f"{wd.slipped_ms:.1f} ms")
    es = estop_trials_rt(trials, seed)
    print(f"(b) real time, pty arm, clean link: arm.estop() -> last joint stopping: {_summary(es.latency_ms, 'ms')}")
    print(f"    arm.estop() returned (first joint's ack): {_summary(es.returned_ms, 'ms')}")
    print(f"    to standstill: {_summary(es.standstill_ms, 'ms')}; every joint e-stopped: {es.all_stopped}; "
          f"driver slipped {es.slipped_ms:.1f} ms")
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    ok = wd.safe_states_ok and es.all_stopped and len(wd.from_heartbeat_ms) == trials * JOINTS
    return ExitCode.OK if ok and len(es.latency_ms) == trials else ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
