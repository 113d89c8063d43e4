"""The serve protocol's frames: every kind round-trips, in any chunking; a bad frame is the peer's fault."""

from __future__ import annotations

import contextlib
import random

import pytest

from armbus.bus.codec import Packet
from armbus.controller import serveproto as sp

FRAMES: list[sp.Message] = [
    sp.Hello(sp.VERSION, sp.WANT_PACKETS | sp.WANT_WIRE, "pid 12 (python ctl.py)"),
    sp.Send(Packet(0, 3, 0x03, 65535, 16, b"\x38\x00\x0f"), False),
    sp.Send(Packet(0, 0xFF, 0x09, 1, 16, b"\x00"), True),
    sp.Lease(7, sp.ACQUIRE, "ctl"),
    sp.Lease(8, sp.RELEASE, ""),
    sp.Welcome(sp.VERSION, 3_000_000, True, "someone"),
    sp.Acked(42),
    sp.Failed(43, 4, False, "the arm's lease is held by ünïcode"),
    sp.Received(Packet(2, 0, 0x40, 9, 15, bytes(range(16)))),
    sp.Link(sp.LinkNews.LINE_ERROR, 3),
    sp.LeaseAnswer(7, True, "ctl"),
    sp.LeaseHolder(False, ""),
    sp.Wire(sp.TO_HOST, 2**63 - 1, b"\x00\x01\x02" * 100),
    sp.Dropped(123456),
]


def _stream() -> bytes:
    return b"".join(m.encode() for m in FRAMES)


def test_every_frame_round_trips_whole() -> None:
    reader = sp.FrameReader()
    reader.feed(_stream())
    assert list(reader.frames()) == FRAMES
    assert reader.buffered == 0


def test_byte_by_byte_and_random_chunks_give_the_same_frames() -> None:
    data = _stream()
    for chunking in ("bytes", "random"):
        reader = sp.FrameReader()
        got: list[sp.Message] = []
        rng = random.Random(3)
        i = 0
        while i < len(data):
            n = 1 if chunking == "bytes" else rng.randint(1, 40)
            reader.feed(data[i:i + n])
            got += list(reader.frames())
            i += n
        assert got == FRAMES


@pytest.mark.parametrize("bad", [
    sp.frame(sp.Kind.ACKED, b"\x01"),  # too short
    b"\x01\x00\x00\x00\x7f",  # unknown kind
    (sp.MAX_FRAME + 1).to_bytes(4, "little") + b"\x82",  # oversize: refused before it is buffered
    b"\x00\x00\x00\x00",  # empty frame
    sp.frame(sp.Kind.LINK, b"\x63\x00"),  # unknown link news
])
def test_a_bad_frame_is_a_protocol_error(bad: bytes) -> None:
    reader = sp.FrameReader()
    reader.feed(bad)
    with pytest.raises(sp.ServeProtocolError):
        list(reader.frames())


def test_random_bytes_parse_or_raise_protocol_error_nothing_else() -> None:
    rng = random.Random(5)
    for _ in range(300):
        reader = sp.FrameReader()
        reader.feed(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))
        with contextlib.suppress(sp.ServeProtocolError):
            list(reader.frames())
