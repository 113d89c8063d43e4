"""MCAP recordings in simulated time: a recorded virtual arm and an exported capture, read back with mcap's reader
and the ROS 2 decoder."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from armbus.bus.link import LinkConfig
from armbus.bus.wire import NS_PER_S, FaultCode
from armbus.controller import units
from armbus.controller.events import CycleReplied, HostEvent
from armbus.controller.host import HostConfig, HostNode
from armbus.hil.faults import LinkFaults
from armbus.hil.joint_faults import Overheat
from armbus.hil.link_faults import SetLinkFaults
from armbus.hil.schedule import FaultSchedule
from armbus.hil.simarm import SimArm
from armbus.hil.trace.decode import decode_file, iter_lines
from armbus.hil.trace.mcapexport import export
from armbus.hil.trace.mcapexport import main as export_main
from armbus.hil.trace.mcapfile import (
    FAULTS,
    GOALS,
    JOINT_STATE_MSGDEF,
    JOINT_STATES,
    JSON_SCHEMAS,
    LINK,
    McapSink,
    span_values,
)
from armbus.hil.trace.pcapng import TraceWriter
from armbus.hil.trace.stats import compute
from armbus.hil.virtual_arm import VirtualArm
from armbus.tools.record import SPAN, Recorder

MS = 1_000_000


def read_mcap(path: Path) -> tuple[Any, list[tuple[str, int, int, Any]]]:
    """(summary, [(topic, log_time, publish_time, decoded)]) in file order; JSON channels decoded with json, and
    each JSON message validated against the JSON Schema its channel carries in the file."""
    out = []
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            if channel.message_encoding == "json":
                value: Any = json.loads(message.data)
                jsonschema.validate(value, json.loads(schema.data), cls=jsonschema.Draft7Validator)
            else:
                value = None
            out.append((channel.topic, message.log_time, message.publish_time, value))
        f.seek(0)
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        states = iter(d for _, _, _, d in reader.iter_decoded_messages(topics=[JOINT_STATES], log_time_order=False))
        out = [(t, lt, pt, next(states) if t == JOINT_STATES else v) for t, lt, pt, v in out]
    return summary, out


def of(messages: list[tuple[str, int, int, Any]], topic: str) -> list[tuple[int, Any]]:
    return [(lt, v) for t, lt, _, v in messages if t == topic]


# ------------------------------------------------------------------------------------------------ recording
@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Path, Any, list[CycleReplied], dict[str, float]]]:
    """Three joints holding goals, recorded for 2 s of simulated time at 100 Hz; the replies as a listener saw them."""
    arm = SimArm(joints=3, seed=1)
    arm.enumerate()
    goals = {"joint1": 0.3, "joint2": -0.2, "joint3": 0.1}
    arm.torque(True)
    arm.set_goals(goals)
    arm.sleep_until(arm.now() + 500 * MS)  # they arrive
    seen: list[CycleReplied] = []

    def listen(ev: HostEvent) -> None:
        if isinstance(ev, CycleReplied):
            seen.append(ev)

    arm.add_listener(listen)
    path = tmp_path / "run.mcap"
    with McapSink(path, {"port": "sim"}) as sink:
        report = Recorder(arm, sink, 100.0, epoch_offset_ns=1_700_000_000 * NS_PER_S).run(2.0)
    arm.remove_listener(listen)
    arm.close()
    yield path, report, seen, goals


def test_a_recording_holds_the_four_channels_with_their_schemas(recorded: Any) -> None:
    path, report, _, _ = recorded
    summary, _ = read_mcap(path)
    topics = {c.topic: c for c in summary.channels.values()}
    assert set(topics) == {JOINT_STATES, GOALS, FAULTS, LINK}
    js = summary.schemas[topics[JOINT_STATES].schema_id]
    assert (js.name, js.encoding, topics[JOINT_STATES].message_encoding) == ("sensor_msgs/msg/JointState", "ros2msg",
                                                                            "cdr")
    assert js.data.decode() == JOINT_STATE_MSGDEF
    assert "MSG: std_msgs/Header" in JOINT_STATE_MSGDEF and "MSG: builtin_interfaces/Time" in JOINT_STATE_MSGDEF
    for topic, (name, body) in JSON_SCHEMAS.items():
        schema = summary.schemas[topics[topic].schema_id]
        assert (schema.name, schema.encoding, topics[topic].message_encoding) == (name, "jsonschema", "json")
        assert json.loads(schema.data) == body and name.endswith(".v1") and body["$id"].endswith(name)
        jsonschema.Draft7Validator.check_schema(body)
        # what Foxglove's JSON Schema reader takes: an object whose every field has one type it knows
        assert body["type"] == "object"
        assert all(f["type"] in ("boolean", "string", "number", "integer") for f in body["properties"].values())
    goal = JSON_SCHEMAS[GOALS][1]
    jsonschema.validate({"joint": "joint1", "address": 1, "source": "CYCLE", "mode": "POSITION", "position": 0.1},
                        goal)
    for bad in ({"joint": "joint1", "address": 1}, {"joint": "joint1", "address": 1, "source": "CYCLE", "mode": "X"},
                {"joint": "joint1", "address": 300, "source": "register"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, goal)
    assert summary.statistics.message_count == sum(report.counts.values())


def test_a_recording_has_duration_times_rate_states_with_monotonic_times(recorded: Any) -> None:
    path, report, _, _ = recorded
    _, messages = read_mcap(path)
    states = of(messages, JOINT_STATES)
    assert abs(len(states) - 200) <= 2, len(states)  # 2 s at 100 Hz
    assert report.missed == 0 and report.counts[JOINT_STATES] == len(states)
    log_times = [lt for _, lt, _, _ in messages]
    assert log_times == sorted(log_times)  # written in the order received, over every channel
    assert all(lt == pt for _, lt, pt, _ in messages)
    stamps = [m.header.stamp.sec * NS_PER_S + m.header.stamp.nanosec for _, m in states]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    period = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(abs(p - 10 * MS) < MS for p in period)  # a steady 100 Hz
    assert all(0 < lt - s < 5 * MS for (lt, _), s in zip(states, stamps, strict=True))  # sampled before received
    assert stamps[0] // NS_PER_S >= 1_700_000_000  # the epoch offset applies to both


def test_recorded_joint_states_equal_what_the_arm_reported(recorded: Any) -> None:
    path, _, seen, goals = recorded
    _, messages = read_mcap(path)
    states = [m for _, m in of(messages, JOINT_STATES)]
    assert len(states) == len(seen)
    for msg, ev in zip(states, seen, strict=True):
        assert list(msg.name) == ["joint1", "joint2", "joint3"]
        for i, sample in enumerate(ev.samples):
            v = span_values(SPAN[0], sample.data)
            assert msg.position[i] == units.from_wire_position(v["present_position"])
            assert msg.velocity[i] == units.from_wire_velocity(v["present_velocity"])
            assert msg.effort[i] == units.from_wire_current(v["present_current"])  # effort is the current, A
        assert msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec == \
            min(s.sampled_at for s in ev.samples) + 1_700_000_000 * NS_PER_S
    last = states[-1]
    for i, name in enumerate(last.name):
        assert abs(last.position[i] - goals[name]) < 0.01  # holding the goal


def test_recorded_goals_are_the_goal_registers_once_per_change(recorded: Any) -> None:
    path, _, _, goals = recorded
    _, messages = read_mcap(path)
    got = [g for _, g in of(messages, GOALS)]
    assert len(got) == 3  # the goals held still: the first record of each joint only
    for g in got:
        assert g["source"] == "register" and g["mode"] == "POSITION" and g["torque"] is True
        assert g["position"] == pytest.approx(goals[g["joint"]], abs=1e-6)


# ------------------------------------------------------------------------------------------------ export
def capture_session(path: Path) -> None:
    """A session with every kind of thing an export converts: goals by SET_GOAL, TORQUE, SYNC_WRITE and CYCLE,
    states by SYNC_READ and CYCLE replies, an over-temperature FAULT, bit flips on j1-j2 (line errors,
    retransmissions)."""
    host = HostNode(HostConfig(link=LinkConfig(baud=1_000_000)))
    schedule = FaultSchedule((SetLinkFaults(60 * MS, link="j1-j2", faults=LinkFaults(flip_bit=2e-4)),
                              Overheat(150 * MS, joint=2, winding_c=95.0, ambient_c=70.0, duration_ns=20 * MS)))
    varm = VirtualArm(3, host=host, seed=3, faults=schedule)
    with TraceWriter(path, {"baud": 1_000_000, "joints": 3, "seed": 3}) as writer:
        varm.kernel.add_tap(writer)
        arm = SimArm(varm)
        arm.enumerate()
        arm.torque(True)
        arm.set_goal("joint1", position=0.2)
        arm.set_goals({"joint1": 0.25, "joint2": -0.1, "joint3": 0.05})
        arm.read_states()
        arm.cyclic(lambda view: {"joint1": 0.3, "joint2": 0.0}, 200.0).run(0.2)
        arm.read_states()
        varm.run_for(5 * MS)


def _expected(path: Path, complete: bool = True) -> dict[str, int]:
    """What an export must hold, counted from the trace's own decode and stats."""
    table = decode_file(str(path))
    stats = compute(table)
    rows = [json.loads(line) for line in iter_lines(table, np.arange(len(table)), as_json=True)]
    seen: dict[tuple[Any, ...], int] = {}
    states = goals = 0
    for r in rows:
        if r["kind"] != "DATA":
            continue
        key = (r["src"], r["dst"], r["type"], r["msg_id"])
        first = key not in seen or r["t_ns"] - seen[key] > NS_PER_S
        seen[key] = r["t_ns"]
        if not first:
            continue
        f, typ = r["fields"], r["type"]
        # states: the state-block sync-reads, STATE, and each cycle reply as joint 1 hands it to the host
        if (typ == "SYNC_READ_REPLY" and f["reg"] == 56) or typ == "STATE" or (typ == "CYCLE_REPLY" and r["src"] == 1):
            states += 1
        if r["src"] != 0:  # goals: what the host sent, not the copies the joints forward
            continue
        if typ in ("SET_GOAL", "TORQUE"):
            goals += 1
        elif typ == "SYNC_WRITE" and f["reg"] == 44:
            goals += len(f["data"]) // 2 // f["slice_len"]
        elif typ == "CYCLE" and f["goals"]:
            goals += len(f["goals"])
    m = stats.messages_by_type
    link = (stats.frames_by_type.get("RESET", 0) + stats.frames_by_type.get("RESET_ACK", 0)
            + sum(stats.line_errors.values()) + stats.retransmissions + stats.undeliverable)
    cycles = sum(1 for r in rows if r["kind"] == "DATA" and r["type"] == "CYCLE" and r["src"] == 0
                 and r["link"] == "host-j1" and not r["retransmit"])
    replies = sum(1 for r in rows if r["kind"] == "DATA" and r["type"] == "CYCLE_REPLY" and r["src"] == 1
                  and r["link"] == "host-j1" and not r["retransmit"])
    assert cycles == replies or not complete  # every cycle answered (a cut capture may end before a reply)
    assert states == replies + m.get("STATE", 0) + m["SYNC_READ_REPLY"] - 1  # every sync-read but enumerate's
    return {JOINT_STATES: states, GOALS: goals, FAULTS: m.get("FAULT", 0), LINK: link,
            "messages": sum(m.values())}


