"""The MQTT bridge against a real Mosquitto broker: telemetry, faults, status and its last will, authentication
and the ACL, leases between operators, a second machine's e-stop, a broker restart mid-stream, bounded buffers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mqttpeer import USERS, Peer

from armbus.bus.wire import StatusFlag
from armbus.tools.mqtt.bridge import Bridge
from armbus.tools.mqtt.broker import Mosquitto
from armbus.tools.mqtt.schema import check

pytestmark = pytest.mark.realtime
BASE = "armbus/v1/arm1"
JOINTS = ("joint1", "joint2", "joint3")


def schema_of(topic: str) -> str:
    """The message name of a topic of the tree (armbus.tools.mqtt.schema)."""
    parts = topic.split("/")
    if parts[3] == "cmd":
        return parts[5]
    return parts[3]


def assert_valid(messages: list[tuple[str, Any, bool]]) -> None:
    for topic, message, _ in messages:
        problems = check(schema_of(topic), message)
        assert not problems, f"{topic}: {problems}"


@pytest.fixture
def bridge(broker: Mosquitto, arm: Any) -> Iterator[Bridge]:
    b = Bridge(arm, broker.url("bridge"), "arm1", rate_hz=20, reconnect_delay=(0.2, 1.0)).start()
    assert b.wait_connected(10)
    yield b
    b.stop()


def peer(broker: Mosquitto, user: str, **kw: Any) -> Peer:
    return Peer(broker.port, user, USERS[user], **kw)


def until(pred: Any, timeout: float = 10.0) -> bool:
    """Poll ``pred()`` until it holds or ``timeout`` s passed."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def faults(p: Peer) -> list[dict[str, Any]]:
    return p.on(f"{BASE}/fault")


def test_states_faults_and_status_reach_a_viewer_and_match_their_schemas(broker: Mosquitto, bridge: Bridge) -> None:
    viewer = peer(broker, "viewer").subscribe(f"{BASE}/#")
    try:
        assert viewer.wait(lambda m: all(sum(t == f"{BASE}/state/{j}" for t, _, _ in m) >= 5 for j in JOINTS))
        status = viewer.on(f"{BASE}/status")
        assert status[0]["state"] == "online" and status[0]["joints"] == list(JOINTS)
        alice = peer(broker, "alice")
        result = alice.command("arm1", "alice", "estop")
        assert result is not None and result["status"] == "accepted"
        assert viewer.wait(lambda m: sum(t == f"{BASE}/fault" for t, _, _ in m) >= 3)
        assert viewer.wait(lambda m: any(t == f"{BASE}/counters" for t, _, _ in m))
        alice.close()
        assert {(f["joint"], f["code"], f["active"]) for f in faults(viewer)} == {(j, "ESTOP", True) for j in JOINTS}
        seqs = [s["seq"] for s in viewer.on(f"{BASE}/state/joint1")]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert_valid(viewer.messages)
    finally:
        viewer.close()


def test_a_new_subscriber_gets_the_retained_status(broker: Mosquitto, bridge: Bridge) -> None:
    late = peer(broker, "viewer").subscribe(f"{BASE}/status")
    try:
        assert late.wait(lambda m: bool(m))
        _topic, message, retained = late.messages[0]
        assert retained and message["state"] == "online"
    finally:
        late.close()


