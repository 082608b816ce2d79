"""Suite-wide set-up: arena_rl's caches (LLM answers, ground truth, model probes) live in a fresh
folder per test session, so no test is served results cached by an earlier session or by the
user's own runs."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from arena_rl.core.disk_cache import CACHE_ENV as ROOT_ENV
from arena_rl.llm.cache import CACHE_ENV


@pytest.fixture(autouse=True, scope="session")
def _fresh_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    root = tmp_path_factory.mktemp("arena_rl_cache")
    fresh = {CACHE_ENV: str(root / "answers.sqlite"), ROOT_ENV: str(root)}
    previous = {name: os.environ.get(name) for name in fresh}
    os.environ.update(fresh)  # in os.environ, not monkeypatch: subprocesses and Ray inherit it
    yield
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
