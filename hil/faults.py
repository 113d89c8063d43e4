"""Seeded fault injection: a routing hook on every link direction, with named operations and a decision log.

Theory of operation
-------------------
The simulation kernel hands every chunk of bytes a node sends to the :class:`FaultChannel` of that link direction
before the wire model times it (trio's routing-hook idea). The channel applies the configured
:class:`LinkFaults` and returns the bytes that go on the wire, split into segments each with an extra hold time:

* frame operations, decided at the first byte of every frame (frames end with the 0x00 COBS delimiter):
  ``drop_frame`` (the whole frame vanishes), ``dup_frame`` (an intact copy follows the frame), ``delay`` (the
  frame, and so everything queued behind it on the wire, is held ``delay_ns`` plus uniform jitter
  ``0..jitter_ns``);
* byte operations: ``drop_byte`` (a byte vanishes) and ``flip_bit`` (one random bit of a byte is inverted), each a
  probability per byte. Positions are drawn as geometric gaps (one draw per fault, not per byte), which keeps a
  clean run fast and makes the decisions independent of how the sender chunks its bytes.
* ``cuts``: time windows in which the link is cut. They act after the wire model: the sender keeps transmitting
  into the cut cable, so the bytes take wire time, and every byte whose arrival time falls in a window is lost.

Faults edit the byte stream before it is timed, so a dropped byte or frame takes no wire time (a receiver that
misses a byte sees the same as a shorter stream, early by at most those bytes' wire time).

Randomness: every link direction and operation has its own ``random.Random``, seeded from one master seed, the
link name, the direction and the operation name through SHA-256. The same seed replays exactly; enabling one
operation does not change the decisions of another. Every decision is recorded as a :class:`FaultDecision`
(time, link, direction, operation, details) and printable with :meth:`FaultInjector.format_log`. Memory stays
bounded: past :data:`LOG_LIMIT` decisions the older half is folded into per-operation counts
(:meth:`FaultInjector.counts` includes them), and long runs fold the whole log themselves
(:meth:`FaultInjector.fold_log`).

Scheduled faults (time -> fault) live in :mod:`armbus.hil.schedule`.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import math
import random
import sys
from collections import Counter
from collections.abc import Mapping
from typing import TextIO

from armbus.bus.errors import ConfigError, UsageError
from armbus.hil.wire import Burst, Direction

#: The COBS frame delimiter on the wire (armbus.bus.wire.DELIMITER).
_DELIM = 0
#: Operation names as they appear in the decision log and in fault files.
OPERATIONS = ("drop_byte", "flip_bit", "drop_frame", "dup_frame", "delay", "cut")
_NEVER = sys.maxsize


@dataclasses.dataclass(frozen=True)
class LinkFaults:
    """Fault configuration of one link direction. Probabilities are per byte or per frame, in 0..1."""

    drop_byte: float = 0.0
    flip_bit: float = 0.0
    drop_frame: float = 0.0
    dup_frame: float = 0.0
    delay: float = 0.0  # probability that a frame is held
    delay_ns: int = 0  # fixed part of the hold
    jitter_ns: int = 0  # uniform extra 0..jitter_ns
    cuts: tuple[tuple[int, int], ...] = ()  # [start_ns, end_ns) windows

    def __post_init__(self) -> None:
        for name in ("drop_byte", "flip_bit", "drop_frame", "dup_frame", "delay"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise UsageError(f"LinkFaults.{name} must be a probability in 0..1, got {p!r}")
        for name in ("delay_ns", "jitter_ns"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise UsageError(f"LinkFaults.{name} must be a non-negative integer of nanoseconds, got {v!r}")
        for w in self.cuts:
            if len(w) != 2 or not all(isinstance(t, int) for t in w) or not 0 <= w[0] <= w[1]:
                raise UsageError(f"LinkFaults.cuts entries must be (start_ns, end_ns) with start <= end, got {w!r}")

    @property
    def clean(self) -> bool:
        """True if no probabilistic operation is enabled (cuts aside)."""
        return not (self.drop_byte or self.flip_bit or self.drop_frame or self.dup_frame or self.delay)

    @classmethod
    def from_dict(cls, fields: Mapping[str, object], where: str = "link faults") -> LinkFaults:
        """Build from a parsed fault file table; unknown keys and bad values raise :class:`ConfigError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(fields)
        if "cuts" in values:
            cuts = values["cuts"]
            if not isinstance(cuts, (list, tuple)):
                raise ConfigError(f"{where}: cuts must be a list of [start_ns, end_ns] pairs")
            values["cuts"] = tuple(tuple(w) if isinstance(w, (list, tuple)) else w for w in cuts)
        try:
            return cls(**values)  # type: ignore[arg-type]
        except UsageError as exc:
            raise ConfigError(f"{where}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class FaultDecision:
    """One fault decision. ``link`` names a link (or, for node faults, a node); ``direction`` is None for
    faults that are not tied to one link direction."""

    t_ns: int
    link: str
    direction: Direction | None
    op: str
    detail: str

    def __str__(self) -> str:
        d = self.direction.label if self.direction is not None else "-"
        return f"{self.t_ns:>13} ns  {self.link} {d:<3}  {self.op:<10} {self.detail}"


def derive_seed(master: int, *parts: str) -> int:
    """A 64-bit seed from the master seed and names, stable across processes and Python versions."""
    text = "/".join([str(master), *parts]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


class FaultChannel:
    """Fault state of one link direction: its configuration, random streams and frame tracking."""

    def __init__(self, injector: FaultInjector, link: str, direction: Direction, config: LinkFaults) -> None:
        self._injector = injector
        self.link = link
        self.direction = direction
        seed = injector.seed
        label = direction.label
        self._rng = {op: random.Random(derive_seed(seed, link, label, op)) for op in OPERATIONS}
        self._pos = 0  # bytes handed over by the sender so far (before faults)
        self._frame = 0  # index of the current (or next) frame
        self._at_start = True  # the next byte starts a frame
        self._drop_frame = False  # the current frame is being dropped
        self._dup: bytearray | None = None  # copy of the current frame, to be sent again after it
        self.dynamic_cuts: list[tuple[int, int]] = []
        self.config = config
        self._next_drop = self._next_flip = _NEVER
        self.configure(config)

    def configure(self, config: LinkFaults) -> None:
        """Switch to a new configuration from the current stream position on."""
        self.config = config
        self._clean = config.clean
        self._frame_ops = bool(config.drop_frame or config.dup_frame or config.delay)
        self._next_drop = self._gap(self._pos, config.drop_byte, "drop_byte")
        self._next_flip = self._gap(self._pos, config.flip_bit, "flip_bit")

    def _gap(self, start: int, p: float, op: str) -> int:
        """Stream position of the next byte hit by an operation of per-byte probability ``p``."""
        if p <= 0.0:
            return _NEVER
        if p >= 1.0:
            return start
        u = self._rng[op].random()
        return start + int(math.log1p(-u) / math.log1p(-p))

    def _record(self, now: int, op: str, detail: str) -> None:
        self._injector.record(now, self.link, self.direction, op, detail)

    # -- sender side ------------------------------------------------------------------------------------------
    def transmit(self, now: int, data: bytes) -> list[tuple[int, bytes]]:
        """Apply frame and byte faults to ``data`` sent at ``now``; returns ``(hold_ns, bytes)`` segments."""
        n = len(data)
        if not n:
            return []
        end = self._pos + n
        if self._clean and not self._drop_frame and self._dup is None:
            self._frame += data.count(_DELIM)
            self._at_start = data[-1] == _DELIM
            self._pos = end
            return [(0, data)]
        segments: list[tuple[int, bytes]] = []
        hold = 0
        out = bytearray()
        i = 0
        while i < n:
            k = data.find(_DELIM, i)
            j = n if k < 0 else k + 1  # this piece is data[i:j], one frame or part of one
            if self._at_start:
                hold_new = self._start_frame(now)
                if hold_new:
                    if out:
                        segments.append((hold, bytes(out)))
                        out = bytearray()
                    hold = hold_new
            piece = data[i:j]
            if not self._drop_frame:
                if self._dup is not None:
                    self._dup += piece
                out += self._byte_faults(now, piece, self._pos + i)
            if k >= 0:  # frame complete
                if self._dup is not None and not self._drop_frame:
                    out += self._dup
                self._dup = None
                self._drop_frame = False
                self._frame += 1
                self._at_start = True
            else:
                self._at_start = False
            i = j
        self._pos = end
        self._skip_to(end)
        if out:
            segments.append((hold, bytes(out)))
        return segments

    def _start_frame(self, now: int) -> int:
        """Decide frame operations for frame ``self._frame``; returns the hold in ns (0 for none)."""
        self._at_start = False
        if not self._frame_ops:
            return 0
        cfg = self.config
        f = self._frame
        if cfg.drop_frame and self._rng["drop_frame"].random() < cfg.drop_frame:
            self._drop_frame = True
            self._record(now, "drop_frame", f"frame {f}")
            return 0
        if cfg.dup_frame and self._rng["dup_frame"].random() < cfg.dup_frame:
            self._dup = bytearray()
            self._record(now, "dup_frame", f"frame {f}")
        if cfg.delay and self._rng["delay"].random() < cfg.delay:
            jitter = self._rng["delay"].randint(0, cfg.jitter_ns) if cfg.jitter_ns else 0
            hold = cfg.delay_ns + jitter
            self._record(now, "delay", f"frame {f} held {hold} ns")
            return hold
        return 0

    def _skip_to(self, pos: int) -> None:
        """Consume byte-fault positions before stream byte ``pos`` (they fell into dropped frames)."""
        while self._next_drop < pos:
            self._next_drop = self._gap(self._next_drop + 1, self.config.drop_byte, "drop_byte")
        while self._next_flip < pos:
            self._next_flip = self._gap(self._next_flip + 1, self.config.flip_bit, "flip_bit")

    def _byte_faults(self, now: int, piece: bytes, base: int) -> bytes:
        """Apply drop_byte and flip_bit to ``piece``, whose first byte is stream byte ``base``."""
        end = base + len(piece)
        self._skip_to(base)
        if self._next_drop >= end and self._next_flip >= end:
            return piece
        buf = bytearray(piece)
        drops: list[int] = []
        cfg = self.config
        while True:  # in stream order, so the log does not depend on chunking
            pos = min(self._next_flip, self._next_drop)
            if pos >= end:
                break
            if self._next_flip == pos:
                bit = self._rng["flip_bit"].randrange(8)
                old = buf[pos - base]
                buf[pos - base] = old ^ (1 << bit)
                self._record(now, "flip_bit", f"byte {pos} bit {bit}: {old:#04x} -> {buf[pos - base]:#04x}")
                self._next_flip = self._gap(pos + 1, cfg.flip_bit, "flip_bit")
            if self._next_drop == pos:
                drops.append(pos - base)
                self._record(now, "drop_byte", f"byte {pos} ({buf[pos - base]:#04x})")
                self._next_drop = self._gap(pos + 1, cfg.drop_byte, "drop_byte")
        for idx in reversed(drops):
            del buf[idx]
        return bytes(buf)

    # -- on the wire ------------------------------------------------------------------------------------------
    def cut_slices(self, now: int, burst: Burst) -> list[tuple[int, int]] | None:
        """Index ranges ``[i, j)`` of a timed burst that survive the cut windows; None if all survive."""
        cuts = self.config.cuts
        dyn = self.dynamic_cuts
        if not cuts and not dyn:
            return None
        if dyn:
            first = burst.start_ns
            self.dynamic_cuts = dyn = [w for w in dyn if w[1] > first]
        lo, hi = burst.arrival(0), burst.end_ns
        windows = sorted(w for w in (*cuts, *dyn) if w[0] <= hi and w[1] > lo and w[0] < w[1])
        if not windows:
            return None
        n = burst.nbytes
        keep: list[tuple[int, int]] = []
        i = 0
        for start, stop in windows:
            a = bisect.bisect_left(range(n), start, key=burst.arrival)
            b = bisect.bisect_left(range(n), stop, key=burst.arrival)
            if b <= a or b <= i:
                continue
            a = max(a, i)
            if a > i:
                keep.append((i, a))
            self._record(now, "cut", f"{b - a} byte(s) arriving in [{start}, {stop}) ns lost")
            i = b
        if i < n:
            keep.append((i, n))
        return keep


#: Decisions kept printable at most; beyond it the older half is folded into counts (a long ``armbus sim --faults``
#: run makes about a thousand decisions a second: 1,000,000 is ~15 minutes of them, ~150 MB).
LOG_LIMIT = 1_000_000


class FaultInjector:
    """All fault channels of a simulation, their configuration and the decision log."""

    def __init__(self, seed: int = 0, default: LinkFaults | None = None, log_limit: int = LOG_LIMIT) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UsageError(f"fault seed must be an integer, got {seed!r}")
        if isinstance(log_limit, bool) or not isinstance(log_limit, int) or log_limit < 1:
            raise UsageError(f"fault log limit must be a positive integer, got {log_limit!r}")
        self.seed = seed
        self.log_limit = log_limit
        self.default = default if default is not None else LinkFaults()
        self._configs: dict[tuple[str, Direction | None], LinkFaults] = {}
        self._channels: dict[tuple[str, Direction], FaultChannel] = {}
        #: Every decision, in the order made (which is time order within a simulation), since the last fold.
        self.log: list[FaultDecision] = []
        #: Decisions folded out of the log by :meth:`fold_log`, counted per operation.
        self.folded: Counter[str] = Counter()

    def _config_for(self, link: str, direction: Direction) -> LinkFaults:
        cfg = self._configs.get((link, direction)) or self._configs.get((link, None))
        return cfg if cfg is not None else self.default

    def channel(self, link: str, direction: Direction) -> FaultChannel:
        """The (lazily created) channel of one link direction."""
        key = (link, Direction(direction))
        ch = self._channels.get(key)
        if ch is None:
            ch = self._channels[key] = FaultChannel(self, link, key[1], self._config_for(*key))
        return ch

    def set_link(self, link: str, faults: LinkFaults, direction: Direction | None = None) -> None:
        """Configure one link (both directions, or one); takes effect from the next byte sent."""
        if not isinstance(faults, LinkFaults):
            raise UsageError(f"faults must be a LinkFaults, got {type(faults).__name__}")
        dirs = list(Direction) if direction is None else [Direction(direction)]
        if direction is None:
            for d in dirs:
                self._configs.pop((link, d), None)
        self._configs[(link, None if direction is None else Direction(direction))] = faults
        for d in dirs:
            ch = self._channels.get((link, d))
            if ch is not None:
                ch.configure(self._config_for(link, d))

    def cut(self, link: str, start_ns: int, end_ns: int, direction: Direction | None = None) -> None:
        """Cut a link (both directions, or one) for ``[start_ns, end_ns)``: bytes arriving then are lost."""
        if not (isinstance(start_ns, int) and isinstance(end_ns, int)) or not 0 <= start_ns <= end_ns:
            raise UsageError(f"cut window must be integers 0 <= start <= end, got [{start_ns!r}, {end_ns!r})")
        for d in list(Direction) if direction is None else [Direction(direction)]:
            self.channel(link, d).dynamic_cuts.append((start_ns, end_ns))

    def record(self, t_ns: int, link: str, direction: Direction | None, op: str, detail: str) -> None:
        """Append a decision to the log (also used by scheduled faults)."""
        if len(self.log) >= self.log_limit:  # keep the newer half printable, count the older half
            self._fold(len(self.log) // 2)
        self.log.append(FaultDecision(t_ns, link, direction, op, detail))

    def counts(self) -> Counter[str]:
        """How many decisions of each operation were made (folded ones included)."""
        return self.folded + Counter(d.op for d in self.log)

    def fold_log(self) -> int:
        """Fold the decision log into :attr:`folded` counts and empty it; returns how many were folded.

        Long runs (soaks, endurance chains) call this periodically so memory stays flat; the printable log then
        holds only the decisions since the last fold."""
        return self._fold(len(self.log))

    def _fold(self, n: int) -> int:
        """Count the oldest ``n`` decisions into :attr:`folded` and drop them from the log."""
        self.folded.update(d.op for d in self.log[:n])
        del self.log[:n]
        return n

    def format_log(self) -> str:
        """The decision log, one line per decision."""
        header = f"fault decisions (seed {self.seed}): {len(self.log)}"
        if self.folded:
            header += f" (and {sum(self.folded.values())} folded earlier: {dict(sorted(self.folded.items()))})"
        return "\n".join([header, *(str(d) for d in self.log)])

    def print_log(self, file: TextIO | None = None) -> None:
        print(self.format_log(), file=file if file is not None else sys.stdout)
