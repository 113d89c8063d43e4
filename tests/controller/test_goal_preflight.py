"""Goals are checked before anything moves: units, limits, names or addresses (simulated time)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from armbus.bus.errors import UsageError
from armbus.controller.config import load_config
from armbus.hil.simarm import SimArm

CONFIG = Path(__file__).resolve().parents[2] / "docs" / "examples" / "arm.toml"


@pytest.fixture
def arm() -> SimArm:
    a = SimArm(joints=3, seed=4)
    a.enumerate()
    return a


@pytest.fixture
def configured() -> SimArm:
    cfg = load_config(CONFIG)
    a = SimArm(joints=len(cfg.joints), seed=4, config=cfg)
    a.enumerate()
    return a


def goal_register(arm: SimArm, name: str | int) -> int:
    return arm.read(arm[name].name, "goal_position")


def test_degrees_typed_as_radians_are_refused_with_the_way_out(arm: SimArm) -> None:
    with pytest.raises(UsageError, match=r"more than a full turn.*did you mean '30deg'"):
        arm.set_goals({"joint1": 30})
    assert goal_register(arm, "joint1") == 0  # nothing was sent
    arm.set_goals({"joint1": "30deg"})
    assert goal_register(arm, "joint1") == round(math.radians(30) * 1e6)


def test_configured_limits_refuse_a_goal_outside_them_before_any_goal_is_sent(configured: SimArm) -> None:
    with pytest.raises(UsageError, match=r"shoulder is outside its limits -1\.571 \.\. 1\.571 rad"):
        configured.set_goals({"base": 0.05, "shoulder": 2.0})
    assert goal_register(configured, "base") == 0  # the valid goal of the same call was not sent either
    with pytest.raises(UsageError, match="outside its limits"):
        configured.exchange({"shoulder": "100deg"})
    with pytest.raises(UsageError, match="beyond its maximum"):
        configured.set_goal("base", velocity="400deg/s")


def test_goal_values_take_units_and_bad_ones_say_what_is_accepted(arm: SimArm) -> None:
    arm.set_goal("joint2", position="-0.5rad")
    assert goal_register(arm, "joint2") == -500_000
    with pytest.raises(UsageError, match=r"'10 parsec': unknown angle unit 'parsec' \(accepted: rad"):
        arm.set_goals({"joint1": "10 parsec"})
    with pytest.raises(UsageError, match=r"goal for joint1 must be a number \(rad\) or a string with a unit"):
        arm.set_goals({"joint1": [1, 2]})
    with pytest.raises(UsageError, match="must be finite"):
        arm.set_goals({"joint1": math.nan})


def test_joints_are_named_by_name_or_by_address(arm: SimArm) -> None:
    assert arm[2].name == "joint2" and arm[2] is arm["joint2"]
    arm.set_goals({2: 0.1, 3: "5deg"})
    assert goal_register(arm, 2) == 100_000 and goal_register(arm, 3) == round(math.radians(5) * 1e6)
    states = arm.exchange({1: 0.02})
    assert set(states) == {"joint1", "joint2", "joint3"}
    with pytest.raises(UsageError, match=r"no joint at address 9 \(addresses: 1, 2, 3\)"):
        arm[9]
    with pytest.raises(UsageError, match="no joint named 'elbow'"):
        arm.set_goals({"elbow": 0.1})


def test_status_flags_read_by_name() -> None:
    from armbus.bus.wire import StatusFlag

    assert str(StatusFlag.TORQUE_ON | StatusFlag.MOVING) == "TORQUE_ON|MOVING"
    assert str(StatusFlag(0)) == "NONE" and f"{StatusFlag(0x81)}" == "TORQUE_ON|REBOOTED"
    assert format(StatusFlag(3), "02x") == "03"  # number formats stay numbers


def test_a_broadcast_timeout_names_the_broadcast_not_a_joint_255() -> None:
    from armbus.bus.errors import ArmTimeoutError
    from armbus.bus.wire import Address, MsgType
    from armbus.controller.events import RequestTimedOut, request_outcome

    with pytest.raises(ArmTimeoutError, match="no reply to the broadcast SYNC_READ 7 in time") as info:
        request_outcome("port", 7, RequestTimedOut(0, 7, int(Address.BROADCAST), int(MsgType.SYNC_READ)))
    assert "255" not in str(info.value)
    with pytest.raises(ArmTimeoutError, match="no reply to READ 8 from joint 3 in time"):
        request_outcome("port", 8, RequestTimedOut(0, 8, 3, int(MsgType.READ)))


def test_a_quoted_number_in_the_config_needs_its_unit(tmp_path: Path) -> None:
    from armbus.bus.errors import ConfigError

    text = CONFIG.read_text(encoding="utf-8").replace('offset = "12.5deg"', 'offset = "12.5"', 1)
    assert 'offset = "12.5"' in text
    bad = tmp_path / "arm.toml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"shoulder.*offset.*written without quotes"):
        load_config(bad)


def test_a_config_shorter_than_the_chain_is_said(caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_config(CONFIG)
    arm = SimArm(joints=len(cfg.joints) + 2, seed=4, config=cfg)
    with caplog.at_level("WARNING"):
        arm.enumerate()
    n = len(cfg.joints)
    assert f"the bus has {n + 2} joints but the config describes {n}" in caplog.text
    assert f"{n + 1}, {n + 2} are not in the config" in caplog.text


def test_arm_open_takes_the_config_file_path() -> None:
    from armbus.controller.arm import Arm

    with Arm.open("virtual", config=str(CONFIG)) as arm:
        assert list(arm.model.joints)[:2] == ["base", "shoulder"]
