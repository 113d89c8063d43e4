"""The synchronous arm API: open a port, discover the joints, read and command them in SI units.

Theory of operation
-------------------
:class:`Arm` is a thin blocking facade: the protocol runs in the sans-I/O :class:`armbus.controller.host.HostNode`,
the port and the reader thread in :class:`armbus.controller.runner.NodeRunner` (one lock, so two threads never
interleave frames), and every operation is a message built by :mod:`armbus.controller.ops`. Every wait has a timeout:
``send``-style commands (goals, torque, e-stop) return when the first joint acked the packet; requests (register
access, ping, sync-read) return the correlated reply or raise :class:`~armbus.bus.errors.RemoteError`,
:class:`~armbus.bus.errors.UndeliverableError` or :class:`~armbus.bus.errors.ArmTimeoutError`.

Names and calibration come from the :class:`armbus.controller.config.ArmConfig` (joints without a config are called
``joint<address>`` with no offset and no limits). Positions in and out of this API are calibrated:
``raw = position + offset``. :meth:`Arm.set_goals` clamps each goal into the joint's position limits and to at
most ``max_step`` from the previous goal (LeRobot's ``max_relative_target``), then sends all goals in one
SYNC_WRITE frame; :meth:`Arm.read_states` reads every joint's state in one SYNC_READ transaction.

The lease (docs/serve.md): on an arm shared through ``armbus serve`` only the client holding the lease may move
it (:func:`armbus.controller.lease.needs_lease`); :meth:`Arm.acquire_lease` / :meth:`Arm.release_lease` /
``with arm.lease():`` take and give it back. On an arm opened directly on a port or a simulator URL this program
is the only client: acquiring always succeeds at once and costs nothing.

Closing: heartbeats stop; with ``on_close="torque_off"`` every joint gets TORQUE 0 first, with ``"hold"``
(default) the joints keep holding their last goal (and their watchdog, if enabled, then does its safe stop).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import serial

from armbus.bus.errors import ArmTimeoutError, LeaseError, PeerError
from armbus.bus.link import LinkConfig
from armbus.bus.messages import CycleReply, Enumerate, EStop, Message, Ping, PingReply, Reboot, Torque
from armbus.bus.wire import DEFAULT_BAUD, NS_PER_S, Address, GoalMode
from armbus.controller import ops
from armbus.controller.armmodel import ArmModel, JointGoals
from armbus.controller.backends import process_name, resolve_port
from armbus.controller.baud import (
    DEFAULT_DELAY_MS,
    DEFAULT_TRIAL_MS,
    RateReport,
    RateSwitchFailed,
    check_rate,
    note_rates,
    run_sync,
    switch_plan,
)
from armbus.controller.config import ArmConfig, JointConfig, load_config
from armbus.controller.cyclic import CycleCore, CycleState, CycleView, CyclicLoop
from armbus.controller.events import CycleReplied, HostEvent, JointState, LeaseAnswered, ReplyReceived
from armbus.controller.host import HostConfig, HostNode
from armbus.controller.ports import port_turnaround_ns
from armbus.controller.runner import POLL_S, NodeRunner
from armbus.controller.servelink import ServeLink, host_node, lease_refusal, refuse_if_served, served_link
from armbus.controller.serveproto import ACQUIRE, RELEASE

if TYPE_CHECKING:
    from armbus.controller.stream import CycleInfo, StreamReport
    from armbus.controller.trajectory import Plan

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Enumeration waits for the chain end to learn it is last (its forward toward the open connector must fail).
ENUMERATE_TIMEOUT_S = 3.0
#: After the host link opened, how long no further RESET may arrive before the handshake counts as settled:
#: longer than the link's backoff cap (20 ms, armbus.bus.link.LinkConfig), the longest gap between a booting joint's
#: RESET retransmissions. A joint's RESET that crosses the host's own fails the host's first DATA frame.
LINK_QUIET_NS = 30_000_000
#: How long open() waits for the link to settle before carrying on anyway (the arm may be switched off).
LINK_SETTLE_TIMEOUT_S = 1.0
LINK_POLL_S = 0.002
#: How often acquire_lease(timeout=...) asks again while another client holds the lease.
LEASE_POLL_NS = 20_000_000
#: Streaming rate without a config: 200 Hz, the usual rate for research arms (armbus.controller.trajectory).
DEFAULT_STREAM_RATE_HZ = 200.0


def link_settled(node: HostNode, now: int, mark: list[int]) -> bool:
    """True once ``node``'s link is open and no reset happened for :data:`LINK_QUIET_NS`. ``mark`` is the
    caller's scratch list (reset count, time it last changed), empty on the first call."""
    c = node.link.counters
    resets = c.resets_sent + c.resets_accepted + c.reset_answers
    if not mark or mark[0] != resets:
        mark[:] = [resets, now]
    return node.link.is_open and now - mark[1] >= LINK_QUIET_NS


