"""The armbus:// pyserial URL handler: open, talk, time out, fail clearly, close."""

from __future__ import annotations

import asyncio
import time

import pytest
import serial
import serial_asyncio_fast

from armbus.bus.messages import EnumerateReply, Ping, PingReply
from armbus.controller.backends import BACKENDS, VIRTUAL_URL, open_port, resolve_port
from armbus.hil.probe import LinkProbe
from armbus.hil.urlhandler.protocol_armbus import Serial, parse_url

pytestmark = pytest.mark.realtime


def test_serial_for_url_opens_a_virtual_arm_that_enumerates() -> None:
    resolve_port("armbus://?joints=3")
    resolve_port("virtual")  # the backend is made known to pyserial once, however often it is used
    assert serial.protocol_handler_packages.count(BACKENDS["armbus"]) == 1
    port = serial.serial_for_url("armbus://?joints=3&seed=1&baud=1000000", timeout=0.2)
    try:
        assert isinstance(port, Serial) and port.is_open
        rt = port.virtual_arm
        assert rt is not None and rt.running
        probe = LinkProbe(port.fileno())
        probe.open(timeout=5)
        reply = probe.enumerate(timeout=5)
        assert isinstance(reply, EnumerateReply) and [r.serial for r in reply.records] == [0x1001, 0x1002, 0x1003]
        assert rt.call(lambda arm: arm.kernel.links["host-j1"].wire.baud) == 1_000_000
    finally:
        port.close()
    assert not port.is_open and not rt.running
    with pytest.raises(serial.PortNotOpenError):
        port.read(1)


def test_read_honours_the_timeout_and_reset_input_buffer_empties() -> None:
    with open_port("virtual?joints=1", timeout=0.05) as port:
        port.write(bytes(20))  # 20 empty frames: joint 1 counts them and says nothing
        t0 = time.monotonic()
        data = port.read(10_000)  # the joint's own link RESETs (7 bytes each) at most: far fewer than asked
        assert 0.04 <= time.monotonic() - t0 < 2.0
        assert len(data) % 7 == 0 and len(data) < 10_000
        port.reset_input_buffer()
        assert port.in_waiting <= 7  # at most one retransmitted RESET arrived since
        assert port.cts and port.dsr and port.cd and not port.ri


def test_pyserial_asyncio_can_use_the_virtual_port() -> None:
    resolve_port("armbus://")

    async def main() -> bytes:
        reader, writer = await serial_asyncio_fast.open_serial_connection(url="armbus://?joints=1&baud=1000000")
        try:
            return await asyncio.wait_for(reader.readuntil(b"\x00"), 5)  # joint 1's link RESET frame
        finally:
            writer.close()

    frame = asyncio.run(main())
    assert frame.endswith(b"\x00") and len(frame) == 7


def test_virtual_shorthand_and_unpaced_option() -> None:
    assert resolve_port("virtual") == VIRTUAL_URL
    assert resolve_port("virtual?joints=2") == "armbus://?joints=2"
    assert resolve_port("/dev/ttyUSB0") == "/dev/ttyUSB0"
    assert resolve_port("socket://localhost:7777") == "socket://localhost:7777"
    assert parse_url("armbus://?unpaced=1&seed=0x10") == {"unpaced": True, "seed": 16}
    with open_port("armbus://?joints=1&unpaced=true") as port:
        assert port.virtual_arm is not None and not port.virtual_arm.paced
        probe = LinkProbe(port.fileno())
        probe.open(timeout=5)
        assert isinstance(probe.request(Ping(), 0xFE, timeout=5), PingReply)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("armbus://?joints=0", "joints must be 1..253"),
        ("armbus://?joints=300", "joints must be 1..253"),
        ("armbus://?colour=red", "unknown option 'colour'"),
        ("armbus://?joints=six", "joints must be an integer"),
        ("armbus://host:1", "takes only options"),
        ("armbus://?baud=8000000", "faster than the real-time harness can pace"),
        ("armbus://?faults=/nonexistent.toml", "cannot read fault schedule"),
        ("armbus://?adapter=prolific", "unknown model 'prolific'"),
        ("armbus://?adapter=ftdi:latency=300ms", "out of range"),
        ("armbus://?adapter=ftdi:latency=16parsecs", "bad unit 'parsecs'"),
        ("armbus://?adapter=cdc-acm:latency=1ms", "cdc-acm has no option 'latency'"),
        ("armbus://?adapter=ftdi&baud=4000000", "above the chip's 3000000 baud"),
    ],
)
def test_bad_urls_raise_serial_exception_naming_the_problem(url: str, message: str) -> None:
    resolve_port(url)
    with pytest.raises(serial.SerialException, match=message):
        serial.serial_for_url(url)


def test_the_adapter_option_puts_a_model_between_the_port_and_joint_1() -> None:
    assert parse_url("armbus://?adapter=ftdi:latency=4ms,jitter=100us")["adapter"].latency_ms == 4
    with open_port("armbus://?joints=1&adapter=ftdi:latency=16ms") as port:
        rt = port.virtual_arm
        assert rt is not None
        probe = LinkProbe(port.fileno())
        probe.open(timeout=5)
        t0 = time.monotonic()
        assert isinstance(probe.request(Ping(), 0xFE, timeout=5), PingReply)
        rtt = time.monotonic() - t0
        spec, packets = rt.call(lambda arm: (str(arm.adapter.spec), arm.adapter.packets_in))
    assert spec == "ftdi:latency=16ms" and packets >= 1
    assert rtt >= 0.002  # the reply waits in the adapter: at least a USB frame each way (ideal: about 0.5 ms)
