"""Suite-wide checks.

Test folders are not packages (each folder's helper modules, such as ``linksim`` or ``joint_bench``, are imported
by plain name), so pytest imports every test module by its file name: two files with the same name in different
folders would collide. Fail early with a clear message instead of pytest's "import file mismatch".
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

_HERE = Path(__file__).parent
_SHARED = ("__init__.py", "conftest.py")
_names = Counter(p.name for p in _HERE.rglob("*.py") if p.name not in _SHARED)
_clashes = [name for name, count in _names.items() if count > 1]
if _clashes:
    raise RuntimeError(f"test modules must have unique file names across tests/: {', '.join(sorted(_clashes))}")
