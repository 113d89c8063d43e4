"""The arm API in simulated time: the same :class:`armbus.controller.arm.Arm`, waiting by running the virtual arm.

Theory of operation
-------------------
:class:`armbus.controller.arm.Arm` waits through a runner (:class:`armbus.controller.arm.Runner`). On a serial port that
is :class:`armbus.controller.runner.NodeRunner`: a reader thread and the wall clock. Here it is :class:`SimRunner`: the
sans-I/O :class:`armbus.controller.host.HostNode` is the host node of a :class:`armbus.hil.virtual_arm.VirtualArm` (its
kernel delivers the bytes and fires the node's timers), and every wait *runs the kernel* until the awaited outcome
arrives or the timeout passes in simulated time. ``sleep_until`` runs the kernel to that time. There is no thread and no
wall clock, so a run is exactly reproducible and a ten-second trajectory streams in well under a second.

Events the node reports are drained after every kernel event and handed, through the same
:class:`armbus.controller.fanout.Fanout` as the threaded runner's, to the waiters keyed by msg_id and then to the
listeners (a listener that raises is logged, as on a port).

Use :class:`SimArm`: ``SimArm(joints=6, seed=1)`` builds the virtual arm; ``SimArm(varm)`` takes one built with
``VirtualArm(n, host=HostNode(...))``. ``arm.virtual_arm`` is the simulation, for tests that look inside.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from armbus.bus.errors import ArmTimeoutError, UsageError
from armbus.bus.link import LinkConfig
from armbus.bus.wire import DEFAULT_BAUD, NS_PER_S
from armbus.controller.arm import Arm
from armbus.controller.baud import retune_host
from armbus.controller.config import ArmConfig
from armbus.controller.events import HostEvent
from armbus.controller.fanout import Fanout, OutcomeWaits
from armbus.controller.host import HostConfig, HostNode
from armbus.hil.virtual_arm import VirtualArm

log = logging.getLogger(__name__)
T = TypeVar("T")
Listener = Callable[[HostEvent], None]
#: Simulated time the host link needs to open after the virtual arm is built (RESET / RESET_ACK, a few us at
#: 1 Mbaud; 5 ms leaves room for the joints' own link handshakes along the chain).
HANDSHAKE_NS = 5_000_000


class _Outcome:
    """The slot a wait in progress watches: the fanout puts the awaited outcome in it."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event: HostEvent | None = None


class SimRunner(OutcomeWaits[HostNode]):
    """Runs a :class:`HostNode` that is the host of ``varm``; see the module docstring."""

    def __init__(self, varm: VirtualArm, name: str = "virtual") -> None:
        if not isinstance(varm.host, HostNode):
            raise UsageError(
                "SimArm needs a VirtualArm whose host is a controller HostNode: "
                "VirtualArm(n, host=HostNode()) (or let SimArm(joints=n) build it)"
            )
        self.varm = varm
        self.node: HostNode = varm.host
        self.name = name
        self._fanout: Fanout[_Outcome] = Fanout(name, log)
        self._closed = False

    @property
    def connected(self) -> bool:
        return not self._closed

    def now(self) -> int:
        return self.varm.kernel.now

    def add_listener(self, listener: Listener) -> None:
        self._fanout.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._fanout.remove_listener(listener)

    def call(self, fn: Callable[[HostNode, int], T]) -> T:
        if self._closed:
            raise UsageError(f"{self.name} is closed")
        result = fn(self.node, self.varm.kernel.now)
        self.varm.kernel.wake("host")
        self._pump()
        return result

    def sleep_until(self, t_ns: int) -> None:
        kernel = self.varm.kernel
        if t_ns > kernel.now:
            kernel.run_until_true(self._pump_false, t_ns - kernel.now)
        self._pump()

    def set_port_baud(self, baud: int) -> None:
        """The host's UART on the host-j1 link runs at ``baud`` from now on, and the host link's timers with it."""
        self.varm.set_host_baud(baud)
        self.node.link.config = retune_host(self.node.link.config, baud)

    def close(self) -> None:
        self._closed = True

    # ------------------------------------------------------------------ internals
    def _await(self, fn: Callable[[HostNode, int], int], timeout: float, what: str, *,
               reply: bool) -> tuple[int, HostEvent]:
        """Queue ``fn``'s packet with a waiter for its ack (or ``reply``) and run the kernel until that outcome
        arrives or ``timeout`` s of simulated time pass."""
        slot = _Outcome()
        msg_id = self.call(self._fanout.expecting(fn, slot, reply=reply))

        def done() -> bool:
            self._pump()
            return slot.event is not None

        try:
            if not self.varm.kernel.run_until_true(done, int(timeout * NS_PER_S)):
                raise ArmTimeoutError(f"{self.name}: no {what} {msg_id} within {timeout:g} s (simulated)")
            assert slot.event is not None
            return msg_id, slot.event
        finally:
            self._fanout.forget(msg_id, reply=reply)

    def _pump_false(self) -> bool:
        self._pump()
        return False

    def _pump(self) -> None:
        node = self.node
        while (event := node.next_event()) is not None:
            slot = self._fanout.take(event)
            if slot is not None:
                slot.event = event
            self._fanout.notify(event)  # a listener that raises is logged: the simulation goes on


class SimArm(Arm):
    """An :class:`Arm` on a simulated chain, in simulated time (see the module docstring)."""

    def __init__(
        self,
        virtual_arm: VirtualArm | None = None,
        *,
        joints: int = 6,
        seed: int = 0,
        baud: int = DEFAULT_BAUD,
        config: ArmConfig | None = None,
        timeout: float = 0.1,
        heartbeat_period: float | None = None,
        on_close: str = "hold",
        **virtual_arm_options: Any,
    ) -> None:
        if virtual_arm is None:
            host = HostNode(HostConfig(link=LinkConfig(baud=baud), reply_timeout_ns=int(timeout * NS_PER_S)))
            virtual_arm = VirtualArm(joints, host=host, seed=seed, baud=baud, **virtual_arm_options)
            chain = virtual_arm.joints[0].port_baud(1)  # the joint-to-joint rate (chain_baud, default baud)
            host.cycles.timing = dataclasses.replace(host.cycles.timing, host_baud=baud, chain_baud=chain)
        elif virtual_arm_options:
            raise UsageError("pass VirtualArm options only when SimArm builds the virtual arm")
        runner = SimRunner(virtual_arm)
        super().__init__(runner, config, timeout, on_close)
        self.virtual_arm = virtual_arm
        runner.sleep_until(runner.now() + HANDSHAKE_NS)
        if heartbeat_period is not None:
            self.set_heartbeat(heartbeat_period)
