"""``armbus serve``'s driver: one serial port, one :class:`ServeHub`, a unix socket for the clients; asyncio.

Theory of operation
-------------------
:func:`serve` opens the port exclusively (as :class:`armbus.controller.aio.AsyncArm` does, through
pyserial-asyncio-fast, so a device path, a pty of ``armbus sim`` and an ``armbus://`` URL all work), listens on
a unix stream socket and runs the sans-I/O :class:`armbus.controller.servehub.ServeHub` between them. After every
call into the hub (bytes from the port or a client, a timer, a client gone) :meth:`_Server.kick` writes the
hub's bytes to the port, hands every client the output the hub holds for it while that client's transport is
not paused (asyncio pauses a transport whose write buffer passes its high-water mark: the client reads too
slowly; the hub then drops its telemetry or, at the hard limit, has it disconnected), closes the clients the hub
gives up on, and re-arms one timer at the hub's next deadline. Nothing waits for a client.

Who a client is: its peer credentials (``SO_PEERCRED``): "pid N (command line)", the lease holder's name unless
the client names itself.

The socket: its folder is created (mode 0700) if missing; a socket file left by a server that is gone is
replaced, one another server still listens on is an error (one line). The socket file is removed when serve
stops. Clients need write access to it: by default only the user who runs serve.

In-process clients: ``clients`` are coroutine functions ``start(info)`` started as tasks once the socket
listens (the MQTT bridge of ``armbus serve --mqtt`` is one); they attach like any client, with
``AsyncArm.open(info.url)`` on the same loop. One that fails is logged and serve goes on; they are cancelled when
serve stops.

Port loss: the clients are told the link is down, and the port is reopened every :data:`RECONNECT_S`; when it
is back the host link starts a new session.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import socket
import stat
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import serial
import serial_asyncio_fast

from armbus.bus.errors import PortError, UsageError
from armbus.bus.link import LinkConfig
from armbus.bus.wire import NS_PER_S
from armbus.controller.backends import busy_message, resolve_port
from armbus.controller.ports import port_turnaround_ns
from armbus.controller.servehub import HARD_LIMIT, SOFT_LIMIT, HubCounters, ServeHub

log = logging.getLogger(__name__)
#: Interval between attempts to reopen a vanished port.
RECONNECT_S = 0.5
#: A client transport's write buffer above this pauses it (asyncio's flow control), and the kernel's send buffer
#: of each client socket: 64 KiB each.
CLIENT_HIGH_WATER = 65_536


@dataclass(frozen=True)
class ServeInfo:
    """What an in-process client needs: the URL to open (``serve://SOCKET``), and what is served."""

    port: str
    baud: int
    socket: str
    counters: HubCounters  # live: the hub's figures so far

    @property
    def url(self) -> str:
        return "serve://" + self.socket


#: An in-process client of serve: started once the socket listens (see the module docstring).
StartClient = Callable[[ServeInfo], Awaitable[object]]


def peer_name(sock: socket.socket | None) -> str:
    """ "pid N (command line)" of the process at the other end of a unix socket, as far as the OS tells."""
    if sock is None:
        return "a client"
    try:
        pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    except OSError:
        return "a client"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    return f"pid {pid} ({cmd[:60]})" if cmd else f"pid {pid}"


def prepare_socket(path: str) -> None:
    """Make ``path`` free to listen on: its folder exists; a dead server's socket file is removed."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise UsageError(f"{path} exists and is not a socket: choose another --socket path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno != errno.ECONNREFUSED:
            raise
        os.unlink(path)  # left by a server that is gone
        return
    finally:
        probe.close()
    raise UsageError(f"another armbus serve already listens on {path}: attach to it (serve://{path}) or choose "
                     "another --socket")


class _PortProtocol(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.closed: asyncio.Future[None] = server.loop.create_future()  # set once the port is closed

    def data_received(self, data: bytes) -> None:
        self.server.hub.receive_data(data, time.monotonic_ns())
        self.server.kick()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.server.port_lost(self, exc)


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.key = 0
        self.transport: asyncio.Transport | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=CLIENT_HIGH_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # the kernel's share of what a slow client leaves unread is bounded too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_HIGH_WATER)
        self.key = self.server.add_client(self, peer_name(sock))

    def data_received(self, data: bytes) -> None:
        try:
            self.server.hub.client_data(self.key, data, time.monotonic_ns())
        except Exception:  # a bug must cost this client, not the server
            log.exception("client %d: dropped after an internal error", self.key)
            if self.transport is not None:
                self.transport.abort()
        self.server.kick()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.remove_client(self.key)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.server.kick()


class _Server:
    def __init__(self, port: str, baud: int, hub: ServeHub) -> None:
        self.port = port
        self.baud = baud
        self.hub = hub
        self.loop = asyncio.get_running_loop()
        self.clients: dict[int, _ClientProtocol] = {}
        self.transport: asyncio.Transport | None = None
        self._protocol: _PortProtocol | None = None
        self._next_key = 1
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._closed = False
        self._reconnect: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        url = resolve_port(self.port)
        protocol = _PortProtocol(self)
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                self.loop, lambda: protocol, url, baudrate=self.baud, exclusive=url.startswith("/"))
        except (serial.SerialException, OSError, ValueError) as exc:
            if "exclusively lock" in str(exc):
                raise PortError(busy_message(self.port, self.port)) from None
            raise PortError(f"cannot open {self.port}: {exc}") from None
        self.transport, self._protocol = transport, protocol
        self.kick()

    def add_client(self, protocol: _ClientProtocol, name: str) -> int:
        key = self._next_key
        self._next_key += 1
        self.clients[key] = protocol
        self.hub.connect(key, name)
        log.info("client %d attached: %s", key, name)
        return key

    def remove_client(self, key: int) -> None:
        if self.clients.pop(key, None) is not None:
            self.hub.disconnect(key, time.monotonic_ns())
            log.info("client %d gone", key)
            self.kick()

    def kick(self) -> None:
        hub = self.hub
        if self.transport is not None:
            out = hub.data_to_send(time.monotonic_ns())
            if out:
                self.transport.write(out)
        for key, why in hub.closing():
            client = self.clients.get(key)
            log.warning("dropping client %d: %s", key, why)
            if client is not None and client.transport is not None:
                client.transport.abort()
            self.remove_client(key)
        for key, client in self.clients.items():
            if not client.paused and client.transport is not None and hub.pending_output(key):
                client.transport.write(hub.output(key))
        deadline = hub.next_deadline()
        if deadline != self._timer_at and not self._closed:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at, self._timer = deadline, None
            if deadline is not None:
                self._timer = self.loop.call_later(max(0, deadline - time.monotonic_ns()) / NS_PER_S, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        now = time.monotonic_ns()
        deadline = self.hub.next_deadline()
        if deadline is not None and deadline <= now:
            self.hub.handle_timer(now)
        self.kick()

    def port_lost(self, protocol: _PortProtocol, exc: Exception | None) -> None:
        if self._closed or protocol is not self._protocol:
            return
        self.transport = self._protocol = None
        log.warning("%s lost (%s); reopening it every %g s", self.port, exc or "closed", RECONNECT_S)
        self.hub.port_lost()
        self.kick()
        self._reconnect = self.loop.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(RECONNECT_S)
            try:
                await self.connect()
            except PortError:
                continue
            self.hub.port_restored(time.monotonic_ns())
            self.kick()
            log.warning("%s is back", self.port)
            return

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._reconnect is not None:
            self._reconnect.cancel()
        for client in list(self.clients.values()):
            if client.transport is not None:
                client.transport.close()
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self, timeout: float) -> None:
        """Wait until the port is closed (pyserial's close runs in an executor: a virtual arm's thread stops)."""
        if self._protocol is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._protocol.closed), timeout)


async def serve(port: str, *, baud: int, socket_path: str, clients: Sequence[StartClient] = (),
                ready: Callable[[ServeInfo], None] | None = None, stop: asyncio.Event | None = None,
                turnaround_ns: int | None = None, limits: tuple[int, int] | None = None) -> HubCounters:
    """Serve the arm on ``port`` at ``socket_path`` until ``stop`` is set; returns the hub's counters. ``ready``
    is called once the socket listens (before ``clients`` start); ``limits`` are the hub's (soft, hard) output
    limits per client (:mod:`armbus.controller.servehub`); see the module docstring."""
    if turnaround_ns is None:
        turnaround_ns = port_turnaround_ns(port)
    soft, hard = limits or (SOFT_LIMIT, HARD_LIMIT)
    hub = ServeHub(LinkConfig(baud=baud, turnaround_ns=turnaround_ns), seed=secrets.randbits(32), soft_limit=soft,
                   hard_limit=hard)
    server = _Server(port, baud, hub)
    await server.connect()
    stop = stop or asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    listener: asyncio.AbstractServer | None = None
    try:
        prepare_socket(socket_path)
        listener = await server.loop.create_unix_server(lambda: _ClientProtocol(server), socket_path)
        os.chmod(socket_path, 0o600)
        info = ServeInfo(port, baud, socket_path, hub.counters)
        if ready is not None:
            ready(info)
        for start in clients:
            task = asyncio.ensure_future(start(info))
            task.add_done_callback(_client_done)
            tasks.append(task)
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if listener is not None:
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(socket_path)
        server.close()
        await server.wait_closed(2.0)
    return hub.counters


def _client_done(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("an in-process client of armbus serve failed", exc_info=task.exception())
