"""The ``armbus`` command: one entry point for simulation, real arms, traces and benchmarks.

Theory of operation
-------------------
``main(argv)`` builds an argparse parser (subcommands; each has examples in its ``--help``), runs the chosen
command and maps every armbus error to one line on stderr and an exit code:

    0 success   1 check failed (a replay difference, a failed move)   2 bad usage or bad input file
    3 port or device problem   4 no answer in time   130 interrupted (Ctrl-C)

``--debug`` prints the traceback as well. Libraries: argparse (standard library; typed argument parsers give
precise messages such as "bad angle '9x0deg'", and no dependency is needed to run the command) and rich for the
terminal (live tables for ``monitor``, progress bars; it degrades to plain text when output is not a terminal).
Command bodies live in :mod:`armbus.tools.commands` and are imported lazily, so ``armbus --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence

from armbus.bus.errors import ArmbusError, ExitCode, PortError, exit_code
from armbus.bus.wire import SUPPORTED_BAUDS

EPILOG = """\
examples:
  armbus demo                               virtual 6-joint arm: discover, move, fault, e-stop, summary
  armbus sim --joints 6 --baud 1000000      virtual arm behind a pseudo-terminal; prints its tty path
  armbus ports                              serial ports with VID/PID and latency-timer warnings
  armbus --port /dev/ttyUSB0 info           identify every joint of a real arm
  armbus --port virtual monitor             live table of every joint
  armbus --port /dev/ttyUSB0 move shoulder 30deg
  armbus scan --port /dev/ttyUSB0           find the arm at any supported baud rate
  armbus --port /dev/ttyUSB0 baud 3000000   switch the running arm to 3 Mbaud (back to the old rate on failure)
  armbus serve --port /dev/ttyUSB0          share one arm with many programs: --port serve://SOCKET
  armbus trace decode capture.pcapng --type SYNC_READ
  armbus record --out run.mcap              joint states, goals, faults, link events as MCAP (ROS 2 JointState)
  armbus bench                              every benchmark, one table

A port is a device path (/dev/ttyUSB0, COM3), any pyserial URL (socket://host:port, rfc2217://...),
'virtual' for an in-process virtual arm, armbus://?joints=6&seed=1, or serve://SOCKET (an arm shared by
armbus serve). ARMBUS_PORT sets the default.
"""


def _add_connection(p: argparse.ArgumentParser, top: bool = False) -> None:
    """Connection options. They are accepted before the command (``armbus --port P info``) and after it
    (``armbus info --port P``); the defaults live on the top-level parser only, so a command's unset option
    never hides one given before it."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    p.add_argument("--port", default=default(None),
                   help="serial port or URL (default: $ARMBUS_PORT, else 'virtual')")
    p.add_argument("--baud", type=_baud, default=default(None),
                   help="baud rate (default 1000000; what USB-serial adapters and the joints run: "
                        f"{', '.join(str(b) for b in SUPPORTED_BAUDS)})")
    p.add_argument("--config", default=default(None), help="arm config TOML (joint names, calibration, limits)")
    p.add_argument("--timeout", type=_seconds, default=default(1.0),
                   help="seconds to wait for each answer (default 1.0)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad timeout {text!r}: a number of seconds such as 0.5") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"bad timeout {text!r}: between 0 and 3600 seconds")
    return value


def _baud(text: str) -> int:
    """A line rate the joints can run (bus.wire.SUPPORTED_BAUDS)."""
    value = _positive_int("baud")(text)
    if value not in SUPPORTED_BAUDS:
        raise argparse.ArgumentTypeError(f"bad baud {text!r}: the joints run {', '.join(map(str, SUPPORTED_BAUDS))}")
    return value


