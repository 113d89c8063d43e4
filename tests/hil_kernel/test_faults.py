"""Fault injection: each operation, cut windows, seeded replay, chunking independence, configuration errors."""

from __future__ import annotations

import pytest
from hil_fakes import Sender, frame

from armbus.bus.errors import ConfigError, UsageError
from armbus.hil.faults import FaultInjector, LinkFaults
from armbus.hil.kernel import Kernel
from armbus.hil.wire import Direction

MBAUD = 1_000_000
FRAMES = [frame(i, 5 + i % 50) for i in range(200)]


def run(faults: LinkFaults, *, seed: int = 1, script: list[tuple[int, bytes]] | None = None,
        until: int | None = None) -> tuple[Kernel, Sender]:
    k = Kernel(seed=seed)
    k.faults.set_link("l", faults, Direction.A_TO_B)
    if script is None:
        script = [(i * 1_000_000, f) for i, f in enumerate(FRAMES)]
    dst = Sender([])
    k.add_node("src", Sender(script))
    k.add_node("dst", dst)
    k.connect("src", 0, "dst", 0, baud=MBAUD, name="l")
    if until is None:
        k.run_until_idle()
    else:
        k.run_until(until)
    return k, dst


def test_clean_link_delivers_everything_and_logs_nothing() -> None:
    k, dst = run(LinkFaults())
    assert dst.stream == b"".join(FRAMES)
    assert k.faults.log == []


def test_drop_frame_removes_whole_frames() -> None:
    k, dst = run(LinkFaults(drop_frame=0.3))
    dropped = [int(d.detail.split()[1]) for d in k.faults.log if d.op == "drop_frame"]
    assert 30 < len(dropped) < 100
    assert [f for _, f in dst.frames()] == [f for i, f in enumerate(FRAMES) if i not in dropped]


def test_dup_frame_sends_an_intact_copy_right_after() -> None:
    k, dst = run(LinkFaults(dup_frame=0.25))
    duped = {int(d.detail.split()[1]) for d in k.faults.log if d.op == "dup_frame"}
    assert 20 < len(duped) < 90
    expected = [g for i, f in enumerate(FRAMES) for g in ([f, f] if i in duped else [f])]
    assert [f for _, f in dst.frames()] == expected


def test_drop_byte_removes_single_bytes_at_about_the_set_rate() -> None:
    k, dst = run(LinkFaults(drop_byte=0.02))
    sent = b"".join(FRAMES)
    drops = [d for d in k.faults.log if d.op == "drop_byte"]
    assert len(dst.stream) == len(sent) - len(drops)
    assert 0.01 * len(sent) < len(drops) < 0.03 * len(sent)
    positions = sorted(int(d.detail.split()[1]) for d in drops)
    assert dst.stream == bytes(b for i, b in enumerate(sent) if i not in set(positions))


def test_flip_bit_changes_exactly_one_bit_of_chosen_bytes() -> None:
    k, dst = run(LinkFaults(flip_bit=0.01))
    sent = b"".join(FRAMES)
    assert len(dst.stream) == len(sent)
    diffs = [i for i, (a, b) in enumerate(zip(sent, dst.stream, strict=True)) if a != b]
    flips = [int(d.detail.split()[1]) for d in k.faults.log if d.op == "flip_bit"]
    assert diffs == flips and len(diffs) > 20
    assert all(bin(sent[i] ^ dst.stream[i]).count("1") == 1 for i in diffs)


def test_delay_holds_frames_by_delay_plus_jitter() -> None:
    k, dst = run(LinkFaults(delay=1.0, delay_ns=200_000, jitter_ns=50_000))
    holds = [int(d.detail.split()[3]) for d in k.faults.log if d.op == "delay"]
    assert len(holds) == len(FRAMES)
    assert all(200_000 <= h <= 250_000 for h in holds) and len(set(holds)) > 10
    for i, ((t, f), hold) in enumerate(zip(dst.frames(), holds, strict=True)):
        assert f == FRAMES[i]
        assert t == i * 1_000_000 + hold + len(f) * 10_000


def test_delay_never_reorders_the_stream() -> None:
    script = [(i * 20_000, f) for i, f in enumerate(FRAMES[:50])]
    _, dst = run(LinkFaults(delay=0.5, delay_ns=300_000, jitter_ns=300_000), script=script)
    assert [f for _, f in dst.frames()] == FRAMES[:50]


def test_cut_window_loses_bytes_arriving_inside_it() -> None:
    k = Kernel()
    script = [(i * 1_000_000, frame(i, 20)) for i in range(10)]
    dst = Sender([])
    k.add_node("src", Sender(script))
    k.add_node("dst", dst)
    k.connect("src", 0, "dst", 0, baud=MBAUD, name="l")
    # byte i of frame n arrives at n ms + (i + 1) * 10 us. Cut [3.100, 5.100) ms: bytes 9.. of frame 3, all of
    # frame 4 and bytes 0..8 of frame 5 are lost (byte 9 of frame 5 arrives at 5.100 ms, when the cut is over)
    k.faults.cut("l", 3_100_000, 5_100_000)
    k.run_until_idle()
    expected = b"".join(frame(i, 20) for i in range(3)) + frame(3, 20)[:9]
    expected += frame(5, 20)[9:] + b"".join(frame(i, 20) for i in range(6, 10))
    assert dst.stream == expected
    cuts = [d for d in k.faults.log if d.op == "cut"]
    assert [d.detail.split()[0] for d in cuts] == ["11", "20", "9"]


