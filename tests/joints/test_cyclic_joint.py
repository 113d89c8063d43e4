"""The joint's part in the cyclic exchange (joints/cyclic.py), on the zero-latency bench (joint_bench.py): slices
taken going down, records appended going up, and the edge cases: an unaddressed joint, the chain end, a forward
that fails, a reply that no longer fits, goals and reads the joint refuses, a stop."""

from __future__ import annotations

from joint_bench import MS, Bench

from armbus.bus.cycle import GOAL_NONE, GOAL_TAKEN, NO_GOALS, READ_OK, Cycle, CycleReply
from armbus.bus.messages import Enumerate, EnumerateReply, EStop, Message, Undeliverable, Write, make_packet
from armbus.bus.wire import (
    Address,
    ErrorKind,
    GoalMode,
    StatusFlag,
    UndeliverableReason,
    data_wire_size,
    wire_time_ns,
)
from armbus.joints.control import ControlCore
from armbus.joints.cyclic import RESULTS_KEPT, lead_ns, record
from armbus.joints.node import FORWARD_LATENCY_NS
from armbus.joints.registers import BY_NAME, POSITION_BOUND, VELOCITY_BOUND

BCAST = Address.BROADCAST
UNASSIGNED = int(Address.UNASSIGNED)
POSITION = int(GoalMode.POSITION)
PRESENT = BY_NAME["present_position"].address
US = 1_000


def chain(n: int = 3) -> tuple[Bench, dict[int, list[tuple[int, int, int]]]]:
    """``n`` enumerated joints, and every cyclic goal each one latches: address -> [(instant, tag, goal)]."""
    b = Bench(n)
    mid = b.request(Enumerate(), dst=BCAST, run_ms=10)
    assert isinstance(b.reply(mid), EnumerateReply)
    latched: dict[int, list[tuple[int, int, int]]] = {a: [] for a in range(1, n + 1)}
    for a, node in enumerate(b.nodes, 1):
        _watch(node.control, latched[a])
    return b, latched


def _watch(core: ControlCore, into: list[tuple[int, int, int]]) -> None:
    core.latch_hooks.append(lambda t, tag: into.append((t, tag, core.goal)))


def cycle_reply(b: Bench, msg_id: int) -> CycleReply:
    got = [m for m in b.replies(msg_id) if isinstance(m, CycleReply)]
    assert len(got) == 1, b.replies(msg_id)
    return got[0]


def exchange(b: Bench, message: Message, run_ms: int = 5) -> tuple[int, CycleReply]:
    mid = b.request(message, dst=BCAST, run_ms=run_ms)
    return mid, cycle_reply(b, mid)


def test_lead_is_the_wire_time_of_the_shrinking_frame_still_ahead() -> None:
    """Two joints below with slices: the frame with 2 slices (5 + 8 payload bytes, 27 on the wire) then with 1 (23),
    each after one forwarding latency: 270 + 10 + 230 + 10 us at 1 Mbaud."""
    assert data_wire_size(13) == 27 and data_wire_size(9) == 23
    assert lead_ns(2, 1_000_000, 10 * US) == 520 * US
    assert lead_ns(1, 3_000_000, 10 * US) == wire_time_ns(23, 3_000_000) + 10 * US
    assert lead_ns(0, 1_000_000, 10 * US) == 0


def test_each_joint_takes_its_slice_and_all_latch_when_the_last_has_its_frame() -> None:
    b, latched = chain(3)
    t0 = b.now
    mid, reply = exchange(b, Cycle(PRESENT, 4, POSITION, 1, (100, 200, 300)))
    assert [r.address for r in reply.records] == [3, 2, 1]  # chain end first
    assert all(r.goal_result == GOAL_TAKEN and r.read_result == READ_OK for r in reply.records)
    assert [[(tag, goal) for _, tag, goal in latched[a]] for a in (1, 2, 3)] == [
        [(mid, 100)], [(mid, 200)], [(mid, 300)]]
    # the bench's wires take no time, so every joint got the frame at once: each latched its lead later
    t3 = latched[3][0][0]
    assert t3 >= t0
    assert latched[2][0][0] - t3 == lead_ns(1, 1_000_000, FORWARD_LATENCY_NS)
    assert latched[1][0][0] - t3 == lead_ns(2, 1_000_000, FORWARD_LATENCY_NS)
    assert [n.counters.cycle_goals for n in b.nodes] == [1, 1, 1]
    assert [n.counters.cycle_replies for n in b.nodes] == [0, 0, 1]  # the chain end started the reply
    # the records' ages: since each joint's last sensor sample, at most one control period
    assert all(0 <= r.age_us <= 1000 for r in reply.records)


