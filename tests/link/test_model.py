"""Model check docs/model/hoplink.pml with spin: the model verifies, and each deliberately broken variant fails.

Needs spin (Debian package ``spin``) and a C compiler; skips with the reason otherwise. Every run compiles pan
without optimisation (4x faster to compile) with a memory limit, so a search that runs out proves nothing and
fails the test. Two kinds of run:

* safety: pan compiled ``-DSAFETY -DNOCLAIM``, plain ``./pan``: the asserts and the invalid-end-state check;
* liveness: ``./pan -a -f -N NAME`` (acceptance cycles under weak fairness) for the ltl blocks ``settled``
  (every packet is eventually acked or reported failed) and ``delivered`` (on a line that stops losing within
  the retry budget, every packet is eventually acked, unless it was on the line while the receiver was not open).

Each configuration takes well under a second to search. ARMBUS_LONG=1 adds the full configuration with timers
that may fire early (~17 million states, ~50 s, ~860 MB) and the liveness of the full configuration.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

MODEL = Path(__file__).resolve().parents[2] / "docs" / "model" / "hoplink.pml"
LONG = os.environ.get("ARMBUS_LONG") == "1"

pytestmark = pytest.mark.skipif(
    shutil.which("spin") is None or shutil.which("gcc") is None,
    reason="spin and gcc are needed to check the Promela model (apt-get install -y spin gcc)",
)


def _build(tmp_path: Path, defines: tuple[str, ...], *cflags: str) -> Path:
    work = tmp_path / ("run" + "".join(d.replace("=", "_") for d in defines) + "".join(cflags))
    work.mkdir()
    shutil.copy(MODEL, work / "hoplink.pml")
    subprocess.run(["spin", *defines, "-a", "hoplink.pml"], cwd=work, check=True, capture_output=True, timeout=60)
    subprocess.run(
        ["gcc", "-O2" if LONG else "-O0", *cflags, "-DCOLLAPSE", "-DMEMLIM=1024", "-o", "pan", "pan.c"],
        cwd=work, check=True, capture_output=True, timeout=120,
    )
    return work


def _pan(work: Path, *args: str) -> tuple[int, str]:
    run = subprocess.run(["./pan", "-m200000", *args], cwd=work, capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    m = re.search(r"errors: (\d+)", out)
    assert m is not None, out
    assert "MEMLIM" not in out and "max search depth too small" not in out, "the search was cut short: " + out
    return int(m.group(1)), out


def verify(tmp_path: Path, *defines: str) -> tuple[int, str]:
    """Safety run: spin -a, pan without the ltl claims; returns (number of errors, pan's output)."""
    return _pan(_build(tmp_path, defines, "-DSAFETY", "-DNOCLAIM"))


def verify_ltl(tmp_path: Path, claims: tuple[str, ...], *defines: str) -> dict[str, tuple[int, str]]:
    """Liveness runs: one pan, each named ltl claim checked for acceptance cycles under weak fairness."""
    work = _build(tmp_path, defines)
    return {claim: _pan(work, "-a", "-f", "-N", claim) for claim in claims}


# -- safety ---------------------------------------------------------------------------------------------------

CONFIGS = [
    ("-DDUPS=0",),
    ("-DREBOOTS=2", "-DLOSSES=1", "-DDUPS=0"),
    (),  # full: 2 packets, 2 losses, 1 duplicate, 1 reboot, 1 retry
    ("-DEARLY_TIMERS", "-DCAP=4", "-DLOSSES=1", "-DDUPS=0"),  # timers that expire with frames still on the line
    ("-DREFUSALS=1", "-DLOSSES=1"),  # backpressure: B's layer above refuses a frame
    ("-DB_SENDS",),  # both directions carry data: the side that reboots sends too
    ("-DB_SENDS", "-DNB=2", "-DDUPS=0"),
    ("-DB_SENDS", "-DREBOOTS=2", "-DLOSSES=1", "-DDUPS=0"),
]
if LONG:
    CONFIGS.append(("-DEARLY_TIMERS", "-DCAP=4"))


@pytest.mark.parametrize("defines", CONFIGS, ids=lambda d: " ".join(d) or "full")
def test_model_verifies(tmp_path: Path, defines: tuple[str, ...]) -> None:
    errors, out = verify(tmp_path, *defines)
    assert errors == 0, out
    assert "Search not completed" not in out, out


BROKEN = [
    (("-DBROKEN_NO_DEDUP", "-DDUPS=0"), "assertion violated ((last_delivered==255)||(m>last_delivered))"),
    (("-DBROKEN_RESET_COPIES",), "assertion violated delivered[inflight]"),
    (("-DBROKEN_NO_BOOT_QUIET", "-DREBOOTS=2", "-DLOSSES=1"), "assertion violated delivered[inflight]"),
    (("-DBROKEN_SYNC_ACCEPT", "-DDUPS=0"), "assertion violated ((last_delivered==255)||(m>last_delivered))"),
    (("-DNONCE_MAY_REPEAT", "-DREBOOTS=2"), "assertion violated ((last_delivered==255)||(m>last_delivered))"),
    # Any RESET_ACK opens a SYNCING endpoint: a handshake started by an early give-up opens on the answer to the
    # one before, while the peer has not reset; the next ACK closes a frame the peer took for a repeat.
    (("-DBROKEN_NO_NONCE_CHECK", "-DEARLY_TIMERS", "-DCAP=4", "-DLOSSES=0", "-DDUPS=0", "-DREBOOTS=0"),
     "assertion violated delivered[inflight]"),
    (("-DBROKEN_REFUSAL_ACKS", "-DREFUSALS=1", "-DLOSSES=0", "-DDUPS=0", "-DREBOOTS=0"),
     "assertion violated delivered[inflight]"),
    (("-DBROKEN_A_NO_DEDUP", "-DB_SENDS", "-DNB=2", "-DDUPS=0"), "assertion violated ((b_last==255)||(m>b_last))"),
]


@pytest.mark.parametrize("defines,violation", BROKEN, ids=[d[0][0] for d in BROKEN])
def test_broken_variants_are_caught(tmp_path: Path, defines: tuple[str, ...], violation: str) -> None:
    errors, out = verify(tmp_path, *defines)
    assert errors > 0, out
    assert violation in out, out


def test_the_nonce_check_holds_with_early_timers(tmp_path: Path) -> None:
    """The configuration that catches a missing nonce check verifies with the check in place."""
    errors, out = verify(tmp_path, "-DEARLY_TIMERS", "-DCAP=4", "-DLOSSES=0", "-DDUPS=0", "-DREBOOTS=0")
    assert errors == 0, out


# -- liveness -------------------------------------------------------------------------------------------------

#: Lines that stop losing within the retry budget: LOSSES + REFUSALS + boots of B (1 + REBOOTS) <= RETRIES.
LIVE = [
    ("-DLOSSES=1", "-DDUPS=1", "-DREBOOTS=0", "-DRETRIES=2"),
    ("-DLOSSES=1", "-DDUPS=0", "-DREBOOTS=1", "-DRETRIES=3"),
    ("-DLOSSES=0", "-DREFUSALS=1", "-DDUPS=1", "-DREBOOTS=0", "-DRETRIES=2"),
    ("-DN=3", "-DLOSSES=1", "-DDUPS=1", "-DREBOOTS=1", "-DRETRIES=3"),
]
if LONG:
    LIVE.append(("-DLOSSES=2", "-DDUPS=1", "-DREBOOTS=1", "-DRETRIES=4"))


@pytest.mark.parametrize("defines", LIVE, ids=" ".join)
def test_every_packet_is_settled_and_delivered_on_a_line_that_stops_losing(
        tmp_path: Path, defines: tuple[str, ...]) -> None:
    for claim, (errors, out) in verify_ltl(tmp_path, ("settled", "delivered"), *defines).items():
        assert errors == 0, f"{claim}: {out}"
        assert "acceptance   cycles \t+ (fairness enabled)" in out and "Search not completed" not in out, out


#: Whatever the line does: an adversarial line (it may lose every frame), timers that fire early.
ANY_LINE = [
    ("-DLOSSES=255",),
    ("-DLOSSES=255", "-DREFUSALS=255", "-DDUPS=0"),
    ("-DEARLY_TIMERS", "-DCAP=4", "-DLOSSES=1", "-DDUPS=0", "-DREBOOTS=0"),
]


@pytest.mark.parametrize("defines", ANY_LINE, ids=" ".join)
def test_every_packet_is_settled_whatever_the_line_does(tmp_path: Path, defines: tuple[str, ...]) -> None:
    errors, out = verify_ltl(tmp_path, ("settled",), *defines)["settled"]
    assert errors == 0, out


def test_without_retransmission_a_packet_is_not_delivered(tmp_path: Path) -> None:
    """RETRIES 0 passes every safety check (a lost frame is given up and reported) and fails delivered."""
    defines = ("-DLOSSES=1", "-DDUPS=1", "-DREBOOTS=0", "-DRETRIES=0")
    assert verify(tmp_path, *defines)[0] == 0
    result = verify_ltl(tmp_path, ("settled", "delivered"), *defines)
    assert result["settled"][0] == 0, result["settled"][1]
    errors, out = result["delivered"]
    assert errors > 0 and "acceptance cycle" in out, out


def test_too_small_a_retry_budget_fails_delivered(tmp_path: Path) -> None:
    """The assumption is needed: two losses against one retry can fail a packet (given up, reported)."""
    errors, out = verify_ltl(tmp_path, ("delivered",), "-DLOSSES=2", "-DDUPS=0", "-DREBOOTS=0",
                             "-DRETRIES=1")["delivered"]
    assert errors > 0 and "acceptance cycle" in out, out


def test_a_frame_never_given_up_is_never_settled(tmp_path: Path) -> None:
    """Retrying forever passes every safety check and fails settled on a line that may lose every frame."""
    defines = ("-DLOSSES=255", "-DBROKEN_RETRY_FOREVER")
    errors, out = verify_ltl(tmp_path, ("settled",), *defines)["settled"]
    assert errors > 0 and "acceptance cycle" in out, out


def test_modelcheck_runs_a_check_and_says_when_an_outcome_is_not_the_expected_one(tmp_path: Path) -> None:
    """The command behind the reliability page's model block (python -m armbus.tools.campaigns.modelcheck)."""
    from armbus.tools.campaigns.modelcheck import CHECKS, Check, describe, run_check

    defines = ("-DLOSSES=1", "-DDUPS=1", "-DREBOOTS=0", "-DRETRIES=0")
    assert Check(defines, "delivered", False) in CHECKS
    outcome = run_check(Check(defines, "delivered", False), tmp_path / "a")
    assert outcome.ok and outcome.errors > 0 and "FAILS: acceptance cycle" in describe(outcome)
    wrong = run_check(Check(defines, "delivered", True), tmp_path / "b")
    assert not wrong.ok and "<-- expected it to hold" in describe(wrong)


@pytest.mark.parametrize("defines", [("-DB_SENDS", "-DLOSSES=1", "-DDUPS=0", "-DREBOOTS=1", "-DRETRIES=3"),
                                     ("-DB_SENDS", "-DLOSSES=255", "-DDUPS=0")], ids=" ".join)
def test_the_rebooting_side_s_packets_are_settled_too(tmp_path: Path, defines: tuple[str, ...]) -> None:
    """Data both ways: every packet B sends is acked, reported failed, or lost with B's memory in its reboot."""
    claims = ("settled", "settled_b") + (("delivered",) if "-DRETRIES=3" in defines else ())
    for claim, (errors, out) in verify_ltl(tmp_path, claims, *defines).items():
        assert errors == 0, f"{claim}: {out}"
