"""The asyncio driver of the pipelined cyclic runner: a timing thread for the deadlines, the callback on the loop.

Theory of operation
-------------------
asyncio cannot keep a 1 kHz schedule by itself: its timers fire from the selector's timeout, which epoll takes in
whole milliseconds, so ``loop.call_at`` wakes anywhere up to a millisecond late. :func:`run_cyclic` therefore keeps
the schedule in a small thread: it waits for each deadline precisely (:func:`armbus.controller.runner.sleep_until`:
sleep, then spin the last 100 us) and hands it to the event loop with ``call_soon_threadsafe``, which writes to the
loop's self-pipe and wakes the selector at once. The cycle itself runs on the loop, in order with everything else
the arm does there: the :class:`~armbus.controller.scheduler.RateKeeper` begins it (a deadline the loop reached
only after the next one was due is skipped and counted), the callback computes the goals from the newest states
(:class:`~armbus.controller.cyclic.CycleCore`), and the CYCLE goes out through the host node. The thread posts at
most one deadline at a time: while the loop has not run the previous one, a new deadline is not queued behind
it (it would only be stale when it ran). Replies come in through the arm's protocol callbacks on the loop and
update the core's table of newest states; the callback never awaits the wire.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from armbus.bus.errors import UsageError
from armbus.bus.wire import NS_PER_S
from armbus.controller.cyclic import CycleCore, CycleView, CyclicReport
from armbus.controller.runner import sleep_until
from armbus.controller.scheduler import RateKeeper

if TYPE_CHECKING:
    from armbus.controller.aio import AsyncArm


async def run_cyclic(arm: AsyncArm, callback: Callable[[CycleView], Mapping[str, float] | None], rate_hz: float,
                     *, seconds: float | None = None, cycles: int | None = None, **options: Any) -> CyclicReport:
    """Run ``callback`` at ``rate_hz`` for ``seconds`` or ``cycles`` (see the module docstring)."""
    if seconds is None and cycles is None:
        raise UsageError("give seconds= or cycles=")
    core = CycleCore(arm.model, callback, rate_hz, **options)
    loop = asyncio.get_running_loop()
    clock = time.monotonic_ns
    keeper = RateKeeper(rate_hz, start=clock() + core.period_ns, policy="skip")
    schedule = RateKeeper(rate_hz, start=keeper.next_deadline())  # the thread's own copy of the deadlines
    end = None if seconds is None else keeper.next_deadline() + int(seconds * NS_PER_S)
    done: asyncio.Future[None] = loop.create_future()
    stop = threading.Event()
    posted = threading.Event()  # a deadline handed to the loop and not yet run
    sent = 0

    def tick() -> None:
        nonlocal sent
        posted.clear()
        if done.done():
            return
        c = keeper.begin(clock())
        msg = core.run_callback(core.view(c.index, c.deadline, clock()), clock)
        arm.cycle(msg, core.timeout_ns)
        sent += 1
        keeper.end(clock())
        if (cycles is not None and sent >= cycles) or (end is not None and keeper.next_deadline() >= end):
            done.set_result(None)

    def timing() -> None:
        index = 0
        while not stop.is_set():
            deadline = schedule.deadline(index)
            sleep_until(deadline, clock)
            if not posted.is_set():
                posted.set()
                loop.call_soon_threadsafe(tick)
            now = clock()
            index = max(index + 1, int((now - schedule.deadline(0)) * rate_hz // NS_PER_S) + 1)

    arm.add_listener(core.on_event)
    thread = threading.Thread(target=timing, name="armbus-cyclic", daemon=True)
    thread.start()
    try:
        await done
        drain_until = clock() + core.timeout_ns
        while arm.cycles_in_flight() and clock() < drain_until:
            await asyncio.sleep(core.period_ns / NS_PER_S)
    finally:
        stop.set()
        thread.join(timeout=1.0)
        arm.remove_listener(core.on_event)
    return core.finish(keeper)