def test_a_read_only_cycle_and_joints_without_a_slice_say_goal_none() -> None:
    b, latched = chain(3)
    read_only = Cycle(PRESENT, 4)
    assert read_only.mode == NO_GOALS
    _, reply = exchange(b, read_only)
    assert [r.goal_result for r in reply.records] == [GOAL_NONE] * 3
    _, reply = exchange(b, Cycle(PRESENT, 4, POSITION, 2, (7,)))  # joint 2 only
    assert {r.address: r.goal_result for r in reply.records} == {3: GOAL_NONE, 2: GOAL_TAKEN, 1: GOAL_NONE}
    assert [len(latched[a]) for a in (1, 2, 3)] == [0, 1, 0]


def test_an_unaddressed_joint_forwards_the_cycle_unchanged() -> None:
    """Joint 2 rebooted and lost its address: it takes no slice and passes the whole rest on, so joint 3 still
    gets its own; its record says UNASSIGNED."""
    b, latched = chain(3)
    b.nodes[1].reboot(b.now)
    b.run(300 * MS)
    assert b.nodes[1].address == UNASSIGNED
    latched[2].clear()
    mid, reply = exchange(b, Cycle(PRESENT, 4, POSITION, 1, (11, 22, 33)), run_ms=20)
    assert [r.address for r in reply.records] == [3, UNASSIGNED, 1]
    assert [r.goal_result for r in reply.records] == [GOAL_TAKEN, GOAL_NONE, GOAL_TAKEN]
    assert latched[3][-1][1:] == (mid, 33) and latched[1][-1][1:] == (mid, 11)
    assert b.nodes[1].control.goals_latched == 0


def test_a_forward_that_fails_starts_the_reply_with_the_records_so_far() -> None:
    b, latched = chain(3)
    b.connected = 2  # the cable below joint 2 is cut: its forward runs out of retries
    mid, reply = exchange(b, Cycle(PRESENT, 4, POSITION, 1, (1, 2, 3)), run_ms=500)
    assert [r.address for r in reply.records] == [2, 1]
    assert b.nodes[1].counters.cycle_replies == 1
    assert [len(latched[a]) for a in (1, 2, 3)] == [1, 1, 0]
    # once the link below is known dead, joint 2 answers at once and latches at once
    b.run(3000 * MS)
    t0 = b.now
    mid, reply = exchange(b, Cycle(PRESENT, 4, POSITION, 1, (4, 5, 6)))
    assert [r.address for r in reply.records] == [2, 1]
    assert latched[2][-1][1:] == (mid, 5) and latched[2][-1][0] - t0 < 100 * US


def test_a_reply_too_long_for_one_frame_goes_on_without_the_record() -> None:
    """Reading 80 bytes, a record takes 85: three of them and the header are 258 bytes, over the 255 a frame
    carries. Joint 1 passes the reply on with the two records it got and counts it."""
    b, _ = chain(3)
    _, reply = exchange(b, Cycle(0, 80))
    assert [r.address for r in reply.records] == [3, 2]
    assert [n.counters.cycle_overflow for n in b.nodes] == [1, 0, 0]


def test_a_record_longer_than_a_frame_is_reported_undeliverable() -> None:
    b, _ = chain(3)
    mid = b.request(Cycle(0, 251), dst=BCAST)
    got = b.replies(mid)
    assert len(got) == 1 and isinstance(got[0], Undeliverable)
    assert (got[0].reporter, got[0].reason) == (3, UndeliverableReason.NO_ROUTE)


