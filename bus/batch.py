"""Batch frame decoder: many COBS pieces at once -> numpy columns, item for item what the Deframer returns.

Theory of operation
-------------------
The streaming :class:`armbus.bus.deframer.Deframer` builds two Python tuples per frame; an offline tool that decodes
millions of frames (a trace) wants columns instead. :func:`decode_pieces` takes delimiter-free, non-empty pieces
(what ``bytes.split(b"\\x00")`` leaves between delimiters) and returns one row per piece in a :class:`Columns`:

1. Pieces are classed by size with numpy. Control frames are 6 bytes encoded and DATA frames at least 13, so
   short pieces are looked up in :data:`armbus.bus.codec.CONTROL_FRAMES` (one C-level dict lookup each), long ones are
   COBS-decoded (``cobs.decode`` through ``map``; a piece that raises gets an empty body and falls through).
2. The decoded bodies are concatenated once; the DATA header fields of all of them are gathered with one fancy
   index per field (``np.frombuffer`` + body offsets), and the fast-path tests of :mod:`armbus.bus.codec` (size 12..267,
   first byte 0x10, length byte == size - 12, known type) become boolean columns. The CRC residue is computed
   per body with crcmod's compiled core (:data:`armbus.bus.crc.CRC16_CORE`), the protocol's one CRC implementation.
3. Every piece that passes neither the control table nor the DATA fast path goes, one by one, to
   :func:`armbus.bus.codec.classify_chunk`, the classifier the Deframer uses for the same pieces, so every row (frame or
   line error, with its kind and size) is what the Deframer gives by construction; the tests check it.

Payloads are not copied out: a row holds the offset and length of its payload inside ``Columns.bodies`` (the
concatenated decoded frames), and :meth:`Columns.payload` slices one on demand.

:func:`decode_stream` adds the Deframer's stream rules for one ``feed`` on a fresh Deframer: split at 0x00, drop
empty pieces (idle fill), a last piece without delimiter is held (``buffered``) or, when longer than
:data:`armbus.bus.codec.MAX_CHUNK`, reported as one OVERSIZE error. Decoding each distinct piece once with a dict
(ACKs repeat) was measured and does not pay here: hashing every piece costs about what decoding a DATA piece
does, and DATA pieces rarely repeat (seq and msg_id change), so only the short pieces go through a dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress, repeat

import numpy as np
from cobs import cobs

from armbus.bus.codec import CONTROL_FRAMES, MAX_CHUNK, VER_DATA, Frame, LineError, classify_chunk
from armbus.bus.crc import CRC16_CORE, CRC16_INIT, CRC16_TABLE
from armbus.bus.wire import CONTROL_FRAME_SIZE, DATA_OVERHEAD, KNOWN_TYPES, MAX_ENCODED, MAX_FRAME, LineErrorKind

#: ``kind`` of a row that is a line error rather than a frame.
LINE_ERROR = -1
#: Encoded size of a control frame: COBS adds one byte to a 5-byte frame (up to 254 bytes it adds exactly one).
_CONTROL_PIECE = CONTROL_FRAME_SIZE + 1
#: Shortest encoded DATA frame: a 12-byte frame plus the COBS overhead byte. Pieces from _CONTROL_PIECE + 1 up
#: to this size are neither; they take the classifier.
_MIN_DATA_PIECE = DATA_OVERHEAD + 1
#: Header offsets inside a decoded DATA frame (contracts.md, wire format version 1).
_VK, _SEQ, _FLAGS, _SRC, _DST, _TYPE, _MSG_ID, _TTL, _LEN, _PAYLOAD = 0, 1, 2, 3, 4, 5, 6, 8, 9, 10
#: Control frames by encoded piece as one int, kind << 8 | seq (all have flags 0): a dict lookup gives a number
#: that np.fromiter can take directly.
_CONTROL_CODE: dict[bytes, int] = {piece: f.kind << 8 | f.seq for piece, f in CONTROL_FRAMES.items()}
_KNOWN_LUT = np.zeros(256, bool)
_KNOWN_LUT[sorted(KNOWN_TYPES)] = True
_OVERSIZE = LineError(LineErrorKind.OVERSIZE, MAX_ENCODED)
_cobs_decode = cobs.decode
_CobsError = cobs.DecodeError


@dataclass
class Columns:
    """One row per piece. Network fields are -1 outside DATA rows; ``error``/``size`` are 0 outside line errors.

    ``pay_off``/``pay_len`` locate a DATA row's payload in ``bodies`` (-1 / 0 elsewhere).
    """

    kind: np.ndarray  # int8: FrameKind, or LINE_ERROR
    seq: np.ndarray  # int16
    flags: np.ndarray  # int16
    src: np.ndarray  # int16
    dst: np.ndarray  # int16
    type: np.ndarray  # int16
    msg_id: np.ndarray  # int32
    ttl: np.ndarray  # int16
    error: np.ndarray  # int8: LineErrorKind
    size: np.ndarray  # int32: encoded size of a line error's piece (MAX_ENCODED for OVERSIZE)
    pay_off: np.ndarray  # int64
    pay_len: np.ndarray  # int32
    bodies: bytes

    FIELDS = ("kind", "seq", "flags", "src", "dst", "type", "msg_id", "ttl", "error", "size", "pay_off", "pay_len")

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def empty(cls, n: int, bodies: bytes = b"") -> Columns:
        """``n`` rows of nothing decoded yet (kind 0, network fields -1), to be filled column-wise."""
        def full(dtype: type, value: int) -> np.ndarray:
            return np.full(n, value, dtype)

        return cls(full(np.int8, 0), full(np.int16, 0), full(np.int16, 0), full(np.int16, -1), full(np.int16, -1),
                   full(np.int16, -1), full(np.int32, -1), full(np.int16, -1), full(np.int8, 0), full(np.int32, 0),
                   full(np.int64, -1), full(np.int32, 0), bodies)

    def take(self, rows: np.ndarray) -> Columns:
        """The given rows (any integer index array), sharing ``bodies``."""
        return Columns(**{f: getattr(self, f)[rows] for f in self.FIELDS}, bodies=self.bodies)

    def payload(self, i: int) -> bytes:
        """Payload of DATA row ``i`` (b"" for other rows)."""
        off = int(self.pay_off[i])
        return self.bodies[off:off + int(self.pay_len[i])] if off >= 0 else b""

    def items(self) -> list[Frame | LineError]:
        """The rows as the Deframer's items (Frame / LineError tuples): for tests and small outputs."""
        from armbus.bus.codec import Packet

        out: list[Frame | LineError] = []
        for i in range(len(self)):
            kind = int(self.kind[i])
            if kind == LINE_ERROR:
                out.append(LineError(LineErrorKind(int(self.error[i])), int(self.size[i])))
            elif kind == 0:
                pkt = Packet(int(self.src[i]), int(self.dst[i]), int(self.type[i]), int(self.msg_id[i]),
                             int(self.ttl[i]), self.payload(i))
                out.append(Frame(0, int(self.seq[i]), int(self.flags[i]), pkt))
            else:
                out.append(Frame(kind, int(self.seq[i]), int(self.flags[i]), None))
        return out


