"""Test vectors for armbus implementations: docs/test-vectors.json is generated from this module.

Theory of operation
-------------------
Each vector is one wire frame (COBS bytes plus the 0x00 delimiter, as hex) with what a receiver must make of it:
either the decoded frame (link header, network header, payload hex, and the decoded message fields) or the line
error kind it must count. Payload-level vectors are valid frames whose payload does not fit its message type: the
frame decodes, the message does not (``payload_error``). Firmware written in C can replay the file against its
receiver; the Python test-suite regenerates it from code and fails on any difference, then decodes every vector
whole, through the streaming deframer at once, and one byte at a time.

Invalid frames are built by hand from their unencoded bytes (``_raw``), with a correct CRC unless the vector is
about the CRC, so that each shows exactly one fault.

Usage: ``python -m armbus.tools.gen.vectors`` prints the JSON; ``--write PATH`` writes it; ``--check PATH`` exits 1 when
the file differs from what the code generates.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from cobs import cobs

from armbus.bus import cycle as cyc
from armbus.bus import messages as m
from armbus.bus.codec import Frame, Packet, encode_control, encode_data
from armbus.bus.crc import crc16
from armbus.bus.errors import ExitCode
from armbus.bus.wire import (
    MAX_ENCODED,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    Address,
    ErrorKind,
    FaultCode,
    FrameFlag,
    FrameKind,
    GoalMode,
    LineErrorKind,
    MsgType,
    StatusFlag,
    UndeliverableReason,
)

HOST, J1, J2, J3, BCAST = int(Address.HOST), 1, 2, 3, int(Address.BROADCAST)


def _json_value(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v]
    return int(v) if isinstance(v, int) else v


def frame_json(frame: Frame) -> dict[str, Any]:
    """The decoded form of a frame as it appears in the vectors."""
    out: dict[str, Any] = {"kind": FrameKind(frame.kind).name, "seq": frame.seq, "flags": frame.flags}
    if frame.packet is not None:
        p = frame.packet
        out["packet"] = {"src": p.src, "dst": p.dst, "type": MsgType(p.type).name, "msg_id": p.msg_id,
                         "ttl": p.ttl, "payload": p.payload.hex()}
    return out


def frame_from_json(d: dict[str, Any]) -> Frame:
    """Inverse of :func:`frame_json`."""
    packet = None
    if "packet" in d:
        p = d["packet"]
        packet = Packet(p["src"], p["dst"], int(MsgType[p["type"]]), p["msg_id"], p["ttl"], bytes.fromhex(p["payload"]))
    return Frame(int(FrameKind[d["kind"]]), d["seq"], d["flags"], packet)


def message_json(msg: m.Message) -> dict[str, Any]:
    """A message's class and fields, bytes as hex."""
    return {"class": type(msg).__name__, "fields": _json_value(dataclasses.asdict(msg))}


def _raw(body: bytes, *, crc: bool = True) -> bytes:
    """Wire bytes of an unencoded body: the CRC appended (unless ``crc`` is False), COBS, delimiter."""
    frame = body + crc16(body).to_bytes(2, "big") if crc else body
    return cobs.encode(frame) + b"\x00"


def _valid(name: str, description: str, seq: int, flags: int, msg: m.Message, src: int, dst: int, msg_id: int,
           ttl: int = 32) -> dict[str, Any]:
    packet = m.make_packet(msg, src, dst, msg_id, ttl)
    wire = encode_data(seq, flags, packet)
    return {"name": name, "description": description, "wire": wire.hex(),
            "frame": frame_json(Frame(0, seq, flags, packet)), "message": message_json(msg)}


def _error(name: str, description: str, wire: bytes, kind: LineErrorKind) -> dict[str, Any]:
    chunk = wire[:-1]
    size = MAX_ENCODED if kind == LineErrorKind.OVERSIZE else len(chunk)
    return {"name": name, "description": description, "wire": wire.hex(), "error": kind.name, "size": size}


def _payload_error(name: str, description: str, msg_type: MsgType, payload: bytes) -> dict[str, Any]:
    packet = Packet(HOST, J1, int(msg_type), 0x0042, 32, payload)
    wire = encode_data(7, 0, packet)
    return {"name": name, "description": description, "wire": wire.hex(),
            "frame": frame_json(Frame(0, 7, 0, packet)), "payload_error": LineErrorKind.LENGTH.name}


