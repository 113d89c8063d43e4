"""Safety figures on the real-time pty arm: watchdog on host silence and e-stop latency in wall-clock time.

Theory of operation
-------------------
The simulated-time figures of :mod:`armbus.tools.campaigns.safety` leave out everything between a host program and the
wire: the pyserial port, the pseudo-terminal, the real-time driver waking up late on a loaded machine. Here a 6-joint
:class:`armbus.hil.virtual_arm.VirtualArm` runs in real time behind a :class:`armbus.hil.ptyserver.PtyServer` (paced:
one simulated nanosecond per wall nanosecond, slipping only when the driver falls behind) and a
:class:`armbus.controller.arm.Arm` drives it through the pty like any host, heartbeats every :data:`HEARTBEAT_S`,
position goals at :data:`STREAM_HZ`.

The joints are observed in process, from the driver thread that runs them (observers are installed before the
driver starts; the main thread reads their records only after the events it waits for): every control tick
records the first tick at which the joint publishes WATCHDOG and the first at standstill; ``ControlCore.estop``
records the instant each joint shorts its bridge; heartbeat deliveries are recorded as in
:mod:`armbus.tools.campaigns.safety`. Each record holds the simulated instant and ``time.monotonic_ns()`` when the
driver executed it, the clock :class:`armbus.controller.arm.Arm` itself uses, so host-side and joint-side instants
compare directly.

(a) :func:`watchdog_trials_rt`: the host connects, powers the joints with watchdog :data:`WATCHDOG_MS`, streams
    goals for a random 200-400 ms, then closes its port (heartbeats stop, nothing more is written: a host that
    went away). Latency from the joint's last heartbeat (simulated time, bound watchdog + one control period),
    and from the close call to the last joint flagged and at standstill (wall time). The next trial reconnects,
    clears WATCHDOG and powers the joints again.
(b) :func:`estop_trials_rt`: while the stream runs, ``arm.estop()``; wall time from the call to the last joint
    shorting its bridge, and to standstill; then clear ESTOPPED and power again.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from armbus.bus.codec import Packet
from armbus.bus.wire import NS_PER_MS, MsgType, StatusFlag
from armbus.controller.arm import Arm
from armbus.hil.ptyserver import PtyServer
from armbus.hil.realtime import realtime_link_config
from armbus.hil.simdrive import observe_deliveries
from armbus.hil.virtual_arm import VirtualArm
from armbus.joints.control import DEFAULT_PERIOD_NS, MOVING_THRESHOLD, ControlCore

WATCHDOG_MS = 100
JOINTS = 6
#: Heartbeat and goal stream of the host: 20 ms beats as in the simulated figures, goals at 200 Hz (the
#: default streaming rate, armbus.controller.arm.DEFAULT_STREAM_RATE_HZ).
HEARTBEAT_S, STREAM_HZ = 0.02, 200.0
#: How long a trial waits for every joint to flag / stop before it counts as failed (wall seconds).
WAIT_S = 2.0
_WATCHDOG, _ESTOPPED, _FAULT = int(StatusFlag.WATCHDOG), int(StatusFlag.ESTOPPED), int(StatusFlag.FAULT)
Stamp = tuple[int, int]  # (simulated ns, monotonic ns)


class _Records:
    """Per-joint first instants, written by the driver thread, reset between trials through ``driver.call``."""

    def __init__(self) -> None:
        self.last_hb: list[int] = [0] * JOINTS
        self.reset()

    def reset(self) -> None:
        self.flagged: list[Stamp | None] = [None] * JOINTS
        self.estopped: list[Stamp | None] = [None] * JOINTS
        self.still: list[Stamp | None] = [None] * JOINTS
        self.watch_still = False  # record standstill only after the stop under test began


class RealtimeRig:
    """The pty-served arm with its observers. Use as a context manager."""

    def __init__(self, seed: int) -> None:
        self.varm = VirtualArm(JOINTS, seed=seed, link_config=realtime_link_config(1_000_000))
        self.rec = _Records()
        self.rng = random.Random(seed)
        for i, joint in enumerate(self.varm.joints):
            self._observe(i, joint.control)

            def seen(port: int, packet: Packet, now: int, i: int = i) -> None:
                if packet.type == MsgType.HEARTBEAT:
                    self.rec.last_hb[i] = now
            observe_deliveries(joint, seen)
        self.server = PtyServer(self.varm)

    def _observe(self, i: int, core: ControlCore) -> None:
        rec, estop = self.rec, core.estop

        def ticked(t: int) -> None:
            if rec.flagged[i] is None and core.state.status & _WATCHDOG:
                rec.flagged[i] = (t, time.monotonic_ns())
                rec.watch_still = True
            if rec.watch_still and rec.still[i] is None and abs(core.velocity) < MOVING_THRESHOLD:
                rec.still[i] = (t, time.monotonic_ns())

        def estopped(now: int) -> None:
            estop(now)
            if rec.estopped[i] is None:
                rec.estopped[i] = (now, time.monotonic_ns())
                rec.watch_still = True

        core.tick_hooks.append(ticked)  # observe every tick of this core
        setattr(core, "estop", estopped)  # noqa: B010 - the node calls core.estop: observe it

    def __enter__(self) -> RealtimeRig:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()

    def call(self, fn: Callable[[VirtualArm], object]) -> object:
        return self.server.driver.call(fn)

    def reset(self) -> None:
        self.call(lambda arm: self.rec.reset())

    def connect(self, watchdog_ms: int, clear: int) -> Arm:
        """Open the port, enumerate, clear ``clear`` flags and power every joint."""
        arm = Arm.open(self.server.port, timeout=0.3, heartbeat_period=HEARTBEAT_S)
        arm.enumerate()
        self.power(arm, watchdog_ms, clear)
        return arm

    def power(self, arm: Arm, watchdog_ms: int, clear: int) -> None:
        """Set the watchdog, clear ``clear`` flags (and release an e-stop) and power every joint."""
        for name in sorted(arm.joints):
            arm.write(name, "watchdog_period", watchdog_ms)
            arm.write(name, "clear_flags", clear)
            if clear & _ESTOPPED:
                arm.write(name, "estop", 0)
        time.sleep(3 * DEFAULT_PERIOD_NS / 1e9)  # the clear reaches each control core at its next tick
        arm.torque(True)

    def stream(self, arm: Arm, seconds: float) -> None:
        """Sinusoidal position goals at STREAM_HZ on absolute deadlines for ``seconds``."""
        names = sorted(arm.joints)
        t0 = time.monotonic()
        k = 0
        while (t := time.monotonic() - t0) < seconds:
            arm.set_goals({n: 0.5 * math.sin(math.pi * t + a) for a, n in enumerate(names)})
            k += 1
            time.sleep(max(0.0, t0 + k / STREAM_HZ - time.monotonic()))

    def wait(self, records: Callable[[], list[Stamp | None]]) -> bool:
        end = time.monotonic() + WAIT_S
        while time.monotonic() < end:
            if all(r is not None for r in records()):
                return True
            time.sleep(0.002)
        return all(r is not None for r in records())

    def safe(self, flag: int) -> bool:
        def check(arm: VirtualArm) -> bool:
            return all(j.control.flags & flag and not j.control.torque for j in arm.joints)
        return bool(self.call(check))


def _last(stamps: list[Stamp | None], which: int) -> int:
    return max(s[which] for s in stamps if s is not None)


@dataclass
class RealtimeWatchdog:
    from_heartbeat_ms: list[float] = field(default_factory=list)  # per joint per trial, simulated time
    from_silence_ms: list[float] = field(default_factory=list)  # close call -> last joint flagged, wall time
    to_standstill_ms: list[float] = field(default_factory=list)  # close call -> last joint still, wall time
    safe_states_ok: bool = True
    slipped_ms: float = 0.0  # simulated time the driver gave up to keep pace (an overloaded machine)
    bound_ms: float = WATCHDOG_MS + DEFAULT_PERIOD_NS / NS_PER_MS


def watchdog_trials_rt(trials: int, seed: int = 1) -> RealtimeWatchdog:
    res = RealtimeWatchdog()
    with RealtimeRig(seed) as rig:
        for _ in range(trials):
            arm = rig.connect(WATCHDOG_MS, _WATCHDOG | _FAULT)
            rig.stream(arm, rig.rng.uniform(0.2, 0.4))
            rig.reset()
            t_silence = time.monotonic_ns()
            arm.close()  # heartbeats stop and the port closes: nothing more leaves the host
            ok = rig.wait(lambda: rig.rec.flagged) and rig.wait(lambda: rig.rec.still)
            rec = rig.rec
            res.safe_states_ok &= ok and rig.safe(_WATCHDOG)
            for i, s in enumerate(rec.flagged):
                if s is not None:
                    res.from_heartbeat_ms.append((s[0] - rec.last_hb[i]) / NS_PER_MS)
            if any(s is not None for s in rec.flagged):
                res.from_silence_ms.append((_last(rec.flagged, 1) - t_silence) / NS_PER_MS)
            if any(s is not None for s in rec.still):
                res.to_standstill_ms.append((_last(rec.still, 1) - t_silence) / NS_PER_MS)
        res.slipped_ms = rig.server.driver.stats.slipped_ns / NS_PER_MS
    return res


@dataclass
class RealtimeEstop:
    latency_ms: list[float] = field(default_factory=list)  # arm.estop() call -> last joint's bridge shorted
    returned_ms: list[float] = field(default_factory=list)  # arm.estop() call -> return (first joint's ack)
    standstill_ms: list[float] = field(default_factory=list)  # call -> last joint at standstill
    all_stopped: bool = True
    slipped_ms: float = 0.0


def estop_trials_rt(trials: int, seed: int = 1) -> RealtimeEstop:
    res = RealtimeEstop()
    with RealtimeRig(seed) as rig:
        # one connection for every trial: a reconnected host numbers its messages afresh, and a joint refuses a
        # release whose msg_id looks older than the last ESTOP it took (joints/node.py, overtaken_by_estop)
        arm = rig.connect(0, 0)
        try:
            for _ in range(trials):
                rig.stream(arm, rig.rng.uniform(0.1, 0.3))
                rig.reset()
                t0 = time.monotonic_ns()
                arm.estop()
                res.returned_ms.append((time.monotonic_ns() - t0) / NS_PER_MS)
                ok = rig.wait(lambda: rig.rec.estopped) and rig.wait(lambda: rig.rec.still)
                rec = rig.rec
                res.all_stopped &= ok and rig.safe(_ESTOPPED)
                if any(s is not None for s in rec.estopped):
                    res.latency_ms.append((_last(rec.estopped, 1) - t0) / NS_PER_MS)
                if any(s is not None for s in rec.still):
                    res.standstill_ms.append((_last(rec.still, 1) - t0) / NS_PER_MS)
                rig.power(arm, 0, _ESTOPPED)
        finally:
            arm.close()
        res.slipped_ms = rig.server.driver.stats.slipped_ns / NS_PER_MS
    return res
