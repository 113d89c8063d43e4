"""A real Mosquitto broker per test (passwords, ACL, persistence in a tmp folder) and a virtual arm to bridge.

Users: ``bridge`` publishes telemetry and reads commands, ``alice`` and ``bob`` are operators (they command under
their own names), ``viewer`` only reads. Tests skip, saying why, where mosquitto is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mqttpeer import USERS

from armbus.tools.mqtt.broker import Mosquitto, available, lab_acl


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    why = available()
    if why is not None:
        pytest.skip(f"no MQTT broker: {why}")
    acl = lab_acl({"bridge": "+"}, operators=("alice", "bob"), viewers=("viewer",))
    with Mosquitto(tmp_path / "broker", USERS, acl) as server:
        yield server


@pytest.fixture
def arm() -> Iterator[Any]:
    from armbus.controller.arm import Arm

    with Arm.open("armbus://?joints=3&seed=1", timeout=1.0) as a:  # a busy machine answers late
        a.enumerate()
        yield a
