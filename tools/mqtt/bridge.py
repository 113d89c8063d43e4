"""The MQTT bridge's driver: one arm, one broker connection (paho-mqtt), the threads that join them.

Theory of operation
-------------------
:class:`Bridge` runs the sans-I/O :class:`armbus.tools.mqtt.core.BridgeCore` with three threads:

* paho's network thread (``loop_start``): connects, and after a lost connection reconnects by itself with a
  doubling delay (``reconnect_delay``, 0.5 s up to 8 s by default); delivers commands and acknowledgements;
* the bridge thread: every ``1 / rate_hz`` reads every joint's state (one SYNC_READ), feeds it to the core, lets
  time pass in the core (counters, the lease's deadline) and hands the queued messages to paho while connected.
  Host events (faults, a lost port) wake it at once;
* the command thread: runs the commands (goals, torque, clear, leases) one at a time, off paho's thread.

An e-stop does not queue behind other commands: it is sent from paho's thread as soon as it arrives. The bridge
keeps at most ``inflight_limit`` QoS 1 messages unacknowledged in paho (which resends them after a
reconnection); the rest wait in the core's bounded queues. On connect the bridge subscribes to the command
topics (a clean session: commands sent while it was away are not run late) and publishes ``online`` (retained);
its last will publishes ``offline`` when it dies. When the lease is lost (timeout, holder gone, broker gone) the
command thread releases the arm's lease and makes every joint with torque on hold where it is (its goal becomes
its present position).

The arm is anything with the :class:`armbus.controller.arm.Arm` interface (a port, ``armbus://``, a
``serve://`` client); where it offers the lease API (``acquire_lease``/``release_lease``) the MQTT holder takes
the arm's lease as ``mqtt:USER``, so a local client and an MQTT operator cannot move the arm at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from armbus.bus.errors import ArmbusError, UsageError
from armbus.bus.wire import NS_PER_S, StatusFlag
from armbus.controller.events import HostEvent
from armbus.tools.jointcmds import LATCHED, blockers
from armbus.tools.mqtt.core import (
    DEFAULT_RATE_HZ,
    EVENT_LIMIT,
    INFLIGHT_LIMIT,
    LEASE_TTL_S,
    TELEMETRY_LIMIT,
    BridgeCore,
    Command,
)

log = logging.getLogger(__name__)
#: The environment variable that may hold the broker password (kept out of the command line and `ps`).
PASSWORD_ENV = "ARMBUS_MQTT_PASSWORD"
#: MQTT keepalive (s): the broker declares the bridge dead, and publishes its will, 1.5 keepalives after silence.
KEEPALIVE_S = 5
RECONNECT_DELAY = (0.5, 8.0)
#: Polls the bridge thread makes up for when it was held up (the core's rate limit lets one late reading through).
CATCH_UP = 3


@dataclass(frozen=True)
class MqttUrl:
    host: str
    port: int
    user: str | None
    password: str | None
    tls: bool

    def __str__(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{who}{self.host}:{self.port}"


def parse_mqtt_url(text: str) -> MqttUrl:
    """``mqtt://[USER[:PASSWORD]@]HOST[:PORT]`` or ``mqtts://...`` (TLS, port 8883 by default). Without a
    password in the URL, ``$ARMBUS_MQTT_PASSWORD`` is used."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise UsageError(f"bad broker URL {text!r}: expected mqtt://USER:PASSWORD@HOST:PORT (or mqtts:// for TLS)")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise UsageError(f"bad broker URL {text!r}: the port is not a number in 1..65535") from None
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else os.environ.get(PASSWORD_ENV)
    return MqttUrl(parts.hostname, port, user, password, parts.scheme == "mqtts")


def hold(arm: Any) -> list[str]:
    """Make every joint with torque on hold where it is (goal := present position); returns their names."""
    states = arm.read_states()
    goals = {name: s.position for name, s in states.items() if s.status & StatusFlag.TORQUE_ON}
    if goals:
        arm.set_goals(goals)
    return list(goals)


