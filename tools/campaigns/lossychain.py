"""Endurance run of the hop link: a long chain of relays under loss, corruption and duplication on every link.

Theory of operation
-------------------
``python -m armbus.tools.campaigns.lossychain --messages 1000000`` builds the relay chain of
:mod:`armbus.hil.relaychain` (a host and
``--hops`` relay joints, each a pair of hop links and a router, in the simulation kernel at 1 Mbaud) with
:data:`LOSSY` faults on every link direction: 5 % of frames dropped, 1 % duplicated, and bits flipped at a rate
that corrupts about 1 % of frames. Half the messages run host -> last joint, half last joint -> host, under
continuous load. Every message carries a 32-bit counter, so the run can judge each one at the end:

* delivered: the destination's router handed it up; the counters must arrive strictly increasing per stream
  (a counter seen twice is a duplicate, a smaller new one is reordered: both must be 0);
* failed and reported: not delivered, and its originator either gave up itself (DeliveryFailed) or received an
  UNDELIVERABLE naming it from the hop that did;
* lost silently: neither. Must be 0.

Relays also reboot (``--reboot-every-s S``, default :data:`REBOOT_EVERY_S`: a seeded random relay, exponential
gaps of mean S simulated seconds; 0 for none): a rebooted relay loses what it held (its queues, the frame in
flight, its reports), and exactly those messages, recorded at the instant of the reboot, are judged "lost in a
reboot" instead of silent (the rebooted node cannot report what it forgot).

The fault decision log is folded into counters every simulated second so memory stays flat; the link counters of
every endpoint (retransmissions, duplicates suppressed, CRC and framing errors, give-ups) are summed for the
report. Exit status 0 when nothing was lost silently, duplicated or reordered and every stream delivered at least
:data:`MIN_DELIVERED_PERCENT` of its messages, 1 otherwise, with a line naming each broken claim
(:func:`verdict`). ``--loss F`` replaces the mix by F of frames dropped on every link direction.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass

from armbus.bus.errors import ExitCode
from armbus.bus.link import LinkConfig
from armbus.bus.wire import NS_PER_S
from armbus.hil.faults import LinkFaults
from armbus.hil.kernel import Kernel
from armbus.hil.relaychain import DOWNSTREAM, UPSTREAM, ChainNode, Ledger, build_chain, chain_busy

#: The campaign's lossy link: 5 % frames lost, 1 % duplicated, ~1 % corrupted (one flipped bit per ~100 frames of
#: ~15 bytes on the wire).
LOSSY = LinkFaults(drop_frame=0.05, dup_frame=0.01, flip_bit=0.01 / 15)
#: The relays reboot instantly in this model, so the link keeps no boot silence of its own.
CONFIG = LinkConfig(baud=1_000_000, boot_quiet_ns=None)
#: Mean simulated seconds between relay reboots in the command-line run (a seeded random relay each time).
REBOOT_EVERY_S = 10.0
#: Simulated time between progress lines and log folds.
STEP_NS = 1 * NS_PER_S
#: After the last message left its source: time for the last retransmissions and reports to arrive.
DRAIN_NS = NS_PER_S // 2


@dataclass
class StreamVerdict:
    """How one stream's messages ended."""

    sent: int
    delivered: int
    duplicates: int
    reordered: int
    reported: int
    lost_in_reboot: int
    silent: int

    @staticmethod
    def judge(ledger: Ledger, stream: str) -> StreamVerdict:
        got = ledger.delivered[stream]
        seen: set[int] = set()
        dups = reord = 0
        top = -1
        for c in got:
            if c in seen:
                dups += 1
            elif c < top:
                reord += 1
            seen.add(c)
            top = max(top, c)
        missing = set(range(ledger.sent[stream])) - seen
        reported = missing & ledger.reported[stream]
        in_reboot = (missing - reported) & ledger.lost_in_reboot[stream]
        silent = missing - reported - in_reboot
        return StreamVerdict(ledger.sent[stream], len(seen), dups, reord, len(reported), len(in_reboot),
                             len(silent))


