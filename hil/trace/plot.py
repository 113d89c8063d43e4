"""Plot a trace: a sequence diagram of frames between the nodes, and hop / end-to-end latency histograms.

Theory of operation
-------------------
Lanes are the nodes named by the link names (``host-j1``, ``j1-j2``, ...: a link ``X-Y`` joins node X and node
Y, direction ``a>b`` (or ``down``) goes X -> Y): ``host`` first, then the joints in chain order. Every DATA,
ACK and RESET frame in the time window is an arrow from its sender's lane to its receiver's lane, time running
down the page, so one request can be followed hop by hop with each hop's ACK coming back, down to the last joint
and back up as the reply. The arrow starts when the frame began on the wire and ends when it was complete: the
kernel's tap stamps arrivals, so the start is the stamp minus the frame's wire time at the trace's baud; a tap
capture (``armbus.capture=tap``) stamps sends, so there the arrow runs the other way in time. Line errors are
red crosses on the receiving lane.

Default window: the first request that travels furthest (the one whose frames cross the most links; the earliest
among equals), from its first frame to its reply's arrival at the host, with a margin. ``--from``/``--to`` or
``--all`` choose another; times count from the trace's start (:func:`origin`: a simulated capture's clock starts at
the arm's boot, a tap capture's at its first chunk), and a window with no frame in it is an error naming the
trace's span. At most :data:`MAX_ARROWS` arrows are drawn (the first ones); the title says when more
were left out.

The histograms use :func:`armbus.hil.trace.stats.compute` (hop: DATA -> ACK; end to end: request -> reply), in
microseconds on a log axis. matplotlib is an optional dependency (extra ``plot``); without it the command prints
one line and exits 2. The Agg backend renders to files only (no display needed).
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from armbus.bus.errors import ExitCode, TraceError, UsageError, exit_code
from armbus.bus.wire import DEFAULT_BAUD, FrameFlag, FrameKind, MsgType, wire_time_ns
from armbus.hil.trace.decode import LINE_ERROR, FrameTable, decode_file, parse_time
from armbus.hil.trace.stats import REQUEST_TYPES, compute

#: Arrows drawn at most: beyond a few hundred a sequence diagram is unreadable anyway (zoom with --from/--to).
MAX_ARROWS = 400
#: Margin around the default window (arrows start earlier still: the plot's extent follows what is drawn).
PAD_NS = 20_000
#: Margin after the reply: long enough for the host's ACK of it (turnaround + a 7-byte frame is ~80 us at 1 Mbaud).
PAD_AFTER_NS = 200_000
#: Idle stretches longer than this are drawn cut short (a request waiting 170 ms for a timeout would otherwise
#: squeeze every frame into two lines): 500 us is several frame times at 1 Mbaud.
GAP_NS = 500_000
#: Height a cut idle stretch keeps on the time axis (in ns of the drawing).
GAP_DRAWN_NS = 150_000
#: Wire size of a DATA frame besides its payload: 10-byte header, 2-byte CRC, 1 COBS overhead byte (one per 254),
#: the 0x00 delimiter (contracts: wire format); a control frame is 7 bytes on the wire.
DATA_WIRE_OVERHEAD = 14
CONTROL_WIRE_SIZE = 7
MISSING = "plotting needs matplotlib: pip install 'armbus[plot]' (or pip install matplotlib)"
_DOWN = ("a>b", "down")
_COLORS = {"down": "tab:blue", "up": "tab:green", "ack": "0.55", "reset": "tab:purple", "retransmit": "tab:red"}


def lanes(table: FrameTable) -> list[str]:
    """Node names in chain order: host, j1, j2, ..., then any other name."""
    names: set[str] = set()
    for itf in table.trace.interfaces:
        a, _, b = itf.link.partition("-")
        names.update(n for n in (a, b) if n)

    def order(name: str) -> tuple[int, int, str]:
        if name == "host":
            return (0, 0, name)
        m = re.fullmatch(r"j(\d+)", name)
        return (1, int(m.group(1)), name) if m else (2, 0, name)

    return sorted(names, key=order)


def default_window(table: FrameTable) -> tuple[int, int]:
    """Window around the first request that crosses the most links, up to its reply at the host."""
    t = table.t_ns
    if not len(t):
        return 0, 1
    link_ids = {name: k for k, name in enumerate(sorted({i.link for i in table.trace.interfaces}))}
    link_of = np.asarray([link_ids[i.link] for i in table.trace.interfaces] + [-1], dtype=np.int64)
    data = np.flatnonzero((table.kind == FrameKind.DATA) & np.isin(table.type, REQUEST_TYPES))
    best: tuple[int, int] | None = None
    best_key: tuple[int, int] = (0, 0)
    groups: dict[tuple[int, int, int, int], list[int]] = {}
    first_src: dict[tuple[int, int, int, int], int] = {}
    for i in data.tolist():
        dst = int(table.dst[i])  # a broadcast is forwarded by each joint under its own address: key without src
        key = (-1 if dst == 0xFF else int(table.src[i]), dst, int(table.type[i]), int(table.msg_id[i]))
        groups.setdefault(key, []).append(i)
        first_src.setdefault(key, int(table.src[i]))
    for key, rows in groups.items():
        src, msg_id = first_src[key], key[3]
        hops = len(set(link_of[table.iface[rows]].tolist()))
        first = int(t[rows[0]])
        if (hops, -first) > best_key or best is None:
            replies = np.flatnonzero((table.kind == FrameKind.DATA) & (table.dst == src) & (table.msg_id == msg_id)
                                     & ((table.type & 0x80) != 0) & (t >= first))
            end = int(t[replies].max()) if len(replies) else int(t[rows].max())
            best, best_key = (first, end), (hops, -first)
    if best is None:
        return int(t[0]), int(t[min(len(t) - 1, 50)])
    lo, hi = best
    return lo - PAD_NS, hi + PAD_AFTER_NS


def _frame_wire_ns(table: FrameTable, i: int, baud: int) -> int:
    if table.kind[i] == FrameKind.DATA:
        return wire_time_ns(DATA_WIRE_OVERHEAD + len(table.payloads[int(table.payload_index[i])]), baud)
    return wire_time_ns(CONTROL_WIRE_SIZE, baud)


def _label(table: FrameTable, i: int) -> str:
    kind = int(table.kind[i])
    if kind == FrameKind.DATA:
        try:
            name = MsgType(int(table.type[i])).name
        except ValueError:
            name = f"0x{int(table.type[i]):02x}"
        return f"{name} #{int(table.msg_id[i])}"
    return f"{FrameKind(kind).name} {int(table.seq[i])}"


def origin(table: FrameTable) -> int:
    """Trace time 0 of the figure and of ``--from``/``--to``: a simulated capture's own clock starts at the arm's
    boot; a wall-clock capture (``armbus tap``) starts at its first chunk."""
    if table.trace.metadata.get("capture") == "tap" and len(table):
        return int(table.t_ns.min())
    return 0


def draw(table: FrameTable, out: str, window: tuple[int, int] | None = None) -> int:
    """Render the figure to ``out`` (.png or .svg); returns the number of arrows drawn. A window with no frame
    in it is a :class:`UsageError` naming the window and the trace's span."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = lanes(table)
    x_of = {n: k for k, n in enumerate(names)}
    lo, hi = window if window is not None else default_window(table)
    baud = int(table.trace.metadata.get("baud", "1000000") or DEFAULT_BAUD)
    stamps_sends = table.trace.metadata.get("capture") == "tap"
    rows = np.flatnonzero((table.t_ns >= lo) & (table.t_ns <= hi)).tolist()
    t0 = origin(table)
    if not rows and len(table):
        span = (int(table.t_ns.min()) - t0, int(table.t_ns.max()) - t0)
        raise UsageError(f"no frame between {(lo - t0) / 1e6:.3f} ms and {(hi - t0) / 1e6:.3f} ms: the trace spans "
                         f"{span[0] / 1e6:.3f} .. {span[1] / 1e6:.3f} ms (--from/--to count from its start)")
    arrows: list[tuple[int, int, int, int, str, int]] = []  # x0, x1, t_start, t_stop, color, row
    crosses: list[tuple[int, int]] = []
    skipped = 0
    for i in rows:
        itf = table.trace.interfaces[int(table.iface[i])]
        a, _, b = itf.link.partition("-")
        if a not in x_of or b not in x_of:
            continue
        src, dst = (a, b) if itf.direction in _DOWN else (b, a)
        t_mark = int(table.t_ns[i])
        kind = int(table.kind[i])
        if kind == LINE_ERROR:
            crosses.append((x_of[dst], t_mark))
            continue
        if len(arrows) >= MAX_ARROWS:
            skipped += 1
            continue
        dur = _frame_wire_ns(table, i, baud)
        t_start, t_stop = (t_mark, t_mark + dur) if stamps_sends else (t_mark - dur, t_mark)
        if int(table.flags[i]) & FrameFlag.RETRANSMIT:
            color = _COLORS["retransmit"]
        elif kind == FrameKind.DATA:
            color = _COLORS["down" if itf.direction in _DOWN else "up"]
        else:
            color = _COLORS["ack" if kind == FrameKind.ACK else "reset"]
        arrows.append((x_of[src], x_of[dst], t_start, t_stop, color, i))
    times = sorted([t for a in arrows for t in a[2:4]] + [t for _, t in crosses]) or [lo, hi]
    y_of, cuts = _time_axis(times)
    fig = plt.figure(figsize=(14, 9))
    grid = fig.add_gridspec(2, 2, width_ratios=(2.2, 1))
    ax = fig.add_subplot(grid[:, 0])
    for x0, x1, t_start, t_stop, color, i in arrows:
        y0, y1 = y_of(t_start), y_of(t_stop)
        data = table.kind[i] == FrameKind.DATA
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.6 if data else 0.9,
                                "shrinkA": 0, "shrinkB": 0})
        if data or len(arrows) < 60:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, _label(table, i), fontsize=7, ha="center", va="bottom",
                    color=color)
    for x, t in crosses:
        ax.plot([x], [y_of(t)], "x", color="red", markersize=9)
    for y, length in cuts:
        ax.axhline(y, color="0.6", lw=0.8, ls=(0, (6, 4)))
        ax.text(len(names) - 0.55, y, f"{length / 1e6:.3f} ms idle", fontsize=7, ha="right", va="bottom",
                color="0.4")
    for x in x_of.values():
        ax.axvline(x, color="0.85", lw=1, zorder=0)
    ax.set_xticks(range(len(names)), names)
    ax.xaxis.tick_top()
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylim(y_of(times[-1]) + 10, y_of(times[0]) - 10)
    ticks = [y for y in np.linspace(y_of(times[0]), y_of(times[-1]), 8)
             if all(abs(y - c) > GAP_DRAWN_NS / 2e3 for c, _ in cuts)]  # no tick inside a cut stretch
    ax.set_yticks(ticks, [f"{(_inverse(y, y_of) - t0) / 1e6:.3f}" for y in ticks])
    ax.set_ylabel("time since the trace's start (ms); dashed lines: idle stretches cut short")
    more = f", {skipped} more not drawn (narrow the window with --from/--to)" if skipped else ""
    ax.set_title(f"{table.trace.path}: {len(arrows)} frames{more}", fontsize=9, loc="left", pad=24)
    _histograms(fig, grid, table)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return len(arrows)


