"""The lossy-chain endurance run: its verdict, its report, its command line."""

from __future__ import annotations

import json

import pytest

from armbus.hil.relaychain import DOWNSTREAM, UPSTREAM, Ledger
from armbus.tools.campaigns import lossychain


def test_short_run_accounts_for_every_message() -> None:
    r = lossychain.run(1_000, hops=3, seed=7, progress=False)
    streams = r["streams"]
    assert isinstance(streams, dict)
    for s in (DOWNSTREAM, UPSTREAM):
        v = streams[s]
        assert v["sent"] == 500
        assert v["delivered"] + v["reported"] == 500
        assert v["silent"] == v["duplicates"] == v["reordered"] == 0
    counters = r["link_counters"]
    assert isinstance(counters, dict)
    assert counters["retransmits"] > 0 and counters["crc_errors"] > 0 and counters["duplicates"] > 0
    assert not lossychain.failed(r)


def test_relays_rebooting_mid_stream_lose_only_what_they_held() -> None:
    r = lossychain.run(2_000, hops=4, seed=3, reboot_every_s=0.2, progress=False)
    reboots = r["reboots"]
    assert isinstance(reboots, int) and reboots >= 3
    streams = r["streams"]
    assert isinstance(streams, dict)
    for s in (DOWNSTREAM, UPSTREAM):
        v = streams[s]
        assert v["delivered"] + v["reported"] + v["lost_in_reboot"] == v["sent"] == 1_000
        assert v["silent"] == v["duplicates"] == v["reordered"] == 0
        assert v["delivered"] > 900
    counters = r["link_counters"]
    assert isinstance(counters, dict)
    assert counters["resets_accepted"] >= 1


def test_verdict_catches_duplicates_reordering_and_silent_loss() -> None:
    ledger = Ledger()
    ledger.sent[DOWNSTREAM] = 6
    ledger.delivered[DOWNSTREAM] = [0, 2, 1, 2, 4]  # 1 reordered, 2 twice, 3 and 5 missing
    ledger.reported[DOWNSTREAM] = {3}
    v = lossychain.StreamVerdict.judge(ledger, DOWNSTREAM)
    assert (v.delivered, v.duplicates, v.reordered, v.reported, v.silent) == (4, 1, 1, 1, 1)
    ledger.lost_in_reboot[DOWNSTREAM] = {5}
    v = lossychain.StreamVerdict.judge(ledger, DOWNSTREAM)
    assert (v.lost_in_reboot, v.silent) == (1, 0)


def test_command_line_prints_json_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert lossychain.main(["--messages", "200", "--hops", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["streams"]["down"]["sent"] == 100
    assert report["fault_decisions"]["drop_frame"] > 0


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        lossychain.main(["--messages", "1"])
    assert e.value.code == 2
    assert "--messages must be at least 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        lossychain.main(["--reboot-every-s", "nan"])
    assert e.value.code == 2
