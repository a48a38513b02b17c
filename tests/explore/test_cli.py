"""`python -m ownership explore MODULE:FUNCTION`, the bench rows, and Ctrl-C."""

from __future__ import annotations

import json

import pytest

from ownership.__main__ import main as cli
from ownership.explore import bench, explore

SC = "tests.explore.scenarios"


def test_cli_reports_a_failure_and_its_replay(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["explore", f"{SC}:lost_update", "--strategy", "dfs", "--max-preemptions", "1"]) == 1
    out = capsys.readouterr().out
    assert "lost update" in out and "interleaving (schedule x1:" in out
    schedule = out.rsplit("--replay '", 1)[1].split("'")[0]
    assert cli(["explore", f"{SC}:lost_update", "--replay", schedule, "--json"]) == 1
    j = json.loads(capsys.readouterr().out)
    assert j["failure"]["type"] == "AssertionError" and j["schedule"] == schedule
    assert j["preemptions"] == 1


def test_cli_clean_run_json_and_shards(capsys: pytest.CaptureFixture[str]) -> None:
    runs = 0
    for i in range(2):
        assert (
            cli(
                [
                    "explore",
                    f"{SC}:atomic_update",
                    "--strategy",
                    "dfs",
                    "--json",
                    "--shard",
                    f"{i}/2",
                    "--no-prune",
                ]
            )
            == 0
        )
        j = json.loads(capsys.readouterr().out)
        assert j["failure"] is None and j["complete"] and j["shard"] == f"{i}/2"
        runs += j["runs"] - 1
    whole = explore(__import__(SC, fromlist=["x"]).atomic_update, strategy="dfs", prune=False)
    assert runs == whole.runs - 1


def test_cli_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["explore", "no_colon"]) == 2
    assert cli(["explore", f"{SC}:lost_update", "--shard", "3/2"]) == 2
    assert cli(["explore", f"{SC}:lost_update", "--replay", "junk"]) == 2
    assert cli(["explore", "no_such_module_xyz:f"]) == 2
    assert "explore:" in capsys.readouterr().err


def test_ctrl_c_returns_what_was_explored() -> None:
    from ownership.task import spawn

    count = [0]

    def scenario() -> None:
        count[0] += 1

        def body() -> None:
            if count[0] == 3:
                raise KeyboardInterrupt

        spawn(body, name="t").join()

    ex = explore(scenario, strategy="random", runs=100)
    assert ex.interrupted and ex.failure is None and ex.runs == 2
    assert "interrupted" in ex.summary()


def test_bench_rows() -> None:
    j = bench.measure(switches=400, schedules=10, repeats=1)
    assert isinstance(j["greenlet_switch_us"], float) and j["greenlet_switch_us"] > 0
    assert isinstance(j["explorer_switch_us"], float) and j["explorer_switch_us"] > 0
    assert isinstance(j["switches"], int) and j["switches"] >= 400
    assert isinstance(j["lost_update_schedules_per_s"], float)
    assert any("explorer context switch" in line for line in bench.render(j))