def _time_axis(times: list[int]) -> tuple[Any, list[tuple[float, int]]]:
    """Piecewise-linear map from trace time (ns) to drawing height (us), idle stretches longer than GAP_NS cut
    to GAP_DRAWN_NS; also the (height, idle length) of every cut."""
    knots_t = [times[0]]
    knots_y = [0.0]
    cuts = []
    for a, b in itertools.pairwise(times):
        if b - a > GAP_NS:
            y_a = knots_y[-1] + (a - knots_t[-1]) / 1e3
            knots_t += [a, b]
            knots_y += [y_a, y_a + GAP_DRAWN_NS / 1e3]
            cuts.append((y_a + GAP_DRAWN_NS / 2e3, b - a))
    knots_t.append(times[-1])
    knots_y.append(knots_y[-1] + (times[-1] - knots_t[-2]) / 1e3)
    kt, ky = np.asarray(knots_t, np.float64), np.asarray(knots_y, np.float64)

    def y_of(t: int) -> float:
        return float(np.interp(t, kt, ky))

    y_of.knots = (kt, ky)  # type: ignore[attr-defined]
    return y_of, cuts


def _inverse(y: float, y_of: Any) -> float:
    kt, ky = y_of.knots
    return float(np.interp(y, ky, kt))


def _histograms(fig: Any, grid: Any, table: FrameTable) -> None:
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    stats = compute(table)
    for row, (title, sample) in enumerate((("hop latency (DATA -> ACK)", stats.hop_samples),
                                           ("end-to-end latency (request -> reply)", stats.e2e_samples))):
        ax = fig.add_subplot(grid[row, 1])
        us = np.asarray(sample, dtype=np.float64) / 1e3
        us = us[us > 0]
        if len(us):
            wide = us.max() > 5 * us.min()  # a log axis only when the sample spans a decade or so
            bins = np.logspace(np.log10(us.min()), np.log10(us.max()), 40) if wide else 40
            ax.hist(us, bins=bins, color="tab:blue" if row == 0 else "tab:orange")
            if wide:
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(ScalarFormatter())
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.axvline(float(np.percentile(us, 50)), color="k", lw=1, ls="--", label="p50")
            ax.axvline(float(np.percentile(us, 99)), color="r", lw=1, ls=":", label="p99")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{title}, n={len(us)}", fontsize=9)
        ax.set_xlabel("us")
        ax.set_ylabel("frames" if row == 0 else "requests")


