"""``armbus conform``: passes against the reference arm, and names the rule a planted link bug breaks.

The planted bugs live here only: a joint 1 whose UP link delivers a retransmission again (no dedup), or acks with
the wrong sequence number. They are patched into one VirtualArm's joint, in simulated time (fast, exact) and
behind a pty in real time (the way an implementer runs the tool).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from armbus.bus.codec import Frame, decode_wire, encode_control
from armbus.bus.link import LinkEndpoint
from armbus.bus.linktable import Input, LinkState
from armbus.bus.wire import FrameKind
from armbus.hil.ptyserver import PtyServer
from armbus.hil.realtime import realtime_link_config
from armbus.hil.virtual_arm import VirtualArm
from armbus.joints.node import UP
from armbus.tools.cli import main
from armbus.tools.conformance import RULES, conform
from armbus.tools.conformance.wire import SimTransport

Plant = Callable[[LinkEndpoint], None]


def no_dedup(link: LinkEndpoint) -> None:
    """A retransmission of the frame delivered last is delivered again instead of only acked again."""
    link._dispatch[LinkState.OPEN][Input.DATA_DUP] = (LinkState.OPEN, link._do_deliver)


def wrong_ack_seq(link: LinkEndpoint) -> None:
    """Every ACK carries the seq after the one it acknowledges."""
    send = link.data_to_send

    def data_to_send(now: int) -> bytes:
        out = b""
        for chunk in send(now).split(b"\x00")[:-1]:
            frame = decode_wire(chunk + b"\x00")
            if isinstance(frame, Frame) and frame.kind == FrameKind.ACK:
                out += encode_control(FrameKind.ACK, (frame.seq + 1) & 0xFF)
            else:
                out += chunk + b"\x00"
        return out

    link.data_to_send = data_to_send  # type: ignore[method-assign]


def _statuses(arm: VirtualArm) -> dict[str, str]:
    out = io.StringIO()
    return {o.rule.name: o.status for o in conform(SimTransport(arm), 0.5, seed=1, out=out)}


def test_every_rule_passes_against_the_virtual_arm() -> None:
    statuses = _statuses(VirtualArm(3, seed=2))
    assert statuses == {r.name: "pass" for r in RULES}


@pytest.mark.parametrize(("plant", "rule"), [(no_dedup, "dedup"), (wrong_ack_seq, "ack")])
def test_a_planted_link_bug_fails_its_rule(plant: Plant, rule: str) -> None:
    arm = VirtualArm(3, seed=2)
    plant(arm.joints[0].links[UP])
    statuses = _statuses(arm)
    assert statuses[rule] == "fail"
    assert statuses["reset-answered"] == "pass"


def test_the_quiet_rule_catches_a_joint_that_resets_the_host_s_new_session() -> None:
    # the start-up bug: joint 1 keeps its own RESET outstanding after answering the host's, and sends it again
    arm = VirtualArm(3, seed=2)
    link = arm.joints[0].links[UP]
    for state in (LinkState.SYNCING, LinkState.DOWN):
        link._dispatch[state][Input.RESET_NEW] = (state, link._do_answer_reset)
    arm.run_for(300_000_000)  # joint 1 probes an unplugged host port for a while
    assert _statuses(arm)["quiet-after-handshake"] == "fail"


@pytest.mark.realtime
def test_the_command_against_the_pty_arm_passes_then_names_a_planted_bug(
        capsys: pytest.CaptureFixture[str]) -> None:
    for plant in (None, no_dedup):
        arm = VirtualArm(3, seed=1, link_config=realtime_link_config(1_000_000))
        if plant is not None:
            plant(arm.joints[0].links[UP])
        with PtyServer(arm) as server:
            code = main(["conform", "--port", server.port, "--timeout", "1", "--seed", "5"])
        out = capsys.readouterr().out
        if plant is None:
            assert code == 0, out
            assert out.count("PASS") == len(RULES) and f"{len(RULES)} of {len(RULES)} rules passed" in out
        else:
            assert code == 1, out
            assert "FAIL  dedup" in out and "delivered again" in out and 'hoplink.md "Stop-and-wait"' in out


def test_a_wrong_port_is_one_line_and_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["conform", "--port", str(tmp_path / "no-such-tty")])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("armbus: error: cannot open") and "Traceback" not in err


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["conform", "--port", "virtual", "--timeout", "0"])
    assert exc.value.code == 2
    assert main(["conform", "--port", "virtual", "--joints", "0"]) == 2
    assert "--joints 0" in capsys.readouterr().err


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["conform", "--port", "virtual", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["rule"] for d in data] == [r.name for r in RULES] and {d["status"] for d in data} == {"pass"}


def test_porting_firmware_md_lists_every_rule() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "porting-firmware.md").read_text(encoding="utf-8")
    section = text.split("## Proving the port: the conformance check", 1)[1].split("\n## ", 1)[0]
    listed = [line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")]
    assert listed == [r.name for r in RULES]
    assert f"{len(RULES)} of {len(RULES)} rules passed" in section