class Bridge:
    """Bridge ``arm`` to the broker at ``url`` as ``name`` (see the module docstring). ``start()``, ``stop()``."""

    def __init__(self, arm: Any, url: MqttUrl | str, name: str, *, rate_hz: float = DEFAULT_RATE_HZ,
                 telemetry_limit: int = TELEMETRY_LIMIT, event_limit: int = EVENT_LIMIT,
                 inflight_limit: int = INFLIGHT_LIMIT, lease_ttl: float = LEASE_TTL_S, ca_file: str | None = None,
                 client_id: str | None = None, layout: str = "joint",
                 reconnect_delay: tuple[float, float] = RECONNECT_DELAY,
                 keepalive: int = KEEPALIVE_S, clock: Callable[[], int] = time.monotonic_ns,
                 wall: Callable[[], int] = time.time_ns) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise UsageError("the MQTT bridge needs paho-mqtt: pip install 'armbus[mqtt]'") from None
        self.url = parse_mqtt_url(url) if isinstance(url, str) else url
        self.arm = arm
        joints = {cfg.address: joint for joint, cfg in arm.model.joints.items()}
        try:
            self.core = BridgeCore(name, joints, rate_hz=rate_hz, telemetry_limit=telemetry_limit,
                                   event_limit=event_limit, lease_ttl=lease_ttl, layout=layout)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self.name = name
        self.inflight_limit = inflight_limit
        self.clock, self.wall = clock, wall
        self.reconnect_delay = reconnect_delay
        self.keepalive = keepalive
        self.poll_errors = 0
        self.telemetry_lost = 0  # QoS 0 messages paho could not send (the connection broke under them)
        self.last_error: str | None = None
        self._lock = threading.Lock()  # the core
        self._inflight_lock = threading.Lock()  # leaf lock: paho calls on_publish holding its own mutex
        self._inflight: set[int] = set()
        self._acked_early: set[int] = set()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._commands: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._mqtt = mqtt
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"armbus-bridge-{name}",
                                  clean_session=True, protocol=mqtt.MQTTv311)
        if self.url.user:
            self.client.username_pw_set(self.url.user, self.url.password)
        if self.url.tls:
            self.client.tls_set(ca_certs=ca_file)
        self.client.will_set(self.core.topics.status, self.core.status(False, wall()).payload, qos=1, retain=True)
        self.client.max_inflight_messages_set(inflight_limit)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    # ------------------------------------------------------------------ life cycle
    def start(self) -> Bridge:
        lo, hi = self.reconnect_delay
        self.client.reconnect_delay_set(lo, hi)  # type: ignore[arg-type]  # paho's hints say int, it takes float
        self.client.connect_async(self.url.host, self.url.port, keepalive=self.keepalive)
        self.client.loop_start()
        self.arm.add_listener(self._on_host_event)
        for target, what in ((self._run_bridge, "bridge"), (self._run_commands, "commands")):
            thread = threading.Thread(target=target, name=f"armbus-mqtt-{what}-{self.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, flush_timeout: float = 2.0) -> None:
        """Publish what waits (up to ``flush_timeout`` s), ``offline`` (retained), then disconnect."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        self._commands.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        with contextlib.suppress(ArmbusError):
            self.arm.remove_listener(self._on_host_event)
        with self._lock:
            lost = self.core.holder
            self.core.holder = None
        if lost is not None:
            self._lose_lease(lost)
        end = time.monotonic() + flush_timeout
        while self.connected and time.monotonic() < end and (len(self.core.outbox) or self._inflight):
            self._pump()
            time.sleep(0.01)
        if self.connected:
            info = self.client.publish(self.core.topics.status, self.core.status(False, self.wall()).payload,
                                       qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=max(0.1, end - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def counters(self) -> dict[str, int]:
        """The core's counters and the driver's (poll errors, QoS 0 messages lost in a breaking connection)."""
        with self._lock:
            values = self.core.counter_values()
        with self._inflight_lock:
            values["events_inflight"] = len(self._inflight)
        values["poll_errors"] = self.poll_errors
        values["telemetry_lost"] = self.telemetry_lost
        return values

    # ------------------------------------------------------------------ paho callbacks (paho's thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.last_error = f"the broker refused the connection: {reason}"
            if self.core.counters.connects:  # refused after having been let in: say so (at start, the caller does)
                log.warning("%s: %s", self.url, self.last_error)
            return
        self.last_error = None
        sock = client.socket()
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            # telemetry is small and wanted now: no waiting for the previous segment's ack (Nagle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe([(f, 1) for f in self.core.topics.command_filters()])
        with self._lock:
            self.core.connection(True, self.clock(), self.wall())
            online = self.core.status(True, self.wall())
        client.publish(online.topic, online.payload, qos=1, retain=True)
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not self._connected.is_set():
            return
        self._connected.clear()
        with self._lock:
            lost = self.core.connection(False, self.clock(), self.wall())
        if lost is not None:
            self._commands.put(lambda: self._lose_lease(lost))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._inflight_lock:
            if mid in self._inflight:
                self._inflight.discard(mid)
            else:
                self._acked_early.add(mid)
        self._wake.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            command = self.core.on_command(message.topic, message.payload, self.clock(), self.wall())
        if command is not None and command.verb == "estop":
            self._finish(command, *self._execute(command))  # at once, never behind a queued command
        elif command is not None:
            self._commands.put(lambda: self._finish(command, *self._execute(command)))
        self._wake.set()

    def _on_host_event(self, event: HostEvent) -> None:
        with self._lock:
            reported = self.core.on_event(event, self.wall())
        if reported:
            self._wake.set()

    # ------------------------------------------------------------------ the bridge thread
    def _run_bridge(self) -> None:
        period = self.core.period_ns
        next_poll = self.clock()
        while not self._stopping.is_set():
            now = self.clock()
            if now >= next_poll:
                # a late poll keeps the schedule (the next one comes sooner); one far behind starts a new one
                next_poll = next_poll + period if now - next_poll < CATCH_UP * period else now + period
                self._poll()
            with self._lock:
                lost = self.core.tick(self.clock(), self.wall())
            if lost is not None:
                self._commands.put(lambda lost=lost: self._lose_lease(lost))  # type: ignore[misc]
            self._pump()
            self._wake.wait(max(0.0, (next_poll - self.clock()) / NS_PER_S))
            self._wake.clear()

    def _poll(self) -> None:
        try:
            states = self.arm.read_states()
        except (ArmbusError, OSError) as exc:  # the port may come back: count, say once, keep going
            self.poll_errors += 1
            if self.poll_errors == 1 or self.poll_errors % 100 == 0:
                log.warning("%s: reading the joints' states failed (%d times): %s", self.name, self.poll_errors, exc)
            return
        with self._lock:
            self.core.on_states(states, self.clock(), self.wall())

    def _pump(self) -> None:
        """Hand the queued messages to paho while connected (QoS 1 up to the in-flight bound)."""
        if not self._connected.is_set():
            return
        with self._inflight_lock:
            room = self.inflight_limit - len(self._inflight)
        with self._lock:
            batch = self.core.outbox.take(max(0, room))
        for message in batch:
            info = self.client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
            if message.qos == 0:
                if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                    self.telemetry_lost += 1
                continue
            with self._inflight_lock:  # paho keeps a QoS 1 message and resends it after a reconnection
                if info.mid in self._acked_early:
                    self._acked_early.discard(info.mid)
                else:
                    self._inflight.add(info.mid)

    # ------------------------------------------------------------------ commands (the command thread)
    def _run_commands(self) -> None:
        while True:
            job = self._commands.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # a command must not end the thread that runs the next one
                log.exception("%s: a command failed", self.name)

    def _finish(self, command: Command, ok: bool, reason: str) -> None:
        with self._lock:
            self.core.finished(command, ok, reason, self.clock(), self.wall())
        self._wake.set()

    def _execute(self, command: Command) -> tuple[bool, str]:
        """Run ``command`` on the arm: (accepted, what happened or why not)."""
        body, arm = command.body, self.arm
        try:
            if command.verb == "estop":
                arm.estop(int(body.get("reason", 0)))
                return True, "e-stop sent to every joint"
            if command.verb == "lease":
                return self._lease(command)
            with self._lock:
                stopping = command.verb == "torque" and not body["on"]
                if self.core.holder != command.user and not stopping:
                    return False, f"the lease is no longer yours (holder: {self.core.holder})"
            if command.verb == "goal":
                sent = arm.set_goals({str(k): float(v) for k, v in body["goals"].items()})
                return True, "goals sent: " + ", ".join(f"{k}={v:.4f}" for k, v in sent.items())
            if command.verb == "torque":
                joint = body.get("joint")
                names = [joint] if joint else list(arm.model.joints)
                if body["on"]:
                    blocked = blockers(arm, names)
                    if blocked:
                        return False, "; ".join(blocked)
                arm.torque(bool(body["on"]), joint)
                return True, f"torque {'on' if body['on'] else 'off'}: {', '.join(names)}"
            if command.verb == "clear":
                joint = body.get("joint", "all")
                names = list(arm.model.joints) if joint == "all" else [joint]
                for name in names:
                    arm.write(name, "clear_flags", int(LATCHED))
                return True, f"latched flags cleared: {', '.join(names)} (ready, unpowered)"
        except (ArmbusError, KeyError, ValueError) as exc:
            return False, str(exc) or type(exc).__name__
        return False, f"unknown command {command.verb!r}"

    def _lease(self, command: Command) -> tuple[bool, str]:
        user = command.user
        if command.body["action"] == "release":
            with self._lock:
                mine = self.core.lease_given_back(user)
            if not mine:
                return False, "you do not hold the lease"
            held = hold(self.arm)  # nobody commands the arm now: it stops where it is
            self._arm_lease(False, user)
            return True, "lease released" + (f"; holding {', '.join(held)}" if held else "")
        with self._lock:
            holder = self.core.holder
        if holder not in (None, user):
            return False, f"the lease is held by {holder}"
        if holder is None:
            self._arm_lease(True, user)  # raises (a LeaseError) when a local client of the arm holds it
        with self._lock:
            self.core.lease_taken(user, command.body.get("ttl"), self.clock())
        return True, "lease renewed" if holder == user else "lease acquired"

    def _arm_lease(self, take: bool, user: str) -> None:
        """Take or give back the arm's own lease, where the arm has one (a port opened directly has no other
        client: nothing to do)."""
        fn = getattr(self.arm, "acquire_lease" if take else "release_lease", None)
        if fn is None:
            return
        if take:
            fn(f"mqtt:{user}")
        else:
            fn()

    def _lose_lease(self, user: str) -> None:
        """``user``'s lease is gone (timeout, session gone, broker gone): the arm holds where it is."""
        with self._lock:
            if self.core.holder is not None:  # taken again meanwhile: the new holder commands the arm
                return
        try:
            held = hold(self.arm)
            log.warning("%s: %s lost the lease; holding %s", self.name, user, ", ".join(held) or "nothing")
        except ArmbusError as exc:
            log.warning("%s: %s lost the lease, and holding failed: %s", self.name, user, exc)
        with contextlib.suppress(ArmbusError):
            self._arm_lease(False, user)
