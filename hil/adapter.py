"""USB-serial adapter models: when the host sees what joint 1 sends, and when what the host writes reaches the line.

Theory of operation
-------------------
Between the host and joint 1 there is almost always a USB-serial adapter, and it shapes timing more than the baud
rate. A full-speed USB device moves data in packets of at most :data:`USB_PACKET` bytes, and the host controller
starts a frame every millisecond (:data:`armbus.controller.ports.USB_FRAME_NS`). The model, per direction:

* **line -> host (IN).** The host polls the adapter's bulk IN endpoint once per frame, at the frame's start, and
  takes at most one packet, made of bytes that reached the adapter by then. What the host sees at that instant is
  the packet (plus the optional jitter below).

  - ``ftdi`` (FT232R-like): a packet is 2 status bytes and up to 62 data bytes. The chip answers a poll with data
    when it holds 62 bytes, or when its latency timer (``latency``, 1..255 ms, 16 by default on Linux) has run
    out; sending any packet, a status-only one included, restarts the timer. An idle chip thus sends a status
    packet every ``latency`` ms, and a short reply waits for the next of them: back-to-back requests lock to the
    timer and take ``latency`` each (unless a joint's resends fill a packet first, docs/performance.md). Up to
    3 Mbaud.
  - ``cdc-acm`` (a microcontroller's own USB, ttyACM*): 64-byte packets and no timer: whatever is buffered goes at
    the next poll (a short packet ends the transfer, so the host has the bytes at that frame).
* **host -> line (OUT).** Bytes the host writes leave in packets of up to 64 bytes, one per frame, at the first
  frame that starts after the write (the host controller builds a frame's schedule at its start); the adapter
  puts them on the line at once, and the simulation's wire model paces them at the baud.
* ``ideal``: no adapter (the virtual arm's behaviour without a model, and the default).

Seeded like every fault source (:func:`armbus.hil.faults.derive_seed`): the frame phase (where frame starts lie
relative to time 0), the latency timer's phase and the optional ``jitter`` (uniform 0..jitter added to each
packet the host sees: its USB completion and scheduling noise; the order of packets is kept). Each decision goes
to the ``record`` callback; the virtual arm points it at its fault log.

Sans-I/O: :class:`UsbAdapter` takes bytes and integer-ns times (:meth:`~UsbAdapter.from_line`,
:meth:`~UsbAdapter.from_host`) and gives back what is due (:meth:`~UsbAdapter.to_host`,
:meth:`~UsbAdapter.to_line`) and its :meth:`~UsbAdapter.next_deadline`. Bytes must come in time order; a byte that
arrives exactly at a frame start makes that frame's poll. :class:`AdapterNode` wraps a host node in a model for
the simulation kernel; :func:`parse_adapter` reads the spec text (``ftdi:latency=16ms,jitter=200us``,
``cdc-acm``, ``ideal``) of ``armbus sim --adapter``, the ``adapter=`` option of ``armbus://`` URLs and the bench.

Limit: one IN packet per frame caps line -> host throughput at 62 (ftdi) or 64 (cdc-acm) bytes per millisecond.
A real host controller may poll more than once per frame, so a sustained stream above about 600 kbaud queues in
the model (:attr:`UsbAdapter.max_backlog` counts it) where a real adapter keeps up. A reply of a few packets, the
traffic the model is for, arrives at the line rate about as fast as the packets leave, and waits at most about a
frame longer than it would with several polls per frame.
"""

from __future__ import annotations

import random
import re
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from armbus.bus.errors import UsageError
from armbus.bus.wire import NS_PER_MS, NS_PER_S, NS_PER_US
from armbus.controller.ports import (
    DEFAULT_LATENCY_MS,
    GOOD_LATENCY_MS,
    HOST_SLACK_NS,
    MAX_LATENCY_MS,
    USB_FRAME_NS,
    adapter_delay_ns,
)
from armbus.hil.faults import derive_seed
from armbus.hil.kernel import Node, Tap
from armbus.hil.wire import Direction

#: Largest full-speed bulk packet (USB 2.0, 5.8.3).
USB_PACKET = 64
#: Modem and line status bytes at the head of every FTDI IN packet (FTDI AN232B-04), leaving 62 for data.
FTDI_STATUS_BYTES = 2
FTDI_PAYLOAD = USB_PACKET - FTDI_STATUS_BYTES
#: The FT232R's top rate (its datasheet: 3 Mbaud).
FT232R_MAX_BAUD = 3_000_000
#: Largest jitter a spec may ask for: 10 frames, far beyond a healthy host's USB completion noise.
MAX_JITTER_NS = 10 * USB_FRAME_NS
#: The models, and the options each takes.
MODELS: dict[str, tuple[str, ...]] = {"ideal": (), "ftdi": ("latency", "jitter"), "cdc-acm": ("jitter",)}
#: Duration units of the options.
UNITS_NS = {"ns": 1, "us": NS_PER_US, "ms": NS_PER_MS, "s": NS_PER_S}
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)([a-zA-Z]*)$")
Record = Callable[[int, str, str], None]  # (t_ns, operation, detail)


