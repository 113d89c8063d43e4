"""Hypothesis strategies for armbus frames and messages, shared by the codec tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import strategies as st

from armbus.bus import messages as m
from armbus.bus.codec import Frame, Packet
from armbus.bus.wire import MAX_PAYLOAD, FrameKind, MsgType

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
i16 = st.integers(-0x8000, 0x7FFF)
i32 = st.integers(-0x80000000, 0x7FFFFFFF)

#: struct format code -> strategy for the fixed-layout messages (their _FMT lists the fields in order).
_CODE = {"B": u8, "H": u16, "I": u32, "h": i16, "i": i32}


def _fixed(cls: type[m.Message]) -> st.SearchStrategy[m.Message]:
    assert cls._FMT is not None
    codes = cls._FMT.format.lstrip("<")
    make: Any = cls
    return st.tuples(*[_CODE[c] for c in codes]).map(lambda vals: make(*vals))


def _reg_data(cls: type[m.Message]) -> st.SearchStrategy[m.Message]:
    return st.builds(cls, u16, st.binary(max_size=MAX_PAYLOAD - 2))


def _enumerate(cls: Any) -> st.SearchStrategy[m.Message]:
    rec = st.builds(m.JointRecord, u16, u32)
    return st.lists(rec, max_size=(MAX_PAYLOAD - 1) // 6).map(lambda rs: cls(tuple(rs)))


@st.composite
def _sync_write(draw: st.DrawFn) -> m.Message:
    slice_len = draw(st.integers(1, 20))
    count = draw(st.integers(1, (MAX_PAYLOAD - 4) // slice_len))
    return m.SyncWrite(draw(u16), slice_len, draw(u8), draw(st.binary(min_size=slice_len * count,
                                                                        max_size=slice_len * count)))


def _sync_read(cls: type[m.SyncRead]) -> st.SearchStrategy[m.Message]:
    @st.composite
    def build(draw: st.DrawFn) -> m.Message:
        length = draw(st.integers(0, 16))
        n = draw(st.integers(0, (MAX_PAYLOAD - 3) // (2 + length)))
        recs = tuple(m.SyncRecord(draw(u8), draw(u8), draw(st.binary(min_size=length, max_size=length)))
                     for _ in range(n))
        return cls(draw(u16), length, recs)

    return build()


@st.composite
def _cycle(draw: st.DrawFn) -> m.Message:
    mode = draw(u8)
    n = 0 if mode == 0 else draw(st.integers(0, (MAX_PAYLOAD - 5) // 4))
    return m.Cycle(draw(u16), draw(u8), mode, draw(u8), tuple(draw(i32) for _ in range(n)))


@st.composite
def _cycle_reply(draw: st.DrawFn) -> m.Message:
    length = draw(st.integers(0, 16))
    n = draw(st.integers(0, (MAX_PAYLOAD - 3) // (5 + length)))
    recs = tuple(m.CycleRecord(draw(u8), draw(u8), draw(u8), draw(u16), draw(st.binary(min_size=length,
                                                                                         max_size=length)))
                 for _ in range(n))
    return m.CycleReply(draw(u16), length, recs)


def message_strategy(msg_type: MsgType) -> st.SearchStrategy[m.Message]:
    """Random valid messages of one type, covering each field's full range."""
    cls = m.REGISTRY[msg_type]
    if cls in (m.ReadReply, m.Write):
        return _reg_data(cls)
    if issubclass(cls, m.Enumerate):
        return _enumerate(cls)
    if cls is m.SyncWrite:
        return _sync_write()
    if issubclass(cls, m.SyncRead):
        return _sync_read(cls)
    if cls is m.Cycle:
        return _cycle()
    if cls is m.CycleReply:
        return _cycle_reply()
    return _fixed(cls)


messages = st.sampled_from(list(MsgType)).flatmap(message_strategy)


def fields_of(msg: m.Message) -> dict[str, Any]:
    """A message's fields as construct takes them (nested records as dicts, sequences as lists)."""

    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return {k: conv(v) for k, v in dataclasses.asdict(msg).items()}


packets = st.builds(
    Packet, u8, u8, st.sampled_from([int(t) for t in MsgType]), u16, u8, st.binary(max_size=MAX_PAYLOAD)
)
data_frames = st.builds(lambda seq, flags, p: Frame(0, seq, flags, p), u8, u8, packets)
control_frames = st.builds(
    lambda k, seq, flags: Frame(k, seq, flags, None),
    st.sampled_from([int(FrameKind.ACK), int(FrameKind.RESET), int(FrameKind.RESET_ACK)]), u8, u8,
)
frames = st.one_of(data_frames, control_frames)
