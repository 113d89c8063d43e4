"""``armbus sim --capture`` records the wire turnaround, and replay rebuilds the arm with it."""

from __future__ import annotations

import argparse
from pathlib import Path

from armbus.bus.link import LinkConfig
from armbus.controller.host import HostConfig, HostNode
from armbus.hil.ptyserver import _open_capture
from armbus.hil.simarm import SimArm
from armbus.hil.trace.reader import read_trace
from armbus.hil.trace.replay import replay_virtual
from armbus.hil.virtual_arm import DEFAULT_WIRE_TURNAROUND_NS, VirtualArm

TURNAROUND_NS = 3 * DEFAULT_WIRE_TURNAROUND_NS


def _record(path: Path) -> None:
    host = HostNode(HostConfig(link=LinkConfig(baud=1_000_000)))
    varm = VirtualArm(2, host=host, seed=5, turnaround_ns=TURNAROUND_NS)
    writer = _open_capture(varm, str(path), argparse.Namespace(seed=5))
    try:
        arm = SimArm(varm)
        assert len(arm.enumerate()) == 2
        arm.read_states()
        varm.run_for(1_000_000)
    finally:
        writer.close()


def test_capture_metadata_holds_the_turnaround_and_replay_uses_it(tmp_path: Path) -> None:
    path = tmp_path / "sim.pcapng"
    _record(path)
    trace = read_trace(path)
    assert trace.metadata["turnaround_ns"] == str(TURNAROUND_NS)
    assert trace.metadata["source"] == "armbus sim"
    same = replay_virtual(trace)
    assert same.ok and same.comparison.shifts and not any(same.comparison.shifts)
    other = replay_virtual(trace, turnaround_ns=DEFAULT_WIRE_TURNAROUND_NS)  # what replay assumed before
    assert any(other.comparison.shifts)
