"""Simulation kernel: exact timing, event order, granularity independence, taps, running modes, misuse."""

from __future__ import annotations

import pytest
from hil_fakes import Echo, FrameForwarder, Sender, Stuck, frame

from armbus.bus.errors import UsageError
from armbus.bus.wire import wire_time_ns
from armbus.hil.kernel import Granularity, Kernel, SimulationError
from armbus.hil.wire import Direction

MBAUD = 1_000_000


def pair(script: list[tuple[int, bytes]], *, turnaround_ns: int = 0, **kw: object) -> tuple[Kernel, Sender, Sender]:
    k = Kernel(**kw)  # type: ignore[arg-type]
    src, dst = Sender(script), Sender([])
    k.add_node("src", src)
    k.add_node("dst", dst)
    k.connect("src", 0, "dst", 0, baud=MBAUD, turnaround_ns=turnaround_ns, name="l")
    return k, src, dst


@pytest.mark.parametrize("granularity", list(Granularity))
def test_17_byte_frame_at_1_mbaud_arrives_170_us_plus_turnaround(granularity: Granularity) -> None:
    k, _, dst = pair([(1_000, frame(1))], turnaround_ns=2_500, granularity=granularity)
    k.run_until_idle()
    assert dst.stream == frame(1)
    assert dst.received[-1][0] == 1_000 + 2_500 + 170_000
    if granularity is Granularity.BYTE:
        assert [t for t, _ in dst.received] == [1_000 + 2_500 + 10_000 * (i + 1) for i in range(17)]


def test_one_link_direction_can_have_its_own_granularity() -> None:
    k = Kernel()
    a, b = Sender([(0, frame(1))]), Sender([(0, frame(2))])
    k.add_node("a", a)
    k.add_node("b", b)
    k.connect("a", 0, "b", 0, baud=MBAUD, name="l")
    k.set_granularity("l", Direction.B_TO_A, Granularity.BYTE)
    k.run_until_idle()
    assert [t for t, _ in a.received] == [10_000 * (i + 1) for i in range(17)]  # b -> a: byte by byte
    assert b.received == [(170_000, frame(1))]  # a -> b: the kernel's FRAME
    with pytest.raises(UsageError, match="no link named 'm'"):
        k.set_granularity("m", Direction.A_TO_B, Granularity.BYTE)


def test_frames_sent_together_queue_back_to_back() -> None:
    k, _, dst = pair([(0, frame(1) + frame(2)), (10_000, frame(3))], turnaround_ns=1_000)
    k.run_until_idle()
    assert [t for t, _ in dst.frames()] == [171_000, 341_000, 511_000]


def test_echo_round_trip_is_two_wire_times() -> None:
    k = Kernel()
    host, echo = Sender([(0, frame(7, 40))]), Echo()
    k.add_node("host", host)
    k.add_node("echo", echo)
    k.connect("host", 0, "echo", 0, baud=115_200, turnaround_ns=50_000)
    k.run_until_idle()
    assert host.stream == frame(7, 40)
    assert host.received[-1][0] == 2 * (50_000 + wire_time_ns(40, 115_200))
    assert k.now == host.received[-1][0]


def chain(granularity: Granularity, hops: int = 6, seed: int = 0, delay_ns: int = 3_000) -> tuple[Kernel, Sender]:
    """host - fwd1 - ... - fwdN - frame echo."""
    k = Kernel(granularity=granularity, seed=seed)
    script = [(i * 97_000, frame(i, 5 + (i * 37) % 200) + frame(i + 1000, 9)) for i in range(40)]
    host = Sender(script)
    k.add_node("host", host)
    prev, port = "host", 0
    for h in range(1, hops + 1):
        k.add_node(f"f{h}", FrameForwarder(delay_ns))
        k.connect(prev, port, f"f{h}", 0, baud=MBAUD, turnaround_ns=1_000)
        prev, port = f"f{h}", 1
    k.add_node("echo", FrameForwarder(delay_ns, reflect=True))
    k.connect(prev, port, "echo", 0, baud=MBAUD, turnaround_ns=1_000)
    return k, host


def test_granularity_does_not_change_what_frame_nodes_see() -> None:
    results = {}
    for g in (Granularity.FRAME, Granularity.BYTE):
        k, host = chain(g)
        k.run_until_idle()
        results[g] = host.frames()
    assert len(results[Granularity.FRAME]) == 80
    assert results[Granularity.FRAME] == results[Granularity.BYTE]
    # CHUNK delivers the same bytes, at most later
    k, host = chain(Granularity.CHUNK)
    k.run_until_idle()
    chunked = host.frames()
    assert [f for _, f in chunked] == [f for _, f in results[Granularity.FRAME]]
    assert all(c >= e for (c, _), (e, _) in zip(chunked, results[Granularity.FRAME], strict=True))


