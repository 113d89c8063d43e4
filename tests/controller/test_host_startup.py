"""A host's link nonces start at random at every open (docs/hoplink.md, "Start-up"): two programs opening the
same arm one after the other do not send the same first RESET."""

from __future__ import annotations

from armbus.controller.arm import Arm


def test_each_open_draws_its_own_first_nonce() -> None:
    nonces = set()
    for _ in range(8):
        with Arm.open("loop://", settle_timeout=0.0) as arm:
            nonces.add(arm.runner.node.link._nonce)
    assert len(nonces) >= 4  # eight draws of 256 nonces: three or fewer values come up once in 10^9 runs
