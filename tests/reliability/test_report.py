"""The reliability page's generator: every campaign has its block, and a quick run rewrites one with its stamp."""

from __future__ import annotations

from pathlib import Path

import pytest

from armbus.tools.campaigns import report

PAGE = """# Figures

Before.

<!-- BEGIN GENERATED: lossy-chain -->
stale figures
<!-- END GENERATED: lossy-chain -->

After.
"""


def test_every_campaign_has_a_block_on_the_reliability_page() -> None:
    text = report.DOC.read_text()
    for name in report.CAMPAIGNS:
        assert report.block_re(name).search(text), f"docs/reliability.md has no generated block {name}"


def test_a_quick_run_rewrites_its_block_with_the_command_the_commit_and_the_verdict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "page.md"
    doc.write_text(PAGE)
    assert report.main(["--quick", "--only", "lossy-chain", "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "stale figures" not in text and text.startswith("# Figures\n\nBefore.\n") and text.endswith("After.\n")
    body = report.block_re("lossy-chain").search(text).group(0)  # type: ignore[union-attr]
    assert "`python -m armbus.tools.campaigns.lossychain --quick` (quick run: commit " in body
    assert report.commit() in body and "exit status 0" in body
    assert "10,000 messages" in body and "verdict: 0 lost without report" in body
    assert "simulated s  " not in body  # the progress lines (stderr) stay out


def test_unknown_or_missing_blocks_are_usage_errors(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text(PAGE)
    for argv in (["--only", "nothing"], ["--only", "soak"]):
        with pytest.raises(SystemExit) as e:
            report.main([*argv, "--doc", str(doc)])
        assert e.value.code == 2
    assert doc.read_text() == PAGE


def test_a_failing_campaign_shows_its_broken_claim_in_the_block() -> None:
    body = report.render("soak", ["python", "-m", "x"], "FAILED claim: no silent loss: 3\n", code=1, wall_s=2.0,
                         quick=False, stamp="abc1234", day="2026-01-01")
    text = report.replace_block("<!-- BEGIN GENERATED: soak -->\nold\n<!-- END GENERATED: soak -->\n", "soak", body)
    assert "exit status 1" in text and "FAILED claim: no silent loss" in text and "old" not in text
    with pytest.raises(KeyError):
        report.replace_block(text, "safety", body)
