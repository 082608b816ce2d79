"""The content-addressed disk cache (ground truth is its user): entries that check out are
served, anything stale, truncated or edited is recomputed, and concurrent writers are safe."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from arena_rl.core import ground_truth
from arena_rl.core.disk_cache import DiskCache, digest
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.specs import load_population


def test_a_value_is_computed_once_then_served(tmp_path: Path) -> None:
    cache, calls = DiskCache(tmp_path), []

    def compute() -> dict[str, float]:
        calls.append(1)
        return {"value": 1.5}

    assert cache.get_or_compute("k", compute) == ({"value": 1.5}, False)
    assert cache.get_or_compute("k", compute) == ({"value": 1.5}, True)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # truncated mid-write
        lambda text: text.replace("1.5", "2.5"),  # edited value: the checksum no longer fits
        lambda text: text.replace('"key": "k"', '"key": "other"'),  # another key's entry
        lambda text: "not json",
    ],
    ids=["truncated", "edited", "other-key", "garbage"],
)
def test_a_damaged_entry_is_recomputed_never_trusted(tmp_path: Path, damage: object) -> None:
    cache = DiskCache(tmp_path)
    cache.put("k", 1.5)
    path = cache.path("k")
    path.write_text(damage(path.read_text()))  # type: ignore[operator]
    assert cache.get("k") is None
    assert cache.get_or_compute("k", lambda: 1.5) == (1.5, False)
    assert json.loads(path.read_text())["checksum"] == digest(1.5)  # repaired


def _write_many(folder: str, worker: int) -> None:
    cache = DiskCache(folder)
    for i in range(200):
        cache.put(f"k{i % 20}", {"i": i % 20, "payload": "x" * 2000})
        got = cache.get(f"k{(i + worker) % 20}")
        assert got is None or got["i"] == (i + worker) % 20


def test_concurrent_writers_leave_only_whole_entries(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    cache = DiskCache(tmp_path)
    assert all(cache.get(f"k{i}") == {"i": i, "payload": "x" * 2000} for i in range(20))
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file left behind


@pytest.mark.slow
def test_ground_truth_plan_value_is_searched_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARENA_RL_CACHE", str(tmp_path))
    spec, scenario = load_population(), load_scenario()
    first, cached = ground_truth.plan_value(spec, scenario, 5)
    assert not cached and len(list((tmp_path / "ground_truth").glob("*.json"))) == 1
    searched = []
    monkeypatch.setattr(ground_truth, "best_schedule", lambda *a, **k: searched.append(1))
    again, cached = ground_truth.plan_value(spec, scenario, 5)
    assert cached and again == first and not searched  # bit-identical, and no search ran
