"""Findings of the fuzzers, kept as regression cases (inputs built here, not stored blobs)."""

from __future__ import annotations

import struct

import pytest

from armbus.hil.trace.pcapng import (
    BT_IDB,
    IF_NAME,
    IF_TSOFFSET,
    IF_TSRESOL,
    LINKTYPE_ARMBUS,
    _block,
    _options,
    shb_block,
)
from armbus.hil.trace.reader import parse_trace
from armbus.tools.campaigns.fuzz_targets import TraceTarget


def _idb(opts: list[tuple[int, bytes]]) -> bytes:
    return _block("<", BT_IDB, struct.pack("<HHI", LINKTYPE_ARMBUS, 0, 0) + _options("<", opts))


def _epb(t: int) -> bytes:
    body = struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, 3, 3) + b"\x01\x02\x00\x00"
    return _block("<", 6, body)


CAPTURES = {
    # microsecond resolution (the pcapng default when if_tsresol is absent) and a timestamp near 2**64 us
    "us-resolution-huge-timestamp": shb_block({}, "t") + _idb([(IF_NAME, b"l:a>b")]) + _epb(2**64 - 1),
    # nanosecond resolution and an if_tsoffset of 2**62 s
    "huge-tsoffset": shb_block({}, "t") + _idb([(IF_NAME, b"l:a>b"), (IF_TSRESOL, b"\x09"),
                                                (IF_TSOFFSET, struct.pack("<q", 2**62))]) + _epb(5),
    # nanosecond timestamp >= 2**63: must not come out negative
    "ns-timestamp-beyond-int64": shb_block({}, "t") + _idb([(IF_NAME, b"l:a>b"), (IF_TSRESOL, b"\x09")])
    + _epb(2**63 + 5),
}


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_trace_timestamp_beyond_int64(name: str) -> None:
    """A capture whose times do not fit int64 ns is read with a warning (chunk skipped), never an exception
    and never a negative time."""
    trace = parse_trace(CAPTURES[name])
    assert trace.warnings
    assert all(t >= 0 for t in trace.chunk_t_ns.tolist())
    assert TraceTarget().run(CAPTURES[name]) == "error"
