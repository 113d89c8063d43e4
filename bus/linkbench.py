"""Chain of relay nodes for link tests and the link benchmark (``python -m bus.linkbench``).

Theory of operation
-------------------
:class:`ChainNode` is the smallest node that follows the node-driving contract on top of the hop link: one or two
:class:`~bus.link.LinkEndpoint` plus a :class:`~bus.router.Router` (the host: port 0 is its DOWN link; a joint:
port 0 UP, port 1 DOWN). It is not a joint (joints/node.py is); it only relays, and keeps a :class:`Ledger` of
numbered test messages so that a run can check: nothing lost without a report, nothing duplicated, nothing
reordered, per stream. :func:`build_chain` joins a host and N joints in a :class:`hil.kernel.Kernel` with seeded
faults; the last joint has no DOWN link.

Streams: the host sends WRITE packets to the last joint and the last joint sends STATE packets to the host, each
carrying a u32 counter; ``msg_id`` is the counter's low 16 bits. Sources top up their link's queue whenever the
node is drained, so the chain runs under continuous load.

The benchmark (``main``) runs such a chain at 1 Mbaud, clean and with faults, and prints simulated seconds per wall
second (medians of repeated runs), then measures the link logic alone: one endpoint pair passing frames directly,
CPU time per delivered message (send + encode + deframe + ack + deliver + ack processing).
"""

from __future__ import annotations

import itertools
import statistics
import struct
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from bus.codec import Packet
from bus.link import DeliveryFailed, LinkConfig, LinkEndpoint
from bus.messages import Undeliverable
from bus.router import DOWN, UP, Delivered, LinkNotice, Router
from bus.wire import Address, MsgType
from hil.faults import FaultInjector, LinkFaults
from hil.kernel import Kernel

_U32 = struct.Struct("<I")
DOWNSTREAM, UPSTREAM = "down", "up"  # stream names: host -> last joint, last joint -> host


@dataclass
class Ledger:
    """What every stream sent, delivered, and had reported as failed (or lost inside a rebooted node)."""

    sent: dict[str, int] = field(default_factory=lambda: {DOWNSTREAM: 0, UPSTREAM: 0})
    delivered: dict[str, list[int]] = field(default_factory=lambda: {DOWNSTREAM: [], UPSTREAM: []})
    reported: dict[str, set[int]] = field(default_factory=lambda: {DOWNSTREAM: set(), UPSTREAM: set()})
    lost_in_reboot: dict[str, set[int]] = field(default_factory=lambda: {DOWNSTREAM: set(), UPSTREAM: set()})
    give_ups: int = 0  # DeliveryFailed events of stream packets anywhere (each must become a report)

    def stream_of(self, packet: Packet) -> str | None:
        if packet.type == MsgType.WRITE:
            return DOWNSTREAM
        if packet.type == MsgType.STATE:
            return UPSTREAM
        return None

    def counter(self, stream: str, msg_id: int) -> int:
        """The most recent counter sent on ``stream`` with this msg_id (ids wrap at 65536)."""
        last = self.sent[stream] - 1
        return last - ((last - msg_id) & 0xFFFF)

    def account_lost(self, packet: Packet) -> None:
        """``packet`` was held by a node that rebooted: its stream message (or the one it reported) is lost."""
        stream = self.stream_of(packet)
        if stream is not None:
            self.lost_in_reboot[stream].add(_U32.unpack(packet.payload)[0])
        elif packet.type == MsgType.UNDELIVERABLE:
            r = Undeliverable.unpack(packet.payload)
            s = self.stream_of(Packet(r.orig_src, r.orig_dst, r.orig_type, r.orig_msg_id))
            if s is not None:
                self.lost_in_reboot[s].add(self.counter(s, r.orig_msg_id))

    def check(self) -> list[str]:
        """Problems found; empty if every stream is in order, duplicate-free and fully accounted for."""
        problems = []
        for stream, got in self.delivered.items():
            bad = next((i for i, (a, b) in enumerate(itertools.pairwise(got)) if b <= a), None)
            if bad is not None:
                problems.append(f"{stream}: out of order or duplicate at index {bad}: {got[bad]}, {got[bad + 1]}")
            missing = set(range(self.sent[stream])) - set(got)
            silent = missing - self.reported[stream] - self.lost_in_reboot[stream]
            if silent:
                problems.append(f"{stream}: {len(silent)} lost without a report, first {sorted(silent)[:5]}")
        return problems


