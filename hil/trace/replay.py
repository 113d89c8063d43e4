"""Replay a trace: re-send the host's bytes to an arm and compare its answers with the recorded ones.

Theory of operation
-------------------
The host link of a trace (``host-j1`` by default) has two directions: ``a>b`` is what the host sent (its
chunks, byte exact, garbage included), ``b>a`` what the arm answered. A replay sends the ``a>b`` chunks again,
decodes what comes back and compares it with the recorded ``b>a`` frames (:mod:`armbus.hil.trace.compare`), so a
trace becomes a regression test: exit status 0 without differences, 1 with.

Timing. Send times come from the trace: the kernel's tap stamps a chunk with its *arrival* at joint 1, so for
simulated captures the wire time and the sender's turnaround are subtracted (the chunk then reaches joint 1 at
exactly its recorded time); a tap capture (``armbus.capture=tap``) is stamped when the tap read the host's
bytes, which is the send time. ``--speed X`` divides every interval since the first chunk by X; ``--fast``
sends every chunk at once, back to back (the line's own pace). Deadlines are absolute (first send + scaled
offset), never "sleep the recorded gap", so a late chunk does not delay the ones after it.

Targets. ``virtual`` (default): a :class:`armbus.hil.virtual_arm.VirtualArm` in simulated time built from the trace's
metadata (``joints``, ``baud``, ``chain_baud``, ``seed``, ``turnaround_ns``, ``firmware``; options override them;
``--baud`` sets every link), driven by
``kernel.call_at`` at the send times: deterministic, and as fast as the CPU allows. A simulated capture keeps
its absolute times (joints boot at 0 in both runs); a wall-clock capture is moved to start
:data:`BOOT_LEAD_NS` after the arm boots, and the arm's own boot traffic before the first send is not compared.
Anything else is a pyserial URL or device (``serial_for_url``; ``armbus://`` is a real-time virtual arm):
a writer on absolute deadlines (sleep, then a short spin) and a reader thread that stamps what arrives.
The timing report gives how far each real send was from its deadline (p50/p99/max in us).

A truncated capture is replayed as far as it goes, with a note; replayed answers after the recording's end
(the last chunk on any link) that match nothing are counted, not reported as differences.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from armbus.bus.codec import Frame
from armbus.bus.errors import ExitCode, PortError, TraceError, UsageError, exit_code
from armbus.bus.wire import DEFAULT_BAUD, FrameKind, MsgType, wire_time_ns
from armbus.controller.backends import open_port
from armbus.hil.trace.compare import Comparison, Row, Tolerances, compare, decode_rows
from armbus.hil.trace.decode import parse_time
from armbus.hil.trace.reader import Trace, read_trace
from armbus.hil.virtual_arm import DEFAULT_WIRE_TURNAROUND_NS, HostPort, VirtualArm

#: Where a wall-clock capture starts on a fresh virtual arm: after the joints' link handshakes along the chain
#: (the same 5 ms armbus.hil.simarm waits before its first request).
BOOT_LEAD_NS = 5_000_000
#: Default time to keep listening after the last chunk sent or the recording's end, whichever is later.
DEFAULT_SETTLE = "50ms"
#: The real-port writer sleeps until this long before a deadline, then spins: time.sleep wakes up to
#: ~100 us late on a loaded Linux machine (timer slack 50 us plus scheduling), a spin costs one core briefly.
SPIN_NS = 300_000
#: Reads on a real port wait at most this long, so the reader thread notices the stop flag (seconds).
READ_TIMEOUT_S = 0.02
_SEND_DIRS = ("a>b", "down")
_ANSWER_DIRS = ("b>a", "up")


@dataclass
class ReplayResult:
    """Outcome of a replay: what was sent, the comparison, timing error of each send (ns), notes."""

    sent_chunks: int
    sent_bytes: int
    recorded: list[Row]
    replayed: list[Row]
    comparison: Comparison
    send_error_ns: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.comparison.differences


@dataclass
class _Plan:
    """The host's chunks with their send times on the trace's time base, and the recorded answers."""

    send_t: list[int]
    chunks: list[bytes]
    answers: list[tuple[int, bytes]]
    start_ns: int  # first chunk of the trace on any link
    end_ns: int  # last chunk of the trace on any link
    ignore_seq: bool
    notes: list[str]
    packets: bool = False  # compare packets only (a tap capture): see "What is compared" in docs/traces.md


def _pick_link(trace: Trace, link: str | None) -> tuple[int, int | None]:
    links = sorted({i.link for i in trace.interfaces if i.armbus})
    if link is None:
        link = "host-j1" if "host-j1" in links or len(links) != 1 else links[0]
    send = [i.index for i in trace.interfaces if i.armbus and i.link == link and i.direction in _SEND_DIRS]
    answer = [i.index for i in trace.interfaces if i.armbus and i.link == link and i.direction in _ANSWER_DIRS]
    if not send:
        raise UsageError(f"{trace.path}: no host-to-arm direction (a>b) of link {link!r}; links: "
                         f"{', '.join(links) or 'none'}")
    return send[0], answer[0] if answer else None


def plan(trace: Trace, link: str | None = None, baud: int = DEFAULT_BAUD,
         turnaround_ns: int = DEFAULT_WIRE_TURNAROUND_NS, ignore_seq: bool | None = None) -> _Plan:
    """What to send when, from ``trace`` (see the module docstring for the time stamps)."""
    trace.require_armbus()
    send_if, answer_if = _pick_link(trace, link)
    notes: list[str] = []
    sel = trace.chunk_iface == send_if
    t = trace.chunk_t_ns[sel].tolist()
    chunks = [trace.chunk_data(i) for i in np.flatnonzero(sel).tolist()]
    if not chunks:
        raise TraceError(f"{trace.path}: the host sent nothing on this link; nothing to replay")
    arrival_stamped = trace.metadata.get("capture") != "tap"
    send_t = [ti - wire_time_ns(len(c), baud) - turnaround_ns if arrival_stamped else ti
              for ti, c in zip(t, chunks, strict=True)]
    for i in range(1, len(send_t)):  # keep the order (rounding can make a back-to-back chunk 1 ns early)
        send_t[i] = max(send_t[i], send_t[i - 1])
    answers = []
    if answer_if is None:
        notes.append("the trace has no arm-to-host direction on this link: nothing to compare")
    else:
        sel_a = np.flatnonzero(trace.chunk_iface == answer_if).tolist()
        answers = [(int(trace.chunk_t_ns[i]), trace.chunk_data(i)) for i in sel_a]
    packets = trace.metadata.get("capture") == "tap"
    if packets:
        notes.append("a tap capture: packets are compared, not link frames (the recorded arm's link sessions, "
                     "sequence numbers and retransmissions are its own)")
    if ignore_seq is None:
        first, _ = decode_rows([(0, b"".join(chunks[:8]))])
        frames = [r.item for r in first if isinstance(r.item, Frame)]
        ignore_seq = not frames or frames[0].kind != FrameKind.RESET
        if ignore_seq:
            notes.append("the capture starts mid-stream (the host's first frame is not a RESET): link sequence "
                         "numbers and unsolicited msg_ids are not compared")
    if trace.truncated:
        notes.append(f"the capture is truncated ({'; '.join(trace.warnings)}): replayed {len(chunks)} chunk(s) "
                     f"up to {t[-1] / 1e9:.6f} s; answers after that point are not compared")
    return _Plan(send_t, chunks, answers, int(trace.chunk_t_ns.min()), int(trace.chunk_t_ns.max()),
                 ignore_seq or packets, notes, packets)


def _joints_enumerated(trace: Trace, link: str | None) -> int | None:
    """How many joints the arm of a capture has, from the last ENUMERATE_REPLY it answered (None: none)."""
    _, answer_if = _pick_link(trace, link)
    if answer_if is None:
        return None
    sel = np.flatnonzero(trace.chunk_iface == answer_if).tolist()
    rows, _ = decode_rows([(int(trace.chunk_t_ns[i]), trace.chunk_data(i)) for i in sel])
    count = None
    for r in rows:
        packet = r.item.packet if isinstance(r.item, Frame) else None
        if packet is not None and packet.type == MsgType.ENUMERATE_REPLY and packet.payload:
            count = packet.payload[0]
    return count


def _scaled(p: _Plan, origin: int, speed: float | None) -> Callable[[int], int]:
    """Map a trace time to the replay's time base: ``origin`` is where the first send lands."""
    s0 = p.send_t[0]
    if speed is None:
        return lambda t: origin
    return lambda t: origin + round((t - s0) / speed)