def test_an_export_holds_what_the_trace_decodes_to(tmp_path: Path) -> None:
    cap = tmp_path / "cap.pcapng"
    capture_session(cap)
    expected = _expected(cap)
    report = export(str(cap), str(tmp_path / "cap.mcap"))
    assert not report.damaged and not report.skipped
    assert report.messages == expected.pop("messages")
    assert report.counts == expected
    assert expected[FAULTS] >= 1 and expected[GOALS] > 40 and expected[JOINT_STATES] > 30
    summary, messages = read_mcap(tmp_path / "cap.mcap")
    assert {t: summary.statistics.channel_message_counts.get(c.id, 0) for c, t in
            ((c, c.topic) for c in summary.channels.values())} == report.counts
    log_times = [lt for _, lt, _, _ in messages]
    assert log_times == sorted(log_times)
    faults = [f for _, f in of(messages, FAULTS)]
    assert (faults[0]["code"], faults[0]["active"], faults[0]["joint"]) == (FaultCode.OVER_TEMPERATURE.name, True,
                                                                             "joint2")
    sources = {g["source"] for _, g in of(messages, GOALS)}
    assert sources == {"SET_GOAL", "TORQUE", "SYNC_WRITE", "CYCLE"}
    cyc = [g for _, g in of(messages, GOALS) if g["source"] == "CYCLE"]
    assert {(g["joint"], g["position"]) for g in cyc} == {("joint1", 0.3), ("joint2", 0.0)}
    whats = {e["what"] for _, e in of(messages, LINK)}
    assert {"reset", "reset ack", "line error", "retransmit"} <= whats
    states = [m for _, m in of(messages, JOINT_STATES)]
    assert all(list(m.name) == ["joint1", "joint2", "joint3"] for m in states)
    assert all(math.isfinite(p) for m in states for p in m.position)
    assert states[-1].position[0] == pytest.approx(0.3, abs=0.02)


