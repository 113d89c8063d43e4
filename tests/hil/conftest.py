"""The contract suite's short fixture names, aliased from the armbus pytest plugin's ``armbus_*`` fixtures.

A project that runs this suite against its own arm does the same in its conftest: the plugin only defines
``armbus_``-prefixed names, so that it can never shadow a fixture of the project's.
"""

from __future__ import annotations

from typing import Any

import pytest

#: The adapter models the contract suite runs behind on the virtual arm, each once (docs/hil.md).
CONTRACT_ADAPTERS = ("ideal", "ftdi:latency=1ms", "ftdi:latency=16ms", "cdc-acm")


#: (test, adapter) pairs the arm cannot meet behind that adapter, and why: run, and expected to fail.
BEYOND_THE_ADAPTER = {
    ("test_cyclic_exchange_at_a_modest_rate_answers_its_cycles", "ftdi:latency=16ms"):
        "a 100 Hz cyclic exchange does not fit behind a 16 ms latency timer: joint 1's ack of each CYCLE waits in "
        "the adapter up to 16 ms, and the host link sends the next frame only after it (docs/performance.md); "
        "it passes only when joint 1's resends happen to fill a packet early",
}


#: The firmware the contract suite runs on besides the Python joints: once, behind the ideal adapter.
CONTRACT_FIRMWARE = ("c",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        adapter = callspec.params.get("armbus_adapter") if callspec is not None else None
        reason = BEYOND_THE_ADAPTER.get((getattr(item, "originalname", item.name), adapter))
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the contract suite behind every adapter model of :data:`CONTRACT_ADAPTERS` on the virtual arm with Python
    joints, and once more on the C firmware (:data:`CONTRACT_FIRMWARE`) behind the ideal adapter (one model and one
    firmware when ``--armbus-adapter``, ``--armbus-firmware`` or ``--armbus-port`` chooses)."""
    config = metafunc.config
    chosen = (config.getoption("--armbus-adapter") != "ideal" or config.getoption("--armbus-port")
              or config.getoption("--armbus-firmware") != "python")
    if metafunc.module.__name__.endswith("test_contract") and "armbus_adapter" in metafunc.fixturenames \
            and not chosen:
        runs = [(a, "python") for a in CONTRACT_ADAPTERS] + [("ideal", f) for f in CONTRACT_FIRMWARE]
        metafunc.parametrize(("armbus_adapter", "armbus_firmware"), runs, indirect=True,
                             ids=[a if f == "python" else f"{a}-firmware-{f}" for a, f in runs])


@pytest.fixture
def arm(armbus_arm: Any) -> Any:
    """The connected, enumerated arm of this run (virtual by default, ``--armbus-port`` for a real one)."""
    return armbus_arm


@pytest.fixture
def arm_target(armbus_target: Any) -> Any:
    """Where ``arm`` is connected."""
    return armbus_target


@pytest.fixture
def virtual_arm(armbus_virtual_arm: Any) -> Any:
    """The real-time virtual arm behind ``arm`` (the test is skipped on a real arm)."""
    return armbus_virtual_arm
