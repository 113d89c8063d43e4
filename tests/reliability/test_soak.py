"""A 2-simulated-second soak: 1 kHz sync-writes through link faults and joint reboots, checked at every joint."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from armbus.bus.messages import Enumerate, Undeliverable, make_packet
from armbus.bus.wire import NS_PER_MS as MS
from armbus.bus.wire import Address
from armbus.controller import ops
from armbus.hil.faults import LinkFaults
from armbus.tools.campaigns.soak import (
    SETTLE_NS,
    SOAK_FAULTS,
    Ledger,
    Sent,
    Soak,
    held_sync_writes,
    main,
    verdict,
)


def test_short_soak_no_duplicates_no_reorders_no_silent_loss() -> None:
    soak = Soak(2.0, seed=5, reboot_every_s=0.6)
    r = soak.run()
    g = r.ledger
    assert g.sent == 2000  # the 1 kHz loop kept its schedule through the recoveries
    assert r.counts["reboots"] >= 1 and r.counts["re-enumerations"] >= 1
    assert r.counts["fault drop_frame"] > 0 and r.counts["fault flip_bit"] > 0 and r.counts["fault dup_frame"] > 0
    assert g.duplicates == 0 and g.reordered == 0
    assert g.lost_silent == 0
    assert g.delivered_all + g.lost_reported + g.lost_in_reboot == g.sent  # every message settled
    assert g.deliveries >= 0.75 * g.sent * 6  # a reboot of joint 1 costs ~150 ms of goals (reported)
    assert not g.pending and len(g.seq_of) <= g.sent


def test_clean_links_deliver_everything() -> None:
    lines: list[str] = []
    r = Soak(0.5, seed=2, faults=LinkFaults(), reboot_every_s=1e6, progress=lines.append).run()
    g = r.ledger
    assert g.sent >= 490 and g.delivered_all == g.sent and g.deliveries == 6 * g.sent
    assert [line.split(":")[0] for line in lines] == [f"quarter {q}/4" for q in (1, 2, 3, 4)]
    assert "silent 0" in lines[-1] and "reboots 0" in lines[-1]


def test_ledger_flags_duplicates_and_reorders() -> None:
    """The checker itself: a replayed and an out-of-order delivery are caught (so zeros above mean something)."""
    g = Ledger(2)
    for msg_id in (10, 11, 12):
        g.on_send(msg_id, 0)
    g.on_delivery(0, 10)
    g.on_delivery(0, 12)
    g.on_delivery(0, 12)  # duplicate
    g.on_delivery(0, 11)  # late: reordered
    assert (g.duplicates, g.reordered) == (1, 1)
    g.on_report(11, 1)
    g.settle(SETTLE_NS + MS)
    assert g.delivered_all == 0 and g.lost_reported == 1 and g.lost_silent == 2


def test_soak_faults_are_mixed() -> None:
    assert SOAK_FAULTS.drop_frame and SOAK_FAULTS.flip_bit and SOAK_FAULTS.dup_frame and SOAK_FAULTS.delay


def test_a_loss_counts_as_lost_in_a_reboot_only_if_a_joint_above_held_it() -> None:
    """Exact attribution: what the rebooted joint held, by msg_id, and only for the joints below it."""
    g = Ledger(4)
    for msg_id in (7, 8, 9):
        g.on_send(msg_id, 0)
    for msg_id in (7, 8, 9):
        g.on_delivery(0, msg_id)
        g.on_delivery(1, msg_id)
    g.on_reboot(1, [7])  # joint index 1 held 7 (queued toward index 2) when it rebooted
    g.on_reboot(2, [8])  # index 2 "held" 8, which index 2 itself never got: not an excuse
    g.on_reboot(3, [99])  # an unknown msg_id is ignored
    g.settle(SETTLE_NS + MS)
    assert (g.lost_in_reboot, g.lost_silent) == (1, 2)  # 8 and 9: a reboot at the same time excuses nothing


def test_a_report_from_an_unassigned_joint_covers_every_joint() -> None:
    """A joint that rebooted reports as UNASSIGNED until it is enumerated again: the host cannot place it."""
    g = Ledger(3)
    g.on_send(5, 0)
    g.on_delivery(0, 5)
    g.on_report(5, int(Address.UNASSIGNED))
    g.settle(SETTLE_NS + MS)
    assert (g.lost_reported, g.lost_silent) == (1, 0)


def test_held_sync_writes_reads_the_queues_the_flight_and_the_reports_of_a_joint() -> None:
    goal = ops.sync_write_goals({1: 0.1})
    sw = [make_packet(goal, src=0, dst=int(Address.BROADCAST), msg_id=i) for i in (11, 12, 13)]
    other = make_packet(Enumerate(), src=0, dst=int(Address.BROADCAST), msg_id=14)
    report = make_packet(Undeliverable(reporter=3, next_hop=4, orig_src=0, orig_dst=255, orig_type=int(sw[0].type),
                                       orig_msg_id=15, reason=1), src=3, dst=0, msg_id=15)
    up = SimpleNamespace(queued=(report,), inflight=None)
    down = SimpleNamespace(queued=(sw[1], other), inflight=sw[0])
    joint = SimpleNamespace(links=[up, down], router=SimpleNamespace(backlog=[sw[2]]))
    assert sorted(held_sync_writes(joint)) == [11, 12, 13, 15]  # type: ignore[arg-type]


def test_trace_silent_prints_what_happened_around_a_loss_and_forgets_the_rest(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--trace-silent`` keeps the reboots and failure reports only as long as a pending message can need them."""
    soak = Soak(2.5, seed=5, reboot_every_s=0.3, trace_silent=True)
    r = soak.run()
    assert soak.history is not None
    kept = [t for t, what in soak.history if what.startswith("REBOOT")]
    assert 0 < len(kept) < r.counts["reboots"]  # the early ones were pruned ...
    t0 = soak.t_end - soak.duration
    assert min(t for t, _ in soak.history) >= t0 + 2000 * MS - 3 * SETTLE_NS  # ... at the last settle, 2 s in
    soak._print_silent(Sent(1, kept[-1], {0}, msg_id=9), {1, 2})  # a loss right at the last reboot kept
    out = capsys.readouterr().out
    assert "SILENT seq 1 msg_id 9" in out and "missing joint indexes [1, 2]" in out and "+0.000 ms  REBOOT" in out


