"""Every ``armbus`` command line in README.md and docs/ parses with today's CLI, and the ones that drive an arm run.

A shell example is a line of a fenced block (not ```python) that starts with ``armbus``. The comment after two
spaces is the reader's, not the command's. Synopsis lines (``[--seed N]``, ``decode|stats``, ``FILE``) are reduced
to a concrete command first: optional parts dropped, the first alternative taken, placeholders filled. Every one
must then parse (argparse exits 2 on an unknown option or a bad value, so a renamed option fails here). The
commands that drive an arm (or record one) run for real, in a folder of their own, against one real-time virtual
arm behind a pseudo-terminal that stands in for ``/dev/ttyUSB0``, and must exit 0 without a traceback.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from armbus.bus.wire import DEFAULT_BAUD
from armbus.hil.ptyserver import PtyServer
from armbus.hil.realtime import realtime_link_config
from armbus.hil.virtual_arm import VirtualArm
from armbus.tools.cli import NEGATIVE_VALUE, build_parser

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```$", re.M | re.S)
#: Placeholders of synopsis lines and what stands in for them.
FILL = {"FILE": "capture.pcapng", "PORT": "/dev/ttyUSB0", "RATE": "1000000", "N": "1", "S": "1", "T": "1ms",
        "X": "2", "NAME": "host-j1", "JOINT": "1", "R": "1000000"}
#: Commands that drive the arm and are run for real (the others only parse: they run for minutes, need a
#: capture or a CSV of the reader's, or are the demo and the benchmarks that other tests run).
RUN = {"info", "move", "torque", "estop", "clear", "reg", "record"}


def _concrete(line: str) -> list[str]:
    command = re.split(r"\s{2,}|\s#", line.strip(), maxsplit=1)[0]
    command = re.sub(r"\[[^\]]*\]", "", command)  # optional parts
    command = re.sub(r"(\S+?)\|\S+", r"\1", command)  # a|b|c -> a
    return [FILL.get(tok, tok) for tok in shlex.split(command)]


def _examples() -> list[tuple[str, list[str]]]:
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == "python":
                continue
            first = text.count("\n", 0, match.start()) + 2
            for k, line in enumerate(match.group(2).splitlines()):
                if line.startswith("armbus "):
                    out.append((f"{page.relative_to(REPO)}:{first + k}", _concrete(line)[1:]))
    return out


EXAMPLES = _examples()


def test_the_pages_have_shell_examples() -> None:
    assert len(EXAMPLES) >= 20


@pytest.mark.parametrize(("where", "argv"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_example_parses(where: str, argv: list[str]) -> None:
    parser = build_parser()
    parser._negative_number_matcher = NEGATIVE_VALUE
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{where}: armbus {' '.join(argv)} does not parse (exit {exc.code})")


@pytest.fixture(scope="module")
def port() -> Iterator[str]:
    with PtyServer(VirtualArm(6, seed=3, link_config=realtime_link_config(DEFAULT_BAUD))) as server:
        yield server.port


def _command(argv: list[str]) -> str | None:
    skip = False
    for tok in argv:
        if skip:
            skip = False
        elif tok in ("--port", "--baud", "--config", "--timeout"):
            skip = True
        elif not tok.startswith("-"):
            return tok
    return None


@pytest.mark.realtime
@pytest.mark.parametrize(("where", "argv"), [e for e in EXAMPLES if _command(e[1]) in RUN and "/dev/ttyUSB0" in e[1]],
                         ids=[w for w, a in EXAMPLES if _command(a) in RUN and "/dev/ttyUSB0" in a])
def test_example_drives_the_arm(where: str, argv: list[str], port: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARMBUS_PORT"}
    real = [port if tok == "/dev/ttyUSB0" else tok for tok in argv]
    proc = subprocess.run([sys.executable, "-m", "armbus.tools.cli", *real], capture_output=True, text=True,
                          timeout=120, check=False, env=env, cwd=tmp_path)  # files it writes land in tmp_path
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, f"{where}: {proc.stderr}"
