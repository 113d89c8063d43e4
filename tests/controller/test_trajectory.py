"""Trajectory planning: limits respected numerically, waypoints reached, CSV round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from armbus.bus.errors import ConfigError, UsageError
from armbus.controller.trajectory import (
    JointLimits,
    Profile,
    Trajectory,
    TrajectoryError,
    clamp_step,
    load_csv,
    save_csv,
)

NAMES = ("a", "b", "c")


def limits(accel: float = 8.0) -> JointLimits:
    return JointLimits(
        position_min=np.full(3, -3.0),
        position_max=np.full(3, 3.0),
        max_velocity=np.array([1.0, 2.0, 0.5]),
        max_acceleration=np.array([accel, accel * 2, accel / 2]),
    )


def random_trajectory(seed: int, n: int = 6) -> Trajectory:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.05, 1.0, n))
    times -= times[0]
    return Trajectory(NAMES, times, rng.uniform(-2.5, 2.5, (n, 3)))


@pytest.mark.parametrize("profile", list(Profile))
@pytest.mark.parametrize("seed", range(5))
def test_stretched_plan_respects_velocity_and_acceleration(profile: Profile, seed: int) -> None:
    lim = limits()
    plan = random_trajectory(seed).plan(lim, profile)
    s = plan.sample(1000.0)
    assert np.all(np.abs(s.velocities) <= lim.max_velocity * (1 + 1e-9))
    accel = np.diff(s.velocities, axis=0) / np.diff(s.times)[:, None]
    assert np.all(np.abs(accel) <= lim.max_acceleration * (1 + 1e-6))
    # the reported velocity is the derivative of the reported position
    mid_vel = (s.velocities[1:] + s.velocities[:-1]) / 2
    fd = np.diff(s.positions, axis=0) / np.diff(s.times)[:, None]
    assert np.allclose(fd, mid_vel, atol=1e-2)
    # with random fast waypoints, some segment must have needed stretching
    assert plan.stretched
    assert plan.duration >= random_trajectory(seed).duration


@pytest.mark.parametrize("profile", list(Profile))
def test_waypoints_reached_at_rest_and_path_monotone(profile: Profile) -> None:
    traj = Trajectory(NAMES, [0.0, 4.0, 9.0], [[0.0, 0.0, 0.0], [1.0, -1.0, 0.5], [-0.5, -1.0, 1.0]])
    plan = traj.plan(limits(), profile)
    assert not plan.stretched
    assert np.array_equal(plan.times, traj.times)
    pos, vel = plan.evaluate(traj.times)
    assert np.allclose(pos, traj.positions, atol=1e-12)
    assert np.allclose(vel, 0.0, atol=1e-12)
    s = plan.sample(200.0)
    first = s.positions[s.times <= 4.0]
    assert np.all(np.diff(first[:, 0]) >= -1e-12) and np.all(np.diff(first[:, 1]) <= 1e-12)
    assert np.allclose(s.positions[:, 1][s.times >= 4.0], -1.0)  # joint b holds still in segment 2


def test_min_jerk_peak_velocity_is_1_875_d_over_t() -> None:
    plan = Trajectory(("a",), [0.0, 2.0], [[0.0], [1.0]]).plan()
    _, vel = plan.evaluate([1.0])
    assert vel[0, 0] == pytest.approx(1.875 / 2.0)


def test_trapezoid_without_acceleration_limit_uses_thirds() -> None:
    plan = Trajectory(("a",), [0.0, 3.0], [[0.0], [3.0]]).plan(profile="trapezoid")
    pos, vel = plan.evaluate([0.5, 1.5, 2.5])
    assert vel[:, 0] == pytest.approx([0.75, 1.5, 0.75])
    assert pos[1, 0] == pytest.approx(1.5)


def test_reject_names_segment_joint_and_needed_time() -> None:
    traj = Trajectory(NAMES, [0.0, 10.0, 10.5], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(TrajectoryError) as info:
        traj.plan(limits(), on_limit="reject")
    message = str(info.value)
    assert "segment 1" in message and "'c'" in message
    needed = 1.875 * 1.0 / 0.5  # velocity-bound for joint c
    assert f"{needed:.4g} s" in message


def test_within_limits_reject_mode_plans_unchanged() -> None:
    traj = Trajectory(NAMES, [0.0, 10.0], [[0, 0, 0], [1, 1, 1]])
    plan = traj.plan(limits(), on_limit="reject")
    assert not plan.stretched and plan.duration == 10.0


def test_position_limits_rejected_with_degrees() -> None:
    traj = Trajectory(NAMES, [0.0, 10.0], [[0.0, 0.0, 0.0], [0.0, 3.5, 0.0]])
    with pytest.raises(TrajectoryError, match=r"joint 'b' at 3\.5 rad \(200\.54 deg\), above"):
        traj.plan(limits())


def test_malformed_trajectories() -> None:
    with pytest.raises(TrajectoryError, match="increase strictly"):
        Trajectory(("a",), [0.0, 1.0, 1.0], [0, 1, 2])
    with pytest.raises(TrajectoryError, match="at least two"):
        Trajectory(("a",), [0.0], [0])
    with pytest.raises(TrajectoryError, match="shape"):
        Trajectory(("a", "b"), [0.0, 1.0], [0, 1])
    with pytest.raises(UsageError, match="on_limit"):
        Trajectory(("a",), [0.0, 1.0], [0, 1]).plan(on_limit="ignore")


def test_sample_rate_bounds_and_end_included() -> None:
    plan = Trajectory(("a",), [0.0, 1.0025], [[0.0], [1.0]]).plan()
    s = plan.sample(1000.0)
    assert len(s.times) == 1004 and s.times[-1] == pytest.approx(1.0025)
    assert np.allclose(np.diff(s.times[:-1]), 1e-3)
    assert s.positions[-1, 0] == pytest.approx(1.0)
    assert len(plan.sample().times) == 202
    with pytest.raises(UsageError, match="control rate"):
        plan.sample(2000.0)


def test_clamp_step() -> None:
    out = clamp_step([1.0, -1.0, 0.01], [0.0, 0.0, 0.0], [0.1, 0.2, 0.1])
    assert out == pytest.approx([0.1, -0.2, 0.01])
    assert clamp_step([5.0], [4.95], 0.1) == pytest.approx([5.0])


def test_csv_round_trip_in_degrees(tmp_path: Path) -> None:
    traj = random_trajectory(7)
    path = tmp_path / "t.csv"
    save_csv(traj, path, unit="deg")
    assert path.read_text().splitlines()[0] == "time_s,a_deg,b_deg,c_deg"
    back = load_csv(path)
    assert back.names == NAMES
    assert np.allclose(back.times, traj.times) and np.allclose(back.positions, traj.positions)


def test_csv_units_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("# demo\ntime_ms,shoulder[deg],elbow_rad,wrist\n0,0,0,0\n500,90,1.0,10\n")
    traj = load_csv(path, unit="deg")
    assert traj.names == ("shoulder", "elbow", "wrist")
    assert traj.times == pytest.approx([0.0, 0.5])
    assert traj.positions[1] == pytest.approx([math.pi / 2, 1.0, math.radians(10)])
    assert load_csv(path).positions[1, 2] == pytest.approx(10.0)  # unit-less columns default to radians


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty trajectory"),
        ("t,a\n0,0\n", "first column must be the time"),
        ("time,a\n0,0\n1,x\n", ":3: column 'a': 'x' is not a number"),
        ("time,a\n0,0\n1\n", ":3: 1 values, expected 2"),
        ("time,a,a_deg\n0,0,0\n1,1,1\n", "a joint appears in two columns"),
        ("time,a\n0,0\n0,1\n", "increase strictly"),
        ("time\n0\n1\n", "no joint columns"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_csv(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_select_and_config_limits(tmp_path: Path) -> None:
    from armbus.controller.config import load_config

    cfg_path = Path(__file__).resolve().parents[2] / "docs" / "examples" / "arm.toml"
    cfg = load_config(cfg_path)
    traj = Trajectory(("elbow", "base"), [0.0, 1.0], [[0.0, 0.0], [0.1, 0.2]]).select(["base", "elbow"])
    assert traj.positions[1] == pytest.approx([0.2, 0.1])
    lim = JointLimits.from_config(cfg, traj.names)
    assert lim.max_acceleration[1] == math.inf
    with pytest.raises(TrajectoryError, match="no column for joint"):
        traj.select(["wrist"])


def test_csv_from_a_spreadsheet_with_units_in_cells_loads(tmp_path: Path) -> None:
    f = tmp_path / "excel.csv"
    f.write_bytes("\ufefftime,shoulder,elbow_deg\r\n0,0deg,0\r\n1.5,30deg,-0.5rad\r\n".encode())
    t = load_csv(f)
    assert t.names == ("shoulder", "elbow")
    assert t.positions[1].tolist() == pytest.approx([math.radians(30), -0.5])


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a text CSV file"),
        (b"time,j1\n0,0\n1e9,1\n", "a trajectory lasts at most 3600 s"),
        (b"time,j1\n0,0\n1,ten degrees\n", "is not a number or an angle with its unit"),
    ],
)
def test_bad_csv_files_are_one_clear_error(tmp_path: Path, content: bytes, needle: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_bytes(content)
    with pytest.raises(ConfigError, match=needle):
        load_csv(f)
