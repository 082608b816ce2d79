"""Suite-wide set-up: the LLM answer cache lives in a fresh folder per test session, so no test
is served answers cached by an earlier session or by the user's own runs."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from arena_rl.llm.cache import CACHE_ENV


@pytest.fixture(autouse=True, scope="session")
def _fresh_llm_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.environ.get(CACHE_ENV)
    # in os.environ, not monkeypatch: subprocesses and Ray workers inherit it
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("llm_cache") / "answers.sqlite")
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous
