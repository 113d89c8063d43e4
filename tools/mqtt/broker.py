"""A real Mosquitto broker on 127.0.0.1 with passwords, an ACL and persistence, for tests, benchmarks and a bench lab.

Theory of operation
-------------------
:class:`Mosquitto` writes a configuration into a folder of its own: a password file made with ``mosquitto_passwd``
(hashed, as in production), the ACL of :func:`lab_acl` and a persistence directory, then runs ``mosquitto -c``.
It listens on 127.0.0.1 only, on a free port chosen at construction and kept across :meth:`restart`, so clients
reconnect to the same address and the persistence directory carries sessions and queued QoS 1 messages over a
restart (Mosquitto writes it when stopped with SIGTERM, and every ``autosave_interval`` seconds). :meth:`kill`
stops it with SIGKILL: what changed since the last save is lost, as on a crash.

The ACL is the lab's (docs/lab.md): the bridge user publishes telemetry and results and reads commands; operators
publish commands under their own user name only and read everything; viewers only read. An unknown user, or a
known user with a wrong password, is refused at CONNECT (``allow_anonymous false``).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from armbus.bus.errors import ArmbusError, UsageError
from armbus.tools.mqtt.schema import VERBS

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "mosquitto_passwd"
#: How long the broker may take to accept connections after it started (s).
START_TIMEOUT_S = 10.0


class BrokerError(ArmbusError):
    """The broker could not be started (the message says why)."""


def available() -> str | None:
    """Why no broker can run here, or None when mosquitto and mosquitto_passwd are installed."""
    if not os.access(MOSQUITTO, os.X_OK) and shutil.which("mosquitto") is None:
        return "mosquitto is not installed (apt-get install mosquitto mosquitto-clients)"
    if shutil.which(MOSQUITTO_PASSWD) is None:
        return "mosquitto_passwd is not installed (apt-get install mosquitto)"
    return None


def clients_available() -> str | None:
    """Why ``mosquitto_pub``/``mosquitto_sub`` cannot run here, or None when they are installed."""
    if shutil.which("mosquitto_sub") is None or shutil.which("mosquitto_pub") is None:
        return "mosquitto_pub and mosquitto_sub are not installed (apt-get install mosquitto-clients)"
    return None


def lab_acl(bridges: Mapping[str, str] | None = None, operators: tuple[str, ...] = (),
            viewers: tuple[str, ...] = ()) -> str:
    """The lab's ACL file. ``bridges``: bridge user -> the arm name it serves ("+" for any arm)."""
    lines = []
    for user, arm in (bridges or {}).items():
        lines += [f"user {user}", f"topic write armbus/v1/{arm}/status", f"topic write armbus/v1/{arm}/state/+",
                  f"topic write armbus/v1/{arm}/states",
                  f"topic write armbus/v1/{arm}/fault", f"topic write armbus/v1/{arm}/link",
                  f"topic write armbus/v1/{arm}/counters", f"topic write armbus/v1/{arm}/cmd/+/result",
                  f"topic read armbus/v1/{arm}/cmd/+/+", ""]
    for user in operators:
        # an operator commands under its own user name only (its last will included) and reads everything
        lines += [f"user {user}", "topic read armbus/v1/#"]
        lines += [f"topic write armbus/v1/+/cmd/{user}/{verb}" for verb in VERBS] + [""]
    for user in viewers:
        lines += [f"user {user}", "topic read armbus/v1/+/status", "topic read armbus/v1/+/state/+",
                  "topic read armbus/v1/+/states",
                  "topic read armbus/v1/+/fault", "topic read armbus/v1/+/link", "topic read armbus/v1/+/counters",
                  ""]
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """A broker in ``folder`` (see the module docstring). ``users``: name -> password."""

    def __init__(self, folder: Path, users: Mapping[str, str], acl: str, *, port: int | None = None,
                 autosave_interval: int = 1, max_queued: int = 100_000) -> None:
        why = available()
        if why is not None:
            raise BrokerError(why)
        if not users:
            raise UsageError("a broker needs at least one user")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = dict(users)
        self.proc: subprocess.Popen[bytes] | None = None
        (self.folder / "data").mkdir(exist_ok=True)
        passwd = self.folder / "passwd"
        passwd.write_text("".join(f"{u}:{p}\n" for u, p in users.items()), encoding="utf-8")
        os.chmod(passwd, 0o600)
        # -U hashes every password of the file in place (mosquitto_passwd -b adds one user at a time)
        done = subprocess.run([MOSQUITTO_PASSWD, "-U", str(passwd)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerError(f"mosquitto_passwd -U failed: {done.stderr.strip() or done.stdout.strip()}")
        (self.folder / "acl").write_text(acl, encoding="utf-8")
        os.chmod(self.folder / "acl", 0o600)
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text("\n".join([
            # run as whoever started it (as root, mosquitto would switch to its own user, who cannot read here)
            f"user {getpass.getuser()}", "per_listener_settings false", "allow_anonymous false",
            f"password_file {passwd}", f"acl_file {self.folder / 'acl'}",
            f"listener {self.port} 127.0.0.1",
            "persistence true", f"persistence_location {self.folder / 'data'}/",
            f"autosave_interval {autosave_interval}", f"max_queued_messages {max_queued}",
            # small messages at once, not when the previous one is acknowledged (Nagle): telemetry is latency
            "set_tcp_nodelay true", "max_inflight_messages 100",
            "log_dest stderr", "log_type error", "log_type warning", "",
        ]), encoding="utf-8")

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, user: str) -> str:
        """``mqtt://USER:PASSWORD@127.0.0.1:PORT`` for one of the broker's users."""
        return f"mqtt://{user}:{self.users[user]}@{self.url_host}"

    def start(self) -> Mosquitto:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "mosquitto.log", "ab"))  # noqa: SIM115
        end = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                log = (self.folder / "mosquitto.log").read_text(errors="replace")[-500:]
                raise BrokerError(f"mosquitto exited with {self.proc.returncode}: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {START_TIMEOUT_S} s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the broker (SIGTERM: it saves its persistence file first)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Stop the broker as a crash does (SIGKILL: what was not saved yet is lost)."""
        self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
