"""The armbus hardware-in-the-loop harness: simulated time, virtual arms, real-time drivers, fault injection.

Importing :mod:`hil` registers the ``armbus://`` pyserial URL handler (:func:`register_url_handler`; calling it
again is harmless), so ``serial.serial_for_url("armbus://?joints=6&seed=1")`` opens an in-process virtual arm.
:func:`open_virtual` also accepts the shorthand ``"virtual"``.
"""

from __future__ import annotations

from typing import Any

#: The package pyserial searches for ``protocol_armbus``.
URL_HANDLER_PACKAGE = "hil.urlhandler"
#: What ``"virtual"`` stands for: six joints at the bus's nominal 1 Mbaud, seed 0.
VIRTUAL_URL = "armbus://?joints=6&seed=0&baud=1000000"


def register_url_handler() -> None:
    """Make ``armbus://`` known to ``serial.serial_for_url`` (idempotent)."""
    import serial

    if URL_HANDLER_PACKAGE not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(URL_HANDLER_PACKAGE)


def virtual_url(url_or_virtual: str) -> str:
    """``"virtual"`` -> :data:`VIRTUAL_URL`; ``"virtual?joints=3"`` -> ``armbus://?joints=3``; else unchanged."""
    if url_or_virtual == "virtual":
        return VIRTUAL_URL
    if url_or_virtual.startswith("virtual?"):
        return "armbus://" + url_or_virtual[len("virtual"):]
    return url_or_virtual


def open_virtual(url_or_virtual: str = "virtual", **kwargs: Any) -> Any:
    """Open an ``armbus://`` URL (or ``"virtual"``) as a pyserial port; ``kwargs`` go to ``serial_for_url``
    (``baudrate``, default 1000000; ``timeout`` ...); a ``baud`` option in the URL wins. Returns the open
    :class:`hil.urlhandler.protocol_armbus.Serial`."""
    import serial

    register_url_handler()
    kwargs.setdefault("baudrate", 1_000_000)  # the bus's nominal rate, not pyserial's 9600
    return serial.serial_for_url(virtual_url(url_or_virtual), **kwargs)


register_url_handler()

__all__ = ["URL_HANDLER_PACKAGE", "VIRTUAL_URL", "open_virtual", "register_url_handler", "virtual_url"]