@dataclass(frozen=True)
class AdapterSpec:
    """Which adapter model, with its options. ``str(spec)`` is the canonical spec text."""

    model: str = "ideal"
    latency_ms: int = DEFAULT_LATENCY_MS  # ftdi only
    jitter_ns: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise UsageError(f"unknown adapter model {self.model!r}; known: {', '.join(MODELS)}")
        lat = self.latency_ms
        if isinstance(lat, bool) or not isinstance(lat, int) or not GOOD_LATENCY_MS <= lat <= MAX_LATENCY_MS:
            raise UsageError(f"latency {lat!r} ms is out of range: an FTDI latency timer takes "
                             f"{GOOD_LATENCY_MS}..{MAX_LATENCY_MS} ms")
        j = self.jitter_ns
        if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j <= MAX_JITTER_NS:
            raise UsageError(f"jitter {j!r} ns is out of range: 0..{MAX_JITTER_NS} ns")

    @property
    def ideal(self) -> bool:
        return self.model == "ideal"

    @property
    def payload(self) -> int:
        """Data bytes in one IN packet."""
        return FTDI_PAYLOAD if self.model == "ftdi" else USB_PACKET

    @property
    def timer_frames(self) -> int:
        """Frames after a packet before the adapter sends a short one: the latency timer (ftdi), else one."""
        return self.latency_ms if self.model == "ftdi" else 1

    @property
    def max_baud(self) -> int | None:
        return FT232R_MAX_BAUD if self.model == "ftdi" else None

    @property
    def delay_ns(self) -> int:
        """What this adapter adds to a reaction across it (:func:`armbus.controller.ports.adapter_delay_ns`)."""
        return 0 if self.ideal else adapter_delay_ns(self.model, self.latency_ms) or 0

    @property
    def host_turnaround_ns(self) -> int | None:
        """The host link turnaround that covers this adapter (as :mod:`armbus.controller.ports` sets it for a
        real port of this kind); None for the ideal link (the caller's default)."""
        return None if self.ideal else HOST_SLACK_NS + self.delay_ns

    def check_baud(self, baud: int) -> int:
        top = self.max_baud
        if top is not None and baud > top:
            raise UsageError(f"adapter {self}: baud {baud} is above the chip's {top} baud")
        return baud

    def __str__(self) -> str:
        opts = [f"latency={self.latency_ms}ms"] if self.model == "ftdi" else []
        if self.jitter_ns:
            opts.append(f"jitter={_format_ns(self.jitter_ns)}")
        return self.model + (":" + ",".join(opts) if opts else "")


def _format_ns(ns: int) -> str:
    for unit in ("s", "ms", "us"):
        if ns % UNITS_NS[unit] == 0:
            return f"{ns // UNITS_NS[unit]}{unit}"
    return f"{ns}ns"


def _duration_ns(text: str, key: str, spec: str, bare: str | None) -> int:
    m = _DURATION.match(value := text.strip())
    if m is None:
        raise UsageError(f"adapter {spec!r}: {key}={text!r} is not a duration; write e.g. {key}=16ms")
    unit = m.group(2).lower() or bare
    if unit is None:
        raise UsageError(f"adapter {spec!r}: {key}={value} has no unit; use one of {', '.join(UNITS_NS)}")
    if unit not in UNITS_NS:
        raise UsageError(f"adapter {spec!r}: bad unit {m.group(2)!r} in {key}={value}; "
                         f"use one of {', '.join(UNITS_NS)} (e.g. {key}=16ms)")
    ns = float(m.group(1)) * UNITS_NS[unit]
    if ns != int(ns):
        raise UsageError(f"adapter {spec!r}: {key}={value} is not a whole number of nanoseconds")
    return int(ns)


