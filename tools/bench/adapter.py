"""Adapter benchmark: request round trips behind USB-serial adapter models, side by side in one run.

Theory of operation
-------------------
Each row is one adapter model (:mod:`armbus.hil.adapter`) between the host and joint 1 of a 6-joint arm at
1 Mbaud: the ideal link, FTDI at 16 ms (Linux's default latency timer), FTDI at 1 ms, CDC-ACM, and FTDI at 16 ms
with joints whose link timers allow for the adapter. The host's link turnaround covers the adapter as
:mod:`armbus.controller.ports` sets it for a real port (:attr:`armbus.hil.adapter.AdapterSpec.host_turnaround_ns`).

* **Simulated time** (always; deterministic and fast): :class:`armbus.hil.simarm.SimArm` runs ``requests``
  back-to-back PINGs to joint 1, then ``requests`` PINGs each after a seeded random pause of 0..20 ms
  (isolated requests meet the adapter at any phase), then ``requests`` SYNC_READs of every joint's state block.
  The round trip is the host clock from the call to the reply; p50 and p99 are nearest-rank percentiles.
  Joint 1's retransmissions toward the host per request show what the adapter does to the joints' link timers.
* **The pty arm** (unless ``--quick`` or ``--no-pty``): the same back-to-back requests against
  ``armbus sim --adapter SPEC`` in its own process (paced, wall clock), through the sync
  :class:`armbus.controller.arm.Arm`.
* **Cyclic loop** (simulated time): :func:`cyclic_loop_figure` runs the pipelined cyclic exchange
  (:meth:`armbus.controller.arm.Arm.cyclic`) at :data:`CYCLIC_HZ` behind the adapter for :data:`CYCLIC_S` and
  gives its state age p99 and the share of cycles missed. The host link is stop-and-wait: behind USB each reply
  of joint 1 waits for an IN frame and its ack for the next OUT frame, about two frames plus the reply's wire time
  per cycle, which bounds the rate below the ideal link's (printed; see docs/performance.md).

Claims (:func:`claims`; the run exits 1 when one fails): in simulated time, FTDI at 1 ms and CDC-ACM keep a PING
within the ideal link's + 2 USB frames (a frame's wait each way) and a SYNC_READ within + 3 frames (its reply
spans packets, one per frame); back-to-back PINGs behind FTDI at 16 ms with patient joints take the latency timer,
16 ms, to 16 ms + 2 frames. On the pty arm the PING bounds hold with the host's scheduling slack added
(:data:`armbus.controller.ports.HOST_SLACK_NS`); its SYNC_READ, six real-time hops, is reported only.

``python -m armbus.tools.bench.adapter [--quick] [--no-pty] [--requests N] [--json]``; :func:`run` for
``armbus bench`` and the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from armbus.bus.errors import ExitCode
from armbus.bus.link import LinkConfig
from armbus.bus.messages import Ping
from armbus.bus.wire import DEFAULT_BAUD, NS_PER_MS, NS_PER_S
from armbus.controller.arm import Arm
from armbus.controller.host import HostConfig, HostNode
from armbus.controller.ports import GOOD_LATENCY_MS, HOST_SLACK_NS, USB_FRAME_NS
from armbus.hil.adapter import AdapterSpec, parse_adapter
from armbus.hil.simarm import SimArm
from armbus.hil.virtual_arm import VirtualArm
from armbus.joints.node import UP

#: (label, spec, joints allow for the adapter in their link timers) of each row, in print order.
ROWS: tuple[tuple[str, str, bool], ...] = (
    ("ideal", "ideal", False),
    ("ftdi:latency=16ms", "ftdi:latency=16ms", False),
    ("ftdi:latency=1ms", "ftdi:latency=1ms", False),
    ("cdc-acm", "cdc-acm", False),
    ("ftdi:latency=16ms, joints wait", "ftdi:latency=16ms", True),
)
#: Requests per measurement: full run and --quick.
REQUESTS, QUICK_REQUESTS = 200, 30
#: Longest random pause before an isolated PING: more than the longest latency timer measured here.
ISOLATED_PAUSE_NS = 20 * NS_PER_MS
JOINTS, SEED = 6, 1


@dataclass
class Figures:
    """Round trips of one row, in ms."""

    label: str
    ping_p50: float
    ping_p99: float
    sync_p50: float
    sync_p99: float
    isolated_p50: float | None = None
    resends: float | None = None  # joint 1's retransmissions toward the host per request
    cyclic: float | None = None  # the cyclic loop's state age p99 (ms) at CYCLIC_HZ
    cyclic_missed: float | None = None  # its cycles missed (%)


def percentile(values: list[int], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of ``values`` (ns), in ms."""
    ordered = sorted(values)
    rank = math.ceil(len(ordered) * q / 100)
    return ordered[max(0, min(len(ordered) - 1, rank - 1))] / NS_PER_MS


