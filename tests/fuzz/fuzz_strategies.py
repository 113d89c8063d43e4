"""Hypothesis strategies for the fuzz targets: arbitrary bytes, and seeds with shrinkable mutations."""

from __future__ import annotations

from hypothesis import strategies as st

from armbus.tools.campaigns.fuzz_targets import FuzzTarget


def _apply(seed: bytes, edits: list[tuple[int, int]], cut: int, junk: bytes) -> bytes:
    d = bytearray(seed)
    for pos, value in edits:
        if d:
            d[pos % len(d)] = value
    if cut < len(d):
        del d[cut:]
    return bytes(d) + junk


def inputs(target: FuzzTarget, max_size: int = 600) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, or one of the target's valid seeds with a few bytes set, a cut and some junk appended."""
    mutated = st.builds(
        _apply,
        st.sampled_from(target.seeds()),
        st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=4),
        st.integers(0, 5000),
        st.binary(max_size=8),
    )
    return st.one_of(st.binary(max_size=max_size), mutated, st.sampled_from(target.seeds()))
