"""The command lines, run as a user runs them: console scripts and `python -m`, in subprocesses.

`--version` answers from the installed metadata; an unknown command is named on stderr
with exit status 2; `--help` is usage, not the modules' internal notes; long runs show a
tqdm bar with an ETA (on stderr, with `--progress` off a terminal); Ctrl-C prints the
partial result (exit status 130) instead of a traceback; `contracts --strict` fails on a
file it cannot parse.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = metadata.version("rust-mm-model")
# A tqdm bar that has an estimate: `[elapsed<remaining, rate]`.
ETA = re.compile(r"\[[\d:]+<[\d:]+, +[\d.]+\w+/s\]")


def _run(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def _interrupt(
    cmd: list[str], wait_for: re.Pattern[str], timeout: float = 60
) -> tuple[int, str, str]:
    """Start `cmd`, press Ctrl-C once `wait_for` matches its stderr; (rc, stdout, stderr)."""
    p = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell may start the suite with SIGINT ignored, which a child would inherit.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert p.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while not wait_for.search(seen) and time.monotonic() < deadline:
        chunk = p.stderr.read(1)
        if not chunk:
            break
        seen += chunk
    assert wait_for.search(seen), seen
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, seen + err


@pytest.mark.parametrize(
    ("cmd", "name"),
    [
        ([str(BIN / "ownership")], "ownership"),
        ([sys.executable, "-m", "ownership"], "ownership"),
        ([str(BIN / "rust-binder")], "rust-binder"),
        ([sys.executable, "-m", "binder"], "rust-binder"),
    ],
)
def test_version_unknown_command_and_help(cmd: list[str], name: str) -> None:
    r = _run(*cmd, "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"{name} {VERSION}"
    r = _run(*cmd, "frobnicate")
    assert r.returncode == 2 and r.stdout == ""
    assert "unknown command 'frobnicate'" in r.stderr
    r = _run(*cmd)
    assert r.returncode == 2 and "a command is required" in r.stderr
    r = _run(*cmd, "--help")
    assert r.returncode == 0 and r.stdout.startswith(f"usage: {name} ")
    for internal in ("COMMANDS", "registered", "IPC layer", "imported only", "never imports"):
        assert internal not in r.stdout


def test_proofs_version_and_usage_errors() -> None:
    r = _run(str(BIN / "ownership-proofs"), "--version")
    assert r.returncode == 0 and r.stdout.strip().endswith(VERSION)
    r = _run(sys.executable, "-m", "proofs", "--no-such-flag")
    assert r.returncode == 2 and "--no-such-flag" in r.stderr


def test_alloc_exhaustive_shows_progress_with_eta() -> None:
    r = _run(str(BIN / "rust-binder"), "alloc-exhaustive", "--sample", "5000", "--progress")
    assert r.returncode == 0, r.stderr
    assert "[PASSED]" in r.stdout and "150/150 runs" in r.stdout
    assert "150/150" in r.stderr and "case/s" in r.stderr and ETA.search(r.stderr)


def test_alloc_exhaustive_has_no_bar_off_a_terminal() -> None:
    r = _run(str(BIN / "rust-binder"), "alloc-exhaustive", "--sample", "50000", "--json")
    assert r.returncode == 0 and "case/s" not in r.stderr
    assert json.loads(r.stdout)["ok"] is True


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_prints_the_partial_alloc_exhaustive_result(jobs: str) -> None:
    cmd = [str(BIN / "rust-binder"), "alloc-exhaustive", "--jobs", jobs, "--json", "--progress"]
    rc, out, err = _interrupt(cmd, ETA, timeout=90)
    assert rc == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    doc = json.loads(out)
    assert doc["interrupted"] is True and doc["ok"] is False
    (res,) = doc["results"]
    assert res["interrupted"] is True and 0 <= res["runs"] < res["expected_runs"]


def test_ctrl_c_prints_the_partial_proofs_bench() -> None:
    cmd = [sys.executable, "-m", "proofs", "--bench", "--progress"]
    rc, out, err = _interrupt(cmd, ETA, timeout=90)
    assert rc == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert ETA.search(err), err
    assert "interrupted" in out


def test_contracts_strict_fails_on_a_file_it_cannot_parse(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("def f(:\n")
    base = [sys.executable, "-m", "ownership", "contracts", "--no-import", str(tmp_path)]
    r = _run(*base, "--strict")
    assert r.returncode == 1 and "broken.py: cannot parse" in r.stderr
    assert _run(*base).returncode == 0
    (tmp_path / "broken.py").unlink()
    assert _run(*base, "--strict").returncode == 0
