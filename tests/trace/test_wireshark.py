"""The Wireshark dissector (docs/wireshark/armbus.lua) agrees with armbus.bus.codec and armbus.bus.messages (tshark),
on frames built here and on every vector of docs/test-vectors.json: the cyclic exchange's goals and records field
by field, and every payload that does not fit its type flagged as malformed."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cobs import cobs

from armbus.bus.codec import Frame, Packet, decode_frame, encode_control, encode_data, frame_body
from armbus.bus.cycle import Cycle, CycleRecord, CycleReply
from armbus.bus.errors import DecodeError
from armbus.bus.messages import (
    Enumerate,
    EnumerateReply,
    Error,
    EStop,
    Fault,
    Heartbeat,
    JointRecord,
    Message,
    Ping,
    PingReply,
    Read,
    ReadReply,
    Reboot,
    SetGoal,
    State,
    SyncRead,
    SyncReadReply,
    SyncRecord,
    SyncWrite,
    Torque,
    Undeliverable,
    Write,
    WriteReply,
    decode_payload,
    make_packet,
)
from armbus.bus.wire import FrameFlag, FrameKind, LineErrorKind, MsgType
from armbus.hil.trace.pcapng import TraceWriter

DOCS = Path(__file__).resolve().parents[2] / "docs"
DISSECTOR = DOCS / "wireshark" / "armbus.lua"
VECTORS = json.loads((DOCS / "test-vectors.json").read_text(encoding="utf-8"))["vectors"]
TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(
    TSHARK is None, reason="tshark is not installed (Debian: apt-get install -y tshark)")

MESSAGES: list[Message] = [
    Ping(), PingReply(7, 1, 2, 123456, 3), Read(0x20, 4), ReadReply(0x20, b"\x01\x02"), Write(0x30, b"\xaa"),
    WriteReply(0x30, 1), SetGoal(1, -1_500_000), Torque(1), EStop(2), Heartbeat(99), Reboot(),
    State(3, -123456, 789, -42, 315, 12000), Fault(1, 1, -5), Undeliverable(2, 3, 0, 4, 3, 77, 1),
    Error(3, 3, 9), SyncWrite(0x40, 2, 1, b"\x01\x02\x03\x04"),
    SyncRead(0x50, 1, (SyncRecord(1, 0, b"\x05"),)), SyncReadReply(0x50, 1, (SyncRecord(1, 0, b"\x05"),)),
    Enumerate((JointRecord(7, 1),)), EnumerateReply((JointRecord(7, 1), JointRecord(7, 2))),
    Cycle(0x38, 10, 1, 2, (5, -6)), CycleReply(0x38, 2, (CycleRecord(3, 1, 0x3F, 65535, b"\x01\x02"),)),
]
#: Wireshark's expert group of malformed packets (PI_MALFORMED).
PI_MALFORMED = "117440512"


def _corrupt(seq: int, packet: Packet) -> bytes:
    """A DATA frame with one payload bit flipped before COBS encoding: a CRC error, framing intact."""
    body = bytearray(frame_body(seq, 0, packet))
    body[-3] ^= 0x01
    return cobs.encode(bytes(body)) + b"\x00"


def _chunks() -> list[bytes]:
    chunks = [encode_data(i, 0, make_packet(m, 0, i % 3 + 1, 1000 + i)) for i, m in enumerate(MESSAGES)]
    chunks.append(encode_control(FrameKind.ACK, 9))
    chunks.append(encode_data(5, FrameFlag.RETRANSMIT, make_packet(Torque(0), 0, 2, 55)))
    chunks.append(encode_data(1, 0, make_packet(Read(1, 2), 0, 1, 7)) + encode_data(2, 0, make_packet(
        Read(3, 4), 0, 2, 8)))  # two frames in one chunk
    chunks.append(b"\x05\x01\x02\x00")  # COBS code pointing past the end
    chunks.append(_corrupt(3, make_packet(State(0, 1, 2, 3, 4, 5), 1, 0, 3)))
    return chunks


def _expected(chunk: bytes, field: str) -> str:
    values = []
    for piece in filter(None, chunk.split(b"\x00")):
        try:
            fr: Frame | None = decode_frame(piece)
            err = None
        except DecodeError as exc:
            fr, err = None, exc.kind
        if field == "armbus.error":
            values += [LineErrorKind(err).name] if err else []
        elif field == "armbus.crc_ok":
            values += ["1"] if fr else (["0"] if err == LineErrorKind.CRC else [])
        elif fr is None:
            continue
        elif field == "armbus.kind":
            values.append(str(fr.kind))
        elif field == "armbus.seq":
            values.append(str(fr.seq))
        elif field == "armbus.retransmit":
            values.append(str(fr.flags & FrameFlag.RETRANSMIT))
        elif fr.packet is not None:
            p: Packet = fr.packet
            net = {"armbus.type": f"0x{p.type:02x}", "armbus.src": str(p.src), "armbus.dst": str(p.dst),
                   "armbus.msg_id": str(p.msg_id), "armbus.ttl": str(p.ttl)}
            if field in net:
                values.append(net[field])
            else:
                msg = decode_payload(p.type, p.payload)
                prefix = f"armbus.{MsgType(p.type).name.lower()}."
                if field.startswith(prefix):
                    values.append(str(getattr(msg, field[len(prefix):])))
    return ",".join(values)


def _tshark(tmp_path: Path, chunks: list[bytes], fields: list[str]) -> list[dict[str, str]]:
    """Each chunk as one packet of a capture, dissected by tshark: the fields' values per packet, every occurrence
    comma-separated."""
    path = tmp_path / "w.pcapng"
    with TraceWriter(path) as w:
        for i, c in enumerate(chunks):
            w("host-j1", "down", 1000 * i, c)
    assert TSHARK is not None
    cmd = [TSHARK, "-X", f"lua_script:{DISSECTOR}", "-r", str(path), "-T", "fields", "-E", "separator=/t",
           "-E", "occurrence=a"]
    for name in fields:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "Lua" not in out.stderr and "rror" not in out.stderr.replace("Running as user", ""), out.stderr
    rows = [dict(zip(fields, line.split("\t"), strict=True)) for line in out.stdout.splitlines()]
    assert len(rows) == len(chunks)
    return rows


def test_tshark_dissects_like_the_codec(tmp_path: Path) -> None:
    chunks = _chunks()
    fields = ["armbus.kind", "armbus.seq", "armbus.retransmit", "armbus.type", "armbus.src", "armbus.dst",
              "armbus.msg_id", "armbus.ttl", "armbus.crc_ok", "armbus.error", "armbus.payload_error"]
    for m in MESSAGES:
        fields += [f"armbus.{m.TYPE.name.lower()}.{f.name}" for f in dataclasses.fields(m)
                   if isinstance(getattr(m, f.name), int)]
    rows = _tshark(tmp_path, chunks, fields)
    for chunk, got in zip(chunks, rows, strict=True):
        want = {name: _expected(chunk, name) for name in fields if name != "armbus.payload_error"}
        assert {k: v for k, v in got.items() if k != "armbus.payload_error"} == want, chunk.hex()
    assert rows[-2]["armbus.error"] == "COBS"
    assert rows[-1]["armbus.crc_ok"] == "0"
    assert rows[-1]["armbus.error"] == "CRC"
    assert all(row["armbus.payload_error"] == "" for row in rows)


CYCLE_FIELDS = ["armbus.type", "armbus.cycle.reg", "armbus.cycle.length", "armbus.cycle.mode", "armbus.cycle.first",
                "armbus.cycle.goal", "armbus.cycle_reply.reg", "armbus.cycle_reply.length", "armbus.record.address",
                "armbus.record.status", "armbus.record.result", "armbus.record.read_result",
                "armbus.record.goal_result", "armbus.record.age_us", "armbus.data", "armbus.payload_error"]


def _cycle_expected(chunk: bytes) -> dict[str, str]:
    """What tshark must show for a chunk holding one CYCLE or CYCLE_REPLY, from the codec's own decoding."""
    fr = decode_frame(chunk[:-1])
    assert fr.packet is not None
    msg = decode_payload(fr.packet.type, fr.packet.payload)
    want = dict.fromkeys(CYCLE_FIELDS, "")
    want["armbus.type"] = f"0x{fr.packet.type:02x}"
    join = ",".join
    if isinstance(msg, Cycle):
        want.update({"armbus.cycle.reg": str(msg.reg), "armbus.cycle.length": str(msg.length),
                     "armbus.cycle.mode": str(msg.mode), "armbus.cycle.first": str(msg.first),
                     "armbus.cycle.goal": join(str(g) for g in msg.goals)})
    else:
        assert isinstance(msg, CycleReply)
        recs = msg.records
        want.update({"armbus.cycle_reply.reg": str(msg.reg), "armbus.cycle_reply.length": str(msg.length),
                     "armbus.record.address": join(str(r.address) for r in recs),
                     "armbus.record.status": join(f"0x{r.status:02x}" for r in recs),
                     "armbus.record.result": join(f"0x{r.result:02x}" for r in recs),
                     "armbus.record.read_result": join(str(r.read_result) for r in recs),
                     "armbus.record.goal_result": join(str(r.goal_result) for r in recs),
                     "armbus.record.age_us": join(str(r.age_us) for r in recs),
                     "armbus.data": join(r.data.hex() for r in recs if r.data)})
    return want