def test_the_last_will_says_offline_when_the_bridge_dies(broker: Mosquitto) -> None:
    viewer = peer(broker, "viewer").subscribe(f"{BASE}/status")
    proc = subprocess.Popen([sys.executable, "-m", "armbus.tools.cli", "bridge", "--port", "armbus://?joints=2&seed=1",
                             "--mqtt", broker.url("bridge"), "--name", "arm1", "--rate", "5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert viewer.wait(lambda m: any(msg["state"] == "online" for _, msg, _ in m), timeout=30)
        proc.send_signal(signal.SIGKILL)  # no goodbye: the broker publishes the will
        proc.wait()
        assert viewer.wait(lambda m: m[-1][1]["state"] == "offline", timeout=10)
        assert viewer.messages[-1][1]["arm"] == "arm1"
    finally:
        if proc.poll() is None:
            proc.kill()
        viewer.close()


def test_unauthenticated_clients_are_refused_and_a_viewer_cannot_command(broker: Mosquitto, bridge: Bridge,
                                                                           arm: Any) -> None:
    for user, password in ((None, None), ("alice", "wrong"), ("mallory", "x")):
        stranger = Peer(broker.port, user, password)
        assert stranger.wait(lambda m: False, timeout=1.0) is False
        assert stranger.refused is not None and not stranger.connected.is_set(), (user, stranger.refused)
        stranger.close()
    viewer = peer(broker, "viewer")
    try:
        assert viewer.connected.wait(5)
        # the viewer is let in, may read, and may not publish: the broker drops its commands
        assert viewer.command("arm1", "viewer", "estop", timeout=1.5) is None
        assert viewer.command("arm1", "alice", "estop", timeout=1.5) is None
        states = arm.read_states()
        assert not any(s.status & StatusFlag.ESTOPPED for s in states.values())
        assert bridge.counters()["commands_accepted"] == 0
    finally:
        viewer.close()


def test_two_operators_and_one_lease(broker: Mosquitto, bridge: Bridge, arm: Any) -> None:
    alice, bob = peer(broker, "alice"), peer(broker, "bob")
    try:
        a = alice.command("arm1", "alice", "goal", goals={"joint1": 0.1})
        assert a is not None and a["status"] == "refused" and "needs the lease" in a["reason"]
        a = alice.command("arm1", "alice", "lease", action="acquire")
        assert a is not None and a["status"] == "accepted" and a["holder"] == "alice"
        b = bob.command("arm1", "bob", "lease", action="acquire")
        assert b is not None and b["status"] == "refused" and "held by alice" in b["reason"]
        b = bob.command("arm1", "bob", "torque", on=True)
        assert b is not None and b["status"] == "refused" and "held by alice" in b["reason"]
        a = alice.command("arm1", "alice", "torque", on=True)
        assert a is not None and a["status"] == "accepted", a
        a = alice.command("arm1", "alice", "goal", goals={"joint1": 0.2})
        assert a is not None and a["status"] == "accepted", a
        # bob may always stop the arm
        b = bob.command("arm1", "bob", "estop")
        assert b is not None and b["status"] == "accepted"
        b = bob.command("arm1", "bob", "lease", action="release")
        assert b is not None and b["status"] == "refused"
        a = alice.command("arm1", "alice", "lease", action="release")
        assert a is not None and a["status"] == "accepted" and a["holder"] is None
        b = bob.command("arm1", "bob", "lease", action="acquire")
        assert b is not None and b["status"] == "accepted" and b["holder"] == "bob"
        b = bob.command("arm1", "bob", "clear")
        assert b is not None and b["status"] == "accepted", b
        a = alice.command("arm1", "alice", "goal", goals={"joint1": 0.0})
        assert a is not None and a["status"] == "refused" and "held by bob" in a["reason"]
        bad = alice.command("arm1", "alice", "lease", action="grab")
        assert bad is not None and bad["status"] == "refused" and "bad message" in bad["reason"]
        assert not any(s.status & StatusFlag.ESTOPPED for s in arm.read_states().values())
        assert_valid(alice.messages + bob.messages)
    finally:
        alice.close()
        bob.close()


def _torque_on_and_move(p: Peer, user: str, arm: Any, target: float) -> None:
    assert p.command("arm1", user, "lease", action="acquire", ttl=30)["status"] == "accepted"  # type: ignore[index]
    assert p.command("arm1", user, "torque", on=True)["status"] == "accepted"  # type: ignore[index]
    assert p.command("arm1", user, "goal", goals={"joint1": target})["status"] == "accepted"  # type: ignore[index]
    time.sleep(0.05)
    assert arm.read_states()["joint1"].status & StatusFlag.MOVING


def _held(arm: Any, target: float) -> None:
    """joint1 stopped short of ``target`` and stays where it stopped."""
    time.sleep(0.5)
    first = arm.read_states()["joint1"].position
    time.sleep(0.5)
    second = arm.read_states()["joint1"].position
    assert abs(second - first) < 0.01 and abs(second - target) > 0.05, (first, second)


def test_a_dead_operator_loses_the_lease_by_its_will_and_the_arm_holds(broker: Mosquitto, bridge: Bridge,
                                                                       arm: Any) -> None:
    release = {"v": 1, "id": "will", "action": "release"}
    bob = peer(broker, "bob", will=(f"{BASE}/cmd/bob/lease", release))
    _torque_on_and_move(bob, "bob", arm, 3.0)  # a long move: it is under way when bob dies
    bob.client.socket().shutdown(socket.SHUT_RDWR)  # the connection breaks without a DISCONNECT
    bob.client.loop_stop()
    alice = peer(broker, "alice")
    try:
        assert until(lambda: bridge.counters()["commands_accepted"] == 4)  # bob's three, and his will's release
        _held(arm, 3.0)
        a = alice.command("arm1", "alice", "lease", action="acquire")
        assert a is not None and a["status"] == "accepted"
    finally:
        alice.close()


def test_a_lease_not_renewed_runs_out_and_the_arm_holds(broker: Mosquitto, arm: Any) -> None:
    with Bridge(arm, broker.url("bridge"), "arm1", rate_hz=20, lease_ttl=1.0) as bridge:
        assert bridge.wait_connected(10)
        alice = peer(broker, "alice")
        try:
            _torque_on_and_move(alice, "alice", arm, -3.0)
            assert alice.command("arm1", "alice", "lease", action="acquire", ttl=1.0)["status"] == "accepted"  # type: ignore[index]
            assert until(lambda: bridge.counters()["leases_lost"] == 1, timeout=5)
            _held(arm, -3.0)
            late = alice.command("arm1", "alice", "goal", goals={"joint1": -3.0})
            assert late is not None and late["status"] == "refused"
        finally:
            alice.close()


def test_a_second_machine_sees_states_and_faults_and_e_stops_the_arm(broker: Mosquitto, bridge: Bridge,
                                                                      arm: Any) -> None:
    remote = peer(broker, "alice").subscribe(f"{BASE}/state/+").subscribe(f"{BASE}/fault")
    try:
        assert remote.wait(lambda m: len(m) >= 9)
        result = remote.command("arm1", "alice", "estop", reason=3)
        assert result is not None and result["status"] == "accepted" and result["cmd"] == "estop"
        assert remote.wait(lambda m: len({f["joint"] for f in faults(remote) if f["code"] == "ESTOP"}) == 3)
        # the states that follow say so too
        assert remote.wait(lambda m: all("ESTOPPED" in s["flags"] for s in
                                         [msgs[-1] for msgs in (remote.on(f"{BASE}/state/{j}") for j in JOINTS)]))
        assert all(s.status & StatusFlag.ESTOPPED for s in arm.read_states().values())
        assert_valid(remote.messages)
    finally:
        remote.close()


def _fault_burst(arm: Any) -> None:
    """Six fault events: every joint e-stopped (3 active), then released (3 cleared)."""
    arm.estop()
    time.sleep(0.05)
    for name in arm.model.joints:
        arm.write(name, "estop", 0)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "crashed"])
