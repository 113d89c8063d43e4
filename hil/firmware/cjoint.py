"""``CJoint``: the C joint firmware (joints/firmware/) as a simulator node, through ctypes.

Theory of operation
-------------------
A :class:`CJoint` is to the simulator what a :class:`armbus.joints.node.JointNode` is: it takes the same
construction arguments, implements the node-driving contract (``receive_data`` / ``data_to_send`` /
``next_deadline`` / ``handle_timer``, integer ns; ``rx_byte`` is the UART-interrupt entry) and exposes what the
kernel, the virtual arms, the pty arm, fault injection and the measurements use on a joint: ``registers`` (a
:class:`~armbus.joints.registers.RegisterFile` over the C register memory), ``actuator``, ``counters``,
``links`` and ``router`` (read-only views of the C counters and states), ``control`` (a view of the C control
core, with ``latch_hooks`` / ``tick_hooks`` that C calls back), ``reboot`` / ``schedule_reboot``,
``start_hooks``, ``port_rates`` (refreshed after every call, as the kernel expects), ``is_last``, ``address``.

Byte for byte: the C joint is given what makes the Python joint's output reproducible. Its RESET nonces come
from the Python model's stream (``random.Random`` seeded with :meth:`JointNode._link_seed`'s value, through
the nonce HAL callback). Its motor board (:class:`armbus.hil.firmware.cboard.CBoard`) is the C physics when the
joint has no noise seed (noise-free sensors, as an unseeded Actuator), or, with a seed, a Python
:class:`~armbus.joints.actuator.Actuator` behind the HAL callbacks (its seeded noise and every injected fault);
``board="c"`` forces the C physics (faster, noise-free) and ``board="python"`` the callbacks.
"""

from __future__ import annotations

import ctypes
import random
from collections.abc import Callable, Iterable
from typing import Any

from armbus.bus.errors import UsageError
from armbus.bus.link import LinkConfig, LinkCounters, LinkState
from armbus.bus.router import DOWN, UP, RouterCounters
from armbus.hil.firmware import build
from armbus.hil.firmware.cboard import CBoard
from armbus.joints.actuator import Actuator, ActuatorParams
from armbus.joints.control import DEFAULT_PERIOD_NS, ControlState
from armbus.joints.node import DEFAULT_BOOT_NS, DEFAULT_MODEL, FORWARD_LATENCY_NS, NodeCounters
from armbus.joints.rates import MAX_UART_BAUD
from armbus.joints.registers import BY_NAME, TABLE_SIZE, RegisterFile

__all__ = ["CJoint"]