def _positive_int(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad {what} {text!r}: expected a whole number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"bad {what} {text!r}: must be positive")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="armbus",
        description="Drive robot arms whose joints sit on one serial bus; simulate them; record and replay traces.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--json", action="store_true", help="machine-readable output where the output is data")
    _add_connection(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str, examples: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help_text, description=help_text, epilog=("examples:\n" + examples) if examples else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return p

    p = add("demo", "run the demo on a virtual 6-joint arm (no hardware needed)", "  armbus demo --out demo-out\n")
    p.add_argument("--out", default="armbus-demo", help="folder for the trace and plot (default armbus-demo)")
    p.add_argument("--seed", type=int, default=1, help="seed of the injected faults (default 1)")

    p = add("sim", "run a virtual arm in real time behind a pseudo-terminal",
            "  armbus sim --joints 6 --baud 1000000\n  armbus sim --faults faults.toml --unpaced\n"
            "  armbus sim --adapter ftdi:latency=16ms\n  armbus sim --firmware c\n")
    p.add_argument("--joints", type=int, default=6, help="number of joints, 1..253 (default 6)")
    p.add_argument("--baud", type=_positive_int("baud"), default=argparse.SUPPRESS,
                   help="rate of every link, the host link's included (default 1000000)")
    p.add_argument("--chain-baud", type=_positive_int("chain baud"), default=None,
                   help="rate of the joint-to-joint links (default: --baud)")
    p.add_argument("--seed", type=int, default=0, help="seed for faults and sensor noise")
    p.add_argument("--firmware", default="python",
                   help="what the joints run: python (default), c (the C firmware, built with the system C "
                        "compiler), or one per joint, e.g. c,python,c")
    p.add_argument("--faults", help="TOML fault schedule")
    p.add_argument("--unpaced", action="store_true", help="do not pace bytes at the baud rate")
    p.add_argument("--capture", help="record every link to this pcapng file")
    p.add_argument("--link", help="also create a symlink to the tty at this path")
    p.add_argument("--adapter", default="ideal",
                   help="USB-serial adapter model between the tty and joint 1: ideal (default), "
                        "ftdi[:latency=16ms][,jitter=200us], cdc-acm[:jitter=...] (docs/hil.md)")

    add("ports", "list serial ports (VID/PID, description) and USB-serial latency-timer warnings")

    p = add("scan", "look for an arm on a port at every supported baud rate",
            "  armbus scan --port /dev/ttyUSB0\n  armbus scan --port /tmp/arm0 --bauds 1000000,3000000\n")
    _add_connection(p)
    p.add_argument("--bauds", default=None,
                   help="comma-separated rates to try (default: every supported rate, 1000000 first)")

    p = add("baud", "switch a running arm to another baud rate, with fallback to the old one",
            "  armbus --port /dev/ttyUSB0 baud 3000000\n  armbus --port /dev/ttyUSB0 baud 1000000 --chain 4000000\n")
    _add_connection(p)
    p.add_argument("rate", type=_positive_int("rate"), help="new rate of the host link (USB-serial to joint 1)")
    p.add_argument("--chain", type=_positive_int("chain rate"), default=None,
                   help="new rate of the joint-to-joint links (default: RATE)")
    p.add_argument("--trial-ms", type=_positive_int("trial"), default=None,
                   help="joints go back to the old rate unless confirmed within this long (default 500)")

    p = add("info", "discover the chain and identify every joint", "  armbus --json info --port virtual\n")
    _add_connection(p)

    p = add("monitor", "live table of every joint and the link counters (Ctrl-C to stop)")
    _add_connection(p)
    p.add_argument("--rate", type=float, default=5.0, help="refreshes per second (default 5)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")

    p = add("move", "move one joint to a position: switches its torque on and leaves it on, holding the goal",
            "  armbus move 2 30deg\n  armbus move shoulder -0.5rad --wait\n")
    _add_connection(p)
    p.add_argument("joint", help="joint name (from --config) or address")
    p.add_argument("position", help="target position with unit: 90deg, 1.2rad, -0.5rad (negative values too)")
    p.add_argument("--wait", action="store_true", help="wait until the joint reaches the goal")
    p.add_argument("--tolerance", default="1deg", help="goal tolerance with --wait (default 1deg)")

    p = add("torque", "switch torque on or off", "  armbus torque off\n  armbus torque on elbow\n")
    _add_connection(p)
    p.add_argument("state", choices=["on", "off"])
    p.add_argument("joint", nargs="?", help="one joint (default: all)")

    p = add("estop", "emergency stop every joint (each brakes to standstill, then its torque goes off)",
            "  armbus estop\n  armbus estop --release     # joints become ready, still unpowered\n")
    _add_connection(p)
    p.add_argument("--release", action="store_true",
                   help="release the e-stop on every joint: they become ready, unpowered (armbus torque on)")

    p = add("clear", "clear latched flags (e-stop, watchdog, fault, rebooted); leaves torque off",
            "  armbus clear all\n  armbus clear 2\n")
    _add_connection(p)
    p.add_argument("joint", nargs="?", default="all", help="joint name or address, or all (default)")

    p = add("reg", "read or write joint registers, with units and names",
            "  armbus reg read 1 present_temperature          # 25.1 degC\n"
            "  armbus reg write 3 watchdog_period 200ms\n  armbus reg write all clear_flags REBOOTED\n"
            "  armbus reg write 2 position_max 120deg        # torque off: persistent register\n"
            "  armbus reg dump 2\n  armbus reg list\n")
    _add_connection(p)
    p.add_argument("action", choices=["read", "write", "dump", "list"])
    p.add_argument("joint", nargs="?", help="joint name or address, or all")
    p.add_argument("register", nargs="?", help="register name or address")
    p.add_argument("value", nargs="?",
                   help="value to write: a quantity with its unit (90deg, 1.5A, 200ms), a name or names joined "
                        "by | for enums and flags (REBOOTED, FAULT|WATCHDOG), or an integer in the register's unit")

    p = add("run", "stream a trajectory from a CSV file (switches torque on; checks every waypoint first)",
            "  armbus run pick.csv --rate 200\n\n"
            "CSV format: a header, then one row per waypoint. The first column is the time (time_s, time or\n"
            "time_ms); each other column is a joint by name (joint1.. or from --config), with its unit in\n"
            "the header (shoulder_deg, elbow[rad]) or in the cells (10deg, -0.5rad); bare numbers are radians.\n"
            "Lines starting with # are comments. Times increase strictly; a file lasts at most an hour.\n"
            "  time_s,shoulder_deg,elbow_deg\n  0,0,0\n  1.5,30,-45\n")
    _add_connection(p)
    p.add_argument("trajectory", help="CSV file: a time column, then one column per joint (see below)")
    p.add_argument("--rate", type=float, default=200.0, help="control rate in Hz (default 200)")
    p.add_argument("--profile", choices=["minjerk", "trapezoid"], default="minjerk")

    p = add("serve", "own a port and share its arm with any number of local programs (serve://SOCKET)",
            "  armbus serve --port /dev/ttyUSB0\n  armbus serve --port /tmp/arm0 --socket /tmp/arm0.sock\n"
            "  armbus --port serve:///tmp/arm0.sock monitor      # in another terminal\n"
            "  armbus serve --port /dev/ttyUSB0 --mqtt mqtt://bridge@127.0.0.1:1883 --name arm1   # docs/lab.md\n")
    p.add_argument("--port", default=argparse.SUPPRESS, help="the arm's port or URL (default: $ARMBUS_PORT)")
    p.add_argument("--baud", type=_baud, default=argparse.SUPPRESS, help="baud rate (default 1000000)")
    p.add_argument("--socket", default=None,
                   help="unix socket to listen on (default: $XDG_RUNTIME_DIR/armbus/NAME.sock, printed)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    add_mqtt_options(p)

    p = add("tap", "record a real arm's host link while any program uses it through a pty",
            "  armbus tap --port /dev/ttyUSB0 --out arm.pcapng\n")
    p.add_argument("--port", default=argparse.SUPPRESS, help="the real port (required)")
    p.add_argument("--baud", type=_baud, default=argparse.SUPPRESS, help="baud rate (default 1000000)")
    p.add_argument("--out", default="armbus-tap.pcapng", help="capture file (default armbus-tap.pcapng)")
    p.add_argument("--link", help="also create a symlink to the pty at this path")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")

    p = add("trace", "decode, summarise, replay, plot or export a bus trace",
            "  armbus trace decode cap.pcapng --joint 2\n  armbus trace stats cap.pcapng\n"
            "  armbus trace replay cap.pcapng --to virtual --fast\n  armbus trace plot cap.pcapng -o cap.png\n"
            "  armbus trace export --mcap cap.pcapng --out run.mcap\n")
    p.add_argument("action", choices=["decode", "stats", "replay", "plot", "export"])
    p.add_argument("file", nargs="?", help="pcapng capture")
    p.add_argument("--mcap", metavar="CAPTURE", help="export: the pcapng capture to convert into MCAP")
    p.add_argument("--out", help="export: the MCAP file to write (default: the capture's name with .mcap)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options of the action (see armbus trace ACTION FILE --help)")

    p = add("record", "record joint states, goals, faults and link events into an MCAP file (Ctrl-C to stop)",
            "  armbus --port /dev/ttyUSB0 record --out run.mcap\n"
            "  armbus record --port 'armbus://?joints=3&seed=1' --out run.mcap --duration 2 --rate 200\n")
    _add_connection(p)
    p.add_argument("--out", required=True, help="MCAP file to write (docs/recording.md)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--rate", type=float, default=None,
                   help="joint-state samples per second, read with cyclic exchanges (default 100, or what half "
                        "the bus carries for a long chain)")

    p = add("conform", "check an arm's wire behaviour against the spec, rule by rule (pass/fail per rule)",
            "  armbus conform --port /dev/ttyUSB0\n  armbus conform --port virtual\n")
    _add_connection(p)
    p.add_argument("--seed", type=int, default=None, help="seed of the host's first nonce and msg_id")
    p.add_argument("--joints", type=int, default=3, help="joints of the in-process arm of --port virtual (default 3)")

    p = add("bridge", "bridge an arm to an MQTT broker: telemetry, faults, commands (docs/lab.md)",
            "  armbus bridge --port 'armbus://?joints=3&seed=1' --mqtt mqtt://bridge:secret@127.0.0.1:1883 "
            "--name arm1\n")
    _add_connection(p)
    add_mqtt_options(p, required=True)
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")

    p = add("bench", "run the benchmarks and print a table", "  armbus bench\n  armbus bench codec\n")
    p.add_argument("which", nargs="*", help="codec, link, hil, trace, loop, adapter, serve, mqtt (default: all)")
    p.add_argument("--quick", action="store_true", help="smaller runs")
    return parser


def add_mqtt_options(p: argparse.ArgumentParser, required: bool = False) -> None:
    """The MQTT bridge's options (``armbus bridge``; ``armbus serve`` takes them too)."""
    p.add_argument("--mqtt", required=required, default=None, metavar="URL",
                   help="broker: mqtt://USER:PASSWORD@HOST:PORT or mqtts://... (TLS); the password may come from "
                        "$ARMBUS_MQTT_PASSWORD instead")
    p.add_argument("--name", default=None, help="the arm's name in the topic tree: armbus/v1/NAME/... (required)")
    p.add_argument("--rate", type=float, default=20.0, help="state messages per joint per second (default 20)")
    p.add_argument("--state-topics", choices=["joint", "arm", "both"], default="joint",
                   help="states as one message per joint (state/JOINT, default), one per reading of the arm "
                        "(states), or both")
    p.add_argument("--lease-ttl", type=float, default=10.0,
                   help="seconds an MQTT lease lasts unless renewed (default 10)")
    p.add_argument("--ca", default=None, help="CA certificate file for mqtts:// (default: the system's)")


#: What argparse must take as a value rather than an option: a negative number with an optional unit
#: (``-0.5rad``, ``-20deg``, ``-1e-3``). No option of the armbus command starts with a digit, so nothing is lost.
NEGATIVE_VALUE = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*[a-zA-Z°/^0-9]*$")


def _take_negative_values(parser: argparse.ArgumentParser) -> None:
    """Let every (sub)parser take ``-0.5rad`` as a positional value (argparse knows only bare numbers)."""
    parser._negative_number_matcher = NEGATIVE_VALUE
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _take_negative_values(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _take_negative_values(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="armbus: %(message)s")
    for noisy in ("matplotlib", "PIL", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command is None:
        parser.print_help()
        return ExitCode.USAGE
    import armbus.tools.commands as commands

    handler = getattr(commands, "cmd_" + args.command.replace("-", "_"))
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("armbus: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # the reader went away (armbus ... | head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except (ArmbusError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        return _fail(args, exc)


def _fail(args: argparse.Namespace, exc: BaseException) -> int:
    code = exit_code(exc)
    if args.debug:
        import traceback

        traceback.print_exception(exc)
    text = str(exc) if not isinstance(exc, OSError) or not exc.filename else f"{exc.strerror}: {exc.filename}"
    print(f"armbus: error: {text}{_hint(exc)}", file=sys.stderr)
    return code


def _hint(exc: BaseException) -> str:
    """What to do about a port problem, when the message alone does not say."""
    if not isinstance(exc, PortError):
        return ""
    text = str(exc)
    if "Permission denied" in text or "Errno 13" in text:
        return ("\n  hint: your user may not access the port; on Linux: sudo usermod -aG dialout $USER, "
                "then log in again")
    if "No such file" in text or "Errno 2" in text:
        return "\n  hint: 'armbus ports' lists the serial ports of this machine"
    if ("busy" in text.lower() or "Errno 16" in text) and "One program owns" not in text:
        return "\n  hint: another program has the port open (lsof PORT shows which)"
    return ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
