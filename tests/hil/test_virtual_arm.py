"""VirtualArm: argument checks, chain wiring, host port, taps on every link."""

from __future__ import annotations

import pytest

from armbus.bus.codec import Frame
from armbus.bus.deframer import Deframer
from armbus.bus.errors import UsageError
from armbus.hil.faults import LinkFaults
from armbus.hil.virtual_arm import HostPort, VirtualArm
from armbus.hil.wire import Direction


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"joints": 0}, "joints must be an integer 1..253"),
        ({"joints": 254}, "joints must be an integer 1..253"),
        ({"joints": 2, "baud": 50}, "baud 50 is outside"),
        ({"joints": 2, "models": [1, 2, 3]}, "3 model"),
        ({"joints": 1, "models": 70000}, "u16"),
        ({"joints": 1, "faults": 0.5}, "faults must be"),
    ],
)
def test_bad_arguments_are_usage_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        VirtualArm(**kwargs)  # type: ignore[arg-type]


def test_chain_is_wired_host_to_last_joint() -> None:
    arm = VirtualArm(3)
    assert list(arm.kernel.links) == ["host-j1", "j1-j2", "j2-j3"]
    assert arm.kernel.node_names == ["host", "j1", "j2", "j3"]
    link = arm.kernel.links["j1-j2"]
    assert link.endpoints(Direction.A_TO_B) == ("j1", "j2")
    assert arm.joint(3) is arm.joints[2]
    with pytest.raises(UsageError, match="no joint 4"):
        arm.joint(4)


def test_joints_talk_to_the_host_port_and_taps_see_every_link() -> None:
    arm = VirtualArm(3, seed=1)
    seen: set[tuple[str, Direction]] = set()
    arm.kernel.add_tap(lambda link, d, t, data: seen.add((link, d)))
    arm.run_for(50_000_000)
    assert isinstance(arm.port, HostPort)
    frames = [f for f in Deframer().feed(arm.port.read()) if isinstance(f, Frame)]
    assert frames, "the first joint's link should have spoken to the host"
    assert {link for link, _ in seen} == {"host-j1", "j1-j2", "j2-j3"}


def test_same_seed_same_bytes_with_faults() -> None:
    runs = []
    for _ in range(2):
        arm = VirtualArm(2, seed=7, faults=LinkFaults(drop_byte=0.01, dup_frame=0.05))
        arm.run_for(30_000_000)
        assert arm.port is not None
        runs.append((arm.port.arrivals, arm.kernel.faults.format_log()))
    assert runs[0] == runs[1]