class Joint:
    """A joint proxy: the same operations as :class:`Arm`, bound to one joint."""

    def __init__(self, arm: Arm, config: JointConfig) -> None:
        self.arm = arm
        self.config = config
        self.name = config.name
        self.address = config.address

    def read(self, register: str) -> int:
        return self.arm.read(self.name, register)

    def write(self, register: str, value: int) -> None:
        self.arm.write(self.name, register, value)

    def torque(self, enable: bool) -> None:
        self.arm.torque(enable, self.name)

    def set_mode(self, mode: GoalMode) -> None:
        self.arm.write(self.name, "goal_mode", int(mode))

    def set_goal(self, *, position: object = None, velocity: object = None, current: object = None) -> None:
        self.arm.set_goal(self.name, position=position, velocity=velocity, current=current)

    def state(self) -> JointState:
        return self.arm.read_state(self.name)

    def ping(self) -> PingReply:
        return self.arm.ping(self.name)

    def reboot(self) -> None:
        self.arm.reboot(self.name)

    def __repr__(self) -> str:
        return f"Joint({self.name!r}, address={self.address})"


class Runner(Protocol):
    """How an :class:`Arm` waits: :class:`armbus.controller.runner.NodeRunner` (a port and a reader thread, wall
    clock) or :class:`armbus.hil.simarm.SimRunner` (the virtual arm's kernel, simulated time)."""

    node: HostNode
    name: str

    @property
    def connected(self) -> bool: ...
    def call(self, fn: Callable[[HostNode, int], T]) -> T: ...
    def send(self, fn: Callable[[HostNode, int], int], timeout: float) -> int: ...
    def request(self, fn: Callable[[HostNode, int], int], timeout: float) -> ReplyReceived: ...
    def add_listener(self, listener: Callable[[HostEvent], None]) -> None: ...
    def remove_listener(self, listener: Callable[[HostEvent], None]) -> None: ...
    def now(self) -> int: ...
    def sleep_until(self, t_ns: int) -> None: ...
    def set_port_baud(self, baud: int) -> None: ...
    def close(self) -> None: ...


