"""The firmware's C unit tests (joints/firmware/tests/), plain and under AddressSanitizer and UBSan, through the
firmware Makefile: ``make -C joints/firmware check``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from armbus.hil.firmware.build import FIRMWARE_DIR, available


@pytest.mark.skipif(shutil.which("make") is None or available() is not None,
                    reason=str(available() or "no make on this machine"))
def test_c_unit_tests_plain_and_sanitized(tmp_path: Path) -> None:
    proc = subprocess.run(["make", "-C", str(FIRMWARE_DIR), "check", f"BUILD={tmp_path}"], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ran = [line for line in proc.stdout.splitlines() if line.startswith("run ")]
    for name in ("test_frame", "test_link", "test_router", "test_registers"):
        assert any(line.endswith(f"plain/{name}") for line in ran) and any(line.endswith(f"san/{name}") for line in ran)