def _finish(p: _Plan, sent_bytes: int, replayed: list[Row], to_replay: Callable[[int], int], cut: int | None,
            tol: Tolerances | None, errors: np.ndarray, timed: bool, notes: list[str]) -> ReplayResult:
    """Compare; rows before ``cut`` (replay time base) are dropped on both sides: an arm already running (a
    wall-clock capture) or booting (a fresh virtual arm) says things there that the replay did not cause."""
    recorded, left = decode_rows(p.answers, p.ignore_seq, p.packets)
    if left:
        notes.append(f"the recording ends inside a frame ({left} bytes): not compared")
    recorded = [Row(to_replay(r.t_ns), r.item, r.key, r.measured) for r in recorded]
    if cut is not None:
        recorded = [r for r in recorded if r.t_ns >= cut]
        replayed = [r for r in replayed if r.t_ns >= cut]
    end = to_replay(p.end_ns) if timed else None
    result = compare(recorded, replayed, tol, end)
    if not timed:
        result.shifts = []
    return ReplayResult(len(p.chunks), sent_bytes, recorded, replayed, result, errors, p.notes + notes)


def _writer(port: HostPort, chunk: bytes) -> Callable[[int], None]:
    return lambda now: port.write(chunk)


def replay_virtual(trace: Trace, *, link: str | None = None, joints: int | None = None, seed: int | None = None,
                   baud: int | None = None, turnaround_ns: int | None = None, speed: float | None = 1.0,
                   settle_ns: int = parse_time(DEFAULT_SETTLE), tolerances: Tolerances | None = None,
                   setup: Callable[[VirtualArm], None] | None = None, ignore_seq: bool | None = None) -> ReplayResult:
    """Replay to a fresh simulated :class:`VirtualArm` (``speed`` None: ``--fast``); ``setup(arm)`` may change
    the arm before the replay (registers, faults)."""
    meta = trace.metadata
    notes: list[str] = []

    def meta_int(key: str, given: int | None, default: int | None) -> int:
        if given is not None:
            return given
        if key in meta:
            try:
                return int(meta[key])
            except ValueError:
                raise TraceError(f"{trace.path}: metadata armbus.{key}={meta[key]!r} is not an integer") from None
        if default is None:
            raise UsageError(f"{trace.path}: no armbus.{key} in the capture's metadata; give --{key}")
        notes.append(f"no armbus.{key} in the capture's metadata: using {default}")
        return default

    if joints is None and "joints" not in meta:
        joints = _joints_enumerated(trace, link)
        if joints is not None:
            notes.append(f"no armbus.joints in the capture's metadata: {joints}, from its ENUMERATE_REPLY")
    n = meta_int("joints", joints, None)
    b = meta_int("baud", baud, 1_000_000)
    chain = int(meta["chain_baud"]) if baud is None and meta.get("chain_baud", "").isdigit() else b
    s = meta_int("seed", seed, 0)
    ta = turnaround_ns if turnaround_ns is not None else int(meta.get("turnaround_ns", DEFAULT_WIRE_TURNAROUND_NS))
    p = plan(trace, link, b, ta, ignore_seq)
    arm = VirtualArm(n, baud=b, seed=s, turnaround_ns=ta, chain_baud=chain, firmware=meta.get("firmware") or None)
    if setup is not None:
        setup(arm)
    port = arm.port
    assert port is not None
    wall_clock = meta.get("capture") == "tap" or p.send_t[0] < 0
    origin = BOOT_LEAD_NS if wall_clock else p.send_t[0]
    to_replay = _scaled(p, origin, speed)
    at = [to_replay(t) for t in p.send_t]
    for t, chunk in zip(at, p.chunks, strict=True):
        arm.kernel.call_at(t, _writer(port, chunk))
    arm.run_until(max(at[-1], to_replay(p.end_ns)) + settle_ns)
    replayed, _ = decode_rows(port.arrivals, p.ignore_seq, p.packets)
    sent = sum(map(len, p.chunks))
    return _finish(p, sent, replayed, to_replay if speed is not None else (lambda t: t - p.send_t[0] + origin),
                   origin if wall_clock else None, tolerances, np.zeros(len(at), np.int64), speed is not None, notes)


