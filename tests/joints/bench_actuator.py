"""Benchmark: per-step cost of the actuator model, plain floats (joints.actuator) vs a numpy-vectorised step.

Run: .venv/bin/python tests/joints/bench_actuator.py
Prints the median of several repetitions of advancing 6 joints by 1 s of simulated time in 1 ms calls, for the
float model and for an equivalent numpy model stepping all six joints as arrays, and their ratio; then the cost
of 6 whole joint nodes (control core ticks, register publish, links idle) for the same second, as a multiple of
the bare float actuators.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from joints.actuator import COPPER_ALPHA, Actuator, ActuatorParams
from joints.node import make_joint

JOINTS = 6
CALLS = 1000  # 1 s of simulated time at 1 kHz
REPEATS = 5


def run_float() -> float:
    acts = [Actuator(ActuatorParams()) for _ in range(JOINTS)]
    for k, a in enumerate(acts):
        a.set_voltage(1.0 + k)
    t0 = time.perf_counter()
    for step in range(1, CALLS + 1):
        now = step * 1_000_000
        for a in acts:
            a.advance(now)
    return time.perf_counter() - t0


def run_numpy() -> float:
    p = ActuatorParams()
    v = np.arange(1.0, JOINTS + 1.0)
    w = np.zeros(JOINTS)
    i = np.zeros(JOINTS)
    pos = np.zeros(JOINTS)
    temp = np.full(JOINTS, p.ambient_temperature)
    h = p.max_step_ns * 1e-9
    sub = 1_000_000 // p.max_step_ns
    e = np.exp(-h * p.resistance / p.inductance)
    et = np.exp(-h / p.thermal_time_constant)
    j, kt, ke = p.output_inertia, p.output_torque_constant, p.torque_constant * p.gear_ratio
    t0 = time.perf_counter()
    for _ in range(CALLS):
        for _ in range(sub):
            r = p.resistance * (1.0 + COPPER_ALPHA * (temp - 20.0))
            i_ss = (v - ke * w) / r
            i = np.clip(i_ss + (i - i_ss) * e, -p.hw_current_limit, p.hw_current_limit)
            drive = kt * i - p.coulomb_friction * np.sign(w)
            w_new = (w + h / j * drive) / (1.0 + h * p.viscous_friction / j)
            w_new = np.where(w * w_new < 0.0, 0.0, w_new)
            pos = pos + 0.5 * (w + w_new) * h
            w = w_new
            t_ss = p.ambient_temperature + i * i * r * p.thermal_resistance
            temp = t_ss + (temp - t_ss) * et
    return time.perf_counter() - t0


def run_nodes() -> float:
    nodes = [make_joint(serial=k) for k in range(JOINTS)]
    t0 = time.perf_counter()
    for step in range(1, CALLS + 1):
        now = step * 1_000_000
        for n in nodes:
            n.handle_timer(now)
    return time.perf_counter() - t0


def main() -> None:
    f = statistics.median(run_float() for _ in range(REPEATS))
    n = statistics.median(run_numpy() for _ in range(REPEATS))
    print(f"6 joints x 1 s simulated at 1 kHz, median of {REPEATS}:")
    print(f"  plain float model : {f * 1e3:8.2f} ms  ({f / (JOINTS * CALLS) * 1e6:.2f} us per joint-step)")
    print(f"  numpy vectorised  : {n * 1e3:8.2f} ms")
    print(f"  numpy / float     : {n / f:8.2f}x")
    j = statistics.median(run_nodes() for _ in range(REPEATS))
    print(f"  6 joint nodes     : {j * 1e3:8.2f} ms  ({j / f:.1f}x the bare actuators; real-time factor {1 / j:.1f})")


if __name__ == "__main__":
    main()
