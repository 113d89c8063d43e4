"""A served arm for the tests: ``armbus serve``'s driver in a thread of the test process, on a real unix socket."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from armbus.controller.server import ServeInfo, StartClient, serve

SIM = "armbus://?joints=3&seed=1"


@contextmanager
def served(folder: Path, port: str = SIM, clients: tuple[StartClient, ...] = (),
           limits: tuple[int, int] | None = None) -> Iterator[ServeInfo]:
    """Serve ``port`` on ``folder/arm.sock`` until the block ends; yields what a client needs."""
    box: dict[str, object] = {}
    ready = threading.Event()

    def on_ready(info: ServeInfo) -> None:
        box["info"] = info
        ready.set()

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"], box["loop"] = stop, asyncio.get_running_loop()
        try:
            await serve(port, baud=1_000_000, socket_path=str(folder / "arm.sock"), ready=on_ready, stop=stop,
                        clients=clients, limits=limits)
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="serve", daemon=True)
    thread.start()
    assert ready.wait(20), "serve did not start"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    try:
        info = box["info"]
        assert isinstance(info, ServeInfo)
        yield info
    finally:
        loop = box["loop"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        loop.call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
        thread.join(20)