def replay_port(trace: Trace, port: str, *, link: str | None = None, baud: int | None = None,
                speed: float | None = 1.0, settle_ns: int = parse_time(DEFAULT_SETTLE),
                tolerances: Tolerances | None = None, ignore_seq: bool | None = None) -> ReplayResult:
    """Replay to a real port or any pyserial URL, in real time on absolute deadlines."""
    import serial

    b = baud if baud is not None else int(trace.metadata.get("baud", "1000000"))
    p = plan(trace, link, b, DEFAULT_WIRE_TURNAROUND_NS, ignore_seq)
    try:
        ser = open_port(port, baudrate=b, timeout=READ_TIMEOUT_S)
    except (serial.SerialException, ValueError, OSError) as exc:
        raise PortError(f"cannot open {port!r}: {exc}") from None
    got: list[tuple[int, bytes]] = []
    stop = threading.Event()
    failure: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                data = ser.read(max(1, ser.in_waiting))
                if data:
                    got.append((time.monotonic_ns(), data))
        except Exception as exc:  # reported after the replay; the writer goes on
            failure.append(exc)

    thread = threading.Thread(target=reader, name="armbus-replay-reader", daemon=True)
    thread.start()
    errors = []
    try:
        origin = time.monotonic_ns() + 20_000_000  # 20 ms to get the reader thread going
        to_replay = _scaled(p, origin, speed)
        for t, chunk in zip(p.send_t, p.chunks, strict=True):
            deadline = to_replay(t)
            while True:
                now = time.monotonic_ns()
                if now >= deadline:
                    break
                # sleep until SPIN_NS before the deadline, then yield the GIL in a spin (sleep(0) releases it)
                time.sleep(max(0, deadline - now - SPIN_NS) / 1e9)
            errors.append(time.monotonic_ns() - deadline)
            ser.write(chunk)
        last = time.monotonic_ns()
        until = max(last, to_replay(p.end_ns) if speed is not None else last) + settle_ns
        while time.monotonic_ns() < until:
            time.sleep(min(0.01, max(0.0, (until - time.monotonic_ns()) / 1e9)))
    finally:
        stop.set()
        thread.join(1.0)
        ser.close()
    notes = [f"reading the port failed: {failure[0]!r}"] if failure else []
    replayed, _ = decode_rows(got, p.ignore_seq, p.packets)
    return _finish(p, sum(map(len, p.chunks)), replayed,
                   to_replay if speed is not None else (lambda t: t - p.send_t[0] + origin), origin, tolerances,
                   np.asarray(errors, np.int64), speed is not None, notes)


