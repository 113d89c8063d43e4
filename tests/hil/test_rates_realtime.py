"""Line rates in real time: the pty arm follows the host's rate, scan finds an arm at any rate, and
``armbus baud`` / ``AsyncArm.set_baud`` switch a running arm."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import pytest

from armbus.bus.errors import UsageError
from armbus.controller.aio import AsyncArm
from armbus.controller.backends import open_port
from armbus.controller.scan import scan, scan_order
from armbus.hil.ptyserver import PtyServer, build_arm
from armbus.tools.cli import main


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"joints": 3, "baud": 3_000_000, "chain_baud": 2_000_000, "seed": 0,
                               "faults": None, "unpaced": False, "capture": None, "link": None, "json": False}
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.mark.realtime
def test_scan_finds_the_pty_arm_at_a_non_default_rate(capsys: pytest.CaptureFixture[str]) -> None:
    arm, _ = build_arm(_args())
    with PtyServer(arm) as server:
        result = scan(server.path, [1_000_000, 115_200, 3_000_000], probe_s=0.15)
        assert result.found and (result.baud, result.joints) == (3_000_000, 3)
        assert result.tried[3_000_000] == "3 joint(s)"
        # at a wrong rate joint 1 does not answer; a probe of its own that was still on the simulated wire when the
        # host opened the port may arrive clean, and a link opened on it goes no further (docs/hoplink.md,
        # "Start-up": the host answers and opens on a new RESET)
        for rate in (1_000_000, 115_200):
            assert result.tried[rate] == "no answer" or result.tried[rate].startswith("link opens, no enumeration")
        errors = server.driver.call(lambda a: a.joints[0].links[0].counters)
        assert errors.crc_errors + errors.framing_errors > 0  # the wrong rates were line noise to joint 1
        assert main(["--json", "scan", "--port", server.path, "--bauds", "2000000,3000000"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert (data["baud"], data["joints"]) == (3_000_000, 3)
        assert data["tried"]["3000000"] == "3 joint(s)" and set(data["tried"]) == {"2000000", "3000000"}
        assert data["tried"]["2000000"] == "no answer" or data["tried"]["2000000"].startswith("link opens")


@pytest.mark.realtime
def test_armbus_baud_switches_the_pty_arm_and_scan_then_finds_it_there(capsys: pytest.CaptureFixture[str]) -> None:
    arm, _ = build_arm(_args())
    with PtyServer(arm) as server:
        code = main(["--json", "baud", "1000000", "--chain", "4000000", "--port", server.path, "--baud", "3000000"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and report["outcome"] == "switched", report
        rates = server.driver.call(lambda a: [(j.port_baud(0), j.port_baud(1)) for j in a.joints])
        assert rates == [(1_000_000, 4_000_000), (4_000_000, 4_000_000), (4_000_000, 4_000_000)]
        assert scan(server.path).baud == 1_000_000  # the default rate is tried first


def test_scan_and_sim_refuse_bad_rates_clearly() -> None:
    with pytest.raises(UsageError, match="supported rates are 115200"):
        scan_order([1_000_000, 1234])
    assert scan_order([115_200, 1_000_000]) == [1_000_000, 115_200]
    with pytest.raises(UsageError, match="--chain-baud: baud 12000000 is faster"):
        build_arm(_args(chain_baud=12_000_000))
    assert main(["scan", "--port", "virtual", "--bauds", "1000000,77"]) == 2
    assert main(["baud", "1234", "--port", "/dev/ttyNOPE-armbus"]) == 2  # refused before the port is opened


@pytest.mark.realtime
def test_the_url_handler_takes_a_chain_rate_and_follows_the_ports_baudrate() -> None:
    with open_port("armbus://?joints=2&chain_baud=3000000", timeout=0.05) as port:
        rt = port.virtual_arm
        assert rt.call(lambda a: [(j.port_baud(0), j.port_baud(1)) for j in a.joints]) == \
            [(1_000_000, 3_000_000), (3_000_000, 3_000_000)]
        port.baudrate = 115_200
        deadline = time.monotonic() + 2
        while rt.call(lambda a: a.host_baud) != 115_200 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rt.call(lambda a: a.host_baud) == 115_200


@pytest.mark.realtime
def test_async_arm_switches_a_virtual_arm() -> None:
    async def go() -> tuple[str, int, int]:
        arm = await AsyncArm.open("armbus://?joints=3&seed=2", timeout=0.2)
        async with arm:
            report = await arm.set_baud(2_000_000)
            states = await arm.read_states()
            return report.outcome, len(states), arm.baud

    assert asyncio.run(go()) == ("switched", 3, 2_000_000)
