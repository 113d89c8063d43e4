"""``armbus bridge``: run the MQTT bridge on an open arm until Ctrl-C or ``--duration``.

Theory of operation
-------------------
:func:`bridge_from_args` checks the options and builds a :class:`armbus.tools.mqtt.bridge.Bridge`;
:func:`run_bridge` starts it, waits up to :data:`CONNECT_WAIT_S` for the broker (a broker that refuses the user
or password is an error at once: exit 3 with the broker's reason; one that is merely down is waited for, since
the bridge reconnects by itself), then runs until the time is up, and prints the counters when it stops.
``armbus serve --mqtt`` builds the same bridge on the arm it serves.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from armbus.bus.errors import PortError, UsageError
from armbus.tools.mqtt.bridge import Bridge

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
