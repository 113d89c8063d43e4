"""The one exception tree of armbus.

Errors are split by whose fault they are (the h11 rule):

    ArmbusError                      root: ``except ArmbusError`` catches everything armbus raises
     +-- UsageError(ValueError)      the caller misused the API (bad field value, bad argument)
     |    +-- EncodeError            a frame or message cannot be built; names the bad field
     |    +-- ConfigError            a config or fault file is malformed; names the file and key
     +-- PeerError                   a peer or the line misbehaved and the caller asked for the result
     |    +-- DecodeError            bytes are not a valid frame/message (carries a LineErrorKind)
     |    +-- RemoteError            a joint answered with an ERROR reply
     |    +-- UndeliverableError     a hop reported that it could not deliver a request
     +-- ArmTimeoutError(TimeoutError) a reply or ack did not come in time
     +-- PortError(OSError)          a serial port could not be opened or vanished
     +-- LeaseError                  motion refused: another client of a shared arm holds its lease
     +-- TraceError                  a trace file is unreadable (partial results may still exist)

Line noise seen by a receive loop is never raised: the deframer and the link turn it into counted events.
``DecodeError`` is only raised by the one-shot helpers (``decode_frame``) that an API caller uses directly.

Every command (``armbus``, each ``python -m`` entry point) ends with an :class:`ExitCode`; :func:`exit_code`
picks it from the exception that stopped the command, by the same rule of whose fault it is.
"""

from __future__ import annotations

import enum


class ArmbusError(Exception):
    """Root of every exception armbus raises."""


class UsageError(ArmbusError, ValueError):
    """The caller misused the API: a value out of range, a wrong type, a bad argument."""


class EncodeError(UsageError):
    """A frame or message cannot be encoded; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ConfigError(UsageError):
    """A configuration, fault-schedule or trajectory file is malformed."""


class PeerError(ArmbusError):
    """A peer or the line misbehaved, and the caller asked for the outcome."""


class DecodeError(PeerError):
    """Bytes that are not a valid frame or message. ``kind`` is a :class:`armbus.bus.wire.LineErrorKind`."""

    def __init__(self, kind: int, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class RemoteError(PeerError):
    """A joint answered a request with an ERROR reply."""


class UndeliverableError(PeerError):
    """A hop reported that it could not deliver a request further down the chain."""


class ArmTimeoutError(ArmbusError, TimeoutError):
    """An expected ack or reply did not arrive in time."""


class PortError(ArmbusError, OSError):
    """A serial port could not be opened, or it vanished."""


class LeaseError(ArmbusError):
    """Motion refused, or a lease not granted, because another client of a shared arm (``armbus serve``) holds
    the arm's lease; ``holder`` names it (docs/serve.md, "The lease")."""

    def __init__(self, message: str, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class TraceError(ArmbusError):
    """A trace file cannot be read or written."""


class ExitCode(enum.IntEnum):
    """Exit status of every armbus command (README, "The armbus command")."""

    OK = 0
    FAILED = 1  # the command ran and a check failed, or a peer misbehaved
    USAGE = 2  # bad usage or a bad input file: the caller's to fix
    PORT = 3  # the port could not be opened, was lost, or a capture could not be written through it
    TIMEOUT = 4  # the arm gave no answer in time
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, the shell's convention)


def exit_code(exc: BaseException) -> ExitCode:
    """The exit status for a command stopped by ``exc``."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, (UsageError, TraceError)):
        return ExitCode.USAGE
    if isinstance(exc, (PortError, FileNotFoundError, PermissionError, IsADirectoryError)):
        return ExitCode.PORT
    if isinstance(exc, ArmTimeoutError):
        return ExitCode.TIMEOUT
    return ExitCode.FAILED