def test_cut_in_static_config_and_other_direction_untouched() -> None:
    k = Kernel()
    k.faults.set_link("l", LinkFaults(cuts=((0, 2_500_000),)), Direction.A_TO_B)
    a, b = Sender([(i * 1_000_000, frame(i)) for i in range(4)]), Sender([(i * 1_000_000, frame(i)) for i in range(4)])
    k.add_node("a", a)
    k.add_node("b", b)
    k.connect("a", 0, "b", 0, baud=MBAUD, name="l")
    k.run_until_idle()
    assert b.stream == frame(3)
    assert a.stream == b"".join(frame(i) for i in range(4))


ALL = LinkFaults(drop_byte=0.003, flip_bit=0.003, drop_frame=0.05, dup_frame=0.05, delay=0.1, delay_ns=30_000,
                 jitter_ns=20_000)


def test_same_seed_replays_exactly_and_another_seed_differs() -> None:
    k1, d1 = run(ALL, seed=42)
    k2, d2 = run(ALL, seed=42)
    k3, _ = run(ALL, seed=43)
    assert k1.faults.format_log() == k2.faults.format_log()
    assert d1.received == d2.received
    assert k1.faults.log != k3.faults.log
    assert set(k1.faults.counts()) == {"drop_byte", "flip_bit", "drop_frame", "dup_frame", "delay"}


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_decisions_do_not_depend_on_how_the_sender_chunks(chunk: int) -> None:
    stream = b"".join(FRAMES)
    whole = FaultInjector(5).channel("l", Direction.A_TO_B)
    whole.configure(ALL)
    pieces = FaultInjector(5).channel("l", Direction.A_TO_B)
    pieces.configure(ALL)
    out_whole = b"".join(seg for _, seg in whole.transmit(0, stream))
    out_pieces = b"".join(
        seg for i in range(0, len(stream), chunk) for _, seg in pieces.transmit(0, stream[i : i + chunk])
    )
    assert out_whole == out_pieces
    assert whole._injector.log == pieces._injector.log


def test_log_is_printable(capsys: pytest.CaptureFixture[str]) -> None:
    k, _ = run(LinkFaults(drop_frame=0.5), script=[(0, frame(1)), (10**6, frame(2)), (2 * 10**6, frame(3))])
    k.faults.print_log()
    out = capsys.readouterr().out
    assert out.startswith("fault decisions (seed 1): ")
    assert out.count("drop_frame") == len(k.faults.log) >= 1
    assert " l a>b " in out


def test_folding_the_log_keeps_the_counts_and_empties_the_log() -> None:
    k, _ = run(ALL, seed=42)
    before = k.faults.counts()
    n = len(k.faults.log)
    assert n > 0
    assert k.faults.fold_log() == n
    assert k.faults.log == []
    assert k.faults.counts() == before
    assert f"and {n} folded earlier" in k.faults.format_log()
    assert k.faults.fold_log() == 0 and k.faults.counts() == before


def test_log_limit_folds_the_older_half_and_keeps_counting() -> None:
    inj = FaultInjector(1, log_limit=10)
    for t in range(25):
        inj.record(t, "l", None, "drop_frame" if t % 5 else "cut", f"#{t}")
    assert len(inj.log) <= 10 and inj.log[-1].t_ns == 24
    assert [d.t_ns for d in inj.log] == list(range(25 - len(inj.log), 25))  # the newest, in order
    assert inj.counts() == {"drop_frame": 20, "cut": 5}
    with pytest.raises(UsageError):
        FaultInjector(1, log_limit=0)


def test_reconfiguring_mid_run_takes_effect() -> None:
    k = Kernel()
    dst = Sender([])
    k.add_node("src", Sender([(i * 1_000_000, frame(i)) for i in range(10)]))
    k.add_node("dst", dst)
    k.connect("src", 0, "dst", 0, baud=MBAUD, name="l")
    k.run_until(4_500_000)
    k.faults.set_link("l", LinkFaults(drop_frame=1.0))
    k.run_until(7_500_000)
    k.faults.set_link("l", LinkFaults())
    k.run_until_idle()
    assert [f for _, f in dst.frames()] == [frame(i) for i in (0, 1, 2, 3, 4, 8, 9)]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"drop_byte": 1.5}, "drop_byte"), ({"delay_ns": -1}, "delay_ns"), ({"cuts": ((5, 1),)}, "cuts")],
)
def test_bad_fault_values_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(UsageError, match=field):
        LinkFaults(**kwargs)  # type: ignore[arg-type]


def test_fault_file_tables_are_checked() -> None:
    assert LinkFaults.from_dict({"drop_frame": 0.1, "cuts": [[0, 10]]}) == LinkFaults(drop_frame=0.1, cuts=((0, 10),))
    with pytest.raises(ConfigError, match=r"unknown key.*drop_bytes"):
        LinkFaults.from_dict({"drop_bytes": 0.1}, where="faults.toml [link.j1]")
    with pytest.raises(ConfigError, match=r"faults.toml \[link.j1\]: LinkFaults.flip_bit"):
        LinkFaults.from_dict({"flip_bit": "x"}, where="faults.toml [link.j1]")