def _us(ns: float) -> str:
    return f"{ns / 1000:.1f}"


def report(result: ReplayResult, max_diffs: int = 50) -> str:
    """The text ``armbus trace replay`` prints."""
    c = result.comparison
    out = [f"note: {n}" for n in result.notes]
    out += [f"difference: {d}" for d in c.differences[:max_diffs]]
    if len(c.differences) > max_diffs:
        out.append(f"... and {len(c.differences) - max_diffs} more difference(s)")
    out.append(f"sent {result.sent_chunks} chunk(s), {result.sent_bytes} bytes; answers: {len(result.recorded)} "
               f"recorded, {len(result.replayed)} replayed, {c.matched} matched, {len(c.differences)} "
               f"difference(s)" + (f", {c.beyond_end} after the recording's end (not compared)"
                                   if c.beyond_end else ""))
    e = result.send_error_ns
    if len(e):
        out.append(f"send timing error (actual - deadline, us): p50 {_us(np.percentile(e, 50))} "
                   f"p99 {_us(np.percentile(e, 99))} max {_us(e.max())}")
    if c.shifts:
        s = np.abs(np.asarray(c.shifts))
        out.append(f"answer time shift vs recording (|replayed - recorded|, us): p50 {_us(np.percentile(s, 50))} "
                   f"p99 {_us(np.percentile(s, 99))} max {_us(s.max())}")
    out.append("replay: OK, no differences" if result.ok else "replay: DIFFERENCES")
    return "\n".join(out)


