"""The pipelined cyclic runner: one exchange per cycle at its deadline, the newest states with their ages.

Theory of operation
-------------------
A control loop at hundreds of Hz cannot wait for each reply: an exchange through six joints takes longer than a
cycle (6.3 ms at 1 Mbaud, 2.1 ms at 3 Mbaud). So cycle n+1 goes out at its deadline whether reply n has come or
not; up to ``max_in_flight`` exchanges are on the chain at once and replies are matched by msg_id
(:class:`~armbus.controller.cycles.CycleTracker`, inside the host node). The user's callback runs at every
deadline with a :class:`CycleView`: for each joint the newest state any reply has brought, with the instant it was
sampled on the host's clock (so its age), and returns the goals to send. It never waits on the wire.

:class:`CycleCore` is the part every driver shares (no clock, no thread): it turns :class:`CycleReplied` events into
the newest :class:`CycleState` per joint, counts misses and late replies, records ages and latencies, and builds
the CYCLE for the goals the callback returned (calibrated, clamped, in wire units). Drivers:

* :class:`CyclicLoop` (sync, :meth:`armbus.controller.arm.Arm.cyclic`): runs in the caller's thread on a
  :class:`~armbus.controller.scheduler.RateKeeper` (absolute deadlines, missed ones skipped and counted) and
  waits with the runner's ``sleep_until``: in simulated time the kernel runs to the deadline; on a port the
  thread sleeps until shortly before it and spins the rest (:data:`armbus.controller.runner.SPIN_NS`), because a
  plain sleep on a loaded Linux machine wakes 50-500 us late, half a cycle at 1 kHz.
* the asyncio driver (:meth:`armbus.controller.aio.AsyncArm.cyclic`): asyncio's timers are no finer than the
  selector's millisecond timeout, so a timing thread does the precise wait and hands each deadline to the event
  loop (``call_soon_threadsafe``, which wakes the selector at once); the callback runs on the loop.

Replies arrive in the driver's reader (thread or protocol callback) and only update the core's table; the
callback reads it. Figures of a run: :class:`CyclicReport`.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from armbus.bus.cycle import GOAL_NONE, Cycle
from armbus.bus.errors import UsageError
from armbus.bus.wire import NS_PER_MS, NS_PER_S, GoalMode, StatusFlag
from armbus.controller import units
from armbus.controller.armmodel import ArmModel, JointGoals
from armbus.controller.events import CycleMissed, CycleReplied, HostEvent
from armbus.controller.scheduler import RateKeeper
from armbus.joints.registers import BY_NAME, STATE_BLOCK

if TYPE_CHECKING:
    from armbus.controller.arm import Arm
    from armbus.controller.host import HostNode

#: What each joint reads back every cycle. "motion": position i32, velocity i32, current i16 (10 bytes: the
#: smallest record a position loop needs; status comes in every record anyway). "state": the whole state block.
READ_SPANS: dict[str, tuple[int, int]] = {"motion": (BY_NAME["present_position"].address, 10), "state": STATE_BLOCK}
_MOTION = struct.Struct("<iih")
#: Largest bound on cycles in flight a caller may ask for: what a joint remembers goal outcomes for.
MAX_IN_FLIGHT = 16
#: Ages and latencies kept for the report's percentiles (a minute at 1 kHz).
_WINDOW = 60_000
Goals = JointGoals | None


@dataclass(frozen=True)
class CycleState:
    """A joint's newest state from the cyclic exchange (calibrated position, SI units)."""

    name: str
    address: int
    status: StatusFlag
    position: float  # rad
    velocity: float  # rad/s
    current: float  # A
    sampled_at: int  # ns, host clock
    goal_result: int  # of the cycle that brought it: 0 taken, an ErrorKind, or 0xF no goal

    def age(self, now: int) -> float:
        """Seconds since the joint sampled this state."""
        return (now - self.sampled_at) / NS_PER_S


@dataclass(frozen=True)
class CycleView:
    """What the callback sees at a deadline: the cycle's index and deadline, now, and the newest states."""

    index: int
    deadline: int
    now: int
    states: Mapping[str, CycleState]

    @property
    def positions(self) -> dict[str, float]:
        return {n: s.position for n, s in self.states.items()}


