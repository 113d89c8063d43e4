"""``armbus://`` for pyserial: an in-process virtual arm in real time, behind the ``serial.Serial`` interface.

Theory of operation
-------------------
``serial.serial_for_url("armbus://?joints=6&seed=1&baud=1000000")`` (after
:func:`armbus.controller.backends.resolve_port`) returns a :class:`Serial` whose ``open()`` builds a
:class:`armbus.hil.virtual_arm.VirtualArm`, connects its host port to one end of a socket pair and runs it with a
:class:`armbus.hil.realtime.RealtimeArm` driver thread; the port reads and writes the other end. So the port has a real
file descriptor (``fileno()``): ``select``, asyncio readers (pyserial-asyncio-fast) and blocking reads with timeouts
behave as with a serial device, and any pyserial-based program can talk to a virtual arm.

URL options (all optional): ``joints`` (1..253, default 6), ``seed`` (default 0), ``baud`` (default: the
port's ``baudrate``, as for pyserial's ``loop://``), ``faults`` (a fault-schedule file, TOML or JSON),
``unpaced`` (``1``/``true``: answers as soon as computed, see :mod:`armbus.hil.realtime`), ``adapter`` (a
USB-serial adapter model between the port and joint 1, e.g. ``adapter=ftdi:latency=16ms``; see
:mod:`armbus.hil.adapter`), ``firmware`` (``python``, the default; ``c``, the C joint firmware; or one per joint,
``c,python,c``: :mod:`armbus.hil.firmware.choice`). Unknown options and bad
values raise ``serial.SerialException`` (a ``ValueError`` for pyserial callers that expect one is not used:
pyserial's own handlers raise ``SerialException`` for bad URLs). ``chain_baud`` sets the joint-to-joint
links' rate (default: ``baud``). The host's end of the host link starts at joint 1's rate; setting ``baudrate``
on the open port moves it (as reconfiguring a USB-serial adapter does), so bytes at a rate joint 1 is not set to
arrive as garbage both ways, until joint 1 switches too (``Arm.set_baud``) or the port goes back.

The simulation itself is :attr:`Serial.virtual_arm` (the :class:`RealtimeArm`); touch it only through its
``call()`` method while the port is open.
"""

from __future__ import annotations

import select
import socket
import urllib.parse
from typing import Any

from serial.serialutil import PortNotOpenError, SerialBase, SerialException, Timeout

from armbus.bus.errors import ArmbusError
from armbus.controller.serveurl.protocol_serve import SocketPort
from armbus.hil.adapter import parse_adapter
from armbus.hil.realtime import RealtimeArm, check_realtime_baud, realtime_link_config
from armbus.hil.schedule import FaultSchedule
from armbus.hil.virtual_arm import MAX_JOINTS, VirtualArm

#: Options an ``armbus://`` URL may carry.
OPTIONS = ("joints", "seed", "baud", "chain_baud", "faults", "unpaced", "adapter", "firmware")
#: Socket buffer asked for on the host's side: 256 KiB, two seconds of traffic at 1 Mbaud.
SOCKET_BUFFER = 262_144


def parse_url(url: str) -> dict[str, Any]:
    """Options of an ``armbus://`` URL as a dict; raises ``SerialException`` naming the bad part."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "armbus":
        raise SerialException(f"expected a URL of the form armbus://?joints=6&seed=1&baud=1000000, got {url!r}")
    if parts.netloc or parts.path not in ("", "/"):
        raise SerialException(f"{url!r}: armbus:// takes only options after '?', e.g. armbus://?joints=6")
    opts: dict[str, Any] = {}
    try:
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise SerialException(f"{url!r}: malformed options {parts.query!r}") from None
    for key, values in query.items():
        if key not in OPTIONS:
            raise SerialException(f"{url!r}: unknown option {key!r}; known: {', '.join(OPTIONS)}")
        value = values[-1]
        if key in ("faults", "firmware"):
            opts[key] = value
        elif key == "adapter":
            try:
                opts[key] = parse_adapter(value)
            except ArmbusError as exc:
                raise SerialException(f"{url!r}: {exc}") from None
        elif key == "unpaced":
            if value.lower() not in ("", "1", "0", "true", "false", "yes", "no"):
                raise SerialException(f"{url!r}: unpaced must be 1/0 or true/false, got {value!r}")
            opts[key] = value.lower() in ("", "1", "true", "yes")
        else:
            try:
                opts[key] = int(value, 0)
            except ValueError:
                raise SerialException(f"{url!r}: {key} must be an integer, got {value!r}") from None
    joints = opts.get("joints", 6)
    if not 1 <= joints <= MAX_JOINTS:
        raise SerialException(f"{url!r}: joints must be 1..{MAX_JOINTS}, got {joints}")
    return opts


class Serial(SocketPort, SerialBase):
    """A virtual arm as a serial port. See the module docstring."""

    peer_closed = "the virtual arm's driver closed the port"

    virtual_arm: RealtimeArm | None = None
    _sock: socket.socket | None = None
    _peer: socket.socket | None = None
    _host_rate: int | None = None  # the rate set on the open port, once set

    def open(self) -> None:
        url = self.portstr
        if url is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        opts = parse_url(url)
        try:
            baud = check_realtime_baud(opts.get("baud", self.baudrate))
            chain_baud = check_realtime_baud(opts.get("chain_baud", baud))
            schedule = FaultSchedule.load(opts["faults"]) if opts.get("faults") else None
            arm = VirtualArm(opts.get("joints", 6), baud=baud, seed=opts.get("seed", 0), faults=schedule,
                             link_config=realtime_link_config(min(baud, chain_baud)), chain_baud=chain_baud,
                             adapter=opts.get("adapter"), firmware=opts.get("firmware"))
        except ArmbusError as exc:
            raise SerialException(f"{self.portstr}: {exc}") from None
        peer, sock = socket.socketpair()
        for s in (peer, sock):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        sock.setblocking(False)
        self._peer, self._sock = peer, sock
        self._host_rate = None
        self.virtual_arm = RealtimeArm(arm, peer.fileno(), paced=not opts.get("unpaced", False),
                                       host_rate=lambda: self._host_rate).start()
        self.is_open = True

    def close(self) -> None:
        if self.virtual_arm is not None:
            self.virtual_arm.stop()
        for s in (self._sock, self._peer):
            if s is not None:
                s.close()
        self._sock = self._peer = None
        self.is_open = False

    def from_url(self, url: str) -> dict[str, Any]:
        """Parse ``url`` (pyserial's name for it): the options as a dict."""
        return parse_url(url)

    def _reconfigure_port(self) -> None:
        """A new ``baudrate`` moves the host's end of the host link (the driver thread picks it up); the other line
        settings do not apply."""
        self._host_rate = self.baudrate

    def _live(self) -> socket.socket:
        if not self.is_open or self._sock is None:
            raise PortNotOpenError()
        rt = self.virtual_arm
        if rt is not None and rt.error is not None:
            raise SerialException(f"the virtual arm stopped on an error: {rt.error!r}")
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
                if chunk == b"":
                    raise SerialException("the virtual arm's driver closed the port")
                if chunk:
                    out += chunk
            if timeout.expired():
                break
        return bytes(out)

    def reset_input_buffer(self) -> None:
        sock = self._live()
        while True:
            try:
                if not sock.recv(65536):
                    return
            except BlockingIOError:
                return









