"""Corruption is always detected as designed, and bad values to encode are named."""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

import pytest
from cobs import cobs

from armbus.bus import messages as m
from armbus.bus.codec import Frame, LineError, Packet, encode_control, encode_data, encode_frame
from armbus.bus.crc import CHECK_VALUE, HAMMING_DISTANCE, crc16, crc16_fast
from armbus.bus.deframer import Deframer
from armbus.bus.errors import EncodeError
from armbus.bus.wire import CRC_SIZE, MAX_FRAME, MAX_PAYLOAD, FrameKind, LineErrorKind, MsgType

TYPICAL = encode_data(10, 0, m.make_packet(m.SetGoal(1, 1_500_000), 0, 1, 7))
STATE = encode_data(3, 0, m.make_packet(m.State(3, -500_000, 100_000, 350, 415, 12_000), 2, 0, 0x1234))


# ------------------------------------------------------------------------------------------------------ CRC
def test_crc_parameters_and_implementations_agree() -> None:
    assert crc16(b"123456789") == crc16_fast(b"123456789") == CHECK_VALUE == 0x29B1
    rng = random.Random(5)
    for n in range(0, 300, 7):
        data = rng.randbytes(n)
        assert crc16(data) == crc16_fast(data)
        assert crc16(data + crc16(data).to_bytes(2, "big")) == 0  # the zero-residue property receivers rely on


