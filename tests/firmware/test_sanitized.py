"""The firmware's tests under AddressSanitizer and UBSan: the Python-driven differential tests plus the contract
suite against a C arm, in a subprocess whose SIL library is built with ``ARMBUS_FW_SANITIZE=1`` and whose
interpreter has the sanitizer runtime preloaded (the C unit tests run sanitized in test_c_unit.py). Any report fails
the run (the runtime exits with code 86 on the first one); so does a failing test.

A planted out-of-bounds read in a library built with the same flags proves that the setup catches reports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from armbus.hil.firmware import build

REPO = Path(__file__).resolve().parents[2]
REPORT_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def _env() -> dict[str, str]:
    try:
        build.compiler()
        return build.sanitizer_env()
    except build.FirmwareUnavailable as exc:
        pytest.skip(str(exc))


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)


def _reports(out: str) -> list[str]:
    return [line for line in out.splitlines() if any(mark in line for mark in REPORT_MARKS)]


def test_the_sanitized_setup_catches_an_out_of_bounds_read(tmp_path: Path) -> None:
    env = _env()
    src = tmp_path / "planted.c"
    src.write_text("int planted(int i) { int a[4] = {1, 2, 3, 4}; volatile int *p = a; return p[i]; }\n")
    lib = tmp_path / "libplanted.so"
    cc = build.compiler()
    subprocess.run([*cc, *build.CFLAGS, *build.SANITIZE_FLAGS, "-o", str(lib), str(src)], check=True)
    code = f"import ctypes; lib = ctypes.CDLL({str(lib)!r}); print(lib.planted(2)); print(lib.planted(4))"
    run = _run([sys.executable, "-c", code], env, 60)
    assert run.returncode == 86, run.stdout + run.stderr
    assert run.stdout.split() == ["3"]
    assert _reports(run.stderr), run.stderr


def test_differential_and_contract_tests_on_the_sanitized_sil() -> None:
    """The SIL library with -fsanitize=address,undefined behind the differential tests (every vector, Python vs C
    chains) and the contract suite on a C arm (ideal adapter): all pass and no sanitizer reports."""
    env = _env()
    tests = [str(p) for p in sorted((REPO / "tests" / "firmware").glob("test_*differential.py"))]
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-x", *tests,
           str(REPO / "tests" / "hil" / "test_contract.py"), "--armbus-firmware", "c"]
    run = _run(cmd, env, 600)
    out = run.stdout + run.stderr
    assert run.returncode == 0 and not _reports(out), out[-6000:]
    assert " passed" in run.stdout and " failed" not in run.stdout, out[-2000:]
    for module in ("tests/firmware/test_differential.py .", "tests/hil/test_contract.py ."):
        assert module in run.stdout, f"no test of {module[:-2]} ran:\n{out[-2000:]}"


@pytest.mark.skipif(os.environ.get(build.SANITIZE_ENV) is not None, reason="already inside a sanitized run")
def test_loading_the_sanitized_library_without_the_runtime_is_one_clear_line() -> None:
    env = dict(os.environ, **{build.SANITIZE_ENV: "1"})
    env.pop("LD_PRELOAD", None)
    code = ("from armbus.hil.firmware import build\ntry:\n    build.load()\nexcept build.FirmwareUnavailable as e:\n"
            "    print('refused:', e)\n")
    run = _run([sys.executable, "-c", code], env, 300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("refused:") and "LD_PRELOAD" in run.stdout and len(run.stdout.splitlines()) == 1
