"""USB-serial adapter models: exact delivery instants of chosen byte patterns, spec parsing, seeding, and the model
between the host and joint 1 of a virtual arm in simulated time."""

from __future__ import annotations

import pytest

from armbus.bus.errors import UsageError
from armbus.bus.link import LinkConfig
from armbus.bus.messages import Ping
from armbus.bus.wire import NS_PER_MS, NS_PER_US
from armbus.controller.host import HostConfig, HostNode
from armbus.controller.ports import HOST_SLACK_NS, USB_FRAME_NS
from armbus.hil.adapter import AdapterSpec, UsbAdapter, parse_adapter
from armbus.hil.simarm import SimArm
from armbus.hil.virtual_arm import VirtualArm
from armbus.hil.wire import Direction

BYTE_NS = 10 * NS_PER_US  # one byte at 1 Mbaud


def feed(a: UsbAdapter, n: int, start: int) -> int:
    """``n`` bytes from the line back to back at 1 Mbaud, the first arriving at ``start + BYTE_NS``; returns the
    arrival of the last."""
    for k in range(n):
        a.from_line(bytes([k % 255 + 1]), start + (k + 1) * BYTE_NS)
    return start + n * BYTE_NS


def drain(a: UsbAdapter) -> list[tuple[int, int]]:
    """(instant, data bytes) of every packet the host sees, following the model's deadlines."""
    seen = []
    while (t := a.next_deadline()) is not None:
        seen += [(t, len(p)) for p in a.to_host(t)]
        a.to_line(t)
    return seen


def frame_after(a: UsbAdapter, t: int) -> int:
    return a.frame_at_or_after(t)


def restart_timer(a: UsbAdapter, at: int) -> int:
    """Send one byte through ``a``; the instant the host sees it is where the latency timer restarted."""
    a.from_line(b"\x00", at)
    ((timer, n),) = drain(a)
    assert n == 1 and at <= timer <= at + a.spec.latency_ms * NS_PER_MS
    return timer


def test_a_short_reply_on_ftdi_waits_for_the_latency_timer() -> None:
    a = UsbAdapter(parse_adapter("ftdi:latency=16ms"), seed=3)
    timer = restart_timer(a, 5 * NS_PER_MS)
    feed(a, 10, timer + 100 * NS_PER_US)  # a 10-byte reply right after the last packet
    assert a.to_host(timer + 15 * NS_PER_MS) == []
    assert a.next_deadline() == timer + 16 * NS_PER_MS
    assert drain(a) == [(timer + 16 * NS_PER_MS, 10)]


def test_a_200_byte_burst_on_ftdi_leaves_in_62_byte_packets_at_frame_starts_then_the_rest_at_the_timer() -> None:
    a = UsbAdapter(parse_adapter("ftdi:latency=16ms"), seed=1)
    f0 = frame_after(a, 10 * NS_PER_MS)
    feed(a, 200, f0 + 50 * NS_PER_US)  # bytes 0..199 arrive from f0 + 60 us to f0 + 2.05 ms
    ms = NS_PER_MS
    assert drain(a) == [(f0 + ms, 62), (f0 + 2 * ms, 62), (f0 + 3 * ms, 62), (f0 + 19 * ms, 14)]
    assert a.packets_in == 4 and a.max_backlog >= 76


def test_cdc_acm_sends_what_it_has_at_the_next_frame() -> None:
    a = UsbAdapter(parse_adapter("cdc-acm"), seed=2)
    f0 = frame_after(a, 3 * NS_PER_MS)
    feed(a, 10, f0 + 100 * NS_PER_US)
    assert drain(a) == [(f0 + NS_PER_MS, 10)]  # a short packet: the host has it at the next frame
    feed(a, 200, f0 + 10 * NS_PER_MS + 50 * NS_PER_US)
    f10, ms = f0 + 10 * NS_PER_MS, NS_PER_MS
    assert drain(a) == [(f10 + ms, 64), (f10 + 2 * ms, 64), (f10 + 3 * ms, 64), (f10 + 4 * ms, 8)]
    a.from_line(b"x", f0 + 20 * NS_PER_MS)  # a byte that arrives exactly at a frame start makes that poll
    assert a.to_host(f0 + 20 * NS_PER_MS) == [b"x"]


