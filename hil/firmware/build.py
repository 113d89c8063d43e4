"""Build the C joint firmware's software-in-the-loop library with the system C compiler, once per source hash.

Theory of operation
-------------------
The simulator runs the C firmware (``joints/firmware/``: ``src/`` and ``gen/`` are the firmware itself, ``sil/``
the simulator's side of its HALs) as a shared library loaded with ctypes. :func:`library` compiles every
``src/*.c``, ``gen/*.c`` and ``sil/*.c`` with the flags the firmware is written for (C99, no fused multiply-add,
no fast-math: the doubles must equal the Python model's) into a cache directory whose name is a hash of the
sources, headers, compiler and flags: a changed file or compiler gives a new build, an unchanged one is reused
(across processes: the library is written under a temporary name and renamed into place). The cache lives in
``$ARMBUS_FIRMWARE_CACHE``, else ``$XDG_CACHE_HOME/armbus/firmware`` (``~/.cache/armbus/firmware``).

The compiler is ``$CC`` if set, else the first of ``cc``, ``gcc``, ``clang`` on the PATH. Without one,
:class:`FirmwareUnavailable` (an :class:`~armbus.bus.errors.ArmbusError`) says so in one line: the Python joints
still work; install a C compiler to run the C firmware. A compiler that fails is the same error with its output.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from armbus.bus.errors import ArmbusError

#: The firmware's source tree (this checkout's or the installed package's).
FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "joints" / "firmware"
#: Flags of the SIL build: the firmware's warnings and floating-point rules (joints/firmware/Makefile) plus PIC.
CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared")
LIBRARY_NAME = "libarmbus_sil.so" if sys.platform != "darwin" else "libarmbus_sil.dylib"
_loaded: dict[Path, ctypes.CDLL] = {}


class FirmwareUnavailable(ArmbusError):
    """The C firmware cannot be built here (no C compiler, or it failed); the Python joints still work."""


def compiler() -> list[str]:
    """The C compiler command: ``$CC`` (split like a shell word list) or the first of cc, gcc, clang found."""
    env = os.environ.get("CC", "").strip()
    if env:
        cmd = shlex.split(env)
        if shutil.which(cmd[0]) is None:
            raise FirmwareUnavailable(f"C firmware unavailable: CC={env!r} is not on the PATH; the Python joints "
                                      "still work (firmware=python); set CC to an installed C compiler")
        return cmd
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return [name]
    raise FirmwareUnavailable("C firmware unavailable: no C compiler (cc, gcc or clang) on the PATH; the Python "
                              "joints still work (firmware=python); install one, e.g. apt-get install gcc")


def sources(root: Path = FIRMWARE_DIR) -> list[Path]:
    """The C files of the SIL library, sorted."""
    return sorted([*root.glob("src/*.c"), *root.glob("gen/*.c"), *root.glob("sil/*.c")])


def _headers(root: Path) -> list[Path]:
    return sorted([*root.glob("include/*.h"), *root.glob("gen/*.h"), *root.glob("sil/*.h"), *root.glob("src/*.h")])


def cache_dir() -> Path:
    env = os.environ.get("ARMBUS_FIRMWARE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "armbus" / "firmware"


def build_key(cc: list[str], root: Path = FIRMWARE_DIR) -> str:
    """Hash of the compiler, the flags and every source and header (name and content)."""
    h = hashlib.sha256()
    h.update(repr((cc, CFLAGS)).encode())
    for path in [*sources(root), *_headers(root)]:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def library(root: Path = FIRMWARE_DIR, cache: Path | None = None) -> Path:
    """Path of the SIL library, compiled now unless the cache already holds this build."""
    if not (root / "src").is_dir():
        raise FirmwareUnavailable(f"C firmware unavailable: no firmware sources at {root}; the Python joints "
                                  "still work (firmware=python)")
    cc = compiler()
    out_dir = (cache or cache_dir()) / build_key(cc, root)
    lib = out_dir / LIBRARY_NAME
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=out_dir)
    os.close(fd)
    cmd = [*cc, *CFLAGS, f"-I{root / 'include'}", f"-I{root / 'gen'}", f"-I{root / 'sil'}", "-o", tmp,
           *map(str, sources(root)), "-lm"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["(no output)"])[0]
            raise FirmwareUnavailable(f"C firmware unavailable: the C compiler failed ({first}); the Python joints "
                                      "still work (firmware=python)")
        os.replace(tmp, lib)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


def load(root: Path = FIRMWARE_DIR) -> ctypes.CDLL:
    """The SIL library, built if needed and loaded once per process."""
    path = library(root)
    lib = _loaded.get(path)
    if lib is None:
        lib = _loaded[path] = ctypes.CDLL(str(path))
    return lib


def available() -> str | None:
    """None when the C firmware can be built here, else the reason (for skips and the CLI's message)."""
    try:
        library()
    except FirmwareUnavailable as exc:
        return str(exc)
    return None
