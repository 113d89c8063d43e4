"""Loop-gain registers: the register table's gain box runs the stress moves without an excursion, the stress
bench does see the instability outside it, and writes outside the box are refused."""

from __future__ import annotations

import pytest

from armbus.bus.wire import ErrorKind
from armbus.joints.registers import BY_NAME, RegisterFile
from armbus.tools.campaigns.gainsweep import GAINS, GRAVITY_LOAD, U16_MAX, Condition, box_points, check, register_box

#: Short versions of the sweep's stress conditions (a +-0.5 rad range keeps the moves short): no speed allowed
#: with full current (a limit cycle judged against 0.2 rad/s); slow moves under the gravity load with full
#: current; no speed allowed under load with little current (current mode's speed limiter); the default limits
#: under load; both limits at their maxima (a limit cycle around the goal shows only in the final hold).
SHORT = (
    Condition(0, 2500, position_limit=500_000),
    Condition(500_000, 2500, GRAVITY_LOAD, position_limit=500_000),
    Condition(0, 300, GRAVITY_LOAD, position_limit=500_000),
    Condition(4_000_000, 1500, GRAVITY_LOAD, position_limit=500_000),
    Condition(20_000_000, 2500, position_limit=500_000),
)
#: The three of them that show each instability the gain ranges keep out, for the 32 corners (vel_kp too high
#: shows as current chatter heating the winding to its trip, which takes the slow moves under load).
CORNER = (SHORT[1], SHORT[2], SHORT[4])


def test_default_gains_run_the_stress_moves_cleanly() -> None:
    v = check({}, SHORT, stop_early=False)
    assert v.ok, v.why
    assert 0.5 < v.peak < 1.0  # the moves do reach the velocity limit


def test_every_corner_of_the_register_gain_box_runs_the_stress_moves_cleanly() -> None:
    corners = box_points(register_box(), 0, seed=1)
    assert len(corners) == 32
    for point in corners:
        v = check(point, CORNER)
        assert v.ok, f"{point}: {v.why}"


@pytest.mark.parametrize("gains", [{"vel_kp": U16_MAX}, {"cur_kp": U16_MAX}, {"cur_ki": U16_MAX}, {"vel_kp": 400}])
def test_the_stress_moves_catch_gains_outside_the_box(gains: dict[str, int]) -> None:
    """The unstable gains the table now refuses do fail the corners' check (so the corner test can fail)."""
    assert not check(gains, CORNER).ok


@pytest.mark.parametrize("name", GAINS)
def test_a_gain_write_outside_the_box_is_refused(name: str) -> None:
    r = BY_NAME[name]
    rf = RegisterFile()
    before = rf.get(name)
    for value in (r.maximum + 1, r.minimum - 1):
        if 0 <= value <= U16_MAX:
            assert rf.write(r.address, value.to_bytes(2, "little"), torque_on=False) is ErrorKind.LIMIT
            assert rf.get(name) == before  # nothing changed
    assert rf.write(r.address, r.maximum.to_bytes(2, "little"), torque_on=False) is None
    assert rf.get(name) == r.maximum