def test_goals_outside_the_register_range_or_of_an_unknown_mode_are_refused_limit() -> None:
    b, latched = chain(3)
    goals = (POSITION_BOUND + 1, 5, -POSITION_BOUND - 1)
    _, reply = exchange(b, Cycle(PRESENT, 4, POSITION, 1, goals))
    assert {r.address: r.goal_result for r in reply.records} == {1: ErrorKind.LIMIT, 2: GOAL_TAKEN, 3: ErrorKind.LIMIT}
    _, reply = exchange(b, Cycle(PRESENT, 4, int(GoalMode.VELOCITY), 1, (VELOCITY_BOUND, VELOCITY_BOUND + 1, 0)))
    assert {r.address: r.goal_result for r in reply.records} == {1: GOAL_TAKEN, 2: ErrorKind.LIMIT, 3: GOAL_TAKEN}
    _, reply = exchange(b, Cycle(PRESENT, 4, 9, 1, (1, 2, 3)))  # mode 9: no such goal mode
    assert all(r.goal_result == ErrorKind.LIMIT for r in reply.records)
    assert [len(latched[a]) for a in (1, 2, 3)] == [1, 1, 1]
    assert [n.counters.cycle_refused for n in b.nodes] == [2, 2, 2]


def test_a_bad_read_span_sets_the_read_nibble_and_sends_zeros() -> None:
    b, _ = chain(3)
    _, reply = exchange(b, Cycle(0xFFF0, 4, POSITION, 1, (1, 2, 3)))
    assert all(r.read_result == ErrorKind.RANGE and r.data == bytes(4) for r in reply.records)
    assert all(r.goal_result == GOAL_TAKEN for r in reply.records)  # the goal and the read are apart


def test_an_estopped_joint_refuses_goals_busy_until_released() -> None:
    b, latched = chain(3)
    b.request(EStop(1), dst=BCAST, run_ms=20)
    _, reply = exchange(b, Cycle(PRESENT, 4, POSITION, 1, (1, 2, 3)))
    assert all(r.goal_result == ErrorKind.BUSY and r.status & StatusFlag.ESTOPPED for r in reply.records)
    assert all(not ls for ls in latched.values())
    for a in (1, 2, 3):
        b.request(Write(BY_NAME["estop"].address, b"\x00"), dst=a)
    mid, reply = exchange(b, Cycle(PRESENT, 4, POSITION, 1, (1, 2, 3)))
    assert all(r.goal_result == GOAL_TAKEN and not r.status & StatusFlag.ESTOPPED for r in reply.records)
    assert all(ls[-1][1] == mid for ls in latched.values())


def test_a_stop_clears_a_goal_not_yet_latched() -> None:
    """Joint 1 latches 520 us after it took its slice; an ESTOP right behind the CYCLE comes first."""
    b, latched = chain(3)
    cycle = make_packet(Cycle(PRESENT, 4, POSITION, 1, (1, 2, 3)), Address.HOST, BCAST, 900)
    stop = make_packet(EStop(1), Address.HOST, BCAST, 901)
    assert b.host.send(cycle, b.now) and b.host.send(stop, b.now, urgent=True)
    b.run(20 * MS)
    assert latched[1] == []
    assert b.nodes[0].control.state.status & StatusFlag.ESTOPPED


def test_a_joint_remembers_goal_outcomes_of_the_last_cycles_only() -> None:
    b, _ = chain(1)
    node = b.nodes[0]
    first = b.request(Cycle(PRESENT, 4, POSITION, 1, (5,)), dst=BCAST, run_ms=1)
    assert record(node, PRESENT, 4, first, b.now).goal_result == GOAL_TAKEN
    for _ in range(RESULTS_KEPT):
        b.request(Cycle(PRESENT, 4), dst=BCAST, run_ms=1)
    assert len(node.cycle_results) == RESULTS_KEPT
    assert record(node, PRESENT, 4, first, b.now).goal_result == GOAL_NONE  # forgotten: says no goal


def test_a_goal_waiting_in_the_slot_across_a_stop_and_release_is_never_applied() -> None:
    """A goal posted to be latched later (a long chain, a slow line) when an e-stop comes, and the joint released
    before its instant: the stop emptied the slot, so the release makes nothing jump."""
    b, latched = chain(1)
    node = b.nodes[0]
    node.control.post_goal(POSITION, 400_000, b.now + 50 * MS, 77)
    b.request(EStop(1), dst=BCAST, run_ms=2)
    b.request(Write(BY_NAME["estop"].address, b"\x00"), dst=1, run_ms=2)
    assert not node.control.state.status & StatusFlag.ESTOPPED
    b.run(100 * MS)
    assert latched[1] == [] and node.control.goal != 400_000