@dataclass
class CyclicReport:
    """Figures of one run. Ages are the per-joint state ages seen by the callback; latency is reply - send."""

    rate_hz: float
    cycles: int = 0
    deadlines_missed: int = 0  # deadlines the loop skipped (it began a cycle after the next was due)
    replied: int = 0
    late: int = 0
    missed: int = 0  # cycles given up without a reply (including superseded and undeliverable ones)
    partial: int = 0  # replies with some joint's record missing
    goals_refused: int = 0  # records saying a joint refused this cycle's goal
    achieved_hz: float = 0.0
    age_p50_ms: float = float("nan")
    age_p99_ms: float = float("nan")
    latency_p50_ms: float = float("nan")
    latency_p99_ms: float = float("nan")
    callback_p99_us: float = float("nan")
    ages_ns: list[int] = field(default_factory=list, repr=False)
    latencies_ns: list[int] = field(default_factory=list, repr=False)

    @property
    def missed_pct(self) -> float:
        """Deadlines skipped plus cycles without a reply, as a share of the cycles scheduled."""
        scheduled = self.cycles + self.deadlines_missed
        return 100.0 * (self.deadlines_missed + self.missed) / max(1, scheduled)

    def summary(self) -> str:
        return (f"{self.cycles} cycles at {self.achieved_hz:.0f} Hz (asked {self.rate_hz:g}), "
                f"{self.missed_pct:.2f} % missed, state age p50 {self.age_p50_ms:.2f} ms p99 {self.age_p99_ms:.2f} ms, "
                f"{self.late} late, {self.partial} partial")


