"""Model check docs/model/hoplink.pml with spin: the model verifies, and each deliberately broken variant fails.

Needs spin (Debian package ``spin``) and a C compiler; skips with the reason otherwise. The default run checks
configurations that finish in about a second each (pan compiled without optimisation, which compiles 4x faster);
ARMBUS_LONG=1 adds the full configuration (one duplicated frame on top of two losses and a reboot: ~10 million
states, ~20 s, ~550 MB) and two more broken variants (SYNCING accepting DATA; a reboot nonce that may repeat,
which shows the residual risk described in docs/hoplink.md).
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


def verify(tmp_path: Path, *defines: str) -> tuple[int, str]:
    """Run spin -a, compile pan, run it; return (number of errors, pan's output)."""
    work = tmp_path / ("run" + "".join(d.replace("=", "_") for d in defines))
    work.mkdir()
    shutil.copy(MODEL, work / "hoplink.pml")
    subprocess.run(["spin", *defines, "-a", "hoplink.pml"], cwd=work, check=True, capture_output=True, timeout=60)
    subprocess.run(
        ["gcc", "-O2" if LONG else "-O0", "-DSAFETY", "-DCOLLAPSE", "-DMEMLIM=1024", "-o", "pan", "pan.c"],
        cwd=work, check=True, capture_output=True, timeout=120,
    )
    run = subprocess.run(["./pan", "-m100000"], cwd=work, capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    m = re.search(r"errors: (\d+)", out)
    assert m is not None, out
    assert "MEMLIM" not in out, "the search ran out of memory: it proved nothing"
    return int(m.group(1)), out


CONFIGS = [("-DDUPS=0",), ("-DREBOOTS=2", "-DLOSSES=1", "-DDUPS=0")]
if LONG:
    CONFIGS.append(())


@pytest.mark.parametrize("defines", CONFIGS, ids=lambda d: " ".join(d) or "full")
def test_model_verifies(tmp_path: Path, defines: tuple[str, ...]) -> None:
    errors, out = verify(tmp_path, *defines)
    assert errors == 0, out
    assert "Search not completed" not in out, out


BROKEN = [
    ("-DBROKEN_NO_DEDUP", "-DDUPS=0"),
    ("-DBROKEN_RESET_COPIES",),
    ("-DBROKEN_NO_BOOT_QUIET", "-DREBOOTS=2", "-DLOSSES=1"),
]
if LONG:
    BROKEN += [("-DBROKEN_SYNC_ACCEPT", "-DDUPS=0"), ("-DNONCE_MAY_REPEAT", "-DREBOOTS=2")]


@pytest.mark.parametrize("defines", BROKEN, ids=lambda d: d[0])
def test_broken_variants_are_caught(tmp_path: Path, defines: tuple[str, ...]) -> None:
    errors, out = verify(tmp_path, *defines)
    assert errors > 0, out
    assert "assertion violated" in out, out
