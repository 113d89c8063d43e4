"""The threaded Arm over pyserial's loop:// port, in wall-clock time (kept short and tolerant).

On loop:// the host's link talks to itself: its RESET comes back and is answered, its DATA frames come back and
are acked, so the link opens and every packet is acked by "the first hop", while requests never get a reply.
That exercises the reader thread, the lock, send-returns-on-ack, request timeouts, listeners and reconnection.
"""

from __future__ import annotations

import threading
import time

import pytest

from armbus.bus.errors import ArmTimeoutError, UsageError
from armbus.bus.messages import Ping, Torque
from armbus.controller.arm import Arm
from armbus.controller.events import HostEvent, PacketAcked, PortLost, PortRestored

pytestmark = pytest.mark.realtime


def wait_for(predicate, timeout: float = 3.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_send_returns_on_ack_and_request_times_out() -> None:
    with Arm.open("loop://", timeout=0.05) as arm:
        msg_id = arm.send(Torque(1), 1, timeout=2.0)
        assert isinstance(msg_id, int)
        t0 = time.monotonic()
        with pytest.raises(ArmTimeoutError):
            arm.request(Ping(), 1, timeout=0.05)
        assert time.monotonic() - t0 < 1.0


def test_raising_listener_is_logged_and_reader_survives(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[HostEvent] = []

    def bad(event: HostEvent) -> None:
        raise RuntimeError("user bug")

    with Arm.open("loop://") as arm:
        arm.add_listener(bad)
        arm.add_listener(seen.append)
        arm.send(Torque(1), 1, timeout=2.0)
        arm.send(Torque(0), 1, timeout=2.0)  # the reader is still alive after the listener raised
        assert wait_for(lambda: len([e for e in seen if isinstance(e, PacketAcked)]) >= 2)
    assert "user bug" in caplog.text


def test_threads_never_interleave_frames() -> None:
    errors: list[BaseException] = []
    with Arm.open("loop://") as arm:

        def worker() -> None:
            try:
                for _ in range(20):
                    arm.send(Torque(1), 1, timeout=2.0)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        counters = arm._runner.node.link.counters
        assert errors == []
        assert counters.crc_errors == 0 and counters.framing_errors == 0
        assert counters.acked >= 80


def test_port_loss_and_return_are_reported() -> None:
    events: list[HostEvent] = []
    with Arm.open("loop://") as arm:
        arm.add_listener(events.append)
        arm.send(Torque(1), 1, timeout=2.0)
        arm._runner._port.close()  # what an unplugged adapter looks like to the reader
        assert wait_for(lambda: any(isinstance(e, PortLost) for e in events))
        assert wait_for(lambda: any(isinstance(e, PortRestored) for e in events))
        arm.send(Torque(1), 1, timeout=2.0)


def test_unknown_joint_name_is_a_usage_error() -> None:
    with Arm.open("loop://") as arm, pytest.raises(UsageError, match="no joint named 'elbow'"):
        arm.read("elbow", "status")
