"""Fixtures of the firmware tests: the SIL library (hil/firmware/build.py) with the control core's signatures.

``CTL_LIB=path`` loads a library built elsewhere instead (e.g. with --coverage, or with sanitizers and the
runtime preloaded)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest
from ctl_harness import load

from armbus.hil.firmware import build


@pytest.fixture(scope="session")
def ctl_lib() -> ctypes.CDLL:
    if os.environ.get("CTL_LIB"):
        return load(Path(os.environ["CTL_LIB"]))
    try:
        return load(build.library())
    except build.FirmwareUnavailable as exc:
        pytest.skip(str(exc))
