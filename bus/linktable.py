"""The hop link's state machine, as data: ``TABLE[state][input] -> (next state, action)``.

Theory of operation
-------------------
One :class:`~armbus.bus.link.LinkEndpoint` is one side of one wire. It is in one of three states:

* ``SYNCING``: it has sent RESET(nonce) and waits for the matching RESET_ACK. Its sequence numbers are at 0, it
  sends no DATA, and it drops DATA and ACK frames (they belong to a session it has just discarded). Entered at
  boot, after a give-up (the peer's receive state is then uncertain), and when a DATA frame arrives whose
  sequence number proves the two sides disagree (out of window).
* ``OPEN``: stop-and-wait in each direction: at most one unacknowledged DATA frame in flight.
* ``DOWN``: like ``SYNCING`` (still probing with RESET at the capped backoff), but the RESET retry limit has run
  out, so the link is declared down: queued packets fail with LINK_DOWN and new ones fail at once.

Every received frame or timer expiry is first *classified* into an :class:`Input` (the classification needs the
endpoint's counters: is this the expected sequence number? the nonce we sent?), then looked up here. Actions are
names; :class:`armbus.bus.link.LinkEndpoint` has one method per action. Any (state, input) pair missing from the table
is a bug, and a test checks the table is total. docs/hoplink.md draws its diagram from this table (``python -m
armbus.bus.linktable`` prints the Markdown; a test checks the doc is up to date).
"""

from __future__ import annotations

import enum
import sys


class LinkState(enum.Enum):
    SYNCING = "SYNCING"
    OPEN = "OPEN"
    DOWN = "DOWN"


class Input(enum.Enum):
    """What happened, after classification against the endpoint's state."""

    SEND = "send"  # the layer above queued a packet
    SEND_URGENT = "send urgent"  # the layer above queued a safety packet (ESTOP) ahead of the others
    DATA_NEW = "DATA seq==expected"  # the next DATA frame, and the layer above accepts it
    DATA_REFUSED = "DATA seq==expected, refused"  # the next DATA frame, but the layer above is full
    DATA_DUP = "DATA seq==expected-1"  # a retransmission of the frame delivered last
    DATA_OUT_OF_WINDOW = "DATA other seq"  # the sides disagree about sequence numbers
    ACK_MATCH = "ACK seq==in flight"
    ACK_STRAY = "ACK other"  # nothing in flight, or another seq (a duplicate ack)
    RESET_NEW = "RESET new session"  # the peer (re)started a session
    RESET_DUP = "RESET copy (same nonce, nothing heard since)"  # a retransmission or copy of a RESET already answered
    RESET_ACK_MATCH = "RESET_ACK our nonce"
    RESET_ACK_STALE = "RESET_ACK other"
    LINE_ERROR = "line error"  # CRC, COBS, truncated, ...
    TIMEOUT = "timeout"  # the timer ran out and retries are left
    GIVE_UP = "timeout, retries spent"


class Action(enum.Enum):
    QUEUE = "queue"  # append to the send queue; start it if the line is free
    QUEUE_URGENT = "queue first"  # append to the urgent queue, served before the send queue; start if free
    FAIL_NOW = "fail now"  # the link is down: report DeliveryFailed(LINK_DOWN) at once
    DELIVER = "ack + deliver"  # ack, hand the packet up, advance the expected seq
    REACK = "ack again"  # ack a duplicate, do not deliver it
    WITHHOLD = "no ack"  # refused: no ack, so the sender retries later
    DROP = "drop, count"  # ignore the frame, count it
    ACKED = "close + next"  # in-flight frame acked: report PacketAcked, send the next one
    RESYNC = "start reset"  # fail the in-flight frame, zero seqs, send RESET(new nonce)
    ACCEPT_RESET = "accept reset"  # fail in-flight, zero seqs, reply RESET_ACK, report LinkReset, send queued
    ANSWER_RESET = "reply RESET_ACK"  # answer a RESET without touching state (nothing happened since)
    OPENED = "open"  # our RESET was answered: report LinkReset, start sending
    RETRANSMIT = "retransmit"  # send the frame in flight (or the RESET) again, back off
    GIVE_UP_DATA = "fail + reset"  # retries spent on DATA: DeliveryFailed(RETRIES), then reset
    GO_DOWN = "link down"  # RESET retries spent: fail the queue, keep probing
    COUNT_LINE = "count"  # a line error: count it, report LineErrorSeen


S, I, A = LinkState, Input, Action  # noqa: E741  (short names keep the table readable)

