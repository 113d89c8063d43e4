"""Run the same scenario on a Python chain and a C chain (or a mixed one) and compare the wire traffic.

Every delivery on every link is recorded by a kernel tap as ``(link, direction, t_ns, bytes)``: what a logic
analyser at each receiver sees. Two runs agree when the lists are equal, packet for packet and byte for byte, at
the same instants. :func:`first_difference` names the first delivery that differs, decoded, for the failure
message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from armbus.bus.codec import Frame
from armbus.bus.deframer import Deframer
from armbus.bus.link import LinkConfig
from armbus.bus.wire import DEFAULT_BAUD, NS_PER_MS, MsgType
from armbus.controller.host import HostConfig, HostNode
from armbus.hil.simarm import SimArm
from armbus.hil.virtual_arm import VirtualArm

Delivery = tuple[str, str, int, bytes]
Scenario = Callable[[SimArm], None]


def capture(firmware: str, scenario: Scenario, *, joints: int = 3, seed: int = 1,
            **options: Any) -> tuple[list[Delivery], SimArm]:
    """The deliveries of ``scenario`` run on a fresh simulated arm whose joints run ``firmware``."""
    log: list[Delivery] = []
    host = HostNode(HostConfig(link=LinkConfig(), reply_timeout_ns=100 * NS_PER_MS))
    varm = VirtualArm(joints, host=host, seed=seed, firmware=firmware, **options)
    host.cycles.timing = dataclasses.replace(host.cycles.timing, host_baud=DEFAULT_BAUD, chain_baud=DEFAULT_BAUD)
    varm.add_tap(lambda link, d, t, data: log.append((link, str(d), t, bytes(data))))  # from power-up on
    arm = SimArm(varm)
    scenario(arm)
    return log, arm


def _describe(d: Delivery) -> str:
    items = Deframer().feed(d[3])
    frames = [f"{type(i).__name__}{tuple(i)}" if not isinstance(i, Frame) else repr(i) for i in items]
    return f"{d[0]} {d[1]} t={d[2]}: {d[3].hex()} {frames}"


def first_difference(a: list[Delivery], b: list[Delivery]) -> str | None:
    """None when equal, else a description of the first delivery that differs."""
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"delivery {k} differs:\n  {_describe(x)}\n  {_describe(y)}"
    if len(a) != len(b):
        return f"one run has {abs(len(a) - len(b))} more deliveries (after {min(len(a), len(b))} equal ones)"
    return None


def assert_same(scenario: Scenario, kinds: tuple[str, ...] = ("c", "c,python,c"), **options: Any
                ) -> list[Delivery]:
    """Run ``scenario`` on the Python chain and on each of ``kinds``; assert identical traffic. Returns the
    reference deliveries."""
    joints = options.pop("joints", 3)
    ref, ref_arm = capture("python", scenario, joints=joints, **options)
    for kind in kinds:
        spec = kind if "," not in kind else ",".join((kind.split(",") * joints)[:joints])
        got, arm = capture(spec, scenario, joints=joints, **options)
        diff = first_difference(ref, got)
        assert diff is None, f"firmware {spec!r} against python: {diff}"
        for k, (joint, twin) in enumerate(zip(arm.virtual_arm.joints, ref_arm.virtual_arm.joints, strict=True)):
            assert all(getattr(link, "overflows", 0) == 0 for link in joint.links)  # the fixed C buffers held
            where = f"firmware {spec!r}, joint {k + 1}"
            assert bytes(joint.registers.mem) == bytes(twin.registers.mem), f"{where}: registers differ"
            assert joint.counters == twin.counters, f"{where}: {joint.counters} != {twin.counters}"
            for port in (0, 1):
                assert joint.links[port].counters == twin.links[port].counters, f"{where} port {port}: link counters"
            assert joint.router.counters == twin.router.counters, f"{where}: router counters"
    return ref


def seen(log: list[Delivery]) -> set[tuple[int, ...]]:
    """What the deliveries carried: (message type,) for every packet, (FAULT, code) for every fault report,
    (UNDELIVERABLE, reason), (ERROR, kind), and (-kind,) for link control frames."""
    out: set[tuple[int, ...]] = set()
    for _, _, _, data in log:
        for item in Deframer().feed(data):
            if not isinstance(item, Frame):
                continue
            p = item.packet
            if p is None:
                out.add((-item.kind,))
                continue
            out.add((p.type,))
            if p.type == MsgType.FAULT:
                out.add((p.type, p.payload[0]))
            elif p.type == MsgType.UNDELIVERABLE:
                out.add((p.type, p.payload[7]))
            elif p.type == MsgType.ERROR:
                out.add((p.type, p.payload[1]))
    return out
