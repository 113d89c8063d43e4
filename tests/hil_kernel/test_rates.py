"""Per-link line rates in the wire model: each end's own rate, re-timing, and garbage when the ends disagree."""

from __future__ import annotations

import pytest
from hil_fakes import Sender, frame

from armbus.bus.codec import encode_control
from armbus.bus.errors import UsageError
from armbus.bus.wire import FrameKind, wire_time_ns
from armbus.hil.kernel import Kernel
from armbus.hil.virtual_arm import VirtualArm
from armbus.hil.wire import WireDirection

MS = 1_000_000


class RatedSender(Sender):
    """A Sender that sets its own UART rate, as a joint does (``port_rates``, changed in place)."""

    def __init__(self, script: list[tuple[int, bytes]], baud: int, switch: tuple[int, int] | None = None) -> None:
        super().__init__(script)
        self.port_rates = [baud]
        self.switch = switch  # (time, new rate)

    def next_deadline(self) -> int | None:
        times = [t for t in (super().next_deadline(), self.switch[0] if self.switch else None) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: int) -> None:
        if self.switch and now >= self.switch[0]:
            self.port_rates[0], self.switch = self.switch[1], None
        super().handle_timer(now)


def link(a_baud: int, b_baud: int, script: list[tuple[int, bytes]], seed: int = 0) -> tuple[Kernel, Sender]:
    k = Kernel(seed=seed)
    dst = Sender([])
    k.add_node("src", Sender(script))
    k.add_node("dst", dst)
    k.connect("src", 0, "dst", 0, baud=a_baud, b_baud=b_baud, name="l")
    return k, dst


def test_each_direction_runs_at_its_senders_rate() -> None:
    k = Kernel()
    a, b = Sender([(0, frame(1))]), Sender([(0, frame(1))])
    k.add_node("a", a)
    k.add_node("b", b)
    k.connect("a", 0, "b", 0, baud=1_000_000, b_baud=3_000_000, name="l")
    k.run_until_idle()
    n = len(frame(1))
    assert b.received[-1][0] == wire_time_ns(n, 1_000_000)  # a -> b at a's rate
    assert a.received[-1][0] == wire_time_ns(n, 3_000_000)  # b -> a at b's rate
    assert k.bytes_garbled == 2 * n  # and each end reads the other at its own rate: garbage both ways


def test_bytes_between_ends_at_different_rates_arrive_as_seeded_garbage() -> None:
    sent = frame(1) + frame(2)
    k, dst = link(1_000_000, 3_000_000, [(0, sent)], seed=7)
    k.run_until_idle()
    assert len(dst.stream) == len(sent) and dst.stream != sent
    assert k.bytes_garbled == len(sent) and k.bytes_delivered == len(sent)
    again, dst2 = link(1_000_000, 3_000_000, [(0, sent)], seed=7)
    again.run_until_idle()
    assert dst2.stream == dst.stream  # the same seed gives the same garbage
    clean, dst3 = link(3_000_000, 3_000_000, [(0, sent)])
    clean.run_until_idle()
    assert dst3.stream == sent and clean.bytes_garbled == 0


def test_a_rate_change_keeps_queued_bytes_timing_and_serialises_later_ones_at_the_new_rate() -> None:
    d = WireDirection(1_000_000)
    first = d.send(0, 10)  # 10 bytes: 100 us at 1 Mbaud
    d.set_baud(50_000, 2_000_000)  # mid-burst
    assert first.end_ns == 100_000
    second = d.send(50_000, 4)  # behind the queued bytes, at 5 us a byte
    assert second.start_ns == 100_000 and second.end_ns == 120_000
    with pytest.raises(UsageError, match="baud"):
        d.set_baud(0, 1)


def test_a_node_that_sets_its_own_rate_is_re_read_after_every_call() -> None:
    k = Kernel()
    src = RatedSender([(1 * MS, frame(1))], baud=1_000_000, switch=(500_000, 2_000_000))
    dst = RatedSender([], baud=2_000_000)
    k.add_node("src", src)
    k.add_node("dst", dst)
    k.connect("src", 0, "dst", 0, baud=1_000_000, name="l")
    assert k.port_baud("dst", 0) == 2_000_000  # read at connect
    k.run_until_idle()
    assert k.port_baud("src", 0) == 2_000_000  # re-read after the switch
    assert dst.stream == frame(1) and k.bytes_garbled == 0
    assert dst.received[-1][0] == 1 * MS + wire_time_ns(len(frame(1)), 2_000_000)


def test_set_port_baud_re_times_a_driver_owned_end_and_refuses_unconnected_ports() -> None:
    k, dst = link(1_000_000, 1_000_000, [(1 * MS, frame(3))])
    k.set_port_baud("src", 0, 3_000_000)
    k.run_until_idle()
    assert k.bytes_garbled == len(frame(3)) and dst.stream != frame(3)  # dst is still at 1 Mbaud
    with pytest.raises(UsageError, match="not connected"):
        k.set_port_baud("src", 5, 3_000_000)


def test_a_host_at_the_wrong_rate_is_line_noise_to_joint_1_never_an_exception() -> None:
    arm = VirtualArm(2, baud=1_000_000, chain_baud=3_000_000)
    assert [j.port_baud(0) for j in arm.joints] == [1_000_000, 3_000_000]
    assert arm.kernel.links["j1-j2"].wire.matched and arm.kernel.links["j1-j2"].wire.baud == 3_000_000
    assert arm.port is not None
    arm.run_for(5 * MS)
    arm.set_host_baud(115_200)
    up = arm.joints[0].links[0]
    before = up.counters.crc_errors + up.counters.framing_errors
    for _ in range(20):
        arm.port.write(frame(9))
        arm.run_for(2 * MS)
    assert up.counters.crc_errors + up.counters.framing_errors > before
    assert arm.kernel.bytes_garbled > 0
    arm.set_host_baud(1_000_000)  # back at joint 1's rate: the joint answers RESET again
    arm.port.read()
    arm.port.write(b"\x00" + encode_control(FrameKind.RESET, 0x12))  # 0x00 first: drop the partial garbage
    arm.run_for(2 * MS)
    assert encode_control(FrameKind.RESET_ACK, 0x12) in arm.port.read()