def concat(parts: Sequence[Columns]) -> Columns:
    """Rows of several Columns in order; payload offsets are shifted into the joined ``bodies``."""
    if not parts:
        return Columns.empty(0)
    if len(parts) == 1:
        return parts[0]
    shifts = np.cumsum([0] + [len(p.bodies) for p in parts[:-1]]).tolist()
    cols = {f: np.concatenate([getattr(p, f) for p in parts]) for f in Columns.FIELDS}
    cols["pay_off"] = np.concatenate([np.where(p.pay_off >= 0, p.pay_off + s, -1)
                                      for p, s in zip(parts, shifts, strict=True)])
    return Columns(**cols, bodies=b"".join(p.bodies for p in parts))


def _cobs_all(pieces: list[bytes]) -> tuple[list[bytes], list[int]]:
    """``cobs.decode`` of every piece through ``map`` (C loop), and the indices of the pieces that are not valid
    COBS (their body is b"").

    ``list.extend`` keeps what the map produced before an exception, and the shared iterator resumes after the
    bad piece, so an error costs one restart, not a rescan.
    """
    out: list[bytes] = []
    bad: list[int] = []
    it = iter(pieces)
    while True:
        try:
            out.extend(map(_cobs_decode, it))
            return out, bad
        except _CobsError:
            bad.append(len(out))
            out.append(b"")


