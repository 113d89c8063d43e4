"""The layering check: every armbus module imports only its own layer and the layers below it.

Theory of operation
-------------------
:data:`LAYERS` is the design's stack as data, lowest first: bytes -> frame -> hop link -> routing -> joint ->
host -> the public API -> simulation -> tools. Each module belongs to the layer whose prefix names it most
closely (``armbus.bus.codec`` is "frame", ``armbus.controller.host`` is "host"); a module no layer names is an
error, so a new subpackage has to be placed on purpose.

:func:`check` parses every module below a package root (no module is imported, so a broken module cannot hide
a violation) and collects every ``import`` and ``from ... import``, those inside functions and ``TYPE_CHECKING``
blocks included, since a lazy import is a dependency all the same. It reports:

* an import of a higher layer (the core reaching into the simulator or the tools);
* a reach-in: an import of another module's underscore name, or an ``obj._name`` access (``getattr`` and kin with
  that name included) in a module other than the one whose classes define ``_name`` (a method, a class
  attribute, a slot or a ``self._name = ...``); ask the owner through a public name instead. Names no armbus
  class defines (a named tuple's ``_replace``, construct's subclassing protocol) belong to their libraries, and
  a name the accessing module's own classes define too passes (the check does not know the object's type);
* an import of a port, thread or wall-clock module (:data:`IO_MODULES`) by a sans-I/O module (:data:`SANS_IO`),
  whose time comes in as an argument and whose bytes go out as return values.

``python -m armbus.tools.layers [ROOT]`` prints the violations and exits 1 when there is one (``make lint`` runs
it); ``--table`` prints the layer table. The virtual arm is reached through the controller's table of port
backends (a module name as a string, imported when a URL needs it), which is data, not an import.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from armbus.bus.errors import ExitCode


@dataclass(frozen=True)
class Layer:
    name: str
    what: str
    prefixes: tuple[str, ...]


#: The stack, lowest first. A module may import its own layer and every layer before it.
LAYERS: tuple[Layer, ...] = (
    Layer("wire", "constants, CRC, the exception tree", ("armbus.bus.errors", "armbus.bus.wire", "armbus.bus.crc")),
    Layer("frame", "frame codec, stream deframer, construct layout, message payloads",
          ("armbus.bus.codec", "armbus.bus.deframer", "armbus.bus.layout", "armbus.bus.batch",
           "armbus.bus.messages", "armbus.bus.payload", "armbus.bus.cycle")),
    Layer("hop link", "reliable delivery over one wire",
          ("armbus.bus.linkconfig", "armbus.bus.linkevents", "armbus.bus.linktable", "armbus.bus.link")),
    Layer("routing", "address-based forwarding; the bus package's exports", ("armbus.bus.router", "armbus.bus")),
    Layer("joint", "the joint firmware model", ("armbus.joints",)),
    Layer("host", "the host node, its drivers, configuration, units, port backends", ("armbus.controller",)),
    Layer("api", "the everyday API exported by armbus", ("armbus",)),
    Layer("simulation", "simulation kernel, virtual arms, fault injection, pytest plugin, traces", ("armbus.hil",)),
    Layer("tools", "the armbus command, demo, benchmarks, campaigns, generators",
          ("armbus.tools", "armbus.__main__")),
)

#: Modules that are sans-I/O: time comes in as an argument, bytes go out as return values.
SANS_IO: tuple[str, ...] = (
    "armbus.bus",
    "armbus.joints",
    "armbus.controller.host", "armbus.controller.correlator", "armbus.controller.events", "armbus.controller.ops",
    "armbus.controller.units", "armbus.controller.armmodel", "armbus.controller.scheduler",
    "armbus.controller.trajectory", "armbus.controller.config", "armbus.controller.fanout", "armbus.controller.baud",
    "armbus.controller.lease", "armbus.controller.serveproto", "armbus.controller.servelink",
    "armbus.controller.servehub",
    "armbus.hil.kernel", "armbus.hil.wire", "armbus.hil.faults", "armbus.hil.schedule", "armbus.hil.joint_faults",
    "armbus.hil.scheduled_fault", "armbus.hil.link_faults", "armbus.hil.fault_kinds",
    "armbus.hil.virtual_arm", "armbus.hil.simdrive", "armbus.hil.relaychain", "armbus.hil.adapter",
    "armbus.tools.mqtt.core", "armbus.tools.mqtt.schema",
)
#: What a sans-I/O module must not import: ports, sockets, threads, event loops and the clock.
IO_MODULES = frozenset({
    "asyncio", "fcntl", "pty", "select", "selectors", "serial", "serial_asyncio_fast", "signal", "socket",
    "subprocess", "termios", "threading", "time", "tty",
})


_SANS_IO_WHY = "a sans-I/O module takes time and bytes as arguments; ports, threads and clocks live in the drivers"


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    module: str
    what: str  # "imports armbus.x.y", "uses ._name"
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} {self.what}: {self.why}"


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of the layer whose prefix names ``module`` most closely, or None."""
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, layer in enumerate(LAYERS):
        for prefix in layer.prefixes:
            names = module == prefix or (module.startswith(prefix + ".") and prefix != "armbus")
            if names and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def _is_sans_io(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in SANS_IO)


