"""A recording rig for the cyclic exchange in simulated time: a 6-joint SimArm, every cycle the host sent, every
goal the joints latched, every state the callback saw, and the checks that hold whatever the faults.

The rig watches from outside: it wraps the host node's ``cycle`` to keep each CYCLE as sent (msg_id -> instant and
message), hooks every joint's control core (``latch_hooks``: which cycle's goal was applied, when and with which
value; ``tick_hooks``: when each sensor sample was taken), re-hooking a joint that rebooted, and listens for
CycleReplied / CycleMissed. :func:`check_invariants` then asserts what must hold under any line fault.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from armbus.bus.cycle import GOAL_NONE, GOAL_TAKEN, READ_OK, Cycle
from armbus.bus.wire import NS_PER_S, Address, ErrorKind, StatusFlag
from armbus.controller.cyclic import CycleView, CyclicReport
from armbus.controller.events import CycleMissed, CycleReplied, HostEvent
from armbus.controller.host import HostNode
from armbus.hil.faults import LinkFaults
from armbus.hil.simarm import SimArm
from armbus.joints.control import ControlCore
from armbus.joints.node import JointNode

JOINTS = 6
NAMES = [f"joint{a}" for a in range(1, JOINTS + 1)]
#: A joint's control period (1 kHz): how old a sample can be when a record is built on a clean chain.
CONTROL_PERIOD_NS = 1_000_000
UNASSIGNED = int(Address.UNASSIGNED)


def pattern(index: int) -> dict[str, float]:
    """Goals of cycle ``index``: a different set of joints and different values from one cycle to the next, so
    that a record or a goal that strayed into another cycle shows (some cycles read only, some skip joint 1,
    some joint 6; values in 1 mrad steps)."""
    if index % 7 == 3:
        return {}
    lo = 2 if index % 3 == 1 else 1
    hi = JOINTS - 1 if index % 4 == 2 else JOINTS
    return {f"joint{a}": 0.001 * ((index * 7 + a) % 13) for a in range(lo, hi + 1)}


@dataclass
class Latch:
    t: int
    tag: int  # the cycle's msg_id
    goal: int  # wire units, as the control core holds it


@dataclass
class Rig:
    arm: SimArm
    sent: dict[int, tuple[int, Cycle]] = field(default_factory=dict)  # msg_id -> (sent_at, CYCLE)
    events: list[CycleReplied | CycleMissed] = field(default_factory=list)
    latches: dict[int, list[Latch]] = field(default_factory=lambda: defaultdict(list))
    ticks: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    views: list[CycleView] = field(default_factory=list)

    @property
    def host(self) -> HostNode:
        node = self.arm.runner.node
        assert isinstance(node, HostNode)
        return node

    def run(self, rate_hz: float, seconds: float | None = None, *, cycles: int | None = None,
            goals: Callable[[int], Mapping[str, float]] = pattern,
            during: Callable[[CycleView], None] | None = None, **options: object) -> CyclicReport:
        def callback(view: CycleView) -> Mapping[str, float]:
            self.views.append(view)
            if during is not None:
                during(view)
            return goals(view.index)

        return self.arm.cyclic(callback, rate_hz, **options).run(seconds, cycles=cycles)

    # --- what happened ----------------------------------------------------------------------------------------
    def replies(self) -> list[CycleReplied]:
        return [e for e in self.events if isinstance(e, CycleReplied)]

    def misses(self) -> list[CycleMissed]:
        return [e for e in self.events if isinstance(e, CycleMissed)]

    def skews(self) -> list[int]:
        """For every cycle that all joints latched, the spread of their latch instants (ns)."""
        at: dict[int, list[int]] = defaultdict(list)
        for latches in self.latches.values():
            for latch in latches:
                at[latch.tag].append(latch.t)
        return [max(ts) - min(ts) for ts in at.values() if len(ts) == JOINTS]

    def sample_errors(self) -> list[int]:
        """For every record, its sample instant as the host placed it minus the joint's true sample instant (the
        latest control tick before the host's figure; ns). Negative: the host's age is too large."""
        out = []
        for ev in self.replies():
            for s in ev.samples:
                ticks = self.ticks[s.address]
                i = bisect.bisect_right(ticks, s.sampled_at + CONTROL_PERIOD_NS // 2)
                assert i > 0, f"joint {s.address}: a sample before any tick"
                true = ticks[i - 1]
                out.append(s.sampled_at - true)
        return out


def make_rig(rate_baud: tuple[int, int] = (500, 1_000_000), faults: LinkFaults | None = None, seed: int = 1,
             torque: bool = True, **options: Any) -> Rig:
    """A 6-joint simulated arm, enumerated, torque on, with everything recorded (``options``: VirtualArm's)."""
    _, baud = rate_baud
    arm = SimArm(joints=JOINTS, seed=seed, baud=baud, faults=faults, **options)
    arm.enumerate()
    if torque:
        arm.torque(True)
    rig = Rig(arm)
    host = rig.host
    send_cycle = host.cycle

    def spy(message: Cycle, now: int, timeout_ns: int) -> int:
        msg_id = send_cycle(message, now, timeout_ns)
        rig.sent[msg_id] = (now, message)
        return msg_id

    host.cycle = spy  # type: ignore[method-assign]
    for address, node in enumerate(arm.virtual_arm.joints, 1):
        _hook(rig, address, node)
    arm.add_listener(lambda ev: _keep(rig, ev))
    return rig


def _keep(rig: Rig, ev: HostEvent) -> None:
    if isinstance(ev, (CycleReplied, CycleMissed)):
        rig.events.append(ev)


def _hook(rig: Rig, address: int, node: JointNode) -> None:
    def attach(now: int) -> None:
        core: ControlCore = node.control
        core.latch_hooks.append(lambda t, tag: rig.latches[address].append(Latch(t, tag, core.goal)))
        core.tick_hooks.append(rig.ticks[address].append)

    attach(0)
    node.start_hooks.append(attach)  # a reboot builds a new control core


def expected_goals(message: Cycle, address: int, status: int) -> set[int]:
    """The goal outcomes a record may carry for ``message``: GOAL_NONE without a slice, else taken, or refused BUSY
    when the record says the joint is stopped (it may have stopped after taking this cycle's goal: the status is
    sampled on the way up, the outcome on the way down)."""
    if message.slice_for(address) is None:
        return {GOAL_NONE}
    if status & (StatusFlag.ESTOPPED | StatusFlag.WATCHDOG | StatusFlag.FAULT):
        return {GOAL_TAKEN, int(ErrorKind.BUSY)}
    return {GOAL_TAKEN}


def check_invariants(rig: Rig, report: CyclicReport, rate_hz: float) -> None:
    """What holds under any line fault: one outcome per cycle, cycles out at every deadline, no goal applied twice
    or under another cycle's id, every record in its own cycle's reply, newer states never replaced by older."""
    period = int(NS_PER_S / rate_hz)
    # 1. the runner kept its deadlines: one cycle per deadline, each sent at it
    assert report.deadlines_missed == 0
    assert report.cycles == len(rig.views) == len(rig.sent)
    sent_at = sorted(t for t, _ in rig.sent.values())
    assert sent_at == [v.deadline for v in rig.views]
    assert all(b - a == period for a, b in itertools.pairwise(sent_at))
    assert report.achieved_hz == rate_hz
    # 2. exactly one CycleReplied or CycleMissed per cycle; a late reply only after a miss, at most once
    outcome: dict[int, list[str]] = defaultdict(list)
    for ev in rig.events:
        assert ev.msg_id in rig.sent and ev.sent_at == rig.sent[ev.msg_id][0]
        outcome[ev.msg_id].append("late" if isinstance(ev, CycleReplied) and ev.late else type(ev).__name__)
    assert set(outcome) == set(rig.sent)
    assert all(o in (["CycleReplied"], ["CycleMissed"], ["CycleMissed", "late"]) for o in outcome.values()), outcome
    replied = sum(o == ["CycleReplied"] for o in outcome.values())
    missed = sum(o[0] == "CycleMissed" for o in outcome.values())
    late = sum(o[-1] == "late" for o in outcome.values())
    assert (report.replied, report.missed, report.late) == (replied, missed, late)
    # 3. no goal applied twice, and each with the value its own cycle carried for that joint
    for address, latches in rig.latches.items():
        tags = [latch.tag for latch in latches]
        assert len(tags) == len(set(tags)), f"joint {address} applied a cycle's goal twice"
        for latch in latches:
            _, message = rig.sent[latch.tag]
            assert latch.goal == message.slice_for(address), f"joint {address}, cycle {latch.tag}"
    # 4. every record in a reply belongs to that reply's cycle: its goal outcome is the one of its own cycle (a late
    #    reply may come after the joint forgot the outcome: GOAL_NONE), its read is the cycle's span
    for ev in rig.replies():
        _, message = rig.sent[ev.msg_id]
        assert len({s.address for s in ev.samples}) == len(ev.samples)
        for s in ev.samples:
            assert len(s.data) == message.length and s.result >> 4 == READ_OK
            if s.address == UNASSIGNED:  # a rebooted joint, not addressed yet: it takes no goal
                assert s.result & 0xF == GOAL_NONE
                continue
            want = expected_goals(message, s.address, s.status)
            got = s.result & 0xF
            assert got in want or (ev.late and got == GOAL_NONE), (ev.msg_id, s.address, got, want)
            assert s.sampled_at <= ev.time
    # 5. what the callback saw: ages positive, and a joint's state never went back in time
    newest: dict[str, int] = {}
    for view in rig.views:
        for name, state in view.states.items():
            assert state.sampled_at < view.now
            assert state.sampled_at >= newest.get(name, state.sampled_at), f"{name} went back in time"
            newest[name] = state.sampled_at
