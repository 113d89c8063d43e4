"""Benchmark: how much faster than real time the kernel runs a 6-hop chain under continuous 1 Mbaud traffic.

The host sends frames back to back (every direction of every link stays busy); six store-and-forward nodes pass
them down to a frame echo at the end of the chain, which sends them back. The nodes do as little as possible, so
the figures measure the kernel (events, wire model, fault hook, delivery grouping), not firmware.

Prints, per granularity and frame size, the median over repetitions of simulated time / wall time (the
real-time factor; the target is >= 20 for a 6-hop chain at 1 Mbaud), and the ratio against the BYTE baseline
run side by side in the same process. Run: .venv/bin/python tests/hil_kernel/bench_kernel.py
"""

from __future__ import annotations

import statistics
import time

from armbus.hil.faults import LinkFaults
from armbus.hil.kernel import Granularity, Kernel

HOPS = 6
BAUD = 1_000_000
SIM_NS = 200_000_000  # 200 ms of simulated time per repetition
REPS = 5


class Source:
    """Sends one frame every wire-time of a frame, so the line never idles."""

    ports = (0,)

    def __init__(self, frame: bytes, period_ns: int) -> None:
        self.frame, self.period, self.next, self.due = frame, period_ns, 0, False
        self.received = 0

    def receive_data(self, port: int, data: bytes, now: int) -> None:
        self.received += data.count(0)

    def data_to_send(self, port: int, now: int) -> bytes:
        if self.due:
            self.due = False
            return self.frame
        return b""

    def next_deadline(self) -> int | None:
        return self.next

    def handle_timer(self, now: int) -> None:
        self.due = True
        self.next = now + self.period


class Forwarder:
    """Store-and-forward of complete frames between ports 0 and 1 (reflect: back out of the same port)."""

    ports = (0, 1)

    def __init__(self, reflect: bool = False) -> None:
        self.rx = [bytearray(), bytearray()]
        self.tx = [bytearray(), bytearray()]
        self.reflect = reflect

    def receive_data(self, port: int, data: bytes, now: int) -> None:
        buf = self.rx[port]
        buf += data
        k = buf.rfind(0)
        if k >= 0:
            self.tx[port if self.reflect else 1 - port] += buf[: k + 1]
            del buf[: k + 1]

    def data_to_send(self, port: int, now: int) -> bytes:
        tx = self.tx[port]
        if not tx:
            return b""
        out = bytes(tx)
        tx.clear()
        return out

    def next_deadline(self) -> int | None:
        return None

    def handle_timer(self, now: int) -> None:
        pass


def build(granularity: Granularity, size: int, faults: LinkFaults | None) -> tuple[Kernel, Source]:
    k = Kernel(granularity=granularity, seed=1)
    if faults is not None:
        k.faults.default = faults
    src = Source(bytes(i % 255 + 1 for i in range(size - 1)) + b"\x00", size * 10 * 10**9 // BAUD)
    k.add_node("host", src)
    prev, port = "host", 0
    for h in range(1, HOPS + 1):
        k.add_node(f"j{h}", Forwarder(reflect=h == HOPS))
        k.connect(prev, port, f"j{h}", 0, baud=BAUD, turnaround_ns=1_000)
        prev, port = f"j{h}", 1
    return k, src


def factor(granularity: Granularity, size: int, faults: LinkFaults | None = None) -> tuple[float, int]:
    k, src = build(granularity, size, faults)
    t0 = time.perf_counter()
    k.run_until(SIM_NS)
    wall = time.perf_counter() - t0
    return SIM_NS / 1e9 / wall, src.received


def main() -> None:
    print(f"{HOPS}-hop chain, {BAUD} baud, continuous traffic both ways, {SIM_NS / 1e6:.0f} ms simulated, "
          f"median of {REPS}")
    print(f"{'frame':>6} {'granularity':>12} {'x real time':>12} {'vs BYTE':>8} {'frames back':>12}")
    for size in (20, 64, 270):
        results: dict[str, list[float]] = {}
        back = {}
        for _ in range(REPS):
            for g in Granularity:
                f, n = factor(g, size)
                results.setdefault(g.value, []).append(f)
                back[g.value] = n
            f, n = factor(Granularity.FRAME, size, LinkFaults(drop_byte=1e-4, dup_frame=0.01))
            results.setdefault("frame+faults", []).append(f)
            back["frame+faults"] = n
        base = statistics.median(results["byte"])
        for name, values in results.items():
            med = statistics.median(values)
            print(f"{size:>6} {name:>12} {med:>12.1f} {med / base:>8.1f} {back[name]:>12}")


if __name__ == "__main__":
    main()
