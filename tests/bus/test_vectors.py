"""docs/test-vectors.json is current, covers the protocol, and every decoder gives each vector's expected result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from armbus.bus import layout
from armbus.bus.codec import Frame, LineError, decode_wire
from armbus.bus.deframer import Deframer
from armbus.bus.errors import DecodeError
from armbus.bus.messages import decode_packet
from armbus.bus.wire import FrameKind, LineErrorKind, MsgType
from armbus.tools.gen import vectors

VECTORS_PATH = Path(__file__).resolve().parents[2] / "docs" / "test-vectors.json"
DOC: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
ALL = DOC["vectors"]


def test_file_matches_the_generator() -> None:
    assert VECTORS_PATH.read_text(encoding="utf-8") == vectors.render(), (
        "run: python -m armbus.tools.gen.vectors --write " + str(VECTORS_PATH)
    )
    assert vectors.main(["--check", str(VECTORS_PATH)]) == 0


def test_check_option_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "v.json"
    stale.write_text(vectors.render().replace('"ping"', '"pong"', 1), encoding="utf-8")
    assert vectors.main(["--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_vectors_cover_the_protocol() -> None:
    names = [v["name"] for v in ALL]
    assert len(ALL) >= 40 and len(set(names)) == len(names)
    assert {v["frame"]["packet"]["type"] for v in ALL if "message" in v} == {t.name for t in MsgType}
    assert {v["frame"]["kind"] for v in ALL if "frame" in v} == {k.name for k in FrameKind}
    assert {v["error"] for v in ALL if "error" in v} == {k.name for k in LineErrorKind}
    assert any("payload_error" in v for v in ALL)
    assert DOC["crc"]["check"] == "0x29B1"


def _expected(v: dict[str, Any]) -> Frame | LineError:
    if "error" in v:
        return LineError(LineErrorKind[v["error"]], v["size"])
    return vectors.frame_from_json(v["frame"])


@pytest.mark.parametrize("v", ALL, ids=[v["name"] for v in ALL])
def test_vector_decodes_as_expected(v: dict[str, Any]) -> None:
    wire = bytes.fromhex(v["wire"])
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    expected = _expected(v)
    # one-shot decoder
    if isinstance(expected, LineError):
        with pytest.raises(DecodeError) as exc:
            decode_wire(wire)
        assert exc.value.kind == expected.kind
    else:
        assert decode_wire(wire) == expected
    # streaming decoder: whole, then one byte at a time
    d = Deframer()
    assert d.feed(wire) == [expected]
    d1 = Deframer()
    got: list[Frame | LineError] = []
    for i in range(len(wire)):
        got += d1.feed(wire[i:i + 1])
        assert d1.buffered < len(wire)
    assert got == [expected]
    assert d.counters == d1.counters
    # the construct reference
    assert layout.decode_chunk(wire[:-1]) == expected
    # payload level
    if isinstance(expected, Frame) and expected.packet is not None:
        if "payload_error" in v:
            with pytest.raises(DecodeError) as exc:
                decode_packet(expected.packet)
            assert exc.value.kind == LineErrorKind[v["payload_error"]]
        elif "message" in v:
            assert vectors.message_json(decode_packet(expected.packet)) == v["message"]


def test_all_vectors_in_one_stream_any_chunking() -> None:
    stream = b"".join(bytes.fromhex(v["wire"]) for v in ALL)
    expected = [_expected(v) for v in ALL]
    for size in (1, 2, 3, 5, 64, len(stream)):
        d = Deframer()
        got: list[Frame | LineError] = []
        for i in range(0, len(stream), size):
            got += d.feed(stream[i:i + size])
        assert got == expected, size


def test_message_classes_are_the_ones_protocol_md_defines() -> None:
    text = (VECTORS_PATH.parent / "protocol.md").read_text(encoding="utf-8")
    table = text.split("<!-- message classes: type | class -->", 1)[1].split("\n\n", 1)[0]
    defined: dict[str, str] = {}
    for line in [row for row in table.splitlines() if row.startswith("|")][2:]:
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        for i in range(0, len(cells) - 1, 3):
            defined[cells[i]] = cells[i + 1]
    assert set(defined) == {t.name for t in MsgType}
    for v in ALL:
        if "message" in v:
            assert defined[v["frame"]["packet"]["type"]] == v["message"]["class"], v["name"]


def test_the_estop_frame_is_13_bytes_and_15_on_the_wire() -> None:
    estop = next(v for v in ALL if v["name"] == "estop")
    wire = bytes.fromhex(estop["wire"])
    assert len(wire) == 15 and len(wire) - 2 == 13  # one COBS code byte and the delimiter
    porting = (VECTORS_PATH.parent / "porting-firmware.md").read_text(encoding="utf-8")
    joints = (VECTORS_PATH.parent / "joints.md").read_text(encoding="utf-8")
    assert "13 bytes unencoded, 15 on the wire" in porting and "(15 bytes: 150 us at 1 Mbaud)" in joints
