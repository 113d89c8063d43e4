"""A minimal blocking host over a file descriptor: one hop link, request and wait for the reply.

Theory of operation
-------------------
The harness's own tests and benchmarks need to talk to a real-time virtual arm (:mod:`armbus.hil.realtime`) without
depending on the controller package. :class:`LinkProbe` is the smallest correct host: a
:class:`armbus.bus.link.LinkEndpoint` driven with ``time.monotonic_ns()`` over a descriptor (a pty slave, a socket);
``request`` sends one packet and loops ``select`` -> ``receive_data`` -> ``handle_timer`` -> ``data_to_send``
until the reply with the same ``msg_id`` arrives. Packets that are not the awaited reply (telemetry, fault
reports) are kept in :attr:`LinkProbe.other`. It is a test instrument, not the controller: one request at a time.
"""

from __future__ import annotations

import dataclasses
import os
import select
import time

from armbus.bus.codec import Packet
from armbus.bus.errors import ArmTimeoutError
from armbus.bus.link import DeliveryFailed, LinkConfig, LinkEndpoint, PacketReceived
from armbus.bus.messages import Enumerate, EnumerateReply, Message, decode_packet, make_packet
from armbus.bus.wire import DEFAULT_BAUD, MAX_ENCODED, Address

#: Reaction time allowed for the far end in the link timeouts: a real-time driver thread wakes within about a
#: millisecond on a loaded machine (docs/hil.md), far more than a microcontroller needs.
PROBE_TURNAROUND_NS = 2_000_000


class LinkProbe:
    """Blocking request/reply host on descriptor ``fd`` (not owned)."""

    def __init__(self, fd: int, baud: int = DEFAULT_BAUD, *, seed: int = 1) -> None:
        self.fd = fd
        config = LinkConfig(baud=baud, turnaround_ns=PROBE_TURNAROUND_NS)
        cap = max(config.backoff_cap_ns, 2 * config.timeout_ns(MAX_ENCODED))  # see hil.realtime_link_config
        self.link = LinkEndpoint(dataclasses.replace(config, backoff_cap_ns=cap), seed=seed, name="probe")
        self._msg_id = 0
        #: Packets received that were not the reply being waited for.
        self.other: list[Packet] = []
        #: Packets of ours the link gave up on (the request is then sent again).
        self.failed: list[Packet] = []
        os.set_blocking(fd, False)

    def _flush(self, now: int) -> None:
        out = self.link.data_to_send(now)
        while out:
            try:
                n = os.write(self.fd, out)
            except BlockingIOError:
                select.select([], [self.fd], [], 0.01)
                continue
            out = out[n:]

    def _poll(self, deadline_ns: int) -> list[Packet]:
        """Run the link until something arrives or the deadline passes; returns packets received."""
        link = self.link
        now = time.monotonic_ns()
        self._flush(now)
        wake = link.next_deadline()
        until = deadline_ns if wake is None else min(deadline_ns, wake)
        r, _, _ = select.select([self.fd], [], [], max(0, until - now) / 1e9)
        now = time.monotonic_ns()
        if r:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                data = b""
            if data:
                link.receive_data(data, now)
        wake = link.next_deadline()
        if wake is not None and wake <= now:
            link.handle_timer(now)
        self._flush(now)
        out = []
        for ev in link.events():
            if isinstance(ev, PacketReceived):
                out.append(ev.packet)
            elif isinstance(ev, DeliveryFailed):
                self.failed.append(ev.packet)
        return out

    def open(self, timeout: float = 2.0) -> None:
        """Wait until the link has synchronised with joint 1."""
        deadline = time.monotonic_ns() + int(timeout * 1e9)
        while not self.link.is_open:
            if time.monotonic_ns() > deadline:
                raise ArmTimeoutError(f"the link to joint 1 did not open within {timeout} s")
            self.other += self._poll(deadline)

    def request(self, msg: Message, dst: int, timeout: float = 1.0, attempt_s: float = 1.0) -> Message:
        """Send ``msg`` to ``dst`` and return the decoded reply (an ERROR reply is returned, not raised). A
        request whose packet the link gave up on, or that got no reply within ``attempt_s``, is sent again
        with a new msg_id until ``timeout``: an application-level retry, as a host does."""
        deadline = time.monotonic_ns() + int(timeout * 1e9)
        while True:
            self._msg_id = (self._msg_id + 1) & 0xFFFF
            mid = self._msg_id
            packet = make_packet(msg, int(Address.HOST), dst, mid)
            self.link.send(packet, time.monotonic_ns())
            attempt_end = min(deadline, time.monotonic_ns() + int(attempt_s * 1e9))
            while time.monotonic_ns() <= attempt_end and packet not in self.failed:
                for p in self._poll(attempt_end):
                    if p.msg_id == mid and p.dst == Address.HOST and p.type & 0x80:
                        return decode_packet(p)
                    self.other.append(p)
            if time.monotonic_ns() > deadline:
                raise ArmTimeoutError(f"no reply to {type(msg).__name__} (last msg_id {mid}) within {timeout} s")

    def enumerate(self, timeout: float = 1.0) -> EnumerateReply:
        """Enumerate the chain; returns the reply listing every joint."""
        reply = self.request(Enumerate(()), int(Address.BROADCAST), timeout)
        if not isinstance(reply, EnumerateReply):
            raise ArmTimeoutError(f"enumeration answered with {reply!r}")
        return reply