def decode_pieces(pieces: Sequence[bytes], plen: np.ndarray | None = None) -> Columns:
    """One row per piece (non-empty, no 0x00): what ``Deframer.feed`` returns for each, as columns.

    ``plen``: the pieces' lengths when the caller knows them already (saves one pass).
    """
    pieces = pieces if isinstance(pieces, list) else list(pieces)
    n = len(pieces)
    if plen is None:
        plen = np.fromiter(map(len, pieces), np.int64, n)
    cols = Columns.empty(n)
    slow = np.zeros(n, bool)
    # control frames: short pieces through the constant table
    short = np.flatnonzero(plen < _MIN_DATA_PIECE)
    if len(short):
        subset = pieces if len(short) == n else list(compress(pieces, (plen < _MIN_DATA_PIECE).tolist()))
        code = np.fromiter(map(_CONTROL_CODE.get, subset, repeat(-1)), np.int32, len(subset))
        hit = code >= 0
        rows = short[hit]
        cols.kind[rows] = code[hit] >> 8
        cols.seq[rows] = code[hit] & 0xFF
        slow[short[~hit]] = True
    # DATA frames: COBS per piece, header fields column-wise, CRC per body
    longer = plen >= _MIN_DATA_PIECE
    long_rows = np.flatnonzero(longer)
    bodies = b""
    if len(long_rows):
        subset = pieces if len(long_rows) == n else list(compress(pieces, longer.tolist()))
        raws, bad = _cobs_all(subset)
        bodies = b"".join(raws)
        m = _body_sizes(plen[long_rows], raws, bad, len(bodies))
        start = np.cumsum(m) - m
        buf = np.frombuffer(bodies, np.uint8)
        ok = (m >= DATA_OVERHEAD) & (m <= MAX_FRAME)
        s = start[ok]
        head = buf[s[:, None] + np.arange(_PAYLOAD)] if len(s) else np.zeros((0, _PAYLOAD), np.uint8)
        good = (head[:, _VK] == VER_DATA) & (head[:, _LEN] == m[ok] - DATA_OVERHEAD) & _KNOWN_LUT[head[:, _TYPE]]
        ok[ok] = good
        head, s = head[good], s[good]
        if len(s):
            crc = np.fromiter(map(CRC16_CORE, compress(raws, ok.tolist()), repeat(CRC16_INIT), repeat(CRC16_TABLE)),
                              np.int32, len(s))
            valid = crc == 0
            ok[ok] = valid
            head, s = head[valid], s[valid]
        rows = long_rows[ok]
        cols.kind[rows] = 0
        cols.seq[rows] = head[:, _SEQ]
        cols.flags[rows] = head[:, _FLAGS]
        cols.src[rows] = head[:, _SRC]
        cols.dst[rows] = head[:, _DST]
        cols.type[rows] = head[:, _TYPE]
        cols.msg_id[rows] = head[:, _MSG_ID].astype(np.int32) | head[:, _MSG_ID + 1].astype(np.int32) << 8
        cols.ttl[rows] = head[:, _TTL]
        cols.pay_off[rows] = s + _PAYLOAD
        cols.pay_len[rows] = head[:, _LEN]
        slow[long_rows[~ok]] = True
    extra = [bodies]
    size = len(bodies)
    for i in np.flatnonzero(slow).tolist():  # every other piece: the Deframer's own classifier
        payload = _fill(cols, i, classify_chunk(pieces[i]), size)
        if payload:
            extra.append(payload)
            size += len(payload)
    cols.bodies = b"".join(extra)
    return cols


def _body_sizes(plen: np.ndarray, raws: list[bytes], bad: list[int], total: int) -> np.ndarray:
    """Decoded sizes without a pass over the bodies: a valid COBS piece of up to 254 bytes decodes to one byte less
    (every code byte but the first stands for a 0x00; a code 0xFF, which does not, needs 255 bytes). Longer
    pieces are measured; invalid ones are 0. Checked against the total, else measured one by one."""
    m = plen - 1
    m[bad] = 0
    for i in np.flatnonzero(plen > 254).tolist():
        m[i] = len(raws[i])
    if int(m.sum()) != total:  # pragma: no cover - would mean the COBS decoder's rules changed
        m = np.fromiter(map(len, raws), np.int64, len(raws))
    return m


def _fill(cols: Columns, i: int, item: Frame | LineError, pay_off: int) -> bytes:
    """Row ``i`` from a classifier result; a DATA payload is placed at ``pay_off`` and returned (else b"")."""
    if isinstance(item, LineError):
        cols.kind[i] = LINE_ERROR
        cols.error[i] = item.kind
        cols.size[i] = item.size
        return b""
    cols.kind[i], cols.seq[i], cols.flags[i] = item.kind, item.seq, item.flags
    if item.packet is None:
        return b""
    p = item.packet
    cols.src[i], cols.dst[i], cols.type[i], cols.msg_id[i], cols.ttl[i] = p.src, p.dst, p.type, p.msg_id, p.ttl
    cols.pay_off[i], cols.pay_len[i] = pay_off, len(p.payload)
    return bytes(p.payload)


@dataclass
class StreamResult:
    """:func:`decode_stream`'s result: rows, the position of the byte that completed each row, held bytes."""

    columns: Columns
    ends: np.ndarray  # int64: index in the data of each row's 0x00 delimiter (last byte for a trailing OVERSIZE)
    buffered: int  # bytes a Deframer would hold for an unfinished frame


def piece_ends(data: bytes | np.ndarray) -> np.ndarray:
    """Index of every 0x00 that ends a non-empty piece (one row of the Deframer each)."""
    arr = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    delim = np.flatnonzero(arr == 0)
    prev = np.empty_like(delim)
    prev[:1] = -1
    prev[1:] = delim[:-1]
    return delim[delim - prev > 1]


def decode_stream(data: bytes) -> StreamResult:
    """What one ``Deframer().feed(data)`` returns, as columns (see the module docstring for the rules)."""
    pieces = data.split(b"\x00")
    tail = pieces.pop()
    cols = decode_pieces(list(filter(None, pieces)))
    ends = piece_ends(data)
    if len(tail) > MAX_CHUNK:
        over = Columns.empty(1)
        _fill(over, 0, _OVERSIZE, 0)
        return StreamResult(concat([cols, over]), np.append(ends, len(data) - 1), 0)
    return StreamResult(cols, ends, len(tail))
