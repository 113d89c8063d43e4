"""Joint fault kinds in simulated time: what each does to the joint, file parsing and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from armbus.bus.errors import ConfigError, UsageError
from armbus.bus.link import LinkState
from armbus.bus.wire import FaultCode, StatusFlag
from armbus.hil.joint_faults import CutCable, Freeze, Overheat, Reboot, SensorNoise, Stall
from armbus.hil.schedule import FaultSchedule
from armbus.hil.virtual_arm import VirtualArm
from armbus.hil.wire import Direction

MS = 1_000_000
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "faults.toml"


def _arm(joints: int, *faults: object) -> VirtualArm:
    return VirtualArm(joints, seed=2, faults=FaultSchedule(tuple(faults)))  # type: ignore[arg-type]


def test_reboot_takes_the_joint_down_for_its_boot_time_then_it_comes_back() -> None:
    arm = _arm(2, Reboot(10 * MS, joint=2))
    arm.run_until(11 * MS)
    j2 = arm.joint(2)
    assert j2.booting and j2.counters.reboots == 1
    arm.run_until(10 * MS + j2.boot_ns + MS)
    assert not j2.booting
    assert [d.op for d in arm.kernel.faults.log] == ["reboot"]


def test_freeze_swallows_bytes_and_timers_then_resumes() -> None:
    arm = _arm(2, Freeze(0, joint=2, duration_ns=40 * MS))
    arm.run_until(30 * MS)
    j2 = arm.joint(2)
    assert arm.kernel.frozen("j2")
    assert arm.kernel.bytes_lost_frozen > 0  # joint 1's RESETs toward it
    assert j2.control.next_deadline() <= MS  # its 1 kHz loop has not ticked
    assert arm.joint(1).links[1].state is not LinkState.OPEN
    arm.run_until(80 * MS)
    assert not arm.kernel.frozen("j2")
    assert j2.control.next_deadline() > 79 * MS
    assert arm.joint(1).links[1].state is LinkState.OPEN


def test_overheat_of_the_winding_trips_over_temperature_at_the_next_tick() -> None:
    arm = _arm(1, Overheat(5 * MS, joint=1, winding_c=95.0, ambient_c=70.0, duration_ns=10 * MS))
    arm.run_until(7 * MS)
    j1 = arm.joint(1)
    assert j1.registers.get("fault_code") == FaultCode.OVER_TEMPERATURE
    assert j1.control.flags & StatusFlag.OVERHEAT
    assert j1.actuator.ambient_temperature == 70.0
    arm.run_until(20 * MS)
    assert j1.actuator.ambient_temperature == 25.0


def test_stall_load_moves_an_unpowered_joint_until_removed() -> None:
    arm = _arm(1, Stall(0, joint=1, torque_nm=2.0, duration_ns=100 * MS))
    arm.run_until(99 * MS)
    act = arm.joint(1).actuator
    assert act.position > 0.01 and act.load_torque == 2.0
    arm.run_until(101 * MS)
    assert act.load_torque == 0.0 and not act.jammed


def test_cut_cable_loses_bytes_on_that_cable_only() -> None:
    arm = _arm(3, CutCable(0, after_joint=2, duration_ns=50 * MS))
    arm.run_until(40 * MS)
    assert arm.joint(2).links[1].state is not LinkState.OPEN
    assert arm.joint(1).links[1].state is LinkState.OPEN
    assert any(d.op == "cut" and d.link == "j2-j3" for d in arm.kernel.faults.log)
    assert arm.kernel.faults.channel("j2-j3", Direction.A_TO_B).dynamic_cuts


def test_sensor_noise_scatters_the_encoder_and_is_removed_after_its_duration() -> None:
    arm = _arm(1, SensorNoise(0, joint=1, position_counts=50.0, current_a=0.1, duration_ns=5 * MS))
    arm.run_until(1 * MS)
    act = arm.joint(1).actuator
    assert len({act.encoder_counts() for _ in range(20)}) > 5
    assert act.current_noise == 0.1
    arm.run_until(6 * MS)
    assert len({act.encoder_counts() for _ in range(20)}) == 1
    assert act.current_noise == 0.005


def test_example_fault_file_loads_and_checks_against_a_six_joint_arm() -> None:
    schedule = FaultSchedule.load(EXAMPLE)
    assert {f.kind for f in schedule.faults} == {"link_faults", "freeze", "cut_cable", "reboot", "overheat",
                                                 "stall", "sensor_noise"}
    schedule.check(VirtualArm(6).kernel)
    with pytest.raises(ConfigError, match=r"fault 5 \(overheat.*no joint 4: the arm has joints 1..3"):
        schedule.check(VirtualArm(3).kernel)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "melt", "at_ms": 1}, "unknown fault kind 'melt'"),
        ({"kind": "reboot", "at_ms": -5, "joint": 1}, "at_ms: must be a non-negative number"),
        ({"kind": "reboot", "at_ms": "soon", "joint": 1}, "at_ms: must be a non-negative number"),
        ({"kind": "reboot", "joint": 1}, "at: missing"),
        ({"kind": "reboot", "at_ms": 1, "joint": 0}, "joint: must be an integer 1..253"),
        ({"kind": "freeze", "at_ms": 1, "joint": 1}, "duration: missing"),
        ({"kind": "overheat", "at_ms": 1, "joint": 1}, "needs ambient_c and/or winding_c"),
        ({"kind": "overheat", "at_ms": 1, "joint": 1, "winding_c": 900}, "winding_c: must be a number"),
        ({"kind": "stall", "at_ms": 1, "joint": 1, "jam": "yes"}, "jam: must be true or false"),
        ({"kind": "reboot", "at_ms": 1, "joint": 1, "colour": "red"}, "unknown key.*colour"),
    ],
)
def test_bad_fault_entries_are_config_errors_naming_the_key(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FaultSchedule.parse([entry])


def test_faults_on_missing_joints_or_cables_are_refused_at_install() -> None:
    with pytest.raises(ConfigError, match=r"fault 1 \(reboot.*no joint 4: the arm has joints 1..3"):
        _arm(3, Reboot(0, joint=4))
    with pytest.raises(ConfigError, match="no cable after joint 3"):
        _arm(3, CutCable(0, after_joint=3))
    with pytest.raises(ConfigError, match="no link named 'j7-j8'"):
        FaultSchedule.parse([{"kind": "cut_link", "at_ms": 1, "link": "j7-j8", "duration_ms": 1}]).check(
            VirtualArm(2).kernel)
    with pytest.raises(UsageError, match="joint position"):
        Reboot(0, joint=0)