def _valid_vectors() -> list[dict[str, Any]]:
    v = _valid
    return [
        v("ping", "PING from the host to joint 1: empty payload", 0, 0, m.Ping(), HOST, J1, 1),
        v("ping_reply", "PING_REPLY: model 0x0102, firmware 1.4, serial 0xDEADBEEF, address 1", 0, 0,
          m.PingReply(0x0102, 1, 4, 0xDEADBEEF, 1), J1, HOST, 1),
        v("enumerate_start", "ENUMERATE as the host sends it: to BROADCAST, no records yet", 1, 0, m.Enumerate(),
          HOST, BCAST, 2),
        v("enumerate_two", "ENUMERATE as joint 2 forwards it: two records, re-originated (src 2), ttl 32 - 2 = 30",
          5, 0, m.Enumerate((m.JointRecord(0x0102, 1001), m.JointRecord(0x0103, 1002))), J2, BCAST, 2, ttl=30),
        v("enumerate_reply", "ENUMERATE_REPLY from the last of three joints", 9, 0,
          m.EnumerateReply((m.JointRecord(0x0102, 1001), m.JointRecord(0x0102, 1002), m.JointRecord(0x0201, 7))),
          J3, HOST, 2),
        v("read", "READ 4 bytes from register 0x0010", 2, 0, m.Read(0x0010, 4), HOST, J2, 3),
        v("read_reply", "READ_REPLY: register 0x0010, data 78 56 34 12", 3, 0,
          m.ReadReply(0x0010, bytes.fromhex("78563412")), J2, HOST, 3),
        v("read_reply_empty", "READ_REPLY with no data: the smallest valid payload (2 bytes)", 3, 0,
          m.ReadReply(0x0010, b""), J2, HOST, 3),
        v("write_empty", "WRITE with no data: a valid payload (2 bytes); a joint answers ERROR LENGTH", 4, 0,
          m.Write(0x0020, b""), HOST, J1, 4),
        v("sync_write_no_slices", "SYNC_WRITE with zero slices: a valid payload (4 bytes); nobody takes one, not "
          "forwarded", 6, 0, m.SyncWrite(0x0030, 4, 1, b""), HOST, BCAST, 5),
        v("write", "WRITE 2 bytes to register 0x0020 (data contains a 0x00 byte: COBS at work)", 4, 0,
          m.Write(0x0020, b"\x00\x01"), HOST, J1, 4),
        v("write_reply", "WRITE_REPLY: register 0x0020, 2 bytes written", 5, 0, m.WriteReply(0x0020, 2), J1,
          HOST, 4),
        v("sync_write", "SYNC_WRITE to register 0x0030, 4-byte slices for joints 1..3", 6, 0,
          m.SyncWrite(0x0030, 4, 1, bytes(range(1, 13))), HOST, BCAST, 5),
        v("sync_write_forwarded", "SYNC_WRITE as joint 1 forwards it: first=2, two slices left", 6, 0,
          m.SyncWrite(0x0030, 4, 2, bytes(range(5, 13))), J1, BCAST, 5, ttl=31),
        v("sync_read_request", "SYNC_READ of 2 bytes at 0x0040, as the host sends it (no records)", 7, 0,
          m.SyncRead(0x0040, 2), HOST, BCAST, 6),
        v("sync_read_reply", "SYNC_READ_REPLY with records from joints 1 and 2", 8, 0,
          m.SyncReadReply(0x0040, 2, (m.SyncRecord(1, int(StatusFlag.TORQUE_ON), b"\x10\x27"),
                                      m.SyncRecord(2, int(StatusFlag.TORQUE_ON | StatusFlag.MOVING), b"\xff\x00"))),
          J2, HOST, 6),
        v("set_goal_position", "SET_GOAL position 1.5 rad = 1500000 urad to joint 1 (a typical 17-byte frame)",
          10, 0, m.SetGoal(int(GoalMode.POSITION), 1_500_000), HOST, J1, 7),
        v("set_goal_velocity_negative", "SET_GOAL velocity -0.25 rad/s (negative i32)", 11, 0,
          m.SetGoal(int(GoalMode.VELOCITY), -250_000), HOST, J2, 8),
        v("torque_on", "TORQUE enable", 12, 0, m.Torque(1), HOST, J1, 9),
        v("estop", "ESTOP broadcast, reason 1", 13, 0, m.EStop(1), HOST, BCAST, 10),
        v("estop_forwarded", "ESTOP as joint 2 passes it on: re-originated (src 2), ttl 30, the host's msg_id", 3, 0,
          m.EStop(1), J2, BCAST, 10, ttl=30),
        v("heartbeat", "HEARTBEAT broadcast at host time 123456 ms", 14, 0, m.Heartbeat(123_456), HOST, BCAST, 11),
        v("heartbeat_forwarded", "HEARTBEAT as joint 1 passes it on unedited: src stays HOST, ttl 31", 6, 0,
          m.Heartbeat(123_456), HOST, BCAST, 11, ttl=31),
        v("reboot", "REBOOT joint 3", 15, 0, m.Reboot(), HOST, J3, 12),
        v("state", "STATE from joint 2: torque on, moving, -0.5 rad, 0.1 rad/s, 350 mA, 41.5 degC, 12.0 V", 16, 0,
          m.State(int(StatusFlag.TORQUE_ON | StatusFlag.MOVING), -500_000, 100_000, 350, 415, 12_000), J2, HOST,
          0x1234),
        v("fault", "FAULT from joint 1: over-temperature active, 85.0 degC", 17, 0,
          m.Fault(int(FaultCode.OVER_TEMPERATURE), 1, 850), J1, HOST, 0x1235),
        v("undeliverable", "UNDELIVERABLE from joint 2: joint 3 never acked a READ", 18, 0,
          m.Undeliverable(2, 3, HOST, J3, int(MsgType.READ), 0x0077, int(UndeliverableReason.RETRIES)), J2, HOST,
          0x0077),
        v("error_reply", "ERROR reply to a WRITE: register out of range, detail 0x0100", 19, 0,
          m.Error(int(MsgType.WRITE), int(ErrorKind.RANGE), 0x0100), J1, HOST, 4),
        v("retransmit_flag", "A retransmitted DATA frame: flags RETRANSMIT (0x01)", 10, int(FrameFlag.RETRANSMIT),
          m.SetGoal(int(GoalMode.POSITION), 1_500_000), HOST, J1, 7),
        v("max_payload", "WRITE with the largest payload (255 bytes): 267-byte frame, 270 on the wire (MAX_ENCODED)",
          255, 0, m.Write(0x0100, bytes((i % 255) + 1 for i in range(MAX_PAYLOAD - 2))), HOST, J1, 0xFFFF, 1),
        v("all_zero_fields", "READ_REPLY full of zeros (seq, ids, ttl, data): COBS removes them all", 0, 0,
          m.ReadReply(0, bytes(8)),
          HOST, HOST, 0, 0),
        *_cycle_vectors(),
        *_cobs_vectors(),
    ]


