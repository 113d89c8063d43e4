"""The sync Arm when its USB-serial adapter disappears and comes back: a pty behind a symlink (wall clock)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from armbus.bus.errors import PortError
from armbus.bus.link import LinkConfig
from armbus.controller.arm import Arm
from armbus.controller.events import HostEvent, PortLost, PortRestored
from armbus.hil.ptyserver import PtyServer
from armbus.hil.realtime import REALTIME_TURNAROUND_NS
from armbus.hil.virtual_arm import VirtualArm

pytestmark = pytest.mark.realtime


def wait_for(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_port_lost_then_restored_and_the_arm_carries_on(tmp_path: Path) -> None:
    link = tmp_path / "ttyUSB-arm"
    varm = VirtualArm(2, seed=4, link_config=LinkConfig(turnaround_ns=REALTIME_TURNAROUND_NS))
    server = PtyServer(varm, link=link).start()
    events: list[HostEvent] = []
    try:
        with Arm.open(str(link), timeout=0.2) as arm:
            arm.add_listener(events.append)
            arm.enumerate()
            arm.write("joint2", "state_period", 0)
            server.close()  # unplugged: the tty and its symlink vanish
            assert wait_for(lambda: any(isinstance(e, PortLost) for e in events))
            with pytest.raises(PortError):
                arm.read("joint2", "state_period")
            server = PtyServer(varm, link=link).start()  # plugged back in: a new tty at the same path
            assert wait_for(lambda: any(isinstance(e, PortRestored) for e in events))
            assert arm.wait_link(2.0)
            assert arm.ping("joint2").address == 2  # same joints, same addresses: no re-enumeration needed
            arm.write("joint2", "state_period", 0)
            kinds = [type(e) for e in events if isinstance(e, (PortLost, PortRestored))]
            assert kinds == [PortLost, PortRestored]
            lost = next(e for e in events if isinstance(e, PortLost))
            assert lost.port == str(link)
    finally:
        server.close()
