"""The joint's line rates: the rate of each UART port, and the switch of a running chain to other rates.

Theory of operation
-------------------
A joint has two UART ports, UP (toward the host) and DOWN (toward the next joint), each with its own rate. The
rates it boots with are the persistent registers ``up_baud`` and ``down_baud``; the host cannot write them
directly, because a joint that changed its rate alone would cut the chain. It changes them with a switch on
trial, driven by register writes (no message type of its own; docs/joints.md, "Line rate", gives the procedure
byte for byte):

1. *stage*: the host writes ``baud_next_up``, ``baud_next_down`` (0 = keep), ``baud_delay`` and ``baud_trial``
   to each joint. A staged rate that is not in :data:`armbus.bus.wire.SUPPORTED_BAUDS`, or that this joint's
   UARTs cannot run (``JointNode.max_baud``), is refused (ERROR LIMIT), so the host learns before anything
   switches that a joint cannot follow.
2. *commit*: ``baud_command`` = COMMIT (a broadcast WRITE). The joint is ARMED: ``baud_delay`` ms later it
   switches both ports at the same instant to the staged rates, keeps the old ones, and is on TRIAL.
3. *confirm*: ``baud_command`` = CONFIRM, which the host sends once the whole chain has answered at the new
   rates. The trial rates are stored in ``up_baud`` / ``down_baud`` and the joint is IDLE again.
4. *fallback*: a joint on trial that is not confirmed within ``baud_trial`` ms goes back to the old rates by
   itself (REVERTED), as does one that is cancelled (CANCEL) or rebooted (it boots with the persistent rates).
   A switch that does not work therefore leaves every joint at the old rates, whatever the host does.

Safety: the switch touches only the UARTs. It never posts a command to the control core, so it cannot start
motion; the e-stop path (handlers.on_estop: a direct call into the control core) does not depend on it. While
the two ends of a link disagree on the rate (the instant between a joint's switch and its neighbour's, or a
failed switch until the trial ends), frames on that link arrive as line noise, are counted by the deframer and
retransmitted by the hop link when the rates agree again: an e-stop too, which therefore reaches the joints
beyond such a link at most ``baud_trial`` late (their watchdog, if armed, stops them meanwhile).

:class:`RateSwitch` is sans-I/O like the rest of the joint: the node calls :meth:`RateSwitch.handle_timer` at
:meth:`RateSwitch.next_deadline` and re-times its links (each :class:`armbus.bus.link.LinkEndpoint` takes a
:class:`armbus.bus.link.LinkConfig` with its port's rate) when the rates change. :func:`check_write` and
:func:`apply_write` are what the register-write path (:func:`armbus.joints.handlers.apply_write`) calls.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from armbus.bus.link import LinkConfig, LinkEndpoint
from armbus.bus.router import DOWN, UP
from armbus.bus.wire import NS_PER_MS, SUPPORTED_BAUDS, ErrorKind
from armbus.joints.registers import STAGED_RATES, RateCommand, RateState, RegisterFile

if TYPE_CHECKING:
    from armbus.joints.node import JointNode

#: Fastest rate a joint's UART runs by default: the fastest supported rate (a joint model with a slower UART
#: passes its own ``max_baud`` and refuses faster staged rates with ERROR LIMIT).
MAX_UART_BAUD = max(SUPPORTED_BAUDS)
#: Registers whose write goes through this module.
RATE_REGISTERS = frozenset({*STAGED_RATES, "baud_delay", "baud_trial", "baud_command"})
_SETTINGS = RATE_REGISTERS - {"baud_command"}  # what a switch under way keeps
_STAGED_REGISTER = {UP: "baud_next_up", DOWN: "baud_next_down"}
_BUSY_STATES = (RateState.ARMED, RateState.TRIAL)


class RateSwitch:
    """The rates of one joint's two ports and its switch state (see the module docstring)."""

    def __init__(self, registers: RegisterFile, rates: list[int] | None = None) -> None:
        self.registers = registers
        #: The ports' rates, indexed by port: ``rates`` if given (the node's list, changed in place), set to the
        #: stored rates.
        self.port_rates = rates if rates is not None else [0, 0]
        self.port_rates[:] = [registers.get("up_baud"), registers.get("down_baud")]
        self._old: tuple[int, int] | None = None  # the rates before the trial
        self._switch_at: int | None = None
        self._revert_at: int | None = None
        #: Switches made and trials that ended unconfirmed, since boot.
        self.switches = 0
        self.reverts = 0
        self._set_state(RateState.IDLE)

    # ------------------------------------------------------------------------------------------ queries
    def baud(self, port: int) -> int:
        """The rate port ``port`` (UP or DOWN) runs at now."""
        return self.port_rates[port]

    @property
    def state(self) -> RateState:
        return RateState(self.registers.get("baud_state"))

    def link_config(self, base: LinkConfig, port: int) -> LinkConfig:
        """``base`` at port ``port``'s current rate."""
        rate = self.port_rates[port]
        return base if base.baud == rate else dataclasses.replace(base, baud=rate)

    def next_deadline(self) -> int | None:
        return self.deadline

    @property
    def deadline(self) -> int | None:
        """When :meth:`handle_timer` is due next (the switch, or the end of the trial), or None."""
        return self._switch_at if self._switch_at is not None else self._revert_at

    # ------------------------------------------------------------------------------------------ inputs
    def check(self, values: dict[str, int], max_baud: int = MAX_UART_BAUD) -> ErrorKind | None:
        """Refuse a rate write this joint cannot take: a staged rate above ``max_baud`` (its UARTs' fastest), or
        a change while a switch is under way (the register table has checked each value's range and that a
        staged rate is 0 or supported)."""
        if any(values.get(name, 0) > max_baud for name in STAGED_RATES):
            return ErrorKind.LIMIT
        busy = self.state in _BUSY_STATES
        command = values.get("baud_command", RateCommand.NONE)
        if busy and (command == RateCommand.COMMIT or _SETTINGS & values.keys()):
            return ErrorKind.BUSY  # the switch under way keeps its settings
        if command == RateCommand.CONFIRM and self.state is not RateState.TRIAL:
            return ErrorKind.BUSY  # nothing on trial to confirm
        return None

    def command(self, command: int, now: int) -> bool:
        """Carry out a checked ``baud_command``; True if the ports' rates changed (a cancelled trial)."""
        changed = False
        regs = self.registers
        if command == RateCommand.COMMIT:
            self._switch_at = now + regs.get("baud_delay") * NS_PER_MS
            self._set_state(RateState.ARMED)
        elif command == RateCommand.CONFIRM:
            regs.set("up_baud", self.port_rates[UP])
            regs.set("down_baud", self.port_rates[DOWN])
            self._end(RateState.IDLE)
        elif command == RateCommand.CANCEL:
            if self._switch_at is not None:
                self._switch_at = None
                self._set_state(RateState.IDLE)
            elif self.state is RateState.TRIAL:
                self._revert()
                changed = True
        regs.set("baud_command", RateCommand.NONE)  # a command register reads 0
        return changed

    def handle_timer(self, now: int) -> bool:
        """Switch or revert when due; True if the ports' rates changed (the node re-times its links)."""
        if self._switch_at is not None and now >= self._switch_at:
            regs = self.registers
            self._switch_at = None
            self._old = (self.port_rates[UP], self.port_rates[DOWN])
            for port in (UP, DOWN):
                self.port_rates[port] = regs.get(_STAGED_REGISTER[port]) or self.port_rates[port]
            self._revert_at = now + regs.get("baud_trial") * NS_PER_MS
            self.switches += 1
            self._set_state(RateState.TRIAL)
            return True
        if self._revert_at is not None and now >= self._revert_at:
            self._revert()
            return True
        return False

    # ------------------------------------------------------------------------------------------ helpers
    def _revert(self) -> None:
        assert self._old is not None
        self.port_rates[:] = self._old
        self.reverts += 1
        self._end(RateState.REVERTED)

    def _end(self, state: RateState) -> None:
        self._old = None
        self._revert_at = None
        for name in STAGED_RATES:
            self.registers.set(name, 0)
        self._set_state(state)

    def _set_state(self, state: RateState) -> None:
        self.registers.set("baud_state", state)


def retime(links: list[LinkEndpoint], rates: RateSwitch, base: LinkConfig) -> None:
    """Give each port's link endpoint its port's current rate (its timers follow from the next frame on)."""
    for port in (UP, DOWN):
        links[port].config = rates.link_config(base, port)


def check_write(node: JointNode, values: dict[str, int]) -> ErrorKind | None:
    """Part of a register write's complete check: None when the rate registers in ``values`` may be written."""
    if RATE_REGISTERS.isdisjoint(values):
        return None
    return node.rates.check(values, node.max_baud)


def apply_write(node: JointNode, values: dict[str, int], now: int) -> None:
    """After a checked register write: carry out its ``baud_command``."""
    command = values.get("baud_command", RateCommand.NONE)
    if command != RateCommand.NONE and node.rates.command(command, now):
        retime(node.links, node.rates, node.link_config)
