"""Fixtures of the static checker's tests: one check of the whole corpus per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from ownership.static.cli import CheckResult

from .corpus import check_corpus


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private mypy configuration and cache for the corpus (shared by the session)."""
    return tmp_path_factory.mktemp("static-corpus")


@pytest.fixture(scope="session")
def corpus_result(corpus_dir: Path) -> CheckResult:
    return check_corpus(corpus_dir)