def _timed(now: Callable[[], int], call: Callable[[], object], n: int,
           pause: Callable[[], None] | None = None) -> list[int]:
    out = []
    for _ in range(n):
        if pause is not None:
            pause()
        t0 = now()
        call()
        out.append(now() - t0)
    return out


#: The cyclic loop's rate and length behind each adapter (the 6-joint target at 1 Mbaud), in simulated time.
CYCLIC_HZ, CYCLIC_S, QUICK_CYCLIC_S = 500.0, 2.0, 0.5


def cyclic_loop_figure(spec: AdapterSpec, seconds: float = CYCLIC_S,
                       joints_wait: bool = False) -> tuple[float, float]:
    """(state age p99 ms, cycles missed %) of the cyclic loop at :data:`CYCLIC_HZ` behind ``spec``, simulated."""
    turnaround = spec.host_turnaround_ns or LinkConfig().turnaround_ns
    host = HostNode(HostConfig(link=LinkConfig(turnaround_ns=turnaround), reply_timeout_ns=NS_PER_S))
    joint_links = LinkConfig(turnaround_ns=turnaround) if joints_wait else None
    arm = SimArm(VirtualArm(JOINTS, host=host, seed=SEED, adapter=spec, link_config=joint_links), timeout=1.0)
    arm.enumerate()
    names = list(arm.model.joints)
    report = arm.cyclic(lambda view: {n: 0.05 * math.sin(view.deadline / NS_PER_S) for n in names},
                        CYCLIC_HZ).run(seconds)
    return report.age_p99_ms, report.missed_pct


def simulated(spec: AdapterSpec, joints_wait: bool, requests: int, label: str = "",
              cyclic_s: float = CYCLIC_S) -> Figures:
    """Round trips behind ``spec`` in simulated time (see the module docstring)."""
    turnaround = spec.host_turnaround_ns or LinkConfig().turnaround_ns
    host = HostNode(HostConfig(link=LinkConfig(turnaround_ns=turnaround), reply_timeout_ns=NS_PER_S))
    joint_links = LinkConfig(turnaround_ns=turnaround) if joints_wait else None
    varm = VirtualArm(JOINTS, host=host, seed=SEED, adapter=spec, link_config=joint_links)
    arm = SimArm(varm, timeout=1.0)
    arm.enumerate()
    link = varm.joints[0].links[UP].counters
    before = link.retransmits
    ping = _timed(arm.now, lambda: arm.request(Ping(), 1), requests)
    rng = random.Random(SEED)
    isolated = _timed(arm.now, lambda: arm.request(Ping(), 1), requests,
                      lambda: arm.sleep_until(arm.now() + rng.randrange(ISOLATED_PAUSE_NS)))
    sync = _timed(arm.now, arm.read_states, requests)
    resends = (link.retransmits - before) / (3 * requests)
    return Figures(label or str(spec), percentile(ping, 50), percentile(ping, 99), percentile(sync, 50),
                   percentile(sync, 99), percentile(isolated, 50), resends,
                   *cyclic_loop_figure(spec, cyclic_s, joints_wait))