def test_ftdi_at_1_ms_hands_over_a_reply_at_the_next_frame() -> None:
    a = UsbAdapter(parse_adapter("ftdi:latency=1ms"), seed=4)
    f0 = frame_after(a, 7 * NS_PER_MS)
    feed(a, 20, f0 + 300 * NS_PER_US)
    assert drain(a) == [(f0 + NS_PER_MS, 20)]


def test_a_reply_that_straddles_an_ftdi_expiry_is_split_and_its_tail_waits_a_whole_period() -> None:
    a = UsbAdapter(parse_adapter("ftdi:latency=4ms"), seed=5)
    timer = restart_timer(a, 2 * NS_PER_MS)
    feed(a, 20, timer + 4 * NS_PER_MS - 105 * NS_PER_US)  # 10 bytes before the next expiry, 10 after it
    assert drain(a) == [(timer + 4 * NS_PER_MS, 10), (timer + 8 * NS_PER_MS, 10)]


def test_host_bytes_leave_in_64_byte_packets_at_the_frames_after_the_write() -> None:
    a = UsbAdapter(parse_adapter("ftdi"), seed=6)
    f0 = frame_after(a, NS_PER_MS)
    a.from_host(bytes(14), f0)  # written exactly at a frame start: that frame's schedule is already built
    assert a.to_line(f0) == b"" and a.next_deadline() == f0 + NS_PER_MS
    assert a.to_line(f0 + NS_PER_MS) == bytes(14)
    a.from_host(bytes(range(150)), f0 + 5 * NS_PER_MS + 1)
    assert a.to_line(f0 + 6 * NS_PER_MS) == bytes(range(64))
    assert a.to_line(f0 + 7 * NS_PER_MS) == bytes(range(64, 128))
    assert a.to_line(f0 + 8 * NS_PER_MS) == bytes(range(128, 150))
    assert a.packets_out == 4 and a.next_deadline() is None


def test_the_frame_phase_and_jitter_come_from_the_seed_and_are_logged() -> None:
    def run(seed: int) -> tuple[int, list[tuple[int, int]], list[str]]:
        log: list[str] = []
        a = UsbAdapter(parse_adapter("cdc-acm:jitter=300us"), seed=seed, record=lambda t, op, d: log.append(d))
        for i in range(20):
            feed(a, 5, i * 2 * NS_PER_MS)
        return a.phase_ns, drain(a), log

    phase, seen, log = run(7)
    assert run(7) == (phase, seen, log)
    assert run(8)[0] != phase
    assert 0 <= phase < USB_FRAME_NS and "frames start at" in log[0]
    assert len(log) == 1 + len(seen) and all("late" in line for line in log[1:])
    instants = [t for t, _ in seen]
    assert instants == sorted(instants)  # jitter never reorders packets
    lateness = [(t - phase) % USB_FRAME_NS for t in instants]
    assert any(x > 0 for x in lateness) and all(x <= 300 * NS_PER_US for x in lateness)


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        (None, AdapterSpec()),
        ("ideal", AdapterSpec()),
        ("ftdi", AdapterSpec("ftdi", 16)),
        ("FTDI:latency=1ms", AdapterSpec("ftdi", 1)),
        ("ftdi:latency=2", AdapterSpec("ftdi", 2)),  # a bare latency is in ms, as in sysfs
        ("ftdi:latency=4000us,jitter=0.2ms", AdapterSpec("ftdi", 4, 200 * NS_PER_US)),
        ("cdc-acm:jitter=50us", AdapterSpec("cdc-acm", jitter_ns=50 * NS_PER_US)),
    ],
)
def test_specs_parse_and_print_canonically(text: str | None, spec: AdapterSpec) -> None:
    assert parse_adapter(text) == spec
    assert parse_adapter(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prolific", "unknown model 'prolific'; known: ideal, ftdi, cdc-acm"),
        ("ftdi:latency=16kg", "bad unit 'kg' in latency=16kg; use one of ns, us, ms, s"),
        ("ftdi:latency=0ms", r"latency 0 ms is out of range: .* 1\.\.255"),
        ("ftdi:latency=256ms", r"latency 256 ms is out of range"),
        ("ftdi:latency=1.5ms", "whole milliseconds"),
        ("ftdi:latency=fast", "is not a duration"),
        ("ftdi:latency", "needs a value"),
        ("ftdi:latency=1ms,latency=2ms", "latency given twice"),
        ("cdc-acm:latency=1ms", "cdc-acm has no option 'latency'"),
        ("ideal:jitter=1ms", "ideal has no option 'jitter' .it takes no options"),
        ("ftdi:jitter=5", "jitter=5 has no unit"),
        ("ftdi:jitter=1s", "jitter 1s is out of range"),
    ],
)
def test_bad_specs_are_clear_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_adapter(text)


