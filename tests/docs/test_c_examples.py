"""The C examples of docs/ that are whole files (they start with an #include of a firmware header) compile against
today's firmware headers, warnings as errors: a renamed function or a changed signature fails here."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "joints" / "firmware"
BLOCK = re.compile(r"^```c\n(#include \"fw_.*?)^```$", re.M | re.S)
EXAMPLES = [(f"{page.relative_to(REPO)}:{page.read_text().count(chr(10), 0, m.start()) + 1}", m.group(1))
            for page in sorted((REPO / "docs").glob("*.md")) for m in BLOCK.finditer(page.read_text())]


def test_the_porting_page_has_a_board_example() -> None:
    assert any(where.startswith("docs/porting-firmware.md") for where, _ in EXAMPLES)


@pytest.mark.parametrize(("where", "code"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_c_example_compiles(where: str, code: str, tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler on this machine")
    src = tmp_path / "example.c"
    src.write_text(code)
    run = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", f"-I{FIRMWARE / 'include'}",
                          f"-I{FIRMWARE / 'gen'}", str(src)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, f"{where} does not compile:\n{run.stderr}"