def modules(root: Path) -> Iterator[tuple[str, Path]]:
    """(module name, file) of every module of the package at ``root`` (a folder with ``__init__.py``)."""
    package = root.name
    files = []
    for folder, dirs, names in os.walk(root, followlinks=True):  # armbus/ links the layer folders in
        dirs[:] = sorted(d for d in dirs if (Path(folder) / d / "__init__.py").is_file())
        files += [Path(folder) / n for n in names if n.endswith(".py")]
    for path in sorted(files):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[tuple[int, str, str]]:
    """(line, imported module, imported name or "") for every import in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ""
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:  # ``from armbus.bus import codec``: the module codec
                    yield node.lineno, sub, ""
                else:
                    yield node.lineno, base, alias.name


def _shown(path: Path) -> str:
    """``path`` as a reader finds it: the real file (not the link in armbus/), relative to here if inside."""
    real = path.resolve()
    try:
        return str(real.relative_to(Path.cwd()))
    except ValueError:
        return str(real)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and not name.endswith("_")


def _owned(tree: ast.AST) -> set[str]:
    """Private attribute names the classes of one module define."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    for target in item.targets:
                        if isinstance(target, ast.Name):
                            names.add(target.id)
                            if target.id == "__slots__":
                                names.update(c.value for c in ast.walk(item.value)
                                             if isinstance(c, ast.Constant) and isinstance(c.value, str))
        elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
              and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            names.add(node.attr)
    return {n for n in names if _private(n)}


def _accesses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, name) of every access to a private attribute of something other than self/cls."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                yield node.lineno, node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _private(node.args[1].value)):
            yield node.lineno, node.args[1].value


def check(root: Path) -> list[Violation]:
    """Every violation of the layering rules in the package at ``root``."""
    found = list(modules(root))
    known = {name for name, _ in found}
    trees = {module: ast.parse(path.read_text(encoding="utf-8"), str(path)) for module, path in found}
    owners: dict[str, set[str]] = {}
    for module, tree in trees.items():
        for name in _owned(tree):
            owners.setdefault(name, set()).add(module)
    out: list[Violation] = []
    for module, path in found:
        rel = _shown(path)
        own = layer_of(module)
        if own is None:
            out.append(Violation(rel, 1, module, "is here", "the module is in no layer (add it to LAYERS)"))
            continue
        tree = trees[module]
        for line, target, name in _imports(tree, module, path.name == "__init__.py", known):
            top = target.split(".")[0]
            if _is_sans_io(module) and top in IO_MODULES:
                out.append(Violation(rel, line, module, f"imports {target}", _SANS_IO_WHY))
            if top != root.name:
                continue
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                out.append(Violation(rel, line, module, f"imports {target}",
                                     f"layer '{LAYERS[own].name}' may not import layer '{LAYERS[theirs].name}'"))
            if _private(name) and target != module:
                out.append(Violation(rel, line, module, f"imports {target}.{name}",
                                     "a private name of another module (use or add a public one)"))
        for line, name in _accesses(tree):
            others = owners.get(name, set()) - {module}
            if others and module not in owners[name]:
                out.append(Violation(rel, line, module, f"uses .{name}",
                                     f"a private attribute of {', '.join(sorted(others))} (use or add a public one)"))
    return out


def table() -> str:
    """The layer table, lowest first, as text."""
    rows = [f"{i}  {layer.name:10s} {layer.what}\n   {'':10s} {', '.join(layer.prefixes)}"
            for i, layer in enumerate(LAYERS)]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m armbus.tools.layers", description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", help="package folder to check (default: the installed armbus)")
    parser.add_argument("--table", action="store_true", help="print the layer table")
    args = parser.parse_args(argv)
    if args.table:
        print(table())
        return ExitCode.OK
    if args.root:
        root = Path(args.root)
    else:
        import armbus

        root = Path(armbus.__file__).parent
    if not (root / "__init__.py").is_file():
        print(f"error: {root} is not a package folder (no __init__.py)", file=sys.stderr)
        return ExitCode.USAGE
    violations = check(root)
    for v in violations:
        print(v)
    count = len(list(modules(root)))
    print(f"layers: {count} modules, {len(violations)} violation(s)", file=sys.stderr)
    return ExitCode.FAILED if violations else ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