def test_hamming_distance_is_4_at_the_largest_frame() -> None:
    """Every 1-, 2- and 3-bit error in a max-size frame is detected, and some 4-bit error is not: HD = 4 exactly.

    The CRC is linear: an error pattern goes undetected iff the XOR of its bits' syndromes (the CRC, with zero
    init, of a frame with just that bit set) is zero. 1- and 2-bit errors: every syndrome is nonzero and all are
    distinct. 3-bit (every odd-weight) errors: the generator 0x11021 has an even number of terms, so (x + 1)
    divides it and no odd-weight error polynomial is a multiple of it. 4-bit: two disjoint bit pairs with the
    same syndrome XOR exist (found by a birthday search).
    """
    bits = MAX_FRAME * 8  # data + CRC bits of the largest frame
    zero = bytes(MAX_FRAME)
    syndromes = []
    for pos in range(bits):
        e = bytearray(zero)
        e[pos // 8] ^= 0x80 >> (pos % 8)
        syndromes.append(crc16_fast(bytes(e), 0))
    assert crc16_fast(zero, 0) == 0
    assert all(syndromes) and len(set(syndromes)) == bits  # every 1- and 2-bit error detected
    assert bin(0x11021).count("1") % 2 == 0  # (x + 1) | g(x): every odd-weight error detected
    rng = random.Random(9)
    for _ in range(2000):  # spot check of the 3-bit claim
        a, b, c = rng.sample(range(bits), 3)
        assert syndromes[a] ^ syndromes[b] ^ syndromes[c]
    pairs: dict[int, tuple[int, int]] = {}
    found = None
    for a, b in itertools.combinations(range(600), 2):
        s = syndromes[a] ^ syndromes[b]
        if s in pairs and not set(pairs[s]) & {a, b}:
            found = (*pairs[s], a, b)
            break
        pairs.setdefault(s, (a, b))
    assert found is not None
    assert not syndromes[found[0]] ^ syndromes[found[1]] ^ syndromes[found[2]] ^ syndromes[found[3]]
    assert HAMMING_DISTANCE == 4


# ------------------------------------------------------------------------------------------------ bit flips
def _decode_one(wire: bytes) -> list[Frame | LineError]:
    return Deframer().feed(wire)


@pytest.mark.parametrize("wire", [TYPICAL, STATE, encode_control(FrameKind.ACK, 10)], ids=["set_goal", "state", "ack"])
def test_every_1_2_and_3_bit_error_in_the_frame_is_a_crc_error(wire: bytes) -> None:
    raw = cobs.decode(wire[:-1])
    bits = len(raw) * 8
    flips: list[tuple[int, ...]] = [(i,) for i in range(bits)]
    flips += list(itertools.combinations(range(bits), 2))
    rng = random.Random(1)
    flips += [tuple(rng.sample(range(bits), 3)) for _ in range(3000)]
    for flip in flips:
        bad = bytearray(raw)
        for bit in flip:
            bad[bit // 8] ^= 0x80 >> (bit % 8)
        assert _decode_one(cobs.encode(bytes(bad)) + b"\x00") == [LineError(LineErrorKind.CRC, len(wire) - 1)], flip


@pytest.mark.parametrize("wire", [TYPICAL, STATE], ids=["set_goal", "state"])
def test_every_single_bit_flip_on_the_wire_is_caught_and_resynced(wire: bytes) -> None:
    """Flips that hit COBS code bytes or make a 0x00 shift the frame apart; none yields a wrong frame, and the
    next frame is always received."""
    original = _decode_one(wire)[0]
    for i in range(len(wire) * 8):
        bad = bytearray(wire)
        bad[i // 8] ^= 0x80 >> (i % 8)
        out = Deframer().feed(bytes(bad) + TYPICAL)
        frames = [x for x in out[:-1] if isinstance(x, Frame)]
        assert all(f == original for f in frames)  # a wrong frame never comes through
        if i < (len(wire) - 1) * 8:  # the delimiter survived: the next frame is received
            assert out[-1] == _decode_one(TYPICAL)[0]


# -------------------------------------------------------------------------------------------- encode errors
@pytest.mark.parametrize(
    ("field", "seq", "flags", "packet_kw"),
    [
        ("seq", 256, 0, {}),
        ("seq", -1, 0, {}),
        ("flags", 0, 256, {}),
        ("src", 0, 0, {"src": 300}),
        ("dst", 0, 0, {"dst": -1}),
        ("type", 0, 0, {"type": 0x77}),
        ("type", 0, 0, {"type": 256}),
        ("msg_id", 0, 0, {"msg_id": 0x10000}),
        ("ttl", 0, 0, {"ttl": 256}),
        ("payload", 0, 0, {"payload": bytes(MAX_PAYLOAD + 1)}),
        ("payload", 0, 0, {"payload": "text"}),
        ("seq", "1", 0, {}),
        ("msg_id", 0, 0, {"msg_id": 1.5}),
    ],
)
def test_encode_data_names_the_bad_field(field: str, seq: Any, flags: Any, packet_kw: dict[str, Any]) -> None:
    p = Packet(0, 1, int(MsgType.PING), 7, 32, b"")._replace(**packet_kw)
    with pytest.raises(EncodeError) as exc:
        encode_data(seq, flags, p)
    assert exc.value.field == field
    assert field in str(exc.value)


def test_encode_data_accepts_bytearray_payload_and_enum_type() -> None:
    p = Packet(0, 1, MsgType.READ, 7, 32, bytearray(b"\x10\x00\x04"))  # type: ignore[arg-type]
    assert encode_data(1, 0, p) == encode_data(1, 0, Packet(0, 1, 3, 7, 32, b"\x10\x00\x04"))


@pytest.mark.parametrize(("field", "args"), [("kind", (0, 1)), ("kind", (9, 1)), ("seq", (1, 256)),
                                             ("flags", (1, 0, -1))])
def test_encode_control_names_the_bad_field(field: str, args: tuple[int, ...]) -> None:
    with pytest.raises(EncodeError) as exc:
        encode_control(*args)
    assert exc.value.field == field


def test_encode_frame_checks_packet_presence() -> None:
    with pytest.raises(EncodeError) as exc:
        encode_frame(Frame(0, 1, 0, None))
    assert exc.value.field == "packet"
    with pytest.raises(EncodeError) as exc:
        encode_frame(Frame(1, 1, 0, Packet(0, 1, 1, 1)))
    assert exc.value.field == "packet"


def _fixed_message_cases() -> list[tuple[type[m.Message], str, dict[str, Any]]]:
    """For every field of every fixed-layout message: a value one past its range."""
    limits = {"B": (0, 0xFF), "H": (0, 0xFFFF), "I": (0, 0xFFFFFFFF), "h": (-0x8000, 0x7FFF),
              "i": (-0x80000000, 0x7FFFFFFF)}
    cases = []
    for cls in m.REGISTRY.values():
        if cls._FMT is None:
            continue
        names = [f.name for f in dataclasses.fields(cls)]
        codes = cls._FMT.format.lstrip("<")
        for name, code in zip(names, codes, strict=True):
            lo, hi = limits[code]
            for bad in (hi + 1, lo - 1):
                kw = dict.fromkeys(names, 0)
                kw[name] = bad
                cases.append((cls, name, kw))
    return cases


@pytest.mark.parametrize(("cls", "field", "kw"), _fixed_message_cases(),
                         ids=lambda x: x.__name__ if isinstance(x, type) else None)
def test_fixed_message_pack_names_every_field(cls: Any, field: str, kw: dict[str, Any]) -> None:
    with pytest.raises(EncodeError) as exc:
        cls(**kw).pack()
    assert exc.value.field == field


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        (m.Write(0x10000, b""), "reg"),
        (m.Write(0, bytes(254)), "data"),
        (m.ReadReply(-1, b""), "reg"),
        (m.ReadReply(0, bytes(254)), "data"),
        (m.Enumerate((m.JointRecord(0x10000, 1),)), "records[0].model"),
        (m.Enumerate((m.JointRecord(1, 1), m.JointRecord(1, -1))), "records[1].serial"),
        (m.Enumerate(tuple(m.JointRecord(1, 1) for _ in range(43))), "records"),
        (m.SyncWrite(0x10000, 1, 1, b"\x00"), "reg"),
        (m.SyncWrite(0, 256, 1, b"\x00"), "slice_len"),
        (m.SyncWrite(0, 1, 256, b"\x00"), "first"),
        (m.SyncWrite(0, 2, 1, b"\x00"), "data"),
        (m.SyncWrite(0, 1, 1, bytes(300)), "data"),
        (m.SyncRead(0x10000, 1), "reg"),
        (m.SyncRead(0, 256), "length"),
        (m.SyncRead(0, 1, (m.SyncRecord(1, 0, b"\x00\x00"),)), "records[0].data"),
        (m.SyncRead(0, 1, (m.SyncRecord(256, 0, b"\x00"),)), "records[0].address"),
        (m.SyncReadReply(0, 1, (m.SyncRecord(1, 0, b"\x00"), m.SyncRecord(2, 999, b"\x00"))), "records[1].status"),
        (m.SyncRead(0, 2, tuple(m.SyncRecord(1, 0, b"\x00\x00") for _ in range(64))), "records"),
    ],
)
def test_variable_message_pack_names_the_bad_field(msg: m.Message, field: str) -> None:
    with pytest.raises(EncodeError) as exc:
        msg.pack()
    assert exc.value.field == field


def test_payload_limit_matches_wire_constant() -> None:
    assert len(cobs.decode(encode_data(0, 0, Packet(0, 1, 4, 0, 1, bytes(MAX_PAYLOAD)))[:-1])) == MAX_FRAME
    assert MAX_FRAME == 12 + MAX_PAYLOAD and CRC_SIZE == 2
