"""TOML arm config: the example file loads, and every mistake names file, key and fix."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from armbus.bus.errors import ConfigError, UsageError
from armbus.bus.wire import DEFAULT_BAUD
from armbus.controller.config import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "arm.toml"

MINIMAL = """
[bus]
port = "loop://"
max_step = "2deg"

[joints.b]
address = 2
min = -1.0
max = 1.0
max_velocity = "90deg/s"
max_current = "500mA"

[joints.a]
address = 1
offset = "10deg"
min = "-45deg"
max = "45deg"
max_velocity = 2
max_current = 1.5
max_step = 0.01
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "arm.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.names == ("base", "shoulder", "elbow", "wrist")
    assert [j.address for j in cfg.joints] == [1, 2, 3, 4]
    shoulder = cfg.joint("shoulder")
    assert shoulder.offset == pytest.approx(math.radians(12.5))
    assert shoulder.max_step == pytest.approx(math.radians(3))
    assert cfg.joint("wrist").max_step == pytest.approx(math.radians(5))  # the [bus] default
    assert cfg.joint("elbow").max_acceleration is None
    assert cfg.on_close == "hold"


def test_minimal_file_sorted_by_address_and_converted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.names == ("a", "b")
    assert cfg.baud == DEFAULT_BAUD
    a, b = cfg.joints
    assert a.position_min == pytest.approx(-math.pi / 4)
    assert a.max_step == 0.01 and b.max_step == pytest.approx(math.radians(2))
    assert b.max_current == pytest.approx(0.5)
    assert cfg.by_address(2) is b and cfg.by_address(9) is None
    assert a.from_raw(a.to_raw(0.3)) == pytest.approx(0.3)
    assert a.to_raw(0.0) == pytest.approx(math.radians(10))
    assert a.clamp(5.0) == a.position_max


def test_unknown_joint_name_lists_names(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(UsageError, match="joints: a, b"):
        cfg.joint("c")


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ('port = "loop://"', "", ["bus.port is missing", "armbus ports"]),
        ("address = 2", "address = 1", ["address 1 is already used by joint", "every joint needs its own"]),
        ("address = 2", "address = 300", ["joints.b.address 300 is out of range", "1..253"]),
        ("min = -1.0", "min = 2.0", ["joints.b.min", "must be below"]),
        (
            'max_velocity = "90deg/s"',
            'max_velocity = "90 deg"',
            ["joints.b.max_velocity", "unknown angular velocity"],
        ),
        ('max_current = "500mA"', "", ["joints.b.max_current is missing"]),
        ('max_current = "500mA"', 'max_current = "5mA"\nmax_curent = 1', ["unknown key joints.b.max_curent"]),
        ('max_step = "2deg"', "", ["joints.b.max_step is missing"]),
        ("max_current = 1.5", "max_current = -1.5", ["joints.a.max_current must be positive"]),
        ("[bus]", "[bus]\nbaud = 0", ["bus.baud must be a positive integer"]),
        ("[bus]", '[bus]\non_close = "drop"', ["bus.on_close must be one of hold, torque_off"]),
        ("[bus]", "[bus]\ncontrol_rate_hz = 5000", ["bus.control_rate_hz"]),
        ("max_velocity = 2", "max_velocity = true", ["joints.a.max_velocity must be a number"]),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, old: str, new: str, fragments: list[str]) -> None:
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[bus\nport = 1"))
    with pytest.raises(ConfigError, match="no joints"):
        load_config(write(tmp_path, '[bus]\nport = "loop://"\n'))