class ChainNode:
    """Host (address 0, DOWN link only) or relay joint (UP and DOWN links) for chain tests and benchmarks."""

    def __init__(
        self, address: int, config: LinkConfig, seed: int, *, up: bool, down: bool, ledger: Ledger | None = None
    ) -> None:
        self.address = address
        self.config = config
        self.ledger = ledger
        self.has = (up, down)
        self.ports = (0,) if not up else (0, 1)
        self.boots = 0
        self.seed = seed
        self.quota = 0  # stream messages this node still has to originate
        self.delivered = 0
        self.target = 0  # the last joint's address, for the host's stream
        self._boot()

    def _boot(self) -> None:
        seed = self.seed * 1000 + self.boots
        up = LinkEndpoint(self.config, seed=2 * seed, name=f"{self.address}.up") if self.has[0] else None
        down = LinkEndpoint(self.config, seed=2 * seed + 1, name=f"{self.address}.down") if self.has[1] else None
        self.links = (up, down)
        self.router = Router(self.address, up, down)
        # port -> link: the host's port 0 is its DOWN link
        self.by_port = {0: down} if not self.has[0] else {0: up, 1: down}
        self.boots += 1

    def reboot(self) -> list[Packet]:
        """Lose all state (a power cycle); returns the packets this node held (queued, in flight, reports)."""
        held: list[Packet] = list(self.router.backlog)
        for link in self.links:
            if link is not None:
                held.extend(link.queued)
                if link._inflight is not None:
                    held.append(link._inflight)
        self._boot()
        return held

    # -- node-driving contract ----------------------------------------------------------------------------
    def receive_data(self, port: int, data: bytes, now: int) -> None:
        link = self.by_port.get(port)
        if link is not None:
            link.receive_data(data, now)
            self._pump(now)

    def data_to_send(self, port: int, now: int) -> bytes:
        if self.quota and port == self.ports[0]:
            self._originate(now)
        link = self.by_port.get(port)
        return link.data_to_send(now) if link is not None else b""

    def next_deadline(self) -> int | None:
        ds = [d for d in (link.next_deadline() for link in self.links if link is not None) if d is not None]
        return min(ds) if ds else None

    def handle_timer(self, now: int) -> None:
        for link in self.links:
            if link is not None:
                d = link.next_deadline()
                if d is not None and d <= now:
                    link.handle_timer(now)
        self._pump(now)

    # -- traffic ------------------------------------------------------------------------------------------
    def _originate(self, now: int) -> None:
        ledger = self.ledger
        assert ledger is not None
        stream = DOWNSTREAM if self.address == Address.HOST else UPSTREAM
        link = self.links[DOWN if stream == DOWNSTREAM else UP]
        assert link is not None
        while self.quota and link.queue_space > 0:
            n = ledger.sent[stream]
            if stream == DOWNSTREAM:
                p = Packet(Address.HOST, self.target, MsgType.WRITE, n & 0xFFFF, 32, _U32.pack(n))
            else:
                p = Packet(self.address, Address.HOST, MsgType.STATE, n & 0xFFFF, 32, _U32.pack(n))
            if not self.router.send(p, now):
                break
            ledger.sent[stream] += 1
            self.quota -= 1
        self._pump(now)

    def _pump(self, now: int) -> None:
        events = self.router.pump(now)
        if not events:
            return
        ledger = self.ledger
        for ev in events:
            if isinstance(ev, Delivered):
                p = ev.packet
                self.delivered += 1
                if ledger is None:
                    continue
                stream = ledger.stream_of(p)
                if stream is not None:
                    ledger.delivered[stream].append(_U32.unpack(p.payload)[0])
                elif p.type == MsgType.UNDELIVERABLE:
                    r = Undeliverable.unpack(p.payload)
                    orig = Packet(r.orig_src, r.orig_dst, r.orig_type, r.orig_msg_id)
                    s = ledger.stream_of(orig)
                    if s is not None:
                        ledger.reported[s].add(ledger.counter(s, r.orig_msg_id))
            elif ledger is not None and isinstance(ev, LinkNotice) and isinstance(ev.event, DeliveryFailed):
                p = ev.event.packet
                s = ledger.stream_of(p)
                if s is not None:  # the originator's own give-up: it knows, no report needed
                    ledger.reported[s].add(_U32.unpack(p.payload)[0])


def build_chain(
    joints: int, *, config: LinkConfig, faults: LinkFaults | None = None, seed: int = 0,
    per_stream: tuple[int, int] = (0, 0), ledger: Ledger | None = None,
) -> tuple[Kernel, list[ChainNode], Ledger]:
    """Host + ``joints`` relays in a line; the host sends ``per_stream[0]`` messages to the last joint, which
    sends ``per_stream[1]`` to the host."""
    ledger = ledger if ledger is not None else Ledger()
    injector = FaultInjector(seed, faults)
    kernel = Kernel(faults=injector, seed=seed)
    nodes = [ChainNode(0, config, seed, up=False, down=True, ledger=ledger)]
    for addr in range(1, joints + 1):
        nodes.append(ChainNode(addr, config, seed + addr, up=True, down=addr < joints, ledger=ledger))
    for node in nodes:
        kernel.add_node(f"n{node.address}", node)
    for addr in range(1, joints + 1):
        kernel.connect(f"n{addr - 1}", 0 if addr == 1 else 1, f"n{addr}", 0, baud=config.baud)
    nodes[0].target = joints
    nodes[0].quota, nodes[-1].quota = per_stream
    for node in nodes:
        kernel.wake(f"n{node.address}")
    return kernel, nodes, ledger


def chain_busy(nodes: Iterable[ChainNode]) -> bool:
    """True while any node has traffic to originate or any link holds a packet."""
    for node in nodes:
        if node.quota:
            return True
        for link in node.links:
            if link is not None and not link.idle:
                return True
    return False


# ------------------------------------------------------------------------------------------------ benchmark
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
    t0 = time.process_time()
    for p in packets:
        a.send(p, 0)
        b.receive_data(a.data_to_send(0), 0)
        b._events.clear()
        a.receive_data(b.data_to_send(0), 0)
        a._events.clear()
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

    parser = argparse.ArgumentParser(prog="python -m bus.linkbench", description=__doc__.splitlines()[0])
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