def test_no_fault_is_lost_across_a_broker_restart(broker: Mosquitto, bridge: Bridge, arm: Any,
                                                  how: signal.Signals) -> None:
    log = peer(broker, "viewer", client_id="fault-log", clean=False).subscribe(f"{BASE}/fault")
    try:
        _fault_burst(arm)
        assert log.wait(lambda m: len(m) >= 6)
        log.close()  # away for a while: its persistent session keeps what arrives
        _fault_burst(arm)  # queued by the broker for the session
        # SIGKILL loses what the broker did not save yet: it saves every autosave_interval (1 s), once that has
        # fully passed since the last save, so up to 2 s apart
        time.sleep(2.5)
        broker.stop(how)  # SIGTERM: the broker saves sessions and queued messages as it stops
        assert until(lambda: not bridge.connected)
        _fault_burst(arm)  # held by the bridge while the broker is away
        _fault_burst(arm)
        assert until(lambda: bridge.counters()["events_waiting"] + bridge.counters()["events_inflight"] >= 12)
        broker.start()  # same port, same persistence folder; the bridge comes back by itself
        assert bridge.wait_connected(15)
        _fault_burst(arm)
        log = peer(broker, "viewer", client_id="fault-log", clean=False).subscribe(f"{BASE}/fault")
        assert log.wait(lambda m: len({msg["seq"] for _, msg, _ in m}) >= 30 - 6, timeout=15), len(log.messages)
        seqs = sorted({msg["seq"] for _, msg, _ in log.messages})
        assert seqs == list(range(6, 30))
        counters = bridge.counters()
        assert counters["events_dropped"] == 0 and counters["connects"] == 2 and counters["disconnects"] == 1
    finally:
        log.close()


def test_the_buffers_are_bounded_and_count_what_they_drop(broker: Mosquitto, arm: Any) -> None:
    with Bridge(arm, broker.url("bridge"), "arm1", rate_hz=50, telemetry_limit=20, event_limit=5,
                reconnect_delay=(0.2, 0.5)) as bridge:
        assert bridge.wait_connected(10)
        log = peer(broker, "viewer", client_id="bounded", clean=False).subscribe(f"{BASE}/fault")
        log.close()
        broker.stop()
        assert until(lambda: not bridge.connected)
        time.sleep(1.0)
        _fault_burst(arm)
        _fault_burst(arm)
        assert until(lambda: bridge.counters()["faults"] == 12)
        c = bridge.counters()
        # 3 joints at 50 Hz for over a second, 20 kept: the oldest went, counted
        assert c["telemetry_waiting"] == 20 and c["telemetry_dropped"] >= 100, c
        # twelve faults, five kept
        assert c["events_waiting"] == 5 and c["events_dropped"] == 7, c
        broker.start()
        assert bridge.wait_connected(15)
        log = peer(broker, "viewer", client_id="bounded", clean=False).subscribe(f"{BASE}/fault")
        try:
            assert log.wait(lambda m: len(m) >= 5)
            time.sleep(0.3)
            # the newest five faults made it, in order
            assert [msg["seq"] for _, msg, _ in log.messages] == list(range(7, 12))
        finally:
            log.close()
