"""The MQTT bridge without I/O: what to publish, what to buffer or drop, who holds the lease, which command runs.

Theory of operation
-------------------
:class:`BridgeCore` is fed states, host events, MQTT messages and the passing of time, each with ``now`` (the
monotonic clock, ns) and ``wall`` (the wall clock, ns, for the ``t`` fields); it returns decisions and queues
messages in its :class:`Outbox`. The driver (:mod:`armbus.tools.mqtt.bridge`) owns the broker connection, the
threads and the arm, and does what the core decided.

States go out per joint, per arm or both (``layout``, :data:`LAYOUTS`), rate-limited per joint (``rate_hz``, on
average: a late reading does not delay the next; a faster source is thinned out, the skipped states counted).
Messages wait in two bounded queues until the driver takes them:

* **telemetry** (states, counters; QoS 0): at most ``telemetry_limit`` messages; when full, the oldest is dropped
  and counted (``telemetry_dropped``): a reader wants the newest state, not a complete history.
* **events** (faults, link events, command results; QoS 1): at most ``event_limit``; events are kept while the
  broker is away and sent, in order, once it is back. A fault is dropped only when that many are waiting
  (``events_dropped``, which should stay 0); the driver also keeps at most ``inflight_limit`` QoS 1 messages
  unacknowledged in the MQTT client, which resends those after a reconnection.

The lease book: at most one broker user holds the bridge's lease. ``lease acquire`` takes it (or renews it) for
``ttl`` seconds (default ``lease_ttl``), every accepted command of the holder renews it, ``lease release`` gives
it back. The lease is lost when it times out, when the holder's session is gone (its last will releases it: the
operator's client sets a will that publishes ``{"action": "release"}`` on its lease topic), and when the bridge
loses the broker (nobody can command the arm then). A lost lease is returned by :meth:`BridgeCore.tick` and
:meth:`BridgeCore.connection`: the driver releases the arm's lease and makes the arm hold where it is.

Commands: ``estop`` and ``torque`` off (stopping) are accepted from any operator, as ``armbus serve`` has them
(docs/serve.md, "The lease"); ``goal``, ``torque`` on and ``clear`` (it re-arms a stopped joint) need the lease; a
message that does not parse or does not match its schema is refused with the reason. Each command gets exactly one
``result`` message (QoS 1, to ``cmd/USER/result``): refused here at once, or accepted/refused by the driver after
it ran (:meth:`BridgeCore.finished`).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from armbus.bus.wire import NS_PER_S, FaultCode, StatusFlag
from armbus.controller.events import FaultReported, HostEvent, JointState, LinkEvent, PortLost, PortRestored, SendFailed
from armbus.tools.mqtt.schema import LEVEL, VERSION, Topics, check

#: Default telemetry rate per joint: 20 Hz, a dashboard's refresh; the load test runs 100 Hz.
DEFAULT_RATE_HZ = 20.0
#: Bounds of the two queues: telemetry keeps a few seconds of a 6-joint arm at 50 Hz, events a long outage's faults.
TELEMETRY_LIMIT = 1000
EVENT_LIMIT = 10_000
#: QoS 1 messages handed to the MQTT client and not yet acknowledged by the broker, at most.
INFLIGHT_LIMIT = 100
#: A lease not renewed for this long is lost (seconds); an acquire may ask for 0.5 s .. 1 h.
LEASE_TTL_S = 10.0
#: How states go out: one message per joint (``state/JOINT``), one per reading of the whole arm (``states``: every
#: joint sampled by the same SYNC_READ, a sixth of the messages of a 6-joint arm), or both.
LAYOUTS = ("joint", "arm", "both")
#: Counters are published this often (ns).
COUNTERS_PERIOD_NS = NS_PER_S


@dataclass(frozen=True)
class Outgoing:
    """A message to publish."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True)
class Command:
    """A command that passed the checks: the driver runs it, then calls :meth:`BridgeCore.finished`."""

    user: str
    verb: str
    id: str
    body: Mapping[str, Any]


@dataclass
class Counters:
    states_queued: int = 0  # queued for publishing (the rate allowed them)
    states_skipped: int = 0  # arrived sooner than the rate allows
    telemetry_dropped: int = 0  # evicted from the full telemetry queue
    events_queued: int = 0
    events_dropped: int = 0  # evicted from the full event queue (a lost fault: should stay 0)
    faults: int = 0
    commands_accepted: int = 0
    commands_refused: int = 0
    leases_lost: int = 0
    connects: int = 0
    disconnects: int = 0


