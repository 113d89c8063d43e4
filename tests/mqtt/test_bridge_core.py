"""The MQTT bridge's sans-I/O core and its schemas, in simulated time (no broker, no threads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from armbus.bus.wire import NS_PER_S, FaultCode, StatusFlag
from armbus.controller.events import FaultReported, JointState, PortLost
from armbus.tools.bench.mqtt import StateArm
from armbus.tools.mqtt.bridge import parse_mqtt_url
from armbus.tools.mqtt.core import BridgeCore, Outgoing
from armbus.tools.mqtt.schema import SCHEMAS, Topics, check, schema_files, validate

MS = NS_PER_S // 1000
WALL = 1_800_000_000 * NS_PER_S


def core(**kw: Any) -> BridgeCore:
    return BridgeCore("arm1", {1: "shoulder", 2: "elbow"}, **kw)


def states(t: int, status: StatusFlag = StatusFlag.TORQUE_ON) -> dict[str, JointState]:
    return {name: JointState(t, a, status, 0.1 * a, 0.0, 0.2, 30.0, 12.0)
            for a, name in ((1, "shoulder"), (2, "elbow"))}


def drain(c: BridgeCore) -> list[tuple[str, dict[str, Any], Outgoing]]:
    return [(m.topic, json.loads(m.payload), m) for m in c.outbox.take(10_000)]


def test_states_are_rate_limited_per_joint_and_a_late_reading_does_not_cost_the_next() -> None:
    c = core(rate_hz=100)
    queued = [c.on_states(states(t), t, WALL + t) for t in (0, 3 * MS, 10 * MS, 25 * MS, 30 * MS, 31 * MS)]
    # 0 ok; 3 ms too soon; 10 ok; 25 (late) ok; 30 ok although 5 ms after the late one; 31 too soon
    assert queued == [2, 0, 2, 2, 2, 0]
    assert c.counters.states_skipped == 4 and c.counters.states_queued == 8
    out = drain(c)
    assert [t for t, _, _ in out][:2] == ["armbus/v1/arm1/state/shoulder", "armbus/v1/arm1/state/elbow"]
    assert all(m.qos == 0 and not m.retain for _, _, m in out)
    for topic, body, _ in out:
        assert check("state", body) == [], topic
    assert [b["seq"] for _, b, _ in out] == list(range(8))
    assert out[0][1]["flags"] == ["TORQUE_ON"] and out[0][1]["t"] == WALL / NS_PER_S


def test_the_arm_layout_sends_one_message_per_reading() -> None:
    c = core(rate_hz=50, layout="both")
    c.on_states(states(0, StatusFlag.NONE), 0, WALL)
    out = drain(c)
    assert [t for t, _, _ in out] == ["armbus/v1/arm1/state/shoulder", "armbus/v1/arm1/state/elbow",
                                      "armbus/v1/arm1/states"]
    snapshot = out[2][1]
    assert check("states", snapshot) == [] and set(snapshot["joints"]) == {"shoulder", "elbow"}
    assert snapshot["joints"]["elbow"]["flags"] == []
    with pytest.raises(ValueError, match="layout"):
        core(layout="bus")


def test_telemetry_and_events_are_bounded_and_drops_are_counted() -> None:
    c = core(rate_hz=1000, telemetry_limit=5, event_limit=3)
    for k in range(10):
        c.on_states(states(k * MS), k * MS, WALL)
    for k in range(7):
        assert c.on_event(FaultReported(k, 1, FaultCode.STALL, k % 2 == 0, k), WALL)
    assert c.counters.telemetry_dropped == 15 and len(c.outbox.telemetry) == 5
    assert c.counters.events_dropped == 4 and c.counters.faults == 7
    out = drain(c)
    faults = [b for t, b, _ in out if t.endswith("/fault")]
    assert [f["seq"] for f in faults] == [4, 5, 6]  # the newest kept, in order, ahead of telemetry
    assert out[0][0].endswith("/fault") and all(m.qos == 1 for t, _, m in out if t.endswith("/fault"))
    assert all(check("fault", f) == [] for f in faults)


def test_take_hands_over_events_only_up_to_the_room_in_flight() -> None:
    c = core()
    for k in range(5):
        c.on_event(FaultReported(k, 2, FaultCode.ESTOP, True, 0), WALL)
    assert len(c.outbox.take(2)) == 2 and len(c.outbox.events) == 3
    assert len(c.outbox.take(0)) == 0 and len(c.outbox.take(10)) == 3


def test_link_events_and_unknown_fault_codes() -> None:
    c = core()
    assert c.on_event(PortLost(0, "/dev/ttyUSB0", "unplugged"), WALL)
    assert c.on_event(FaultReported(0, 9, 200, True, 1), WALL)
    (t1, link, _), (_, fault, _) = drain(c)
    assert t1 == "armbus/v1/arm1/link" and link["event"] == "port_lost" and check("link", link) == []
    assert fault["code"] == "200" and fault["joint"] == "joint9" and check("fault", fault) == []


def test_status_is_retained_and_the_will_says_offline() -> None:
    c = core()
    online, offline = c.status(True, WALL), c.status(False, WALL)
    assert online.retain and online.qos == 1 and offline.topic == "armbus/v1/arm1/status"
    assert json.loads(offline.payload)["state"] == "offline" and check("status", json.loads(online.payload)) == []


def _command(c: BridgeCore, user: str, verb: str, now: int = 0, **body: Any) -> Any:
    return c.on_command(f"armbus/v1/arm1/cmd/{user}/{verb}", json.dumps({"v": 1, "id": "r", **body}).encode(),
                        now, WALL)


def _results(c: BridgeCore) -> list[dict[str, Any]]:
    return [b for t, b, _ in drain(c) if t.endswith("/result")]


def test_commands_need_the_lease_except_estop_and_each_refusal_is_answered() -> None:
    c = core()
    assert _command(c, "alice", "goal", goals={"shoulder": 0.1}) is None
    assert _command(c, "alice", "estop") is not None
    assert _command(c, "alice", "torque", on=False) is not None  # stopping is free
    assert _command(c, "alice", "torque", on=True) is None
    assert _command(c, "alice", "goal", goals={"shoulder": "up"}) is None
    assert c.on_command("armbus/v1/arm1/cmd/alice/torque", b"{not json", 0, WALL) is None
    assert c.on_command("armbus/v1/arm2/cmd/alice/torque", b"{}", 0, WALL) is None  # another arm's: ignored
    assert c.on_command("armbus/v1/arm1/cmd/alice/result", b"{}", 0, WALL) is None  # not a command
    results = _results(c)
    assert [r["status"] for r in results] == ["refused"] * 4
    assert "needs the lease" in results[0]["reason"] and "needs the lease" in results[1]["reason"]
    assert "bad message" in results[2]["reason"] and "not JSON" in results[3]["reason"]
    assert all(check("result", r) == [] for r in results)


def test_the_lease_book() -> None:
    c = core(lease_ttl=2.0)
    take = _command(c, "alice", "lease", action="acquire", ttl=1.0)
    assert take is not None
    c.lease_taken("alice", take.body.get("ttl"), 0)
    assert _command(c, "bob", "lease", 10 * MS, action="acquire") is None
    assert "held by alice" in _results(c)[-1]["reason"]
    goal = _command(c, "alice", "goal", 500 * MS, goals={"shoulder": 0.1})
    assert goal is not None
    c.finished(goal, True, "sent", 500 * MS, WALL)  # renews for lease_ttl
    assert c.tick(2 * NS_PER_S, WALL) is None and c.holder == "alice"
    assert c.tick(2500 * MS, WALL) == "alice" and c.holder is None and c.counters.leases_lost == 1
    c.lease_taken("bob", None, 3 * NS_PER_S)
    assert c.connection(False, 3 * NS_PER_S, WALL) == "bob" and c.holder is None
    assert c.connection(True, 4 * NS_PER_S, WALL) is None and c.counters.connects == 1


def test_names_that_cannot_be_topic_levels_are_refused() -> None:
    for bad in ("arm/1", "arm+", "#", ""):
        with pytest.raises(ValueError, match="topic level"):
            BridgeCore(bad, {1: "j"})


def test_the_validator_catches_what_the_schemas_forbid() -> None:
    schema = SCHEMAS["lease"]
    assert validate(schema, {"v": 1, "id": "a", "action": "acquire", "ttl": 5}) == []
    assert any("missing 'action'" in p for p in validate(schema, {"v": 1, "id": "a"}))
    assert any("unexpected 'who'" in p for p in validate(schema, {"v": 1, "id": "a", "action": "acquire", "who": 1}))
    assert any("< 0.5" in p for p in validate(schema, {"v": 1, "id": "a", "action": "acquire", "ttl": 0.1}))
    assert any("must be 1" in p for p in validate(schema, {"v": 2, "id": "a", "action": "acquire"}))
    assert any("not of type" in p for p in validate(SCHEMAS["estop"], {"v": 1, "id": "a", "reason": True}))
    assert any("not of type" in p for p in validate(SCHEMAS["goal"], {"v": 1, "id": "a", "goals": {"x": "1"}}))


def test_the_schema_copies_in_docs_are_current() -> None:
    folder = Path(__file__).resolve().parents[2] / "docs" / "mqtt-schema" / "v1"
    for name, text in schema_files().items():
        path = folder / name
        assert path.is_file() and path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: python -m armbus.tools.mqtt.schema docs/mqtt-schema/v1")


def test_topics_of_an_arm() -> None:
    t = Topics("arm1")
    assert t.parse_command("armbus/v1/arm1/cmd/alice/goal") == ("alice", "goal")
    assert t.parse_command("armbus/v1/arm1/cmd/alice/goal/x") is None
    assert t.result("alice") == "armbus/v1/arm1/cmd/alice/result"
    assert "armbus/v1/arm1/cmd/+/estop" in t.command_filters()


def test_broker_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    from armbus.bus.errors import UsageError

    u = parse_mqtt_url("mqtt://bridge:s%40cret@broker.lab:1884")
    assert (u.host, u.port, u.user, u.password, u.tls) == ("broker.lab", 1884, "bridge", "s@cret", False)
    assert "cret" not in str(u)
    monkeypatch.setenv("ARMBUS_MQTT_PASSWORD", "from-env")
    u = parse_mqtt_url("mqtts://bridge@broker.lab")
    assert (u.port, u.password, u.tls) == (8883, "from-env", True)
    for bad in ("http://x", "mqtt://", "mqtt://h:99999"):
        with pytest.raises(UsageError):
            parse_mqtt_url(bad)


def test_the_state_arm_is_seeded() -> None:
    a, b = StateArm(3, seed=4, clock=lambda: 5), StateArm(3, seed=4, clock=lambda: 5)
    assert a.read_states() == b.read_states() and len(a.read_states()) == 3