def _nonzero_frame(name: str, description: str, size: int, zero_at: int | None = None) -> dict[str, Any]:
    """A SYNC_WRITE as joint 1 forwards it, retransmitted (flags 1), whose unencoded frame is ``size`` bytes with no
    0x00 at all (or one, at ``zero_at``): one long COBS run. The msg_id is the first that keeps the CRC non-zero."""
    data = bytearray((i % 255) + 1 for i in range(size - 16))
    if zero_at is not None:
        data[zero_at - 14] = 0  # 10 header bytes and 4 of the SYNC_WRITE header come first
    msg = m.SyncWrite(0x0101, 1, 2, bytes(data))
    for msg_id in range(0x0101, 0x10000):
        wire = encode_data(0x11, int(FrameFlag.RETRANSMIT), m.make_packet(msg, J1, BCAST, msg_id, 31))
        raw = cobs.decode(wire[:-1])
        if (0 not in raw) if zero_at is None else (raw.count(0) == 1 and raw[zero_at] == 0):
            return _valid(name, description, 0x11, int(FrameFlag.RETRANSMIT), msg, J1, BCAST, msg_id, 31)
    raise AssertionError("no msg_id gives a zero-free frame")  # pragma: no cover


def _cobs_vectors() -> list[dict[str, Any]]:
    """COBS runs of 254 bytes and more (docs/protocol.md, section 2): code 0xFF carries 254 bytes and no zero."""
    run_254 = _nonzero_frame("cobs_run_254", "a 254-byte frame with no 0x00: one code 0xFF block, no code byte "
                             "after it (255 bytes + delimiter)", 254)
    trailing = dict(run_254, name="cobs_run_254_trailing_code",
                    description="the same frame with a final code 0x01 after the 0xFF block (an empty last "
                                "block, as some encoders write it): a receiver must accept it",
                    wire=run_254["wire"][:-2] + "0100")
    return [
        run_254,
        trailing,
        _nonzero_frame("cobs_run_255", "a 255-byte frame with no 0x00: 0xFF + 254 bytes, then code 0x02 + 1 byte", 255),
        _nonzero_frame("cobs_run_254_then_zero", "a 260-byte frame whose first 254 bytes are non-zero and byte 254 "
                       "is 0x00: 0xFF + 254 bytes, then code 0x01 (the zero), then the rest", 260, zero_at=254),
        _nonzero_frame("cobs_run_267", "the largest frame (267 bytes) with no 0x00: 0xFF + 254 bytes, then code "
                       "0x0E + 13 bytes: 270 bytes on the wire (MAX_ENCODED)", 267),
    ]


