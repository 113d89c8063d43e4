"""Capture tap: put a pseudo-terminal in front of a real port and record both directions of the host link.

Theory of operation
-------------------
``armbus tap --port /dev/ttyUSB0 --out arm.pcapng`` opens the real port (``serial.serial_for_url``, so any
pyserial URL works too) and a pseudo-terminal pair (``os.openpty``, slave in raw mode). Any host program, ours or
not, opens the pty (its path is printed; ``--link`` adds a symlink) instead of the real port. Two forwarding
threads pass bytes as soon as they are read:

* host -> arm: ``select`` on the pty master, ``os.read``, ``port.write``: recorded as ``host-j1`` ``a>b``;
* arm -> host: ``port.read`` (what is waiting, at least one byte, short timeout), ``os.write`` to the master:
  recorded as ``b>a``.

Forwarding never waits for the recorder: each thread stamps a chunk (wall-clock ns since the epoch, the time it
was read) and puts it on a bounded queue without blocking; a third thread writes the queue to the pcapng file
(:class:`armbus.hil.trace.pcapng.TraceWriter`, one unbuffered ``write`` per block). If the disk cannot keep up and the
queue is full, chunks are dropped from the *recording* (never from the traffic) and counted; the count is
printed at the end. A tap killed at any moment leaves a file readable up to its last whole block; Ctrl-C or
SIGTERM stops the threads, writes what is queued and closes the file.

The tap holds its own descriptor of the pty slave for its whole life, so the master does not see end-of-file
while no program has the pty open, and host programs may open and close it as often as they like. The baud rate
a host program sets on the pty is ignored: the real port runs at ``--baud``. The metadata says
``armbus.capture=tap`` (timestamps are send times, see docs/traces.md), ``baud`` and ``port``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import select
import signal
import sys
import threading
import time
import tty
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from armbus.bus.errors import ExitCode, PortError, TraceError, UsageError, exit_code
from armbus.bus.wire import DEFAULT_BAUD
from armbus.controller.backends import open_port
from armbus.hil.trace.pcapng import TraceWriter

#: Link name of the host link in every armbus trace (armbus.hil.virtual_arm names it so too).
HOST_LINK = "host-j1"
#: Directions of a link: a>b is host -> arm (downstream), as in the kernel's traces.
TO_ARM, TO_HOST = "a>b", "b>a"
#: Chunks the recorder may fall behind by before chunks are dropped from the recording: 65536 chunks is several
#: seconds of a saturated 1 Mbaud line read in small pieces; memory stays bounded at a few MB.
QUEUE_LIMIT = 65_536
#: Longest a forwarding thread blocks in one read, so it notices the stop flag (seconds).
POLL_S = 0.05
#: Largest read at once; a pty hands over at most 4 KiB per read anyway.
READ_SIZE = 65_536


class Tap:
    """Forward ``port`` <-> a new pty and record both directions to ``out``. ``start()``, ``stop()``."""

    def __init__(self, port: str, out: str | os.PathLike[str], *, baud: int = DEFAULT_BAUD,
                 symlink: str | os.PathLike[str] | None = None, link_name: str = HOST_LINK) -> None:
        import serial

        try:
            self.port = open_port(port, baudrate=baud, timeout=POLL_S)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise PortError(f"cannot open {port!r}: {exc}") from None
        try:
            self.writer = TraceWriter(out, {"capture": "tap", "baud": baud, "port": port}, userappl="armbus tap")
        except BaseException:
            self.port.close()
            raise
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.symlink: Path | None = None
        if symlink is not None:
            link = Path(symlink)
            if link.exists() and not link.is_symlink():
                self.close()
                raise UsageError(f"--link {link}: exists and is not a symlink; not replacing it")
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(self.path)
            self.symlink = link
        self.link_name = link_name
        self._queue: queue.Queue[tuple[str, int, bytes] | None] = queue.Queue(QUEUE_LIMIT)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        #: Counters: bytes forwarded each way, chunks dropped from the recording, forwarding errors.
        self.bytes_to_arm = 0
        self.bytes_to_host = 0
        self.dropped = 0
        self.errors: list[str] = []

    def start(self) -> Tap:
        self._threads = [threading.Thread(target=fn, name=f"armbus-tap-{fn.__name__}", daemon=True)
                         for fn in (self._to_arm, self._to_host, self._record)]
        for t in self._threads:
            t.start()
        return self

    def _put(self, direction: str, data: bytes) -> None:
        try:
            self._queue.put_nowait((direction, time.time_ns(), data))
        except queue.Full:
            self.dropped += 1

    def _to_arm(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self.master], [], [], POLL_S)
                if not ready:
                    continue
                try:
                    data = os.read(self.master, READ_SIZE)
                except BlockingIOError:
                    continue
                if data:
                    self._put(TO_ARM, data)
                    self.port.write(data)
                    self.bytes_to_arm += len(data)
        except Exception as exc:  # the port vanished: stop everything, say why
            self.errors.append(f"host -> arm: {exc!r}")
            self._stop.set()

    def _to_host(self) -> None:
        try:
            while not self._stop.is_set():
                data = self.port.read(max(1, self.port.in_waiting))
                if not data:
                    continue
                self._put(TO_HOST, data)
                view = memoryview(data)
                while view and not self._stop.is_set():
                    try:
                        view = view[os.write(self.master, view):]
                    except BlockingIOError:  # the host program is not reading: wait for room, like a UART
                        select.select([], [self.master], [], POLL_S)
                self.bytes_to_host += len(data)
        except Exception as exc:
            self.errors.append(f"arm -> host: {exc!r}")
            self._stop.set()

    def _record(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            direction, t, data = item
            try:
                self.writer.write(self.link_name, direction, t, data)
            except (OSError, TraceError) as exc:
                self.errors.append(f"recording: {exc!r}")
                self.dropped += 1

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the tap stops by itself (a port error); True if it did within ``timeout``."""
        return self._stop.wait(timeout)

    def stop(self) -> None:
        """Stop forwarding, write what is queued, close everything. Safe to call twice."""
        self._stop.set()
        for t in self._threads[:2]:
            t.join(2.0)
        if len(self._threads) > 2 and self._threads[2].is_alive():
            self._queue.put(None)
            self._threads[2].join(10.0)
        self.close()

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.master = self._slave = -1
        with contextlib.suppress(Exception):
            self.port.close()
        self.writer.close()
        if self.symlink is not None:
            with contextlib.suppress(OSError):
                self.symlink.unlink()
            self.symlink = None

    def __enter__(self) -> Tap:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``armbus tap --port PORT [--baud B] --out FILE [--link SYMLINK]``: run until Ctrl-C / SIGTERM.
    Exit status 0 after a clean stop, 2 on a bad option, 3 when the port cannot be opened or fails."""
    p = argparse.ArgumentParser(prog="armbus tap", description="Record a real arm's host link while any program "
                                "uses it through a pseudo-terminal.")
    p.add_argument("--port", required=True, help="the real port (device or pyserial URL)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"baud rate of the real port (default {DEFAULT_BAUD})")
    p.add_argument("--out", required=True, help="capture file (.pcapng)")
    p.add_argument("--link", help="also create a symlink to the pty at this path")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    args = p.parse_args(argv)
    try:
        if args.baud <= 0:
            raise UsageError(f"--baud must be positive, got {args.baud}")
        tap = Tap(args.port, args.out, baud=args.baud, symlink=args.link)
    except (PortError, UsageError, TraceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old: Any = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, on_term)
    tap.start()
    print(f"tap: {args.port} <-> {tap.symlink or tap.path}, recording to {args.out} (Ctrl-C to stop)", flush=True)
    try:
        tap.wait(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        tap.stop()
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    print(f"tap: stopped; {tap.bytes_to_arm} bytes host -> arm, {tap.bytes_to_host} bytes arm -> host, "
          f"{tap.dropped} chunk(s) dropped from the recording", flush=True)
    for e in tap.errors:
        print(f"error: {e}", file=sys.stderr)
    return ExitCode.PORT if tap.errors else ExitCode.OK