def _setter(spec: str) -> Callable[[VirtualArm], None]:
    """``J:REGISTER=VALUE`` -> a setup function writing that register of joint J (firmware side)."""
    from armbus.joints.registers import BY_NAME

    try:
        joint_text, _, rest = spec.partition(":")
        name, _, value_text = rest.partition("=")
        joint, value = int(joint_text), int(value_text, 0)
    except ValueError:
        raise UsageError(f"--set {spec!r}: use JOINT:REGISTER=VALUE, e.g. 2:velocity_limit=3000000") from None
    if name not in BY_NAME:
        raise UsageError(f"--set {spec!r}: no register {name!r}; see 'armbus reg list'")

    def setup(arm: VirtualArm) -> None:
        arm.joint(joint).registers.set(name, value)

    return setup


def _tolerances(specs: Sequence[str]) -> Tolerances:
    values: dict[str, int] = {}
    names = Tolerances.__dataclass_fields__
    for spec in specs:
        name, _, value = spec.partition("=")
        name = name if name in names else "present_" + name
        if name not in names or not value.strip().lstrip("-").isdigit():
            raise UsageError(f"--tolerance {spec!r}: use NAME=VALUE (register units) with NAME one of "
                             f"{', '.join(n.removeprefix('present_') for n in names)}")
        values[name] = int(value)
    return Tolerances(**values)


def build_parser(prog: str = "armbus trace replay") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Re-send the host's bytes of a trace to an arm and "
                                "compare its answers with the recorded ones (exit 1 on a difference).")
    p.add_argument("file", help="trace file (.pcapng)")
    p.add_argument("--to", default="virtual", help="'virtual' (simulated arm from the capture's metadata, "
                   "default) or a port / pyserial URL (real time)")
    timing = p.add_mutually_exclusive_group()
    timing.add_argument("--fast", action="store_true", help="send every chunk at once, ignoring the timestamps")
    timing.add_argument("--speed", type=float, default=1.0, help="time scale: 2 replays twice as fast (default 1)")
    p.add_argument("--link", help="link whose host side to replay (default host-j1)")
    p.add_argument("--joints", type=int, help="virtual arm: number of joints (default: armbus.joints)")
    p.add_argument("--seed", type=int, help="virtual arm: seed (default: armbus.seed)")
    p.add_argument("--baud", type=int, help="baud rate (default: armbus.baud)")
    p.add_argument("--set", action="append", default=[], metavar="J:REG=VALUE",
                   help="virtual arm: set a register of joint J before the replay (repeatable)")
    p.add_argument("--tolerance", action="append", default=[], metavar="NAME=VALUE",
                   help="measured-value tolerance in register units, e.g. position=50000 (repeatable)")
    p.add_argument("--ignore-seq", action="store_true", help="do not compare link sequence numbers")
    p.add_argument("--settle", default=DEFAULT_SETTLE, help=f"listen this long after the end (default "
                   f"{DEFAULT_SETTLE})")
    p.add_argument("--max-diffs", type=int, default=50, help="differences printed at most (default 50)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``armbus trace replay FILE [--to virtual|PORT] [--fast | --speed X] [--link NAME] ...``; exit status:
    0 no difference, 1 differences, 2 bad file or option, 3 a port that cannot be opened."""
    args = build_parser().parse_args(argv)
    try:
        if args.speed <= 0:
            raise UsageError(f"--speed must be positive, got {args.speed}")
        speed = None if args.fast else args.speed
        tol = _tolerances(args.tolerance)
        settle = parse_time(args.settle)
        trace = read_trace(args.file)
        ignore = True if args.ignore_seq else None
        if args.to == "virtual":
            setups = [_setter(s) for s in args.set]

            def setup(arm: VirtualArm) -> None:
                for f in setups:
                    f(arm)

            result = replay_virtual(trace, link=args.link, joints=args.joints, seed=args.seed, baud=args.baud,
                                    speed=speed, settle_ns=settle, tolerances=tol, ignore_seq=ignore,
                                    setup=setup)
        else:
            if args.set or args.joints is not None or args.seed is not None:
                raise UsageError("--set, --joints and --seed apply to --to virtual only")
            result = replay_port(trace, args.to, link=args.link, baud=args.baud, speed=speed, settle_ns=settle,
                                 tolerances=tol, ignore_seq=ignore)
    except (PortError, TraceError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    print(report(result, args.max_diffs))
    return ExitCode.OK if result.ok else ExitCode.FAILED
