"""``armbus record``: an arm's joint states, goals, faults and link events into an MCAP file.

Theory of operation
-------------------
The states come from read-only cycles of the cyclic exchange (:mod:`armbus.bus.cycle`), sent by the recorder at
its own ``rate_hz`` on a :class:`~armbus.controller.scheduler.RateKeeper` (absolute deadlines, a late cycle skips
the deadlines it missed). A read-only CYCLE moves nothing, so it needs no lease and runs beside any other
client of the arm; it is pipelined (a cycle goes out at its deadline whether or not the previous reply came), so
the rate stays steady whatever the chain's round trip, and every record says how old its sample is, which places
the sample on the host's clock (:class:`~armbus.controller.events.CycleSample`). Every joint reads back one span,
:data:`SPAN` = ``torque_enable .. status``: the goal registers and the state block in one record.

Rate: at most what fills :data:`BUS_SHARE` of the busiest link with the replies (:func:`rate_limit`: 355 Hz for
3 joints at 1 Mbaud, 194 Hz for 6, three times that at 3 Mbaud, never above 1 kHz); the default is 100 Hz or
that limit if lower. A reply counts as missing after :data:`IN_FLIGHT` periods or twice the exchange's latency
floor (:class:`~armbus.controller.cycles.CycleTiming`), whichever is longer.

Alternatives, and why not: STATE telemetry (``state_period``) would change the joints' configuration under the
other clients and comes joint by joint at each joint's own phase; a SYNC_READ per period waits for each reply, so
its rate falls with the round trip, and it tells only when the reply arrived, not when the joints sampled.

Per reply (:class:`~armbus.controller.events.CycleReplied`): one ``/joint_states`` message with every joint that
answered, ``header.stamp`` = the earliest record's sample instant (the others sampled within the cycle's transit
of the chain), positions calibrated as the arm API reports them, effort = the measured motor current in A; and
one ``/armbus/goals`` message for each joint whose goal registers (mode, goals, torque_enable) differ from the
previous record's (the first record of each joint always). Faults the joints push (FAULT) and the host's link
events (resets, line errors, a lost or restored port, undeliverable packets, cycles without a reply) go to their
channels as they come.

Events are queued by the listener (the runner's reader thread on a port, the kernel in simulated time) and
written by the recording thread between cycles, so the MCAP writer is used from one thread only and the
messages are written in the order the host received them. Time: ``log_time`` and ``publish_time`` are the
host's clock (``arm.now()``: monotonic on a port, simulated on a SimArm) plus ``epoch_offset_ns``; the CLI sets
the offset once, at the start, to the wall clock's distance from the monotonic clock, so times read as dates
and never jump when the wall clock is adjusted.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from armbus.bus.cycle import Cycle, reply_size
from armbus.bus.errors import PeerError, PortError, UsageError
from armbus.bus.linkconfig import CONTROL_WIRE_SIZE
from armbus.bus.wire import NS_PER_S, data_wire_size, wire_time_ns
from armbus.controller.cycles import CycleTiming
from armbus.controller.events import (
    CycleMissed,
    CycleReplied,
    FaultReported,
    HostEvent,
    LinkEvent,
    PortLost,
    PortRestored,
    SendFailed,
    UndeliverableReported,
)
from armbus.controller.scheduler import RateKeeper
from armbus.hil.trace.mcapfile import FAULTS, GOALS, LINK, McapSink, goal_of, goal_record, span_values, state_of
from armbus.joints.registers import BY_NAME

if TYPE_CHECKING:
    from armbus.controller.arm import Arm
    from armbus.controller.host import HostNode

#: What every joint reads back each cycle: torque_enable (37) .. status (70), 34 bytes.
SPAN = (BY_NAME["torque_enable"].address, BY_NAME["status"].end - BY_NAME["torque_enable"].address)
#: Default and largest recording rates (Hz). 100 Hz: ten times what a plot needs, a small share of a 1 Mbaud bus
#: (a 6-joint record cycle is about 270 bytes each way); 1 kHz: the cyclic exchange's own ceiling.
DEFAULT_RATE_HZ = 100.0
MAX_RATE_HZ = 1000.0
#: A reply may take this many periods (or twice the exchange's latency floor, if longer) before its cycle counts
#: as missed.
IN_FLIGHT = 4
#: Share of the busiest link's time the recorder's replies may take: the rest is for the other clients.
BUS_SHARE = 0.5


def rate_limit(timing: CycleTiming, joints: int) -> float:
    """The highest recording rate (Hz) whose replies fill at most :data:`BUS_SHARE` of the busiest link: the host
    link, which carries every record, or joint 1 -> 2 at the chain's rate, which carries all but one."""
    up = wire_time_ns(data_wire_size(reply_size(joints, SPAN[1])) + CONTROL_WIRE_SIZE, timing.host_baud)
    if joints > 1:
        up = max(up, wire_time_ns(data_wire_size(reply_size(joints - 1, SPAN[1])) + CONTROL_WIRE_SIZE,
                                  timing.chain_baud))
    return min(MAX_RATE_HZ, BUS_SHARE * NS_PER_S / up)


