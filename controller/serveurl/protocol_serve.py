"""``serve://PATH`` for pyserial: a connection to ``armbus serve`` on its unix socket, behind ``serial.Serial``.

Theory of operation
-------------------
``serial.serial_for_url("serve:///run/user/1000/armbus/ttyUSB0.sock")`` (after
:func:`armbus.controller.backends.resolve_port`) returns a :class:`Serial` whose ``open()`` connects a unix stream
socket to PATH (``serve://`` alone: :func:`default_socket` for no port, rarely what you want). Reads and writes
carry the serve protocol (:mod:`armbus.controller.serveproto`), which the host node's
:class:`armbus.controller.servelink.ServeLink` speaks, so the threaded runner and the asyncio arm drive it as they
drive a serial device: it has a file descriptor (``select``, asyncio readers), blocking reads with timeouts,
``in_waiting``.

Differences from a serial port: the line rate belongs to the server (setting ``baudrate`` changes nothing);
``reset_input_buffer`` keeps what the server sent (there are no stale bytes on a fresh connection, and the
server's WELCOME must not be lost); the server closing the connection reads as a lost port.

An absent socket, or one nobody listens on, fails ``open()`` with one line saying how to start the server.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
import termios
from typing import Any

from serial.serialutil import PortNotOpenError, SerialBase, SerialException, SerialTimeoutException, Timeout

SCHEME = "serve://"


def socket_path(url: str) -> str:
    """The socket path of a ``serve://PATH`` URL (options after ``?`` are ignored)."""
    if not url.startswith(SCHEME):
        raise SerialException(f"expected serve://PATH (the socket armbus serve printed), got {url!r}")
    path = url[len(SCHEME):].split("?", 1)[0]
    if not path:
        raise SerialException("serve:// needs the socket path, e.g. serve:///run/user/1000/armbus/ttyUSB0.sock "
                              "(armbus serve prints it when it starts)")
    return path


class SocketPort:
    """The surface of a pyserial port that is really a non-blocking stream socket (``armbus serve``, the
    in-process virtual arm) apart from opening and reading: there is no UART behind it, so output is never held, a
    break and the modem lines do nothing, and the lines read as a cable that is plugged in. Every call checks the
    port is open (``_live``, the class's); ``write`` honours pyserial's write timeout and says ``peer_closed`` when
    the other end has gone."""

    #: The error when the far end closed the socket (the subclass names it).
    peer_closed = "the far end closed the connection"
    write_timeout: float | None

    def _live(self) -> socket.socket:
        raise NotImplementedError

    def fileno(self) -> int:
        return self._live().fileno()

    @property
    def in_waiting(self) -> int:
        buf = fcntl.ioctl(self._live().fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("I", buf)[0])

    def write(self, data: Any) -> int:
        sock = self._live()
        view = memoryview(bytes(data))
        total = len(view)
        timeout = Timeout(self.write_timeout)  # type: ignore[arg-type]  # None: block
        while view:
            try:
                n = sock.send(view)
                view = view[n:]
            except BlockingIOError:
                if timeout.is_non_blocking:
                    break
                _, ready, _ = select.select([], [sock], [], timeout.time_left())
                if not ready and timeout.expired():
                    raise SerialTimeoutException("Write timeout") from None
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                    raise SerialException(self.peer_closed) from None
                raise
        return total - len(view)

    def flush(self) -> None:
        self._live()

    def reset_output_buffer(self) -> None:
        self._live()

    def send_break(self, duration: float = 0.25) -> None:
        self._live()

    def _update_break_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    @property
    def out_waiting(self) -> int:
        return 0

    @property
    def cts(self) -> bool:
        self._live()
        return True

    @property
    def dsr(self) -> bool:
        self._live()
        return True

    @property
    def ri(self) -> bool:
        self._live()
        return False

    @property
    def cd(self) -> bool:
        self._live()
        return True


class Serial(SocketPort, SerialBase):
    """A connection to ``armbus serve`` as a serial port. See the module docstring."""

    peer_closed = "armbus serve closed the connection"

    _sock: socket.socket | None = None

    def open(self) -> None:
        if self.portstr is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        path = socket_path(self.portstr)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
                why = "no such socket" if exc.errno == errno.ENOENT else "nobody serves it"
                raise SerialException(
                    f"no armbus serve at {path} ({why}): start one with 'armbus serve --port DEVICE --socket {path}', "
                    "or use the socket path it printed") from None
            raise SerialException(f"cannot connect to armbus serve at {path}: {exc.strerror}") from None
        sock.setblocking(False)
        self._sock = sock
        self.is_open = True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self.is_open = False

    def from_url(self, url: str) -> dict[str, Any]:
        return {"path": socket_path(url)}

    def _reconfigure_port(self) -> None:
        """The line rate is the server's: nothing to configure here."""

    def _live(self) -> socket.socket:
        if not self.is_open or self._sock is None:
            raise PortNotOpenError()
        return self._sock

    def read(self, size: int = 1) -> bytes:
        sock = self._live()
        out = bytearray()
        timeout = Timeout(self.timeout)  # type: ignore[arg-type]  # None: block
        while len(out) < size:
            ready, _, _ = select.select([sock], [], [], timeout.time_left())
            if ready:
                try:
                    chunk = sock.recv(size - len(out))
                except BlockingIOError:
                    chunk = None
                except OSError as exc:
                    raise SerialException(f"armbus serve connection lost: {exc.strerror}") from None
                if chunk == b"":
                    raise SerialException("armbus serve closed the connection (it stopped, or dropped this client)")
                if chunk:
                    out += chunk
                    break  # a stream, not a device: hand over what came
            if timeout.expired():
                break
        return bytes(out)

    def reset_input_buffer(self) -> None:
        self._live()  # keep the server's frames: see the module docstring











def default_socket(port: str) -> str:
    """Where ``armbus serve --port PORT`` listens without ``--socket``: ``$XDG_RUNTIME_DIR/armbus/NAME.sock``, else
    ``/run/armbus/NAME.sock`` when that folder is writable, else ``/tmp/armbus-UID/NAME.sock`` (NAME: the port's
    file name, or ``arm`` for a URL)."""
    name = os.path.basename(port.rstrip("/")) if port.startswith("/") else "arm"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        base = os.path.join(runtime, "armbus")
    elif os.access("/run/armbus", os.W_OK):
        base = "/run/armbus"
    else:
        base = f"/tmp/armbus-{os.getuid()}"
    return os.path.join(base, f"{name}.sock")