def test_a_truncated_capture_converts_everything_before_the_cut(tmp_path: Path, capsys: Any) -> None:
    cap = tmp_path / "cap.pcapng"
    capture_session(cap)
    data = cap.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) * 3 // 5 + 7])  # inside a block
    assert export_main(["--mcap", str(cut), "--out", str(tmp_path / "cut.mcap")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: truncated last block at offset"), err
    expected = _expected(cut, complete=False)
    expected.pop("messages")
    summary, _ = read_mcap(tmp_path / "cut.mcap")  # a complete MCAP file, with its summary
    counts = {c.topic: summary.statistics.channel_message_counts.get(c.id, 0) for c in summary.channels.values()}
    assert counts == expected and counts[JOINT_STATES] > 0
    full = export(str(cap), str(tmp_path / "full.mcap")).counts
    assert counts[JOINT_STATES] < full[JOINT_STATES]


def test_not_a_capture_is_one_error_line_and_no_output(tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "notes.pcapng"
    bad.write_text("not a capture\n")
    assert export_main(["--mcap", str(bad), "--out", str(tmp_path / "x.mcap")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "not a pcapng file" in err[0]
    assert not (tmp_path / "x.mcap").exists()
    assert export_main([]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_payload_that_does_not_decode_is_named_and_the_rest_converted(tmp_path: Path, capsys: Any) -> None:
    """A frame whose CRC is good but whose payload is not a valid message: skipped, and said so exactly."""
    from armbus.bus.codec import Packet, encode_data
    from armbus.bus.messages import State
    from armbus.bus.wire import MsgType

    good = State(0x01, 500_000, 0, 120, 250, 12_000).pack()
    cap = tmp_path / "hand.pcapng"
    with TraceWriter(cap, {"joints": 1}) as writer:
        writer.write("host-j1", "b>a", 1 * MS, encode_data(0, 0, Packet(1, 0, MsgType.STATE, 1, 32, good)))
        writer.write("host-j1", "b>a", 2 * MS, encode_data(1, 0, Packet(1, 0, MsgType.STATE, 2, 32, good[:5])))
        writer.write("host-j1", "b>a", 3 * MS, encode_data(2, 0, Packet(1, 0, MsgType.STATE, 3, 32, good)))
    assert export_main(["--mcap", str(cap), "--out", str(tmp_path / "hand.mcap")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: 2000000 ns host-j1:b>a: STATE 1->0 id=2 not converted:")
    _, messages = read_mcap(tmp_path / "hand.mcap")
    states = of(messages, JOINT_STATES)
    assert [t for t, _ in states] == [1 * MS, 3 * MS]
    assert states[0][1].position[0] == 0.5 and states[0][1].effort[0] == 0.12


def test_the_rate_limits_quoted_in_the_docs_are_current() -> None:
    from armbus.controller.cycles import CycleTiming
    from armbus.tools.record import rate_limit

    page = (Path(__file__).resolve().parents[2] / "docs" / "recording.md").read_text(encoding="utf-8")
    one, three = CycleTiming(), CycleTiming(3_000_000, 3_000_000)
    quoted = (f"{rate_limit(one, 3):.0f} Hz for 3 joints at 1 Mbaud, {rate_limit(one, 6):.0f} Hz for 6, "
              f"{rate_limit(one, 12):.0f} Hz for 12")
    assert quoted in page.replace("\n", " ")
    assert rate_limit(three, 6) == pytest.approx(3 * rate_limit(one, 6), rel=0.01)  # "three times that"
    assert rate_limit(three, 3) == 1000.0  # "never above 1000 Hz"


def test_a_recording_holds_the_faults_and_link_events_of_the_arm(tmp_path: Path) -> None:
    host = HostNode(HostConfig(link=LinkConfig(baud=1_000_000)))
    schedule = FaultSchedule((SetLinkFaults(300 * MS, link="host-j1", faults=LinkFaults(flip_bit=1e-3)),
                              Overheat(500 * MS, joint=2, winding_c=95.0, ambient_c=70.0, duration_ns=20 * MS)))
    arm = SimArm(VirtualArm(3, host=host, seed=4, faults=schedule))
    arm.enumerate()
    faults: list[HostEvent] = []
    arm.add_listener(lambda ev: faults.append(ev) if type(ev).__name__ in ("FaultReported", "LinkEvent") else None)
    with McapSink(tmp_path / "f.mcap") as sink:
        report = Recorder(arm, sink, 50.0).run(1.0)
    _, messages = read_mcap(tmp_path / "f.mcap")
    got = [f for _, f in of(messages, FAULTS)]
    assert got and (got[0]["joint"], got[0]["code"], got[0]["active"]) == ("joint2", "OVER_TEMPERATURE", True)
    link = [e for _, e in of(messages, LINK)]
    assert any(e["what"] == "line error" for e in link) and all(e["link"] == "host" for e in link)
    # every fault and link event the host reported, and the cycles that got no reply, are in the file
    assert len(got) + len(link) == len(faults) + report.missed
    assert report.cycles == 50 and report.counts[JOINT_STATES] == report.cycles - report.missed + report.late


def test_a_recording_uses_the_configured_names_and_calibration(tmp_path: Path) -> None:
    from armbus.controller.config import parse_config

    limits = {"min": "-90deg", "max": "90deg", "max_velocity": "180deg/s", "max_current": "2A",
              "max_step": "30deg"}
    config = parse_config({"bus": {"port": "virtual"},
                           "joints": {"base": {"address": 1, "offset": "10deg", **limits},
                                      "elbow": {"address": 2, "offset": "-5deg", **limits}}})
    arm = SimArm(joints=2, seed=1, config=config)
    arm.enumerate()
    arm.torque(True)
    arm.set_goals({"base": 0.2, "elbow": -0.1})  # calibrated
    arm.sleep_until(arm.now() + 500 * MS)
    with McapSink(tmp_path / "c.mcap") as sink:
        Recorder(arm, sink, 50.0).run(0.2)
    _, messages = read_mcap(tmp_path / "c.mcap")
    last = of(messages, JOINT_STATES)[-1][1]
    assert list(last.name) == ["base", "elbow"]
    assert last.position[0] == pytest.approx(0.2, abs=0.01) and last.position[1] == pytest.approx(-0.1, abs=0.01)
    goals = {g["joint"]: g["position"] for _, g in of(messages, GOALS)}
    assert goals == pytest.approx({"base": 0.2, "elbow": -0.1}, abs=1e-6)
    states = arm.read_states()  # the arm API reports the same calibrated positions
    assert states["base"].position == pytest.approx(last.position[0], abs=0.005)
