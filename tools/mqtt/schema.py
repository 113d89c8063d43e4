"""The MQTT topic tree (version 1) and the JSON Schema of every message on it, with a small validator.

Theory of operation
-------------------
Every topic of an arm called ``NAME`` starts with ``armbus/v1/NAME``; a change that breaks a reader gets a new
version segment (``armbus/v2/...``) and a new ``"v"`` value in the payloads, so both can run side by side.

=====================================  =====  ======  ==========================================================
topic                                  QoS    retain  message
=====================================  =====  ======  ==========================================================
``armbus/v1/NAME/status``              1      yes     ``status``: online, or offline (the bridge's last will)
``armbus/v1/NAME/state/JOINT``         0      no      ``state``: one joint's state, at the bridge's rate
``armbus/v1/NAME/states``              0      no      ``states``: every joint of one reading (``--state-topics arm``)
``armbus/v1/NAME/fault``               1      no      ``fault``: a joint's fault became active or cleared
``armbus/v1/NAME/link``                1      no      ``link``: the port was lost or restored, a send failed
``armbus/v1/NAME/counters``            0      no      ``counters``: the bridge's counters, once a second
``armbus/v1/NAME/cmd/USER/VERB``       1      no      a command (``goal``, ``torque``, ``estop``, ``clear``,
                                                      ``lease``) from the broker user ``USER``
``armbus/v1/NAME/cmd/USER/result``     1      no      ``result``: accepted or refused (with the reason)
=====================================  =====  ======  ==========================================================

The ``USER`` segment is who commands: the broker's ACL lets an operator publish commands only under its own user
name (``topic write armbus/v1/+/cmd/alice/goal`` for user ``alice``; :func:`armbus.tools.mqtt.broker.lab_acl`),
so the bridge knows the sender without trusting the payload. Payloads
are JSON objects, ``"v": 1`` first; ``t`` is the sender's wall clock in seconds since the epoch. :data:`SCHEMAS`
is the one definition; docs/mqtt-schema/v1/ holds generated copies for readers in other languages
(:func:`write_schema_files`; a test checks they are current). :func:`validate` checks the subset of JSON Schema
used here (type, properties, required, additionalProperties, enum, const, minimum, maximum, items, minLength) and
returns a list of problems, empty when the message is valid.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

#: Version of the topic tree and of the payloads (the ``v`` field).
VERSION = 1
ROOT = f"armbus/v{VERSION}"
#: Command verbs an operator may publish.
VERBS = ("goal", "torque", "estop", "clear", "lease")
RESULT = "result"
#: A name that can be one topic level: no MQTT wildcard, separator or control character, not empty.
LEVEL = re.compile(r"^[^/+#\x00-\x1f]{1,64}$")

_NUMBER: dict[str, Any] = {"type": "number"}
_INT: dict[str, Any] = {"type": "integer"}
_NAME: dict[str, Any] = {"type": "string", "minLength": 1}
_HEADER: dict[str, Any] = {"v": {"const": VERSION}, "t": {"type": "number", "minimum": 0}}


def _message(title: str, props: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://armbus.invalid/mqtt/v{VERSION}/{title}.schema.json",
        "title": title, "type": "object", "properties": {**_HEADER, **props},
        "required": ["v", *required], "additionalProperties": False,
    }


def _command(title: str, props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return _message(title, {"id": {"type": "string", "minLength": 1, "maxLength": 64}, **props}, ("id", *required))


#: message name -> JSON Schema (draft 2020-12). The one definition of the payloads.
SCHEMAS: dict[str, dict[str, Any]] = {
    "status": _message("status", {
        "state": {"enum": ["online", "offline"]}, "arm": _NAME,
        "joints": {"type": "array", "items": _NAME}, "rate_hz": _NUMBER,
    }, ("state", "arm")),
    "state": _message("state", {
        "seq": _INT, "arm": _NAME, "joint": _NAME, "address": _INT, "position": _NUMBER, "velocity": _NUMBER,
        "current": _NUMBER, "temperature": _NUMBER, "voltage": _NUMBER,
        "flags": {"type": "array", "items": {"type": "string"}},
    }, ("t", "seq", "arm", "joint", "address", "position", "velocity", "current", "temperature", "voltage",
        "flags")),
    "states": _message("states", {
        "seq": _INT, "arm": _NAME,
        "joints": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": False,
            "required": ["address", "position", "velocity", "current", "temperature", "voltage", "flags"],
            "properties": {"address": _INT, "position": _NUMBER, "velocity": _NUMBER, "current": _NUMBER,
                           "temperature": _NUMBER, "voltage": _NUMBER,
                           "flags": {"type": "array", "items": {"type": "string"}}}}},
    }, ("t", "seq", "arm", "joints")),
    "fault": _message("fault", {
        "seq": _INT, "arm": _NAME, "joint": _NAME, "address": _INT, "code": _NAME, "code_value": _INT,
        "active": {"type": "boolean"}, "value": _INT,
    }, ("t", "seq", "arm", "joint", "address", "code", "code_value", "active", "value")),
    "link": _message("link", {
        "seq": _INT, "arm": _NAME, "event": {"enum": ["port_lost", "port_restored", "send_failed", "link"]},
        "detail": {"type": "string"},
    }, ("t", "seq", "arm", "event", "detail")),
    "counters": _message("counters", {
        "arm": _NAME, "connected": {"type": "boolean"},
        "counters": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "lease": {"type": ["string", "null"]},
    }, ("t", "arm", "connected", "counters", "lease")),
    "goal": _command("goal", {"goals": {"type": "object", "additionalProperties": _NUMBER}}, ("goals",)),
    "torque": _command("torque", {"on": {"type": "boolean"}, "joint": _NAME}, ("on",)),
    "estop": _command("estop", {"reason": {"type": "integer", "minimum": 0, "maximum": 255}}),
    "clear": _command("clear", {"joint": _NAME}),
    "lease": _command("lease", {"action": {"enum": ["acquire", "release"]},
                                "ttl": {"type": "number", "minimum": 0.5, "maximum": 3600}}, ("action",)),
    "result": _message("result", {
        "arm": _NAME, "id": {"type": "string"}, "client": _NAME, "cmd": {"type": "string"},
        "status": {"enum": ["accepted", "refused"]}, "reason": {"type": "string"},
        "holder": {"type": ["string", "null"]},
    }, ("t", "arm", "id", "client", "cmd", "status", "reason", "holder")),
}

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,), "null": (type(None),),
    "integer": (int,), "number": (int, float),
}


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def validate(schema: dict[str, Any], value: Any, where: str = "$") -> list[str]:
    """Problems of ``value`` against ``schema`` (the subset described in the module docstring); [] when valid."""
    problems: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            return [f"{where}: {json.dumps(value)[:40]} is not of type {'/'.join(kinds)}"]
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: must be {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(schema["items"], item, f"{where}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        problems += [f"{where}: missing {k!r}" for k in schema.get("required", ()) if k not in value]
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                problems += validate(props[key], item, f"{where}.{key}")
            elif extra is False:
                problems.append(f"{where}: unexpected {key!r}")
            elif isinstance(extra, dict):
                problems += validate(extra, item, f"{where}.{key}")
    return problems


def check(name: str, message: Any) -> list[str]:
    """Problems of ``message`` against the schema of message ``name``."""
    return validate(SCHEMAS[name], message)


def schema_files() -> dict[str, str]:
    """File name -> text of the generated schema copies (docs/mqtt-schema/v1/)."""
    return {f"{name}.schema.json": json.dumps(schema, indent=2) + "\n" for name, schema in SCHEMAS.items()}


def write_schema_files(folder: Path) -> list[Path]:
    """Write the schema copies into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in schema_files().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        out.append(path)
    return out


