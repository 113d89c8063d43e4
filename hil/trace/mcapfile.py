"""MCAP recordings of an arm: the channels, their schemas, and a writer that turns register data into them.

Theory of operation
-------------------
A recording (``armbus record``) and a converted capture (``armbus trace export --mcap``) hold the same four
channels, written by one :class:`McapSink` (docs/recording.md):

=====================  =============================  ==========  ===========================================
topic                  schema (encoding)              messages    one message is
=====================  =============================  ==========  ===========================================
``/joint_states``      ``sensor_msgs/msg/JointState``  ``cdr``     every joint of one reply: names, position
                       (``ros2msg``)                              (rad), velocity (rad/s), effort = current (A)
``/armbus/goals``      ``armbus.goal.v1`` (jsonschema) ``json``    one joint's goal, as commanded or as held
``/armbus/faults``     ``armbus.fault.v1``             ``json``    a FAULT a joint reported (raised or cleared)
``/armbus/link``       ``armbus.link.v1``              ``json``    a link-level event (reset, line error, ...)
=====================  =============================  ==========  ===========================================

The JointState schema is the ROS 2 concatenated message definition (the message, then each dependency after a
line of 80 ``=`` and ``MSG: <type>``), so ``ros2 bag play``, Foxglove and PlotJuggler decode it without armbus.
The JSON channels carry a JSON Schema each; the schema's name ends with its version (``.v1``) and its ``$id``
says the same: a reader that meets ``.v2`` knows the fields changed. Every field has one type (Foxglove's JSON
Schema reader takes no type unions such as ``["number", "null"]``): a field a message cannot fill is left out.

Every message has ``log_time`` = ``publish_time`` = when the host received it, and a JointState's
``header.stamp`` is the instant the joints sampled it, all on the one clock the caller chose (the recorder: the
host's monotonic clock shifted once to the UNIX epoch; the exporter: the capture's own timestamps).

Register data arrives as spans (``reg``, bytes) in READ replies, SYNC_READ records and CYCLE_REPLY records;
:func:`span_values` reads every register a span holds whole, by the register table
(:mod:`armbus.joints.registers`), and :func:`state_of` / :func:`goal_of` pick a joint state or a goal out of them.

An OSError while writing (a full disk, a vanished folder) becomes one :class:`~armbus.bus.errors.TraceError`
that says how many messages the file holds and that it is incomplete; :meth:`McapSink.close` writes the summary
and index, which makes the file a complete MCAP.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

from armbus.bus.errors import TraceError, UsageError
from armbus.bus.wire import NS_PER_S, GoalMode
from armbus.controller import units
from armbus.joints.registers import BY_NAME, REGISTERS

JOINT_STATES = "/joint_states"
GOALS = "/armbus/goals"
FAULTS = "/armbus/faults"
LINK = "/armbus/link"
TOPICS = (JOINT_STATES, GOALS, FAULTS, LINK)

JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
_RULE = "=" * 80
#: sensor_msgs/msg/JointState with its dependencies, in the ros2msg concatenated format (rosbag2's MCAP plugin
#: writes the same layout): the message first, then each type it uses.
JOINT_STATE_MSGDEF = "\n".join((
    "std_msgs/Header header",
    "string[] name",
    "float64[] position",
    "float64[] velocity",
    "float64[] effort",
    _RULE,
    "MSG: std_msgs/Header",
    "builtin_interfaces/Time stamp",
    "string frame_id",
    _RULE,
    "MSG: builtin_interfaces/Time",
    "int32 sec",
    "uint32 nanosec",
)) + "\n"

#: Chunk size: a chunk reaches the file when it is full, so a recording killed without closing loses at most
#: this much (``mcap recover`` rebuilds the rest). 64 KiB: about 6 s of a 3-joint arm at 100 Hz.
CHUNK_BYTES = 64 * 1024


def _schema(name: str, title: str, properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    return {"$schema": "http://json-schema.org/draft-07/schema#", "$id": f"urn:armbus:schema:{name}",
            "title": title, "type": "object", "properties": properties, "required": list(required)}


_JOINT = {"joint": {"type": "string", "description": "joint name (joint<address> without a config; all: broadcast)"},
          "address": {"type": "integer", "minimum": 0, "maximum": 255}}
#: The JSON channels: topic -> (schema name, schema). Bump the version in the name when a field changes.
JSON_SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    GOALS: ("armbus.goal.v1", _schema("armbus.goal.v1", "a joint's goal", {
        **_JOINT,
        "source": {"type": "string", "enum": ["register", "SET_GOAL", "TORQUE", "WRITE", "SYNC_WRITE", "CYCLE"],
                   "description": "register: the goal registers as the joint held them (a recording); otherwise "
                                  "the command that set it (a capture)"},
        "mode": {"type": "string", "enum": [m.name for m in GoalMode]},
        "position": {"type": "number", "description": "rad"},
        "velocity": {"type": "number", "description": "rad/s"},
        "current": {"type": "number", "description": "A"},
        "torque": {"type": "boolean", "description": "torque_enable"},
    }, ("joint", "address", "source"))),
    FAULTS: ("armbus.fault.v1", _schema("armbus.fault.v1", "a fault a joint reported", {
        **_JOINT,
        "code": {"type": "string", "description": "FaultCode name, or the number of an unknown code"},
        "active": {"type": "boolean", "description": "true: the fault became active; false: it cleared"},
        "value": {"type": "integer", "description": "the quantity that tripped it, in wire units"},
    }, ("joint", "address", "code", "active", "value"))),
    LINK: ("armbus.link.v1", _schema("armbus.link.v1", "a link-level event", {
        "link": {"type": "string", "description": "the link and direction (host-j1:b>a), or 'host'"},
        "what": {"type": "string", "description": "reset, reset ack, line error, retransmit, undeliverable, "
                                                  "down, port lost, port restored, cycle missed, ..."},
        "detail": {"type": "string"},
    }, ("link", "what", "detail"))),
}

_FORMATS = {(1, False): "<B", (1, True): "<b", (2, False): "<H", (2, True): "<h", (4, False): "<I", (4, True): "<i"}


def span_values(reg: int, data: bytes) -> dict[str, int]:
    """Every register that ``data`` (read from address ``reg`` on) holds whole, by name, in wire units."""
    end = reg + len(data)
    return {r.name: int(struct.unpack_from(_FORMATS[(r.size, r.signed)], data, r.address - reg)[0])
            for r in REGISTERS if r.address >= reg and r.end <= end}


_STATE_NAMES = ("present_position", "present_velocity", "present_current")


def state_of(values: Mapping[str, int]) -> tuple[float, float, float] | None:
    """(position rad, velocity rad/s, current A) when ``values`` hold them, else None (raw positions)."""
    if not all(n in values for n in _STATE_NAMES):
        return None
    return (units.from_wire_position(values["present_position"]), units.from_wire_velocity(values["present_velocity"]),
            units.from_wire_current(values["present_current"]))


_GOAL_UNITS = {"goal_position": ("position", units.from_wire_position),
               "goal_velocity": ("velocity", units.from_wire_velocity),
               "goal_current": ("current", units.from_wire_current)}


def goal_of(values: Mapping[str, int]) -> dict[str, Any] | None:
    """The goal fields (mode, position, velocity, current, torque) ``values`` hold, or None if they hold none."""
    out: dict[str, Any] = {}
    for reg, (field, convert) in _GOAL_UNITS.items():
        if reg in values:
            out[field] = convert(values[reg])
    if "goal_mode" in values:
        out["mode"] = mode_name(values["goal_mode"])
    if "torque_enable" in values:
        out["torque"] = bool(values["torque_enable"])
    return out or None


def mode_name(mode: int) -> str | None:
    return GoalMode(mode).name if mode in GoalMode._value2member_map_ else None


def goal_record(joint: str, address: int, source: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """An ``armbus.goal.v1`` message: the fields the source says (a field it does not say is absent)."""
    known = {k: fields.get(k) for k in ("mode", "position", "velocity", "current", "torque")}
    return {"joint": joint, "address": address, "source": source, **{k: v for k, v in known.items() if v is not None}}


GOAL_REGISTERS = ("torque_enable", "goal_mode", *_GOAL_UNITS)
assert all(n in BY_NAME for n in GOAL_REGISTERS)


def _stamp(t_ns: int) -> dict[str, int]:
    sec, nsec = divmod(t_ns, NS_PER_S)
    return {"sec": sec, "nanosec": nsec}


class McapSink:
    """Writes the channels of the module docstring to ``path``; :meth:`close` completes the file."""

    def __init__(self, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None) -> None:
        try:
            from mcap.writer import CompressionType, Writer
            from mcap_ros2._dynamic import serialize_dynamic
        except ImportError:  # pragma: no cover - the extra is part of the test environment
            raise UsageError("MCAP support needs the mcap extra: pip install 'armbus[mcap]'") from None
        self.path = os.fspath(path)
        try:
            self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise TraceError(f"cannot create {self.path}: {exc.strerror}") from None
        self.counts: dict[str, int] = dict.fromkeys(TOPICS, 0)
        self._closed = False
        self._encode = serialize_dynamic(JOINT_STATE_TYPE, JOINT_STATE_MSGDEF)[JOINT_STATE_TYPE]
        self._writer = Writer(self._file, chunk_size=CHUNK_BYTES, compression=CompressionType.ZSTD)
        self._channels: dict[str, int] = {}
        self._guard(self._begin, metadata or {})

    def _begin(self, metadata: Mapping[str, str]) -> None:
        w = self._writer
        w.start(profile="ros2", library="armbus")
        schema = w.register_schema(JOINT_STATE_TYPE, "ros2msg", JOINT_STATE_MSGDEF.encode())
        self._channels[JOINT_STATES] = w.register_channel(JOINT_STATES, "cdr", schema)
        for topic, (name, body) in JSON_SCHEMAS.items():
            sid = w.register_schema(name, "jsonschema", json.dumps(body).encode())
            self._channels[topic] = w.register_channel(topic, "json", sid)
        if metadata:
            w.add_metadata("armbus", {k: str(v) for k, v in metadata.items()})

    def metadata(self, data: Mapping[str, str], name: str = "armbus") -> None:
        """One MCAP metadata record (``name``: string pairs), e.g. the port and rate of a recording."""
        self._guard(self._writer.add_metadata, name, {k: str(v) for k, v in data.items()})

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except OSError as exc:
            self._abandon()
            held = sum(self.counts.values())
            raise TraceError(f"cannot write {self.path}: {exc.strerror or exc}; the recording stopped after "
                             f"{held} messages and the file is incomplete") from None

    def _abandon(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._file.close()

    def _add(self, topic: str, log_ns: int, data: bytes) -> None:
        if self._closed:
            raise UsageError(f"{self.path} is closed")
        if log_ns < 0:
            raise UsageError(f"log time {log_ns} ns is before the clock's epoch")
        seq = self.counts[topic]
        self._guard(lambda: self._writer.add_message(self._channels[topic], log_time=log_ns, data=data,
                                                     publish_time=log_ns, sequence=seq))
        self.counts[topic] = seq + 1

    def joint_states(self, log_ns: int, stamp_ns: int, names: Sequence[str], position: Sequence[float],
                     velocity: Sequence[float], effort: Sequence[float]) -> None:
        """One ``sensor_msgs/msg/JointState``: effort is the motor current (A)."""
        message = {"header": {"stamp": _stamp(max(0, stamp_ns)), "frame_id": ""}, "name": list(names),
                   "position": [float(v) for v in position], "velocity": [float(v) for v in velocity],
                   "effort": [float(v) for v in effort]}
        self._add(JOINT_STATES, log_ns, self._encode(message))

    def json(self, topic: str, log_ns: int, record: Mapping[str, Any]) -> None:
        """One message on a JSON channel (GOALS, FAULTS or LINK); a field that is None or not a finite number is
        left out (JSON has no NaN, and the schemas give every field one type)."""
        if topic not in JSON_SCHEMAS:
            raise UsageError(f"{topic} is not a JSON channel of a recording ({', '.join(JSON_SCHEMAS)})")
        clean = {k: v for k, v in record.items()
                 if v is not None and not (isinstance(v, float) and not math.isfinite(v))}
        self._add(topic, log_ns, json.dumps(clean, separators=(",", ":")).encode())

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> dict[str, int]:
        """Write the summary and close the file; returns the messages per topic. Idempotent."""
        if not self._closed:
            self._guard(self._writer.finish)
            self._closed = True
            try:
                self._file.close()
            except OSError as exc:
                raise TraceError(f"cannot write {self.path}: {exc.strerror}; the file is incomplete") from None
        return dict(self.counts)

    def __enter__(self) -> McapSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