def main(argv: Sequence[str] | None = None) -> int:
    """``armbus trace plot FILE -o out.png|out.svg [--from T] [--to T] [--all]``; exit status 2 on a bad file or
    option, or without matplotlib."""
    p = argparse.ArgumentParser(prog="armbus trace plot", description="Sequence diagram of a trace's frames and "
                                "latency histograms.")
    p.add_argument("file", help="trace file (.pcapng)")
    p.add_argument("-o", "--out", required=True, help="output file: .png or .svg")
    p.add_argument("--from", dest="t_from", help="window start (trace time: 1.5, 250ms, 10us)")
    p.add_argument("--to", dest="t_to", help="window end")
    p.add_argument("--all", action="store_true", help="the whole trace (first arrows only)")
    args = p.parse_args(argv)
    try:
        import matplotlib  # noqa: F401 - checked first, for one clear message
    except ImportError:
        print(f"error: {MISSING}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        if not args.out.lower().endswith((".png", ".svg")):
            raise UsageError(f"output {args.out!r}: use a .png or .svg file name")
        table = decode_file(args.file)
        window: tuple[int, int] | None = None
        if args.all and len(table):
            window = int(table.t_ns[0]), int(table.t_ns[-1])
        elif args.t_from is not None or args.t_to is not None:
            lo, hi = default_window(table)
            t0 = origin(table)
            window = (t0 + parse_time(args.t_from) if args.t_from else lo,
                      t0 + parse_time(args.t_to) if args.t_to else hi)
            if window[1] <= window[0]:
                raise UsageError(f"empty window {args.t_from}..{args.t_to}")
        drawn = draw(table, args.out, window)
    except (TraceError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except OSError as exc:
        print(f"error: cannot write {args.out!r}: {exc.strerror}", file=sys.stderr)
        return ExitCode.USAGE
    print(f"wrote {args.out} ({drawn} frames)")
    return 0
