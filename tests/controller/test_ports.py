"""Port listing and the FTDI latency-timer check, against a real temporary sysfs tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from serial.tools.list_ports_common import ListPortInfo

from armbus.controller.ports import UDEV_RULE, check_latency, list_ports, read_latency_timer, tty_name


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
