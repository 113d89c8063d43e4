"""Switching a running chain to other line rates, host side: one procedure, run by :class:`Arm` and :class:`AsyncArm`.

Theory of operation
-------------------
The joints' half is :mod:`armbus.joints.rates` (a switch on trial that reverts by itself unless confirmed);
docs/joints.md, "Line rate", has the procedure byte for byte. The host's half is :func:`switch_plan`, a generator
that yields what to do next and is sent the outcome (``(now, value)``, or an exception thrown in):

* :class:`Ask` a request (its reply is the value), :class:`Tell` a command (returns at joint 1's ack),
  :class:`Wait` until a time or :class:`Pause` a while, :class:`Retune` the host's own port to a rate.

So the procedure is written once, with no port, clock or thread in it, and :func:`run_sync` (for
:class:`armbus.controller.arm.Arm`, simulated or threaded) and :func:`run_async` (for
:class:`armbus.controller.aio.AsyncArm`) only carry the steps out. The steps:

1. read joint 1's rates (the chain must answer, and no switch may be under way), then stage each joint's new
   rates with a unicast WRITE (``baud_next_up`` .. ``baud_trial``): joint 1 gets the host link's rate UP and the
   chain rate DOWN, the others the chain rate on both. A joint that refuses (ERROR LIMIT: its UART cannot run
   the rate) stops the procedure before anything switched: :class:`RateSwitchFailed`, outcome ``refused``;
2. broadcast WRITE ``baud_command`` = COMMIT; once joint 1 acked it, wait ``delay`` plus one hop allowance
   per joint (the last joint switches that much later), then retune the host port;
3. SYNC_READ ``baud_state`` until every joint answers ON TRIAL at the new rates (within half the trial);
4. broadcast WRITE ``baud_command`` = CONFIRM, and SYNC_READ ``baud_state`` again: every joint IDLE means the
   new rates are stored (:class:`RateReport`, outcome ``switched``);
5. otherwise: wait until every joint's trial is over (they revert by themselves). If a confirm went out, look
   at the new rates first (the confirm may have reached every joint and only its check was lost: ``switched``
   after all). Then retune the host port back and read the chain at the old rates: outcome ``reverted`` when
   every joint answers there, ``broken`` when some do not. Both raise :class:`RateSwitchFailed` with the
   report, whose detail says how to recover: a chain split by a confirm that reached only its first joints is
   joined up again by switching that first part back (``set_baud`` at the old rate), one where nobody
   confirmed by a power cycle (every joint boots at its stored rates).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from armbus.bus.codec import encode_data
from armbus.bus.errors import ArmbusError, PeerError, RemoteError, UsageError
from armbus.bus.link import LinkConfig
from armbus.bus.messages import Message, Read, ReadReply, SyncRead, SyncReadReply, Write, make_packet
from armbus.bus.wire import NS_PER_MS, NS_PER_S, SUPPORTED_BAUDS, Address
from armbus.controller.host import HostNode
from armbus.joints.registers import BY_NAME, RateCommand, RateState

#: Default delay from the commit to the switch: the commit crosses a 6-joint chain in under 2 ms at 1 Mbaud;
#: 20 ms leaves room for a retransmission on every hop.
DEFAULT_DELAY_MS = 20
#: Default trial: the host verifies the chain and confirms within a few ms; 500 ms covers a slow host (an FTDI
#: latency timer at 16 ms, a busy machine) and is the whole cost of a failed switch.
DEFAULT_TRIAL_MS = 500
#: Each SYNC_READ while verifying may take this long before it is asked again (a frame garbled at the moment of
#: the switch costs a retransmission).
VERIFY_ATTEMPT_S = 0.1
#: Pause between two verifying SYNC_READs when one failed at once (the host link down, a refused send).
RETRY_NS = 2 * NS_PER_MS

_STAGE = BY_NAME["baud_next_up"].address
_STAGE_FORMAT = struct.Struct("<IIHH")  # baud_next_up, baud_next_down, baud_delay, baud_trial
_COMMAND = BY_NAME["baud_command"].address
_STATE = BY_NAME["baud_state"].address
_RATES = BY_NAME["up_baud"].address
_RATES_FORMAT = struct.Struct("<II")  # up_baud, down_baud
assert BY_NAME["down_baud"].address == _RATES + 4 and BY_NAME["baud_trial"].address == _STAGE + 10


@dataclass(frozen=True)
class Ask:
    """Send a request; the value sent back is its reply (a :class:`ReplyReceived`)."""

    message: Message
    dst: int
    timeout: float


@dataclass(frozen=True)
class Tell:
    """Send a command and wait for joint 1's ack."""

    message: Message
    dst: int


