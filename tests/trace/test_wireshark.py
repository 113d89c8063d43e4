"""The Wireshark dissector (docs/wireshark/armbus.lua) agrees with armbus.bus.codec and armbus.bus.messages (tshark)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
from cobs import cobs

from armbus.bus.codec import Frame, Packet, decode_frame, encode_control, encode_data, frame_body
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

DISSECTOR = Path(__file__).resolve().parents[2] / "docs" / "wireshark" / "armbus.lua"
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
]


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


def test_tshark_dissects_like_the_codec(tmp_path: Path) -> None:
    chunks = _chunks()
    path = tmp_path / "w.pcapng"
    with TraceWriter(path) as w:
        for i, c in enumerate(chunks):
            w("host-j1", "down", 1000 * i, c)
    fields = ["armbus.kind", "armbus.seq", "armbus.retransmit", "armbus.type", "armbus.src", "armbus.dst",
              "armbus.msg_id", "armbus.ttl", "armbus.crc_ok", "armbus.error"]
    for m in MESSAGES:
        fields += [f"armbus.{m.TYPE.name.lower()}.{f.name}" for f in dataclasses.fields(m)
                   if isinstance(getattr(m, f.name), int)]
    assert TSHARK is not None
    cmd = [TSHARK, "-X", f"lua_script:{DISSECTOR}", "-r", str(path), "-T", "fields", "-E", "separator=/t",
           "-E", "occurrence=a"]
    for name in fields:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "Lua" not in out.stderr and "rror" not in out.stderr.replace("Running as user", ""), out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert len(rows) == len(chunks)
    for chunk, row in zip(chunks, rows, strict=True):
        got = dict(zip(fields, row, strict=True))
        want = {name: _expected(chunk, name) for name in fields}
        assert got == want, chunk.hex()
    assert rows[-2][fields.index("armbus.error")] == "COBS"
    assert rows[-1][fields.index("armbus.crc_ok")] == "0"
    assert rows[-1][fields.index("armbus.error")] == "CRC"
