"""A host node driving a virtual arm in simulated time: blocking requests, event fan-out, delivery observers.

Theory of operation
-------------------
:class:`SimDrive` puts a :class:`armbus.controller.host.HostNode` at the head of a
:class:`armbus.hil.virtual_arm.VirtualArm`. Code outside the kernel calls the host through :meth:`SimDrive.call` (which
wakes the host so that its output is drained at the current simulated time). :meth:`SimDrive.request` runs the
simulation until that request's outcome, handing every other event to :attr:`SimDrive.on_event`, so long-running scripts
can mix blocking setup steps (enumeration, torque) with a periodic loop scheduled by ``kernel.call_at``.

:func:`observe_deliveries` wraps a joint's router so that a callback sees every packet the joint takes for
itself, with the port it came in on, at the simulated instant of delivery. It survives reboots (the joint builds
a new router then) by wrapping each new router from the joint's ``start_hooks``. This is white-box observation for
measurement (duplicate and reorder checks at the receiver); the joint's behaviour is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from armbus.bus.codec import Packet
from armbus.bus.errors import ArmTimeoutError, PeerError
from armbus.bus.link import LinkConfig
from armbus.bus.messages import Enumerate, Message, Write
from armbus.bus.router import Delivered, RouterEvent
from armbus.bus.wire import DEFAULT_BAUD, NS_PER_MS, Address
from armbus.controller.events import HostEvent, ReplyReceived, RequestFailed, RequestTimedOut
from armbus.controller.fanout import REPLY_OUTCOMES
from armbus.controller.host import HostConfig, HostNode
from armbus.controller.ops import register
from armbus.hil.faults import LinkFaults
from armbus.hil.schedule import FaultSchedule
from armbus.hil.virtual_arm import VirtualArm
from armbus.joints.node import JointNode

#: The chain end learns it is last only when its forward toward the open connector fails (link retries).
ENUMERATE_TIMEOUT_NS = 3000 * NS_PER_MS

DeliveryCallback = Callable[[int, Packet, int], None]  # (port, packet, now)


class SimDrive:
    """Host node + virtual arm in simulated time."""

    def __init__(self, joints: int = 6, *, seed: int = 0, faults: LinkFaults | FaultSchedule | None = None,
                 host_config: HostConfig | None = None, baud: int = DEFAULT_BAUD) -> None:
        self.host = HostNode(host_config or HostConfig(link=LinkConfig(baud=baud), seed=seed))
        self.arm = VirtualArm(joints, host=self.host, faults=faults, seed=seed, baud=baud)
        self.kernel = self.arm.kernel
        self.on_event: Callable[[HostEvent], None] = lambda ev: None
        self._waiting: dict[int, HostEvent | None] = {}
        self.kernel.run_for(5 * NS_PER_MS)  # link handshakes

    @property
    def now(self) -> int:
        return self.kernel.now

    def call(self, fn: Callable[[HostNode, int], int]) -> int:
        """Run ``fn(host, now)`` now and drain the host's output; returns what ``fn`` returned (a msg_id)."""
        result = fn(self.host, self.kernel.now)
        self.kernel.wake("host")
        return result

    def pump_events(self) -> None:
        """Hand every pending host event to the waiter it resolves or to :attr:`on_event`."""
        while (ev := self.host.next_event()) is not None:
            msg_id = getattr(ev, "msg_id", None)
            if msg_id in self._waiting and isinstance(ev, REPLY_OUTCOMES):
                self._waiting[msg_id] = ev
            else:
                self.on_event(ev)

    def request(self, message: Message, dst: int, timeout_ns: int = 200 * NS_PER_MS) -> ReplyReceived:
        """Send a request and run the simulation until its outcome; raises PeerError / ArmTimeoutError."""
        msg_id = self.call(lambda h, now: h.request(message, dst, now, timeout_ns))
        self._waiting[msg_id] = None
        try:
            done = self.kernel.run_until_true(self._resolved(msg_id), timeout_ns + 10 * NS_PER_MS)
            outcome = self._waiting[msg_id]
        finally:
            del self._waiting[msg_id]
        if not done or outcome is None or isinstance(outcome, RequestTimedOut):
            raise ArmTimeoutError(f"no reply to {message.TYPE.name} for {dst} in {timeout_ns / NS_PER_MS:.0f} ms")
        if isinstance(outcome, RequestFailed):
            raise PeerError(f"{message.TYPE.name} to {dst} failed: {outcome.error}")
        assert isinstance(outcome, ReplyReceived)
        return outcome

    def _resolved(self, msg_id: int) -> Callable[[], bool]:
        def check() -> bool:
            self.pump_events()
            return self._waiting.get(msg_id) is not None

        return check

    def enumerate(self) -> int:
        """ENUMERATE the chain; returns the joint count found."""
        reply = self.request(Enumerate(), Address.BROADCAST, ENUMERATE_TIMEOUT_NS)
        return len(reply.message.records)  # type: ignore[attr-defined]

    def write(self, address: int, name: str, value: int) -> None:
        reg = register(name)
        data = value.to_bytes(reg.size, "little", signed=reg.signed)
        self.request(Write(reg.address, data), address)


def observe_deliveries(joint: JointNode, callback: DeliveryCallback) -> None:
    """Call ``callback(port, packet, now)`` for every packet ``joint`` takes for itself (see module docstring)."""

    def wrap_router() -> None:
        router = joint.router
        pump = router.pump

        def observed(now: int) -> list[RouterEvent]:
            events = pump(now)
            for ev in events:
                if isinstance(ev, Delivered) and ev.role is not None:
                    callback(ev.role, ev.packet, now)
            return events

        setattr(router, "pump", observed)  # noqa: B010 - instance attribute shadows the method

    def observed_start(now: int) -> None:
        wrap_router()

    joint.start_hooks.append(observed_start)  # the joint builds a new router on every boot
    wrap_router()
