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

What the adapter costs the host: :func:`detect_adapter` tells from sysfs and the device name what sits between
the host and the line (an FTDI chip and its latency timer, a CDC-ACM device, another USB-serial bridge, an on-board
UART, or nothing known: a URL, a pty), and :func:`port_turnaround_ns` turns that into the host link's turnaround
(:attr:`armbus.bus.link.LinkConfig.turnaround_ns`): the latency timer plus one USB frame for FTDI, one frame for
the other USB adapters, plus :data:`HOST_SLACK_NS`. ``Arm.open`` and ``AsyncArm.open`` use it for a device path.
The timing model behind these figures is :mod:`armbus.hil.adapter`.

The sysfs root is a parameter (default ``/sys``) so that tests run against a real temporary directory tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from armbus.bus.wire import NS_PER_MS

#: Linux sysfs mount point; tests pass a temporary directory laid out the same way.
SYSFS_ROOT = Path("/sys")
#: Where ftdi_sio publishes each port's attributes, relative to the sysfs root.
USB_SERIAL_DEVICES = Path("bus/usb-serial/devices")
#: 1 ms is the smallest value the FTDI chips accept; anything above delays every reply by up to that much.
GOOD_LATENCY_MS = 1
#: The udev rule that sets the timer whenever an FTDI adapter appears (a widely used form of this rule).
UDEV_RULE = 'ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", ATTR{latency_timer}="1"'
UDEV_RULE_FILE = "/etc/udev/rules.d/99-armbus-ftdi.rules"
#: The FTDI latency timer Linux sets when nobody asks otherwise (ftdi_sio), and the largest value the chips take.
DEFAULT_LATENCY_MS = 16
MAX_LATENCY_MS = 255
#: One USB full-speed frame: the host controller starts a frame every millisecond (USB 2.0, 8.4.3.1), and a
#: full-speed adapter's bulk packets move at frame starts (armbus.hil.adapter).
USB_FRAME_NS = NS_PER_MS
#: The host program's own reaction time on a time-shared machine, added to what its adapter costs.
HOST_SLACK_NS = NS_PER_MS
#: What each kind of port adds to the host's reaction time: the adapter holds the joint's answer (an FTDI chip until
#: its latency timer fires, then until the next frame; other USB adapters until the next frame); an on-board UART
#: adds nothing. ``unknown``: a URL or a pty, whose far end the host cannot see.
ADAPTER_KINDS = ("ftdi", "cdc-acm", "usb-serial", "uart", "unknown")
#: On-board UART device names (no USB between host and line).
UART_PREFIXES = ("ttyS", "ttyAMA", "ttyTHS", "ttymxc", "ttyO")


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


def adapter_delay_ns(kind: str, latency_ms: int | None = None) -> int | None:
    """What an adapter of ``kind`` adds to the host's reaction time (see :data:`ADAPTER_KINDS`); None if unknown."""
    if kind == "ftdi":
        return (latency_ms if latency_ms is not None else DEFAULT_LATENCY_MS) * NS_PER_MS + USB_FRAME_NS
    if kind in ("cdc-acm", "usb-serial"):
        return USB_FRAME_NS
    if kind == "uart":
        return 0
    return None


#: Host link turnaround where the port does not tell what it is (a URL, a pty): an FTDI adapter at 1 ms assumed.
PORT_TURNAROUND_NS = HOST_SLACK_NS + (adapter_delay_ns("ftdi", GOOD_LATENCY_MS) or 0)


@dataclass(frozen=True)
class PortAdapter:
    """What sits between the host and the line on a port, as far as sysfs and the device name tell."""

    kind: str  # one of ADAPTER_KINDS
    latency_ms: int | None = None  # the FTDI latency timer

    @property
    def delay_ns(self) -> int | None:
        """What this adapter adds to the host's reaction time (:func:`adapter_delay_ns`)."""
        return adapter_delay_ns(self.kind, self.latency_ms)

    @property
    def turnaround_ns(self) -> int:
        """The host link's turnaround on this port: the adapter's delay plus :data:`HOST_SLACK_NS`, or
        :data:`PORT_TURNAROUND_NS` when the adapter is unknown."""
        delay = self.delay_ns
        return PORT_TURNAROUND_NS if delay is None else HOST_SLACK_NS + delay


def detect_adapter(device: str, sysfs_root: Path | str = SYSFS_ROOT) -> PortAdapter:
    """What sits behind ``device`` (symlinks such as ``/dev/serial/by-id/...`` resolved): an FTDI chip when sysfs
    has its latency timer, CDC-ACM for ttyACM*, another USB-serial bridge for ttyUSB*, an on-board UART for
    ttyS* and kin; ``unknown`` for URLs and anything else (a pty)."""
    if "://" in device or (os.sep not in device and not device.startswith("tty")):
        return PortAdapter("unknown")  # a URL, or a name such as "virtual"
    latency = read_latency_timer(device, sysfs_root)
    name = tty_name(device)
    if latency is not None:
        return PortAdapter("ftdi", latency)
    if name.startswith("ttyACM"):
        return PortAdapter("cdc-acm")
    if name.startswith("ttyUSB"):
        return PortAdapter("usb-serial")
    if name.startswith(UART_PREFIXES):
        return PortAdapter("uart")
    return PortAdapter("unknown")


def port_turnaround_ns(device: str, sysfs_root: Path | str = SYSFS_ROOT) -> int:
    """The host link's turnaround for ``device`` (:attr:`PortAdapter.turnaround_ns` of :func:`detect_adapter`)."""
    return detect_adapter(device, sysfs_root).turnaround_ns


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