def _cycle_vectors() -> list[dict[str, Any]]:
    """The cyclic exchange: a CYCLE on its way down (shrinking) and its CYCLE_REPLY on its way up (growing)."""
    v = _valid
    motion = (0x0038, 10)  # present_position .. present_current: i32, i32, i16
    goals = (100_000, -200_000, 300_000, 0, 1_570_796, -1)
    on = int(StatusFlag.TORQUE_ON)
    rec6 = m.CycleRecord(6, on, 0, 412, bytes.fromhex("a086010000000000f401"))
    rec5 = m.CycleRecord(5, on | int(StatusFlag.MOVING), 0, 388, bytes.fromhex("00000000401f0000e803"))
    stopped = m.CycleRecord(4, int(StatusFlag.ESTOPPED), cyc.result_byte(cyc.READ_OK, int(ErrorKind.BUSY)), 957,
                            bytes.fromhex("e0930400000000000000"))
    return [
        v("cycle_request", "CYCLE as the host sends it: position goals for joints 1..6, read back 10 bytes at 0x0038",
          15, 0, m.Cycle(*motion, int(GoalMode.POSITION), 1, goals), HOST, BCAST, 12),
        v("cycle_forwarded", "CYCLE as joint 1 forwards it: its slice taken, first=2, five slices left", 3, 0,
          m.Cycle(*motion, int(GoalMode.POSITION), 2, goals[1:]), J1, BCAST, 12, ttl=31),
        v("cycle_slices_spent", "CYCLE past the last commanded joint: the header alone travels to the chain end", 4,
          0, m.Cycle(*motion, int(GoalMode.POSITION), 7, ()), 6, BCAST, 12, ttl=26),
        v("cycle_read_only", "CYCLE with mode 0: no goals, every joint reads back 15 bytes at 0x0038", 16, 0,
          m.Cycle(0x0038, 15), HOST, BCAST, 13),
        v("cycle_reply_chain_end", "CYCLE_REPLY as joint 6 starts it: its own record, sample 412 us old", 0, 0,
          m.CycleReply(*motion, (rec6,)), 6, HOST, 12),
        v("cycle_reply_grown", "CYCLE_REPLY as joint 5 forwards it: records of joints 6 and 5, chain end first", 1, 0,
          m.CycleReply(*motion, (rec6, rec5)), 5, HOST, 12, ttl=31),
        v("cycle_reply_goal_refused", "CYCLE_REPLY from an e-stopped joint 4: goal refused BUSY (result 0x07)", 2, 0,
          m.CycleReply(*motion, (rec6, rec5, stopped)), 4, HOST, 12, ttl=30),
    ]


def _control_vectors() -> list[dict[str, Any]]:
    out = []
    for kind, seq, what in ((FrameKind.ACK, 10, "ACK of the DATA frame with seq 10"),
                            (FrameKind.ACK, 0, "ACK of seq 0 (zero bytes in the frame)"),
                            (FrameKind.RESET, 0x5A, "RESET with nonce 0x5A"),
                            (FrameKind.RESET_ACK, 0x5A, "RESET_ACK answering nonce 0x5A")):
        wire = encode_control(kind, seq)
        out.append({"name": f"{kind.name.lower()}_{seq}", "description": what, "wire": wire.hex(),
                    "frame": frame_json(Frame(int(kind), seq, 0, None))})
    retx = int(FrameFlag.RETRANSMIT)
    out.append({"name": "reset_retransmit", "description": "a RESET sent again (nonce 0x5A, flags RETRANSMIT): "
                "the only control frame whose flags may be non-zero", "wire": encode_control(FrameKind.RESET, 0x5A,
                                                                                              retx).hex(),
                "frame": frame_json(Frame(int(FrameKind.RESET), 0x5A, retx, None))})
    return out


