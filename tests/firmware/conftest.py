"""Fixtures of the firmware tests: the SIL library with the C control core, built once per session."""

from __future__ import annotations

import ctypes
import shutil

import pytest
from ctl_harness import build, load


@pytest.fixture(scope="session")
def ctl_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) on this machine")
    return load(build(tmp_path_factory.mktemp("ctl")))
