"""Serial port discovery and the USB-serial latency check.

Theory of operation
-------------------
:func:`list_ports` wraps ``serial.tools.list_ports.comports()`` into frozen :class:`PortInfo` records (device,
description, USB VID/PID, serial number) and adds, on Linux, the adapter's latency timer.

FTDI adapters (driver ``ftdi_sio``) hold received bytes until their latency timer fires, 16 ms by default on
current kernels, which turns every request/reply round trip into tens of milliseconds (field notes: the most
frequent complaint across serial-servo projects). The driver exposes the timer as
``/sys/bus/usb-serial/devices/<tty>/latency_timer``; CDC-ACM devices (ttyACM*) have none.
:func:`check_latency` reads it and, when it is above :data:`GOOD_LATENCY_MS`, returns a
:class:`LatencyWarning` whose text carries the exact commands that fix it now (``echo 1 | sudo tee ...``) and
for good (a udev rule setting ``ATTR{latency_timer}="1"``).

The sysfs root is a parameter (default ``/sys``) so that tests run against a real temporary directory tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Linux sysfs mount point; tests pass a temporary directory laid out the same way.
SYSFS_ROOT = Path("/sys")
#: Where ftdi_sio publishes each port's attributes, relative to the sysfs root.
USB_SERIAL_DEVICES = Path("bus/usb-serial/devices")
#: 1 ms is the smallest value the FTDI chips accept; anything above delays every reply by up to that much.
GOOD_LATENCY_MS = 1
#: The udev rule that sets the timer whenever an FTDI adapter appears (a widely used form of this rule).
UDEV_RULE = 'ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", ATTR{latency_timer}="1"'
UDEV_RULE_FILE = "/etc/udev/rules.d/99-armbus-ftdi.rules"


@dataclass(frozen=True)
class PortInfo:
    """One serial port as the OS reports it."""

    device: str
    description: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    manufacturer: str | None
    hwid: str
    latency_timer_ms: int | None  # None: not an FTDI adapter, or not Linux

    @property
    def usb_id(self) -> str | None:
        """``"0403:6001"`` style VID:PID, or None for a non-USB port."""
        if self.vid is None or self.pid is None:
            return None
        return f"{self.vid:04x}:{self.pid:04x}"


@dataclass(frozen=True)
class LatencyWarning:
    """An FTDI latency timer above 1 ms, with the commands that fix it."""

    device: str
    latency_ms: int
    sysfs_path: str  # the path on the running system (under /sys), as the user must type it
    fix_now: str
    udev_rule: str

    def __str__(self) -> str:
        return (
            f"{self.device}: USB-serial latency timer is {self.latency_ms} ms, so every reply can wait up to "
            f"{self.latency_ms} ms in the adapter (1 ms is best).\n"
            f"  fix now:      {self.fix_now}\n"
            f"  fix for good: add this line to {UDEV_RULE_FILE}, then replug the adapter:\n"
            f"                {self.udev_rule}"
        )


def tty_name(device: str) -> str:
    """``/dev/serial/by-id/usb-FTDI...`` or ``/dev/ttyUSB0`` -> ``ttyUSB0`` (symlinks resolved)."""
    return os.path.basename(os.path.realpath(device))


def read_latency_timer(device: str, sysfs_root: Path | str = SYSFS_ROOT) -> int | None:
    """The adapter's latency timer in ms, or None when the port has none (or it cannot be read)."""
    path = Path(sysfs_root) / USB_SERIAL_DEVICES / tty_name(device) / "latency_timer"
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def check_latency(device: str, sysfs_root: Path | str = SYSFS_ROOT) -> LatencyWarning | None:
    """A :class:`LatencyWarning` when the port's latency timer is above 1 ms, else None."""
    latency = read_latency_timer(device, sysfs_root)
    if latency is None or latency <= GOOD_LATENCY_MS:
        return None
    system_path = SYSFS_ROOT / USB_SERIAL_DEVICES / tty_name(device) / "latency_timer"
    return LatencyWarning(
        device=device,
        latency_ms=latency,
        sysfs_path=str(system_path),
        fix_now=f"echo {GOOD_LATENCY_MS} | sudo tee {system_path}",
        udev_rule=UDEV_RULE,
    )


def _default_comports() -> Iterable[Any]:
    from serial.tools import list_ports

    return list_ports.comports()


def list_ports(
    sysfs_root: Path | str = SYSFS_ROOT,
    comports: Callable[[], Iterable[Any]] = _default_comports,
) -> list[PortInfo]:
    """All serial ports, sorted by device name, with their latency timers where there is one."""
    ports = []
    for p in comports():
        ports.append(
            PortInfo(
                device=p.device,
                description=p.description or "n/a",
                vid=p.vid,
                pid=p.pid,
                serial_number=p.serial_number,
                manufacturer=p.manufacturer,
                hwid=p.hwid or "n/a",
                latency_timer_ms=read_latency_timer(p.device, sysfs_root),
            )
        )
    return sorted(ports, key=lambda info: info.device)

