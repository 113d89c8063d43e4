"""docs/protocol.md's generated tables are current, and its worked examples match the codec."""

from __future__ import annotations

from pathlib import Path

from armbus.bus import layout
from armbus.bus import messages as m
from armbus.bus.codec import encode_control, encode_data
from armbus.bus.wire import FrameKind, MsgType

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_generated_tables_are_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert layout.update_doc(text) == text, "run: python -m armbus.bus.layout --update docs/protocol.md"


def test_every_message_type_has_a_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    for t in MsgType:
        assert f"#### 0x{int(t):02X} {t.name}\n" in text


def test_worked_examples_are_the_codec_output() -> None:
    text = DOC.read_text(encoding="utf-8")
    wire = encode_data(10, 0, m.make_packet(m.SetGoal(1, 1_500_000), 0, 1, 7))
    assert " ".join(f"{b:02x}" for b in wire) in text
    assert " ".join(f"{b:02x}" for b in encode_control(FrameKind.ACK, 10)) in text
