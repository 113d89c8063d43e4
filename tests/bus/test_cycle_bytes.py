"""The joints' byte-level edits of CYCLE and CYCLE_REPLY give what decoding, editing and packing the message gives."""

from __future__ import annotations

import pytest
from codec_strategies import message_strategy
from hypothesis import given, settings
from hypothesis import strategies as st

from armbus.bus.cycle import (
    AGE_MAX_US,
    Cycle,
    CycleRecord,
    CycleReply,
    append_record,
    cycle_head,
    reply_head,
    rest_payload,
    slice_at,
)
from armbus.bus.errors import DecodeError, EncodeError
from armbus.bus.wire import MsgType

addresses = st.integers(0, 0xFF)


@settings(max_examples=300)
@given(message_strategy(MsgType.CYCLE), addresses)
def test_rest_and_slice_are_the_messages(cycle: Cycle, address: int) -> None:
    payload = cycle.pack()
    head = cycle_head(payload)
    assert (head.reg, head.length, head.mode, head.first, head.slices) == (
        cycle.reg, cycle.length, cycle.mode, cycle.first, len(cycle.goals))
    expected = cycle.rest_after(address)
    try:
        packed = expected.pack()
    except EncodeError as exc:  # a "first" past 255: no joint has such an address
        with pytest.raises(EncodeError) as got:
            rest_payload(payload, head, address)
        assert str(got.value) == str(exc)
    else:
        rest, kept = rest_payload(payload, head, address)
        assert rest == packed and kept == len(expected.goals)
    assert slice_at(payload, head, address) == cycle.slice_for(address)


@settings(max_examples=300)
@given(message_strategy(MsgType.CYCLE_REPLY), addresses, st.integers(0, 0xFF), st.integers(0, 0xFF),
       st.integers(0, AGE_MAX_US), st.data())
def test_append_is_with_record_packed(reply: CycleReply, address: int, status: int, result: int, age: int,
                                      data: st.DataObject) -> None:
    payload = reply.pack()
    assert reply_head(payload) == (reply.reg, reply.length)
    rec = CycleRecord(address, status, result, age, data.draw(st.binary(min_size=reply.length,
                                                                         max_size=reply.length)))
    try:
        expected: bytes | type[EncodeError] = reply.with_record(rec).pack()
    except EncodeError:
        expected = EncodeError
    if expected is EncodeError:
        with pytest.raises(EncodeError):
            append_record(payload, reply.length, *_fields(rec))
    else:
        assert append_record(payload, reply.length, *_fields(rec)) == expected


def _fields(r: CycleRecord) -> tuple[int, int, int, int, bytes]:
    return r.address, r.status, r.result, r.age_us, r.data


@pytest.mark.parametrize("field", ["address", "status", "result", "age_us", "data"])
def test_a_record_that_does_not_fit_is_refused_like_pack(field: str) -> None:
    good = CycleRecord(1, 2, 3, 4, b"\x00" * 10)
    bad = {"address": 256, "status": -1, "result": 300, "age_us": AGE_MAX_US + 1, "data": b"\x00" * 9}[field]
    rec = CycleRecord(**{**good.__dict__, field: bad})
    reply = CycleReply(100, 10, ())
    with pytest.raises(EncodeError) as packed:
        reply.with_record(rec).pack()
    with pytest.raises(EncodeError) as appended:
        append_record(reply.pack(), 10, *_fields(rec))
    assert str(appended.value) == str(packed.value)


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_heads_refuse_what_unpack_refuses(payload: bytes) -> None:
    for head, cls in ((cycle_head, Cycle), (reply_head, CycleReply)):
        try:
            cls.unpack(payload)
        except DecodeError as exc:
            with pytest.raises(DecodeError) as got:
                head(payload)
            assert got.value.kind == exc.kind
        else:
            head(payload)
