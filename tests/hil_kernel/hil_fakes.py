"""Small fake nodes for kernel tests: they follow the node-driving contract and nothing else."""

from __future__ import annotations


class Sender:
    """Sends scripted chunks on port 0 at scripted times; records what it receives."""

    def __init__(self, script: list[tuple[int, bytes]]) -> None:
        self.script = sorted(script, key=lambda item: item[0])
        self.out = bytearray()
        self.received: list[tuple[int, bytes]] = []
        self.ports = (0,)

    def receive_data(self, port: int, data: bytes, now: int) -> None:
        self.received.append((now, bytes(data)))

    def data_to_send(self, port: int, now: int) -> bytes:
        out, self.out = bytes(self.out), bytearray()
        return out

    def next_deadline(self) -> int | None:
        return self.script[0][0] if self.script else None

    def handle_timer(self, now: int) -> None:
        while self.script and self.script[0][0] <= now:
            self.out += self.script.pop(0)[1]

    @property
    def stream(self) -> bytes:
        return b"".join(d for _, d in self.received)

    def frames(self) -> list[tuple[int, bytes]]:
        """(arrival time of the delimiter, frame) for every complete frame received."""
        out: list[tuple[int, bytes]] = []
        buf = bytearray()
        for t, data in self.received:
            for byte in data:
                buf.append(byte)
                if byte == 0:
                    out.append((t, bytes(buf)))
                    buf.clear()
        return out


class Echo:
    """Sends back every byte it receives, on the same port, at once."""

    def __init__(self) -> None:
        self.pending = bytearray()
        self.ports = (0,)

    def receive_data(self, port: int, data: bytes, now: int) -> None:
        self.pending += data

    def data_to_send(self, port: int, now: int) -> bytes:
        out, self.pending = bytes(self.pending), bytearray()
        return out

    def next_deadline(self) -> int | None:
        return None

    def handle_timer(self, now: int) -> None:
        pass


class FrameForwarder:
    """A two-port store-and-forward node: forwards each complete frame (up to 0x00) to the other port after a
    fixed processing delay; counts the frames it forwarded. With ``reflect`` it sends each frame back out of the
    port it came in on (a frame-level echo)."""

    def __init__(self, delay_ns: int = 0, reflect: bool = False) -> None:
        self.delay_ns = delay_ns
        self.reflect = reflect
        self.ports = (0, 1)
        self.rx = {0: bytearray(), 1: bytearray()}
        self.queue: list[tuple[int, int, bytes]] = []  # (due, out port, frame)
        self.forwarded = 0

    def receive_data(self, port: int, data: bytes, now: int) -> None:
        buf = self.rx[port]
        buf += data
        while (k := buf.find(0)) >= 0:
            frame = bytes(buf[: k + 1])
            del buf[: k + 1]
            self.queue.append((now + self.delay_ns, port if self.reflect else 1 - port, frame))

    def data_to_send(self, port: int, now: int) -> bytes:
        ready = [f for f in self.queue if f[0] <= now and f[1] == port]
        if not ready:
            return b""
        self.queue = [f for f in self.queue if not (f[0] <= now and f[1] == port)]
        self.forwarded += len(ready)
        return b"".join(f[2] for f in ready)

    def next_deadline(self) -> int | None:
        return min((f[0] for f in self.queue), default=None)

    def handle_timer(self, now: int) -> None:
        pass


class Stuck:
    """A broken node whose deadline never moves on."""

    ports = (0,)

    def receive_data(self, port: int, data: bytes, now: int) -> None:
        pass

    def data_to_send(self, port: int, now: int) -> bytes:
        return b""

    def next_deadline(self) -> int | None:
        return 5

    def handle_timer(self, now: int) -> None:
        pass


def frame(i: int, size: int = 17) -> bytes:
    """A ``size``-byte wire frame (delimiter included) whose body has no zero byte and encodes ``i``."""
    body = bytes(((i + k) % 255) + 1 for k in range(size - 1))
    return body + b"\x00"
