"""Real-time driver over a socket pair: wall-clock tests, few and tolerant (bounds that load cannot break)."""

from __future__ import annotations

import os
import random
import socket
import statistics
import time
from collections.abc import Iterator

import pytest

from armbus.bus.errors import UsageError
from armbus.bus.messages import Ping, PingReply
from armbus.bus.wire import Address, wire_time_ns
from armbus.hil.probe import LinkProbe
from armbus.hil.realtime import RealtimeArm, realtime_link_config
from armbus.hil.virtual_arm import VirtualArm

pytestmark = pytest.mark.realtime

#: PING frame 14 bytes downstream; ACK (7) + PING_REPLY frame (23) upstream.
PING_WIRE_BYTES = 14 + 7 + 23


def _rig(joints: int, baud: int, paced: bool) -> tuple[RealtimeArm, LinkProbe, socket.socket, socket.socket]:
    a, b = socket.socketpair()
    arm = VirtualArm(joints, baud=baud, seed=3, link_config=realtime_link_config(baud))
    rt = RealtimeArm(arm, a.fileno(), paced=paced).start()
    probe = LinkProbe(b.fileno(), baud)
    return rt, probe, a, b


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[tuple[RealtimeArm, LinkProbe]]:
    joints, baud, paced = request.param
    rt, probe, a, b = _rig(joints, baud, paced)
    try:
        yield rt, probe
    finally:
        rt.stop()
        a.close()
        b.close()


def _ping_rtts(probe: LinkProbe, n: int) -> list[int]:
    probe.open(timeout=5)
    rtts = []
    for _ in range(n):
        t0 = time.monotonic_ns()
        reply = probe.request(Ping(), int(Address.UNASSIGNED), timeout=5)
        rtts.append(time.monotonic_ns() - t0)
        assert isinstance(reply, PingReply) and reply.serial == 0x1001
    return rtts


@pytest.mark.parametrize("rig", [(1, 9600, True)], indirect=True)
def test_paced_round_trip_takes_at_least_the_wire_time(rig: tuple[RealtimeArm, LinkProbe]) -> None:
    rt, probe = rig
    rtts = _ping_rtts(probe, 3)
    assert min(rtts) >= wire_time_ns(PING_WIRE_BYTES, 9600)
    assert rt.stats.host_bytes_in > 0 and rt.stats.host_bytes_out > 0


@pytest.mark.parametrize("rig", [(1, 9600, False)], indirect=True)
def test_unpaced_answers_come_before_the_wire_time(rig: tuple[RealtimeArm, LinkProbe]) -> None:
    rt, probe = rig
    rtts = _ping_rtts(probe, 5)
    assert statistics.median(rtts) < wire_time_ns(PING_WIRE_BYTES, 9600)
    assert rt.call(lambda arm: arm.kernel.now) > 0


@pytest.mark.parametrize("rig", [(2, 1_000_000, True)], indirect=True)
def test_garbage_from_the_host_is_counted_and_the_arm_carries_on(rig: tuple[RealtimeArm, LinkProbe]) -> None:
    rt, probe = rig
    probe.open(timeout=5)
    noise = bytes(random.Random(5).randrange(1, 256) for _ in range(600)) + b"\x00"
    os.write(probe.fd, noise)
    reply = probe.request(Ping(), int(Address.UNASSIGNED), timeout=5)
    assert isinstance(reply, PingReply)
    errors = rt.call(lambda arm: arm.joints[0].links[0].counters)
    assert errors.crc_errors + errors.framing_errors >= 1
    assert rt.call(lambda arm: len(arm.joints)) == 2


def test_stop_is_clean_and_a_closed_peer_stops_the_driver() -> None:
    rt, probe, a, b = _rig(1, 1_000_000, True)
    probe.open(timeout=5)
    b.close()
    deadline = time.monotonic() + 5
    while rt.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not rt.running and rt.error is None
    rt.stop()
    rt.stop()  # idempotent
    a.close()


def test_calls_run_in_the_driver_and_raise_there() -> None:
    rt, _, a, b = _rig(1, 1_000_000, True)
    try:
        assert rt.call(lambda arm: arm.joint(1).serial) == 0x1001
        with pytest.raises(UsageError, match="no joint 7"):
            rt.call(lambda arm: arm.joint(7))
    finally:
        rt.stop()
        a.close()
        b.close()


def test_realtime_needs_the_host_port() -> None:
    class Host:
        def receive_data(self, port: int, data: bytes, now: int) -> None: ...
        def data_to_send(self, port: int, now: int) -> bytes: return b""
        def next_deadline(self) -> int | None: return None
        def handle_timer(self, now: int) -> None: ...

    with pytest.raises(UsageError, match="HostPort"):
        RealtimeArm(VirtualArm(1, host=Host()), 0)