def test_tshark_dissects_the_cyclic_exchange_field_by_field(tmp_path: Path) -> None:
    chunks = [bytes.fromhex(v["wire"]) for v in VECTORS if "payload_error" not in v and v.get("frame", {}).get(
        "packet", {}).get("type") in ("CYCLE", "CYCLE_REPLY")]
    assert len(chunks) == 7
    chunks.append(encode_data(3, 0, make_packet(CycleReply(0x38, 2, (
        CycleRecord(6, 0x81, 0x3F, 65535, b"\x00\x01"), CycleRecord(5, 0x10, 0x07, 0, b"\xff\xfe"))), 5, 0, 9)))
    chunks.append(encode_data(4, 0, make_packet(Cycle(0x40, 0, 3, 4, (-2_500, 2_500)), 3, 255, 10)))
    rows = _tshark(tmp_path, chunks, CYCLE_FIELDS)
    for chunk, got in zip(chunks, rows, strict=True):
        assert got == _cycle_expected(chunk), chunk.hex()
    assert rows[-2]["armbus.record.read_result"] == "3,0"  # the high nibble, shifted down
    assert rows[-2]["armbus.record.goal_result"] == "15,7"


def test_tshark_flags_exactly_the_malformed_payload_vectors(tmp_path: Path) -> None:
    """Every vector: a payload that does not fit its type is marked (field, MALFORMED expert item, Info column);
    no other vector is."""
    chunks = [bytes.fromhex(v["wire"]) for v in VECTORS]
    rows = _tshark(tmp_path, chunks, ["armbus.payload_error", "_ws.expert.group", "_ws.col.Info"])
    malformed = [v["name"] for v in VECTORS if "payload_error" in v]
    assert {v for v in malformed if v.startswith("payload_cycle")} == {
        "payload_cycle_short", "payload_cycle_partial_goal", "payload_cycle_goals_without_mode",
        "payload_cycle_reply_partial", "payload_cycle_reply_header"}
    for v, row in zip(VECTORS, rows, strict=True):
        bad = "payload_error" in v
        assert row["armbus.payload_error"] == ("LENGTH" if bad else ""), v["name"]
        assert (PI_MALFORMED in row["_ws.expert.group"].split(",")) == (bad or "error" in v), v["name"]
        assert row["_ws.col.Info"].endswith("!payload") == bad, v["name"]
