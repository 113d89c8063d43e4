"""A virtual arm behind a pseudo-terminal: any serial program can open it like a USB-serial adapter.

Theory of operation
-------------------
:class:`PtyServer` opens a pseudo-terminal pair (``os.openpty``), puts the slave side in raw mode
(``tty.setraw``: no echo, no line editing, no CR/LF translation, 8-bit clean) and hands the master side to a
:class:`armbus.hil.realtime.RealtimeArm`. A program opens :attr:`PtyServer.path` (``/dev/pts/N``, or the symlink given
as ``link``) with ``serial.Serial(path, baud)``, pyserial's miniterm or the armbus controller. The rate it sets
on the pty is the host's end of the host link: the server starts the pty at joint 1's rate and the driver
follows the pty's termios speed from then on (:func:`termios_rate`), so a program at another rate than joint 1
reads garbage and joint 1 counts line noise, as with a real adapter (``armbus scan`` relies on it). The server
keeps its own descriptor of the slave open for its whole life, so the master never reports end-of-file or EIO
while no program has the port open, and programs may open and close it as often as they like. Bytes the joints
send meanwhile wait in the pty (a few KiB); beyond that they are dropped and counted, as a UART overruns.

:func:`run_sim` is the body of ``armbus sim``: check the arguments, build the arm (fault schedule, capture),
print the tty path, run until Ctrl-C or SIGTERM, stop cleanly and return the exit code. ``--adapter`` puts a
USB-serial adapter model (:mod:`armbus.hil.adapter`) between the pty and joint 1: the pty is then the host's
side of the adapter, and ``--capture`` records the host side at the instants the adapter hands bytes over.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import termios
import threading
import tty
from pathlib import Path
from types import FrameType
from typing import Any

from armbus.bus.errors import ConfigError, ExitCode, PortError, UsageError
from armbus.bus.wire import DEFAULT_BAUD
from armbus.hil.adapter import parse_adapter
from armbus.hil.firmware.choice import firmware_spec
from armbus.hil.realtime import RealtimeArm, check_realtime_baud, realtime_link_config
from armbus.hil.schedule import FaultSchedule
from armbus.hil.virtual_arm import MAX_JOINTS, VirtualArm

#: termios speed codes of the rates a pty can be set to by name (those this Python's termios module knows).
TERMIOS_RATES: dict[int, int] = {
    getattr(termios, f"B{rate}"): rate
    for rate in (9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000,
                 1500000, 2000000, 2500000, 3000000, 3500000, 4000000)
    if hasattr(termios, f"B{rate}")
}
_SPEED_CODES = {rate: code for code, rate in TERMIOS_RATES.items()}


def termios_rate(fd: int) -> int | None:
    """The output rate a program set on the tty ``fd``, or None (not a rate :data:`TERMIOS_RATES` knows)."""
    try:
        return TERMIOS_RATES.get(termios.tcgetattr(fd)[5])
    except termios.error:
        return None


def set_termios_rate(fd: int, baud: int) -> bool:
    """Set the tty ``fd`` to ``baud`` both ways; False if termios has no code for that rate."""
    code = _SPEED_CODES.get(baud)
    if code is None:
        return False
    attrs = termios.tcgetattr(fd)
    attrs[4] = attrs[5] = code
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return True


class PtyServer:
    """``arm`` in real time behind a pseudo-terminal. Use as a context manager or call start()/close()."""

    def __init__(self, arm: VirtualArm, *, paced: bool = True, link: str | os.PathLike[str] | None = None) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        #: The device path a serial program opens.
        self.path = os.ttyname(self._slave)
        self.link: Path | None = None
        try:
            if link is not None:
                self.link = _make_link(Path(link), self.path)
        except BaseException:
            self._close_fds()
            raise
        self.arm = arm
        follows = set_termios_rate(self._slave, arm.host_baud)  # a rate termios cannot name: not followed
        self.driver = RealtimeArm(arm, self.master, paced=paced,
                                  host_rate=(lambda: termios_rate(self._slave)) if follows else None)

    @property
    def port(self) -> str:
        """What a program should open: the symlink if one was made, else the pty path."""
        return str(self.link) if self.link is not None else self.path

    def start(self) -> PtyServer:
        self.driver.start()
        return self

    def close(self) -> None:
        """Stop the driver, remove the symlink and close the pty (idempotent)."""
        self.driver.stop()
        if self.link is not None:
            try:
                if self.link.is_symlink() and os.readlink(self.link) == self.path:
                    self.link.unlink()
            except OSError:
                pass
            self.link = None
        self._close_fds()

    def _close_fds(self) -> None:
        for name in ("master", "_slave"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def __enter__(self) -> PtyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_link(link: Path, target: str) -> Path:
    """Point symlink ``link`` at ``target``; an existing symlink is replaced, any other file is refused."""
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise UsageError(f"--link {link}: exists and is not a symlink; refusing to replace it")
    try:
        link.symlink_to(target)
    except OSError as exc:
        raise PortError(f"--link {link}: cannot create the symlink: {exc.strerror}") from None
    return link


# ------------------------------------------------------------------------------------------------- armbus sim
def build_arm(args: argparse.Namespace) -> tuple[VirtualArm, FaultSchedule | None]:
    """Check the ``armbus sim`` arguments and build the arm; every problem is a UsageError/ConfigError."""
    joints = getattr(args, "joints", 6)
    if isinstance(joints, bool) or not isinstance(joints, int) or not 1 <= joints <= MAX_JOINTS:
        raise UsageError(f"--joints {joints}: a chain holds 1..{MAX_JOINTS} joints (the joint addresses)")
    baud = check_realtime_baud(getattr(args, "baud", None) or DEFAULT_BAUD)
    chain_baud = getattr(args, "chain_baud", None) or baud
    try:
        check_realtime_baud(chain_baud)
    except UsageError as exc:
        raise UsageError(f"--chain-baud: {exc}") from None
    seed = getattr(args, "seed", None) or 0
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"--seed {seed!r}: must be an integer")
    schedule = None
    faults = getattr(args, "faults", None)
    if faults:
        if not Path(faults).is_file():
            raise ConfigError(f"--faults {faults}: no such file")
        schedule = FaultSchedule.load(faults)
    adapter = parse_adapter(getattr(args, "adapter", None))
    arm = VirtualArm(joints, baud=baud, seed=seed, faults=schedule, chain_baud=chain_baud,
                     link_config=realtime_link_config(min(baud, chain_baud)), adapter=adapter,
                     firmware=getattr(args, "firmware", None))
    if schedule is not None:
        schedule.check(arm.kernel)
    return arm, schedule


def _open_capture(arm: VirtualArm, path: str, args: argparse.Namespace) -> Any:
    from armbus.hil.trace.pcapng import TraceWriter

    wire = arm.kernel.links["host-j1"].wire
    meta = {"joints": len(arm.joints), "baud": wire.baud, "chain_baud": arm.joints[0].port_baud(1),
            "turnaround_ns": wire.turnaround_ns,
            "seed": getattr(args, "seed", 0) or 0, "source": "armbus sim",  # what `armbus trace replay` rebuilds
            "adapter": str(arm.adapter.spec) if arm.adapter is not None else "ideal",
            "firmware": firmware_spec(arm.firmware)}
    try:
        writer = TraceWriter(path, meta)
    except OSError as exc:
        raise UsageError(f"--capture {path}: cannot write: {exc.strerror}") from None
    arm.add_tap(writer.write)  # behind an adapter, the host side at the instants the host sees
    return writer


def run_sim(args: argparse.Namespace) -> int:
    """``armbus sim``: a virtual arm behind a pty until Ctrl-C. Returns the exit code (0 on a clean stop)."""
    arm, schedule = build_arm(args)
    writer = _open_capture(arm, args.capture, args) if getattr(args, "capture", None) else None
    stop = threading.Event()
    previous = _install_stop_signals(stop)
    server = PtyServer(arm, paced=not getattr(args, "unpaced", False), link=getattr(args, "link", None))
    try:
        server.start()
        info = {"tty": server.path, "port": server.port, "joints": len(arm.joints),
                "baud": arm.kernel.links["host-j1"].wire.baud, "chain_baud": arm.joints[0].port_baud(1),
                "seed": getattr(args, "seed", 0) or 0,
                "paced": server.driver.paced, "faults": len(schedule) if schedule else 0,
                "adapter": str(arm.adapter.spec) if arm.adapter is not None else "ideal",
                "firmware": firmware_spec(arm.firmware)}
        if getattr(args, "json", False):
            print(json.dumps(info), flush=True)
        else:
            mode = "paced" if server.driver.paced else "unpaced"
            chain = f", chain {info['chain_baud']} baud" if info["chain_baud"] != info["baud"] else ""
            behind = f", behind {info['adapter']}" if arm.adapter is not None else ""
            print(f"virtual arm: {info['joints']} joints at {info['baud']} baud{chain} ({mode}{behind}) on "
                  f"{server.port}"
                  + (f" -> {server.path}" if server.link else ""), flush=True)
            print("stop with Ctrl-C", file=sys.stderr, flush=True)
        while not stop.wait(0.2):
            if not server.driver.running:
                break
    finally:
        server.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if writer is not None:
            writer.close()
    error = server.driver.error
    summary = server.driver.stats.summary()
    print(f"stopped: {summary['host_bytes_in']} bytes in, {summary['host_bytes_out']} bytes out, "
          f"lag median {summary['lag_median_us']:.0f} us, max {summary['lag_max_us']:.0f} us, "
          f"slipped {summary['slipped_ms']:.1f} ms", file=sys.stderr)
    if schedule is not None or arm.adapter is not None:
        print(arm.kernel.faults.format_log(), file=sys.stderr)
    if error is not None:
        print(f"armbus sim: the simulation stopped on an error: {error}", file=sys.stderr)
        return ExitCode.FAILED
    return 0


def _install_stop_signals(stop: threading.Event) -> dict[int, Any]:
    """Ctrl-C (SIGINT) and SIGTERM set ``stop`` instead of raising wherever the main thread happens to be, so
    the stop is always clean. Only possible from the main thread; returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
