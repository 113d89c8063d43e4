"""Chain of relay nodes for link tests, the link benchmark and the lossy-chain campaign.

Theory of operation
-------------------
:class:`ChainNode` is the smallest node that follows the node-driving contract on top of the hop link: one or two
:class:`~armbus.bus.link.LinkEndpoint` plus a :class:`~armbus.bus.router.Router` (the host: port 0 is its DOWN link; a
joint: port 0 UP, port 1 DOWN). It is not a joint (joints/node.py is); it only relays, and keeps a :class:`Ledger` of
numbered test messages so that a run can check: nothing lost without a report, nothing duplicated, nothing reordered,
per stream. :func:`build_chain` joins a host and N joints in a :class:`armbus.hil.kernel.Kernel` with seeded faults; the
last joint has no DOWN link.

Streams: the host sends WRITE packets to the last joint and the last joint sends STATE packets to the host, each
carrying a u32 counter; ``msg_id`` is the counter's low 16 bits. Sources top up their link's queue whenever the
node is drained, so the chain runs under continuous load.

The benchmark over such a chain is :mod:`armbus.tools.bench.link`; the long run under faults is
:mod:`armbus.tools.campaigns.lossychain`.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from armbus.bus.codec import Packet
from armbus.bus.link import DeliveryFailed, LinkConfig, LinkEndpoint
from armbus.bus.messages import Undeliverable
from armbus.bus.router import DOWN, UP, Delivered, LinkNotice, Router
from armbus.bus.wire import Address, MsgType
from armbus.hil.faults import FaultInjector, LinkFaults
from armbus.hil.kernel import Kernel

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
                if link.inflight is not None:
                    held.append(link.inflight)
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