def _error_vectors() -> list[dict[str, Any]]:
    good = encode_data(10, 0, m.make_packet(m.SetGoal(1, 1_500_000), HOST, J1, 7))
    raw = bytearray(cobs.decode(good[:-1]))
    e = _error
    flipped = bytearray(raw)
    flipped[12] ^= 0x04
    crc_flip = bytearray(raw)
    crc_flip[-1] ^= 0x80
    v2 = bytes([2 << 4 | 0]) + bytes(raw[1:-2])
    return [
        e("crc_payload_bit", "set_goal_position with one payload bit flipped", cobs.encode(bytes(flipped)) + b"\x00",
          LineErrorKind.CRC),
        e("crc_crc_bit", "set_goal_position with one CRC bit flipped", cobs.encode(bytes(crc_flip)) + b"\x00",
          LineErrorKind.CRC),
        e("crc_swapped_bytes", "CRC stored little-endian instead of big-endian",
          cobs.encode(bytes(raw[:-2]) + bytes(raw[-2:])[::-1]) + b"\x00", LineErrorKind.CRC),
        e("cobs_code_past_end", "COBS code byte 0x09 with only 3 bytes after it", b"\x09\x11\x01\x02\x00",
          LineErrorKind.COBS),
        e("cobs_bad_last_block", "a valid frame whose last COBS code byte was corrupted to point past the end",
          _bad_cobs(good), LineErrorKind.COBS),
        e("oversize", f"{MAX_ENCODED + 30} non-zero bytes without a delimiter: dropped at byte {MAX_ENCODED}",
          b"\x01" * (MAX_ENCODED + 30) + b"\x00", LineErrorKind.OVERSIZE),
        e("truncated_short", "3 bytes: shorter than the smallest (5-byte) frame", _raw(b"\x11\x01\x00", crc=False),
          LineErrorKind.TRUNCATED),
        e("truncated_single_byte", "one byte of noise between delimiters", b"\x02\x7f\x00", LineErrorKind.TRUNCATED),
        e("truncated_data", "a DATA frame of 8 bytes with a valid CRC: too short for its network header",
          _raw(b"\x10\x01\x00\x00\x01\x07"), LineErrorKind.TRUNCATED),
        e("version_2", "set_goal_position marked protocol version 2 (CRC valid)", _raw(v2), LineErrorKind.VERSION),
        e("version_0_ack", "an ACK marked protocol version 0", _raw(b"\x01\x05\x00"), LineErrorKind.VERSION),
        e("kind_4", "frame kind 4 (undefined), CRC valid", _raw(b"\x14\x05\x00"), LineErrorKind.KIND),
        e("kind_15", "frame kind 15 on a DATA-sized frame", _raw(b"\x1f" + bytes(raw[1:-2])), LineErrorKind.KIND),
        e("type_unknown", "DATA frame with message type 0x77", _raw(bytes(raw[:5]) + b"\x77" + bytes(raw[6:-2])),
          LineErrorKind.TYPE),
        e("type_zero", "DATA frame with message type 0x00", _raw(bytes(raw[:5]) + b"\x00" + bytes(raw[6:-2])),
          LineErrorKind.TYPE),
        e("length_too_big", "length field 6 but 5 payload bytes", _raw(bytes(raw[:9]) + b"\x06" + bytes(raw[10:-2])),
          LineErrorKind.LENGTH),
        e("length_too_small", "length field 4 but 5 payload bytes", _raw(bytes(raw[:9]) + b"\x04" + bytes(raw[10:-2])),
          LineErrorKind.LENGTH),
        e("length_control_extra", "an ACK with one extra byte (6-byte control frame)", _raw(b"\x11\x05\x00\x00"),
          LineErrorKind.LENGTH),
    ]


def _bad_cobs(good: bytes) -> bytes:
    """``good`` with its first COBS code byte raised so that it points past the end of the chunk."""
    chunk = bytearray(good[:-1])
    chunk[0] = len(chunk) + 1
    return bytes(chunk) + b"\x00"


