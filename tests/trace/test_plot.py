"""Trace plots: PNG and SVG files are written and valid; the default window follows the furthest request."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from trace_sessions import record_session

from armbus.bus.wire import MsgType
from armbus.hil.trace import plot
from armbus.hil.trace.decode import decode_file

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plot") / "session.pcapng"
    record_session(path)
    return path


def test_png_and_svg_are_written(session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png, svg = tmp_path / "t.png", tmp_path / "t.svg"
    assert plot.main([str(session), "-o", str(png)]) == 0
    assert png.read_bytes().startswith(PNG_SIGNATURE) and png.stat().st_size > 10_000
    assert plot.main([str(session), "-o", str(svg), "--all"]) == 0
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    out = capsys.readouterr().out
    assert "wrote" in out and "more not drawn" not in out


def test_default_window_is_the_request_that_travels_furthest(session: Path) -> None:
    table = decode_file(str(session))
    lo, hi = plot.default_window(table)
    inside = (table.t_ns >= lo) & (table.t_ns <= hi)
    # the enumeration is the first request that reaches the last joint, and its reply comes back in the window
    enum_links = {table.trace.interfaces[int(i)].link for i in table.iface[inside & (table.type == MsgType.ENUMERATE)]}
    assert enum_links == {"host-j1", "j1-j2", "j2-j3"}
    assert (inside & (table.type == MsgType.ENUMERATE_REPLY)).sum() == 3
    assert not (inside & (table.type == MsgType.READ)).any()


def test_time_window_and_bad_options(session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.png"
    assert plot.main([str(session), "-o", str(out), "--from", "5ms", "--to", "10ms"]) == 0
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert plot.main([str(session), "-o", str(tmp_path / "x.jpg")]) == 2
    assert plot.main([str(session), "-o", str(out), "--from", "2s", "--to", "1s"]) == 2
    assert plot.main([str(tmp_path / "missing.pcapng"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert ".png or .svg" in err and "empty window" in err and "no such file" in err


def test_missing_matplotlib_is_one_clear_line(session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert plot.main([str(session), "-o", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib" in err[0] and "armbus[plot]" in err[0]
    assert not (tmp_path / "m.png").exists()


def _tap_like_capture(path: Path) -> None:
    """A wall-clock capture as armbus tap writes it: absolute stamps (ns since the epoch), capture=tap."""
    from armbus.bus.codec import encode_control, encode_data
    from armbus.bus.messages import Ping, PingReply, make_packet
    from armbus.bus.wire import FrameKind
    from armbus.hil.trace.pcapng import TraceWriter

    t0 = 1_796_527_028_257_000_000
    with TraceWriter(path, {"capture": "tap", "baud": 1_000_000}) as w:
        for k in range(20):
            t = t0 + k * 10_000_000
            w("host-j1", "a>b", t, encode_data(k % 256, 0, make_packet(Ping(), 0, 1, k + 1)))
            w("host-j1", "b>a", t + 200_000, encode_control(FrameKind.ACK, k % 256))
            w("host-j1", "b>a", t + 400_000, encode_data(k % 256, 0, make_packet(PingReply(1, 1, 0, 7, 1), 1, 0,
                                                                                    k + 1)))


def test_a_wall_clock_capture_plots_in_time_since_its_start(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    cap = tmp_path / "tap.pcapng"
    _tap_like_capture(cap)
    out = tmp_path / "tap.svg"
    assert plot.main([str(cap), "-o", str(out), "--from", "0", "--to", "25ms"]) == 0
    labels = [t.text or "" for t in ET.parse(out).iter("{http://www.w3.org/2000/svg}text")]
    svg = out.read_text()
    assert "time since the trace" in svg and "1796527028" not in svg, labels
    assert "(9 frames)" in capsys.readouterr().out  # three pings of three frames each in the first 25 ms
    assert plot.main([str(cap), "-o", str(out), "--from", "5s", "--to", "6s"]) == 2
    err = capsys.readouterr().err
    assert "no frame between 5000.000 ms and 6000.000 ms: the trace spans 0.000 .. 190.400 ms" in err