def test_same_setup_gives_identical_event_sequence() -> None:
    logs = []
    for _ in range(2):
        k, _ = chain(Granularity.FRAME)
        seen: list[tuple[str, int, int, bytes]] = []
        k.add_tap(lambda link, d, t, data: seen.append((link, int(d), t, data)))  # noqa: B023
        k.run_until_idle()
        logs.append(seen)
    assert logs[0] == logs[1]
    assert len(logs[0]) > 80 * 7


def test_tap_sees_every_delivery_in_time_order() -> None:
    k, host = chain(Granularity.FRAME, hops=2)
    seen: list[tuple[str, Direction, int, bytes]] = []
    k.add_tap(lambda *a: seen.append(a))
    k.run_until_idle()
    times = [t for _, _, t, _ in seen]
    assert times == sorted(times)
    assert len(seen) == k.deliveries
    back = b"".join(d for link, direction, _, d in seen if link == "host:0-f1:0" and direction == Direction.B_TO_A)
    assert back == host.stream


def test_broken_tap_is_removed_and_simulation_goes_on() -> None:
    k, _, dst = pair([(0, frame(1)), (500_000, frame(2))])

    def bad(*_: object) -> None:
        raise RuntimeError("boom")

    k.add_tap(bad)
    with pytest.warns(RuntimeWarning, match="boom"):
        k.run_until_idle()
    assert dst.stream == frame(1) + frame(2)


def test_run_until_moves_clock_and_stops_at_the_limit() -> None:
    k, _, dst = pair([(0, frame(1)), (1_000_000, frame(2))])
    k.run_until(500_000)
    assert k.now == 500_000
    assert dst.stream == frame(1)
    k.run_until(1_169_999)
    assert dst.stream == frame(1)
    k.run_until(1_170_000)
    assert dst.stream == frame(1) + frame(2)
    with pytest.raises(UsageError, match="past"):
        k.run_until(5)


def test_step_runs_one_event_and_reports_idle() -> None:
    k, _, dst = pair([(100, frame(1))])
    assert k.step() == 100  # sender's timer
    assert dst.received == []
    assert k.step() == 170_100  # delivery
    assert dst.stream == frame(1)
    assert k.step() is None


def test_run_until_true_and_idle_timeout() -> None:
    k, _, dst = pair([(i * 1_000_000, frame(i)) for i in range(10)])
    assert k.run_until_true(lambda: len(dst.received) >= 3, timeout_ns=10**9)
    assert k.now == 2_170_000
    assert not k.run_until_true(lambda: False, timeout_ns=1_000)
    assert k.now == 2_171_000
    assert not k.run_until_idle(timeout_ns=3_000_000)
    assert k.now == 5_171_000
    assert k.run_until_idle()


def test_wake_drains_a_node_touched_from_outside() -> None:
    k, src, dst = pair([])
    k.run_until(1_000)
    src.out += frame(4)
    k.wake("src")
    k.run_until_idle()
    assert dst.received == [(1_000 + 170_000, frame(4))]


def test_call_at_runs_in_order_with_events() -> None:
    k, _, dst = pair([(0, frame(1))])
    seen: list[tuple[int, int]] = []
    k.call_at(170_000, lambda now: seen.append((now, len(dst.received))))
    k.run_until_idle()
    assert seen == [(170_000, 0)]  # scheduled before the delivery existed, so it runs first
    k.call_at(k.now, lambda now: seen.append((now, len(dst.received))))
    k.run_until_idle()
    assert seen[-1] == (170_000, 1)


def test_unconnected_port_output_is_discarded_and_counted() -> None:
    k = Kernel()
    f = FrameForwarder()
    k.add_node("a", Sender([(0, frame(1))]))
    k.add_node("f", f)
    k.connect("a", 0, "f", 0, baud=MBAUD)
    k.run_until_idle()
    assert f.forwarded == 1
    assert k.bytes_discarded == 17


def test_stuck_node_is_reported() -> None:
    k = Kernel()
    k.add_node("stuck", Stuck())
    with pytest.raises(SimulationError, match="stuck"):
        k.run_until(10)


def test_misuse_is_reported_clearly() -> None:
    k = Kernel()
    k.add_node("a", Echo())
    k.add_node("b", Echo())
    with pytest.raises(UsageError, match="already exists"):
        k.add_node("a", Echo())
    with pytest.raises(UsageError, match="lacks"):
        k.add_node("c", object())  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="no node named 'x'"):
        k.connect("a", 0, "x", 0, baud=MBAUD)
    k.connect("a", 0, "b", 0, baud=MBAUD)
    with pytest.raises(UsageError, match="already connected"):
        k.connect("a", 0, "b", 1, baud=MBAUD)
    with pytest.raises(UsageError, match="baud"):
        k.connect("a", 1, "b", 1, baud=10**9)
    with pytest.raises(UsageError, match="granularity"):
        Kernel(granularity="bits")
