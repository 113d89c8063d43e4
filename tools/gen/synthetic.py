"""A synthetic capture: a seeded host and six joints on a 1 kHz control loop, for tests and a stress benchmark.

Theory of operation
-------------------
A seeded generator writes a capture of a host and a chain of joints: every cycle the host sends a SET_GOAL to each
joint, one READ (replied with READ_REPLY) and a HEARTBEAT; each joint sends a STATE. Every DATA frame crosses each
hop toward its destination and is ACKed on every hop; seq and msg_id advance, payload values vary, one frame in 200
is retransmitted, one chunk in 500 carries line noise, and one frame in 100 is split over two chunks (as reads of a
real port cut frames). Frames are encoded with armbus.bus.codec; blocks are written in bulk (one write per cycle), which
is only faster to generate, not different on disk. Unlike :mod:`armbus.tools.gen.replicate` (recorded traffic) this
stream is made up, but it exercises split frames and noise on every interface.
"""

from __future__ import annotations

import os
import random

from armbus.bus.codec import Packet, encode_control, encode_data
from armbus.bus.messages import Heartbeat, Read, ReadReply, SetGoal, State, make_packet
from armbus.bus.wire import DEFAULT_BAUD, FrameFlag, FrameKind
from armbus.hil.trace.pcapng import TraceWriter, epb_block

#: Six joints: the common arm (LeRobot SO-100/Koch and most 6-DOF arms).
JOINTS = 6
#: One control cycle every 1 ms (1 kHz loop), 10 us per byte at 1 Mbaud (10 bits per byte).
CYCLE_NS = 1_000_000
BYTE_NS = 10_000


class _Generator:
    """State of the synthetic bus: per-direction seq numbers, the clock, the blocks of the current cycle."""

    def __init__(self, writer: TraceWriter, seed: int) -> None:
        self.rng = random.Random(seed)
        self.links = [("host-j1" if j == 1 else f"j{j - 1}-j{j}") for j in range(1, JOINTS + 1)]
        self.ids = {(link, d): writer.interface(link, d) for link in self.links for d in ("down", "up")}
        self.seq = dict.fromkeys(self.ids, 0)
        self.blocks: list[bytes] = []
        self.t = 0
        self.msg_id = 0

    def next_id(self) -> int:
        self.msg_id = (self.msg_id + 1) & 0xFFFF
        return self.msg_id

    def send(self, pkt: Packet, hops: range, down: bool) -> None:
        """``pkt`` crossing ``hops`` (link indices) with an ACK on each."""
        rng, blocks = self.rng, self.blocks
        for h in hops:
            link = self.links[h]
            d_key, a_key = (link, "down" if down else "up"), (link, "up" if down else "down")
            s = self.seq[d_key]
            self.seq[d_key] = (s + 1) & 0xFF
            hop_pkt = pkt._replace(ttl=32 - abs(h))
            frame = encode_data(s, 0, hop_pkt)
            self.t += len(frame) * BYTE_NS
            if rng.random() < 0.002:  # noise on the line before the frame
                frame = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 8))) + b"\x00" + frame
            if rng.random() < 0.01:  # split over two reads
                cut = rng.randrange(1, len(frame))
                blocks.append(epb_block(self.ids[d_key], self.t - 5 * BYTE_NS, frame[:cut]))
                blocks.append(epb_block(self.ids[d_key], self.t, frame[cut:]))
            else:
                blocks.append(epb_block(self.ids[d_key], self.t, frame))
            if rng.random() < 0.005:  # the ACK was lost: retransmission
                self.t += 2 * len(frame) * BYTE_NS
                blocks.append(epb_block(self.ids[d_key], self.t, encode_data(s, FrameFlag.RETRANSMIT, hop_pkt)))
            self.t += 20_000
            blocks.append(epb_block(self.ids[a_key], self.t, encode_control(FrameKind.ACK, s)))

    def cycle(self) -> bytes:
        """One control cycle's blocks."""
        rng = self.rng
        t_cycle = self.t
        for j in range(1, JOINTS + 1):
            goal = SetGoal(1, rng.randrange(-3_000_000, 3_000_000))
            self.send(make_packet(goal, 0, j, self.next_id()), range(j), True)
        j = rng.randrange(1, JOINTS + 1)
        mid = self.next_id()
        self.send(make_packet(Read(0x30, 4), 0, j, mid), range(j), True)
        self.send(make_packet(ReadReply(0x30, rng.randbytes(4)), j, 0, mid), range(j - 1, -1, -1), False)
        for j in range(1, JOINTS + 1):
            st = State(1, rng.randrange(-3_000_000, 3_000_000), rng.randrange(-10_000, 10_000),
                       rng.randrange(-2000, 2000), 300 + rng.randrange(100), 12_000)
            self.send(make_packet(st, j, 0, rng.randrange(65536)), range(j - 1, -1, -1), False)
        self.send(make_packet(Heartbeat(self.t // 1_000_000 & 0xFFFFFFFF), 0, 0xFF, self.next_id()), range(1),
                  True)
        data = b"".join(self.blocks)
        self.blocks.clear()
        self.t = max(self.t, t_cycle + CYCLE_NS)
        return data


def generate(path: str, target_bytes: int, seed: int = 1) -> int:
    """Write a synthetic capture of about ``target_bytes``; return its size."""
    with TraceWriter(path, {"baud": DEFAULT_BAUD, "joints": JOINTS, "seed": seed, "synthetic": 1}) as w:
        gen = _Generator(w, seed)
        size = os.path.getsize(path)
        while size < target_bytes:
            data = gen.cycle()
            w.write_blocks(data)  # whole cycles of whole blocks: same bytes as one write per block, generated faster
            size += len(data)
    return size