@dataclass
class RecordReport:
    path: str
    rate_hz: float
    seconds: float  # host-clock time recorded
    cycles: int = 0  # cycles sent
    replies: int = 0
    missed: int = 0  # cycles without a reply in time
    late: int = 0  # of those, replies that came later (recorded all the same)
    send_errors: int = 0  # cycles that could not be sent (port lost)
    counts: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False

    def summary(self) -> str:
        c = self.counts
        stop = " (interrupted)" if self.interrupted else ""
        return (f"recorded {self.seconds:.2f} s{stop} at {self.rate_hz:g} Hz into {self.path}: "
                f"{c.get('/joint_states', 0)} joint states, {c.get(GOALS, 0)} goals, {c.get(FAULTS, 0)} faults, "
                f"{c.get(LINK, 0)} link events; {self.cycles} cycles, {self.missed} without a reply in time"
                + (f" ({self.late} came later)" if self.late else ""))


class Recorder:
    """Records ``arm`` into ``sink`` at ``rate_hz``; see the module docstring. ``run()`` once."""

    def __init__(self, arm: Arm, sink: McapSink, rate_hz: float | None = None, *,
                 epoch_offset_ns: int = 0) -> None:
        if not arm.model.joints:
            raise UsageError("no joints known: enumerate the arm (or give a config) before recording")
        timing: CycleTiming = arm.runner.call(lambda node, now: node.cycles.timing)
        joints = max(cfg.address for cfg in arm.model.joints.values())
        limit = rate_limit(timing, joints)
        if rate_hz is None:
            rate_hz = min(DEFAULT_RATE_HZ, limit)
        if not (0 < rate_hz <= limit):
            raise UsageError(f"rate {rate_hz:g} Hz: choose more than 0 and at most {limit:.0f} Hz (the replies of "
                             f"{joints} joints at {timing.host_baud} baud may take {BUS_SHARE:.0%} of the bus)")
        self.arm, self.sink, self.rate_hz = arm, sink, rate_hz
        self.timeout_ns = max(IN_FLIGHT * int(NS_PER_S / rate_hz), 2 * timing.floor_ns(joints, SPAN[1], 0))
        self.offset = epoch_offset_ns
        self._joints = {cfg.address: (name, cfg) for name, cfg in arm.model.joints.items()}
        self._goals: dict[int, tuple[Any, ...]] = {}
        self._queue: deque[HostEvent] = deque()
        self._ours: set[int] = set()  # msg_ids of our cycles: a CycleReplied of another client's is not ours
        self._stop = threading.Event()
        self.period_ns = int(NS_PER_S / rate_hz)
        self.report = RecordReport(sink.path, rate_hz, 0.0)

    def stop(self) -> None:
        """Ask :meth:`run` to end after the current cycle (from another thread or a signal handler)."""
        self._stop.set()

    def interrupt(self) -> None:
        """:meth:`stop`, reported as interrupted (what Ctrl-C does)."""
        self.report.interrupted = True
        self._stop.set()

    @property
    def interrupted(self) -> bool:
        return self.report.interrupted

    # --- events: queued by the listener, written by the recording thread ----------------------------------------
    def on_event(self, event: HostEvent) -> None:
        self._queue.append(event)

    def drain(self) -> None:
        while self._queue:
            self._write(self._queue.popleft())

    def _write(self, ev: HostEvent) -> None:
        t = ev.time + self.offset
        if isinstance(ev, CycleReplied):
            if ev.msg_id in self._ours:
                self._ours.discard(ev.msg_id)
                self.report.late += ev.late
                self._replied(ev, t)
        elif isinstance(ev, CycleMissed):
            if ev.msg_id in self._ours:
                self.report.missed += 1
                self._link(t, "cycle missed", ev.reason)
        elif isinstance(ev, FaultReported):
            name = self._joints.get(ev.address, (f"joint{ev.address}", None))[0]
            code = getattr(ev.code, "name", None) or str(int(ev.code))
            self.sink.json(FAULTS, t, {"joint": name, "address": ev.address, "code": code, "active": ev.active,
                                       "value": ev.value})
        elif isinstance(ev, LinkEvent):
            self._link(t, ev.what, "" if ev.detail is None else str(getattr(ev.detail, "name", ev.detail)))
        elif isinstance(ev, PortLost):
            self._link(t, "port lost", ev.reason)
        elif isinstance(ev, PortRestored):
            self._link(t, "port restored", ev.port)
        elif isinstance(ev, SendFailed):
            self._link(t, "send failed", ev.reason)
        elif isinstance(ev, UndeliverableReported):
            self._link(t, "undeliverable", str(ev.report))

    def _link(self, t: int, what: str, detail: str) -> None:
        self.sink.json(LINK, t, {"link": "host", "what": what, "detail": detail})

    def _replied(self, ev: CycleReplied, t: int) -> None:
        self.report.replies += 1
        names, pos, vel, eff, stamps = [], [], [], [], []
        for s in ev.samples:
            known = self._joints.get(s.address)
            if known is None or len(s.data) != SPAN[1]:
                continue
            name, cfg = known
            values = span_values(SPAN[0], s.data)
            state = state_of(values)
            if state is not None:
                names.append(name)
                pos.append(cfg.from_raw(state[0]))
                vel.append(state[1])
                eff.append(state[2])
                stamps.append(s.sampled_at)
            goal = goal_of(values)
            if goal is not None:
                if "position" in goal:
                    goal["position"] = cfg.from_raw(goal["position"])
                key = tuple(sorted(goal.items()))
                if self._goals.get(s.address) != key:
                    self._goals[s.address] = key
                    self.sink.json(GOALS, t, goal_record(name, s.address, "register", goal))
        if names:
            self.sink.joint_states(t, min(stamps) + self.offset, names, pos, vel, eff)

    # --- the loop -------------------------------------------------------------------------------------------------
    def run(self, seconds: float | None = None) -> RecordReport:
        """Record until ``seconds`` of the host clock passed, :meth:`stop`, or Ctrl-C (KeyboardInterrupt ends
        the recording normally: ``report.interrupted``). The sink is left open: the caller closes it."""
        runner = self.arm.runner
        message = Cycle(*SPAN)
        timeout_ns = self.timeout_ns
        keeper = RateKeeper(self.rate_hz, start=runner.now() + self.period_ns, policy="skip")
        start = keeper.next_deadline()
        end = None if seconds is None else start + int(seconds * NS_PER_S)

        def send(node: HostNode, now: int) -> int:
            msg_id = node.cycle(message, now, timeout_ns)
            self._ours.add(msg_id)
            return msg_id

        runner.add_listener(self.on_event)
        try:
            try:
                while not self._stop.is_set():
                    deadline = keeper.next_deadline()
                    if end is not None and deadline >= end:
                        break
                    runner.sleep_until(deadline)
                    keeper.begin(runner.now())
                    try:
                        runner.call(send)
                        self.report.cycles += 1
                    except (PortError, PeerError):  # the port is gone for now: it comes back, a link event says so
                        self.report.send_errors += 1
                    keeper.end(runner.now())
                    self.drain()
                stop_at = runner.now() + timeout_ns  # the replies on their way belong to the recording
                while runner.call(lambda node, now: node.cycles.in_flight) and runner.now() < stop_at:
                    runner.sleep_until(min(stop_at, runner.now() + self.period_ns))
            except KeyboardInterrupt:
                self.report.interrupted = True
            now = runner.now() if end is None or self.report.interrupted else min(runner.now(), end)
            self.report.seconds = max(0, now - start) / NS_PER_S
        finally:
            runner.remove_listener(self.on_event)
            if not self.sink.closed:  # after a write error the file is given up: nothing more goes in
                self.drain()
            self.report.counts = dict(self.sink.counts)
        return self.report


