"""The joint node: comm core (two UART ports, hop links, routing, message handlers) plus control core.

Theory of operation
-------------------
A joint sits between its upstream neighbour (port ``UP`` = 0, toward the host) and its downstream neighbour
(port ``DOWN`` = 1). Each port has a :class:`armbus.bus.link.LinkEndpoint` (framing, acks, retransmission, reset).
The node implements the node-driving contract (``receive_data`` / ``data_to_send`` / ``next_deadline`` /
``handle_timer``, integer ns); :meth:`JointNode.rx_byte` is the shape a UART receive interrupt would feed, and
``receive_data`` is its DMA-block twin (same result for any chunking: the deframer is chunking-invariant, and
the node routes and handles each completed frame before it takes the next one, as the firmware does at each
delimiter: a link holds at most one received packet at a time).

Routing is :class:`armbus.bus.router.Router`'s (packets for this joint are delivered here, others forwarded by
address, broadcasts delivered here and forwarded DOWN, UNDELIVERABLE reports for what cannot go on). The
broadcasts a joint edits (ENUMERATE, SYNC_WRITE, SYNC_READ) and ESTOP (stop first, then forward) are forwarded
by the handlers, re-originated with this joint's address as ``src`` so that a failure to deliver them comes back
here (the chain end turns ENUMERATE / SYNC_READ into the reply).

Buffers and the full rule (fixed sizes, never lose silently): each link holds at most
``LinkConfig.queue_limit`` (8) packets plus one in flight; the deframer at most ``MAX_ENCODED`` (270) bytes;
the command mailbox 16 entries and the fault-event mailbox 8. Before a link acks an incoming frame it asks the
router, which asks :meth:`JointNode._local_accept` for packets to this joint: if the packet would need a slot that is
not free (the outgoing link's queue for a forward or a reply, command-mailbox slots for a local request), the
frame is *not acked*, and the sender retransmits it later. A packet of our own that a full link refuses
(telemetry, fault reports) is counted in ``counters.tx_refused``; faults stay latched in the status flags
and the fault_code register regardless.

E-stop order and latency: on ESTOP the node first stops its own motor (:meth:`ControlCore.estop` at the same
``now``: the bridge shorts the winding at once), then forwards the ESTOP downstream *urgently*: ahead of every
packet queued on the DOWN link (bus/link.py, "Order and urgency"). An ESTOP frame is always acked: neither the
router's queue check nor :meth:`JointNode._local_accept` refuses it. Per hop the latency is the frame's wire time
(15 bytes: 150 us at 1 Mbaud) plus, at worst, the one frame already in flight ahead of it (a largest one is 270
bytes: 2.7 ms) and its retransmissions -- there is no processing delay in the model. If the DOWN link's urgent
slots are full (e-stops already waiting there), the forward is reported UNDELIVERABLE QUEUE_FULL to the host.

Packets an e-stop overtook arrive after it. Goals and torque enables are refused while the joint is e-stopped
anyway; what could undo the stop is a *release* (``estop`` = 0, ``clear_flags`` with ESTOPPED) or a REBOOT that
the host sent before the ESTOP. So the node remembers the msg_id of the last ESTOP it took
(``estop_msg_id``; every command carries a host-assigned id, increasing modulo 2^16) and refuses such a command
that is older (RFC 1982 serial order: up to 32,767 ids behind) with ERROR BUSY, counted in
``counters.stale_refused``. The first ordinary packet for this joint that is *newer* than the ESTOP (a heartbeat,
a goal, the host's release itself) clears the memory: ordinary packets keep their order on every hop, so nothing
the ESTOP overtook can still follow it. Two more events clear it, because msg_ids then start again from another
host session: a new session on the UP link (the host reconnected: the joint's upstream link was reset by its
peer), and ``ESTOP_MEMORY_NS`` passing without either (a packet cannot wait in the queues ahead that long; see
the constant). Without them a host that reconnects after an e-stop could never release it.

Reboot (:meth:`JointNode.reboot`, or a REBOOT message): the MCU stops for ``boot_ns`` (bridge off, every byte
in either direction lost, nothing forwarded), then starts with fresh links (they resynchronise with RESET),
volatile registers at their defaults (the bus address too: the host re-enumerates), persistent registers kept,
a new control core (torque off, REBOOTED flag), and reports FAULT(REBOOTED) to the host. Observers of the old
router or core (simulation measurements) re-attach to the new ones from ``JointNode.start_hooks``.

The chain end: a joint learns at enumeration whether it is last (``is_last``). It is last when its ENUMERATE
cannot go further: at once if its DOWN link has never completed a RESET handshake since boot and has already
probed ``ENUMERATE_PROBES`` times (a live neighbour answers the first RESET it hears; until then the ENUMERATE
is held, and goes down as soon as a neighbour answers), or when the forward fails (the neighbour that answered
once is gone: retries, then the answer). A full queue toward the neighbour only holds the ENUMERATE until there
is room: a backlog is no reason to end the chain. The last joint then answers the host itself; SYNC_READ uses the same
rule. Once last, a joint queues no broadcast downstream (the router's forwarding is narrowed, and the handlers
pass nothing on but the next ENUMERATE): a port with no cable costs no failed deliveries, while the link keeps
probing with RESET, so a joint plugged in later opens the link and is found by the next enumeration. A joint
that enumeration found *not* last knows joints sit below it: a broadcast it cannot pass down (the DOWN link
declared dead, the ttl spent, the queue full) is lost for them, and reported to the host as UNDELIVERABLE
until the next enumeration says otherwise.

Line rates (:mod:`armbus.joints.rates`): each port runs at its own rate (:meth:`JointNode.port_baud`), the
persistent ``up_baud`` / ``down_baud`` at boot (``port_bauds`` at construction is the factory setting); a rate
switch on trial changes both at one instant, and the node re-times its two links then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from armbus.bus.codec import Packet
from armbus.bus.link import DeliveryFailed, LinkConfig, LinkEndpoint, LinkReset, LinkState
from armbus.bus.messages import Fault, Message, State, make_packet
from armbus.bus.router import SELF_FORWARDED, TURNED_AROUND, Delivered, LinkNotice, Router
from armbus.bus.wire import Address, FaultCode, MsgType, StatusFlag, UndeliverableReason
from armbus.joints.actuator import Actuator, ActuatorParams
from armbus.joints.control import DEFAULT_PERIOD_NS, ControlCore
from armbus.joints.cyclic import new_results
from armbus.joints.handlers import DOWN, UP, delivery_failed, dispatch, turn_around
from armbus.joints.rates import MAX_UART_BAUD, RateSwitch, retime
from armbus.joints.registers import BY_NAME, RegisterFile

__all__ = ["DOWN", "UP", "JointNode", "NodeCounters", "make_joint"]

#: How long an ESTOP's msg_id is remembered at most. A packet the ESTOP overtook was queued at some hop behind at
#: most queue_limit (8) others; at 1 Mbaud each frame takes well under 1 ms on a clean link and a few ms with
#: retransmissions (5 % loss), so the overtaken packets drain in tens of ms per hop. 3 s leaves two orders of
#: magnitude of margin and keeps the wait short for a host that reconnects after an e-stop (joints beyond the
#: first see no new session: they answer its release BUSY until then; retry).
ESTOP_MEMORY_NS = 3_000_000_000
#: Broadcasts the handlers forward themselves: the router's edited types, plus ESTOP (stop first, then forward).
HANDLER_FORWARDED = SELF_FORWARDED | {MsgType.ESTOP}
#: What the router must not forward DOWN at the chain end: every type (the handlers decide; nothing goes).
_NOTHING_DOWN = frozenset(int(t) for t in MsgType)
#: RESETs the DOWN link must have sent unanswered before an ENUMERATE takes this joint for the chain end: a live
#: neighbour answers the first RESET it hears, so three cover a neighbour that finished booting up to two RESET
#: timeouts (2.9 + 5.8 ms at 1 Mbaud) after us, as after a broadcast REBOOT or a common power-up.
ENUMERATE_PROBES = 3
HANDLER_FORWARDED_TYPES = frozenset(int(t) for t in HANDLER_FORWARDED)
_TORQUE_ENABLE, _ESTOP = BY_NAME["torque_enable"].address, BY_NAME["estop"].address
_BUS_ADDRESS = BY_NAME["bus_address"].address
assert BY_NAME["bus_address"].size == 1 and not BY_NAME["bus_address"].signed
_ESTOPPED = int(StatusFlag.ESTOPPED)
_ESTOP_TYPE = int(MsgType.ESTOP)
_CYCLE_REPLY = int(MsgType.CYCLE_REPLY)
#: Default model number of the simulated joint (0x0A01: "armbus joint, revision 1"; any u16 will do).
DEFAULT_MODEL = 0x0A01
#: Firmware version reported by PING and the registers.
FIRMWARE_VERSION = (1, 0)
#: Boot time after a reboot: a small MCU's reset, clock start-up and peripheral init (model choice: 20 ms).
DEFAULT_BOOT_NS = 20_000_000
#: Command-mailbox slots a local request may need at most (a WRITE over the whole volatile area: torque,
#: goal, watchdog, clear, e-stop release, reload); below this much free space the frame is not acked.
COMMAND_SLOTS_PER_REQUEST = 6
#: Receive-to-transmit latency of the comm core when it forwards a frame (the UART interrupt, the handler and
#: the transmitter's start): what each hop adds to a CYCLE on its way down, which the goal latch instant allows
#: for (joints/cyclic.py). Model choice: 10 us, what a microcontroller answering from its receive interrupt
#: takes; the simulator's wires use the same figure as every sender's turnaround.
FORWARD_LATENCY_NS = 10_000
#: Serial-number order of 16-bit msg_ids (RFC 1982): b is after a when 0 < (b - a) mod 2^16 < 2^15.
_HALF_IDS = 0x8000


@dataclass
class NodeCounters:
    """What the comm core has seen and done."""

    handled: int = 0  # packets for this joint (unicast or broadcast)
    forwarded: int = 0  # edited broadcasts (ENUMERATE, SYNC_*) and ESTOP passed on by the handlers
    errors_sent: int = 0  # ERROR replies
    ignored: int = 0  # replies / unsolicited messages addressed to a joint: dropped
    delivery_failures: int = 0  # DeliveryFailed of packets this joint sent
    tx_refused: int = 0  # own packets a full link queue refused
    commands_refused: int = 0  # mailbox full (answered BUSY)
    stale_refused: int = 0  # releases / REBOOTs older than the last ESTOP (it overtook them): answered BUSY
    rx_while_booting: int = 0  # bytes lost during a reboot
    reboots: int = 0
    cycle_goals: int = 0  # CYCLE goals taken into the goal slot
    cycle_refused: int = 0  # CYCLE goals refused (the record's result says why)
    cycle_replies: int = 0  # CYCLE_REPLYs started here (chain end, or the CYCLE could go no further)
    cycle_overflow: int = 0  # CYCLE_REPLYs passed on without our record: it no longer fitted one frame


class JointNode:
    """One joint. ``actuator`` is the physical motor (fault injection: load_torque, jammed, supply_voltage)."""

    def __init__(self, model: int = DEFAULT_MODEL, serial: int = 0, *, params: ActuatorParams | None = None,
                 seed: int | None = None, now: int = 0, period_ns: int = DEFAULT_PERIOD_NS,
                 link_config: LinkConfig | None = None, boot_ns: int = DEFAULT_BOOT_NS,
                 port_bauds: tuple[int, int] | None = None, max_baud: int = MAX_UART_BAUD) -> None:
        self.model = model
        self.serial = serial
        self.seed = seed
        self.period_ns = period_ns
        self.link_config = link_config or LinkConfig()
        self.boot_ns = boot_ns
        self.forward_latency_ns = FORWARD_LATENCY_NS
        self.actuator = Actuator(params, seed=seed, now=now)
        self.registers = RegisterFile(model, serial, FIRMWARE_VERSION)
        up_baud, down_baud = port_bauds or (self.link_config.baud, self.link_config.baud)
        self.registers.set("up_baud", up_baud)  # the rates the joint was set to before it left the factory
        self.registers.set("down_baud", down_baud)
        self.max_baud = max_baud  # the fastest rate this joint's UARTs run
        #: The ports' rates now, indexed by port (UP, DOWN): one list for the joint's life, changed in place by the
        #: rate switch (a simulation kernel watches it; :meth:`port_baud` reads it).
        self.port_rates = [up_baud, down_baud]
        self.counters = NodeCounters()
        self._boots = 0
        self._booting_until: int | None = None
        self._reboot_at: int | None = None
        #: Observers called as ``hook(now)`` at the end of every start after a reboot, once the fresh links, router
        #: and control core exist: whatever watches those re-attaches here (measurement only: a hook must not
        #: change the joint's behaviour).
        self.start_hooks: list[Callable[[int], None]] = []
        self._start(now)

    # --- boot ------------------------------------------------------------------------------------------
    def _start(self, now: int) -> None:
        self.rates = RateSwitch(self.registers, self.port_rates)
        self.links = [LinkEndpoint(self.rates.link_config(self.link_config, port), seed=self._link_seed(port),
                                   name=f"{self.serial}:{port}") for port in (UP, DOWN)]
        self.router = Router(int(Address.UNASSIGNED), self.links[UP], self.links[DOWN],
                             self_forwarded=HANDLER_FORWARDED, local_accept=self._local_accept)
        self.control = ControlCore(self.actuator, self.registers, self.period_ns, now)
        self._clearing = (0, 0)  # (flags a CLEAR posted to the control core clears, mailbox mark of that post)
        self.is_last = None  # unknown until an ENUMERATE tried to go further
        self.down_answered = False  # a neighbour completed a RESET handshake on DOWN since boot
        self._held_enumerate: Packet | None = None  # waiting for DOWN to be answered or to give up
        self._msg_id = 0
        self.cycle_results = new_results()  # goal outcome by CYCLE msg_id, for the record on the way up
        self._telemetry_at: int | None = None
        self.estop_msg_id: int | None = None  # msg_id of the last ESTOP taken, until a newer release
        self._estop_until = 0  # forget estop_msg_id after this time (ESTOP_MEMORY_NS)
        if self._boots:
            self.send_to_host(Fault(int(FaultCode.REBOOTED), 1, self._boots), now)
        for hook in self.start_hooks:
            hook(now)

    def _link_seed(self, port: int) -> int:
        """Seed of a link's nonce stream: the node's seed, serial, boot count and port all count, so each boot of
        each joint starts its RESET nonces somewhere else (firmware: its hardware RNG), reproducibly per seed."""
        seed = 0 if self.seed is None else self.seed & 0xFFFFFFFF
        return (((seed << 32 | (self.serial & 0xFFFFFFFF)) << 16 | (self._boots & 0xFFFF)) << 1) | port

    def reboot(self, now: int) -> None:
        """Power-cycle the MCU at ``now`` (the actuator keeps its physical state and coasts)."""
        self.actuator.advance(now)
        self.actuator.coast()
        self._reboot_at = None
        self._booting_until = now + self.boot_ns
        self.counters.reboots += 1

    def schedule_reboot(self, now: int) -> None:
        """Reboot once the current call returns and the driver drained our output (the REBOOT ack)."""
        self._reboot_at = now

    def _finish_boot(self, now: int) -> None:
        self._booting_until = None
        self._boots += 1
        self.registers.reset_volatile()
        self._start(now)

    @property
    def booting(self) -> bool:
        return self._booting_until is not None

    @property
    def is_last(self) -> bool | None:
        """True: this joint ends the chain (learnt at enumeration); None: not enumerated since boot."""
        return self._is_last

    @is_last.setter
    def is_last(self, last: bool | None) -> None:
        self._is_last = last
        self.router.chain_continues = last is False  # a broadcast lost below is then reported (bus/router.py)
        self.router.self_forwarded = _NOTHING_DOWN if last else HANDLER_FORWARDED_TYPES

    def port_baud(self, port: int) -> int:
        """The rate port ``port`` (UP or DOWN) runs at now."""
        return self.port_rates[port]

    @property
    def address(self) -> int:
        return self.registers.mem[_BUS_ADDRESS]  # u8: registers.get("bus_address") without the name lookup

    def set_address(self, address: int) -> None:
        """Take the address assigned at enumeration."""
        self.registers.set("bus_address", address)
        self.router.address = address

    # --- node-driving contract ---------------------------------------------------------------------------
    def rx_byte(self, port: int, byte: int, now: int) -> None:
        """One received byte, as a UART receive interrupt would deliver it."""
        self.receive_data(port, bytes((byte,)), now)

    def receive_data(self, port: int, data: bytes, now: int) -> None:
        if self._booting_until is not None or port not in (UP, DOWN):
            self.counters.rx_while_booting += len(data)
            return
        self._run_control(now)
        link = self.links[port]
        start, size = 0, len(data)
        while True:  # each completed frame is routed and handled before the next one is taken
            end = data.find(0, start)
            stop = size if end < 0 else end + 1
            link.receive_data(data[start:stop], now)  # the whole block when it holds at most one frame
            self._pump(now)
            if stop >= size:
                return
            start = stop

    def data_to_send(self, port: int, now: int) -> bytes:
        if self._booting_until is not None or port not in (UP, DOWN):
            return b""
        return self.links[port].data_to_send(now)

    def next_deadline(self) -> int | None:
        if self._booting_until is not None:
            return self._booting_until
        first = self.control.next_deadline()
        up, down = self.links
        for t in (self._reboot_at, self._telemetry_at, up.next_deadline(), down.next_deadline(), self.rates.deadline):
            if t is not None and t < first:
                first = t
        return first

    def handle_timer(self, now: int) -> None:
        if self._booting_until is not None:
            self.actuator.advance(now)
            if now >= self._booting_until:
                self._finish_boot(now)
            return
        if self._reboot_at is not None and now >= self._reboot_at:
            self.reboot(now)
            return
        if self.rates.deadline is not None and self.rates.handle_timer(now):
            retime(self.links, self.rates, self.link_config)
        for link in self.links:
            link.handle_timer(now)
        self._pump(now)
        self._run_control(now)
        if self._telemetry_at is not None and now >= self._telemetry_at:
            self._send_state(now)

    # --- control core coupling ---------------------------------------------------------------------------
    def _run_control(self, now: int) -> None:
        control = self.control
        if control.next_deadline() > now:
            return
        control.handle_timer(now)
        regs = self.registers
        state = control.state
        regs.set_state_block(*state)
        mem = regs.mem
        mem[_TORQUE_ENABLE] = 1 if control.torque else 0
        mem[_ESTOP] = 1 if state.status & _ESTOPPED else 0
        events = control.events
        if not events:  # the consumer's own test of the ring indices (Mailbox.__bool__): nothing to report
            return
        while (ev := events.get()) is not None:
            if ev.active:
                regs.set("fault_code", int(ev.code))
            self.send_to_host(Fault(int(ev.code), int(ev.active), ev.value), now)

    def set_telemetry(self, period_ms: int, now: int) -> None:
        self._telemetry_at = now + period_ms * 1_000_000 if period_ms else None

    def _send_state(self, now: int) -> None:
        s = self.control.state
        period = self.registers.get("state_period")
        self._telemetry_at = now + period * 1_000_000 if period else None
        if self.address != Address.UNASSIGNED:
            self.send_to_host(State(s.status, s.position, s.velocity, s.current, s.temperature, s.voltage), now)

    # --- routing -----------------------------------------------------------------------------------------
    def next_msg_id(self) -> int:
        self._msg_id = (self._msg_id + 1) & 0xFFFF
        return self._msg_id

    def send(self, packet: Packet, now: int) -> bool:
        """Originate a packet (routed by its destination); False if a full queue refused it (counted)."""
        if self.router.send(packet, now):
            return True
        self.counters.tx_refused += 1
        return False

    def send_to_host(self, msg: Message, now: int) -> bool:
        return self.send(make_packet(msg, self.address, Address.HOST, self.next_msg_id()), now)

    def reply(self, request: Packet, msg: Message, now: int) -> bool:
        """Answer ``request`` (same msg_id) toward its source."""
        return self.send(make_packet(msg, self.address, request.src, request.msg_id), now)

    def down_usable(self) -> bool:
        """False when the DOWN link is known dead (no neighbour answered RESET): this joint ends the chain."""
        return self.links[DOWN].state is not LinkState.DOWN

    def down_silent(self) -> bool:
        """True while no neighbour has ever answered on DOWN since boot and the link has probed enough
        (``ENUMERATE_PROBES`` RESETs) for a live one to have answered: this joint ends the chain."""
        c = self.links[DOWN].counters
        return not self.down_answered and c.resets_sent + c.retransmits >= ENUMERATE_PROBES

    @property
    def held_enumerate(self) -> Packet | None:
        """The ENUMERATE waiting to go down (see :meth:`hold_enumerate`), if any."""
        return self._held_enumerate

    def hold_enumerate(self, packet: Packet, now: int) -> None:
        """Keep an ENUMERATE until DOWN is answered and has room (then forward it) or has probed enough or died
        (then answer: this joint ends the chain)."""
        self._held_enumerate = packet
        self._release_enumerate(now)

    def _release_enumerate(self, now: int) -> None:
        packet = self._held_enumerate
        if packet is None:
            return
        if self.down_answered:
            if packet.ttl and self.down_usable() and self.links[DOWN].queue_space < 1:
                return  # a full queue (the link resyncing with a backlog) passes; it does not end the chain
            self._held_enumerate = None
            self.is_last = False
            if not self.pass_down(packet, now):
                turn_around(self, packet, now)
        elif self.down_silent() or not self.down_usable():
            self._held_enumerate = None
            turn_around(self, packet, now)

    def note_clear(self, flags: int) -> None:
        """A command clearing ``flags`` was just posted to the control core (see :meth:`pending_clears`)."""
        self._clearing = (self.pending_clears() | flags, self.control.commands.posted)

    def pending_clears(self) -> int:
        """Flags that a clear posted to the control core and not yet taken will clear: a torque or goal write
        right behind it is not refused for them (the core takes the clear first and checks again itself)."""
        flags, mark = self._clearing
        return flags if flags and self.control.commands.taken < mark else 0

    def pass_down(self, packet: Packet, now: int, urgent: bool = False) -> bool:
        """Forward an edited broadcast (or ESTOP, ``urgent``) DOWN, re-originated from this joint; False if it
        cannot go (the DOWN link is known dead, the ttl is spent, the queue is full, or this joint ends the
        chain). An urgent packet refused by a full urgent queue is reported to the host (QUEUE_FULL), and so is
        any refused packet when enumeration found joints below this one (``is_last`` False)."""
        missed_below = self._is_last is False and packet.type not in TURNED_AROUND  # joints below: say so
        if packet.ttl == 0 or self._is_last or not self.down_usable():
            if missed_below:
                reason = (UndeliverableReason.TTL if packet.ttl == 0 else UndeliverableReason.LINK_DOWN)
                self.router.report(packet, DOWN, reason, now)
            return False
        out = Packet(self.address, packet.dst, packet.type, packet.msg_id, packet.ttl - 1, packet.payload)
        if not self.links[DOWN].send(out, now, urgent=urgent):
            self.counters.tx_refused += 1
            if urgent or missed_below:
                self.router.report(out, DOWN, UndeliverableReason.QUEUE_FULL, now)
            return False
        self.counters.forwarded += 1
        return True

    def took_estop(self, msg_id: int, now: int) -> None:
        """Remember the newest ESTOP taken (see "E-stop order and latency")."""
        last = self.estop_msg_id
        if last is None or 0 < (msg_id - last) & 0xFFFF < _HALF_IDS:
            self.estop_msg_id = msg_id
        self._estop_until = now + ESTOP_MEMORY_NS

    def overtaken_by_estop(self, msg_id: int) -> bool:
        """True if a command with ``msg_id`` was sent before the last ESTOP taken (the ESTOP overtook it)."""
        last = self.estop_msg_id
        return last is not None and 0 < (last - msg_id) & 0xFFFF < _HALF_IDS

    def _newer_than_estop(self, packet: Packet) -> None:
        """An ordinary packet sent after the last ESTOP has arrived: nothing the ESTOP overtook can follow."""
        last = self.estop_msg_id
        if last is not None and packet.type != _ESTOP_TYPE and 0 < (packet.msg_id - last) & 0xFFFF < _HALF_IDS:
            self.estop_msg_id = None

    def _local_accept(self, packet: Packet) -> bool:
        """Router callback before a link acks a packet for this joint: is there room for what it will need?
        An ESTOP needs none (a direct call into the control core) and is never refused."""
        if packet.type == _ESTOP_TYPE:
            return True
        if packet.type == _CYCLE_REPLY:  # goes on up with our record: needs room there only
            return self.links[UP].queue_space >= 1
        box = self.control.commands
        if box.capacity - len(box) < COMMAND_SLOTS_PER_REQUEST or self.links[UP].queue_space < 1:
            return False
        if packet.type in HANDLER_FORWARDED and self.links[DOWN].is_open:
            return self.links[DOWN].queue_space >= 1
        return True

    def _pump(self, now: int) -> None:
        if self.estop_msg_id is not None and now >= self._estop_until:
            self.estop_msg_id = None
        for _ in range(8):  # handling can make a link fail a send at once (link DOWN): pump again
            if self._held_enumerate is not None:
                self._release_enumerate(now)
            events = self.router.pump(now)
            if not events:
                return
            for ev in events:
                if isinstance(ev, Delivered):
                    if ev.role is not None:
                        self.counters.handled += 1
                        if ev.role == UP and self.estop_msg_id is not None:
                            self._newer_than_estop(ev.packet)
                        dispatch(self, ev.role, ev.packet, now)
                elif isinstance(ev, LinkNotice):
                    if isinstance(ev.event, DeliveryFailed):
                        self.counters.delivery_failures += 1
                        delivery_failed(self, ev.role, ev.event.packet, ev.event.reason, now)
                    elif ev.role == DOWN and isinstance(ev.event, LinkReset):
                        self.down_answered = True
                    elif ev.role == UP and isinstance(ev.event, LinkReset) and ev.event.by_peer:
                        self.estop_msg_id = None  # a new upstream session: msg_ids start again


def make_joint(serial: int, model: int = DEFAULT_MODEL, *, seed: int | None = None, now: int = 0,
               params: ActuatorParams | None = None, link_config: LinkConfig | None = None) -> JointNode:
    """A joint for a simulated chain: the noise seed defaults to the serial number (distinct and reproducible)."""
    return JointNode(model, serial, params=params, seed=serial if seed is None else seed, now=now,
                     link_config=link_config)
