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
    assert plot.main([str(session), "-o", str(out), "--from", "180ms", "--to", "190ms"]) == 0
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