def cmd_record(args: argparse.Namespace) -> int:
    """``armbus record --out FILE [--duration S] [--rate HZ]``: see the module docstring."""
    from armbus import __version__
    from armbus.tools.commands import default_port, emit, open_arm

    if args.duration is not None and not (0 < args.duration <= 7 * 86400):
        raise UsageError(f"--duration {args.duration:g}: choose more than 0 s and at most a week")
    if args.rate is not None and not (0 < args.rate <= MAX_RATE_HZ):
        raise UsageError(f"--rate {args.rate:g}: choose more than 0 and at most {MAX_RATE_HZ:g} Hz")
    port = default_port(args)
    sink = McapSink(args.out)  # a bad path fails here, before the arm is opened
    try:
        arm = open_arm(args)
        try:
            offset = time.time_ns() - arm.now()
            recorder = Recorder(arm, sink, args.rate, epoch_offset_ns=offset)
        except BaseException:
            arm.close()
            raise
    except UsageError as exc:  # nothing was recorded: leave no file behind
        sink.close()
        _remove(args.out)
        raise UsageError(f"--{exc}" if str(exc).startswith("rate ") else str(exc)) from None
    except BaseException:
        sink.close()
        _remove(args.out)
        raise
    try:
        sink.metadata({"port": port, "rate_hz": f"{recorder.rate_hz:g}", "joints": ",".join(arm.model.joints),
                       "source": "armbus record: read-only cycles of torque_enable..status",
                       "clock": "host monotonic clock + offset to the UNIX epoch taken at the start",
                       "epoch_offset_ns": str(offset), "effort": "motor current, A",
                       "position": "calibrated, rad", "armbus": __version__})
        if sys.stderr.isatty():
            print(f"armbus: recording {port} into {args.out} at {recorder.rate_hz:g} Hz (Ctrl-C to stop)",
                  file=sys.stderr, flush=True)
        with _ctrl_c_stops(recorder):
            report = recorder.run(args.duration)
    finally:
        try:
            arm.close()
        finally:
            sink.close()
    emit(args, report, report.summary())
    return 0


@contextlib.contextmanager
def _ctrl_c_stops(recorder: Recorder) -> Iterator[None]:
    """The first Ctrl-C ends the recording at the end of its cycle (the writer is never cut off mid-message);
    a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if recorder.interrupted:
            raise KeyboardInterrupt
        recorder.interrupt()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _remove(path: str) -> None:
    import os

    with contextlib.suppress(OSError):
        os.remove(path)
