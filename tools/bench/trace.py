"""Benchmark: read + decode + stats throughput over a 100 MB capture of recorded link traffic (MB of file per second).

Theory of operation
-------------------
The capture is made of real link traffic patterns: one VirtualArm session is recorded through the kernel tap (the
``armbus demo`` session: enumeration and pings, a 200 Hz SYNC_WRITE trajectory sampled by SYNC_READ, a noisy cable
with retransmissions and line errors, a joint reboot and recovery, e-stop; about 15 000 frames on 12 interfaces)
and repeated with shifted times and msg_ids (:mod:`armbus.tools.gen.replicate`) up to the requested size. ``--session``
takes any other capture as the template; ``--synthetic`` uses the made-up 1 kHz stream of
:mod:`armbus.tools.gen.synthetic` instead (frames split over reads on every interface: the slower decode path).

Measured, as medians of ``--runs`` repetitions in this process: read, decode, stats, and the whole
``read_trace -> decode_trace -> compute`` path, in wall time and in process CPU time (the figure to compare on a
busy machine). Baselines in the same run: the reference decoder (every interface through one
``armbus.bus.deframer.Deframer``, :mod:`armbus.hil.trace.reference`) with the same reader and statistics -- what
``armbus trace decode``/``stats`` ran before the columnar decoder -- and one ``Deframer.feed`` over all wire bytes. The
share of distinct pieces (the best hit rate a decode cache could have) is printed for the session and for the capture.

    python -m armbus.tools.bench.trace            # ~100 MB, 3 runs
    python -m armbus.tools.bench.trace --mb 10 --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import TypeVar

from armbus.bus.deframer import Deframer
from armbus.hil.trace.decode import decode_trace
from armbus.hil.trace.reader import read_trace
from armbus.hil.trace.reference import decode_trace_reference
from armbus.hil.trace.stats import compute
from armbus.tools.gen.replicate import distinct_pieces, record_demo_session, replicate
from armbus.tools.gen.synthetic import generate

T = TypeVar("T")


def _median_time(fn: Callable[[], T], runs: int, cpu: list[float] | None = None) -> tuple[float, T]:
    """Median wall time of ``runs`` calls, and the last result; the median CPU time is appended to ``cpu``."""
    times, cpus = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    if cpu is not None:
        cpu.append(statistics.median(cpus))
    return statistics.median(times), result


def _capture(path: str, tmp: str, args: argparse.Namespace) -> str:
    """Write the benchmark capture; return a line describing it."""
    target = int(args.mb * 1e6)
    if args.synthetic:
        size = generate(path, target)
        return f"synthetic 1 kHz stream, {size / 1e6:.1f} MB"
    session = args.session or str(record_demo_session(os.path.join(tmp, "session")))
    n, distinct = distinct_pieces(read_trace(session))
    size, k = replicate(session, path, target)
    source = "armbus demo session" if not args.session else session
    return (f"{source} ({os.path.getsize(session) / 1e6:.2f} MB, {n} pieces, {distinct / n:.0%} distinct) "
            f"x {k} replicas = {size / 1e6:.1f} MB")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="decode + stats throughput over a capture of recorded link traffic")
    p.add_argument("--mb", type=float, default=100.0, help="capture size in MB (default 100)")
    p.add_argument("--runs", type=int, default=3, help="repetitions; the median is printed (default 3)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--session", help="capture to replicate (default: record the armbus demo session)")
    src.add_argument("--synthetic", action="store_true", help="the synthetic 1 kHz stream instead")
    args = p.parse_args(argv)
    if args.runs < 1 or args.mb <= 0:
        p.error("--runs and --mb must be positive")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.pcapng")
        t0 = time.perf_counter()
        what = _capture(path, tmp, args)
        size = os.path.getsize(path)
        print(f"generated {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s: {what}")
        cpu: list[float] = []
        t_read, trace = _median_time(lambda: read_trace(path), args.runs, cpu)
        t_dec, table = _median_time(lambda: decode_trace(trace), args.runs, cpu)
        t_stats, _ = _median_time(lambda: compute(table), args.runs, cpu)
        t_full, _ = _median_time(lambda: compute(decode_trace(read_trace(path))), args.runs, cpu)
        t_ref, _ = _median_time(lambda: compute(decode_trace_reference(read_trace(path))), args.runs, cpu)
        mv = memoryview(trace.buffer)
        wire = b"".join(mv[o:o + n] for o, n in zip(trace.chunk_off.tolist(), trace.chunk_len.tolist(), strict=True))
        t_base, items = _median_time(lambda: Deframer().feed(wire), args.runs, cpu)
        n, distinct = distinct_pieces(trace)
        mb = size / 1e6
        c_full, c_ref, c_base = cpu[3], cpu[4], cpu[5]
        print(f"{len(table)} rows, {len(items)} deframer items, {len(wire) / 1e6:.1f} MB of wire bytes "
              f"in {len(trace)} chunks; {distinct / n:.0%} of the pieces distinct")
        print(f"read {t_read:.2f} s, decode {t_dec:.2f} s, stats {t_stats:.2f} s (medians of {args.runs} runs; "
              f"CPU {cpu[0]:.2f} / {cpu[1]:.2f} / {cpu[2]:.2f} s)")
        print(f"read+decode+stats: {t_full:.2f} s = {mb / t_full:.1f} MB/s of capture, "
              f"{len(table) / t_full / 1e6:.2f} M frames/s (CPU {c_full:.2f} s = {mb / c_full:.1f} MB/s)")
        print(f"baseline, reference decoder (one Deframer per interface) + the same read and stats: {t_ref:.2f} s = "
              f"{mb / t_ref:.1f} MB/s (CPU {c_ref:.2f} s = {mb / c_ref:.1f} MB/s); read+decode+stats takes "
              f"{t_full / t_ref:.2f}x its time ({c_full / c_ref:.2f}x its CPU)")
        print(f"baseline, one Deframer.feed over the same wire bytes: {t_base:.2f} s = {mb / t_base:.1f} MB/s "
              f"(CPU {c_base:.2f} s); read+decode+stats takes {t_full / t_base:.2f}x the baseline")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} during the run")


if __name__ == "__main__":
    main()
