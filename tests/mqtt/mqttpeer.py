"""A client on another machine: it knows only the broker, the topic tree and JSON (plain paho-mqtt, no armbus)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

_ids = itertools.count()
#: The test broker's users (tests/mqtt/conftest.py): a bridge, two operators, a viewer.
USERS = {"bridge": "bridge-secret", "alice": "alice-secret", "bob": "bob-secret", "viewer": "viewer-secret"}


class Peer:
    """An MQTT client that records what it receives and waits for it."""

    def __init__(self, port: int, user: str | None, password: str | None, client_id: str = "",
                 clean: bool = True, will: tuple[str, dict[str, Any]] | None = None) -> None:
        self.messages: list[tuple[str, Any, bool]] = []  # (topic, decoded payload, retained)
        self.cond = threading.Condition()
        self.refused: str | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"peer-{next(_ids)}",
                                  clean_session=clean)
        if user is not None:
            self.client.username_pw_set(user, password)
        if will is not None:
            self.client.will_set(will[0], json.dumps(will[1]), qos=1)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.connected = threading.Event()
        self.filters: list[str] = []
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            with self.cond:
                self.cond.notify_all()
            return
        for f in self.filters:
            client.subscribe(f, 1)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self.cond:
            self.messages.append((message.topic, json.loads(message.payload), bool(message.retain)))
            self.cond.notify_all()

    def subscribe(self, topic_filter: str) -> Peer:
        self.filters.append(topic_filter)
        assert self.connected.wait(5), f"not connected ({self.refused})"
        _result, _mid = self.client.subscribe(topic_filter, 1)
        return self

    def wait(self, pred: Callable[[list[tuple[str, Any, bool]]], bool], timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        with self.cond:
            while not pred(self.messages):
                left = end - time.monotonic()
                if left <= 0 or self.refused is not None:
                    return False
                self.cond.wait(left)
            return True

    def on(self, topic: str) -> list[Any]:
        with self.cond:
            return [m for t, m, _ in self.messages if t == topic]

    def command(self, arm: str, user: str, verb: str, timeout: float = 10.0, **body: Any) -> dict[str, Any] | None:
        """Publish a command and wait for its result (None when none comes)."""
        request = f"{verb}-{next(_ids)}"
        result_topic = f"armbus/v1/{arm}/cmd/{user}/result"
        if result_topic not in self.filters:
            self.subscribe(result_topic)
            time.sleep(0.1)
        self.client.publish(f"armbus/v1/{arm}/cmd/{user}/{verb}", json.dumps({"v": 1, "id": request, **body}), qos=1)
        found: list[dict[str, Any]] = []

        def done(msgs: list[tuple[str, Any, bool]]) -> bool:
            found[:] = [m for t, m, _ in msgs if t == result_topic and m.get("id") == request]
            return bool(found)

        return found[0] if self.wait(done, timeout) else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
