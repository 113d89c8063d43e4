"""``armbus trace export --mcap CAPTURE.pcapng --out run.mcap``: a bus capture as the channels of a recording.

Theory of operation
-------------------
The capture is read and decoded as ``armbus trace decode`` does (:func:`armbus.hil.trace.decode.decode_trace`);
the rows are then walked once, in time order, and written with :class:`armbus.hil.trace.mcapfile.McapSink`:

* DATA frames become *messages*: a packet seen on several hops or retransmitted is one message, as
  ``armbus trace stats`` counts them (same ``src, dst, type, msg_id`` within
  :data:`~armbus.hil.trace.stats.INSTANCE_WINDOW_NS` of its previous sighting); its time is its first sighting,
  i.e. when its sender put it on the bus (a reply: the joint that answered; a command: the host).
* ``/joint_states``: STATE telemetry (one joint), READ_REPLY (one joint), SYNC_READ_REPLY and CYCLE_REPLY (every
  record), whenever the register span holds present_position, present_velocity and present_current (decoded
  with the register table, :func:`~armbus.hil.trace.mcapfile.span_values`). ``header.stamp`` is the sample instant
  where the message says it (a CYCLE_REPLY record's age: the earliest record), else the message's time. Positions
  are raw (the capture holds no calibration); names are ``joint<address>``.
* ``/armbus/goals``: what the host commanded (messages from address 0): SET_GOAL, TORQUE, WRITE and SYNC_WRITE spans
  holding goal registers (goal_mode, goal_position/velocity/current, torque_enable), and CYCLE goal slices, one
  message per joint. The copies of a SYNC_WRITE or CYCLE that each joint forwards, minus its own slice, are not
  commands of their own; nor are the partial CYCLE_REPLY copies below joint 1 (states come from the whole one).
* ``/armbus/faults``: FAULT messages. ``/armbus/link``: every link-level record on every link, with the link and
  direction: RESET, RESET_ACK, line errors, retransmitted DATA frames, UNDELIVERABLE reports.

``log_time`` = ``publish_time`` = the capture's own timestamps (ns; the tap and the simulator write the clock they
ran on), so a recording and an export of the same session line up when their clocks do.

Damage: a truncated or corrupt capture is read up to the damage (:mod:`armbus.hil.trace.reader`), everything
before it is converted and the MCAP file is complete; each problem (the damage, a payload that does not decode,
an unfinished frame at the end) is one ``warning:`` line naming what was not converted, and the exit status is 2
so that scripts notice. A file that is not an armbus capture at all is one ``error:`` line and no output file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from armbus.bus.batch import LINE_ERROR
from armbus.bus.cycle import Cycle, CycleReply
from armbus.bus.errors import DecodeError, ExitCode, TraceError, UsageError, exit_code
from armbus.bus.messages import (
    Fault,
    Message,
    ReadReply,
    SetGoal,
    State,
    SyncReadReply,
    SyncWrite,
    Torque,
    Undeliverable,
    Write,
    decode_payload,
)
from armbus.bus.wire import NS_PER_US, FaultCode, FrameFlag, FrameKind, GoalMode, LineErrorKind, MsgType
from armbus.controller import units
from armbus.hil.trace.decode import FrameTable, decode_trace
from armbus.hil.trace.mcapfile import (
    FAULTS,
    GOALS,
    LINK,
    McapSink,
    goal_of,
    goal_record,
    mode_name,
    span_values,
    state_of,
)
from armbus.hil.trace.reader import read_trace
from armbus.hil.trace.stats import INSTANCE_WINDOW_NS

#: The host's address: commands count as goals only as the host sent them. A broadcast that each joint forwards
#: (SYNC_WRITE, CYCLE) leaves a shrinking copy on every hop, sent by that joint.
HOST = 0
#: A CYCLE_REPLY grows by one record per hop; the copy joint 1 hands the host holds every record.
FIRST_JOINT = 1
_COMMANDS = (SetGoal, Torque, Write, SyncWrite, Cycle)
_GOAL_FIELD = {GoalMode.POSITION: ("position", units.from_wire_position),
               GoalMode.VELOCITY: ("velocity", units.from_wire_velocity),
               GoalMode.CURRENT: ("current", units.from_wire_current)}


@dataclass
class ExportReport:
    capture: str
    out: str
    messages: int = 0  # distinct DATA messages in the capture
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # one line per problem: what was not converted and why
    damaged: bool = False  # the capture was cut or corrupt: converted up to the damage

    def summary(self) -> str:
        c = self.counts
        return (f"exported {self.capture} -> {self.out}: {c.get('/joint_states', 0)} joint states, "
                f"{c.get(GOALS, 0)} goals, {c.get(FAULTS, 0)} faults, {c.get(LINK, 0)} link events "
                f"from {self.messages} messages" + (f"; {len(self.skipped)} problem(s)" if self.skipped else ""))


def _name(address: int) -> str:
    return "all" if address == 0xFF else f"joint{address}"


class _Exporter:
    def __init__(self, table: FrameTable, sink: McapSink, report: ExportReport) -> None:
        self.table, self.sink, self.report = table, sink, report
        self.links = [f"{i.link}:{i.direction}" if i.direction else i.link for i in table.trace.interfaces]

    def run(self) -> None:
        tb = self.table
        last: dict[tuple[int, int, int, int], int] = {}
        cols = (tb.t_ns.tolist(), tb.iface.tolist(), tb.kind.tolist(), tb.flags.tolist(), tb.src.tolist(),
                tb.dst.tolist(), tb.type.tolist(), tb.msg_id.tolist(), tb.error.tolist(), tb.size.tolist(),
                tb.payload_index.tolist())
        for t, iface, kind, flags, src, dst, typ, msg_id, error, size, pay in zip(*cols, strict=True):
            link = self.links[iface]
            if kind == LINE_ERROR:
                self._link(t, link, "line error", f"{_enum(LineErrorKind, error)} ({size} bytes)")
                continue
            if kind == FrameKind.RESET:
                self._link(t, link, "reset", "")
                continue
            if kind == FrameKind.RESET_ACK:
                self._link(t, link, "reset ack", "")
                continue
            if kind != FrameKind.DATA:
                continue
            if flags & FrameFlag.RETRANSMIT:
                self._link(t, link, "retransmit", f"{_enum(MsgType, typ)} {src}->{dst} id={msg_id}")
            key = (src, dst, typ, msg_id)
            seen = last.get(key)
            last[key] = t
            if seen is not None and t - seen <= INSTANCE_WINDOW_NS:
                continue  # the same message on another hop, or a retry
            self.report.messages += 1
            try:
                message = decode_payload(typ, tb.payloads[pay])
            except DecodeError as exc:
                self.report.skipped.append(f"{t} ns {link}: {_enum(MsgType, typ)} {src}->{dst} id={msg_id} "
                                           f"not converted: {exc}")
                continue
            self._message(t, link, src, dst, message)

    def _link(self, t: int, link: str, what: str, detail: str) -> None:
        self.sink.json(LINK, t, {"link": link, "what": what, "detail": detail})

    def _message(self, t: int, link: str, src: int, dst: int, m: Message) -> None:
        if src == HOST and isinstance(m, _COMMANDS):
            self._command(t, dst, m)
            return
        states: list[tuple[int, int, bytes, int]] = []  # (address, reg, data, sampled at)
        if isinstance(m, State):
            self._states(t, t, [(src, (units.from_wire_position(m.position), units.from_wire_velocity(m.velocity),
                                      units.from_wire_current(m.current)))])
        elif isinstance(m, ReadReply):
            states = [(src, m.reg, m.data, t)]
        elif isinstance(m, SyncReadReply):
            states = [(r.address, m.reg, r.data, t) for r in m.records]
        elif isinstance(m, CycleReply) and src == FIRST_JOINT:
            states = [(r.address, m.reg, r.data, t - r.age_us * NS_PER_US) for r in m.records]
        elif isinstance(m, Fault):
            code = _enum(FaultCode, m.code)
            self.sink.json(FAULTS, t, {"joint": _name(src), "address": src, "code": code,
                                       "active": bool(m.active), "value": m.value})
        elif isinstance(m, Undeliverable):
            self._link(t, link, "undeliverable", f"reported by {m.reporter}: {_enum(MsgType, m.orig_type)} "
                                                 f"{m.orig_src}->{m.orig_dst} id={m.orig_msg_id}")
        if states:
            picked = []
            stamps = []
            for address, reg, data, sampled in sorted(states):  # address order (a CYCLE_REPLY is chain end first)
                state = state_of(span_values(reg, data))
                if state is not None:
                    picked.append((address, state))
                    stamps.append(sampled)
            if picked:
                self._states(t, min(stamps), picked)

    def _command(self, t: int, dst: int, m: Message) -> None:
        if isinstance(m, SetGoal):
            fields: dict[str, Any] = {"mode": mode_name(m.mode)}
            if m.mode in _GOAL_FIELD:
                name, convert = _GOAL_FIELD[GoalMode(m.mode)]
                fields[name] = convert(m.value)
            self._goal(t, dst, "SET_GOAL", fields)
        elif isinstance(m, Torque):
            self._goal(t, dst, "TORQUE", {"torque": bool(m.enable)})
        elif isinstance(m, Write):
            goal = goal_of(span_values(m.reg, m.data))
            if goal is not None:
                self._goal(t, dst, "WRITE", goal)
        elif isinstance(m, SyncWrite):
            for i in range(len(m.data) // m.slice_len if m.slice_len else 0):
                goal = goal_of(span_values(m.reg, m.data[i * m.slice_len:(i + 1) * m.slice_len]))
                if goal is not None:
                    self._goal(t, m.first + i, "SYNC_WRITE", goal)
        elif isinstance(m, Cycle) and m.goals and m.mode in _GOAL_FIELD:
            name, convert = _GOAL_FIELD[GoalMode(m.mode)]
            for i, value in enumerate(m.goals):
                self._goal(t, m.first + i, "CYCLE", {"mode": GoalMode(m.mode).name, name: convert(value)})

    def _states(self, t: int, stamp: int, picked: Sequence[tuple[int, tuple[float, float, float]]]) -> None:
        self.sink.joint_states(t, stamp, [_name(a) for a, _ in picked], [s[0] for _, s in picked],
                               [s[1] for _, s in picked], [s[2] for _, s in picked])

    def _goal(self, t: int, address: int, source: str, fields: dict[str, Any]) -> None:
        self.sink.json(GOALS, t, goal_record(_name(address), address, source, fields))


def _enum(kind: Any, value: int) -> str:
    try:
        return str(kind(value).name)
    except ValueError:
        return str(value)


def export(capture: str, out: str) -> ExportReport:
    """Convert ``capture`` into ``out``; raises TraceError when the capture holds nothing to convert."""
    trace = read_trace(capture)
    trace.require_armbus()
    report = ExportReport(capture, out, damaged=trace.truncated)
    report.skipped.extend(trace.warnings)
    table = decode_trace(trace)
    for iface, held in table.leftover.items():
        report.skipped.append(f"{held} bytes of an unfinished frame at the end of "
                              f"{trace.interfaces[iface].name}: not converted")
    sink = McapSink(out, {"capture": capture, **{f"capture.{k}": v for k, v in trace.metadata.items()},
                          "clock": "the capture's timestamps", "effort": "motor current, A",
                          "position": "raw (no calibration), rad"})
    try:
        _Exporter(table, sink, report).run()
        if report.skipped:
            sink.metadata({f"problem.{i}": line for i, line in enumerate(report.skipped)}, "armbus.export")
    finally:
        report.counts = sink.close()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``armbus trace export --mcap CAPTURE [--out FILE] [--json]``. 0: all converted; 2: a bad capture, or a
    damaged one of which something was not converted (each problem is a warning line)."""
    p = argparse.ArgumentParser(prog="armbus trace export --mcap",
                                description="Convert an armbus pcapng capture into an MCAP recording.")
    p.add_argument("capture", nargs="?", help="the pcapng capture (or --mcap CAPTURE)")
    p.add_argument("--mcap", help="the pcapng capture to convert into MCAP")
    p.add_argument("--out", help="MCAP file (default: the capture's name with .mcap)")
    p.add_argument("--json", action="store_true", help="the report as one JSON object")
    args = p.parse_args(argv)
    capture = args.mcap or args.capture
    if not capture or (args.mcap and args.capture):
        print("error: give one capture: armbus trace export --mcap CAPTURE.pcapng --out run.mcap", file=sys.stderr)
        return ExitCode.USAGE
    out = args.out or (capture.removesuffix(".pcapng") + ".mcap")
    try:
        if out == capture:
            raise UsageError(f"--out {out}: would overwrite the capture")
        report = export(capture, out)
    except (TraceError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    for line in report.skipped:
        print(f"warning: {line}", file=sys.stderr)
    print(json.dumps(asdict(report)) if args.json else report.summary())
    return ExitCode.USAGE if report.skipped else ExitCode.OK