def test_planned_reboots_two_joints_close_together() -> None:
    """Joint 2 reboots, and joint 5 just as the host's enumeration after it passes joint 4: the chain heals (two
    enumerations, all six joints found again) and nothing is lost without a report."""
    r = Soak(1.0, seed=3, reboots=[(0.200, 1), (0.245, 4)]).run()
    g = r.ledger
    assert r.counts["reboots"] == 2 and r.counts["re-enumerations"] == 2
    assert g.lost_silent == 0 and g.duplicates == 0 and g.reordered == 0
    assert g.delivered_all + g.lost_reported + g.lost_in_reboot == g.sent == 1000


@pytest.mark.parametrize("bad", ["1:9", "x", "1", "-1:0", "1:"])
def test_cli_rejects_a_bad_reboot_plan(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--quick", "--reboot-at", bad])
    assert exc.value.code == 2 and "SECONDS:INDEX" in capsys.readouterr().err


def test_the_soak_runs_the_cyclic_exchange() -> None:
    """--cyclic: a CYCLE each millisecond at 3 Mbaud through the same faults and a reboot; every cycle has exactly
    one outcome at the host, and each joint sees the cycles once and in order."""
    r = Soak(1.0, seed=3, cyclic=True, reboots=[(0.4, 2)]).run()
    g = r.ledger
    assert g.sent == 1000 and r.outcomes == g.sent
    assert r.counts["cycles replied"] >= 900 and r.counts["cycles missed"] >= 1  # the reboot costs some
    assert g.duplicates == g.reordered == g.lost_silent == 0
    assert g.delivered_all + g.lost_reported + g.lost_in_reboot == g.sent
    assert r.counts["sync-reads"] == 0  # the cycle reads the joints back: no SYNC_READ in cyclic mode
    assert verdict(r, 95.0) == []
