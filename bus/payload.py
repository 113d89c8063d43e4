"""The payload base class: what every message type shares, and the checks their ``pack``/``unpack`` use.

Theory of operation
-------------------
A payload class is a frozen dataclass with a ``TYPE`` (:class:`~armbus.bus.wire.MsgType`). Fixed layouts declare
``_FMT`` (a ``struct`` format whose fields are the dataclass fields in order) and inherit ``pack``/``unpack`` from
:class:`Message`; variable layouts override both and use :func:`check_u` (a field fits its unsigned width),
:func:`fit` (the payload fits one frame) and :func:`need` (a payload is long enough to hold its header). Every
failure is an :class:`~armbus.bus.errors.EncodeError` naming the field, or a
:class:`~armbus.bus.errors.DecodeError` of kind LENGTH: a bad payload is line noise at the message layer.
"""

from __future__ import annotations

import struct
from dataclasses import astuple, dataclass, fields
from typing import ClassVar, TypeVar

from armbus.bus.errors import DecodeError, EncodeError
from armbus.bus.wire import MAX_PAYLOAD, LineErrorKind, MsgType

M = TypeVar("M", bound="Message")


@dataclass(frozen=True)
class Message:
    """Base of every payload type. Subclasses set TYPE and either _FMT or pack/unpack."""

    TYPE: ClassVar[MsgType]
    _FMT: ClassVar[struct.Struct | None] = None

    def pack(self) -> bytes:
        assert self._FMT is not None
        try:
            return self._FMT.pack(*astuple(self))
        except struct.error:
            _name_bad_field(self)
            raise  # pragma: no cover

    @classmethod
    def unpack(cls: type[M], payload: bytes) -> M:
        assert cls._FMT is not None
        if len(payload) != cls._FMT.size:
            raise DecodeError(
                LineErrorKind.LENGTH, f"{cls.TYPE.name} payload is {len(payload)} bytes, expected {cls._FMT.size}"
            )
        return cls(*cls._FMT.unpack(payload))


_RANGES = {"B": (0, 0xFF), "b": (-0x80, 0x7F), "H": (0, 0xFFFF), "h": (-0x8000, 0x7FFF),
           "I": (0, 0xFFFFFFFF), "i": (-0x80000000, 0x7FFFFFFF)}


def _name_bad_field(msg: Message) -> None:
    """After struct refused a message: raise EncodeError naming the first field that does not fit."""
    assert msg._FMT is not None
    codes = msg._FMT.format.lstrip("<")
    for f, code in zip(fields(msg), codes, strict=False):
        v = getattr(msg, f.name)
        lo, hi = _RANGES[code]
        if not isinstance(v, int):
            raise EncodeError(f.name, f"must be an int, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise EncodeError(f.name, f"{v} is outside {lo}..{hi}")


def check_u(name: str, value: int, hi: int) -> None:
    """EncodeError naming ``name`` unless ``value`` is an int in 0..hi."""
    if not isinstance(value, int) or not 0 <= value <= hi:
        raise EncodeError(name, f"{value!r} is outside 0..{hi}")


def fit(name: str, payload: bytes) -> bytes:
    """``payload``, or EncodeError naming ``name`` when it is longer than one frame can carry."""
    if len(payload) > MAX_PAYLOAD:
        raise EncodeError(name, f"payload would be {len(payload)} bytes; the maximum is {MAX_PAYLOAD}")
    return payload


def need(cls: type[Message], payload: bytes, n: int) -> None:
    """DecodeError (LENGTH) when ``payload`` is shorter than the ``n`` bytes its header needs."""
    if len(payload) < n:
        raise DecodeError(LineErrorKind.LENGTH, f"{cls.TYPE.name} payload is {len(payload)} bytes, need >= {n}")
