"""Every Python example in README.md and docs/ runs, so none can rot.

Each ```python block runs as a script of its own in an empty folder. The README drives a real arm: there the
port becomes the in-process virtual arm and ``arm.toml`` the example config in docs/examples, nothing else
changes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)
#: What stands in for the hardware a reader has and this machine does not.
STAND_INS = {'"/dev/ttyUSB0"': '"virtual"', 'load_config("arm.toml")':
             f'load_config({str(REPO / "docs" / "examples" / "arm.toml")!r})'}


def _examples() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            out.append((f"{page.relative_to(REPO)}:{line}", match.group(1)))
    return out


EXAMPLES = _examples()


def test_the_pages_have_examples() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize(("where", "code"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_example_runs(where: str, code: str, tmp_path: Path) -> None:
    for real, stand_in in STAND_INS.items():
        code = code.replace(real, stand_in)
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, f"{where} fails:\n{run.stderr}"