def link_counters(nodes: list[ChainNode]) -> Counter[str]:
    """Every link endpoint's counters, summed over the chain."""
    total: Counter[str] = Counter()
    for node in nodes:
        for link in node.links:
            if link is not None:
                total.update(dataclasses.asdict(link.counters))
    return total


def run(messages: int, *, hops: int = 6, seed: int = 1, faults: LinkFaults = LOSSY, reboot_every_s: float = 0.0,
        progress: bool = True) -> dict[str, object]:
    """Run ``messages`` (half each way) through the chain; returns the report as a dict."""
    each = messages // 2
    kernel, nodes, ledger = build_chain(hops, config=CONFIG, faults=faults, seed=seed,
                                        per_stream=(each, messages - each))
    wall0 = time.perf_counter()
    reboots = _drive(kernel, nodes, ledger, progress, reboot_every_s, random.Random(seed))
    wall = time.perf_counter() - wall0
    verdicts = {s: StreamVerdict.judge(ledger, s) for s in (DOWNSTREAM, UPSTREAM)}
    return {
        "hops": hops, "seed": seed, "messages": messages, "faults": repr(faults),
        "simulated_s": round(kernel.now / NS_PER_S, 3), "wall_s": round(wall, 1), "reboots": reboots,
        "streams": {s: vars(v) for s, v in verdicts.items()},
        "link_counters": dict(sorted(link_counters(nodes).items())),
        "fault_decisions": dict(sorted(kernel.faults.counts().items())),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _drive(kernel: Kernel, nodes: list[ChainNode], ledger: Ledger, progress: bool, reboot_every_s: float,
           rng: random.Random) -> int:
    """Run until every message is settled, rebooting relays on the way; returns the number of reboots."""
    wall0 = time.perf_counter()
    reboots = 0

    def gap() -> int:
        return max(1, int(rng.expovariate(1.0 / reboot_every_s) * NS_PER_S)) if reboot_every_s > 0 else 1 << 62

    next_reboot = kernel.now + gap()
    while chain_busy(nodes):
        step_end = kernel.now + STEP_NS
        while next_reboot <= step_end:
            kernel.run_until(next_reboot)
            victim = nodes[rng.randrange(1, len(nodes))]
            for packet in victim.reboot():
                ledger.account_lost(packet)
            kernel.wake(f"n{victim.address}")
            reboots += 1
            next_reboot += gap()
        kernel.run_until(step_end)
        kernel.faults.fold_log()
        if progress:
            done = len(ledger.delivered[DOWNSTREAM]) + len(ledger.delivered[UPSTREAM])
            print(f"  {kernel.now / NS_PER_S:7.0f} simulated s  {time.perf_counter() - wall0:7.0f} wall s  "
                  f"delivered {done:,}", file=sys.stderr, flush=True)
    kernel.run_for(DRAIN_NS)
    return reboots


#: The delivery claim: each stream delivers at least this share of its messages, in percent. With retransmission a
#: hop gives a frame up only after max_retries (10) lost round trips: at 5 % loss no message fails, at 20 % about
#: 1 in 10,000; a reboot loses what the relay held (a few messages). Without retransmission 5 % loss on 6 hops
#: fails about half of them.
MIN_DELIVERED_PERCENT = 99.0


def verdict(report: dict[str, object], min_delivered_percent: float = MIN_DELIVERED_PERCENT) -> list[str]:
    """The claims of the run, each broken one as a line naming it; empty when every claim holds."""
    streams = report["streams"]
    assert isinstance(streams, dict)
    broken = []
    for name, v in streams.items():
        if v["silent"]:
            broken.append(f"{name}: no silent loss: {v['silent']:,} messages neither delivered, nor reported, nor "
                          f"held by a relay when it rebooted")
        if v["duplicates"]:
            broken.append(f"{name}: no duplicate: {v['duplicates']:,} messages delivered more than once")
        if v["reordered"]:
            broken.append(f"{name}: no reordering: {v['reordered']:,} messages delivered after a newer one")
        share = 100 * v["delivered"] / max(v["sent"], 1)
        if share < min_delivered_percent:
            broken.append(f"{name}: delivery rate: {share:.3f} % delivered, below the bound of "
                          f"{min_delivered_percent} %")
    return broken


def failed(report: dict[str, object], min_delivered_percent: float = MIN_DELIVERED_PERCENT) -> bool:
    return bool(verdict(report, min_delivered_percent))


def print_report(r: dict[str, object], min_delivered_percent: float = MIN_DELIVERED_PERCENT) -> None:
    print(f"lossy chain: {r['hops']} hops, 1 Mbaud, {r['messages']:,} messages (half each way), seed {r['seed']}")
    print(f"  faults on every link direction: {r['faults']}")
    print(f"  {r['simulated_s']} simulated s in {r['wall_s']} wall s, peak RSS {r['peak_rss_mb']} MB, "
          f"{r['reboots']} relay reboots")
    streams = r["streams"]
    assert isinstance(streams, dict)
    print(f"  {'stream':10s} {'sent':>10s} {'delivered':>10s} {'reported':>9s} {'in reboot':>9s} {'silent':>7s} "
          f"{'dup':>5s} {'reorder':>7s}")
    for name, v in streams.items():
        print(f"  {name:10s} {v['sent']:10,d} {v['delivered']:10,d} {v['reported']:9,d} {v['lost_in_reboot']:9,d} "
              f"{v['silent']:7d} {v['duplicates']:5d} {v['reordered']:7d}")
    print(f"  link counters (all endpoints): {r['link_counters']}")
    print(f"  fault decisions: {r['fault_decisions']}")
    for line in verdict(r, min_delivered_percent):
        print(f"  FAILED claim: {line}")
    if not failed(r, min_delivered_percent):
        print(f"  verdict: 0 lost without report, 0 duplicated, 0 reordered, at least {min_delivered_percent} % "
              f"delivered on each stream")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m armbus.tools.campaigns.lossychain",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000, help="messages in all, half each way "
                    "(default 1,000,000)")
    ap.add_argument("--hops", type=int, default=6, help="relay joints in the chain (default 6)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reboot-every-s", type=float, default=REBOOT_EVERY_S,
                    help=f"mean simulated seconds between relay reboots (default {REBOOT_EVERY_S:g}; 0: none)")
    ap.add_argument("--quick", action="store_true", help="10,000 messages")
    ap.add_argument("--loss", type=float, default=None, metavar="FRACTION",
                    help="frames dropped on every link direction instead of the LOSSY mix (e.g. 0.2)")
    ap.add_argument("--min-delivered", type=float, default=MIN_DELIVERED_PERCENT, metavar="PERCENT",
                    help=f"fail when a stream delivers less (default {MIN_DELIVERED_PERCENT})")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    if args.messages < 2 or args.hops < 1:
        ap.error("--messages must be at least 2 and --hops at least 1")
    if not args.reboot_every_s >= 0:  # also refuses nan
        ap.error("--reboot-every-s must be 0 (no reboots) or positive")
    if args.loss is not None and not 0 <= args.loss < 1:
        ap.error("--loss must be a fraction in [0, 1)")
    faults = LOSSY if args.loss is None else LinkFaults(drop_frame=args.loss)
    report = run(10_000 if args.quick else args.messages, hops=args.hops, seed=args.seed, faults=faults,
                 reboot_every_s=args.reboot_every_s, progress=not args.json)
    if args.json:
        report["verdict"] = verdict(report, args.min_delivered)
        print(json.dumps(report, indent=2))
    else:
        print_report(report, args.min_delivered)
    return ExitCode.FAILED if failed(report, args.min_delivered) else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
