"""Benchmark: per-step cost of the actuator model, plain floats (armbus.joints.actuator) vs a numpy-vectorised step.

Run: .venv/bin/python tests/joints/bench_actuator.py [--baseline REV]
Prints the median of several repetitions of advancing 6 joints by 1 s of simulated time in 1 ms calls, for the
float model and for an equivalent numpy model stepping all six joints as arrays, and their ratio; then the cost
of 6 whole joint nodes (control core ticks, register publish, links idle) for the same second, as a multiple of
the bare float actuators: idle (torque off, at rest) and moving (torque on, a velocity goal).

With ``--baseline REV`` the joints package of git revision REV is loaded as a second package (``joints_base``)
and the node figures are measured for both, interleaved in the same process, with their ratio.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

import armbus.joints.node
from armbus.bus.wire import GoalMode
from armbus.joints.actuator import COPPER_ALPHA, Actuator, ActuatorParams

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


def run_nodes(node_mod: ModuleType, moving: bool) -> float:
    control = importlib.import_module(node_mod.__name__.rsplit(".", 1)[0] + ".control")
    nodes = [node_mod.make_joint(serial=k) for k in range(JOINTS)]
    if moving:
        for n in nodes:
            n.control.commands.put(control.Command(control.CommandKind.TORQUE, 1))
            n.control.commands.put(control.Command(control.CommandKind.SET_GOAL, GoalMode.VELOCITY, 1_000_000))
    t0 = time.perf_counter()
    for step in range(1, CALLS + 1):
        now = step * 1_000_000
        for n in nodes:
            n.handle_timer(now)
    return time.perf_counter() - t0


def load_baseline(rev: str) -> ModuleType:
    """The joints package of git revision ``rev``, importable as ``joints_base``."""
    root = Path(__file__).resolve().parents[2]
    tmp = Path(tempfile.mkdtemp(prefix="joints_base_"))
    pkg = tmp / "joints_base"
    pkg.mkdir()
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, "joints/"], cwd=root, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in names:
        text = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=root, check=True, capture_output=True,
                              text=True).stdout
        (pkg / Path(name).name).write_text(text.replace("from joints.", "from joints_base.")
                                           .replace("import joints.", "import joints_base."))
    sys.path.insert(0, str(tmp))
    return importlib.import_module("joints_base.node")


def median_interleaved(fns: list[Callable[[], float]]) -> list[float]:
    """Median of REPEATS runs of each, the runs interleaved so that machine load hits all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(REPEATS):
        for k, fn in enumerate(fns):
            times[k].append(fn())
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="REV", help="also measure the joints package of this git revision")
    args = parser.parse_args()
    f = statistics.median(run_float() for _ in range(REPEATS))
    n = statistics.median(run_numpy() for _ in range(REPEATS))
    print(f"6 joints x 1 s simulated at 1 kHz, median of {REPEATS}:")
    print(f"  plain float model : {f * 1e3:8.2f} ms  ({f / (JOINTS * CALLS) * 1e6:.2f} us per joint-step)")
    print(f"  numpy vectorised  : {n * 1e3:8.2f} ms")
    print(f"  numpy / float     : {n / f:8.2f}x")
    base = load_baseline(args.baseline) if args.baseline else None
    for moving in (False, True):
        label = "moving" if moving else "idle  "
        mods = [armbus.joints.node] + ([base] if base is not None else [])
        figures = median_interleaved([lambda m=m, mv=moving: run_nodes(m, mv) for m in mods])  # type: ignore[misc]
        j = figures[0]
        line = (f"  6 joint nodes, {label}: {j * 1e3:8.2f} ms  ({j / f:.1f}x the bare actuators; "
                f"real-time factor {1 / j:.1f})")
        if base is not None:
            line += f"; {args.baseline}: {figures[1] * 1e3:.2f} ms, now/before {j / figures[1]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