@dataclass(frozen=True)
class Wait:
    """Wait until the host clock reads ``until_ns``."""

    until_ns: int


@dataclass(frozen=True)
class Pause:
    """Wait ``duration_ns`` from now."""

    duration_ns: int


@dataclass(frozen=True)
class Retune:
    """Set the host's port (and its link timers) to ``baud``."""

    baud: int


Step = Ask | Tell | Wait | Pause | Retune


@dataclass(frozen=True)
class RateReport:
    """What a rate switch did. ``outcome``: ``switched``, ``refused``, ``reverted`` or ``broken``."""

    outcome: str
    host_baud: int  # the host link's rate now
    chain_baud: int  # the joint-to-joint rate now (as joint 1's DOWN port runs)
    requested: tuple[int, int]  # (host link, chain) asked for
    joints: int
    states: dict[int, str]  # address -> the joint's baud_state as last read (missing: it did not answer)
    detail: str
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.outcome == "switched"


class RateSwitchFailed(PeerError):
    """The chain did not switch; :attr:`report` says where it is now."""

    def __init__(self, report: RateReport) -> None:
        super().__init__(report.detail)
        self.report = report


def check_rate(rate: object, what: str = "rate") -> int:
    """``rate`` if it is a supported line rate, else a :class:`UsageError` listing them."""
    if isinstance(rate, bool) or not isinstance(rate, int) or rate not in SUPPORTED_BAUDS:
        listed = ", ".join(str(b) for b in SUPPORTED_BAUDS)
        raise UsageError(f"{what} {rate!r} is not a supported line rate ({listed})")
    return rate


