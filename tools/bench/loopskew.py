"""Goal skew: how far apart in time the joints start acting on one cycle's goals.

Theory of operation
-------------------
Measurement only: :class:`SkewMeter` attaches observers to the joints' control cores (the observer lists the
control core offers for this, :attr:`armbus.joints.control.ControlCore.latch_hooks` and ``tick_hooks``) and
never changes them. Two ways to take a goal:

* ``"latch"`` (the cyclic exchange): each joint latches its slice of a CYCLE at an instant computed from the wire
  time still ahead of the frame; the hook sees ``(t, tag)`` with the cycle's msg_id as tag. One cycle's skew is
  the spread (latest - earliest) of the latch instants of its tag over all joints.
* ``"tick"`` (SYNC_WRITE): the comm core posts the goal to the command mailbox and the control core takes it at
  its next tick. A tick hook compares ``control.goal`` with the value at the previous tick; a change is a take at
  that tick. Every joint gets the same goal in the benchmark, so takes are matched across joints by value: for
  each take of the first joint, the take of the same value nearest in time at every other joint (within
  :data:`MATCH_WINDOW_NS`). One cycle's skew is the spread of those instants.

Observers run in whatever thread runs the simulation (the real-time driver's, in a pty server), so the meter only
appends while the arm runs; :meth:`SkewMeter.figures` is computed afterwards.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

#: Two takes of the same value further apart than this are different cycles (goal values can repeat: a sine).
MATCH_WINDOW_NS = 50_000_000
#: Cycles whose latches are still coming in, kept at most (older incomplete ones are dropped: a joint missed it).
_OPEN_TAGS = 64
SKEW_MODES = ("latch", "tick")


class _Core(Protocol):
    goal: int
    latch_hooks: list
    tick_hooks: list


def percentile(values: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of ``values`` (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


class SkewMeter:
    """Collects goal takes from ``cores`` (one per joint, in chain order); see the module docstring."""

    def __init__(self, cores: Sequence[_Core], mode: str) -> None:
        if mode not in SKEW_MODES:
            raise ValueError(f"mode must be one of {SKEW_MODES}, got {mode!r}")
        self.mode = mode
        self.joints = len(cores)
        self.skews: list[int] = []  # ns, one per cycle every joint took
        self.partial = 0  # cycles some joint did not take (latch mode)
        self._open: OrderedDict[int, list[int]] = OrderedDict()
        self._takes: list[list[tuple[int, int]]] = [[] for _ in cores]  # tick mode: (t, goal) per joint
        for i, core in enumerate(cores):
            if mode == "latch":
                core.latch_hooks.append(self._latched)
            else:
                core.tick_hooks.append(self._ticker(i, core))

    def _latched(self, t: int, tag: int) -> None:
        group = self._open.get(tag)
        if group is None:
            group = self._open[tag] = []
            while len(self._open) > _OPEN_TAGS:
                self._open.popitem(last=False)
                self.partial += 1
        group.append(t)
        if len(group) == self.joints:
            del self._open[tag]
            self.skews.append(max(group) - min(group))

    def _ticker(self, i: int, core: _Core):  # type: ignore[no-untyped-def]
        takes = self._takes[i]
        last = [core.goal]

        def hook(t: int) -> None:
            goal = core.goal
            if goal != last[0]:
                last[0] = goal
                takes.append((t, goal))

        return hook

    def reset(self) -> None:
        """Forget every take so far (a measured window begins)."""
        self.skews.clear()
        self.partial = 0
        self._open.clear()
        for takes in self._takes:
            takes.clear()

    def _match_ticks(self) -> list[int]:
        """Tick mode: the joints' takes as per-cycle skews (see the module docstring)."""
        skews: list[int] = []
        self.partial = 0
        by_value: list[dict[int, list[int]]] = []
        for takes in self._takes[1:]:
            index: dict[int, list[int]] = {}
            for t, goal in takes:
                index.setdefault(goal, []).append(t)
            by_value.append(index)
        for t0, goal in self._takes[0]:
            instants = [t0]
            for index in by_value:
                times = index.get(goal)
                if not times:
                    break
                k = bisect.bisect_left(times, t0)
                near = min((times[j] for j in (k - 1, k) if 0 <= j < len(times)), key=lambda t: abs(t - t0))
                if abs(near - t0) > MATCH_WINDOW_NS:
                    break
                instants.append(near)
            if len(instants) == self.joints:
                skews.append(max(instants) - min(instants))
            else:
                self.partial += 1
        return skews

    def figures(self) -> dict[str, float]:
        """Skew p50, p99 and max in microseconds, and the number of cycles measured."""
        s = self._match_ticks() if self.mode == "tick" else self.skews
        return {"skew_cycles": len(s), "skew_p50_us": percentile(s, 0.50) / 1e3,
                "skew_p99_us": percentile(s, 0.99) / 1e3, "skew_max_us": (max(s) / 1e3) if s else float("nan")}
