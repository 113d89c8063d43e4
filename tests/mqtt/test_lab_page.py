"""docs/lab.md, "Try it on one machine", runs as written: the broker's config and password commands, the bridge's
command line, the operator's mosquitto_pub commands; and its ACL is the one the code writes."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mqttpeer import Peer

from armbus.tools.mqtt.broker import MOSQUITTO, available, clients_available, free_port, lab_acl

pytestmark = pytest.mark.realtime
PAGE = (Path(__file__).resolve().parents[2] / "docs" / "lab.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```([a-z]*)\n(.*?)^```$", PAGE, re.M | re.S)


def test_the_acl_on_the_page_is_the_one_the_code_writes() -> None:
    acl = next(body for kind, body in BLOCKS if body.startswith("user bridge-arm1"))
    assert acl.strip() == lab_acl({"bridge-arm1": "arm1", "bridge-arm2": "arm2"}, ("alice", "bob"),
                                  ("dashboard",)).strip()
    acl = next(body for kind, body in BLOCKS if body.startswith("# lab/acl"))
    assert acl.split("\n", 1)[1].strip() == lab_acl({"bridge": "arm1"}, ("alice",), ("viewer",)).strip()


@pytest.mark.skipif((available() or clients_available()) is not None,
                    reason=f"no MQTT broker or clients: {available() or clients_available()}")
def test_try_it_on_one_machine(tmp_path: Path) -> None:
    port = str(free_port())
    conf = next(body for kind, body in BLOCKS if body.startswith("# mosquitto.conf"))
    # as root, mosquitto would switch to its own user, who cannot read this folder
    (tmp_path / "mosquitto.conf").write_text(conf.replace("1883", port) + f"user {os.environ.get('USER', 'root')}\n")
    acl = next(body for kind, body in BLOCKS if body.startswith("# lab/acl"))
    lines = [ln for kind, body in BLOCKS if kind == "sh" for ln in body.splitlines()]
    broker = bridge = None
    try:
        for line in lines:
            line = line.replace("1883", port)
            if line.startswith(("mkdir", "mosquitto_passwd")):
                subprocess.run(line, shell=True, cwd=tmp_path, check=True)
                (tmp_path / "lab" / "acl").write_text(acl)
            elif line.startswith("mosquitto -c"):
                broker = subprocess.Popen([MOSQUITTO, "-c", "mosquitto.conf"], cwd=tmp_path,
                                          stderr=subprocess.DEVNULL)
                time.sleep(0.5)
                alice = Peer(int(port), "alice", "alice-secret").subscribe("armbus/v1/arm1/cmd/alice/result")
                viewer = Peer(int(port), "viewer", "viewer-secret").subscribe("armbus/v1/arm1/status")
            elif line.startswith("armbus bridge"):
                env = {k: v for k, v in os.environ.items() if k != "ARMBUS_PORT"}
                bridge = subprocess.Popen([sys.executable, "-m", "armbus.tools.cli", *shlex.split(line)[1:]],
                                          cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
                assert viewer.wait(lambda m: any(msg["state"] == "online" for _, msg, _ in m), timeout=30)
            elif line.startswith("mosquitto_pub"):
                subprocess.run(line, shell=True, cwd=tmp_path, check=True, timeout=30)
                time.sleep(0.3)
        assert alice.wait(lambda m: len(m) >= 5, timeout=15)
        results = [(msg["id"], msg["status"]) for _, msg, _ in alice.messages]
        assert results == [("l1", "accepted"), ("t1", "accepted"), ("g1", "accepted"), ("l2", "accepted"),
                           ("e1", "accepted")], alice.messages
        assert bridge is not None
        bridge.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = bridge.communicate(timeout=30)
        assert bridge.returncode in (0, 130) and "Traceback" not in err, err
        assert viewer.wait(lambda m: m[-1][1]["state"] == "offline")
        alice.close()
        viewer.close()
    finally:
        for proc in (bridge, broker):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
