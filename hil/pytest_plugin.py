"""pytest plugin of the armbus harness (registered through the ``pytest11`` entry point).

Theory of operation
-------------------
Simulated time is a fixture (trio's ``MockClock`` idea): a test asks for ``sim_clock`` and gets a fresh
:class:`hil.clock.SimClock` at t = 0. ``fault_seed`` is the master seed for seeded fault injection; it
defaults to 0 and is set with ``--armbus-seed N``, so that a failure seen with one seed replays exactly.
"""

from __future__ import annotations

import pytest

from hil.clock import SimClock


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("armbus")
    group.addoption(
        "--armbus-seed",
        type=int,
        default=0,
        help="master seed for seeded fault injection in simulated tests (default 0)",
    )


@pytest.fixture
def sim_clock() -> SimClock:
    """A simulated clock at t = 0 ns."""
    return SimClock()


@pytest.fixture
def fault_seed(request: pytest.FixtureRequest) -> int:
    """The master fault-injection seed (``--armbus-seed``)."""
    return int(request.config.getoption("--armbus-seed"))