@dataclass
class Outbox:
    """The two bounded queues (see the module docstring)."""

    telemetry_limit: int = TELEMETRY_LIMIT
    event_limit: int = EVENT_LIMIT
    telemetry: deque[Outgoing] = field(default_factory=deque)
    events: deque[Outgoing] = field(default_factory=deque)

    def put(self, message: Outgoing, counters: Counters) -> None:
        if message.qos == 0:
            if len(self.telemetry) >= self.telemetry_limit:
                self.telemetry.popleft()
                counters.telemetry_dropped += 1
            self.telemetry.append(message)
            return
        if len(self.events) >= self.event_limit:
            self.events.popleft()
            counters.events_dropped += 1
        self.events.append(message)
        counters.events_queued += 1

    def take(self, inflight_room: int) -> list[Outgoing]:
        """Everything to publish now: up to ``inflight_room`` events (oldest first), then all telemetry."""
        out = [self.events.popleft() for _ in range(min(inflight_room, len(self.events)))]
        out += self.telemetry
        self.telemetry.clear()
        return out

    def __len__(self) -> int:
        return len(self.telemetry) + len(self.events)


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


class BridgeCore:
    """One arm's bridge state (see the module docstring). Not thread-safe: the driver serialises calls."""

    def __init__(self, name: str, joints: Mapping[int, str], *, rate_hz: float = DEFAULT_RATE_HZ,
                 telemetry_limit: int = TELEMETRY_LIMIT, event_limit: int = EVENT_LIMIT,
                 lease_ttl: float = LEASE_TTL_S, layout: str = "joint") -> None:
        for level in (name, *joints.values()):
            if not LEVEL.match(level):
                raise ValueError(f"{level!r} cannot be an MQTT topic level (no '/', '+', '#'; 1..64 characters)")
        if layout not in LAYOUTS:
            raise ValueError(f"state layout {layout!r}: choose {', '.join(LAYOUTS)}")
        if not 0 < rate_hz <= 1000:
            raise ValueError(f"rate {rate_hz} Hz: choose 0 < rate <= 1000")
        self.name = name
        self.topics = Topics(name)
        self.joints = dict(joints)  # address -> name
        self.rate_hz = rate_hz
        self.layout = layout
        self.period_ns = int(NS_PER_S / rate_hz)
        self.lease_ttl = lease_ttl
        self.outbox = Outbox(telemetry_limit, event_limit)
        self.counters = Counters()
        self.connected = False
        self.holder: str | None = None
        self._lease_until = 0
        self._state_due: dict[str, int] = {}
        self._flag_names: dict[int, list[str]] = {}
        self._seq = {"state": 0, "states": 0, "fault": 0, "link": 0}
        self._next_counters = 0

    # ------------------------------------------------------------------ telemetry
    def _header(self, wall: int, kind: str | None = None) -> dict[str, Any]:
        head: dict[str, Any] = {"v": VERSION, "t": wall / NS_PER_S}
        if kind is not None:
            head["seq"] = self._seq[kind]
            self._seq[kind] += 1
        head["arm"] = self.name
        return head

    def status(self, online: bool, wall: int) -> Outgoing:
        """The retained status message (offline: also the bridge's last will)."""
        body = {**self._header(wall), "state": "online" if online else "offline",
                "joints": list(self.joints.values()), "rate_hz": self.rate_hz}
        return Outgoing(self.topics.status, encode(body), qos=1, retain=True)

    def on_states(self, states: Mapping[str, JointState], now: int, wall: int) -> int:
        """Queue the states that the rate allows, as :attr:`layout` says; returns how many joints were queued."""
        taken: dict[str, dict[str, Any]] = {}
        for name, s in states.items():
            # at most rate_hz on average: a late reading does not delay the next one (the poller catches up),
            # a source faster than the rate is thinned out (a fan-out of every state the arm reports)
            due = self._state_due.get(name)
            if due is not None and now < due:
                self.counters.states_skipped += 1
                continue
            self._state_due[name] = max(due or 0, now - self.period_ns) + self.period_ns
            taken[name] = {"address": s.address, "position": s.position, "velocity": s.velocity,
                           "current": s.current, "temperature": s.temperature, "voltage": s.voltage,
                           "flags": self._flags(int(s.status))}
        if not taken:
            return 0
        if self.layout in ("joint", "both"):
            for name, fields in taken.items():
                body = {**self._header(wall, "state"), "joint": name, **fields}
                self.outbox.put(Outgoing(self.topics.state(name), encode(body)), self.counters)
        if self.layout in ("arm", "both"):
            body = {**self._header(wall, "states"), "joints": taken}
            self.outbox.put(Outgoing(self.topics.states, encode(body)), self.counters)
        self.counters.states_queued += len(taken)
        return len(taken)

    def _flags(self, status: int) -> list[str]:
        names = self._flag_names.get(status)
        if names is None:
            names = self._flag_names[status] = str(StatusFlag(status)).split("|") if status else []
        return names

    def on_event(self, event: HostEvent, wall: int) -> bool:
        """Queue a fault or link message for ``event``; False when the event is not one the bridge reports."""
        if isinstance(event, FaultReported):
            code = event.code
            body = {**self._header(wall, "fault"), "joint": self.joints.get(event.address, f"joint{event.address}"),
                    "address": event.address, "code": code.name if isinstance(code, FaultCode) else str(code),
                    "code_value": int(code), "active": event.active, "value": event.value}
            self.outbox.put(Outgoing(self.topics.fault, encode(body), qos=1), self.counters)
            self.counters.faults += 1
            return True
        if isinstance(event, PortLost):
            what, detail = "port_lost", f"{event.port}: {event.reason}"
        elif isinstance(event, PortRestored):
            what, detail = "port_restored", event.port
        elif isinstance(event, SendFailed):
            what, detail = "send_failed", f"packet {event.msg_id}: {event.reason}"
        elif isinstance(event, LinkEvent) and event.what in ("reset", "failure", "down", "up"):
            what, detail = "link", f"{event.what}: {event.detail}"
        else:
            return False
        body = {**self._header(wall, "link"), "event": what, "detail": detail}
        self.outbox.put(Outgoing(self.topics.link, encode(body), qos=1), self.counters)
        return True

    # ------------------------------------------------------------------ connection and time
    def connection(self, up: bool, now: int, wall: int) -> str | None:
        """The broker connection went up or down; returns the user whose lease this loses, if any."""
        self.connected = up
        if up:
            self.counters.connects += 1
            return None
        self.counters.disconnects += 1
        return self._lose_lease()

    def tick(self, now: int, wall: int) -> str | None:
        """Time passed: counters are due, the lease may run out. Returns the user whose lease ran out, if any."""
        if now >= self._next_counters:
            self._next_counters = now + COUNTERS_PERIOD_NS
            body = {**self._header(wall), "connected": self.connected, "counters": self.counter_values(),
                    "lease": self.holder}
            self.outbox.put(Outgoing(self.topics.counters, encode(body)), self.counters)
        if self.holder is not None and now >= self._lease_until:
            return self._lose_lease()
        return None

    def counter_values(self) -> dict[str, int]:
        values = dict(vars(self.counters))
        values["events_waiting"] = len(self.outbox.events)
        values["telemetry_waiting"] = len(self.outbox.telemetry)
        return values

    def _lose_lease(self) -> str | None:
        lost, self.holder = self.holder, None
        if lost is not None:
            self.counters.leases_lost += 1
        return lost

    # ------------------------------------------------------------------ commands
    def on_command(self, topic: str, payload: bytes, now: int, wall: int) -> Command | None:
        """A message on a command topic: the command to run, or None (refused here; its result is queued)."""
        parsed = self.topics.parse_command(topic)
        if parsed is None:
            return None
        user, verb = parsed
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            self._result(user, verb, "", False, f"not JSON: {exc}", wall)
            return None
        request_id = str(body.get("id", "")) if isinstance(body, dict) else ""
        problems = check(verb, body)
        if problems:
            self._result(user, verb, request_id, False, "bad message: " + "; ".join(problems[:3]), wall)
            return None
        command = Command(user, verb, request_id, body)
        if verb == "estop" or (verb == "torque" and not body["on"]):
            return command  # stopping is always allowed
        if self.holder is not None and now >= self._lease_until:
            self._lose_lease()  # ran out before this tick noticed: the command is judged without it
        if verb == "lease":
            if body["action"] == "release":
                return command
            if self.holder not in (None, user):
                self._result(user, verb, request_id, False, f"the lease is held by {self.holder}", wall)
                return None
            return command
        if self.holder != user:
            reason = (f"needs the lease, held by {self.holder}" if self.holder is not None
                      else f"needs the lease: publish {{\"v\": {VERSION}, \"id\": \"...\", \"action\": \"acquire\"}} "
                           f"to {self.topics.command(user, 'lease')} first")
            self._result(user, verb, request_id, False, reason, wall)
            return None
        return command

    def lease_taken(self, user: str, ttl: float | None, now: int) -> None:
        """The driver got the arm's lease for ``user`` (or renewed it)."""
        self.holder = user
        self._lease_until = now + int((ttl if ttl is not None else self.lease_ttl) * NS_PER_S)

    def lease_given_back(self, user: str) -> bool:
        """``user`` released the lease; False when it did not hold it."""
        if self.holder != user:
            return False
        self.holder = None
        return True

    def finished(self, command: Command, ok: bool, reason: str, now: int, wall: int) -> None:
        """The driver ran ``command``: queue its result; an accepted command of the holder renews the lease."""
        if ok and self.holder == command.user and command.verb != "lease":
            self._lease_until = max(self._lease_until, now + int(self.lease_ttl * NS_PER_S))
        self._result(command.user, command.verb, command.id, ok, reason, wall)

    def _result(self, user: str, verb: str, request_id: str, ok: bool, reason: str, wall: int) -> None:
        if ok:
            self.counters.commands_accepted += 1
        else:
            self.counters.commands_refused += 1
        body = {**self._header(wall), "id": request_id, "client": user, "cmd": verb,
                "status": "accepted" if ok else "refused", "reason": reason, "holder": self.holder}
        self.outbox.put(Outgoing(self.topics.result(user), encode(body), qos=1), self.counters)
