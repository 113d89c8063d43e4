"""The arm API in simulated time: the same :class:`armbus.controller.arm.Arm`, waiting by running the virtual arm.

Theory of operation
-------------------
:class:`armbus.controller.arm.Arm` waits through a runner (:class:`armbus.controller.arm.Runner`). On a serial port that
is :class:`armbus.controller.runner.NodeRunner`: a reader thread and the wall clock. Here it is :class:`SimRunner`: the
sans-I/O :class:`armbus.controller.host.HostNode` is the host node of a :class:`armbus.hil.virtual_arm.VirtualArm` (its
kernel delivers the bytes and fires the node's timers), and every wait *runs the kernel* until the awaited outcome
arrives or the timeout passes in simulated time. ``sleep_until`` runs the kernel to that time. There is no thread and no
wall clock, so a run is exactly reproducible and a ten-second trajectory streams in well under a second.

Events the node reports are drained after every kernel event and handed to the listeners (a listener that
raises is logged, as on a port) and to the waiters keyed by msg_id, exactly as the threaded runner does.

Use :class:`SimArm`: ``SimArm(joints=6, seed=1)`` builds the virtual arm; ``SimArm(varm)`` takes one built with
``VirtualArm(n, host=HostNode(...))``. ``arm.virtual_arm`` is the simulation, for tests that look inside.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from armbus.bus.errors import ArmTimeoutError, UsageError
from armbus.bus.link import LinkConfig
from armbus.bus.wire import DEFAULT_BAUD, NS_PER_S
from armbus.controller.arm import Arm
from armbus.controller.config import ArmConfig
from armbus.controller.events import (
    HostEvent,
    PacketAcked,
    ReplyReceived,
    RequestFailed,
    RequestTimedOut,
    SendFailed,
    request_outcome,
    send_outcome,
)
from armbus.controller.host import HostConfig, HostNode
from armbus.hil.virtual_arm import VirtualArm

log = logging.getLogger(__name__)
T = TypeVar("T")
Listener = Callable[[HostEvent], None]
#: Simulated time the host link needs to open after the virtual arm is built (RESET / RESET_ACK, a few us at
#: 1 Mbaud; 5 ms leaves room for the joints' own link handshakes along the chain).
HANDSHAKE_NS = 5_000_000


class SimRunner:
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
        self._listeners: list[Listener] = []
        self._outcomes: dict[int, HostEvent] = {}  # msg_id -> outcome, for the waits in progress
        self._waiting: set[int] = set()
        self._closed = False

    @property
    def connected(self) -> bool:
        return not self._closed

    def now(self) -> int:
        return self.varm.kernel.now

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def call(self, fn: Callable[[HostNode, int], T]) -> T:
        if self._closed:
            raise UsageError(f"{self.name} is closed")
        result = fn(self.node, self.varm.kernel.now)
        self.varm.kernel.wake("host")
        self._pump()
        return result

    def _queue(self, fn: Callable[[HostNode, int], int]) -> int:
        """Like :meth:`call`, but the msg_id is awaited before any event is dispatched (it may fail at once)."""

        def queue(node: HostNode, now: int) -> int:
            msg_id = fn(node, now)
            self._waiting.add(msg_id)
            return msg_id

        return self.call(queue)

    def send(self, fn: Callable[[HostNode, int], int], timeout: float) -> int:
        msg_id = self._queue(fn)
        event = self._wait(msg_id, timeout, f"ack of packet {msg_id}")
        return send_outcome(self.name, msg_id, event)

    def request(self, fn: Callable[[HostNode, int], int], timeout: float) -> ReplyReceived:
        msg_id = self._queue(fn)
        event = self._wait(msg_id, timeout, f"reply to request {msg_id}", replies=True)
        return request_outcome(self.name, msg_id, event)

    def sleep_until(self, t_ns: int) -> None:
        kernel = self.varm.kernel
        if t_ns > kernel.now:
            kernel.run_until_true(self._pump_false, t_ns - kernel.now)
        self._pump()

    def close(self) -> None:
        self._closed = True

    # ------------------------------------------------------------------ internals
    def _wait(self, msg_id: int, timeout: float, what: str, replies: bool = False) -> HostEvent:
        kinds = (ReplyReceived, RequestFailed, RequestTimedOut) if replies else (PacketAcked, SendFailed)

        def done() -> bool:
            self._pump()
            event = self._outcomes.get(msg_id)
            return event is not None and isinstance(event, kinds)

        try:
            if not self.varm.kernel.run_until_true(done, int(timeout * NS_PER_S)):
                raise ArmTimeoutError(f"{self.name}: no {what} within {timeout:g} s (simulated)")
            return self._outcomes[msg_id]
        finally:
            self._waiting.discard(msg_id)
            self._outcomes.pop(msg_id, None)

    def _pump_false(self) -> bool:
        self._pump()
        return False

    def _pump(self) -> None:
        node = self.node
        while (event := node.next_event()) is not None:
            msg_id = getattr(event, "msg_id", None)
            if msg_id in self._waiting:
                kinds: tuple[type, ...] = (PacketAcked, SendFailed, ReplyReceived, RequestFailed, RequestTimedOut)
                if isinstance(event, kinds) and not (
                    isinstance(self._outcomes.get(msg_id), (ReplyReceived, RequestFailed, RequestTimedOut))
                ):
                    self._outcomes[msg_id] = event
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # a user callback must never stop the simulation
                    log.exception("%s: event listener %r raised on %r", self.name, listener, event)


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
        elif virtual_arm_options:
            raise UsageError("pass VirtualArm options only when SimArm builds the virtual arm")
        runner = SimRunner(virtual_arm)
        super().__init__(runner, config, timeout, on_close)
        self.virtual_arm = virtual_arm
        runner.sleep_until(runner.now() + HANDSHAKE_NS)
        if heartbeat_period is not None:
            self.set_heartbeat(heartbeat_period)