def pty(spec: AdapterSpec, requests: int, label: str = "") -> Figures:
    """Back-to-back round trips against ``armbus sim --adapter SPEC`` in its own process, wall clock."""
    code = ("import argparse, sys; from armbus.hil.ptyserver import run_sim; sys.exit(run_sim(argparse.Namespace("
            f"joints={JOINTS}, baud={DEFAULT_BAUD}, seed={SEED}, faults=None, unpaced=False, capture=None, "
            f"link=None, json=True, adapter={str(spec)!r})))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        try:
            tty = str(json.loads(line)["tty"])
        except (ValueError, KeyError):
            raise RuntimeError(f"armbus sim did not start: {line!r}") from None
        with Arm.open(tty, DEFAULT_BAUD, timeout=1.0, turnaround_ns=spec.host_turnaround_ns) as arm:
            arm.enumerate()
            ping = _timed(time.monotonic_ns, lambda: arm.request(Ping(), 1), requests)
            sync = _timed(time.monotonic_ns, arm.read_states, requests)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return Figures(label or str(spec), percentile(ping, 50), percentile(ping, 99), percentile(sync, 50),
                   percentile(sync, 99))


def latency_consequence(latency_ms: int, sysfs_path: str, requests: int = 20) -> str:
    """What an FTDI latency timer of ``latency_ms`` does to a host's requests, in the model's figures against
    those at 1 ms (``armbus ports`` prints it), and the file to write the fix to."""
    spec = AdapterSpec("ftdi", latency_ms)
    locked = simulated(spec, True, requests)
    as_built = simulated(spec, False, requests)
    fast = simulated(AdapterSpec("ftdi", GOOD_LATENCY_MS), False, requests)
    return (f"FTDI latency timer {latency_ms} ms: back-to-back requests lock to it; in the adapter model ({JOINTS} "
            f"joints at {DEFAULT_BAUD} baud) a PING to joint 1 takes {locked.ping_p50:.1f} ms and a SYNC_READ of "
            f"every joint {locked.sync_p50:.1f} ms. Joints with the default link timers resend each reply "
            f"{as_built.resends or 0:.1f} times meanwhile, which flushes the chip early and makes round trips "
            f"erratic ({as_built.ping_p50:.1f} ms, p99 {as_built.ping_p99:.1f} ms). At {GOOD_LATENCY_MS} ms: "
            f"{fast.ping_p50:.1f} ms and {fast.sync_p50:.1f} ms. Write {GOOD_LATENCY_MS} to {sysfs_path} to get "
            f"~{fast.ping_p50:.0f} ms (docs/performance.md).")


def claims(rows: dict[str, Figures], slack_ns: int = 0, sync: bool = True) -> list[tuple[bool, str]]:
    """(holds, statement) of every claim the rows allow (see the module docstring); ``slack_ns`` is added to
    every bound (the host's scheduling slack on the pty arm), ``sync`` includes the SYNC_READ bounds."""
    frame, slack = USB_FRAME_NS / NS_PER_MS, slack_ns / NS_PER_MS
    plus = " + slack" if slack_ns else ""
    out: list[tuple[bool, str]] = []
    ideal = rows.get("ideal")
    for label in ("ftdi:latency=1ms", "cdc-acm"):
        r = rows.get(label)
        if ideal is None or r is None:
            continue
        bound = ideal.ping_p50 + 2 * frame + slack
        out.append((r.ping_p50 <= bound, f"{label}: PING p50 {r.ping_p50:.2f} ms <= ideal {ideal.ping_p50:.2f} ms "
                                         f"+ 2 USB frames{plus} ({bound:.2f} ms)"))
        if sync:
            bound = ideal.sync_p50 + 3 * frame + slack
            out.append((r.sync_p50 <= bound, f"{label}: SYNC_READ p50 {r.sync_p50:.2f} ms <= ideal "
                                             f"{ideal.sync_p50:.2f} ms + 3 USB frames{plus} ({bound:.2f} ms)"))
        if r.cyclic is not None and ideal.cyclic is not None and not slack_ns:
            bound = ideal.cyclic + frame
            out.append((r.cyclic <= bound, f"{label}: cyclic state age p99 {r.cyclic:.2f} ms <= ideal "
                                           f"{ideal.cyclic:.2f} ms + 1 USB frame ({bound:.2f} ms)"))
    locked = rows.get("ftdi:latency=16ms, joints wait")
    if locked is not None:
        lo = parse_adapter("ftdi:latency=16ms").latency_ms * 1.0
        hi = lo + 2 * frame + slack
        out.append((lo <= locked.ping_p50 <= hi, f"ftdi:latency=16ms, joints wait: back-to-back PING p50 "
                                                 f"{locked.ping_p50:.2f} ms is the latency timer ({lo:.0f} ms "
                                                 f"to {hi:.0f} ms)"))
    return out


def table(rows: list[Figures]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    head = (f"{'adapter':32s} {'PING p50':>9s} {'p99':>7s} {'isolated p50':>13s} {'SYNC_READ p50':>14s} "
            f"{'p99':>7s} {'j1 resends':>11s} {'cyc age p99':>12s} {'cyc missed %':>13s}")
    lines = [head]
    for r in rows:
        lines.append(f"{r.label:32s} {ms(r.ping_p50):>9s} {ms(r.ping_p99):>7s} {ms(r.isolated_p50):>13s} "
                     f"{ms(r.sync_p50):>14s} {ms(r.sync_p99):>7s} {ms(r.resends):>11s} {ms(r.cyclic):>12s} "
                     f"{ms(r.cyclic_missed):>13s}")
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m armbus.tools.bench.adapter", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REQUESTS} requests per figure instead of "
                                                             f"{REQUESTS}, simulated time only")
    parser.add_argument("--requests", type=int, default=None, help="requests per figure")
    parser.add_argument("--no-pty", action="store_true", help="simulated time only (no pty arm)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    n = args.requests or (QUICK_REQUESTS if args.quick else REQUESTS)
    if n < 1:
        parser.error("--requests must be at least 1")
    cyclic_s = QUICK_CYCLIC_S if args.quick or n < QUICK_REQUESTS else CYCLIC_S
    sim = [simulated(parse_adapter(spec), wait, n, label, cyclic_s) for label, spec, wait in ROWS]
    checks = claims({r.label: r for r in sim})
    real: list[Figures] = []
    if not (args.quick or args.no_pty):
        real = [pty(parse_adapter(spec), n, label) for label, spec, wait in ROWS if not wait]
        checks += claims({r.label: r for r in real}, HOST_SLACK_NS, sync=False)
    if args.json:
        print(json.dumps({"simulated": [asdict(r) for r in sim], "pty": [asdict(r) for r in real],
                          "claims": [{"holds": ok, "claim": text} for ok, text in checks]}, indent=2))
    else:
        print(f"request round trips (ms) behind USB-serial adapter models: {JOINTS} joints at {DEFAULT_BAUD} baud, "
              f"host turnaround covering the adapter, {n} requests each")
        print("simulated time (seed 1); isolated: each PING after a random 0..20 ms pause; j1 resends: joint 1's "
              "retransmissions toward the host per request")
        print(table(sim))
        print(f"cyc: the cyclic exchange at {CYCLIC_HZ:g} Hz for {cyclic_s:g} s (state age p99, cycles missed); "
              "behind USB the stop-and-wait host link waits about two USB frames per reply, which caps the loop "
              "(docs/performance.md)")
        if real:
            print("\npty arm (armbus sim --adapter SPEC, paced, wall clock; joints allow the real-time 1 ms)")
            print(table(real))
        print("\nclaims:")
        for ok, text in checks:
            print(f"  [{'ok' if ok else 'FAILED'}] {text}")
    return ExitCode.OK if all(ok for ok, _ in checks) else ExitCode.FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
