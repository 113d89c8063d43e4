"""The virtual arm: N simulated joints chained behind a host port, in simulated time.

Theory of operation
-------------------
:class:`VirtualArm` builds a :class:`armbus.hil.kernel.Kernel` with nodes ``host``, ``j1`` .. ``jN`` and links
``host-j1``, ``j1-j2``, ... (host port 0 <-> j1.UP, j1.DOWN <-> j2.UP, ...). On every link direction A_TO_B
is downstream (away from the host) and B_TO_A upstream. The last joint's DOWN port stays unconnected: what it
sends there is discarded, as on a real chain whose last connector is open.

The host side is either a node the caller passes in (``host=``, anything that follows the node-driving
contract, e.g. the controller's sans-I/O host) or, by default, a :class:`HostPort`: a byte pipe the host code
writes to and reads from between ``run_*`` calls, like a serial port whose clock is the simulation's.

Line rates: the host link (host <-> j1) runs at ``baud`` and every joint-to-joint link at ``chain_baud``
(default: ``baud``); each joint is set to them as it leaves the factory (its persistent ``up_baud`` /
``down_baud``), and follows a rate switch from then on (:mod:`armbus.joints.rates`): the kernel re-reads each
joint's ``port_baud`` after every call into it. The host's end of the host link is the host's own: a
:class:`HostPort` or host node is re-timed with :meth:`VirtualArm.set_host_baud` (the host program set its
serial port's rate). Joints use ``link_config`` (:class:`armbus.bus.link.LinkConfig`, default: its defaults) at
each port's rate; a real-time arm behind a pty passes a longer turnaround, since its host is a program on a busy
machine.

Adapter: ``adapter`` (a spec such as ``"ftdi:latency=16ms"``, see :mod:`armbus.hil.adapter`) puts a USB-serial
adapter model between the host and the host-j1 wire: the kernel node ``host`` is then an
:class:`armbus.hil.adapter.AdapterNode` around the host, the wire delivers joint 1's bytes to it one by one, and
the host (``.host``, ``.port``) sees them at the model's instants. :meth:`VirtualArm.add_tap` records those
instants for the host side. The default, ``ideal``, is no adapter.

Firmware: ``firmware`` chooses what each joint runs (:mod:`armbus.hil.firmware.choice`): ``"python"`` (the
default, :class:`armbus.joints.node.JointNode`), ``"c"`` (the C firmware, :class:`armbus.hil.firmware.cjoint.CJoint`)
or one of them per joint (``"c,python,c"``). Either gives the same bytes on every link for the same seed.

Faults: ``faults`` is a :class:`armbus.hil.faults.LinkFaults` applied to every link direction, or a
:class:`armbus.hil.schedule.FaultSchedule`, or None; all random decisions derive from ``seed``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from armbus.bus.errors import UsageError
from armbus.bus.link import LinkConfig
from armbus.bus.wire import DEFAULT_BAUD, Address
from armbus.hil.adapter import AdapterNode, AdapterSpec, UsbAdapter, parse_adapter
from armbus.hil.faults import FaultInjector, LinkFaults
from armbus.hil.firmware.choice import joint_class, parse_firmware
from armbus.hil.kernel import Granularity, Kernel, Node, Tap
from armbus.hil.schedule import FaultSchedule
from armbus.hil.wire import Direction, check_baud
from armbus.joints.node import DEFAULT_MODEL, DOWN, FORWARD_LATENCY_NS, UP, JointNode

#: Sender turnaround on every wire: a microcontroller's receive-interrupt-to-transmit latency (model choice:
#: 10 us, the joints' own FORWARD_LATENCY_NS, well inside LinkConfig.turnaround_ns = 50 us that the link timeouts
#: allow for both ends together).
DEFAULT_WIRE_TURNAROUND_NS = FORWARD_LATENCY_NS
#: Most joints a chain can hold: the joint addresses 1..253 (armbus.bus.wire.Address).
MAX_JOINTS = int(Address.LAST_JOINT)
#: The link between the host and joint 1.
HOST_LINK = "host-j1"


class HostPort:
    """Host end of the chain as a byte pipe: ``write`` bytes to send, ``read`` what has arrived."""

    ports = (0,)

    def __init__(self) -> None:
        self._tx = bytearray()
        self._rx = bytearray()
        self._kernel: Kernel | None = None
        self._name = "host"
        #: (arrival time, bytes) of every delivery, for tests that care about timing.
        self.arrivals: list[tuple[int, bytes]] = []

    def attach(self, kernel: Kernel, name: str) -> None:
        self._kernel, self._name = kernel, name

    def write(self, data: bytes) -> None:
        """Queue bytes; they go on the wire at the current simulated time."""
        self._tx += data
        if self._kernel is not None:
            self._kernel.wake(self._name)

    def read(self, size: int | None = None) -> bytes:
        """Take up to ``size`` (default: all) received bytes."""
        n = len(self._rx) if size is None else min(size, len(self._rx))
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    # node-driving contract
    def receive_data(self, port: int, data: bytes, now: int) -> None:
        self._rx += data
        self.arrivals.append((now, bytes(data)))

    def data_to_send(self, port: int, now: int) -> bytes:
        out = bytes(self._tx)
        self._tx.clear()
        return out

    def next_deadline(self) -> int | None:
        return None

    def handle_timer(self, now: int) -> None:
        pass


class VirtualArm:
    """A chain of ``joints`` simulated joints behind a host, in simulated time."""

    def __init__(
        self,
        joints: int = 6,
        *,
        baud: int = DEFAULT_BAUD,
        models: int | Sequence[int] = DEFAULT_MODEL,
        faults: LinkFaults | FaultSchedule | None = None,
        seed: int = 0,
        host: Node | None = None,
        turnaround_ns: int = DEFAULT_WIRE_TURNAROUND_NS,
        granularity: Granularity | str = Granularity.FRAME,
        link_config: LinkConfig | None = None,
        chain_baud: int | None = None,
        adapter: AdapterSpec | str | None = None,
        firmware: str | Sequence[str] | None = None,
    ) -> None:
        if isinstance(joints, bool) or not isinstance(joints, int) or not 1 <= joints <= MAX_JOINTS:
            raise UsageError(f"joints must be an integer 1..{MAX_JOINTS} (the joint addresses), got {joints!r}")
        check_baud(baud)
        chain = baud if chain_baud is None else check_baud(chain_baud)
        spec = parse_adapter(adapter)
        spec.check_baud(baud)
        model_list = [models] * joints if isinstance(models, int) else list(models)
        if len(model_list) != joints:
            raise UsageError(f"models lists {len(model_list)} model(s) for {joints} joint(s)")
        for m in model_list:
            if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= 0xFFFF:
                raise UsageError(f"model numbers are u16 (0..65535), got {m!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UsageError(f"seed must be an integer, got {seed!r}")
        kinds = parse_firmware(firmware, joints)
        #: The firmware each joint runs ("python" or "c"), in chain order.
        self.firmware = kinds
        if faults is not None and not isinstance(faults, (LinkFaults, FaultSchedule)):
            raise UsageError(f"faults must be LinkFaults, FaultSchedule or None, got {type(faults).__name__}")
        default = faults if isinstance(faults, LinkFaults) else None
        self.kernel = Kernel(faults=FaultInjector(seed, default), granularity=granularity)
        self.host: Node = host if host is not None else HostPort()
        self.port: HostPort | None = self.host if isinstance(self.host, HostPort) else None
        if link_config is not None and not isinstance(link_config, LinkConfig):
            raise UsageError(f"link_config must be a armbus.bus.link.LinkConfig, got {type(link_config).__name__}")
        link_config = LinkConfig(baud=baud) if link_config is None else dataclasses.replace(link_config, baud=baud)
        self.joints: list[JointNode] = []
        k = self.kernel
        #: The adapter model between the host and joint 1 (None: the ideal link).
        self.adapter: UsbAdapter | None = None
        self._adapter_node: AdapterNode | None = None
        if not spec.ideal:
            def record(t: int, op: str, detail: str) -> None:
                k.faults.record(t, HOST_LINK, None, op, detail)

            self.adapter = UsbAdapter(spec, seed=seed, record=record)
            self._adapter_node = AdapterNode(self.host, self.adapter, HOST_LINK)
        k.add_node("host", self._adapter_node or self.host, ports=(0,))
        if self.port is not None:
            self.port.attach(k, "host")
        prev, port = "host", 0
        for i in range(1, joints + 1):
            node = joint_class(kinds[i - 1])(model_list[i - 1], serial=0x1000 + i, seed=seed * 1000 + i,
                                             link_config=link_config, port_bauds=(baud if i == 1 else chain, chain))
            self.joints.append(node)
            k.add_node(f"j{i}", node, ports=(UP, DOWN))
            k.connect(prev, port, f"j{i}", UP, baud=baud if i == 1 else chain, turnaround_ns=turnaround_ns,
                      name=f"{prev}-j{i}")
            prev, port = f"j{i}", DOWN
        if self.adapter is not None:
            k.set_granularity(HOST_LINK, Direction.B_TO_A, Granularity.BYTE)  # the model needs each byte's time
        if isinstance(faults, FaultSchedule):
            faults.install(k)

    @property
    def now(self) -> int:
        return self.kernel.now

    @property
    def host_baud(self) -> int:
        """The rate of the host's end of the host link."""
        return self.kernel.port_baud("host", 0)

    def set_host_baud(self, baud: int) -> None:
        """The host set its port to ``baud``: bytes it sends from now on go at that rate, and bytes joint 1 sends
        at another rate reach it as garbage."""
        self.kernel.set_port_baud("host", 0, check_baud(baud))

    def add_tap(self, tap: Tap) -> None:
        """Record every delivery as ``tap(link, direction, t_ns, data)`` (:meth:`armbus.hil.kernel.Kernel.add_tap`);
        behind an adapter, host-j1 b>a is what the host sees, at the instants it sees it."""
        node = self._adapter_node
        if node is None:
            self.kernel.add_tap(tap)
            return

        def line_side(link: str, direction: Direction, t: int, data: bytes) -> None:
            if link != HOST_LINK or direction != Direction.B_TO_A:
                tap(link, direction, t, data)

        self.kernel.add_tap(line_side)
        node.add_tap(tap)

    def joint(self, address: int) -> JointNode:
        """Joint at chain position ``address`` (1-based)."""
        if not 1 <= address <= len(self.joints):
            raise UsageError(f"no joint {address}: the arm has joints 1..{len(self.joints)}")
        return self.joints[address - 1]

    def run_for(self, dt_ns: int) -> None:
        self.kernel.run_for(dt_ns)

    def run_until(self, t_ns: int) -> None:
        self.kernel.run_until(t_ns)
