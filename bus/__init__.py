"""armbus wire protocol and hop link (sans-I/O).

Layers, each knowing only the one below: bytes -> frame (:mod:`armbus.bus.codec`, :mod:`armbus.bus.deframer`) ->
hop link (:mod:`armbus.bus.link`) -> routing and messages (:mod:`armbus.bus.router`, :mod:`armbus.bus.messages`).
Constants live in :mod:`armbus.bus.wire`; the exception tree in :mod:`armbus.bus.errors`.
"""

from armbus.bus.codec import Frame, LineError, Packet, decode_frame, decode_wire, encode_control, encode_data
from armbus.bus.deframer import Deframer
from armbus.bus.errors import (
    ArmbusError,
    ArmTimeoutError,
    ConfigError,
    DecodeError,
    EncodeError,
    LeaseError,
    PeerError,
    PortError,
    RemoteError,
    TraceError,
    UndeliverableError,
    UsageError,
)
from armbus.bus.wire import Address, ErrorKind, FaultCode, FrameKind, GoalMode, LineErrorKind, MsgType, StatusFlag

__all__ = [
    "Address",
    "ArmTimeoutError",
    "ArmbusError",
    "ConfigError",
    "DecodeError",
    "Deframer",
    "EncodeError",
    "ErrorKind",
    "FaultCode",
    "Frame",
    "FrameKind",
    "GoalMode",
    "LeaseError",
    "LineError",
    "LineErrorKind",
    "MsgType",
    "Packet",
    "PeerError",
    "PortError",
    "RemoteError",
    "StatusFlag",
    "TraceError",
    "UndeliverableError",
    "UsageError",
    "decode_frame",
    "decode_wire",
    "encode_control",
    "encode_data",
]
