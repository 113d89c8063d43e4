"""Finding an arm's line rate: open the port at each supported rate and see whether joint 1 answers.

Theory of operation
-------------------
Joint 1's UP port runs at its stored rate (``up_baud``, :mod:`armbus.joints.rates`), which the host may not know:
the arm may have been switched by another program, or left at a rate by a switch whose host died. At any other
rate than joint 1's, what the host sends arrives as line noise and what joint 1 sends reads as garbage, so the
hop link's RESET handshake (docs/hoplink.md) is a probe that costs nothing but time: the host's RESET is
answered with RESET_ACK only at the right rate. :func:`scan` opens the port at each rate in turn
(:data:`armbus.bus.wire.DEFAULT_BAUD` first, the joints' factory rate, then the rest of
:data:`armbus.bus.wire.SUPPORTED_BAUDS`), waits up to ``probe_s`` for the link to open, and at the first rate
where it opens enumerates the chain (:class:`ScanResult`). A rate where the link opens but enumeration stays
unanswered is reported as such and the scan goes on.

Each probe reopens the port (the rate of a real adapter is set at open, as every serial program does); an
``armbus://`` URL builds a fresh virtual arm at every open, so scanning one only checks that it answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from armbus.bus.errors import ArmTimeoutError, PeerError, UsageError
from armbus.bus.wire import DEFAULT_BAUD, SUPPORTED_BAUDS
from armbus.controller.arm import Arm

#: How long one rate is given for the link handshake: the host's RESET and joint 1's RESET_ACK take well under
#: a millisecond, and the link counts as settled only after 30 ms without a further reset
#: (armbus.controller.arm.LINK_QUIET_NS); 0.25 s also covers a host behind a 16 ms FTDI latency timer.
PROBE_S = 0.25
#: Enumeration at the rate found: a few ms on a short chain, far more on 253 joints at 115200 baud.
ENUMERATE_S = 3.0


@dataclass(frozen=True)
class ScanResult:
    """Where the scan found the arm: ``baud`` (None: nowhere), its joint count, and what each rate gave."""

    port: str
    baud: int | None
    joints: int
    tried: dict[int, str] = field(default_factory=dict)  # rate -> "no answer", "N joints", "link only: ..."

    @property
    def found(self) -> bool:
        return self.baud is not None


def scan_order(rates: Sequence[int] | None = None) -> list[int]:
    """The rates to try, the joints' default first; refuses rates that are not supported."""
    chosen = list(SUPPORTED_BAUDS if rates is None else rates)
    bad = [r for r in chosen if r not in SUPPORTED_BAUDS]
    if bad or not chosen:
        listed = ", ".join(str(b) for b in SUPPORTED_BAUDS)
        raise UsageError(f"cannot scan at {bad or 'no rate'}: the supported rates are {listed}")
    return sorted(dict.fromkeys(chosen), key=lambda r: (r != DEFAULT_BAUD, chosen.index(r)))


def scan(port: str, rates: Sequence[int] | None = None, *, probe_s: float = PROBE_S,
         enumerate_s: float = ENUMERATE_S, on_rate: Callable[[int, str], None] | None = None) -> ScanResult:
    """Try ``rates`` (default: every supported rate) on ``port`` until joint 1 answers; see the module docstring.
    ``on_rate(baud, outcome)`` is told each rate's outcome as it is known."""
    tried: dict[int, str] = {}
    for baud in scan_order(rates):
        arm = Arm.open(port, baud, timeout=probe_s, settle_timeout=probe_s)
        try:
            if not arm.runner.node.link.is_open:
                outcome, joints = "no answer", 0
            else:
                try:
                    joints = len(arm.enumerate(enumerate_s))
                    outcome = f"{joints} joint(s)"
                except (ArmTimeoutError, PeerError) as exc:
                    outcome, joints = f"link opens, no enumeration ({exc})", 0
        finally:
            arm.close()
        tried[baud] = outcome
        if on_rate is not None:
            on_rate(baud, outcome)
        if joints:
            return ScanResult(port, baud, joints, tried)
    return ScanResult(port, None, 0, tried)
