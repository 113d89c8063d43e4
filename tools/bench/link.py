"""Hop link benchmark (``python -m armbus.tools.bench.link``, ``armbus bench link``).

Theory of operation
-------------------
Runs the relay chain of :mod:`armbus.hil.relaychain` at 1 Mbaud, clean and with faults, and prints simulated
seconds per wall second (medians of repeated runs), then measures the link logic alone: one endpoint pair passing
frames directly, CPU time per delivered message (send + encode + deframe + ack + deliver + ack processing).
"""

from __future__ import annotations

import statistics
import struct
import sys
import time

from armbus.bus.codec import Packet
from armbus.bus.link import LinkConfig, LinkEndpoint
from armbus.bus.wire import MsgType
from armbus.hil.faults import LinkFaults
from armbus.hil.relaychain import build_chain, chain_busy

_U32 = struct.Struct("<I")


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def bench_chain(messages: int, faults: LinkFaults | None, seed: int) -> tuple[float, float, int]:
    """(simulated s, wall s, delivered) for ``messages`` per stream through a 6-hop chain at 1 Mbaud."""
    cfg = LinkConfig(baud=1_000_000, boot_quiet_ns=None)
    kernel, nodes, ledger = build_chain(6, config=cfg, faults=faults, seed=seed, per_stream=(messages, messages))
    t0 = time.perf_counter()
    while chain_busy(nodes):
        kernel.run_for(10_000_000)
    wall = time.perf_counter() - t0
    assert not ledger.check(), ledger.check()
    return kernel.now / 1e9, wall, sum(len(v) for v in ledger.delivered.values())


def bench_link_cpu(messages: int) -> float:
    """CPU seconds per delivered message for two endpoints passing bytes directly (no wire model)."""
    a, b = LinkEndpoint(LinkConfig(), seed=1), LinkEndpoint(LinkConfig(), seed=2)
    for _ in range(3):  # handshake
        b.receive_data(a.data_to_send(0), 0)
        a.receive_data(b.data_to_send(0), 0)
    packets = [Packet(0, 1, MsgType.WRITE, i & 0xFFFF, 32, _U32.pack(i)) for i in range(messages)]
    a_events, b_events = a.event_queue(), b.event_queue()  # the live queues: dropped in place, as before
    t0 = time.process_time()
    for p in packets:
        a.send(p, 0)
        b.receive_data(a.data_to_send(0), 0)
        b_events.clear()
        a.receive_data(b.data_to_send(0), 0)
        a_events.clear()
    dt = time.process_time() - t0
    assert b.counters.data_delivered == messages
    return dt / messages


def _reference_us() -> float:
    """A fixed pure-Python workload, timed in the same process: the yardstick for this machine's speed."""
    t0 = time.perf_counter()
    for _ in range(200):
        sum(range(1000))
    return (time.perf_counter() - t0) / 200 * 1e6


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m armbus.tools.bench.link", description=__doc__.splitlines()[0])
    parser.add_argument("reps", nargs="?", type=int, default=5, help="repetitions; medians are printed (default 5)")
    parser.add_argument("messages", nargs="?", type=int, default=5000, help="messages each way (default 5000)")
    parser.add_argument("--quick", action="store_true", help="3 repetitions of 1000 messages")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    reps, n = (3, 1000) if args.quick else (args.reps, args.messages)
    faulty = LinkFaults(drop_frame=0.05, dup_frame=0.01, flip_bit=0.01 / 15)
    ref = _median([_reference_us() for _ in range(reps)])
    print(f"machine reference: sum(range(1000)) takes {ref:.1f} us here (about 10 us on a recent desktop CPU)")
    print(f"6-hop chain, 1 Mbaud, {n} messages each way, medians of {reps} runs")
    for label, faults in (("clean", None), ("5% loss, 1% dup, ~1% corrupt", faulty)):
        ratios, rates = [], []
        for r in range(reps):
            sim, wall, delivered = bench_chain(n, faults, seed=r)
            ratios.append(sim / wall)
            rates.append(delivered / wall)
        print(f"  {label:32s} simulated s per wall s: {_median(ratios):6.1f}   "
              f"delivered msgs per wall s: {_median(rates):8.0f}")
    costs = [bench_link_cpu(20_000) for _ in range(reps)]
    print(f"link logic CPU per delivered message (send+ack+deliver, one hop): {_median(costs) * 1e6:.2f} us "
          f"(min {min(costs) * 1e6:.2f}, max {max(costs) * 1e6:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
