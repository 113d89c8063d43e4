"""Property tests: the endpoint never raises on line input, and over any fault schedule (loss, duplication,
corruption, reboots) what arrives is an in-order, duplicate-free subsequence of what was sent, and everything
else was reported (DeliveryFailed) or was still inside a side that rebooted."""

from __future__ import annotations

import itertools
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linksim import Pair

from armbus.bus.codec import Packet, encode_control, encode_data
from armbus.bus.link import DeliveryFailed, LinkConfig, LinkEndpoint, PacketReceived
from armbus.bus.linktable import TABLE, Input, LinkState
from armbus.bus.wire import FrameKind, MsgType

CFG = LinkConfig(baud=1_000_000, turnaround_ns=0, max_retries=4, queue_limit=4, boot_quiet_ns=None)


def test_table_is_total() -> None:
    for state in LinkState:
        assert set(TABLE[state]) == set(Input), state


frames = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda k, s, f: encode_control(k, s, f), st.sampled_from(list(FrameKind)[1:]),
              st.integers(0, 255), st.integers(0, 255)),
    st.builds(lambda s, i: encode_data(s, 0, Packet(0, 1, MsgType.PING, i)), st.integers(0, 255),
              st.integers(0, 0xFFFF)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(frames, st.integers(0, 3_000_000)), max_size=40), st.integers(0, 10))
def test_receive_never_raises(inputs: list[tuple[bytes, int]], queued: int) -> None:
    end = LinkEndpoint(CFG, seed=3)
    now = 0
    for i in range(queued):
        end.send(Packet(0, 1, MsgType.PING, i), now)
    for data, dt in inputs:
        now += dt
        end.receive_data(data, now)
        end.data_to_send(now)
        d = end.next_deadline()
        if d is not None and d <= now:
            end.handle_timer(now)
        list(end.events())
    assert end.state in LinkState
    assert end.queue_space >= 0


OPS = st.sampled_from(["ok"] * 6 + ["drop", "dup", "flip"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(OPS, max_size=120),
    st.lists(OPS, max_size=120),
    st.lists(st.tuples(st.integers(0, 40_000_000), st.integers(0, 1)), max_size=4),
    st.integers(0, 2**16),
)
def test_fault_schedules_keep_the_contract(
    ops_a: list[str], ops_b: list[str], reboots: list[tuple[int, int]], flip_seed: int
) -> None:
    ops = (ops_a, ops_b)

    def fault(side: int, index: int, frame: bytes) -> list[bytes]:
        op = ops[side][index] if index < len(ops[side]) else "ok"
        if op == "drop":
            return []
        if op == "dup":
            return [frame, frame]
        if op == "flip":
            pos = (flip_seed + index) % len(frame)
            b = bytearray(frame)
            b[pos] ^= 1 << (flip_seed % 8)
            return [bytes(b)]
        return [frame]

    total = 40
    pair = Pair(LinkEndpoint(CFG, seed=1), LinkEndpoint(CFG, seed=2), fault)
    sent = 0
    delivered: list[int] = []
    failed: set[int] = set()
    lost: set[int] = set()
    boots = 2
    schedule = sorted(reboots)

    def collect() -> None:
        for side in (0, 1):
            for _, ev in pair.events[side]:
                if isinstance(ev, PacketReceived) and side == 1:
                    delivered.append(struct.unpack("<I", ev.packet.payload)[0])
                elif isinstance(ev, DeliveryFailed) and side == 0:
                    failed.add(struct.unpack("<I", ev.packet.payload)[0])
            pair.events[side].clear()

    while pair.now < 2_000_000_000:
        while schedule and schedule[0][0] <= pair.now:
            _, side = schedule.pop(0)
            collect()
            old = pair.ends[side]
            if side == 0:  # the sender loses what it held
                lost.update(struct.unpack("<I", p.payload)[0] for p in old.queued)
                if old._inflight is not None:
                    lost.add(struct.unpack("<I", old._inflight.payload)[0])
            boots += 1
            pair.reboot(side, LinkEndpoint(CFG, seed=boots))
        a = pair.ends[0]
        while sent < total and a.send(Packet(0, 1, MsgType.WRITE, sent, 32, struct.pack("<I", sent)), pair.now):
            sent += 1
        if sent == total and a.idle and not schedule:
            pair.run_until(pair.now + 100_000_000)
            break
        if not pair.step():
            break
        collect()
    collect()
    assert all(x < y for x, y in itertools.pairwise(delivered)), delivered
    missing = set(range(sent)) - set(delivered)
    assert missing <= failed | lost, sorted(missing - failed - lost)
    assert sent == total
