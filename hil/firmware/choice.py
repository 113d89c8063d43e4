"""The ``firmware`` option of the simulated arms: which joints run the Python model and which the C firmware.

Theory of operation
-------------------
``firmware`` is ``"python"`` (the default: every joint a :class:`armbus.joints.node.JointNode`), ``"c"`` (every
joint a :class:`armbus.hil.firmware.cjoint.CJoint`), or a comma-separated list with one entry per joint, e.g.
``"c,python,c"`` for a mixed chain (a sequence of those words works too). :func:`parse_firmware` checks it
against the chain length (:class:`~armbus.bus.errors.UsageError` naming the way out) and :func:`joint_class`
gives the class to build each joint with; the C one is imported only when a joint needs it, so a machine without
a C compiler runs the Python joints as before and gets :class:`armbus.hil.firmware.build.FirmwareUnavailable`
(one line: install a compiler) only when it asks for C.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from armbus.bus.errors import UsageError

KINDS = ("python", "c")


def parse_firmware(spec: str | Sequence[str] | None, joints: int) -> list[str]:
    """One of :data:`KINDS` per joint, from ``spec`` (see the module docstring)."""
    if spec is None:
        return ["python"] * joints
    words = [w.strip().lower() for w in (spec.split(",") if isinstance(spec, str) else spec)]
    bad = [w for w in words if w not in KINDS]
    if bad or not words:
        raise UsageError(f"firmware {spec!r}: use 'python', 'c' or one of them per joint (e.g. 'c,python,c')")
    if len(words) == 1:
        return words * joints
    if len(words) != joints:
        raise UsageError(f"firmware {spec!r} names {len(words)} joint(s) for a chain of {joints}: give one "
                         "kind for all or one per joint")
    return words


def joint_class(kind: str) -> Any:
    """The node class of a firmware kind (the C one built on first use)."""
    if kind == "c":
        from armbus.hil.firmware.cjoint import CJoint

        return CJoint
    from armbus.joints.node import JointNode

    return JointNode


def firmware_spec(kinds: Sequence[str]) -> str:
    """The shortest ``firmware`` value that gives ``kinds`` (one word when every joint runs the same)."""
    return kinds[0] if kinds and all(k == kinds[0] for k in kinds) else ",".join(kinds)
