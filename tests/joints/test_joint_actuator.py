"""Physics sanity of the actuator model: step response, current limit, thermal rise, encoder quantization."""

from __future__ import annotations

import math

import pytest

from armbus.bus.errors import UsageError
from armbus.joints.actuator import Actuator, ActuatorParams

MS = 1_000_000
S = 1_000_000_000


def test_no_load_speed_matches_back_emf() -> None:
    p = ActuatorParams(coulomb_friction=0.0, viscous_friction=0.0)
    a = Actuator(p)
    a.set_voltage(p.supply_voltage)
    a.advance(2 * S)
    expected = p.supply_voltage / (p.torque_constant * p.gear_ratio)
    assert a.velocity == pytest.approx(expected, rel=0.01)
    assert abs(a.current) < 0.01  # no torque needed without friction


def test_step_response_is_first_order_with_mechanical_time_constant() -> None:
    p = ActuatorParams(coulomb_friction=0.0, viscous_friction=0.0)
    a = Actuator(p)
    a.set_voltage(6.0)
    ke = p.torque_constant * p.gear_ratio
    tau = p.output_inertia * p.resistance / (p.output_torque_constant * ke)
    final = 6.0 / ke
    a.advance(round(tau * S))
    assert a.velocity == pytest.approx(final * (1 - math.exp(-1)), rel=0.03)
    a.advance(round(10 * tau * S))
    assert a.velocity == pytest.approx(final, rel=0.01)


def test_hardware_current_limit_clips_stall_current() -> None:
    a = Actuator(ActuatorParams(hw_current_limit=1.0))
    a.jammed = True
    a.set_voltage(12.0)
    a.advance(100 * MS)
    assert a.current == pytest.approx(1.0)
    assert a.velocity == 0.0


def test_voltage_saturates_at_supply() -> None:
    a = Actuator()
    a.set_voltage(100.0)
    assert a.voltage_cmd == a.supply_voltage
    a.supply_voltage = 6.0
    a.set_voltage(-100.0)
    assert a.voltage_cmd == -6.0


def test_coulomb_friction_holds_small_torque_and_never_reverses() -> None:
    p = ActuatorParams()
    a = Actuator(p)
    a.load_torque = 0.5 * p.coulomb_friction
    a.advance(S)
    assert a.velocity == 0.0 and a.position == 0.0
    a.load_torque = 0.0
    a.velocity = 1.0
    a.advance(2 * S)  # coasting with the bridge off: friction stops it, never reverses it
    assert a.velocity == 0.0 and a.position > 0.0


def test_thermal_rise_approaches_i2r_rth() -> None:
    p = ActuatorParams(thermal_time_constant=1.0)  # short constant so the test runs quickly
    a = Actuator(p)
    a.jammed = True
    a.set_voltage(3.0)
    a.advance(10 * S)
    i = a.current
    r = p.resistance * (1 + 0.00393 * (a.temperature - 20.0))
    assert a.temperature == pytest.approx(p.ambient_temperature + i * i * r * p.thermal_resistance, rel=0.01)
    assert a.temperature > p.ambient_temperature + 20.0
    a.coast()
    a.advance(20 * S)
    assert a.temperature == pytest.approx(p.ambient_temperature, abs=0.1)


def test_encoder_quantization_is_floor_of_counts() -> None:
    p = ActuatorParams()
    q = 1.0 / p.counts_per_output_rad
    for x in (0.0, 0.3 * q, 0.99 * q, 1.0 * q + 1e-12, -0.5 * q, 1.234567):
        a = Actuator(p, position=x)
        c = a.encoder_counts()
        assert c * q <= x + 1e-15 < (c + 1) * q


def test_noise_only_with_seed_and_reproducible() -> None:
    quiet = Actuator()
    assert quiet.sensed_current() == quiet.current
    a, b = Actuator(seed=7), Actuator(seed=7)
    sa = [a.sensed_current() for _ in range(5)]
    assert sa == [b.sensed_current() for _ in range(5)]
    assert len(set(sa)) == 5


def test_advance_is_independent_of_call_chunking() -> None:
    a, b = Actuator(), Actuator()
    for x in (a, b):
        x.set_voltage(5.0)
    a.advance(100 * MS)
    for k in range(1, 101):
        b.advance(k * MS)
    assert a.position == pytest.approx(b.position, rel=1e-9)
    assert a.time == b.time == 100 * MS


def test_set_noise_levels_encoder_noise_and_seed_rule() -> None:
    a = Actuator()
    with pytest.raises(UsageError, match="no noise seed"):
        a.set_noise(current=0.1)
    with pytest.raises(UsageError, match="encoder_counts must be a non-negative number"):
        a.set_noise(encoder_counts=-1.0, seed=1)
    assert a.encoder_counts() == 0 and a.sensed_current() == 0.0  # nothing changed
    a.set_noise(encoder_counts=20.0, seed=3)
    counts = [a.encoder_counts() for _ in range(50)]
    assert len(set(counts)) > 10 and abs(sum(counts) / len(counts)) < 10
    b = Actuator()
    b.set_noise(encoder_counts=20.0, seed=3)
    assert [b.encoder_counts() for _ in range(50)] == counts  # same seed, same noise
    a.set_noise(encoder_counts=0.0, current=0.0)
    assert {a.encoder_counts() for _ in range(10)} == {0} and a.sensed_current() == 0.0


def test_ambient_temperature_is_mutable_and_drives_the_thermal_model() -> None:
    p = ActuatorParams(thermal_time_constant=1.0)
    a = Actuator(p)
    a.ambient_temperature = 60.0
    a.advance(10 * S)  # bridge off: no heating, the winding settles at the new ambient
    assert a.temperature == pytest.approx(60.0, abs=0.01)
    assert a.params.ambient_temperature == 25.0  # the model's parameters are untouched
