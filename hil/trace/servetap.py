"""Capture tap on a shared arm: ``armbus tap --port serve://SOCKET`` records the host link that ``armbus serve`` drives.

Theory of operation
-------------------
On an arm shared by ``armbus serve`` no pseudo-terminal is needed: the tap is one more client of the server. It
connects to the socket and says HELLO asking for the line's bytes only (``WANT_WIRE``,
:mod:`armbus.controller.serveproto`); the server then sends every chunk it writes to the port and every chunk it
reads from it, with the monotonic time it did so, as ``WIRE`` frames. The tap writes each to the pcapng file
(:class:`armbus.hil.trace.pcapng.TraceWriter`) as link ``host-j1``, ``a>b`` (to the arm) or ``b>a`` (to the
host), with the time moved to the epoch (the server and the tap share the machine's monotonic clock; the
offset to wall time is taken once, at start). The metadata says ``armbus.capture=tap``, the port (the serve
URL) and the server's baud rate.

A tap that reads too slowly never slows the arm: the server drops wire frames for it and says how many
(``DROPPED``); the count is printed at the end. The recording stops at ``--duration``, Ctrl-C, SIGTERM, or when
the server goes away.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time

from armbus.bus.errors import PortError
from armbus.controller import serveproto as sp
from armbus.controller.backends import process_name
from armbus.hil.trace.pcapng import TraceWriter

HOST_LINK = "host-j1"
_DIRECTIONS = {sp.TO_ARM: "a>b", sp.TO_HOST: "b>a"}
#: Longest wait in one select, so the tap notices its deadline (seconds).
POLL_S = 0.05


class ServeTap:
    """Record the line of the arm served at ``url`` (``serve://PATH``) to ``out``; :meth:`run` until done."""

    def __init__(self, url: str, out: str | os.PathLike[str]) -> None:
        from armbus.controller.serveurl.protocol_serve import socket_path

        self.url = url
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = socket_path(url)
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise PortError(f"no armbus serve at {path} ({exc.strerror}): start one with 'armbus serve --port "
                            f"DEVICE --socket {path}', or use the socket path it printed") from None
        self.sock.sendall(sp.Hello(sp.VERSION, sp.WANT_WIRE, f"tap {process_name()}").encode())
        self.out = out
        self.writer: TraceWriter | None = None
        self.bytes_to_arm = self.bytes_to_host = 0
        self.dropped = 0
        self.ended = ""  # why the recording ended early, if it did
        self._offset = time.time_ns() - time.monotonic_ns()
        self._reader = sp.FrameReader()

    def run(self, duration: float | None = None) -> None:
        """Record until ``duration`` s passed, the server closed, or KeyboardInterrupt."""
        end = None if duration is None else time.monotonic() + duration
        while end is None or time.monotonic() < end:
            ready, _, _ = select.select([self.sock], [], [], POLL_S)
            if not ready:
                continue
            try:
                data = self.sock.recv(65536)
            except OSError as exc:
                self.ended = f"connection lost: {exc.strerror}"
                return
            if not data:
                self.ended = "armbus serve closed the connection"
                return
            self._reader.feed(data)
            for m in self._reader.frames():
                self._handle(m)

    def _handle(self, m: sp.Message) -> None:
        if isinstance(m, sp.Welcome) and self.writer is None:
            self.writer = TraceWriter(self.out, {"capture": "tap", "baud": m.baud, "port": self.url},
                                      userappl="armbus tap")
        elif isinstance(m, sp.Wire) and self.writer is not None:
            self.writer.write(HOST_LINK, _DIRECTIONS.get(m.direction, "a>b"), m.time + self._offset, m.data)
            if m.direction == sp.TO_ARM:
                self.bytes_to_arm += len(m.data)
            else:
                self.bytes_to_host += len(m.data)
        elif isinstance(m, sp.Dropped):
            self.dropped = m.count

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.writer is not None:
            self.writer.close()


def run_serve_tap(url: str, out: str, duration: float | None) -> int:
    """``armbus tap --port serve://PATH --out FILE``: record, print a summary line; 0, or 3 if the server went
    away before the end."""
    import signal
    import threading
    from types import FrameType

    from armbus.bus.errors import ExitCode

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    tap = ServeTap(url, out)
    print(f"tap: recording {url} to {out} (Ctrl-C to stop)", flush=True)
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, on_term) if main else None
    try:
        tap.run(duration)
    except KeyboardInterrupt:
        pass
    finally:
        tap.close()
        if main:
            signal.signal(signal.SIGTERM, old)
    print(f"tap: stopped; {tap.bytes_to_arm} bytes host -> arm, {tap.bytes_to_host} bytes arm -> host, "
          f"{tap.dropped} chunk(s) dropped from the recording", flush=True)
    if tap.ended:
        print(f"error: {tap.ended}", flush=True)
        return ExitCode.PORT
    return ExitCode.OK