_VP, _I64, _U32, _I32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint32, ctypes.c_int32
NONCE = ctypes.CFUNCTYPE(ctypes.c_uint8, _VP, ctypes.c_uint8, _U32)
TICK_HOOK = ctypes.CFUNCTYPE(None, _VP, _I64)
LATCH_HOOK = ctypes.CFUNCTYPE(None, _VP, _I64, ctypes.c_uint16)
_NO_DEADLINE = 2**63 - 1
_OUT_CAP = 8192
_BUS_ADDRESS = BY_NAME["bus_address"].address
_STATES = (LinkState.SYNCING, LinkState.OPEN, LinkState.DOWN)
_bound: set[int] = set()


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    if id(lib) in _bound:
        return lib
    from armbus.hil.firmware.cboard import bind

    bind(lib)
    u8p, i64p, u32p = ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(_I64), ctypes.POINTER(_U32)
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "sil_joint_size": (ctypes.c_size_t, []),
        "sil_joint_config_size": (ctypes.c_size_t, []),
        "sil_joint_config": (ctypes.c_int, [_VP, _U32, _U32, _I64, _I64, _I64, _I64, _I64, _I64, _I64, _I64, _I32,
                                            _I32, _I32, _I64, _I64, _I64]),
        "sil_joint_create": (None, [_VP, _VP, NONCE, _VP, _VP, _I64]),
        "sil_joint_rx": (None, [_VP, _U32, ctypes.c_char_p, _U32, _I64]),
        "sil_joint_rx_bytewise": (None, [_VP, _U32, ctypes.c_char_p, _U32, _I64]),
        "sil_joint_tx": (_U32, [_VP, _U32, _I64, _VP, _U32]),
        "sil_joint_next_deadline": (_I64, [_VP]),
        "sil_joint_handle_timer": (None, [_VP, _I64]),
        "sil_joint_reboot": (None, [_VP, _I64]),
        "sil_joint_schedule_reboot": (None, [_VP, _I64]),
        "sil_joint_regs": (u8p, [_VP]),
        "sil_joint_port_rates": (i64p, [_VP]),
        "sil_joint_boots": (_U32, [_VP]),
        "sil_joint_booting": (_I32, [_VP]),
        "sil_joint_is_last": (_I32, [_VP]),
        "sil_joint_set_address": (None, [_VP, _U32]),
        "sil_joint_down_answered": (_I32, [_VP]),
        "sil_joint_estop_msg_id": (_I32, [_VP]),
        "sil_joint_held_enumerate": (_I32, [_VP]),
        "sil_joint_node_counters": (_U32, [_VP, u32p, _U32]),
        "sil_joint_link_counters": (_U32, [_VP, _U32, u32p, _U32]),
        "sil_joint_router_counters": (_U32, [_VP, u32p, _U32]),
        "sil_joint_deframer_counters": (_U32, [_VP, _U32, u32p, _U32]),
        "sil_joint_link_info": (None, [_VP, _U32, i64p]),
        "sil_joint_backlog": (_U32, [_VP]),
        "sil_joint_control_info": (None, [_VP, i64p]),
        "sil_joint_set_latch_hook": (None, [_VP, LATCH_HOOK, _VP]),
        "sil_joint_set_tick_hook": (None, [_VP, TICK_HOOK, _VP]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    _bound.add(id(lib))
    return lib


class _HookList(list):
    """A list of observers that tells its owner when it changes (the C side calls back only when it is not empty)."""

    def __init__(self, changed: Callable[[], None]) -> None:
        super().__init__()
        self._changed = changed

    def append(self, item: Any) -> None:
        super().append(item)
        self._changed()

    def extend(self, items: Iterable[Any]) -> None:
        super().extend(items)
        self._changed()

    def remove(self, item: Any) -> None:
        super().remove(item)
        self._changed()

    def clear(self) -> None:
        super().clear()
        self._changed()


class _CRegisters(RegisterFile):
    """The C joint's register memory, with RegisterFile's rules (the firmware applies the same ones)."""

    def __init__(self, mem: Any) -> None:  # no super().__init__: the firmware initialised the memory
        self.mem = mem


class _Mailbox:
    """What is read of a C mailbox: its depth, capacity and marks."""

    def __init__(self, length: int, capacity: int, posted: int = 0, taken: int = 0) -> None:
        self._len, self.capacity, self.posted, self.taken = length, capacity, posted, taken

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0


class _ControlView:
    """The C control core as the simulator sees a ControlCore: state, flags, torque, hooks."""

    def __init__(self, joint: CJoint) -> None:
        self._joint = joint
        self.latch_hooks: list[Callable[[int, int], None]] = _HookList(joint._install_hooks)
        self.tick_hooks: list[Callable[[int], None]] = _HookList(joint._install_hooks)

    def _info(self) -> list[int]:
        buf = (_I64 * 16)()
        self._joint._lib.sil_joint_control_info(self._joint._ptr, buf)
        return list(buf)

    @property
    def state(self) -> ControlState:
        return ControlState(*self._info()[:6])

    @property
    def flags(self) -> int:
        return self._info()[6]

    @property
    def torque(self) -> bool:
        return bool(self._info()[7])

    @property
    def sampled_at(self) -> int:
        return self._info()[8]

    @property
    def goals_latched(self) -> int:
        return self._info()[13]

    @property
    def goal(self) -> int:
        """The goal the loop follows (register units of its mode)."""
        return self._info()[14]

    @property
    def mode(self) -> int:
        return self._info()[15]

    @property
    def commands(self) -> _Mailbox:
        info = self._info()
        return _Mailbox(info[9], 16, info[10], info[11])

    @property
    def events(self) -> _Mailbox:
        return _Mailbox(self._info()[12], 8)

    @property
    def period_ns(self) -> int:
        return self._joint.period_ns


class _DeframerView:
    def __init__(self, joint: CJoint, port: int) -> None:
        self._joint, self._port = joint, port

    @property
    def counters(self) -> Any:
        from armbus.bus.deframer import DeframerCounters
        from armbus.bus.wire import LineErrorKind

        buf = (_U32 * 10)()
        self._joint._lib.sil_joint_deframer_counters(self._joint._ptr, self._port, buf, 10)
        c = DeframerCounters(frames=buf[0], bytes=buf[1])
        c.errors = {k: buf[1 + int(k)] for k in LineErrorKind}
        return c

    @property
    def buffered(self) -> int:
        return self._joint._link_info(self._port)[5]


class _LinkView:
    """One C link endpoint: counters, state, queue."""

    def __init__(self, joint: CJoint, port: int) -> None:
        self._joint, self._port = joint, port
        self.deframer = _DeframerView(joint, port)

    @property
    def counters(self) -> LinkCounters:
        n = len(LinkCounters.__slots__)
        buf = (_U32 * n)()
        self._joint._lib.sil_joint_link_counters(self._joint._ptr, self._port, buf, n)
        return LinkCounters(*buf)

    @property
    def state(self) -> LinkState:
        return _STATES[self._joint._link_info(self._port)[0]]

    @property
    def is_open(self) -> bool:
        return self.state is LinkState.OPEN

    @property
    def queue_space(self) -> int:
        return self._joint._link_info(self._port)[4]

    @property
    def output_frames(self) -> int:
        return 0

    @property
    def overflows(self) -> int:
        """Events or output bytes the fixed C buffers could not hold (0 in every test)."""
        return self._joint._link_info(self._port)[6]

    def next_deadline(self) -> int | None:
        d = self._joint._link_info(self._port)[7]
        return None if d == _NO_DEADLINE else d


class _RouterView:
    def __init__(self, joint: CJoint) -> None:
        self._joint = joint

    @property
    def backlog(self) -> tuple[None, ...]:
        """The reports waiting for room (their count: the C backlog is not read back as packets)."""
        return (None,) * self._joint._lib.sil_joint_backlog(self._joint._ptr)

    @property
    def counters(self) -> RouterCounters:
        n = len(RouterCounters.__slots__) + 1  # reserved: two int32 at the end
        buf = (_U32 * n)()
        self._joint._lib.sil_joint_router_counters(self._joint._ptr, buf, n)
        counts = RouterCounters()
        for name, value in zip(RouterCounters.__slots__[:n - 2], buf, strict=False):
            setattr(counts, name, value)
        counts.reserved = [v - (1 << 32) if v >= 1 << 31 else v for v in buf[n - 2:]]
        return counts


class CJoint:
    """One joint running the C firmware; constructed like :class:`armbus.joints.node.JointNode`."""

    def __init__(self, model: int = DEFAULT_MODEL, serial: int = 0, *, params: ActuatorParams | None = None,
                 seed: int | None = None, now: int = 0, period_ns: int = DEFAULT_PERIOD_NS,
                 link_config: LinkConfig | None = None, boot_ns: int = DEFAULT_BOOT_NS,
                 port_bauds: tuple[int, int] | None = None, max_baud: int = MAX_UART_BAUD,
                 board: str | None = None) -> None:
        self._lib = lib = _bind(build.load())
        self.model, self.serial, self.seed = model, serial, seed
        self.period_ns = period_ns
        self.link_config = link_config or LinkConfig()
        self.boot_ns = boot_ns
        self.forward_latency_ns = FORWARD_LATENCY_NS
        self.max_baud = max_baud
        params = params or ActuatorParams()
        if board is None:
            board = "c" if seed is None else "python"
        if board == "python":
            self._board = CBoard(lib, actuator=Actuator(params, seed=seed, now=now), now=now)
            self.actuator: Any = self._board.actuator
        elif board == "c":
            self._board = CBoard(lib, params, now=now)
            self.actuator = self._board
        else:
            raise UsageError(f"board must be 'c' or 'python', got {board!r}")
        cfg = self.link_config
        up, down = port_bauds or (cfg.baud, cfg.baud)
        self._cfg = (ctypes.c_uint64 * ((lib.sil_joint_config_size() + 7) // 8))()
        bad = lib.sil_joint_config(self._cfg, model, serial & 0xFFFFFFFF, period_ns, boot_ns, self.forward_latency_ns,
                                   max_baud, up, down, cfg.baud, cfg.turnaround_ns, cfg.queue_limit, cfg.urgent_limit,
                                   cfg.max_retries, cfg.backoff_cap_ns, cfg.reverse_bytes, cfg.quiet_ns)
        if bad:
            raise UsageError("the C firmware's fixed buffers cannot take this link configuration (queue_limit <= 8, "
                             "urgent_limit <= 2) or model number")
        self._mem = (ctypes.c_uint64 * ((lib.sil_joint_size() + 7) // 8))()
        self._ptr = ctypes.cast(self._mem, _VP).value
        self._nonce_cb = NONCE(self._nonce)
        self._latch_cb = LATCH_HOOK(self._on_latch)
        self._tick_cb = TICK_HOOK(self._on_tick)
        self._out = ctypes.create_string_buffer(_OUT_CAP)
        self.start_hooks: list[Callable[[int], None]] = []
        self.control = _ControlView(self)
        self.links = [_LinkView(self, UP), _LinkView(self, DOWN)]
        self.router = _RouterView(self)
        lib.sil_joint_create(self._ptr, self._cfg, self._nonce_cb, None, self._board.hal, now)
        regs = lib.sil_joint_regs(self._ptr)
        self.registers = _CRegisters((ctypes.c_uint8 * TABLE_SIZE).from_address(ctypes.addressof(regs.contents)))
        self._rates = lib.sil_joint_port_rates(self._ptr)
        #: The ports' rates, indexed by port, refreshed in place after every call (the kernel watches it).
        self.port_rates = [self._rates[0], self._rates[1]]
        self._boots = 0

    # --- the nonce HAL and the hooks -------------------------------------------------------------------
    def _nonce(self, _ctx: Any, port: int, boots: int) -> int:
        seed = 0 if self.seed is None else self.seed & 0xFFFFFFFF
        link_seed = (((seed << 32 | (self.serial & 0xFFFFFFFF)) << 16 | (boots & 0xFFFF)) << 1) | port
        return random.Random(link_seed).randrange(256)

    def _install_hooks(self) -> None:
        lib, ptr = self._lib, self._ptr
        lib.sil_joint_set_latch_hook(ptr, self._latch_cb if self.control.latch_hooks else LATCH_HOOK(), None)
        lib.sil_joint_set_tick_hook(ptr, self._tick_cb if self.control.tick_hooks else TICK_HOOK(), None)

    def _on_latch(self, _ctx: Any, at: int, tag: int) -> None:
        for hook in self.control.latch_hooks:
            hook(at, tag)

    def _on_tick(self, _ctx: Any, t: int) -> None:
        for hook in self.control.tick_hooks:
            hook(t)

    def _after(self, now: int) -> None:
        rates, pr = self._rates, self.port_rates
        if pr[0] != rates[0] or pr[1] != rates[1]:
            pr[0], pr[1] = rates[0], rates[1]
        boots = self._lib.sil_joint_boots(self._ptr)
        if boots != self._boots:
            self._boots = boots
            if self.control.latch_hooks or self.control.tick_hooks:
                self._install_hooks()
            for hook in self.start_hooks:
                hook(now)

    def _link_info(self, port: int) -> list[int]:
        buf = (_I64 * 8)()
        self._lib.sil_joint_link_info(self._ptr, port, buf)
        return list(buf)

    # --- the node-driving contract ----------------------------------------------------------------------
    def rx_byte(self, port: int, byte: int, now: int) -> None:
        """One received byte, as the UART receive interrupt delivers it (fw_joint_rx_byte)."""
        self._lib.sil_joint_rx_bytewise(self._ptr, port, bytes((byte,)), 1, now)
        self._after(now)

    def receive_data(self, port: int, data: bytes, now: int) -> None:
        self._lib.sil_joint_rx(self._ptr, port, bytes(data), len(data), now)
        self._after(now)

    def data_to_send(self, port: int, now: int) -> bytes:
        n = self._lib.sil_joint_tx(self._ptr, port, now, self._out, _OUT_CAP)
        return self._out.raw[:n] if n else b""

    def next_deadline(self) -> int | None:
        d = self._lib.sil_joint_next_deadline(self._ptr)
        return None if d == _NO_DEADLINE else int(d)

    def handle_timer(self, now: int) -> None:
        self._lib.sil_joint_handle_timer(self._ptr, now)
        self._after(now)

    # --- what the simulator uses on a joint -------------------------------------------------------------
    def reboot(self, now: int) -> None:
        """Power-cycle the MCU at ``now``."""
        self._lib.sil_joint_reboot(self._ptr, now)

    def schedule_reboot(self, now: int) -> None:
        self._lib.sil_joint_schedule_reboot(self._ptr, now)

    @property
    def booting(self) -> bool:
        return bool(self._lib.sil_joint_booting(self._ptr))

    @property
    def is_last(self) -> bool | None:
        v = self._lib.sil_joint_is_last(self._ptr)
        return None if v < 0 else bool(v)

    @property
    def down_answered(self) -> bool:
        return bool(self._lib.sil_joint_down_answered(self._ptr))

    @property
    def estop_msg_id(self) -> int | None:
        v = self._lib.sil_joint_estop_msg_id(self._ptr)
        return None if v < 0 else v

    @property
    def address(self) -> int:
        return int(self.registers.mem[_BUS_ADDRESS])

    def set_address(self, address: int) -> None:
        self._lib.sil_joint_set_address(self._ptr, address)

    def port_baud(self, port: int) -> int:
        return self.port_rates[port]

    @property
    def counters(self) -> NodeCounters:
        n = len(NodeCounters.__dataclass_fields__)
        buf = (_U32 * n)()
        self._lib.sil_joint_node_counters(self._ptr, buf, n)
        return NodeCounters(*buf)

    @property
    def rebooted(self) -> int:
        """Boots completed since power-up."""
        return self._boots
