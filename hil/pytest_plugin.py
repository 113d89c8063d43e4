"""pytest plugin of the armbus harness (registered through the ``pytest11`` entry point).

Theory of operation
-------------------
Every fixture and option is named ``armbus_*`` / ``--armbus-*`` so that loading the plugin (it is loaded into every
pytest run of an environment where armbus is installed) cannot shadow a project's own fixtures; it registers
nothing else, no pyserial URL handler either. The fixtures: ``armbus_clock``, ``armbus_seed``, ``armbus_target``,
``armbus_adapter``, ``armbus_arm`` and ``armbus_virtual_arm`` (:data:`FIXTURES`). A suite that prefers short
names aliases them in its own conftest (``tests/hil/conftest.py`` does).

Simulated time is a fixture (trio's ``MockClock`` idea): a test asks for ``armbus_clock`` and gets a fresh
:class:`armbus.hil.clock.SimClock` at t = 0. ``armbus_seed`` is the master seed for seeded fault injection; it
defaults to 0 and is set with ``--armbus-seed N``, so that a failure seen with one seed replays exactly.

One contract suite for simulators and hardware (python-can's back-to-back tests, pyserial's test script that
defaults to ``loop://``): the ``armbus_arm`` fixture is a connected, enumerated :class:`armbus.controller.arm.Arm` on

* the real arm at ``--armbus-port PORT`` (a device such as ``/dev/ttyUSB0`` or any pyserial URL) at
  ``--armbus-baud`` (default 1000000), or
* without ``--armbus-port``, an in-process virtual arm in real time (``armbus://?joints=N&seed=S&baud=B``,
  :mod:`armbus.hil.urlhandler.protocol_armbus`): the same serial code path, reader thread and wall clock as hardware.

``armbus_adapter`` is the USB-serial adapter model the virtual arm sits behind (``--armbus-adapter SPEC``, default
``ideal``; :mod:`armbus.hil.adapter`); the host's link turnaround covers it, as it would cover a real adapter. A
suite runs itself behind several models by parametrizing it indirectly (``tests/hil/conftest.py`` does); on a real
arm only ``ideal`` runs (the real adapter is whatever it is) and the other parameters are skipped.

``armbus_firmware`` is what the virtual arm's joints run (``--armbus-firmware KIND``: ``python``, the default;
``c``, the C joint firmware, :mod:`armbus.hil.firmware`; or one per joint); a suite parametrizes it indirectly like
the adapter (``tests/hil/conftest.py`` adds one run on the C firmware).

``armbus_virtual_arm`` is the :class:`armbus.hil.realtime.RealtimeArm` behind that virtual port (for fault injection and
looking inside; use its ``call()``); on a real arm a test that asks for it is skipped, saying why. Tests that
move the arm carry the ``moves_arm`` marker; on a real arm the run's header says that they will move it
(deselect them with ``-m "not moves_arm"``). Every ``armbus_arm`` is checked before the test (a latched joint fails
it at once, named) and left as it was found (positions, torque, flags, watchdog: :mod:`armbus.hil.armguard`), so
repeated runs do not walk the joints away or leave a trap for the next run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from armbus.bus.wire import DEFAULT_BAUD
from armbus.hil.clock import SimClock

#: The fixtures this plugin defines; it defines no other.
FIXTURES = ("armbus_clock", "armbus_seed", "armbus_target", "armbus_adapter", "armbus_firmware", "armbus_arm",
            "armbus_virtual_arm")
#: Default reply timeout of the contract suite's arm: generous for a real arm behind a USB adapter with the
#: default 16 ms latency timer, and for a virtual arm on a busy machine.
DEFAULT_TIMEOUT_S = 0.5


@dataclasses.dataclass(frozen=True)
class ArmTarget:
    """What the ``arm`` fixture connects to."""

    port: str
    baud: int
    virtual: bool
    joints: int | None  # expected joint count (always known for a virtual arm)
    seed: int
    timeout: float


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("armbus")
    group.addoption("--armbus-seed", type=int, default=0,
                    help="master seed for seeded fault injection in simulated tests (default 0)")
    group.addoption("--armbus-port", default=None, metavar="PORT",
                    help="run the hardware suite (tests/hil) against the real arm on PORT (device or pyserial "
                         "URL); default: an in-process virtual arm")
    group.addoption("--armbus-baud", type=int, default=DEFAULT_BAUD, metavar="BAUD",
                    help="baud rate of the arm (default 1000000)")
    group.addoption("--armbus-joints", type=int, default=None, metavar="N",
                    help="joints of the virtual arm (default 6); with --armbus-port, the count the arm must have")
    group.addoption("--armbus-adapter", default="ideal", metavar="SPEC",
                    help="USB-serial adapter model of the virtual arm: ideal (default), ftdi:latency=16ms, "
                         "cdc-acm (docs/hil.md)")
    group.addoption("--armbus-firmware", default="python", metavar="KIND",
                    help="what the virtual arm's joints run: python (default), c (the C joint firmware), or one "
                         "per joint, e.g. c,python,c")
    group.addoption("--armbus-timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                    help=f"reply timeout in seconds (default {DEFAULT_TIMEOUT_S})")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "moves_arm: the test moves a real arm (small, safe moves; see docs/hil.md)")
    config.addinivalue_line("markers", "realtime: the test runs in wall-clock time over a pseudo-terminal")


def _target(config: pytest.Config) -> ArmTarget:
    port = config.getoption("--armbus-port")
    baud = int(config.getoption("--armbus-baud"))
    joints = config.getoption("--armbus-joints")
    seed = int(config.getoption("--armbus-seed"))
    timeout = float(config.getoption("--armbus-timeout"))
    if port:
        return ArmTarget(port, baud, False, joints, seed, timeout)
    n = joints if joints is not None else 6
    return ArmTarget(f"armbus://?joints={n}&seed={seed}&baud={baud}", baud, True, n, seed, timeout)


def pytest_report_header(config: pytest.Config) -> str | None:
    """Warn that a real arm will move; say nothing in a run that did not ask for one (the plugin is loaded into
    every pytest run of the environment)."""
    target = _target(config)
    if target.virtual:
        return None
    return (f"armbus: REAL ARM on {target.port} at {target.baud} baud -- tests marked moves_arm will move it "
            "(small moves, see docs/hil.md; deselect with -m 'not moves_arm')")


@pytest.fixture
def armbus_clock() -> SimClock:
    """A simulated clock at t = 0 ns."""
    return SimClock()


@pytest.fixture
def armbus_seed(request: pytest.FixtureRequest) -> int:
    """The master fault-injection seed (``--armbus-seed``)."""
    return int(request.config.getoption("--armbus-seed"))


@pytest.fixture(scope="session")
def armbus_target(request: pytest.FixtureRequest) -> ArmTarget:
    """Where the ``armbus_arm`` fixture connects (``--armbus-port`` or a virtual arm)."""
    return _target(request.config)


@pytest.fixture
def armbus_adapter(request: pytest.FixtureRequest, armbus_target: ArmTarget) -> str:
    """The adapter model behind the virtual arm: the indirect parameter if the test has one, else
    ``--armbus-adapter``. On a real arm, anything but ``ideal`` is skipped."""
    from armbus.hil.adapter import parse_adapter

    spec = str(parse_adapter(getattr(request, "param", None) or request.config.getoption("--armbus-adapter")))
    if not armbus_target.virtual and spec != "ideal":
        pytest.skip(f"adapter model {spec} applies to the virtual arm; this run drives the real arm on "
                    f"{armbus_target.port} through its own adapter")
    return spec


@pytest.fixture
def armbus_firmware(request: pytest.FixtureRequest, armbus_target: ArmTarget) -> str:
    """What the virtual arm's joints run: the indirect parameter if the test has one, else ``--armbus-firmware``.
    On a real arm anything but ``python`` is skipped; without a C compiler the C firmware is skipped, saying so."""
    kind = str(getattr(request, "param", None) or request.config.getoption("--armbus-firmware"))
    if kind == "python":
        return kind
    if not armbus_target.virtual:
        pytest.skip(f"firmware {kind} applies to the virtual arm; this run drives the real arm on {armbus_target.port}")
    from armbus.hil.firmware.build import available

    reason = available()
    if reason is not None:
        pytest.skip(reason)
    return kind


@pytest.fixture
def armbus_arm(armbus_target: ArmTarget, armbus_adapter: str, armbus_firmware: str) -> Iterator[Any]:
    """A connected :class:`armbus.controller.arm.Arm`, enumerated, behind ``armbus_adapter`` on a virtual arm. A
    joint latched before the test fails it at once, named; after the test the arm is put back as it was found
    (:mod:`armbus.hil.armguard`), and torque is off for every joint unless it was on before."""
    from armbus.controller.arm import Arm
    from armbus.controller.ports import PORT_TURNAROUND_NS
    from armbus.hil import armguard
    from armbus.hil.adapter import parse_adapter

    port, spec = armbus_target.port, parse_adapter(armbus_adapter)
    if armbus_target.virtual and not spec.ideal:
        port += f"&adapter={spec}"
    if armbus_target.virtual and armbus_firmware != "python":
        port += f"&firmware={armbus_firmware}"
    # the host in this process shares the machine with the arm: the default slack plus what the model adds
    turnaround = None if spec.ideal else PORT_TURNAROUND_NS + spec.delay_ns
    a = Arm.open(port, armbus_target.baud, timeout=armbus_target.timeout, on_close="hold", turnaround_ns=turnaround)
    try:
        a.enumerate()
        latched = armguard.preflight(a)
        if latched:
            pytest.fail("; ".join(latched), pytrace=False)
        before = armguard.snapshot(a)
        yield a
        problems = armguard.restore(a, before)
        if problems:
            pytest.fail("the arm was not left as found: " + "; ".join(problems), pytrace=False)
    finally:
        a.close()


@pytest.fixture
def armbus_virtual_arm(armbus_arm: Any, armbus_target: ArmTarget) -> Any:
    """The :class:`armbus.hil.realtime.RealtimeArm` behind ``armbus_arm``'s virtual port; skips on a real arm."""
    if not armbus_target.virtual:
        pytest.skip(f"needs a virtual arm; this run drives the real arm on {armbus_target.port}")
    rt = getattr(getattr(armbus_arm.runner, "port", None), "virtual_arm", None)
    if rt is None:
        pytest.skip("the arm's runner does not expose its armbus:// port")
    return rt
