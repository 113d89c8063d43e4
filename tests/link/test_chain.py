"""Chains of relay nodes in the simulation kernel: loss, corruption, duplication and reboots, end to end.

The full 100,000-message run takes minutes on this machine; it runs with ARMBUS_LONG=1 (and in
``python -m armbus.tools.bench.link``). By default the same test runs a smaller count.
"""

from __future__ import annotations

import os
import random

import pytest

from armbus.bus.link import LinkConfig
from armbus.hil.faults import LinkFaults
from armbus.hil.relaychain import DOWNSTREAM, UPSTREAM, build_chain, chain_busy

LONG = os.environ.get("ARMBUS_LONG") == "1"
#: ChainNode reboots instantly (no boot time of its own): the link keeps the boot silence itself.
CFG = LinkConfig(baud=1_000_000, boot_quiet_ns=None)
#: 5 % frames lost, 1 % duplicated, and ~1 % of frames corrupted (one flipped bit per ~100 frames of ~15 bytes).
FAULTS = LinkFaults(drop_frame=0.05, dup_frame=0.01, flip_bit=0.01 / 15)


def run(kernel, nodes, limit_s: float = 600.0) -> None:  # type: ignore[no-untyped-def]
    end = int(limit_s * 1e9)
    while chain_busy(nodes) and kernel.now < end:
        kernel.run_for(20_000_000)
    kernel.run_for(500_000_000)  # let the last reports arrive


def test_clean_chain_delivers_everything_in_order() -> None:
    kernel, nodes, ledger = build_chain(6, config=CFG, per_stream=(300, 300))
    run(kernel, nodes)
    assert ledger.check() == []
    assert ledger.delivered[DOWNSTREAM] == list(range(300))
    assert ledger.delivered[UPSTREAM] == list(range(300))
    assert all(link.counters.retransmits == 0 for n in nodes for link in n.links if link is not None)


def test_six_hop_chain_under_faults(armbus_seed: int) -> None:
    n = 50_000 if LONG else 2_000  # per stream: 100,000 messages in all with ARMBUS_LONG=1
    kernel, nodes, ledger = build_chain(6, config=CFG, faults=FAULTS, seed=armbus_seed, per_stream=(n, n))
    run(kernel, nodes, limit_s=3600.0)
    assert ledger.check() == []
    assert ledger.sent == {DOWNSTREAM: n, UPSTREAM: n}
    links = [link for node in nodes for link in node.links if link is not None]
    assert sum(link.counters.retransmits for link in links) > 0
    assert sum(link.counters.duplicates for link in links) > 0
    assert sum(link.counters.crc_errors + link.counters.framing_errors for link in links) > 0
    counts = kernel.faults.counts()
    assert counts["drop_frame"] > 0 and counts["dup_frame"] > 0 and counts["flip_bit"] > 0
    # every give-up was reported: what did not arrive is in the reports
    for stream in (DOWNSTREAM, UPSTREAM):
        missing = set(range(n)) - set(ledger.delivered[stream])
        assert missing <= ledger.reported[stream]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reboots_mid_stream(seed: int) -> None:
    """Relays reboot at random moments: links resync; nothing is duplicated or reordered, and every message
    that did not arrive was reported or was inside the rebooted node when it lost its memory."""
    rng = random.Random(seed)
    kernel, nodes, ledger = build_chain(4, config=CFG, faults=FAULTS, seed=seed, per_stream=(600, 600))
    reboots = 0
    for _ in range(12):
        kernel.run_for(rng.randrange(1_000_000, 40_000_000))
        victim = nodes[rng.randrange(1, len(nodes))]
        for p in victim.reboot():
            ledger.account_lost(p)
        kernel.wake(f"n{victim.address}")
        reboots += 1
    run(kernel, nodes)
    assert ledger.check() == []
    assert reboots == 12
    resets = sum(link.counters.resets_accepted for node in nodes for link in node.links if link is not None)
    assert resets >= 1
    delivered = len(ledger.delivered[DOWNSTREAM]) + len(ledger.delivered[UPSTREAM])
    assert delivered > 1000  # the chain keeps working between reboots