def test_ftdi_refuses_a_baud_above_the_chip_and_ideal_has_no_model() -> None:
    with pytest.raises(UsageError, match="above the chip's 3000000 baud"):
        VirtualArm(1, baud=4_000_000, adapter="ftdi")
    with pytest.raises(UsageError, match="no adapter"):
        UsbAdapter(AdapterSpec())
    assert VirtualArm(1, baud=4_000_000, adapter="cdc-acm").adapter is not None


def test_the_host_turnaround_covers_the_adapter() -> None:
    assert parse_adapter("ftdi:latency=16ms").host_turnaround_ns == HOST_SLACK_NS + 16 * NS_PER_MS + USB_FRAME_NS
    assert parse_adapter("cdc-acm").host_turnaround_ns == HOST_SLACK_NS + USB_FRAME_NS
    assert parse_adapter("ideal").host_turnaround_ns is None


def _sim(spec: str, joints_wait: bool) -> SimArm:
    s = parse_adapter(spec)
    turnaround = s.host_turnaround_ns or LinkConfig().turnaround_ns
    host = HostNode(HostConfig(link=LinkConfig(turnaround_ns=turnaround)))
    joints = LinkConfig(turnaround_ns=turnaround) if joints_wait else None
    arm = SimArm(VirtualArm(2, host=host, seed=1, adapter=spec, link_config=joints), timeout=1.0)
    arm.enumerate()
    return arm


def _ping_round_trips(arm: SimArm, n: int) -> list[int]:
    out = []
    for _ in range(n):
        t0 = arm.now()
        arm.request(Ping(), 1)
        out.append(arm.now() - t0)
    return out


def test_back_to_back_requests_lock_to_the_ftdi_latency_timer() -> None:
    rtts = _ping_round_trips(_sim("ftdi:latency=16ms", joints_wait=True), 8)
    assert rtts[1:] == [16 * NS_PER_MS] * 7
    ideal = _ping_round_trips(_sim("ideal", joints_wait=False), 4)[-1]
    for spec in ("ftdi:latency=1ms", "cdc-acm"):
        rtt = _ping_round_trips(_sim(spec, joints_wait=False), 4)[-1]
        assert ideal < rtt <= ideal + 2 * USB_FRAME_NS  # at most a frame's wait each way


def test_joints_whose_timers_ignore_the_adapter_resend_and_flush_the_ftdi_buffer_early() -> None:
    arm = _sim("ftdi:latency=16ms", joints_wait=False)
    rtts = _ping_round_trips(arm, 8)
    counters = arm.virtual_arm.joints[0].links[0].counters
    assert counters.retransmits >= 8  # joint 1 resends every reply while it waits in the adapter
    assert min(rtts[1:]) < 16 * NS_PER_MS  # the copies fill a 62-byte packet before the timer runs out


def test_the_host_side_of_a_capture_is_what_the_host_sees_behind_the_adapter() -> None:
    arm = VirtualArm(1, seed=2, adapter="cdc-acm")
    taps: list[tuple[str, Direction, int, bytes]] = []
    arm.add_tap(lambda link, d, t, data: taps.append((link, d, t, data)))
    arm.run_for(100 * NS_PER_MS)  # joint 1 keeps sending RESET toward the silent host port
    assert arm.port is not None and arm.adapter is not None
    host_side = [(t, data) for link, d, t, data in taps if link == "host-j1" and d == Direction.B_TO_A]
    assert host_side == arm.port.arrivals and len(host_side) >= 3
    assert all((t - arm.adapter.phase_ns) % USB_FRAME_NS == 0 for t, _ in host_side)  # at frame starts
    assert "adapter" in arm.kernel.faults.format_log()
