"""Fixtures of the static checker's tests: one check of the whole corpus per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from ownership.static.cli import CheckResult

from .corpus import check_corpus, config_file


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private mypy configuration and cache for the corpus (shared by the session).

    The configuration is written here, not only by the first corpus check: tests that
    run the CLI without `corpus_result` (and, under xdist, may run first on a worker)
    need `mypy.ini` to exist, or mypy exits with a usage error.
    """
    directory = tmp_path_factory.mktemp("static-corpus")
    config_file(directory)
    return directory


@pytest.fixture(scope="session")
def corpus_result(corpus_dir: Path) -> CheckResult:
    return check_corpus(corpus_dir)