# Frames a SYNCING or DOWN endpoint receives from the old session are dropped: the peer's answer to our RESET
# (which it sends after resetting) is the line between the old session and the new one.
_SYNC_COMMON: dict[Input, tuple[LinkState, Action]] = {
    I.DATA_NEW: (S.SYNCING, A.DROP),
    I.DATA_REFUSED: (S.SYNCING, A.DROP),
    I.DATA_DUP: (S.SYNCING, A.DROP),
    I.DATA_OUT_OF_WINDOW: (S.SYNCING, A.DROP),
    I.ACK_MATCH: (S.SYNCING, A.DROP),  # cannot happen (nothing in flight); kept total
    I.ACK_STRAY: (S.SYNCING, A.DROP),
    # the peer's handshake zeroes both sides: answer it and open (our own RESET is withdrawn; its late answer is
    # stale). Staying SYNCING would send our RESET again after the peer opened and reset its new session.
    I.RESET_NEW: (S.OPEN, A.ACCEPT_RESET),
    I.RESET_DUP: (S.SYNCING, A.ANSWER_RESET),
    I.RESET_ACK_MATCH: (S.OPEN, A.OPENED),
    I.RESET_ACK_STALE: (S.SYNCING, A.DROP),
    I.LINE_ERROR: (S.SYNCING, A.COUNT_LINE),
    I.TIMEOUT: (S.SYNCING, A.RETRANSMIT),
    I.GIVE_UP: (S.DOWN, A.GO_DOWN),
}

TABLE: dict[LinkState, dict[Input, tuple[LinkState, Action]]] = {
    S.SYNCING: {I.SEND: (S.SYNCING, A.QUEUE), I.SEND_URGENT: (S.SYNCING, A.QUEUE_URGENT), **_SYNC_COMMON},
    S.DOWN: {
        **{i: (S.DOWN, a) for i, (_, a) in _SYNC_COMMON.items()},
        I.SEND: (S.DOWN, A.FAIL_NOW),
        I.SEND_URGENT: (S.DOWN, A.FAIL_NOW),
        I.RESET_NEW: (S.OPEN, A.ACCEPT_RESET),  # a neighbour (re)appeared and started the session itself
        I.RESET_ACK_MATCH: (S.OPEN, A.OPENED),
        I.TIMEOUT: (S.DOWN, A.RETRANSMIT),
        I.GIVE_UP: (S.DOWN, A.RETRANSMIT),  # keep probing at the capped interval
    },
    S.OPEN: {
        I.SEND: (S.OPEN, A.QUEUE),
        I.SEND_URGENT: (S.OPEN, A.QUEUE_URGENT),
        I.DATA_NEW: (S.OPEN, A.DELIVER),
        I.DATA_REFUSED: (S.OPEN, A.WITHHOLD),
        I.DATA_DUP: (S.OPEN, A.REACK),
        I.DATA_OUT_OF_WINDOW: (S.SYNCING, A.RESYNC),
        I.ACK_MATCH: (S.OPEN, A.ACKED),
        I.ACK_STRAY: (S.OPEN, A.DROP),
        I.RESET_NEW: (S.OPEN, A.ACCEPT_RESET),
        I.RESET_DUP: (S.OPEN, A.ANSWER_RESET),
        I.RESET_ACK_MATCH: (S.OPEN, A.DROP),  # a copy of the answer that opened us
        I.RESET_ACK_STALE: (S.OPEN, A.DROP),
        I.LINE_ERROR: (S.OPEN, A.COUNT_LINE),
        I.TIMEOUT: (S.OPEN, A.RETRANSMIT),
        I.GIVE_UP: (S.SYNCING, A.GIVE_UP_DATA),
    },
}


def render_markdown() -> str:
    """The table as Markdown: a mermaid state diagram (transitions between states) and the full table."""
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> SYNCING: boot / send RESET"]
    for state, row in TABLE.items():
        moves: dict[LinkState, list[str]] = {}
        for inp, (nxt, act) in row.items():
            if nxt is not state:
                moves.setdefault(nxt, []).append(f"{inp.value} / {act.value}")
        for nxt, labels in moves.items():
            for label in labels:
                lines.append(f"    {state.value} --> {nxt.value}: {label}")
    lines.append("```")
    lines.append("")
    header = "| input | " + " | ".join(s.value for s in TABLE) + " |"
    lines.append(header)
    lines.append("|" + "---|" * (len(TABLE) + 1))
    for inp in Input:
        cells = []
        for state, row in TABLE.items():
            nxt, act = row[inp]
            cells.append(act.value if nxt is state else f"{act.value} -> **{nxt.value}**")
        lines.append(f"| {inp.value} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


BEGIN_MARK = "<!-- BEGIN GENERATED: python -m armbus.bus.linktable -->"
END_MARK = "<!-- END GENERATED -->"


def update_doc(text: str) -> str:
    """Replace the generated block between the marks in ``text`` with the current table."""
    head, _, rest = text.partition(BEGIN_MARK)
    _, _, tail = rest.partition(END_MARK)
    return f"{head}{BEGIN_MARK}\n{render_markdown()}{END_MARK}{tail}"


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) > 1:
        path = sys.argv[1]
        with open(path, encoding="utf-8") as fh:
            old = fh.read()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(update_doc(old))
    else:
        sys.stdout.write(render_markdown())
