"""Generated documentation stays in step with the code it is generated from."""

from __future__ import annotations

from pathlib import Path

from armbus.joints.registers import register_map_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_register_page_is_current() -> None:
    page = (DOCS / "registers.md").read_text(encoding="utf-8")
    assert register_map_markdown().strip() in page, "docs/registers.md is stale: regenerate it (see its header)"


def test_readme_links_resolve() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    for name in ("architecture.md", "protocol.md", "hil.md", "traces.md", "porting-firmware.md", "registers.md"):
        assert f"docs/{name}" in readme
        assert (DOCS / name).exists(), f"README links docs/{name}, which does not exist"


def test_firmware_headers_are_current() -> None:
    from armbus.tools.gen.firmware import GEN_DIR, stale

    assert not stale(), f"{GEN_DIR} is stale: run python -m armbus.tools.gen.firmware"