def parse_adapter(spec: str | AdapterSpec | None) -> AdapterSpec:
    """The :class:`AdapterSpec` of ``spec`` text such as ``ftdi:latency=16ms,jitter=100us``, ``cdc-acm``,
    ``ideal`` (None too). A bare latency is in ms, as in sysfs. Every mistake is a :class:`UsageError`."""
    if spec is None:
        return AdapterSpec()
    if isinstance(spec, AdapterSpec):
        return spec
    if not isinstance(spec, str):
        raise UsageError(f"an adapter spec is text such as 'ftdi:latency=16ms', got {spec!r}")
    model, _, rest = spec.strip().partition(":")
    model = model.strip().lower()
    if model not in MODELS:
        raise UsageError(f"adapter {spec!r}: unknown model {model!r}; known: {', '.join(MODELS)} "
                         "(e.g. ftdi:latency=16ms)")
    fields: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key not in MODELS[model]:
            takes = ", ".join(MODELS[model]) or "no options"
            raise UsageError(f"adapter {spec!r}: {model} has no option {key!r} (it takes {takes})")
        if not eq:
            raise UsageError(f"adapter {spec!r}: option {key!r} needs a value, e.g. {key}=16ms")
        if key in fields:
            raise UsageError(f"adapter {spec!r}: {key} given twice")
        fields[key] = _duration_ns(value, key, spec, "ms" if key == "latency" else None)
    latency = fields.get("latency", DEFAULT_LATENCY_MS * NS_PER_MS)
    if latency % NS_PER_MS or not GOOD_LATENCY_MS <= latency // NS_PER_MS <= MAX_LATENCY_MS:
        raise UsageError(f"adapter {spec!r}: latency {latency / NS_PER_MS:g} ms is out of range: the FTDI latency "
                         f"timer takes whole milliseconds, {GOOD_LATENCY_MS}..{MAX_LATENCY_MS}")
    jitter = fields.get("jitter", 0)
    if jitter > MAX_JITTER_NS:
        raise UsageError(f"adapter {spec!r}: jitter {_format_ns(jitter)} is out of range (at most "
                         f"{_format_ns(MAX_JITTER_NS)})")
    return AdapterSpec(model, latency // NS_PER_MS, jitter)


class UsbAdapter:
    """One adapter, both directions, sans-I/O (see the module docstring)."""

    def __init__(self, spec: AdapterSpec, *, seed: int = 0, record: Record | None = None) -> None:
        if spec.ideal:
            raise UsageError("the ideal link has no adapter to model")
        self.spec = spec
        self._record = record
        rng = random.Random(derive_seed(seed, "adapter", "phase"))
        #: Where frames start: at phase_ns + k * USB_FRAME_NS.
        self.phase_ns = rng.randrange(USB_FRAME_NS)
        self._period = spec.timer_frames * USB_FRAME_NS
        offset = rng.randrange(spec.timer_frames)
        self._last_in = self.phase_ns - USB_FRAME_NS * (1 + offset)  # the last IN packet: the timer restarted there
        self._jitter = random.Random(derive_seed(seed, "adapter", "jitter"))
        self._in: deque[tuple[int, bytes]] = deque()  # (arrival, bytes) from the line, not yet in a packet
        self._in_count = 0
        self._seen: deque[tuple[int, bytes]] = deque()  # (instant the host sees it, packet data)
        self._seen_last = -1
        self._out: deque[tuple[int, bytes]] = deque()  # (write time, bytes) from the host, not yet sent
        self._last_out = -USB_FRAME_NS
        self._line: deque[tuple[int, bytes]] = deque()  # (instant, bytes) for the line
        #: Counters: packets each way, and the most bytes ever waiting in the adapter toward the host.
        self.packets_in = 0
        self.packets_out = 0
        self.max_backlog = 0
        self._log(0, "phase", f"{spec}: frames start at {self.phase_ns} ns + k ms; timer phase {offset} frame(s)")

    def _log(self, t: int, op: str, detail: str) -> None:
        if self._record is not None:
            self._record(t, "adapter", f"{op}: {detail}")

    def frame_at_or_after(self, t: int) -> int:
        """The first frame start at or after ``t``."""
        return t + (self.phase_ns - t) % USB_FRAME_NS

    # -- line -> host -------------------------------------------------------------------------------------------
    def from_line(self, data: bytes, now: int) -> None:
        """``data`` reached the adapter from the line at ``now`` (feed one byte per call for exact timing)."""
        if not data:
            return
        self._advance_in(now - 1)  # polls before now did not see these bytes
        if not self._in:  # idle until now: the timer kept running out, each time with a status-only packet
            lag = now - self._last_in - 1
            if lag >= self._period:
                self._last_in += lag // self._period * self._period
        self._in.append((now, bytes(data)))
        self._in_count += len(data)
        self.max_backlog = max(self.max_backlog, self._in_count)

    def to_host(self, now: int) -> list[bytes]:
        """The packets the host sees at or before ``now`` (their data bytes), oldest first."""
        self._advance_in(now)
        out = []
        while self._seen and self._seen[0][0] <= now:
            out.append(self._seen.popleft()[1])
        return out

    def _next_in(self) -> int | None:
        """The next frame start at which the adapter sends data to the host, or None."""
        if not self._in:
            return None
        t = self.frame_at_or_after(self._last_in + self._period)  # the timer runs out (never before the oldest byte)
        if self._in_count >= self.spec.payload:
            need, full_at = self.spec.payload, 0
            for arrival, chunk in self._in:
                need -= len(chunk)
                if need <= 0:
                    full_at = arrival
                    break
            t = min(t, self.frame_at_or_after(max(full_at, self._last_in + USB_FRAME_NS)))
        return t

    def _advance_in(self, limit: int) -> None:
        while (t := self._next_in()) is not None and t <= limit:
            packet = bytearray()
            while self._in and self._in[0][0] <= t and len(packet) < self.spec.payload:
                arrival, chunk = self._in.popleft()
                take = self.spec.payload - len(packet)
                packet += chunk[:take]
                if len(chunk) > take:
                    self._in.appendleft((arrival, chunk[take:]))
            self._in_count -= len(packet)
            self._last_in = t
            self.packets_in += 1
            seen = t
            if self.spec.jitter_ns:
                extra = self._jitter.randint(0, self.spec.jitter_ns)
                self._log(t, "jitter", f"{len(packet)}-byte packet seen {extra} ns late")
                seen += extra
            self._seen_last = max(seen, self._seen_last)  # packets reach the host in order
            self._seen.append((self._seen_last, bytes(packet)))

    # -- host -> line -------------------------------------------------------------------------------------------
    def from_host(self, data: bytes, now: int) -> None:
        """The host wrote ``data`` at ``now``."""
        if data:
            self._advance_out(now)
            self._out.append((now, bytes(data)))

    def to_line(self, now: int) -> bytes:
        """The bytes the adapter puts on the line at or before ``now``."""
        self._advance_out(now)
        out = bytearray()
        while self._line and self._line[0][0] <= now:
            out += self._line.popleft()[1]
        return bytes(out)

    def _next_out(self) -> int | None:
        if not self._out:
            return None
        return self.frame_at_or_after(max(self._out[0][0] + 1, self._last_out + USB_FRAME_NS))

    def _advance_out(self, limit: int) -> None:
        while (t := self._next_out()) is not None and t <= limit:
            packet = bytearray()
            while self._out and self._out[0][0] < t and len(packet) < USB_PACKET:
                written, chunk = self._out.popleft()
                take = USB_PACKET - len(packet)
                packet += chunk[:take]
                if len(chunk) > take:
                    self._out.appendleft((written, chunk[take:]))
            self._last_out = t
            self.packets_out += 1
            self._line.append((t, bytes(packet)))

    # -- both ---------------------------------------------------------------------------------------------------
    def next_deadline(self) -> int | None:
        """The earliest instant at which :meth:`to_host` or :meth:`to_line` has something, or None."""
        times = [t for t in (self._next_in(), self._next_out(),
                             self._seen[0][0] if self._seen else None,
                             self._line[0][0] if self._line else None) if t is not None]
        return min(times) if times else None


class AdapterNode:
    """A host node behind a :class:`UsbAdapter`, as one node of the simulation kernel (port 0): bytes from the
    line go through the model before the host gets them, and the host's bytes go out at the model's instants.
    Taps (:meth:`add_tap`) see what the host sees, when it sees it, as deliveries on ``link`` direction b>a."""

    ports = (0,)

    def __init__(self, host: Node, adapter: UsbAdapter, link: str = "host-j1") -> None:
        self.host = host
        self.adapter = adapter
        self.link = link
        self._taps: list[Tap] = []

    def add_tap(self, tap: Tap) -> None:
        self._taps.append(tap)

    def receive_data(self, port: int, data: bytes, now: int) -> None:
        self.adapter.from_line(data, now)

    def data_to_send(self, port: int, now: int) -> bytes:
        out = self.host.data_to_send(0, now)
        if out:
            self.adapter.from_host(bytes(out), now)
        return self.adapter.to_line(now)

    def next_deadline(self) -> int | None:
        a, h = self.adapter.next_deadline(), self.host.next_deadline()
        return h if a is None else a if h is None else min(a, h)

    def handle_timer(self, now: int) -> None:
        for data in self.adapter.to_host(now):
            for tap in list(self._taps):
                try:
                    tap(self.link, Direction.B_TO_A, now, data)
                except Exception as exc:  # a broken listener must not stop the simulation (as in the kernel)
                    self._taps.remove(tap)
                    warnings.warn(f"capture tap {tap!r} raised {exc!r} and was removed", RuntimeWarning,
                                  stacklevel=2)
            self.host.receive_data(0, data, now)
        due = self.host.next_deadline()
        if due is not None and due <= now:
            self.host.handle_timer(now)
