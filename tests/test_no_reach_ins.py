"""No library module reaches into another module's private names: it asks the owner through a public one.

A private attribute (``_name``, not dunder) belongs to the module whose classes define it (a method, a class
attribute, ``__slots__``, or a ``self._name = ...`` assignment). Library code may use it on ``self``/``cls`` and in
its own module; an ``obj._name`` (or ``getattr``/``setattr``/``hasattr`` with that string) in any other module is a
reach-in, and so is ``from armbus.x import _name`` from another module. Names no library class defines (a named
tuple's ``_replace``, construct's subclassing protocol) belong to their own libraries and are not judged here; nor
is a name the accessing module's own classes define too (the scan does not know the object's type).
Tests are not scanned: they may poke at the privates of what they test.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bus", "joints", "controller", "hil", "tools")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and not name.endswith("_")


def _module(path: Path) -> str:
    parts = ["armbus", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


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


def _accesses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, private name) of every access to a private attribute of something other than self/cls."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append((node.lineno, node.attr))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _private(node.args[1].value)):
            found.append((node.lineno, node.args[1].value))
    return found


def reach_ins() -> list[str]:
    trees = {_module(p): (p, ast.parse(p.read_text(encoding="utf-8"), str(p)))
             for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}
    owners: dict[str, set[str]] = {}
    for module, (_, tree) in trees.items():
        for name in _owned(tree):
            owners.setdefault(name, set()).add(module)
    out: list[str] = []
    for module, (path, tree) in trees.items():
        where = path.relative_to(ROOT)
        for line, name in _accesses(tree):
            others = owners.get(name, set()) - {module}
            if others and module not in owners[name]:
                out.append(f"{where}:{line}: {name} belongs to {', '.join(sorted(others))}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("armbus"):
                for alias in node.names:
                    if _private(alias.name) and node.module != module:
                        out.append(f"{where}:{node.lineno}: imports {alias.name} from {node.module}")
    return sorted(out)


def test_library_modules_use_only_public_names_of_other_modules() -> None:
    assert reach_ins() == []
