"""Port listing and the FTDI latency-timer check, against a real temporary sysfs tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from serial.tools.list_ports_common import ListPortInfo

from armbus.bus.wire import NS_PER_MS
from armbus.controller.ports import (
    PORT_TURNAROUND_NS,
    UDEV_RULE,
    PortAdapter,
    check_latency,
    detect_adapter,
    list_ports,
    port_turnaround_ns,
    read_latency_timer,
    tty_name,
)
from armbus.hil.adapter import AdapterSpec


def make_sysfs(root: Path, tty: str, latency: str | None) -> None:
    device_dir = root / "bus" / "usb-serial" / "devices" / tty
    device_dir.mkdir(parents=True)
    if latency is not None:
        (device_dir / "latency_timer").write_text(latency + "\n")


def port(device: str, vid: int | None = None, pid: int | None = None, desc: str = "n/a") -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.description = vid, pid, desc
    info.serial_number = "A10K" if vid else None
    return info


def test_latency_above_one_ms_gives_the_exact_fix(tmp_path: Path) -> None:
    make_sysfs(tmp_path, "ttyUSB0", "16")
    warning = check_latency("/dev/ttyUSB0", tmp_path)
    assert warning is not None
    assert warning.latency_ms == 16
    assert warning.fix_now == "echo 1 | sudo tee /sys/bus/usb-serial/devices/ttyUSB0/latency_timer"
    assert warning.udev_rule == UDEV_RULE and 'ATTR{latency_timer}="1"' in UDEV_RULE
    text = str(warning)
    assert "16 ms" in text and warning.fix_now in text and UDEV_RULE in text


@pytest.mark.parametrize("value", ["1", "0"])
def test_no_warning_at_one_ms_or_below(tmp_path: Path, value: str) -> None:
    make_sysfs(tmp_path, "ttyUSB1", value)
    assert check_latency("/dev/ttyUSB1", tmp_path) is None
    assert read_latency_timer("/dev/ttyUSB1", tmp_path) == int(value)


def test_ports_without_timer_or_unreadable(tmp_path: Path) -> None:
    make_sysfs(tmp_path, "ttyUSB2", None)  # directory but no attribute
    make_sysfs(tmp_path, "ttyUSB3", "garbage")
    assert read_latency_timer("/dev/ttyACM0", tmp_path) is None
    assert read_latency_timer("/dev/ttyUSB2", tmp_path) is None
    assert read_latency_timer("/dev/ttyUSB3", tmp_path) is None
    assert check_latency("/dev/ttyACM0", tmp_path) is None


def test_symlinked_device_resolves_to_tty(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "ttyUSB4").write_text("")
    link = dev / "usb-FTDI_FT232R-if00-port0"
    link.symlink_to(dev / "ttyUSB4")
    assert tty_name(str(link)) == "ttyUSB4"
    make_sysfs(tmp_path / "sys", "ttyUSB4", "16")
    warning = check_latency(str(link), tmp_path / "sys")
    assert warning is not None and "ttyUSB4/latency_timer" in warning.fix_now


def test_list_ports_sorted_with_usb_ids_and_latency(tmp_path: Path) -> None:
    make_sysfs(tmp_path, "ttyUSB0", "16")
    ports = list_ports(
        tmp_path,
        comports=lambda: [port("/dev/ttyUSB0", 0x0403, 0x6001, "FT232R USB UART"), port("/dev/ttyACM0", 0x2E8A, 5)],
    )
    assert [p.device for p in ports] == ["/dev/ttyACM0", "/dev/ttyUSB0"]
    acm, ftdi = ports
    assert ftdi.usb_id == "0403:6001" and ftdi.latency_timer_ms == 16 and ftdi.description == "FT232R USB UART"
    assert acm.usb_id == "2e8a:0005" and acm.latency_timer_ms is None
    assert list_ports(tmp_path, comports=lambda: [port("/dev/ttyS0")])[0].usb_id is None


def test_list_ports_on_this_machine_does_not_fail() -> None:
    for info in list_ports():
        assert info.device


@pytest.mark.parametrize(
    ("device", "latency", "kind", "turnaround_ms"),
    [
        ("/dev/ttyUSB0", "16", "ftdi", 1 + 16 + 1),  # slack + latency timer + one USB frame
        ("/dev/ttyUSB0", "1", "ftdi", 1 + 1 + 1),
        ("/dev/ttyACM0", None, "cdc-acm", 1 + 1),  # slack + one USB frame
        ("/dev/ttyUSB1", None, "usb-serial", 1 + 1),  # a CP210x or CH340: no timer in sysfs
        ("/dev/ttyS0", None, "uart", 1),
        ("/dev/pts/3", None, "unknown", 3),  # a pty (armbus sim, armbus tap): its far end is not known
        ("armbus://?joints=2", None, "unknown", 3),
        ("virtual", None, "unknown", 3),
    ],
)
def test_the_host_turnaround_follows_the_adapter_sysfs_describes(
    tmp_path: Path, device: str, latency: str | None, kind: str, turnaround_ms: int
) -> None:
    if latency is not None:
        make_sysfs(tmp_path, "ttyUSB0", latency)
    adapter = detect_adapter(device, tmp_path)
    assert adapter.kind == kind
    assert adapter.latency_ms == (int(latency) if latency else None)
    assert port_turnaround_ns(device, tmp_path) == turnaround_ms * NS_PER_MS == adapter.turnaround_ns
    assert PORT_TURNAROUND_NS == 3 * NS_PER_MS  # unknown ports keep the old default: FTDI at 1 ms assumed


def test_a_by_id_link_reads_the_latency_timer_of_the_tty_it_points_to(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    (dev / "serial" / "by-id").mkdir(parents=True)
    (dev / "ttyUSB5").write_text("")
    link = dev / "serial" / "by-id" / "usb-FTDI_FT232R_USB_UART_A10K-if00-port0"
    link.symlink_to(dev / "ttyUSB5")
    make_sysfs(tmp_path / "sys", "ttyUSB5", "16")
    assert detect_adapter(str(link), tmp_path / "sys") == PortAdapter("ftdi", 16)
    assert port_turnaround_ns(str(link), tmp_path / "sys") == 18 * NS_PER_MS


def test_arm_open_takes_its_turnaround_from_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    import armbus.controller.arm as arm_module
    from armbus.controller.arm import Arm

    asked: list[str] = []

    def fake(device: str) -> int:
        asked.append(device)
        return 18 * NS_PER_MS

    monkeypatch.setattr(arm_module, "port_turnaround_ns", fake)
    with Arm.open("virtual?joints=1", settle_timeout=0.0) as arm:
        assert arm.runner.node.link.config.turnaround_ns == 18 * NS_PER_MS
    with Arm.open("virtual?joints=1", settle_timeout=0.0, turnaround_ns=5 * NS_PER_MS) as arm:
        assert arm.runner.node.link.config.turnaround_ns == 5 * NS_PER_MS
    assert asked == ["virtual?joints=1"]


def test_armbus_ports_prints_what_the_latency_timer_costs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from serial.tools import list_ports as pyserial_ports

    from armbus.tools.bench.adapter import simulated
    from armbus.tools.commands import cmd_ports

    make_sysfs(tmp_path, "ttyUSB0", "16")
    monkeypatch.setattr(pyserial_ports, "comports",
                        lambda: [port("/dev/ttyUSB0", 0x0403, 0x6001, "FT232R"), port("/dev/ttyACM0", 0x2E8A, 5)])
    assert cmd_ports(argparse.Namespace(json=False, sysfs_root=tmp_path)) == 0
    out, err = capsys.readouterr()
    assert "ftdi 16 ms" in out and "host turnaround 18 ms" in out and "cdc-acm" in out
    locked = simulated(AdapterSpec("ftdi", 16), True, 20)
    as_built = simulated(AdapterSpec("ftdi", 16), False, 20)
    fast = simulated(AdapterSpec("ftdi", 1), False, 20)
    assert locked.ping_p50 == 16.0  # the model's figures, not text written by hand
    assert f"a PING to joint 1 takes {locked.ping_p50:.1f} ms and a SYNC_READ of every joint " in err
    assert f"every joint {locked.sync_p50:.1f} ms" in err
    assert f"({as_built.ping_p50:.1f} ms, p99 {as_built.ping_p99:.1f} ms)" in err
    assert f"At 1 ms: {fast.ping_p50:.1f} ms and {fast.sync_p50:.1f} ms" in err
    assert "Write 1 to /sys/bus/usb-serial/devices/ttyUSB0/latency_timer" in err and UDEV_RULE in err


def test_async_arm_open_takes_its_turnaround_from_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import armbus.controller.aio as aio_module
    from armbus.controller.aio import AsyncArm
    from armbus.controller.backends import resolve_port

    monkeypatch.setattr(aio_module, "port_turnaround_ns", lambda device: 19 * NS_PER_MS)

    async def main() -> int:
        async with await AsyncArm.open(resolve_port("virtual?joints=1"), settle_timeout=0.0) as arm:
            return arm.node.link.config.turnaround_ns

    assert asyncio.run(main()) == 19 * NS_PER_MS
