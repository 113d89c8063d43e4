"""CI-sized fuzzing of every receive path: a valid result or a counted error, bounded buffers, no hang.

The long runs (a million inputs per target) are ``python -m armbus.tools.campaigns.fuzzing``; these use the same targets
and invariants (:mod:`armbus.tools.campaigns.fuzz_targets`) with hypothesis, plus a short run of the seeded mutation
runner.
"""

from __future__ import annotations

import time

import pytest
from fuzz_strategies import inputs
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from armbus.tools.campaigns.fuzz_targets import (
    TARGETS,
    DecodeTarget,
    DeframerTarget,
    HostTarget,
    JointTarget,
    TraceTarget,
)
from armbus.tools.campaigns.fuzzing import run_target

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=300, deadline=None, suppress_health_check=_QUIET)
@given(data=inputs(DeframerTarget(), 900))
def test_deframer_any_bytes(data: bytes) -> None:
    assert DeframerTarget().run(data) in ("ok", "error")


@settings(max_examples=600, deadline=None, suppress_health_check=_QUIET)
@given(data=inputs(DecodeTarget(), 300))
def test_decode_payload_every_type_round_trips_or_reports(data: bytes) -> None:
    assert DecodeTarget().run(data) in ("ok", "error")


@settings(max_examples=40, deadline=None, suppress_health_check=_QUIET)
@given(session=st.lists(inputs(JointTarget(), 300), min_size=1, max_size=25))
def test_joint_receive_path_sessions(session: list[bytes]) -> None:
    target = JointTarget()
    for data in session:
        assert target.run(data) == "ok"


@settings(max_examples=60, deadline=None, suppress_health_check=_QUIET)
@given(session=st.lists(inputs(HostTarget(), 300), min_size=1, max_size=25))
def test_host_receive_path_sessions(session: list[bytes]) -> None:
    target = HostTarget()
    for data in session:
        assert target.run(data) == "ok"


@settings(max_examples=300, deadline=None, suppress_health_check=_QUIET,
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(data=inputs(TraceTarget(), 2000))
def test_trace_reader_any_bytes_and_mutated_captures(data: bytes) -> None:
    assert TraceTarget().run(data) in ("ok", "error")


@pytest.mark.parametrize("name", ["deframer", "decode", "joint", "host", "trace"])
def test_mutation_runner_finds_nothing(name: str) -> None:
    result = run_target(name, 1500, seed=11)
    assert result.inputs == 1500
    assert not result.findings, [f"{f.key}: {f.message}" for f in result.findings.values()]
    assert result.outcomes.get("ok", 0) > 0  # the mutations do keep some inputs valid


class _Fragile(DecodeTarget):
    """A target with a planted bug: inputs starting 0x42 0x42 raise, inputs starting 0x43 'hang'."""

    def run(self, data: bytes) -> str:
        if data[:2] == b"BB":
            raise KeyError("planted")
        if data[:2] == b"CC":
            time.sleep(0.3)
        return super().run(data)

    def seeds(self) -> list[bytes]:
        return [b"BA", b"CA", *super().seeds()]


def test_mutation_runner_records_findings_and_hangs_instead_of_dying(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TARGETS, "fragile", _Fragile)
    result = run_target("fragile", 3000, seed=3, hang_s=0.1)
    assert result.inputs == 3000
    keys = sorted(result.findings)
    assert [k.split(" at ")[0] for k in keys] == ["Hang", "KeyError"], keys
    for f in result.findings.values():
        assert f.data[:2] in (b"BB", b"CC") and f.session == [f.data]