class Topics:
    """The topics of one arm: ``armbus/v1/NAME/...``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.base = f"{ROOT}/{name}"
        self.status = f"{self.base}/status"
        self.states = f"{self.base}/states"
        self.fault = f"{self.base}/fault"
        self.link = f"{self.base}/link"
        self.counters = f"{self.base}/counters"

    def state(self, joint: str) -> str:
        return f"{self.base}/state/{joint}"

    def command(self, user: str, verb: str) -> str:
        return f"{self.base}/cmd/{user}/{verb}"

    def result(self, user: str) -> str:
        return f"{self.base}/cmd/{user}/{RESULT}"

    def command_filters(self) -> list[str]:
        """What the bridge subscribes to: every user's commands, one filter per verb (not the results)."""
        return [f"{self.base}/cmd/+/{verb}" for verb in VERBS]

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """(user, verb) of a command topic of this arm, or None."""
        prefix = f"{self.base}/cmd/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix):].split("/")
        if len(parts) != 2 or parts[1] not in VERBS or not parts[0]:
            return None
        return parts[0], parts[1]


if __name__ == "__main__":  # regenerate the copies: python -m armbus.tools.mqtt.schema docs/mqtt-schema/v1
    import sys

    for written in write_schema_files(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/mqtt-schema/v1")):
        print(written)
