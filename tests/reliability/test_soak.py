"""A 2-simulated-second soak: 1 kHz sync-writes through link faults and joint reboots, checked at every joint."""

from __future__ import annotations

import pytest

from armbus.bus.wire import NS_PER_MS as MS
from armbus.hil.faults import LinkFaults
from armbus.tools.campaigns.soak import SETTLE_NS, SOAK_FAULTS, Ledger, Soak, _Sent, main


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


def test_ledger_keeps_a_reboot_until_the_messages_after_it_are_judged() -> None:
    """A message sent just after a reboot is judged up to 2 * SETTLE_NS after the reboot (settle runs once a
    simulated second): the reboot must still be on file then, or the loss it caused is counted silent."""
    g = Ledger(3)
    g.reboots.append((400 * MS, 1))  # joint index 1 reboots ...
    g.on_send(7, 450 * MS)  # ... and the next goal reaches joint index 0 only
    g.on_delivery(0, 7)
    g.settle(500 * MS)  # too early to judge it
    assert g.pending
    g.settle(1500 * MS)  # judged now, 1.1 s after the reboot
    assert (g.lost_in_reboot, g.lost_silent) == (1, 0)
    g.on_send(8, 1600 * MS)  # long after the reboot: a loss is silent
    g.settle(3000 * MS)
    assert (g.lost_in_reboot, g.lost_silent) == (1, 1) and not g.reboots


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
    soak._print_silent(_Sent(1, kept[-1], {0}, msg_id=9), {1, 2})  # a loss right at the last reboot kept
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