def switch_plan(joints: int, host_baud: int, chain_baud: int, old_host_baud: int, now: int, *,
                delay_ms: int = DEFAULT_DELAY_MS, trial_ms: int = DEFAULT_TRIAL_MS,
                timeout: float = 0.1) -> Generator[Step, tuple[int, Any], RateReport]:
    """The host's side of a rate switch of a chain of ``joints`` (see the module docstring)."""
    check_rate(host_baud, "host link rate")
    check_rate(chain_baud, "chain rate")
    if isinstance(joints, bool) or not isinstance(joints, int) or not 1 <= joints <= Address.LAST_JOINT:
        raise UsageError(f"a rate switch needs the enumerated chain (1..{int(Address.LAST_JOINT)} joints), "
                         f"got {joints!r}")
    if not 1 <= delay_ms <= 10_000 or not 10 <= trial_ms <= 60_000:
        raise UsageError(f"delay_ms must be 1..10000 and trial_ms 10..60000, got {delay_ms} and {trial_ms}")
    start = now
    requested = (host_baud, chain_baud)

    def report(outcome: str, host: int, chain: int, states: dict[int, str], detail: str, t: int) -> RateReport:
        return RateReport(outcome, host, chain, requested, joints, states, detail, (t - start) / NS_PER_MS)

    # 1. the chain answers, nothing is under way; stage every joint
    now, reply = yield Ask(Read(_RATES, _RATES_FORMAT.size), Address.FIRST_JOINT, timeout)
    if not isinstance(reply.message, ReadReply) or len(reply.message.data) != _RATES_FORMAT.size:
        raise PeerError(f"unexpected reply to READ up_baud/down_baud: {reply.message!r}")
    old_chain = _RATES_FORMAT.unpack(reply.message.data)[1]
    for address in range(1, joints + 1):
        up = host_baud if address == 1 else chain_baud
        stage = Write(_STAGE, _STAGE_FORMAT.pack(up, chain_baud, delay_ms, trial_ms))
        try:
            now, _ = yield Ask(stage, address, timeout)
        except RemoteError as exc:
            why = "its UART cannot run that rate" if "LIMIT" in str(exc) else "a switch is already under way"
            raise RateSwitchFailed(report("refused", old_host_baud, old_chain, {}, (
                f"joint {address} refused the rates ({exc}): {why}; nothing switched, the chain stays at "
                f"{old_host_baud}/{old_chain} baud"), now)) from None

    # 2. commit, then follow joint 1 (and the rest of the chain, one hop allowance per joint)
    commit = Write(_COMMAND, bytes((RateCommand.COMMIT,)))
    now, _ = yield Tell(commit, Address.BROADCAST)
    hop_ns = LinkConfig(baud=old_chain).timeout_ns(len(encode_data(0, 0, make_packet(commit, 0, Address.BROADCAST,
                                                                                         0))))
    switched_at = now + delay_ms * NS_PER_MS + joints * hop_ns
    now, _ = yield Wait(switched_at)
    now, _ = yield Retune(host_baud)

    # 3. every joint on trial at the new rates? 4. then confirm
    now, states = yield from _read_states(joints, switched_at + trial_ms * NS_PER_MS // 2, timeout)
    if len(states) == joints and all(s == RateState.TRIAL.name for s in states.values()):
        try:
            now, _ = yield Tell(Write(_COMMAND, bytes((RateCommand.CONFIRM,))), Address.BROADCAST)
            now, states = yield from _read_states(joints, now + int(timeout * NS_PER_S) * 4, timeout)
        except ArmbusError:
            states = {}
        if len(states) == joints and all(s == RateState.IDLE.name for s in states.values()):
            return report("switched", host_baud, chain_baud, states,
                          f"{joints} joint(s) switched: host link {host_baud} baud, chain {chain_baud} baud", now)
        detail = (f"the confirm did not reach every joint ({_describe(states, joints)}); joints that were not "
                  "confirmed went back to the old rates at the end of their trial")
        return (yield from _fall_back(report, joints, host_baud, chain_baud, old_host_baud, old_chain, detail,
                                      switched_at + trial_ms * NS_PER_MS, timeout, confirm_sent=True))

    # 5. the chain did not answer at the new rates: every joint goes back by itself; so does the host
    detail = f"the chain did not answer at the new rates ({_describe(states, joints)})"
    return (yield from _fall_back(report, joints, host_baud, chain_baud, old_host_baud, old_chain, detail,
                                  switched_at + trial_ms * NS_PER_MS, timeout, confirm_sent=False))


def _fall_back(report: Callable[..., RateReport], joints: int, host_baud: int, chain_baud: int, old_host: int,
               old_chain: int, detail: str, trials_end: int, timeout: float, *,
               confirm_sent: bool) -> Generator[Step, tuple[int, Any], RateReport]:
    """Wait out the trials and see where the chain answers: at the new rates first if a confirm went out (it may
    have reached every joint, only its check was lost), then at the old ones. Returns ``switched`` only when
    every joint is seen confirmed; raises the other outcomes."""
    now, _ = yield Wait(trials_end + 1 * NS_PER_MS)
    seen_new = ""
    if confirm_sent:
        now, states = yield from _read_states(joints, now + NS_PER_S, timeout)
        if len(states) == joints and all(s == RateState.IDLE.name for s in states.values()):
            return report("switched", host_baud, chain_baud, states, (
                f"{joints} joint(s) switched: host link {host_baud} baud, chain {chain_baud} baud (the confirm was "
                "seen to have reached every joint only after the trials ended)"), now)
        seen_new = f"; at the new rates {_describe(states, joints)}"
    now, _ = yield Retune(old_host)
    now, states = yield from _read_states(joints, now + NS_PER_S, timeout)
    if len(states) == joints:
        raise RateSwitchFailed(report("reverted", old_host, old_chain, states, (
            f"{detail}; every joint went back by itself and the chain answers at {old_host}/{old_chain} baud "
            "again"), now))
    if confirm_sent:  # the joints that took the confirm stored the new rates, the others kept the old ones
        advice = (f"the part of the chain that answers at {host_baud} baud stored the new rates: switch it back "
                  "with set_baud at the old rate (armbus scan finds it), which joins the chain up again")
    else:  # nobody stored anything: every joint boots at the old rates
        advice = "check the cabling and power-cycle the arm (every joint boots at its stored, old rates)"
    raise RateSwitchFailed(report("broken", old_host, old_chain, states, (
        f"{detail}{seen_new}; at the old rates ({old_host}/{old_chain} baud) {_describe(states, joints)}: "
        f"{advice}"), now))


def _read_states(joints: int, until_ns: int, timeout: float
                 ) -> Generator[Step, tuple[int, Any], tuple[int, dict[int, str]]]:
    """SYNC_READ ``baud_state`` until every joint answers or ``until_ns``; returns the last states seen."""
    states: dict[int, str] = {}
    now = 0
    while True:
        try:
            now, reply = yield Ask(SyncRead(_STATE, 1), Address.BROADCAST, max(timeout, VERIFY_ATTEMPT_S))
            message = reply.message
            if isinstance(message, SyncReadReply):
                states = {r.address: _state_name(r.data[0]) for r in message.records}
                if len(states) >= joints:
                    return now, states
        except ArmbusError:
            pass  # garbled at the switch, or the chain is not there (yet): ask again while time is left
        now, _ = yield Pause(RETRY_NS)
        if now >= until_ns:
            return now, states


def _state_name(value: int) -> str:
    try:
        return RateState(value).name
    except ValueError:
        return f"state {value}"


def _describe(states: dict[int, str], joints: int) -> str:
    if not states:
        return "no joint answered"
    answered = ", ".join(f"{a}: {s}" for a, s in sorted(states.items()))
    return f"{len(states)} of {joints} joint(s) answered: {answered}"


class _Driver(Protocol):
    def request(self, message: Message, dst: int, timeout: float | None = None) -> Any: ...
    def send(self, message: Message, dst: int, timeout: float | None = None) -> int: ...
    def sleep_until(self, t_ns: int) -> None: ...
    def set_port_baud(self, baud: int) -> None: ...
    def now(self) -> int: ...


def run_sync(arm: _Driver, plan: Generator[Step, tuple[int, Any], RateReport]) -> RateReport:
    """Carry out ``plan`` with a blocking arm (:class:`armbus.controller.arm.Arm`)."""
    outcome: tuple[int, Any] | BaseException | None = None
    while True:
        try:
            step = plan.throw(outcome) if isinstance(outcome, BaseException) else plan.send(outcome)  # type: ignore[arg-type]
        except StopIteration as stop:
            return stop.value
        try:
            value: Any = None
            if isinstance(step, Ask):
                value = arm.request(step.message, step.dst, step.timeout)
            elif isinstance(step, Tell):
                value = arm.send(step.message, step.dst)
            elif isinstance(step, Wait):
                arm.sleep_until(step.until_ns)
            elif isinstance(step, Pause):
                arm.sleep_until(arm.now() + step.duration_ns)
            else:
                arm.set_port_baud(step.baud)
            outcome = (arm.now(), value)
        except ArmbusError as exc:
            outcome = exc


class _AsyncDriver(Protocol):
    def request(self, message: Message, dst: int, timeout: float | None = None) -> Awaitable[Any]: ...
    def send(self, message: Message, dst: int, timeout: float | None = None) -> Awaitable[int]: ...
    def sleep_until(self, t_ns: int) -> Awaitable[None]: ...
    def set_port_baud(self, baud: int) -> None: ...
    def now(self) -> int: ...


async def run_async(arm: _AsyncDriver, plan: Generator[Step, tuple[int, Any], RateReport]) -> RateReport:
    """Carry out ``plan`` with an asyncio arm (:class:`armbus.controller.aio.AsyncArm`)."""
    outcome: tuple[int, Any] | BaseException | None = None
    while True:
        try:
            step = plan.throw(outcome) if isinstance(outcome, BaseException) else plan.send(outcome)  # type: ignore[arg-type]
        except StopIteration as stop:
            return stop.value
        try:
            value: Any = None
            if isinstance(step, Ask):
                value = await arm.request(step.message, step.dst, step.timeout)
            elif isinstance(step, Tell):
                value = await arm.send(step.message, step.dst)
            elif isinstance(step, Wait):
                await arm.sleep_until(step.until_ns)
            elif isinstance(step, Pause):
                await arm.sleep_until(arm.now() + step.duration_ns)
            else:
                arm.set_port_baud(step.baud)
            outcome = (arm.now(), value)
        except ArmbusError as exc:
            outcome = exc


def note_rates(node: HostNode, report: RateReport) -> None:
    """Give the host node's cyclic-exchange timing the rates the chain runs at after a switch (or its failure)."""
    node.cycles.timing = dataclasses.replace(node.cycles.timing, host_baud=report.host_baud,
                                             chain_baud=report.chain_baud)


def retune_host(link_config: LinkConfig, baud: int) -> LinkConfig:
    """The host link's configuration at ``baud`` (its timers follow the rate)."""
    check_rate(baud, "host link rate")
    return link_config if link_config.baud == baud else dataclasses.replace(link_config, baud=baud)
