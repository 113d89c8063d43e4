"""Fixtures of the firmware tests: the SIL library with the C control core, built once per session.

``CTL_LIB=path`` loads a library built elsewhere instead (e.g. with --coverage, or with sanitizers and the
runtime preloaded)."""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

import pytest
from ctl_harness import build, load


@pytest.fixture(scope="session")
def ctl_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    if os.environ.get("CTL_LIB"):
        return load(Path(os.environ["CTL_LIB"]))
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) on this machine")
    return load(build(tmp_path_factory.mktemp("ctl")))
