"""`python -m binder demo` and `python -m binder bench` run end to end (tiny sizes)."""

from __future__ import annotations

import json

import pytest

from binder.__main__ import main


def test_demo_runs_and_echoes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "-> 'hello, binder'  <- 'hello, binder'" in out
    assert "BR_DEAD_BINDER for 'echo' received" in out
    assert "ends with BR_DEAD_REPLY" in out
    assert "['oneway #0', 'oneway #1', 'oneway #2']" in out


def test_bench_json_has_the_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "bench",
                "--checks",
                "both",
                "--pairs",
                "2",
                "--iterations",
                "5",
                "--payload",
                "64",
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["checks"] == "on" and doc["off"]["checks"] == "off"
    assert doc["transactions"] == 10 and doc["transactions_per_second"] > 0
    assert set(doc["latency_us"]) >= {"p50", "p90", "p99"}
    assert doc["checks_cost_ratio"] > 0


def test_bench_text_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--transactions", "4", "--threads", "1"]) == 0
    assert "transactions/s" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "--pairs", "0"])
