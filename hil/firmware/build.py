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

Sanitized build: with ``ARMBUS_FW_SANITIZE=1`` in the environment the library is compiled with
``-fsanitize=address,undefined -fno-sanitize-recover=all`` (its own cache entry: the flags are in the key), so
that every test that drives C joints checks the firmware for out-of-bounds accesses, use after scope and undefined
behaviour; the first report aborts the process. AddressSanitizer's runtime must be the first library of the
process, so the interpreter has to be started with it preloaded: :func:`sanitizer_env` gives the environment
(``LD_PRELOAD`` of the compiler's ``libasan``, ``ASAN_OPTIONS=detect_leaks=0`` for the interpreter's own
allocations). :func:`load` refuses, in one line, a sanitized library in a process without the runtime.
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
#: Added to :data:`CFLAGS` when ``$ARMBUS_FW_SANITIZE`` is set (not "" or "0").
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")
SANITIZE_ENV = "ARMBUS_FW_SANITIZE"
#: Sanitizer options of a sanitized run: the interpreter's leaks are not the firmware's (it has no heap); any
#: report is fatal and names its source line.
SANITIZER_OPTIONS = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=86",
                     "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=86"}
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


def sanitized() -> bool:
    """True when ``$ARMBUS_FW_SANITIZE`` asks for the sanitized build."""
    return os.environ.get(SANITIZE_ENV, "").strip() not in ("", "0")


def flags() -> tuple[str, ...]:
    """The flags of this process's build: :data:`CFLAGS`, plus :data:`SANITIZE_FLAGS` when :func:`sanitized`."""
    return CFLAGS + SANITIZE_FLAGS if sanitized() else CFLAGS


def asan_runtime(cc: list[str] | None = None) -> Path | None:
    """The AddressSanitizer runtime of the C compiler (gcc's ``libasan.so``, clang's ``libclang_rt.asan``), or
    None when it has none."""
    cc = cc or compiler()
    for name in ("libasan.so", f"libclang_rt.asan-{os.uname().machine}.so"):
        proc = subprocess.run([*cc, f"-print-file-name={name}"], capture_output=True, text=True, check=False)
        found = Path(proc.stdout.strip())
        if proc.returncode == 0 and found.is_absolute() and found.exists():
            return found
    return None


def sanitizer_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process that runs the sanitized firmware (a copy of ``base``, default os.environ)."""
    runtime = asan_runtime()
    if runtime is None:
        raise FirmwareUnavailable(f"sanitized C firmware unavailable: {' '.join(compiler())} has no "
                                  "AddressSanitizer runtime; install it (gcc: libasan, clang: libclang-rt-dev)")
    env = dict(os.environ if base is None else base)
    env.update(SANITIZER_OPTIONS)
    env[SANITIZE_ENV] = "1"
    env["LD_PRELOAD"] = " ".join(filter(None, [str(runtime), env.get("LD_PRELOAD", "")]))
    return env


def _asan_loaded() -> bool:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return True  # cannot tell: let the runtime speak for itself
    return "libasan" in maps or "libclang_rt.asan" in maps


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
    h.update(repr((cc, flags())).encode())
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
    cmd = [*cc, *flags(), f"-I{root / 'include'}", f"-I{root / 'gen'}", f"-I{root / 'sil'}", "-o", tmp,
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
    if sanitized() and not _asan_loaded():
        raise FirmwareUnavailable(f"the sanitized C firmware ({SANITIZE_ENV}=1) must run in a process started "
                                  "with the AddressSanitizer runtime preloaded: LD_PRELOAD=$(cc "
                                  "-print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 python ...")
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
    if sanitized() and not _asan_loaded():
        return (f"the sanitized C firmware ({SANITIZE_ENV}=1) needs the AddressSanitizer runtime preloaded "
                "(see armbus.hil.firmware.build.sanitizer_env)")
    return None
