"""Port backends: which URL scheme opens what, looked up in one table and imported only when used.

Theory of operation
-------------------
Every arm is reached through a pyserial port: a device path (``/dev/ttyUSB0``), one of pyserial's own URLs
(``socket://``, ``rfc2217://``, ``loop://``) or a URL of a backend listed in :data:`BACKENDS`. pyserial opens
``scheme://...`` by importing ``<package>.protocol_<scheme>`` from each package in
``serial.protocol_handler_packages``. This module keeps armbus's own schemes in one table, scheme -> handler
package (python-can's ``BACKENDS`` idea), and adds a package to pyserial's list only when a URL of its scheme is
opened. So the host never imports the simulator, and importing armbus registers nothing with pyserial.

``virtual`` is shorthand for :data:`VIRTUAL_URL` (six joints at 1 Mbaud, seed 0); ``virtual?joints=3&seed=1``
keeps its options. :func:`register_backend` adds a scheme of the caller's own.
"""

from __future__ import annotations

import os
from typing import Any

from armbus.bus.errors import UsageError
from armbus.bus.wire import DEFAULT_BAUD

#: URL scheme -> the package that holds pyserial's ``protocol_<scheme>`` module for it.
BACKENDS: dict[str, str] = {
    "armbus": "armbus.hil.urlhandler",  # an in-process virtual arm in real time (armbus.hil.urlhandler)
    "serve": "armbus.controller.serveurl",  # a client of armbus serve on its unix socket (docs/serve.md)
}
#: The shorthand ``virtual`` and what it stands for: six joints at the bus's nominal 1 Mbaud, seed 0.
VIRTUAL = "virtual"
VIRTUAL_URL = "armbus://?joints=6&seed=0&baud=1000000"


def register_backend(scheme: str, package: str) -> None:
    """Serve ``scheme://`` URLs with ``<package>.protocol_<scheme>`` (a pyserial URL handler module)."""
    if not scheme.isidentifier() or not package:
        raise UsageError(f"a backend needs a scheme made of letters, digits and '_' and a package, "
                         f"not {scheme!r} -> {package!r}")
    BACKENDS[scheme] = package


def resolve_port(port_or_url: str) -> str:
    """The pyserial URL to open for ``port_or_url``; the handler of a :data:`BACKENDS` scheme is made known to
    pyserial on the way. Device paths and pyserial's own URLs come back unchanged."""
    url = port_or_url
    if url == VIRTUAL:
        url = VIRTUAL_URL
    elif url.startswith(VIRTUAL + "?"):
        url = "armbus://" + url[len(VIRTUAL):]
    scheme, sep, _ = url.partition("://")
    package = BACKENDS.get(scheme) if sep else None
    if package is not None:
        import serial

        if package not in serial.protocol_handler_packages:
            serial.protocol_handler_packages.append(package)
    return url


def port_holders(path: str) -> list[str]:
    """The processes holding the lock on device ``path``, as ``"pid 1234 (armbus monitor)"``, where the OS can
    tell (Linux: ``/proc/locks`` names the pid of each lock and the inode it is on)."""
    try:
        inode = os.stat(os.path.realpath(path)).st_ino
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or not fields[4].isdigit() or fields[5].rsplit(":", 1)[-1] != str(inode):
            continue
        pid = fields[4]
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = "?"
        out.append(f"pid {pid} ({cmd[:80]})")
    return out


def process_name() -> str:
    """This process as a lease holder's name: ``pid 1234 (python control.py)``."""
    try:
        with open(f"/proc/{os.getpid()}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    return f"pid {os.getpid()} ({cmd[:60]})" if cmd else f"pid {os.getpid()}"


def busy_message(name: str, path: str) -> str:
    """Why a port could not be locked for this program, naming who holds it when the OS says."""
    holders = port_holders(path)
    who = ("held by " + ", ".join(holders)) if holders else "another program holds it"
    return (f"{name} is busy: {who}. One program owns a serial port at a time: close the other one, or "
            "share the arm through one program")


def open_port(port_or_url: str, **kwargs: Any) -> Any:
    """Open ``port_or_url`` with ``serial.serial_for_url`` after :func:`resolve_port`; ``kwargs`` go to pyserial
    (``baudrate`` defaults to the bus's nominal 1 Mbaud, not pyserial's 9600; a ``baud`` in the URL wins)."""
    import serial

    kwargs.setdefault("baudrate", DEFAULT_BAUD)
    return serial.serial_for_url(resolve_port(port_or_url), **kwargs)
