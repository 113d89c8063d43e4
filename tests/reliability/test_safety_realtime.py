"""Safety figures on the real-time pty arm, short and tolerant (a loaded 2-core machine): watchdog on host
silence and e-stop through armbus.controller.arm.Arm."""

from __future__ import annotations

import pytest

from armbus.tools.campaigns.safety_realtime import JOINTS, WATCHDOG_MS, estop_trials_rt, watchdog_trials_rt

pytestmark = pytest.mark.realtime
#: Slack for a loaded machine: the driver thread and the host program may each wake up tens of ms late.
SLACK_MS = 50


def test_host_gone_every_joint_reaches_a_watchdog_safe_stop_in_real_time() -> None:
    r = watchdog_trials_rt(2, seed=5)
    assert r.safe_states_ok
    assert len(r.from_heartbeat_ms) == 2 * JOINTS
    assert min(r.from_heartbeat_ms) >= WATCHDOG_MS  # never early
    assert max(r.from_heartbeat_ms) < WATCHDOG_MS + SLACK_MS
    assert max(r.from_silence_ms) < WATCHDOG_MS + SLACK_MS


def test_estop_stops_every_joint_within_milliseconds_in_real_time() -> None:
    r = estop_trials_rt(2, seed=5)
    assert r.all_stopped and len(r.latency_ms) == 2
    assert max(r.latency_ms) < SLACK_MS
    assert max(r.standstill_ms) < 200 + SLACK_MS
