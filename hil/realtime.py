"""Real-time driver: a virtual arm that keeps pace with the wall clock behind a file descriptor.

Theory of operation
-------------------
:class:`RealtimeArm` runs a :class:`armbus.hil.virtual_arm.VirtualArm` (simulated time, :mod:`armbus.hil.kernel`) in a
driver thread and connects its host port to a file descriptor: the master side of a pseudo-terminal
(:mod:`armbus.hil.ptyserver`) or one end of a socket pair (the ``armbus://`` URL handler). The thread is the only code
that touches the simulation; everything else talks to it through the descriptor or :meth:`RealtimeArm.call`.

One loop iteration:

1. run the calls queued by :meth:`RealtimeArm.call` (inspection, fault injection from tests);
2. advance the kernel to "simulated now" (below), running every timer and delivery due;
3. write what reached the host port to the descriptor (non-blocking; what does not fit waits, bounded by
   :data:`OUT_LIMIT`, beyond which bytes are dropped and counted, as a UART overruns a host that stops reading);
4. sleep in ``select()`` until the next kernel event is due, the host writes, or someone wakes the thread.
   ``select`` takes a microsecond timeout (epoll and poll round up to whole milliseconds, far too coarse);
5. bytes the host wrote are stamped with the simulated time at which they were read and handed to the host
   port there; the wire model (:mod:`armbus.hil.wire`) then paces them toward joint 1 at the configured baud.

Simulated time. *Paced* (default): simulated now = wall time since :meth:`RealtimeArm.start`
(:class:`armbus.hil.clock.MonotonicClock`), so every byte on every link takes its wire time in wall time too, and the
joints' 1 kHz control loops tick in real time. *Unpaced*: whenever bytes are on a wire the kernel runs on
without waiting for the wall clock, until something reaches the host port: answers come back as soon as they
are computed. Simulated now is ``max(kernel time, wall time)``: simulated time runs ahead of wall time while
there is traffic and waits for the wall clock to catch up when idle. Stopping at the first bytes for the host
matters: the host's reaction (its ack) must be able to arrive before the joints' retransmit timers, which
would not be the case if the simulation raced on through the joints' retransmissions. The lead is capped at
``max_lead_ns`` (beyond it the driver paces).

The host's rate: the host end of the host link runs at the rate the host program set on its port. A driver
given ``host_rate`` (a probe: the pty's termios speed, the URL handler's ``baudrate``) reads it on every loop
iteration and re-times the host's end when it changes (:meth:`armbus.hil.virtual_arm.VirtualArm.set_host_baud`),
so a program at another rate than joint 1 gets garbage both ways, as on a real adapter. ``None`` from the probe
leaves the rate as it is.

Keeping up: before each advance the driver notes how late the oldest due event is (``lag``); the figures are in
:attr:`RealtimeArm.stats`. When the lag exceeds ``slip_after_ns`` the driver does not burst through the backlog
(which would starve the descriptor and make the host look slow to the joints); it shifts the time origin so that
the oldest due event is "now" (simulated time slips behind wall time, counted in ``slipped_ns``). An overloaded
machine thus runs the arm slower than real time but consistently. Measured figures are in docs/hil.md.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import os
import select
import statistics
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from armbus.bus.errors import ArmbusError, UsageError
from armbus.bus.link import LinkConfig
from armbus.bus.wire import BITS_PER_BYTE, MAX_ENCODED, NS_PER_S
from armbus.hil.clock import Clock, MonotonicClock
from armbus.hil.virtual_arm import HostPort, VirtualArm
from armbus.hil.wire import MAX_BAUD, MIN_BAUD, check_baud

T = TypeVar("T")

#: Bytes toward the host that may wait for a host that does not read: 64 KiB, over half a second of traffic
#: at 1 Mbaud (a real USB-serial driver buffers a few KiB; more only hides a stuck host).
OUT_LIMIT = 65_536
#: Largest read from the descriptor at once: the pty master hands over at most 4 KiB per read anyway.
READ_CHUNK = 65_536
#: Default cap on how far unpaced simulated time may run ahead of wall time: one second.
DEFAULT_MAX_LEAD_NS = NS_PER_S
#: Longest sleep without a due event: the loop re-checks its stop flag at least this often (seconds).
MAX_SLEEP_S = 0.5
#: Default backlog beyond which the driver lets simulated time slip instead of catching up: 20 ms. A driver
#: that is late by more than this (an overloaded machine) would otherwise burst through the backlog, starving
#: the descriptor and making the host look slow to the joints; slipping keeps the simulation self-consistent
#: (it just runs slower than real time, counted in ``RealtimeStats.slipped_ns``).
DEFAULT_SLIP_AFTER_NS = 20_000_000
#: Link turnaround the joints allow for in real time (armbus.bus.link.LinkConfig.turnaround_ns): the host is a program
#: on a time-shared machine, and the driver itself wakes up to a millisecond late under load (docs/hil.md);
#: the bus default of 50 us would have the joints retransmit to a healthy host all the time. 1 ms is also what
#: armbus.bus.link documents for a host behind an FTDI adapter with latency_timer=1.
REALTIME_TURNAROUND_NS = 1_000_000
#: Fastest rate the driver paces frame by frame. Above it a typical frame (14..30 bytes: 35..75 us at 4 Mbaud)
#: lasts less than the driver's median wake-up latency (about 90 us measured, docs/hil.md), so single frames
#: are no longer delivered at their wire time, although the byte rate over a second still is (armbus.tools.bench.harness
#: measured -0.3 % at 8 Mbaud). Simulated time (armbus.hil.kernel) goes to armbus.hil.wire.MAX_BAUD.
MAX_PACED_BAUD = 4_000_000
#: Lag samples kept for the statistics (a ring buffer: ten seconds of 1 kHz wake-ups).
LAG_SAMPLES = 10_000
#: Paced: events due within this much of now run in the same wake-up as the one due now (up to this early),
#: instead of each costing a sleep and a wake-up of its own. A 6-joint cyclic exchange at 1 kHz has some 25
#: event instants per millisecond, many a few tens of microseconds apart (a frame and its ack); a wake-up
#: costs a system call and the loop's bookkeeping, and comes about 90 us late anyway (docs/hil.md), so 50 us
#: early is well inside the timing the driver keeps.
DEFAULT_BATCH_NS = 50_000


def realtime_link_config(baud: int) -> LinkConfig:
    """Link settings of the joints of a real-time arm: :data:`REALTIME_TURNAROUND_NS`, and a retransmit backoff
    cap never below twice the first timeout (armbus.bus.link caps the doubled timeout at 20 ms, which at low rates,
    e.g. 9600 baud with a 300 ms first timeout, would retransmit faster than a frame can come back)."""
    base = LinkConfig(baud=baud, turnaround_ns=REALTIME_TURNAROUND_NS)
    cap = max(base.backoff_cap_ns, 2 * base.timeout_ns(MAX_ENCODED))
    return dataclasses.replace(base, backoff_cap_ns=cap)


def check_realtime_baud(baud: object) -> int:
    """Return ``baud`` if the real-time driver can pace it, else raise :class:`UsageError` saying why."""
    rate = check_baud(baud)
    if rate > MAX_PACED_BAUD:
        raise UsageError(f"baud {rate} is faster than the real-time harness can pace ({MAX_PACED_BAUD} max; "
                         f"a byte would last {BITS_PER_BYTE * 1e9 / rate:.0f} ns); use simulated time (VirtualArm) "
                         "for higher rates")
    return rate


class DriverError(ArmbusError):
    """The real-time driver thread stopped on an error (the simulation broke, or the descriptor failed)."""


@dataclass
class RealtimeStats:
    """What the driver has done. Lags are how late (ns of wall time) the oldest due event was run."""

    wakeups: int = 0
    host_bytes_in: int = 0
    host_bytes_out: int = 0
    host_overrun: int = 0  # bytes toward the host dropped because it did not read
    max_lag_ns: int = 0
    lead_ns: int = 0  # unpaced: how far simulated time is ahead of wall time now
    slipped_ns: int = 0  # simulated time given up because the driver could not keep up
    slips: int = 0
    lags: collections.deque[int] = field(default_factory=lambda: collections.deque(maxlen=LAG_SAMPLES))

    def summary(self) -> dict[str, float]:
        """Median, 99th percentile and maximum lag in microseconds, plus counters."""
        lags = sorted(self.lags)
        med = statistics.median(lags) if lags else 0
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0
        return {"wakeups": self.wakeups, "lag_median_us": med / 1e3, "lag_p99_us": p99 / 1e3,
                "lag_max_us": self.max_lag_ns / 1e3, "host_bytes_in": self.host_bytes_in,
                "host_bytes_out": self.host_bytes_out, "host_overrun": self.host_overrun,
                "slipped_ms": self.slipped_ns / 1e6, "slips": self.slips}


class RealtimeArm:
    """Drive ``arm`` in real time; its host port reads from and writes to descriptor ``fd`` (not owned)."""

    def __init__(self, arm: VirtualArm, fd: int, *, paced: bool = True, clock: Clock | None = None,
                 max_lead_ns: int = DEFAULT_MAX_LEAD_NS, slip_after_ns: int = DEFAULT_SLIP_AFTER_NS,
                 host_rate: Callable[[], int | None] | None = None, batch_ns: int = DEFAULT_BATCH_NS) -> None:
        if not isinstance(arm.port, HostPort):
            raise UsageError("RealtimeArm needs a VirtualArm with its default HostPort (no host= node)")
        if isinstance(max_lead_ns, bool) or not isinstance(max_lead_ns, int) or max_lead_ns < 0:
            raise UsageError(f"max_lead_ns must be a non-negative integer, got {max_lead_ns!r}")
        self.arm = arm
        self.port: HostPort = arm.port
        self.fd = fd
        self.paced = paced
        self.clock = clock if clock is not None else MonotonicClock()
        self.max_lead_ns = max_lead_ns
        self.slip_after_ns = slip_after_ns
        self.host_rate = host_rate
        self.batch_ns = batch_ns
        self.stats = RealtimeStats()
        #: The exception that stopped the driver thread, if any.
        self.error: BaseException | None = None
        self._origin = 0  # wall time at simulated time 0 (paced and idle-unpaced: sim = wall - origin)
        self._out = bytearray()
        self._calls: collections.deque[tuple[Callable[[VirtualArm], Any], _Result]] = collections.deque()
        self._stop = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None

    # -- control from other threads -------------------------------------------------------------------------
    def start(self) -> RealtimeArm:
        """Start the driver thread; simulated time 0 is now (the kernel must still be at time 0 or later)."""
        if self._thread is not None:
            raise UsageError("RealtimeArm already started")
        os.set_blocking(self.fd, False)
        self._origin = self.clock.now() - self.arm.kernel.now
        self._thread = threading.Thread(target=self._main, name="armbus-realtime", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the driver thread and release the wake pipe (idempotent). The descriptor stays open."""
        self._stop = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._wake()
            thread.join(timeout)
        if self._wake_w >= 0 and (thread is None or not thread.is_alive()):
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            self._wake_r = self._wake_w = -1

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def call(self, fn: Callable[[VirtualArm], T], timeout: float = 5.0) -> T:
        """Run ``fn(arm)`` in the driver thread between two events and return its result (or raise what it
        raised). The only safe way to look at or change the simulation while the driver runs."""
        if not self.running:
            if self.error is not None:
                raise DriverError(f"the real-time driver stopped: {self.error!r}") from self.error
            return fn(self.arm)  # not running: nobody else touches the simulation
        box = _Result()
        self._calls.append((fn, box))
        self._wake()
        if not box.done.wait(timeout):
            raise DriverError(f"the real-time driver did not run a call within {timeout} s")
        if box.exc is not None:
            raise box.exc
        return box.value  # type: ignore[return-value]

    def sim_now(self) -> int:
        """Simulated now as the driver sees it (see the module docstring)."""
        wall = self.clock.now() - self._origin
        return wall if self.paced else max(wall, self.arm.kernel.now)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # pipe full (the thread is awake anyway) or already closed
            os.write(self._wake_w, b"\x01")

    def __enter__(self) -> RealtimeArm:
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the driver thread ----------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # report, never hang the threads waiting on us
            self.error = exc
            print(f"armbus real-time driver stopped: {exc!r}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
        finally:
            while self._calls:
                _, box = self._calls.popleft()
                box.fail(DriverError("the real-time driver stopped"))

    def _loop(self) -> None:
        fd, wake_r = self.fd, self._wake_r
        port = self.port
        stats = self.stats
        kernel = self.arm.kernel
        while not self._stop:
            while self._calls:
                fn, box = self._calls.popleft()
                try:
                    box.set(fn(self.arm))
                except Exception as exc:
                    box.fail(exc)
            self._advance(self.sim_now())
            if self.host_rate is not None:
                self._follow_host_rate(self.host_rate())
            data = port.read()
            if data:
                self._queue_out(data)
            if self._out:
                self._flush_out()
            nxt = kernel.next_event_time()
            if nxt is None:
                timeout = MAX_SLEEP_S
            elif not self.paced and self.stats.lead_ns < self.max_lead_ns and kernel.deliveries_pending():
                timeout = 0.0  # unpaced: bytes still in flight (the run-ahead paused for the host's bytes)
            else:
                timeout = min(MAX_SLEEP_S, max(0, nxt - self.sim_now()) / NS_PER_S)
            r, _, _ = select.select([fd, wake_r], [fd] if self._out else [], [], timeout)
            stats.wakeups += 1
            if wake_r in r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
            if fd in r:
                self._read_host()

    def _read_host(self) -> None:
        try:
            data = os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # pty: no slave open right now; nothing to read
                return
            raise
        if not data:  # socket pair: the other end closed, the port is gone
            self._stop = True
            return
        stamp = self.sim_now()
        self._advance(stamp)
        if self.host_rate is not None:  # the program may have set its rate just before it wrote
            self._follow_host_rate(self.host_rate())
        self.stats.host_bytes_in += len(data)
        self.port.write(data)  # the host port wakes: bytes enter the host-j1 wire at the kernel's now

    def _follow_host_rate(self, rate: int | None) -> None:
        if rate is not None:
            rate = min(max(rate, MIN_BAUD), MAX_BAUD)  # beyond the modelled range: the nearest end, still wrong
            if rate != self.arm.host_baud:
                self.arm.set_host_baud(rate)

    def _advance(self, now: int) -> None:
        kernel = self.arm.kernel
        head = kernel.next_event_time()
        if head is not None and head < now:
            stats = self.stats
            lag = now - head
            stats.lags.append(lag)
            if lag > stats.max_lag_ns:
                stats.max_lag_ns = lag
            if lag > self.slip_after_ns:  # overloaded: run the oldest due event now, give up the backlog
                self._origin += lag
                stats.slipped_ns += lag
                stats.slips += 1
                now = head
        if now > kernel.now:
            kernel.run_until(now)
        if self.paced and self.batch_ns:  # what is due very soon runs now: one wake-up instead of several
            horizon = now + self.batch_ns
            while (head := kernel.next_event_time()) is not None and head <= horizon:
                kernel.run_until(head)  # every event at that instant (the joints' ticks come six at once)
        if not self.paced:
            limit = self.clock.now() - self._origin + self.max_lead_ns
            port = self.port
            while not port.in_waiting and kernel.deliveries_pending() and kernel.now <= limit:
                if kernel.step() is None:
                    break
            self.stats.lead_ns = max(0, kernel.now - (self.clock.now() - self._origin))

    def _queue_out(self, data: bytes) -> None:
        room = OUT_LIMIT - len(self._out)
        if len(data) > room:
            self.stats.host_overrun += len(data) - room
            data = data[:room]
        self._out += data

    def _flush_out(self) -> None:
        try:
            n = os.write(self.fd, self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EPIPE, errno.ECONNRESET):  # host end gone: bytes are lost
                self.stats.host_overrun += len(self._out)
                self._out.clear()
                return
            raise
        self.stats.host_bytes_out += n
        del self._out[:n]


class _Result:
    __slots__ = ("done", "exc", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: object = None
        self.exc: BaseException | None = None

    def set(self, value: object) -> None:
        self.value = value
        self.done.set()

    def fail(self, exc: BaseException) -> None:
        self.exc = exc
        self.done.set()
