"""``armbus bridge``: run the MQTT bridge on an open arm until Ctrl-C or ``--duration``.

Theory of operation
-------------------
:func:`bridge_from_args` checks the options and builds a :class:`armbus.tools.mqtt.bridge.Bridge`;
:func:`run_bridge` starts it, waits up to :data:`CONNECT_WAIT_S` for the broker (a broker that refuses the user
or password is an error at once: exit 3 with the broker's reason; one that is merely down is waited for, since
the bridge reconnects by itself), then runs until the time is up, and prints the counters when it stops.
``armbus serve --mqtt`` runs the same bridge as one of its in-process clients (:func:`serve_bridge`): in a thread
of its own it opens the served arm with ``Arm.open(serve://...)`` like any other client, so the lease, the
fan-out and the hold after a lost lease are serve's; it stops, saying ``offline``, when serve stops.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from armbus.bus.errors import PortError, UsageError
from armbus.tools.mqtt.bridge import Bridge

log = logging.getLogger(__name__)
#: How long the command waits for the first connection before saying that it keeps trying (s).
CONNECT_WAIT_S = 5.0


def bridge_from_args(args: argparse.Namespace, arm: Any) -> Bridge:
    if not args.mqtt:
        raise UsageError("the bridge needs a broker: --mqtt mqtt://USER:PASSWORD@HOST:PORT")
    if not args.name:
        raise UsageError("the bridge needs the arm's name in the topic tree: --name arm1")
    if not 0 < args.rate <= 1000:
        raise UsageError(f"--rate {args.rate}: choose 0 < rate <= 1000 state messages per joint per second")
    if not 0.5 <= args.lease_ttl <= 3600:
        raise UsageError(f"--lease-ttl {args.lease_ttl}: choose 0.5 .. 3600 seconds")
    return Bridge(arm, args.mqtt, args.name, rate_hz=args.rate, lease_ttl=args.lease_ttl, ca_file=args.ca,
                  layout=args.state_topics)


def start_bridge(bridge: Bridge) -> None:
    """Start ``bridge`` and wait for the broker (see the module docstring)."""
    bridge.start()
    end = time.monotonic() + CONNECT_WAIT_S
    while not bridge.wait_connected(0.05) and time.monotonic() < end:
        if bridge.last_error is not None and "refused" in bridge.last_error:
            bridge.stop(flush_timeout=0)
            raise PortError(f"{bridge.url}: {bridge.last_error} (check the user and password, and the broker's "
                            "password file and ACL: docs/lab.md)")
    if not bridge.connected:
        print(f"armbus: {bridge.url} does not answer yet; the bridge keeps trying", file=sys.stderr, flush=True)


def run_bridge(args: argparse.Namespace, arm: Any) -> int:
    try:
        bridge = bridge_from_args(args, arm)
        start_bridge(bridge)
    except BaseException:
        arm.close()
        raise
    print(f"armbus: bridging the arm as {bridge.core.topics.base}/# on {bridge.url} (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    end = None if args.duration is None else time.monotonic() + args.duration
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.1 if end is None else max(0.0, min(0.1, end - time.monotonic())))
    finally:
        bridge.stop()
        arm.close()
        counters = bridge.counters()
        print("armbus: bridge stopped: " + ", ".join(f"{k} {v}" for k, v in counters.items() if v),
              file=sys.stderr)
    return 0


def serve_bridge(args: argparse.Namespace) -> Callable[[Any], Awaitable[None]]:
    """The ``start(info)`` of ``armbus serve --mqtt``: checks the options now (a bad one stops serve before it
    starts), and runs the bridge on ``info.url`` until serve cancels it."""
    if not args.name:
        raise UsageError("serve --mqtt needs the arm's name in the topic tree: --name arm1")
    from armbus.tools.mqtt.bridge import parse_mqtt_url

    parse_mqtt_url(args.mqtt)

    async def start(info: Any) -> None:
        stop = threading.Event()
        try:
            await asyncio.to_thread(_bridge_on_serve, args, info.url, stop)
        finally:
            stop.set()  # serve stops: the thread says offline and closes its client

    return start


def _bridge_on_serve(args: argparse.Namespace, url: str, stop: threading.Event) -> None:
    from armbus.controller.arm import Arm

    arm = Arm.open(url, timeout=args.timeout if getattr(args, "timeout", None) else 1.0)
    try:
        arm.enumerate()
        bridge = bridge_from_args(args, arm)
        start_bridge(bridge)
        print(f"armbus serve: bridging the arm as {bridge.core.topics.base}/# on {bridge.url}", file=sys.stderr,
              flush=True)
        try:
            stop.wait()
        finally:
            bridge.stop()
            log.info("bridge stopped: %s", bridge.counters())
    finally:
        arm.close()