def _p(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / NS_PER_MS


class CycleCore:
    """Driver-independent state of a cyclic run; see the module docstring."""

    def __init__(self, model: ArmModel, callback: Callable[[CycleView], Goals], rate_hz: float, *,
                 read: str = "motion", mode: GoalMode = GoalMode.POSITION,
                 max_in_flight: int = 8) -> None:
        if read not in READ_SPANS:
            raise UsageError(f"read must be one of {', '.join(READ_SPANS)}, got {read!r}")
        if not isinstance(max_in_flight, int) or not 1 <= max_in_flight <= MAX_IN_FLIGHT:
            raise UsageError(f"max_in_flight must be an integer in 1..{MAX_IN_FLIGHT}, got {max_in_flight!r}")
        if not model.joints:
            raise UsageError("no joints known: enumerate the arm (or give a config) before running a cyclic loop")
        self.model, self.callback, self.mode = model, callback, GoalMode(mode)
        self.reg, self.length = READ_SPANS[read]
        self.rate_hz = rate_hz
        self.max_in_flight = max_in_flight
        self.period_ns = int(NS_PER_S / rate_hz)
        self.timeout_ns = max_in_flight * self.period_ns
        self._names = {j.address: n for n, j in model.joints.items()}
        self.latest: dict[str, CycleState] = {}
        self.report = CyclicReport(rate_hz)
        self._callback_ns: list[int] = []
        self._lock = threading.Lock()

    # --- events (the driver's reader) -----------------------------------------------------------------------
    def on_event(self, event: HostEvent) -> None:
        if isinstance(event, CycleReplied):
            self._replied(event)
        elif isinstance(event, CycleMissed):
            self.report.missed += 1

    def _replied(self, ev: CycleReplied) -> None:
        r = self.report
        if ev.late:
            r.late += 1
        else:
            r.replied += 1
            if len(r.latencies_ns) < _WINDOW:
                r.latencies_ns.append(ev.time - ev.sent_at)
        if not self._names.keys() <= {s.address for s in ev.samples}:  # a rebooted joint answers unaddressed
            r.partial += 1
        with self._lock:
            for s in ev.samples:
                name = self._names.get(s.address)
                if name is None or len(s.data) != self.length:
                    continue
                goal = s.result & 0xF
                if goal != GOAL_NONE and goal:
                    r.goals_refused += 1
                old = self.latest.get(name)
                if old is not None and old.sampled_at >= s.sampled_at:
                    continue  # a late reply never replaces a newer state
                pos, vel, cur = _MOTION.unpack_from(s.data)
                cfg = self.model.joints[name]
                self.latest[name] = CycleState(name, s.address, s.status,
                                               cfg.from_raw(units.from_wire_position(pos)),
                                               units.from_wire_velocity(vel), units.from_wire_current(cur),
                                               s.sampled_at, goal)

    # --- one cycle (the driver's timing) --------------------------------------------------------------------
    def view(self, index: int, deadline: int, now: int) -> CycleView:
        with self._lock:
            states = dict(self.latest)
        if len(self.report.ages_ns) < _WINDOW:
            self.report.ages_ns.extend(now - s.sampled_at for s in states.values())
        return CycleView(index, deadline, now, states)

    def message(self, goals: Goals) -> Cycle:
        """The CYCLE for the callback's goals (by joint name, SI units; None or {}: a read-only cycle)."""
        if not goals:
            return Cycle(self.reg, self.length)
        return self.model.cycle_goals(goals, self.mode, self.reg, self.length)

    def run_callback(self, view: CycleView, clock: Callable[[], int]) -> Cycle:
        t0 = clock()
        goals = self.callback(view)
        if len(self._callback_ns) < _WINDOW:
            self._callback_ns.append(clock() - t0)
        return self.message(goals)

    def finish(self, keeper: RateKeeper) -> CyclicReport:
        r = self.report
        s = keeper.stats()
        r.cycles, r.deadlines_missed, r.achieved_hz = s.cycles, s.missed, s.achieved_hz
        r.age_p50_ms, r.age_p99_ms = _p(r.ages_ns, 0.50), _p(r.ages_ns, 0.99)
        r.latency_p50_ms, r.latency_p99_ms = _p(r.latencies_ns, 0.50), _p(r.latencies_ns, 0.99)
        r.callback_p99_us = _p(self._callback_ns, 0.99) * 1e3
        return r


def _sender(msg: Cycle, timeout_ns: int) -> Callable[[HostNode, int], int]:
    return lambda node, now: node.cycle(msg, now, timeout_ns)


class CyclicLoop:
    """The sync driver: ``Arm.cyclic(callback, rate_hz).run(seconds)``; see the module docstring."""

    def __init__(self, arm: Arm, callback: Callable[[CycleView], Goals], rate_hz: float, **options: Any) -> None:
        self.arm = arm
        self.core = CycleCore(arm.model, callback, rate_hz, **options)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask a running loop to end after its current cycle (from another thread or the callback)."""
        self._stop.set()

    def run(self, seconds: float | None = None, *, cycles: int | None = None, drain: bool = True) -> CyclicReport:
        """Run until ``seconds`` have passed, ``cycles`` were sent, or :meth:`stop`; returns the figures."""
        if seconds is None and cycles is None:
            raise UsageError("give seconds= or cycles= (or call stop() from the callback)")
        arm, core = self.arm, self.core
        runner = arm.runner
        keeper = RateKeeper(core.rate_hz, start=runner.now() + core.period_ns, policy="skip")
        end = None if seconds is None else keeper.next_deadline() + int(seconds * NS_PER_S)
        runner.add_listener(core.on_event)
        try:
            sent = 0
            while not self._stop.is_set() and (cycles is None or sent < cycles):
                deadline = keeper.next_deadline()
                if end is not None and deadline >= end:
                    break
                runner.sleep_until(deadline)
                c = keeper.begin(runner.now())
                msg = core.run_callback(core.view(c.index, c.deadline, runner.now()), runner.now)
                runner.call(_sender(msg, core.timeout_ns))
                sent += 1
                keeper.end(runner.now())
            if drain:  # the replies still on their way belong to this run
                stop_at = runner.now() + core.timeout_ns
                while runner.call(lambda node, now: node.cycles.in_flight) and runner.now() < stop_at:
                    runner.sleep_until(min(stop_at, runner.now() + core.period_ns))
        finally:
            runner.remove_listener(core.on_event)
        return core.finish(keeper)