class Arm:
    """A robot arm on one serial bus. Use :meth:`open` or :meth:`from_config`; close (or ``with``) when done."""

    def __init__(self, runner: Runner, config: ArmConfig | None, timeout: float, on_close: str) -> None:
        self._runner = runner
        self.config = config
        self.timeout = timeout
        self.on_close = on_close
        self.model = ArmModel(config)
        self._proxies: dict[str, Joint] = {}
        self._lease_name: str | None = None  # the lease on a directly opened arm (this program's own)

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    def open(
        cls,
        port_or_url: str,
        baud: int = DEFAULT_BAUD,
        *,
        config: ArmConfig | str | Path | None = None,
        timeout: float = 0.1,
        heartbeat_period: float | None = None,
        on_close: str = "hold",
        turnaround_ns: int | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        settle_timeout: float = LINK_SETTLE_TIMEOUT_S,
    ) -> Arm:
        """Open ``port_or_url`` (a device or any pyserial URL, via ``serial.serial_for_url``) and wait up to
        ``settle_timeout`` s for the link to joint 1 to open (a silent arm is not an error here).
        ``turnaround_ns`` defaults to what the port's USB-serial adapter needs (its latency timer, read from
        sysfs: :func:`armbus.controller.ports.port_turnaround_ns`)."""

        config = load_config(config) if isinstance(config, (str, Path)) else config
        url = resolve_port(port_or_url)
        if turnaround_ns is None:
            turnaround_ns = port_turnaround_ns(port_or_url)

        def open_port() -> Any:
            # exclusive: a second program on the same port gets "busy" at once instead of both failing later
            port = serial.serial_for_url(url, baudrate=baud, timeout=POLL_S, write_timeout=1.0,
                                         exclusive=url.startswith("/"))
            # what waited in the port belongs to no session of ours (joint 1's RESET probes, sent before we were
            # here, at whatever rate): our own RESET starts the session (docs/hoplink.md, "Start-up")
            port.reset_input_buffer()
            return port

        host = host_node(url, HostConfig(link=LinkConfig(baud=baud, turnaround_ns=turnaround_ns),
                                         reply_timeout_ns=int(timeout * NS_PER_S), seed=secrets.randbits(32)),
                         clock(), process_name())
        runner = NodeRunner(host, open_port, clock, port_or_url)
        arm = cls(runner, config, timeout, on_close)
        arm.wait_link(settle_timeout)
        if heartbeat_period is not None:
            arm.set_heartbeat(heartbeat_period)
        return arm

    @classmethod
    def from_config(cls, config: ArmConfig | str | Path, **kwargs: Any) -> Arm:
        cfg = config if isinstance(config, ArmConfig) else load_config(config)
        kwargs.setdefault("timeout", cfg.reply_timeout)
        kwargs.setdefault("heartbeat_period", cfg.heartbeat_period)
        kwargs.setdefault("on_close", cfg.on_close)
        return cls.open(cfg.port, cfg.baud, config=cfg, **kwargs)

    def close(self) -> None:
        """Stop heartbeats, optionally switch torque off, give the lease back (a shared arm: the server then leaves
        the joints' goals alone, as a direct port does), close the port."""
        try:
            self.set_heartbeat(None)
            if self.on_close == "torque_off" and self._runner.connected:
                for j in self.model.joints.values():
                    self.send(Torque(0), j.address)
            link = self._serve_link()
            if link is not None and link.lease_mine and self._runner.connected:
                self._runner.call(lambda h, now: link.lease(RELEASE, "", now))  # no wait: it precedes the close
        except Exception:  # closing must finish: report and go on
            log.exception("while making the joints safe on close")
        finally:
            self._runner.close()

    def __enter__(self) -> Arm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ events, time and raw access
    @property
    def runner(self) -> Runner:
        return self._runner

    def now(self) -> int:
        """The host clock (ns): wall time on a port, simulated time on a virtual arm."""
        return self._runner.now()

    def sleep_until(self, t_ns: int) -> None:
        """Wait until the host clock reads ``t_ns`` (simulated time runs the virtual arm meanwhile)."""
        self._runner.sleep_until(t_ns)

    def wait_link(self, timeout: float) -> bool:
        """Wait until the host link is open and its reset handshake has settled; False after ``timeout`` s."""
        end = self._runner.now() + int(timeout * NS_PER_S)
        mark: list[int] = []
        while self._runner.now() < end:
            if self._runner.call(lambda h, now: link_settled(h, now, mark)):
                return True
            self._runner.sleep_until(self._runner.now() + int(LINK_POLL_S * NS_PER_S))
        return False

    def add_listener(self, listener: Callable[[HostEvent], None]) -> None:
        """Call ``listener(event)`` from the reader thread for every event; exceptions are logged."""
        self._runner.add_listener(listener)

    def remove_listener(self, listener: Callable[[HostEvent], None]) -> None:
        self._runner.remove_listener(listener)

    def send(self, message: Message, dst: int, timeout: float | None = None) -> int:
        """Send and return once the first joint acked the packet; returns the msg_id."""
        return self._runner.send(lambda h, now: h.send(message, dst, now), timeout or self.timeout)

    def request(self, message: Message, dst: int, timeout: float | None = None) -> ReplyReceived:
        """Send a request and return its correlated reply (raises on ERROR, UNDELIVERABLE or timeout)."""
        t = timeout or self.timeout
        # the node's own deadline decides; the runner's wait is a backstop slightly longer than it
        return self._runner.request(lambda h, now: h.request(message, dst, now, int(t * NS_PER_S)), t * 1.5 + 0.05)

    def set_heartbeat(self, period: float | None) -> None:
        """Broadcast heartbeats every ``period`` seconds (None stops them), feeding the joints' watchdogs."""
        ns = None if period is None else int(period * NS_PER_S)
        self._runner.call(lambda h, now: h.set_heartbeat(ns, now))

    # ------------------------------------------------------------------ the lease
    def acquire_lease(self, holder: str = "", timeout: float = 0.0) -> None:
        """Take the arm's lease as ``holder`` (default: this process, "pid N (command)"), waiting up to ``timeout``
        s for another client to release it; :class:`~armbus.bus.errors.LeaseError` naming the holder if it is
        still held. Taking a lease this client already holds is a no-op."""
        link = self._serve_link()
        if link is None:
            self._lease_name = holder or process_name()
            return
        end = self.now() + int(timeout * NS_PER_S)
        while True:
            answer = self._lease_call(link, ACQUIRE, holder)
            if answer.granted:
                return
            if self.now() >= end:
                raise LeaseError(lease_refusal(answer.holder), holder=answer.holder)
            self.sleep_until(min(end, self.now() + LEASE_POLL_NS))

    def release_lease(self) -> None:
        """Give the lease back (a no-op when this client does not hold it)."""
        link = self._serve_link()
        if link is None:
            self._lease_name = None
        elif link.lease_mine:
            self._lease_call(link, RELEASE, "")

    @property
    def lease_holder(self) -> str | None:
        """Who holds the lease now, or None."""
        link = self._serve_link()
        return self._lease_name if link is None else link.lease_holder

    def _not_served(self, what: str) -> None:
        refuse_if_served(self._runner.node, what)

    def _serve_link(self) -> ServeLink | None:
        return served_link(self._runner.node)

    def _lease_call(self, link: ServeLink, op: int, holder: str) -> LeaseAnswered:
        token: list[int] = []
        answers: list[LeaseAnswered] = []
        done = threading.Event()

        def listen(event: HostEvent) -> None:
            if isinstance(event, LeaseAnswered) and token and event.token == token[0]:
                answers.append(event)
                done.set()

        self._runner.add_listener(listen)
        try:
            self._runner.call(lambda h, now: token.append(link.lease(op, holder, now)))
            if not done.wait(self.timeout * 1.5 + 1.0):
                raise ArmTimeoutError(f"{self._runner.name}: armbus serve did not answer the lease request")
        finally:
            self._runner.remove_listener(listen)
        return answers[0]

    @contextmanager
    def lease(self, holder: str = "", timeout: float = 0.0) -> Iterator[Arm]:
        """``with arm.lease(): ...``: the lease for the block, given back at its end (also on an exception)."""
        self.acquire_lease(holder, timeout)
        try:
            yield self
        finally:
            self.release_lease()

    # ------------------------------------------------------------------ discovery
    @property
    def joints(self) -> dict[str, Joint]:
        return {name: self._proxy(name) for name in self.model.joints}

    def __getitem__(self, name: str | int) -> Joint:
        """A joint by name or by bus address (``arm["elbow"]``, ``arm[2]``)."""
        return self._proxy(name)

    def _proxy(self, name: str | int) -> Joint:
        cfg = self.model.joint(name)
        proxy = self._proxies.get(cfg.name)
        if proxy is None or proxy.config is not cfg:
            proxy = self._proxies[cfg.name] = Joint(self, cfg)
        return proxy

    def enumerate(self, timeout: float = ENUMERATE_TIMEOUT_S) -> list[ops.DiscoveredJoint]:
        """Assign addresses along the chain and list the joints; checks them against the config. Joints that
        report REBOOTED (every one after power-on) are marked ``rebooted`` in the result and the flag is cleared
        on them (one broadcast WRITE of ``clear_flags``): from then on REBOOTED means a reboot since."""
        found = ops.decode_enumeration(self.request(Enumerate(), Address.BROADCAST, timeout).message)
        status = self.request(ops.sync_read_register("status"), Address.BROADCAST, timeout).message
        found, acknowledge = ops.acknowledge_reboots(found, ops.decode_sync_read_register("status", status))
        if acknowledge is not None:
            self.send(acknowledge, Address.BROADCAST)
        self.model.discovered(found)
        return found

    def ping(self, name: str) -> PingReply:
        return ops.decode_ping(self.request(Ping(), self.model.joint(name).address).message)

    # ------------------------------------------------------------------ registers, torque, goals
    def read(self, name: str, register: str) -> int:
        address = self.model.joint(name).address
        return ops.decode_read(register, self.request(ops.read_request(register), address).message)

    def write(self, name: str, register: str, value: int) -> None:
        reply = self.request(ops.write_request(register, value), self.model.joint(name).address)
        ops.check_write_reply(register, reply.message)

    def torque(self, enable: bool, name: str | None = None) -> None:
        """Torque on/off for one joint, or every known joint when ``name`` is None."""
        targets = [self.model.joint(name)] if name is not None else list(self.model.joints.values())
        for j in targets:
            self.send(Torque(int(enable)), j.address)

    def set_goal(self, name: str | int, *, position: object = None, velocity: object = None,
                 current: object = None) -> None:
        """One goal in SI (rad, rad/s or A), sent as SET_GOAL; position is calibrated and clamped."""
        message, address = self.model.goal(name, position, velocity, current)
        self.send(message, address)

    def set_goals(self, positions: JointGoals) -> dict[str, float]:
        """All position goals in one SYNC_WRITE; returns the goals actually sent (after clamping)."""
        message, sent = self.model.sync_goals(positions)
        self.send(message, Address.BROADCAST)
        return sent

    def sync_write(self, register: str, values: Mapping[str, int]) -> None:
        """One SYNC_WRITE of ``register`` (wire units) for joints by name (consecutive addresses)."""
        by_address = {self.model.joint(n).address: v for n, v in values.items()}
        self.send(ops.sync_write_register(register, by_address), Address.BROADCAST)

    # ------------------------------------------------------------------ state
    def read_state(self, name: str) -> JointState:
        j = self.model.joint(name)
        reply = self.request(ops.state_read_request(), j.address)
        return self.model.calibrated(ops.decode_state_read(j.address, reply.message, reply.time))

    def read_states(self, timeout: float | None = None) -> dict[str, JointState]:
        """Every joint's state in one SYNC_READ transaction, by joint name (calibrated positions)."""
        reply = self.request(ops.sync_read_states(), Address.BROADCAST, timeout)
        return self.model.states_by_name(ops.decode_states(reply.message, reply.time))

    def estop(self, reason: int = 0) -> None:
        """Broadcast an emergency stop (joints stop first, then forward it)."""
        self.send(EStop(reason), Address.BROADCAST)

    # ------------------------------------------------------------------ line rate
    def set_port_baud(self, baud: int) -> None:
        """Set the host's own port to ``baud`` (the joints do not follow: that is :meth:`set_baud`)."""
        self._not_served("set the port's rate")
        self._runner.set_port_baud(check_rate(baud, "baud"))

    def set_baud(self, rate: int, chain: int | None = None, *, delay_ms: int = DEFAULT_DELAY_MS,
                 trial_ms: int = DEFAULT_TRIAL_MS) -> RateReport:
        """Switch the running chain: the host link to ``rate``, the joint-to-joint links to ``chain`` (default:
        ``rate``), on trial with fallback (:mod:`armbus.controller.baud`; docs/joints.md, "Line rate"). Returns the
        report; raises :class:`~armbus.controller.baud.RateSwitchFailed` (with the report: ``reverted`` or
        ``broken``, or ``refused`` when a joint cannot take the rate) if the chain did not switch."""
        check_rate(rate, "rate")
        self._not_served("switch the line rate")
        chain = rate if chain is None else check_rate(chain, "chain rate")
        joints = len(self.enumerate())
        plan = switch_plan(joints, rate, chain, self._runner.node.link.config.baud, self.now(),
                           delay_ms=delay_ms, trial_ms=trial_ms, timeout=self.timeout)
        try:
            report = run_sync(self, plan)
        except RateSwitchFailed as exc:
            failed = exc.report
            self._runner.call(lambda h, now: note_rates(h, failed))
            raise
        self._runner.call(lambda h, now: note_rates(h, report))
        return report

    def reboot(self, name: str) -> None:
        self.send(Reboot(), self.model.joint(name).address)
        self.model.forget(name)

    # ------------------------------------------------------------------ cyclic exchange
    def exchange(self, goals: Mapping[str, float] | None = None, *, read: str = "motion",
                 mode: GoalMode = GoalMode.POSITION, timeout: float | None = None) -> dict[str, CycleState]:
        """One blocking cycle of the cyclic exchange: send ``goals`` (by name, SI units; None: read only) and
        return every joint's record, by name, with its sample instant on the host's clock."""
        core = CycleCore(self.model, lambda view: goals, 1.0, read=read, mode=mode)
        reply = self.request(core.message(goals), Address.BROADCAST, timeout)
        if not isinstance(reply.message, CycleReply):
            raise PeerError(f"unexpected reply to a CYCLE: {reply.message!r}")
        message = reply.message
        samples = self.runner.call(lambda node, now: node.cycles.samples(message, reply.time))
        core.on_event(CycleReplied(reply.time, reply.msg_id, reply.time, samples))
        return dict(core.latest)

    def cyclic(self, callback: Callable[[CycleView], Mapping[str, float] | None], rate_hz: float,
               **options: Any) -> CyclicLoop:
        """A pipelined cyclic loop at ``rate_hz`` calling ``callback`` at every deadline (see
        :mod:`armbus.controller.cyclic`); ``.run(seconds)`` runs it and returns a :class:`CyclicReport`."""
        return CyclicLoop(self, callback, rate_hz, **options)

    # ------------------------------------------------------------------ trajectories
    def run_trajectory(self, plan: Plan, rate_hz: float | None = None, *, closed_loop: bool = False,
                       on_cycle: Callable[[CycleInfo], bool | None] | None = None,
                       **options: Any) -> StreamReport:
        """Stream ``plan`` as SYNC_WRITE goals at ``rate_hz`` (see :func:`armbus.controller.stream.stream_plan`)."""
        from armbus.controller.stream import stream_plan

        if rate_hz is None:
            rate_hz = self.config.control_rate_hz if self.config is not None else DEFAULT_STREAM_RATE_HZ
        return stream_plan(self, plan, rate_hz, closed_loop=closed_loop, on_cycle=on_cycle, **options)
