"""Large captures made of recorded traffic: a VirtualArm session repeated with shifted times and message ids.

Theory of operation
-------------------
A benchmark of the trace tools should see what real links carry: the mix of message types, payload sizes, ACKs,
retransmissions and line noise of a control session, one chunk per delivery as the kernel tap records it. Recording
100 MB of simulated time would take many minutes, so one recorded session (by default the ``armbus demo``
session: discovery, a 200 Hz SYNC_WRITE trajectory with SYNC_READ samples, a noisy cable, a joint reboot, e-stop)
is repeated until the file is large enough:

* replica ``k`` is the session shifted by ``k`` times its duration plus :data:`GAP_NS`;
* every DATA frame of replica ``k`` is re-encoded with its msg_id advanced by ``k *`` :data:`MSG_ID_STRIDE`
  (mod 65536; requests and their replies move together, so end-to-end matching still pairs them). Without it every
  DATA frame would repeat byte for byte in every replica, which a long real session does not do (msg_ids and
  payload values move on), and a decoder that caches repeated frames would look unrealistically fast. ACKs,
  RESETs and noise repeat as they do on a real line;
* everything else -- chunk boundaries, split frames, noise bytes, link seq numbers -- is kept byte for byte. COBS
  output length depends only on the frame length (below 254 bytes), so the chunk sizes do not change either.

:func:`distinct_pieces` measures how many delimiter-separated pieces of a capture are distinct, i.e. the best
hit rate a decode cache could reach on it.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np

from armbus.bus.codec import Frame, decode_frame, encode_data
from armbus.bus.errors import DecodeError
from armbus.hil.trace.pcapng import TraceWriter, epb_block
from armbus.hil.trace.reader import Trace, read_trace

#: Silence between two replicas: 10 ms, longer than any hop or end-to-end latency of the session.
GAP_NS = 10_000_000
#: msg_id shift per replica: an odd number, so 65536 replicas pass before a msg_id repeats at the same place.
MSG_ID_STRIDE = 7919


def record_demo_session(out_dir: str | os.PathLike[str], seed: int = 1) -> Path:
    """Run the ``armbus demo`` session (simulated time, quiet) and return its capture's path."""
    from armbus.tools.demo import run_demo

    with contextlib.redirect_stdout(io.StringIO()):
        summary = run_demo(os.fspath(out_dir), seed=seed, live=False)
    return Path(summary["trace"])


class _Template:
    """A session cut into what one replica needs: chunks, and the DATA frames with their place in the chunks."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.ifaces = [i for i in trace.interfaces if i.armbus]
        t = trace.chunk_t_ns
        self.t0 = int(t.min())
        self.span = int(t.max()) - self.t0 + GAP_NS
        self.chunks = list(trace.chunks())
        self.frames: list[tuple[int, int, int]] = []  # DATA frames: (interface, offset in its stream, size)
        self.decoded: list[Frame] = []
        for itf in self.ifaces:
            stream = b"".join(d for i, _, d in self.chunks if i == itf.index)
            pos = 0
            for piece in stream.split(b"\x00"):
                if piece:
                    try:
                        frame = decode_frame(piece)
                    except DecodeError:
                        frame = None
                    if frame is not None and frame.packet is not None:
                        self.frames.append((itf.index, pos, len(piece)))
                        self.decoded.append(frame)
                pos += len(piece) + 1

    def replica(self, k: int) -> list[bytes]:
        """EPB blocks of replica ``k`` (without interface blocks: interface ids are the template's order)."""
        shift = k * MSG_ID_STRIDE
        streams: dict[int, bytearray] = {itf.index: bytearray() for itf in self.ifaces}
        for i, _, d in self.chunks:
            streams[i] += d
        for (iface, pos, n), f in zip(self.frames, self.decoded, strict=True):
            pkt = f.packet
            assert pkt is not None
            wire = encode_data(f.seq, f.flags, pkt._replace(msg_id=(pkt.msg_id + shift) & 0xFFFF))[:-1]
            if len(wire) == n:  # always below 254 bytes; a longer frame whose size would change stays as recorded
                streams[iface][pos:pos + n] = wire
        cursor = dict.fromkeys(streams, 0)
        ids = {itf.index: j for j, itf in enumerate(self.ifaces)}
        base = k * self.span - self.t0
        blocks = []
        for i, t, d in self.chunks:
            c = cursor[i]
            blocks.append(epb_block(ids[i], t + base, bytes(streams[i][c:c + len(d)])))
            cursor[i] = c + len(d)
        return blocks


def replicate(session: str | os.PathLike[str], out: str | os.PathLike[str], target_bytes: int) -> tuple[int, int]:
    """Write a capture of about ``target_bytes`` made of replicas of ``session``; return (size, replicas)."""
    template = _Template(read_trace(session))
    meta = {**template.trace.metadata, "replicated_from": Path(session).name}
    with TraceWriter(out, meta, userappl="armbus trace bench (replicated session)") as w:
        for itf in template.ifaces:
            w.interface(itf.link, itf.direction)
        size = os.path.getsize(out)
        k = 0
        while size < target_bytes:
            data = b"".join(template.replica(k))
            w.write_blocks(data)
            size += len(data)
            k += 1
    return size, k


def distinct_pieces(trace: Trace) -> tuple[int, int]:
    """(pieces, distinct pieces) over all armbus interfaces: 1 - distinct/pieces is a decode cache's best hit rate."""
    pieces: list[bytes] = []
    for itf in trace.interfaces:
        if itf.armbus:
            sel = np.flatnonzero(trace.chunk_iface == itf.index).tolist()
            pieces += filter(None, b"".join(map(trace.chunk_data, sel)).split(b"\x00"))
    return len(pieces), len(set(pieces))

