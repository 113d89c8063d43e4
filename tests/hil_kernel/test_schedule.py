"""Fault schedules: parsing, time-ordered application through the kernel, pluggable kinds."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import pytest
from hil_fakes import Sender, frame

from armbus.bus.errors import ConfigError, UsageError
from armbus.hil.fault_kinds import BUILTIN_FAULT_KINDS
from armbus.hil.faults import LinkFaults
from armbus.hil.kernel import Kernel
from armbus.hil.schedule import (
    FAULT_KINDS,
    CutLink,
    FaultSchedule,
    FaultTarget,
    Fields,
    ScheduledFault,
    SetLinkFaults,
    register_fault_kind,
)
from armbus.hil.wire import Direction


def setup() -> tuple[Kernel, Sender]:
    k = Kernel()
    dst = Sender([])
    k.add_node("src", Sender([(i * 1_000_000, frame(i)) for i in range(10)]))
    k.add_node("dst", dst)
    k.connect("src", 0, "dst", 0, baud=1_000_000, name="l")
    return k, dst


def test_schedule_applies_in_time_order_and_logs() -> None:
    k, dst = setup()
    schedule = FaultSchedule.parse([
        {"kind": "link_faults", "at_ms": 6.5, "link": "l", "faults": {}},
        {"kind": "cut_link", "at_us": 1500, "link": "l", "duration_ms": 2, "direction": "down"},
        {"kind": "link_faults", "at_ms": 4.5, "link": "l", "faults": {"drop_frame": 1.0}},
    ])
    assert [f.at_ns for f in schedule.faults] == [1_500_000, 4_500_000, 6_500_000]
    schedule.install(k)
    k.run_until_idle()
    assert [f for _, f in dst.frames()] == [frame(i) for i in (0, 1, 4, 7, 8, 9)]
    ops = [d.op for d in k.faults.log]
    assert ops[0] == "cut_link" and ops.count("drop_frame") == 2 and "link_faults" in ops


def test_equal_code_and_file_forms() -> None:
    parsed = FaultSchedule.parse([{"kind": "cut_link", "at_ms": 1, "link": "x", "duration_us": 5}])
    assert parsed == FaultSchedule((CutLink(1_000_000, "x", 5_000),))
    built = SetLinkFaults(0, "x", LinkFaults(flip_bit=0.5), Direction.B_TO_A)
    assert FaultSchedule.parse(
        [{"kind": "link_faults", "at_ns": 0, "link": "x", "faults": {"flip_bit": 0.5}, "direction": "up"}]
    ).faults == (built,)


def test_load_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "f.toml"
    toml.write_text('[[fault]]\nkind = "cut_link"\nat_ms = 3\nlink = "l"\nduration_ms = 1\n')
    js = tmp_path / "f.json"
    js.write_text('[{"kind": "cut_link", "at_ms": 3, "link": "l", "duration_ms": 1}]')
    assert FaultSchedule.load(toml) == FaultSchedule.load(js) == FaultSchedule((CutLink(3_000_000, "l", 1_000_000),))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "melt", "at_ms": 1}, "unknown fault kind 'melt'"),
        ({"kind": "cut_link", "link": "l", "duration_ms": 1}, "at: missing"),
        ({"kind": "cut_link", "at_ms": 1, "at_us": 2, "link": "l", "duration_ms": 1}, "more than once"),
        ({"kind": "cut_link", "at_ms": -1, "link": "l", "duration_ms": 1}, "non-negative"),
        ({"kind": "cut_link", "at_ms": 1, "link": "l", "duration_ms": 1, "colour": 3}, "unknown key.*colour"),
        ({"kind": "cut_link", "at_ms": 1, "link": "l", "duration_ms": 1, "direction": "sideways"}, "direction"),
        ({"kind": "link_faults", "at_ms": 1, "link": "l", "faults": {"drop_frame": 2}}, "drop_frame"),
    ],
)
def test_bad_entries_name_entry_and_key(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=rf"entry 1.*{message}"):
        FaultSchedule.parse([entry], source="faults.toml")


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        FaultSchedule.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[fault]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        FaultSchedule.load(bad)


def test_new_kinds_plug_in() -> None:
    @dataclasses.dataclass(frozen=True)
    class Poke(ScheduledFault):
        node: str = ""
        kind: ClassVar[str] = "test_poke"

        def apply(self, target: FaultTarget, now: int) -> None:
            target.node(self.node).out += frame(99)
            target.faults.record(now, self.node, None, self.kind, "poked")

        @classmethod
        def from_fields(cls, at_ns: int, fields: Fields) -> Poke:
            return cls(at_ns, fields.text("node"))

    register_fault_kind(Poke)
    try:
        k, dst = setup()
        FaultSchedule.parse([{"kind": "test_poke", "at_ms": 20, "node": "src"}]).install(k)
        k.run_until_idle()
        assert dst.frames()[-1] == (20_170_000, frame(99))
        assert "test_poke" in str(k.faults.log[-1])
    finally:
        del FAULT_KINDS["test_poke"]


def test_one_table_lists_every_builtin_kind_and_refuses_a_taken_name() -> None:
    assert list(FAULT_KINDS.values())[:len(BUILTIN_FAULT_KINDS)] == list(BUILTIN_FAULT_KINDS)
    assert sorted(FAULT_KINDS) == sorted(["cut_link", "link_faults", "reboot", "freeze", "overheat", "stall",
                                          "cut_cable", "sensor_noise"])
    with pytest.raises(UsageError, match="already registered"):
        register_fault_kind(CutLink)
