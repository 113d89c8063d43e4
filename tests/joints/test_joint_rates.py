"""The joint's line rates: registers, the switch on trial, confirm, fallback, reboot and the safety rules."""

from __future__ import annotations

import struct

import pytest

from armbus.bus.wire import SUPPORTED_BAUDS, ErrorKind
from armbus.joints.handlers import apply_write
from armbus.joints.node import DOWN, UP, JointNode
from armbus.joints.registers import BY_NAME, RateCommand, RateState, RegisterFile

MS = 1_000_000
STAGE = BY_NAME["baud_next_up"].address
COMMAND = BY_NAME["baud_command"].address


def stage(node: JointNode, up: int, down: int, delay_ms: int = 20, trial_ms: int = 500,
          now: int = 0) -> ErrorKind | None:
    return apply_write(node, STAGE, struct.pack("<IIHH", up, down, delay_ms, trial_ms), now)


def command(node: JointNode, cmd: RateCommand, now: int) -> ErrorKind | None:
    return apply_write(node, COMMAND, bytes((cmd,)), now)


def run(node: JointNode, until: int) -> None:
    """Fire the node's timers up to ``until`` (nothing is connected: links just probe)."""
    while (d := node.next_deadline()) is not None and d <= until:
        node.handle_timer(d)
        for port in (UP, DOWN):
            node.data_to_send(port, d)


def test_rates_are_persistent_read_only_and_staged_values_must_be_supported() -> None:
    regs = RegisterFile()
    assert BY_NAME["up_baud"].persistent and BY_NAME["down_baud"].persistent
    assert regs.check_write(BY_NAME["up_baud"].address, struct.pack("<I", 3_000_000), False)[0] is ErrorKind.ACCESS
    node = JointNode(port_bauds=(1_000_000, 2_000_000))
    assert (node.port_baud(UP), node.port_baud(DOWN)) == (1_000_000, 2_000_000)
    assert node.links[DOWN].config.baud == 2_000_000
    assert stage(node, 1_234_567, 0) is ErrorKind.LIMIT  # not a supported rate
    assert stage(node, 0, 0) is None  # 0 keeps a port's rate
    assert all(stage(node, rate, rate) is None for rate in SUPPORTED_BAUDS)
    slow = JointNode(max_baud=2_000_000)
    assert stage(slow, 3_000_000, 3_000_000) is ErrorKind.LIMIT  # its UART cannot run it
    assert command(node, RateCommand.CONFIRM, 0) is ErrorKind.BUSY  # nothing on trial


def test_commit_switches_both_ports_at_one_instant_and_confirm_makes_the_rates_stick() -> None:
    node = JointNode()
    assert stage(node, 3_000_000, 4_000_000, delay_ms=20, trial_ms=100) is None
    assert command(node, RateCommand.COMMIT, 1 * MS) is None
    assert node.registers.get("baud_command") == 0  # a command register reads 0
    assert node.rates.state is RateState.ARMED and node.next_deadline() <= 21 * MS
    assert stage(node, 0, 0) is ErrorKind.BUSY and command(node, RateCommand.COMMIT, 2 * MS) is ErrorKind.BUSY
    run(node, 21 * MS - 1)
    assert node.port_baud(UP) == 1_000_000
    run(node, 21 * MS)
    assert (node.port_baud(UP), node.port_baud(DOWN)) == (3_000_000, 4_000_000)
    assert (node.links[UP].config.baud, node.links[DOWN].config.baud) == (3_000_000, 4_000_000)
    assert node.rates.state is RateState.TRIAL and node.registers.get("up_baud") == 1_000_000
    assert command(node, RateCommand.CONFIRM, 50 * MS) is None
    assert node.rates.state is RateState.IDLE
    assert (node.registers.get("up_baud"), node.registers.get("down_baud")) == (3_000_000, 4_000_000)
    run(node, 500 * MS)
    assert node.port_baud(UP) == 3_000_000 and node.rates.reverts == 0
    node.reboot(600 * MS)  # the confirmed rates are what it boots with
    run(node, 700 * MS)
    assert (node.port_baud(UP), node.port_baud(DOWN)) == (3_000_000, 4_000_000)


@pytest.mark.parametrize("how", ["timeout", "cancel", "reboot"])
def test_an_unconfirmed_trial_goes_back_to_the_old_rates_by_itself(how: str) -> None:
    node = JointNode(port_bauds=(1_000_000, 2_000_000))
    stage(node, 3_000_000, 3_000_000, delay_ms=5, trial_ms=100)
    command(node, RateCommand.COMMIT, 0)
    run(node, 10 * MS)
    assert node.rates.state is RateState.TRIAL and node.port_baud(DOWN) == 3_000_000
    if how == "timeout":
        run(node, 104 * MS)
        assert node.port_baud(UP) == 3_000_000  # the trial lasts 100 ms from the switch at 5 ms
        run(node, 105 * MS)
    elif how == "cancel":
        command(node, RateCommand.CANCEL, 20 * MS)
    else:
        node.reboot(20 * MS)
        run(node, 60 * MS)
    assert (node.port_baud(UP), node.port_baud(DOWN)) == (1_000_000, 2_000_000)
    assert (node.links[UP].config.baud, node.links[DOWN].config.baud) == (1_000_000, 2_000_000)
    assert node.rates.state is (RateState.IDLE if how == "reboot" else RateState.REVERTED)
    assert node.registers.get("up_baud") == 1_000_000 and node.registers.get("baud_next_up") == 0


def test_a_switch_posts_nothing_to_the_control_core_and_an_e_stop_on_trial_still_stops() -> None:
    node = JointNode()
    posted = node.control.commands.posted
    stage(node, 3_000_000, 3_000_000, delay_ms=1, trial_ms=50)
    command(node, RateCommand.COMMIT, 0)
    run(node, 2 * MS)
    assert node.rates.state is RateState.TRIAL
    assert node.control.commands.posted == posted  # no goal, no torque: the switch cannot start motion
    node.control.estop(3 * MS)
    run(node, 10 * MS)
    assert node.registers.get("estop") == 1 and node.rates.state is RateState.TRIAL
    run(node, 60 * MS)
    assert node.rates.state is RateState.REVERTED and node.registers.get("estop") == 1
