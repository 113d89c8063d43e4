"""Codec benchmark: the hand-written fast path against the construct-interpreted layout, side by side.

Theory of operation
-------------------
One seeded stream of mixed frames (every message type, weighted toward what a host receives: STATE reports, ACKs,
replies) is built once, about 10 MB on the wire, with 0.1 % of its frames corrupted by one flipped bit. Then, for
the fast path (:mod:`armbus.bus.codec`, :mod:`armbus.bus.deframer`) and the construct path (:mod:`armbus.bus.layout`):

* encode: every frame of the mix from its fields to wire bytes;
* decode: every wire frame back to a Frame with the one-shot decoder (corrupted ones raise and are counted);
* stream: the whole stream read in 4096-byte pieces through a receiver (Deframer.feed; for construct, the same
  split-at-delimiter buffer calling the construct reference per chunk) with the result items consumed.

The construct path is about two orders of magnitude slower, so it runs over a prefix of the mix (``--baseline``
frames); rates are per frame and per byte, so they compare directly. Each figure is the median of several
repetitions, timed with the process CPU clock (``time.process_time``) so that other processes on a shared machine
do not inflate it. Then: per-frame encode+decode time of a typical 19-byte SET_GOAL frame (timeit, median of
repeats), and the deframer's memory measured with tracemalloc while feeding the stream and 1 MB of noise.

Run: ``python -m armbus.tools.bench.codec [--size-mb 10] [--reps 5]``; ``armbus bench codec`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import timeit
import tracemalloc
from collections.abc import Callable, Sequence

from armbus.bus import layout
from armbus.bus import messages as m
from armbus.bus.codec import Frame, Packet, decode_wire, encode_control, encode_data
from armbus.bus.deframer import Deframer
from armbus.bus.errors import DecodeError
from armbus.bus.wire import FrameKind, GoalMode, MsgType

#: Receive reads of a USB-serial port typically return up to a few kB; 4096 is pyserial-asyncio's read size.
READ_SIZE = 4096
#: One frame in a thousand gets one flipped bit (the 0.1 % of the brief; real links see far fewer).
CORRUPT_FRACTION = 0.001


Maker = Callable[[random.Random], m.Message | None]

#: (weight, src, maker) for each kind of frame in the mix; maker None-result means an ACK.
MIX: list[tuple[int, int, Maker]] = [
    (30, 2, lambda r: m.State(3, r.randrange(-3_000_000, 3_000_000), r.randrange(-100_000, 100_000),
                              r.randrange(-2000, 2000), r.randrange(200, 600), 12_000)),
    (25, 0, lambda r: None),
    (10, 0, lambda r: m.SetGoal(int(GoalMode.POSITION), r.randrange(-3_000_000, 3_000_000))),
    (5, 6, lambda r: m.SyncReadReply(0x40, 4, tuple(m.SyncRecord(a, 1, r.randbytes(4)) for a in range(1, 7)))),
    (5, 0, lambda r: m.SyncWrite(0x30, 4, 1, r.randbytes(24))),
    (5, 0, lambda r: m.Cycle(0x38, 10, int(GoalMode.POSITION), 1,
                             tuple(r.randrange(-3_000_000, 3_000_000) for _ in range(6)))),
    (5, 1, lambda r: m.CycleReply(0x38, 10, tuple(m.CycleRecord(a, 1, 0, r.randrange(1000), r.randbytes(10))
                                                  for a in range(6, 0, -1)))),
    (5, 1, lambda r: m.ReadReply(0x10, r.randbytes(4))),
    (3, 0, lambda r: m.Heartbeat(r.randrange(1 << 32))),
    (3, 1, lambda r: m.WriteReply(0x20, 2)),
    (2, 0, lambda r: m.Read(0x10, 4)),
    (2, 0, lambda r: m.Write(0x20, r.randbytes(2))),
    (2, 1, lambda r: m.Error(int(MsgType.WRITE), 3, 0)),
    (2, 2, lambda r: m.Fault(1, 1, 850)),
    (1, 1, lambda r: m.PingReply(0x0102, 1, 4, r.randrange(1 << 32), 1)),
    (1, 0, lambda r: m.Ping()),
    (1, 2, lambda r: m.EnumerateReply((m.JointRecord(0x102, 1001), m.JointRecord(0x102, 1002)))),
    (1, 0, lambda r: m.Enumerate()),
    (1, 0, lambda r: m.SyncRead(0x40, 4)),
    (1, 0, lambda r: m.Torque(1)),
    (1, 0, lambda r: m.EStop(1)),
    (1, 0, lambda r: m.Reboot()),
    (1, 2, lambda r: m.Undeliverable(2, 3, 0, 3, int(MsgType.READ), 9, 1)),
]
assert {mk(random.Random(0)).TYPE for _, _, mk in MIX if mk(random.Random(0)) is not None} == set(MsgType)  # type: ignore[union-attr]


class Workload:
    """The frames (as fields and as wire bytes) and the stream every measurement uses."""

    def __init__(self, size_bytes: int, seed: int) -> None:
        rng = random.Random(seed)
        self.items: list[tuple[int, int, int, Packet | None]] = []  # kind, seq, flags, packet
        self.wires: list[bytes] = []
        self.corrupted = 0
        total = 0
        n = 0
        weights = [w for w, _, _ in MIX]
        while total < size_bytes:
            _, src, maker = rng.choices(MIX, weights)[0]
            msg = maker(rng)
            seq = n & 0xFF
            if msg is None:
                item: tuple[int, int, int, Packet | None] = (int(FrameKind.ACK), seq, 0, None)
                wire = encode_control(FrameKind.ACK, seq)
            else:
                dst = 0 if src else rng.randrange(1, 7)
                packet = m.make_packet(msg, src, dst, n & 0xFFFF)
                item = (0, seq, 0, packet)
                wire = encode_data(seq, 0, packet)
            if rng.random() < CORRUPT_FRACTION:
                bad = bytearray(wire)
                bit = rng.randrange((len(wire) - 1) * 8)  # never the delimiter: frame boundaries stay put
                bad[bit // 8] ^= 0x80 >> (bit % 8)
                wire = bytes(bad)
                self.corrupted += 1
            self.items.append(item)
            self.wires.append(wire)
            total += len(wire)
            n += 1
        self.stream = b"".join(self.wires)

    def prefix(self, frames: int) -> Workload:
        """The first ``frames`` frames as a smaller workload (for the slow baseline)."""
        w = object.__new__(Workload)
        w.items, w.wires = self.items[:frames], self.wires[:frames]
        w.corrupted = 0
        w.stream = b"".join(w.wires)
        return w


# ------------------------------------------------------------------------------------------- the operations
def fast_encode(w: Workload) -> int:
    for kind, seq, flags, packet in w.items:
        if packet is None:
            encode_control(kind, seq, flags)
        else:
            encode_data(seq, flags, packet)
    return len(w.items)


def fast_decode(w: Workload) -> int:
    errors = 0
    for wire in w.wires:
        try:
            decode_wire(wire)
        except DecodeError:
            errors += 1
    return errors


def fast_stream(w: Workload) -> int:
    d = Deframer()
    data = w.stream
    frames = 0
    for i in range(0, len(data), READ_SIZE):
        for item in d.feed(data[i:i + READ_SIZE]):
            if item.__class__ is Frame:
                frames += 1
    return frames


def construct_encode(w: Workload) -> int:
    for kind, seq, flags, packet in w.items:
        layout.build_frame(Frame(kind, seq, flags, packet))
    return len(w.items)


def construct_decode(w: Workload) -> int:
    errors = 0
    for wire in w.wires:
        if not isinstance(layout.decode_chunk(wire[:-1]), Frame):
            errors += 1
    return errors


def construct_stream(w: Workload) -> int:
    data = w.stream
    buf = b""
    frames = 0
    for i in range(0, len(data), READ_SIZE):
        *chunks, buf = (buf + data[i:i + READ_SIZE]).split(b"\x00")
        for chunk in chunks:
            if chunk and isinstance(layout.decode_chunk(chunk), Frame):
                frames += 1
    return frames


def _median_time(fn: Callable[[Workload], int], w: Workload, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        fn(w)
        times.append(time.process_time() - t0)
    return statistics.median(times)


def _per_frame_us(stmt: Callable[[], object], number: int, reps: int) -> float:
    return statistics.median(timeit.repeat(stmt, number=number, repeat=reps, timer=time.process_time)) / number * 1e6


def _memory(w: Workload) -> tuple[int, int, int]:
    """(largest partial buffer, largest memory retained between feeds, peak during one feed), in bytes."""
    noise = random.Random(1).randbytes(min(1 << 20, len(w.stream)))
    inputs = (w.stream[: 4 << 20], noise, noise.replace(b"\x00", b"\x01"))  # allocated before tracing starts
    d = Deframer()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        max_buffered = retained = peak = 0
        for data in inputs:
            for i in range(0, len(data), READ_SIZE):
                tracemalloc.reset_peak()
                out = d.feed(data[i:i + READ_SIZE])
                peak = max(peak, tracemalloc.get_traced_memory()[1] - base)
                del out
                max_buffered = max(max_buffered, d.buffered)
                retained = max(retained, tracemalloc.get_traced_memory()[0] - base)
    finally:
        tracemalloc.stop()
    return max_buffered, retained, peak


def run(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m armbus.tools.bench.codec`` and ``armbus bench codec``; prints the figures,
    returns 0."""
    p = argparse.ArgumentParser(prog="armbus bench codec", description="Codec benchmark: fast path vs construct.")
    p.add_argument("--size-mb", type=float, default=10.0, help="stream size in MB (default 10)")
    p.add_argument("--reps", type=int, default=5, help="repetitions per figure; the median is shown (default 5)")
    p.add_argument("--baseline", type=int, default=3000, help="frames for the construct path (default 3000)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.size_mb <= 0 or args.reps < 1 or args.baseline < 1:
        p.error("--size-mb must be > 0, --reps and --baseline >= 1")

    w = Workload(int(args.size_mb * 1e6), args.seed)
    base = w.prefix(args.baseline)
    nbytes = len(w.stream)
    print(f"workload: {len(w.items)} frames, {nbytes / 1e6:.2f} MB on the wire, mean {nbytes / len(w.items):.1f} "
          f"bytes/frame, {w.corrupted} corrupted (seed {args.seed}); construct path on the first {len(base.items)} "
          f"frames; medians of {args.reps} reps, process CPU time; load average {os.getloadavg()[0]:.2f}")
    print(f"{'operation':<10} {'fast frames/s':>14} {'fast MB/s':>10} {'construct frames/s':>19} "
          f"{'construct MB/s':>15} {'ratio':>7}")
    results: dict[str, float] = {}
    for name, fast, slow in (("encode", fast_encode, construct_encode), ("decode", fast_decode, construct_decode),
                             ("stream", fast_stream, construct_stream)):
        tf = _median_time(fast, w, args.reps)
        ts = _median_time(slow, base, max(1, min(args.reps, 3)))
        ff, fs = len(w.items) / tf, len(base.items) / ts
        mf, ms = nbytes / tf / 1e6, len(base.stream) / ts / 1e6
        results[name] = ff / fs
        print(f"{name:<10} {ff:>14,.0f} {mf:>10.2f} {fs:>19,.0f} {ms:>15.3f} {ff / fs:>6.0f}x")

    # checks that both paths did the same work on the shared prefix
    assert fast_stream(base) == construct_stream(base), "fast and construct receivers disagree"
    assert fast_decode(base) == construct_decode(base)

    packet = m.make_packet(m.SetGoal(int(GoalMode.POSITION), 1_500_000), 0, 1, 7)
    wire = encode_data(10, 0, packet)
    number = 20_000 if len(w.items) > 20_000 else 1000
    enc = _per_frame_us(lambda: encode_data(10, 0, packet), number, args.reps)
    dec = _per_frame_us(lambda: decode_wire(wire), number, args.reps)
    both = _per_frame_us(lambda: decode_wire(encode_data(10, 0, packet)), number, args.reps)
    print(f"typical {len(wire)}-byte SET_GOAL frame: encode {enc:.2f} us, decode {dec:.2f} us, "
          f"encode+decode {both:.2f} us (target <= 1.5 us)")
    st = len(w.items) / _median_time(fast_stream, w, args.reps)
    print(f"stream deframe+decode: {st / 1e6:.2f} M frames/s = {1e6 / st:.2f} us/frame (target >= 1.0 M frames/s), "
          f"{results['stream']:.0f}x the construct path (target >= 20x)")
    buffered, retained, peak = _memory(w)
    print(f"deframer memory (tracemalloc, {READ_SIZE}-byte reads of the stream, then noise, then zero-free noise): "
          f"partial buffer <= {buffered} bytes (bound {Deframer.__module__}.MAX_CHUNK = 269), retained between "
          f"feeds <= {retained} bytes, peak inside one feed {peak} bytes (input split + returned items)")
    return 0


def main() -> None:
    raise SystemExit(run())


if __name__ == "__main__":
    main()


__all__ = ["Workload", "run"]
