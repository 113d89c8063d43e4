"""``armbus serve --mqtt``: the bridge as one client of a served arm, its lease shared with local clients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mqttpeer import USERS, Peer

from armbus.bus.errors import LeaseError
from armbus.controller.arm import Arm
from armbus.tools.mqtt.broker import Mosquitto

pytestmark = pytest.mark.realtime


def _ok(result: Any) -> bool:
    return result is not None and result["status"] == "accepted"


def test_serve_with_mqtt_shares_the_lease_with_local_clients(broker: Mosquitto, tmp_path: Path) -> None:
    sock = str(tmp_path / "arm1.sock")
    env = {k: v for k, v in os.environ.items() if k != "ARMBUS_PORT"}
    serve = subprocess.Popen([sys.executable, "-m", "armbus.tools.cli", "serve", "--port", "armbus://?joints=3&seed=1",
                              "--socket", sock, "--mqtt", broker.url("bridge"), "--name", "arm1"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    viewer = Peer(broker.port, "viewer", USERS["viewer"]).subscribe("armbus/v1/arm1/#")
    alice = Peer(broker.port, "alice", USERS["alice"])
    try:
        assert viewer.wait(lambda m: any(t.endswith("/state/joint3") for t, _, _ in m), timeout=30)
        assert _ok(alice.command("arm1", "alice", "lease", action="acquire"))
        with Arm.open("serve://" + sock) as local:
            local.enumerate()
            with pytest.raises(LeaseError, match="mqtt:alice"):
                local.acquire_lease("local-script")
            assert local.lease_holder == "mqtt:alice"
            assert _ok(alice.command("arm1", "alice", "torque", on=True))
            assert _ok(alice.command("arm1", "alice", "goal", goals={"joint2": 0.4}))
            assert _ok(alice.command("arm1", "alice", "lease", action="release"))
            local.acquire_lease("local-script")
            refused = alice.command("arm1", "alice", "lease", action="acquire")
            assert refused is not None and refused["status"] == "refused" and "local-script" in refused["reason"]
            refused = alice.command("arm1", "alice", "goal", goals={"joint2": 0.0})
            assert refused is not None and refused["status"] == "refused"
            assert _ok(alice.command("arm1", "alice", "estop"))  # stopping is free
            assert viewer.wait(lambda m: sum(t.endswith("/fault") for t, _, _ in m) >= 3)
            local.release_lease()
        serve.send_signal(signal.SIGINT)
        _, err = serve.communicate(timeout=30)
        assert serve.returncode == 0 and "Traceback" not in err, err
        assert viewer.wait(lambda m: [msg for t, msg, _ in m if t.endswith("/status")][-1]["state"] == "offline")
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        viewer.close()
        alice.close()
