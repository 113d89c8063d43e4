"""The layering check holds on the tree, and fails on each kind of violation planted in a copy of it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import armbus
from armbus.tools import layers

ROOT = Path(armbus.__file__).parent
REPO = Path(__file__).resolve().parents[2]


def test_the_tree_keeps_its_layers() -> None:
    violations = layers.check(ROOT)
    assert violations == [], "\n".join(map(str, violations))


def test_every_module_is_in_a_layer_and_the_core_is_below_the_tools() -> None:
    names = [name for name, _ in layers.modules(ROOT)]
    assert len(names) > 80  # the walk follows the links in armbus/ into the layer folders
    assert all(layers.layer_of(n) is not None for n in names)
    order = [layers.layer_of(m) for m in ("armbus.bus.wire", "armbus.bus.codec", "armbus.bus.link",
                                          "armbus.bus.router", "armbus.joints.node", "armbus.controller.host",
                                          "armbus", "armbus.hil.kernel", "armbus.tools.cli")]
    assert order == sorted(order) and len(set(order)) == len(order)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package with its links resolved, to plant violations in."""
    copy = tmp_path / "armbus"
    shutil.copytree(ROOT, copy, symlinks=False, ignore=shutil.ignore_patterns("__pycache__"))
    assert layers.check(copy) == []
    return copy


def _plant(tree: Path, rel: str, code: str, *, at_end: bool = False) -> None:
    path = tree / rel
    text = path.read_text(encoding="utf-8")
    if at_end:
        path.write_text(text + "\n" + code + "\n", encoding="utf-8")
    else:  # after the module's first import statement, so the line number is predictable enough
        path.write_text(re.sub(r"^(from __future__ import annotations\n)", r"\1" + code + "\n", text, count=1,
                               flags=re.M), encoding="utf-8")


@pytest.mark.parametrize(
    ("rel", "code", "at_end", "expected"),
    [
        ("bus/wire.py", "from armbus.tools.demo import run_demo", False,
         "armbus.bus.wire imports armbus.tools.demo: layer 'wire' may not import layer 'tools'"),
        ("bus/codec.py", "import armbus.bus.link", False,
         "armbus.bus.codec imports armbus.bus.link: layer 'frame' may not import layer 'hop link'"),
        ("controller/host.py", "def _lazy() -> None:\n    from armbus.hil import virtual_arm  # noqa", True,
         "armbus.controller.host imports armbus.hil.virtual_arm: layer 'host' may not import layer 'simulation'"),
        ("joints/node.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import armbus.controller.arm",
         True, "armbus.joints.node imports armbus.controller.arm: layer 'joint' may not import layer 'host'"),
        ("bus/link.py", "import time", False, "armbus.bus.link imports time: a sans-I/O module"),
        ("hil/kernel.py", "import threading", False, "armbus.hil.kernel imports threading: a sans-I/O module"),
        ("controller/ops.py", "from armbus.bus.codec import _crc", False,
         "armbus.controller.ops imports armbus.bus.codec._crc: a private name of another module"),
        ("bus/router.py", "def _peek(link: object) -> object:\n    return link._inflight  # type: ignore", True,
         "armbus.bus.router uses ._inflight: a private attribute of armbus.bus.link"),
        ("hil/simdrive.py", "def _patch(joint: object) -> None:\n    setattr(joint, '_start', None)", True,
         "armbus.hil.simdrive uses ._start: a private attribute of armbus.controller.scheduler, armbus.joints.node"),
    ],
)
def test_a_planted_violation_is_reported(tree: Path, rel: str, code: str, at_end: bool, expected: str) -> None:
    _plant(tree, rel, code, at_end=at_end)
    found = [str(v) for v in layers.check(tree)]
    assert len(found) == 1 and expected in found[0], found


def test_a_module_outside_every_layer_is_reported(tree: Path) -> None:
    (tree / "extras.py").write_text('"""An unplaced module."""\n', encoding="utf-8")
    found = [str(v) for v in layers.check(tree)]
    assert len(found) == 1 and "armbus.extras" in found[0] and "in no layer" in found[0]


def test_the_command_exits_1_on_a_violation_and_0_on_the_tree(tree: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "armbus.tools.layers"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"layers: \d+ modules, 0 violation", ok.stderr)
    _plant(tree, "joints/registers.py", "import armbus.tools.cli")
    bad = subprocess.run([sys.executable, "-m", "armbus.tools.layers", str(tree)], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1
    assert "joints/registers.py" in bad.stdout and "may not import layer 'tools'" in bad.stdout
    missing = subprocess.run([sys.executable, "-m", "armbus.tools.layers", str(tree / "nothing")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "not a package folder" in missing.stderr


def test_nothing_imports_the_old_top_level_names() -> None:
    """No module, test or document imports ``bus``, ``joints``, ``controller`` or ``hil`` as top-level packages."""
    pattern = re.compile(r"^\s*(from|import) (bus|joints|controller|hil|tools)\b", re.M)
    runs = re.compile(r"python -m (bus|joints|controller|hil|tools)\.")
    offenders = []
    for path in REPO.rglob("*"):
        if any(part.startswith(".") for part in path.relative_to(REPO).parts) or path.is_symlink():
            continue
        if path.suffix in (".py", ".md", ".toml") or path.name == "Makefile":
            text = path.read_text(encoding="utf-8")
            offenders += [f"{path.relative_to(REPO)}: {m.group(0).strip()}" for m in pattern.finditer(text)]
            offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in runs.finditer(text)]
    assert offenders == []
