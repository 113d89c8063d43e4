"""Streaming receiver: bytes in any chunking -> frames and counted line errors. Never raises on line data.

Theory of operation
-------------------
Frames on the wire are COBS-encoded and end with a 0x00 delimiter; COBS guarantees no 0x00 inside a frame, so a
receiver is always at most one delimiter away from being back in sync. ``feed(data)`` splits the new bytes at
delimiters (one C-level ``bytes.split``), glues the first piece to whatever partial frame was buffered, decodes each
complete chunk, and keeps the trailing partial piece for the next call.

Bounded memory: between calls the deframer holds at most ``MAX_CHUNK`` (= MAX_ENCODED - 1) bytes. When a chunk
grows past that without a delimiter it is dropped, one OVERSIZE error (size MAX_ENCODED: the byte count at which
the receiver gave up) is reported, and everything up to the next delimiter is discarded. Because the error is
reported at the same byte whatever the chunking, the output does not depend on how the input was split. Empty
chunks (0x00 0x00) are idle fill and are ignored: a sender may prefix frames with 0x00 to flush a receiver that saw
garbage.

Fast path: the loop decodes a valid DATA frame inline (COBS, one precompiled unpack per frame size, three integer
tests, one set lookup, the CRC, two tuple constructions); ordinary control frames come from a constant table keyed by
their encoded bytes (:data:`armbus.bus.codec.CONTROL_FRAMES`). Anything else, odd control frames and every error, goes
to :func:`armbus.bus.codec.classify_chunk`, the same classifier the one-shot :func:`armbus.bus.codec.decode_frame` uses,
so the stream and one-shot decoders agree by construction; the tests check it on every test vector and random input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cobs import cobs

from armbus.bus.codec import (
    CONTROL_FRAMES,
    DATA_UNPACKERS,
    MAX_CHUNK,
    VER_DATA,
    Frame,
    LineError,
    Packet,
    classify_chunk,
)
from armbus.bus.crc import CRC16_CORE, CRC16_INIT, CRC16_TABLE
from armbus.bus.wire import DATA_OVERHEAD, KNOWN_TYPES, MAX_ENCODED, MAX_FRAME, LineErrorKind

_cobs_decode = cobs.decode
_CobsError = cobs.DecodeError
_crc_core = CRC16_CORE  # crcmod's CRC-16/CCITT-FALSE core (armbus.bus.crc)
_OVERSIZE = LineError(LineErrorKind.OVERSIZE, MAX_ENCODED)


@dataclass
class DeframerCounters:
    """What a receiver has seen. ``errors`` is indexed by LineErrorKind."""

    frames: int = 0
    bytes: int = 0
    errors: dict[LineErrorKind, int] = field(default_factory=lambda: {k: 0 for k in LineErrorKind})

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())


class Deframer:
    """Feed bytes, get :class:`Frame` and :class:`LineError` objects in arrival order."""

    __slots__ = ("_buf", "_discarding", "counters")

    def __init__(self) -> None:
        self._buf = b""
        self._discarding = False
        self.counters = DeframerCounters()

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (always <= MAX_CHUNK < MAX_ENCODED)."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (e.g. after a port reopen)."""
        self._buf = b""
        self._discarding = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | LineError]:
        """Consume ``data``; return every complete frame and error it finished, in order."""
        # Hot-loop names bound to locals once per call (a local load is the cheapest lookup).
        dec, cobs_error, crc, table, unpackers, known = (_cobs_decode, _CobsError, _crc_core, CRC16_TABLE,
                                                         DATA_UNPACKERS, KNOWN_TYPES)
        new, frame_cls, packet_cls, control, slow = tuple.__new__, Frame, Packet, CONTROL_FRAMES.get, classify_chunk
        # The DATA fast path of armbus.bus.codec.decode_wire, inlined into the loop with its constants as locals.
        lo, end, ver_data, crc_init = DATA_OVERHEAD, MAX_FRAME + 1, VER_DATA, CRC16_INIT
        counters = self.counters
        counters.bytes += len(data)
        if data.__class__ is not bytes:
            data = bytes(data)
        out: list[Frame | LineError] = []
        if 0 not in data:
            if not self._discarding:
                buf = self._buf + data
                if len(buf) > MAX_CHUNK:
                    self._buf = b""
                    self._discarding = True
                    counters.errors[LineErrorKind.OVERSIZE] += 1
                    out.append(_OVERSIZE)
                else:
                    self._buf = buf
            return out
        chunks = data.split(b"\x00")
        tail = chunks.pop()
        if self._discarding:
            chunks[0] = b""  # the rest of an oversize chunk: already reported
            self._discarding = False
        elif self._buf:
            chunks[0] = self._buf + chunks[0]
        self._buf = b""
        append = out.append
        errors = 0
        for chunk in chunks:
            try:
                raw = dec(chunk)
            except cobs_error:
                raw = b""
            m = len(raw)
            if lo <= m < end:
                vk, seq, flags, src, dst, typ, msg_id, ttl, length, payload = unpackers[m](raw)
                if vk == ver_data and length == m - lo and typ in known and not crc(raw, crc_init, table):
                    append(new(frame_cls, (0, seq, flags, new(packet_cls, (src, dst, typ, msg_id, ttl, payload)))))
                    continue
            ctl = control(chunk)
            if ctl is not None:
                append(ctl)
                continue
            if not chunk:
                continue  # idle fill
            item = slow(chunk)
            if isinstance(item, LineError):
                errors += 1
                counters.errors[item.kind] += 1
            append(item)
        counters.frames += len(out) - errors
        if tail:
            if len(tail) > MAX_CHUNK:
                self._discarding = True
                counters.errors[LineErrorKind.OVERSIZE] += 1
                append(_OVERSIZE)
            else:
                self._buf = tail
        return out