def _payload_vectors() -> list[dict[str, Any]]:
    p = _payload_error
    return [
        p("payload_set_goal_short", "SET_GOAL with a 4-byte payload (needs 5)", MsgType.SET_GOAL, b"\x01\x00\x00\x00"),
        p("payload_ping_extra", "PING with a 1-byte payload (needs 0)", MsgType.PING, b"\x00"),
        p("payload_state_long", "STATE with 16 bytes (needs 15)", MsgType.STATE, bytes(16)),
        p("payload_enumerate_count", "ENUMERATE whose count says 2 but carries one record", MsgType.ENUMERATE,
          b"\x02" + bytes(6)),
        p("payload_sync_read_partial", "SYNC_READ_REPLY whose last record is cut short", MsgType.SYNC_READ_REPLY,
          b"\x40\x00\x02" + b"\x01\x01\x10\x27" + b"\x02\x01\xff"),
        p("payload_sync_write_slices", "SYNC_WRITE with 5 data bytes for 2-byte slices", MsgType.SYNC_WRITE,
          b"\x30\x00\x02\x01" + bytes(5)),
        p("payload_sync_write_zero_slice", "SYNC_WRITE with slice_len 0", MsgType.SYNC_WRITE, b"\x30\x00\x00\x01"),
        p("payload_read_reply_short", "READ_REPLY with 1 byte (register needs 2)", MsgType.READ_REPLY, b"\x10"),
        p("payload_cycle_short", "CYCLE with a 4-byte payload (the header needs 5)", MsgType.CYCLE,
          b"\x38\x00\x0a\x01"),
        p("payload_cycle_partial_goal", "CYCLE whose second goal is 3 bytes", MsgType.CYCLE,
          b"\x38\x00\x0a\x01\x01" + bytes(4) + b"\x01\x02\x03"),
        p("payload_cycle_goals_without_mode", "CYCLE with mode 0 (no goals) that carries a goal", MsgType.CYCLE,
          b"\x38\x00\x0a\x00\x01" + bytes(4)),
        p("payload_cycle_reply_partial", "CYCLE_REPLY whose second record is cut short", MsgType.CYCLE_REPLY,
          b"\x38\x00\x02" + b"\x06\x01\x00\x10\x00\xaa\xbb" + b"\x05\x01\x00\x10"),
        p("payload_cycle_reply_header", "CYCLE_REPLY with 2 bytes (the header needs 3)", MsgType.CYCLE_REPLY,
          b"\x38\x00"),
    ]


def build_vectors() -> dict[str, Any]:
    """Every vector, as the JSON document docs/test-vectors.json holds."""
    return {
        "description": "armbus wire test vectors (generated by `python -m armbus.tools.gen.vectors`; "
                       "see docs/protocol.md). "
                       "'wire' is the exact byte sequence on the line, COBS-encoded, with its 0x00 delimiter. "
                       "A vector has 'frame' (a receiver must decode exactly this), 'error' (a receiver must "
                       "drop the frame and count this line error; 'size' is the chunk length without the "
                       "delimiter, or 270 for OVERSIZE), and optionally 'message' (the decoded payload) or "
                       "'payload_error' (the frame is valid, its payload does not fit its message type).",
        "protocol_version": PROTOCOL_VERSION,
        "crc": {"name": "CRC-16/CCITT-FALSE", "poly": "0x1021", "init": "0xFFFF", "refin": False, "refout": False,
                "xorout": "0x0000", "check": f"0x{crc16(b'123456789'):04X}", "byte_order": "big-endian"},
        "vectors": _valid_vectors() + _control_vectors() + _error_vectors() + _payload_vectors(),
    }


def render() -> str:
    """The JSON text, deterministic (the file in docs/ must equal this byte for byte)."""
    return json.dumps(build_vectors(), indent=1) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m armbus.tools.gen.vectors", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", help="write the vectors to PATH")
    group.add_argument("--check", metavar="PATH", help="exit 1 if PATH differs from the generated vectors")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)
        return 0
    if args.check:
        try:
            with open(args.check, encoding="utf-8") as f:
                current = f.read()
        except OSError as exc:
            print(f"cannot read {args.check}: {exc}", file=sys.stderr)
            return ExitCode.FAILED
        if current != text:
            print(f"{args.check} is out of date: run python -m armbus.tools.gen.vectors --write {args.check}",
                  file=sys.stderr)
            return ExitCode.FAILED
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
