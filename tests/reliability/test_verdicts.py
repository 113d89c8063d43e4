"""Every campaign fails when its own claim fails: brief runs with a bug planted (here only, by monkeypatching).

Each test breaks the code under test in one way (retransmission disabled, UNDELIVERABLE reports removed from the
router, a packet delivered twice, joints that ignore the e-stop, a fuzz target that crashes), runs the campaign's
command line briefly, and checks for a non-zero exit and a line naming the broken claim. The same command lines
without the planted bug exit 0 (the last tests, and the campaigns' own tests).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from armbus.bus.link import LinkConfig, LinkEndpoint
from armbus.bus.router import Delivered, Router, RouterEvent
from armbus.bus.wire import MsgType
from armbus.joints.control import ControlCore
from armbus.tools.campaigns import fuzz_targets, fuzzing, lossychain, safety, soak


def no_retransmission(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every link gives a frame up at its first timeout (max_retries 0)."""
    init = LinkEndpoint.__init__

    def patched(self: LinkEndpoint, config: LinkConfig | None = None, **kw: object) -> None:
        init(self, dataclasses.replace(config or LinkConfig(), max_retries=0), **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(LinkEndpoint, "__init__", patched)


def no_undeliverable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The router forgets to report what a link gave up."""
    monkeypatch.setattr(Router, "_report", lambda self, packet, role, reason, now: None)


def duplicate_every(monkeypatch: pytest.MonkeyPatch, msg_type: MsgType, every: int) -> None:
    """The router hands every ``every``-th packet of ``msg_type`` up twice."""
    pump = Router.pump
    seen = [0]

    def patched(self: Router, now: int) -> list[RouterEvent]:
        events = pump(self, now)
        extra = []
        for ev in events:
            if isinstance(ev, Delivered) and ev.packet.type == msg_type:
                seen[0] += 1
                if seen[0] % every == 0:
                    extra.append(ev)
        return events + extra if extra else events

    monkeypatch.setattr(Router, "pump", patched)


def _failed_claims(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if "FAILED claim:" in line]


def _run(main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out


# -- lossy chain ----------------------------------------------------------------------------------------------

CHAIN = ["--messages", "1000", "--hops", "3", "--reboot-every-s", "0"]


def test_lossychain_fails_on_its_delivery_rate_without_retransmission(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    no_retransmission(monkeypatch)
    code, out = _run(lossychain.main, CHAIN, capsys)
    claims = _failed_claims(out)
    assert code == 1, out
    assert any("down: delivery rate" in c for c in claims) and any("up: delivery rate" in c for c in claims), out


def test_lossychain_fails_on_silent_loss_when_relays_do_not_report(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    no_undeliverable(monkeypatch)
    code, out = _run(lossychain.main, ["--messages", "600", "--hops", "3", "--reboot-every-s", "0", "--loss", "0.4",
                                       "--min-delivered", "0"], capsys)
    assert code == 1, out
    assert any("no silent loss" in c for c in _failed_claims(out)), out


def test_lossychain_fails_on_a_duplicate(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    duplicate_every(monkeypatch, MsgType.WRITE, 97)
    code, out = _run(lossychain.main, CHAIN, capsys)
    assert code == 1, out
    assert any("down: no duplicate" in c for c in _failed_claims(out)), out


def test_lossychain_counts_a_reboot_loss_only_for_what_the_relay_held(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Reboots with the reports removed: a loss counts as lost in a reboot only if the rebooted relay held the
    message, so the unreported give-ups still show as silent."""
    no_undeliverable(monkeypatch)
    code, out = _run(lossychain.main, ["--messages", "600", "--hops", "3", "--reboot-every-s", "0.5", "--loss",
                                       "0.4", "--min-delivered", "0"], capsys)
    assert code == 1 and int(re.search(r"(\d+) relay reboots", out).group(1)) > 0, out  # type: ignore[union-attr]
    assert any("no silent loss" in c for c in _failed_claims(out)), out


# -- soak -----------------------------------------------------------------------------------------------------

SOAK = ["--minutes", "0.02", "--seed", "3"]  # 1.2 simulated s


def test_soak_fails_on_its_delivery_rate_without_retransmission(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    no_retransmission(monkeypatch)
    code, out = _run(soak.main, [*SOAK, "--loss", "0.03", "--reboot-at", "5:0"], capsys)
    assert code == 1, out
    assert any("delivery rate" in c for c in _failed_claims(out)), out


def test_soak_fails_on_silent_loss_when_joints_do_not_report(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The reboots' losses at the joint above are not reported any more: the ledger, which only excuses what a
    rebooted joint held, counts them silent (a time window around each reboot used to excuse them)."""
    no_undeliverable(monkeypatch)
    code, out = _run(soak.main, [*SOAK, "--reboot-at", "0.2:2", "--reboot-at", "0.5:3", "--reboot-at", "0.8:1",
                                 "--min-delivery", "0"], capsys)
    assert code == 1, out
    assert any("no silent loss" in c for c in _failed_claims(out)), out


def test_soak_fails_on_a_duplicate(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    duplicate_every(monkeypatch, MsgType.SYNC_WRITE, 211)
    code, out = _run(soak.main, [*SOAK, "--reboot-at", "5:0"], capsys)
    assert code == 1, out
    assert any("no duplicate" in c for c in _failed_claims(out)), out


def test_soak_passes_with_the_code_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(soak.main, [*SOAK, "--reboot-at", "0.2:2", "--reboot-at", "0.5:3", "--reboot-at", "0.8:1"],
                     capsys)
    assert code == 0 and not _failed_claims(out) and "verdict: 0 lost silently" in out, out


# -- safety ---------------------------------------------------------------------------------------------------

def test_safety_fails_when_joints_ignore_the_estop(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(ControlCore, "estop", lambda self, now: None)
    code, out = _run(safety.main, ["--trials", "1", "--commands", "200"], capsys)
    claims = _failed_claims(out)
    assert code == 1, out
    assert any(c.startswith("FAILED claim: (b) e-stop, clean links: a joint did not take the e-stop") for c in claims)
    assert not any("(a)" in c or "(c)" in c for c in claims), out


# -- fuzzing --------------------------------------------------------------------------------------------------

def test_fuzzing_fails_on_a_finding_and_replays_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = fuzz_targets.DecodeTarget.run

    def crashing(self: fuzz_targets.DecodeTarget, data: bytes) -> str:
        if len(data) > 40:
            raise AssertionError("planted: long input")
        return run(self, data)

    monkeypatch.setattr(fuzz_targets.DecodeTarget, "run", crashing)
    code, out = _run(fuzzing.main, ["--harness", "decode", "--inputs", "300", "--findings", str(tmp_path)], capsys)
    assert code == 1 and any("no finding" in c and "decode 1" in c for c in _failed_claims(out)), out
    assert fuzzing.main(["--replay", str(tmp_path)]) == 1  # the saved session still fails
    monkeypatch.setattr(fuzz_targets.DecodeTarget, "run", run)
    assert fuzzing.main(["--replay", str(tmp_path)]) == 0  # fixed: it runs clean


def test_fuzz_replay_of_an_empty_findings_directory_is_clean(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert fuzzing.main(["--replay", str(tmp_path)]) == 0
    assert "no findings to replay" in capsys.readouterr().out


def test_fuzz_replay_of_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        fuzzing.main(["--replay", str(tmp_path / "nothing.json")])
    assert e.value.code == 2
