"""A tiny two-endpoint wire for link tests, stepped in simulated time (aioquic style: loss = not delivering).

Each direction is a FIFO line: a frame handed over at ``t`` starts when the line is free and arrives
``wire_ns(len)`` later, one delivery per frame. ``fault(direction, index, frame) -> list[bytes]`` may return
``[]`` (lose it), ``[frame, frame]`` (duplicate it) or altered bytes; it defaults to delivering as is.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from armbus.bus.link import LinkEndpoint, LinkEvent

Fault = Callable[[int, int, bytes], list[bytes]]


class Pair:
    def __init__(self, a: LinkEndpoint, b: LinkEndpoint, fault: Fault | None = None) -> None:
        self.ends = (a, b)
        self.fault = fault
        self.now = 0
        self.busy = [0, 0]
        self.frames = [0, 0]
        self.heap: list[tuple[int, int, int, bytes]] = []  # (time, order, destination, bytes)
        self.order = 0
        self.events: tuple[list[tuple[int, LinkEvent]], list[tuple[int, LinkEvent]]] = ([], [])
        self.drain()

    def drain(self) -> None:
        for side, end in enumerate(self.ends):
            for ev in end.events():
                self.events[side].append((self.now, ev))
            data = end.data_to_send(self.now)
            if not data:
                continue
            for piece in data.split(b"\x00")[:-1]:
                frame = piece + b"\x00"
                index = self.frames[side]
                self.frames[side] += 1
                copies = self.fault(side, index, frame) if self.fault else [frame]
                for copy in copies:
                    start = max(self.now, self.busy[side])
                    self.busy[side] = start + end.config.wire_ns(len(copy))
                    self.order += 1
                    heapq.heappush(self.heap, (self.busy[side], self.order, 1 - side, copy))
            for ev in end.events():
                self.events[side].append((self.now, ev))

    def reboot(self, side: int, end: LinkEndpoint) -> None:
        """Replace one side by a fresh endpoint (a power cycle); bytes already on the line still arrive."""
        ends = list(self.ends)
        ends[side] = end
        self.ends = (ends[0], ends[1])
        self.drain()

    def next_time(self) -> int | None:
        times = [d for d in (e.next_deadline() for e in self.ends) if d is not None]
        if self.heap:
            times.append(self.heap[0][0])
        return min(times) if times else None

    def step(self) -> bool:
        self.drain()  # anything the test queued since the last step goes out now
        t = self.next_time()
        if t is None:
            return False
        self.now = max(self.now, t)
        while self.heap and self.heap[0][0] <= self.now:
            _, _, dst, data = heapq.heappop(self.heap)
            self.ends[dst].receive_data(data, self.now)
            self.drain()
        for end in self.ends:
            d = end.next_deadline()
            if d is not None and d <= self.now:
                end.handle_timer(self.now)
        self.drain()
        return True

    def run_until(self, t: int) -> None:
        while True:
            nt = self.next_time()
            if nt is None or nt > t:
                break
            self.step()
        self.now = max(self.now, t)

    def run_while(self, busy: Callable[[], bool], limit_ns: int) -> None:
        end = self.now + limit_ns
        while busy():
            nt = self.next_time()
            if nt is None or nt > end:
                break
            self.step()

    def received(self, side: int) -> list[object]:
        from armbus.bus.link import PacketReceived

        return [ev.packet for _, ev in self.events[side] if isinstance(ev, PacketReceived)]
