"""What the wire allows a control loop: the old loop's wire floor, the cyclic exchange's latency floor and link bound.

Theory of operation
-------------------
Every figure here is computed from frame sizes and line rates (the codec's encoded sizes, ``data_wire_size`` and
the 7-byte ACK, :data:`armbus.bus.link.CONTROL_WIRE_SIZE`); nothing is measured.

* :func:`wire_floor` (the SYNC_WRITE + SYNC_READ loop): the sum of the wire times of every frame one cycle puts
  on the chain, acks included: the SYNC_WRITE on each hop with the slices left for that hop, the SYNC_READ on
  each hop with the records gathered so far, the reply on each hop back, and an ACK per frame. Frames on
  different hops overlap in time, so the measured cycle can undercut this sum.
* :func:`cyclic_budget` (the cyclic exchange): the *latency floor* of one exchange,
  :meth:`armbus.controller.cycles.CycleTiming.floor_ns` (the CYCLE's way down, shrinking, plus the reply's way up,
  growing, plus each joint's forwarding latency), and the *link bound*: a pipelined loop keeps several
  exchanges on the chain at once, so its rate is not limited by the floor but by the busiest link direction.
  Each hop direction carries, per cycle, one data frame and the ACK of the frame going the other way: hop ``h``
  down the CYCLE with the slices of joints ``h..n`` plus the ACK of the reply on that hop; hop ``h`` up the reply
  with the records of joints ``h..n`` plus the ACK of the CYCLE. Hop 1 up (the full reply plus an ACK) is the
  busiest; its bytes per cycle over the line's bytes per second is the highest rate the chain can carry.
* The link bound assumes every ACK comes at once. A hop link is stop-and-wait (one frame in flight), so hop 1 up
  sends the next reply only when the host's ACK of the last one is back, and the host's ACK may wait behind a
  CYCLE on hop 1 down: per cycle hop 1 up is busy for the reply, the ACK, at worst one CYCLE, and the *turnaround*
  (the host reading the reply and writing its ACK, joint 1 taking the ACK): :meth:`CyclicBudget.hop1_round_ns`.
  In simulated time the host answers at once; behind a pty each side adds its wake-up and its processing, a few
  hundred microseconds, which at 1 Mbaud is what separates a 2 ms cycle from the bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from armbus.bus.codec import encode_data
from armbus.bus.cycle import cycle_size, reply_size
from armbus.bus.link import CONTROL_WIRE_SIZE
from armbus.bus.messages import SyncRead, SyncReadReply, SyncRecord, make_packet
from armbus.bus.wire import BITS_PER_BYTE, Address, data_wire_size
from armbus.controller import ops
from armbus.controller.cycles import CycleTiming
from armbus.joints.registers import STATE_BLOCK


def wire_floor(joints: int, baud: int) -> dict[str, float]:
    """Wire time (s) of every frame one SYNC_WRITE + SYNC_READ cycle puts on the chain, summed, acks included."""
    reg, length = STATE_BLOCK
    byte_s = BITS_PER_BYTE / baud
    goals = {a: 0.0 for a in range(1, joints + 1)}
    write = ops.sync_write_goals(goals)
    sw = sr = up = 0
    for hop in range(1, joints + 1):  # hop k carries toward joint k
        src = Address.HOST if hop == 1 else hop - 1
        rest = type(write)(write.reg, write.slice_len, hop, write.data[(hop - 1) * write.slice_len:])
        sw += len(encode_data(0, 0, make_packet(rest, src, Address.BROADCAST, 1))) + CONTROL_WIRE_SIZE
        records = tuple(SyncRecord(a, 0, bytes(length)) for a in range(1, hop))
        read = SyncRead(reg, length, records)
        sr += len(encode_data(0, 0, make_packet(read, src, Address.BROADCAST, 2))) + CONTROL_WIRE_SIZE
    full = SyncReadReply(reg, length, tuple(SyncRecord(a, 0, bytes(length)) for a in range(1, joints + 1)))
    up = joints * (len(encode_data(0, 0, make_packet(full, joints, Address.HOST, 2))) + CONTROL_WIRE_SIZE)
    return {"sync_write_s": sw * byte_s, "sync_read_down_s": sr * byte_s, "reply_up_s": up * byte_s,
            "floor_s": (sw + sr + up) * byte_s, "bytes": sw + sr + up}


@dataclass(frozen=True)
class HopLoad:
    """Bytes one link direction carries per cycle of the cyclic exchange."""

    hop: int  # 1: host - joint 1
    direction: str  # "down" or "up"
    data_bytes: int  # the CYCLE (down) or the CYCLE_REPLY (up) on this hop
    ack_bytes: int  # the ACK of the frame going the other way
    baud: int

    @property
    def bytes(self) -> int:
        return self.data_bytes + self.ack_bytes

    @property
    def max_rate_hz(self) -> float:
        """Cycles per second this direction can carry: its bytes per second over its bytes per cycle."""
        return self.baud / BITS_PER_BYTE / self.bytes

    def describe(self) -> str:
        return (f"hop {self.hop} {self.direction}: {self.bytes} bytes/cycle ({self.data_bytes} data + "
                f"{self.ack_bytes} ack) at {self.baud / 1e6:g} Mbaud")


@dataclass(frozen=True)
class CyclicBudget:
    joints: int
    baud: int
    length: int  # bytes each joint reads back
    floor_ns: int
    hops: tuple[HopLoad, ...]

    @property
    def busiest(self) -> HopLoad:
        return max(self.hops, key=lambda h: (h.bytes / h.baud, h.direction == "up"))

    @property
    def max_rate_hz(self) -> float:
        return self.busiest.max_rate_hz

    def hop1_round_ns(self, turnaround_ns: int = 0, worst: bool = True) -> int:
        """Hop 1 up under stop-and-wait, per cycle: the reply, the host's ACK (behind one CYCLE on hop 1 down
        when ``worst``) and ``turnaround_ns`` (see the module docstring)."""
        down, up = self.hops[0], self.hops[1]
        ns_per_byte = BITS_PER_BYTE * 1_000_000_000 / self.baud
        wire = up.data_bytes + down.ack_bytes + (down.data_bytes if worst else 0)
        return round(wire * ns_per_byte) + turnaround_ns

    def hop1_rate_hz(self, turnaround_ns: int = 0, worst: bool = True) -> float:
        """Cycles per second hop 1 can carry under stop-and-wait with ``turnaround_ns`` per reply."""
        return 1e9 / self.hop1_round_ns(turnaround_ns, worst)

    def utilisation(self, rate_hz: float) -> float:
        """Share of the busiest link direction's capacity a loop at ``rate_hz`` uses."""
        return rate_hz / self.max_rate_hz

    def as_dict(self) -> dict[str, object]:
        return {"floor_ms": self.floor_ns / 1e6, "max_rate_hz": self.max_rate_hz,
                "busiest": self.busiest.describe(),
                "hops": [{"hop": h.hop, "direction": h.direction, "bytes": h.bytes} for h in self.hops]}


def cyclic_budget(joints: int, baud: int, length: int, goals: int | None = None) -> CyclicBudget:
    """Latency floor and per-hop load of one cyclic exchange (every link at ``baud``; ``goals`` slices,
    default one per joint; ``length`` bytes read back per joint)."""
    goals = joints if goals is None else goals
    timing = CycleTiming(host_baud=baud, chain_baud=baud)
    hops = []
    for h in range(1, joints + 1):
        down = data_wire_size(cycle_size(max(0, goals - h + 1)))
        up = data_wire_size(reply_size(joints - h + 1, length))
        hops.append(HopLoad(h, "down", down, CONTROL_WIRE_SIZE, baud))
        hops.append(HopLoad(h, "up", up, CONTROL_WIRE_SIZE, baud))
    return CyclicBudget(joints, baud, length, timing.floor_ns(joints, length, goals), tuple(hops))


def floor_rate_hz(floor_s: float) -> float:
    """Cycles per second a loop that waits for each cycle's whole wire time can run."""
    return 1.0 / floor_s if floor_s > 0 else float("inf")

