"""docs/hoplink.md carries the state table generated from bus/linktable.py; it must be current."""

from __future__ import annotations

from pathlib import Path

from armbus.bus.linktable import BEGIN_MARK, END_MARK, render_markdown, update_doc

DOC = Path(__file__).resolve().parents[2] / "docs" / "hoplink.md"


def test_doc_table_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert BEGIN_MARK in text and END_MARK in text
    assert update_doc(text) == text, "docs/hoplink.md is stale: run python -m armbus.bus.linktable docs/hoplink.md"


def test_render_names_every_state_and_input() -> None:
    md = render_markdown()
    for word in ("SYNCING", "OPEN", "DOWN", "RESET_ACK our nonce", "stateDiagram-v2"):
        assert word in md
