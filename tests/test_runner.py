"""The tournament runner on a real local Ray: determinism, resume, worker deaths, failures.

Worker deaths are real: a test agent calls ``os._exit(1)`` inside the worker process.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
import yaml
from hydra.utils import instantiate
from ray import cloudpickle

from arena_rl.agent import Agent, VariantInfo
from arena_rl.core.guardrails import ConfigUpdate, GuardrailResult
from arena_rl.core.signals import Signals
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.specs import load_population
from arena_rl.scenarios.specs import CONF_DIR
from arena_rl.tournament.play import TournamentResult, TournamentSpec
from arena_rl.tournament.runner import FAILED_FILE, RESULTS_DIR, RunOutcome, run_tournaments

pytestmark = pytest.mark.ray

LINEUP = {
    name: yaml.safe_load((CONF_DIR / "agents" / f"{name}.yaml").read_text())
    for name in ("rule", "random")
}
N = 6


class Hold:
    """A test agent that never changes the economy; subclasses misbehave on purpose."""

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        pass

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return None

    def on_result(self, result: GuardrailResult) -> None:
        pass


class DieOnce(Hold):
    """Kills its worker process the first time any worker plays it (the marker remembers)."""

    def __init__(self, marker: str, always: bool = False) -> None:
        self.marker, self.always = Path(marker), always

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        if self.always or not self.marker.exists():
            self.marker.touch()
            os._exit(1)
        return None


class CountFiles(Hold):
    """A fault unless exactly ``expect`` results are on disk when its tournament starts."""

    def __init__(self, directory: str, expect: int) -> None:
        self.directory, self.expect = Path(directory), expect

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        found = len(list(self.directory.glob("*.json")))
        if found != self.expect:
            raise AssertionError(f"{found} results on disk, expected {self.expect}")


class Interrupt(Hold):
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        raise KeyboardInterrupt


def build(name: str, config: Mapping[str, Any]) -> Agent:
    """The test factory: real strategies by ``_target_``, misbehaving ones by ``test``."""
    kind = config.get("test")
    if kind == "die":
        return DieOnce(config["marker"], config.get("always", False))
    if kind == "count":
        return CountFiles(config["dir"], config["expect"])
    if kind == "interrupt":
        return Interrupt()
    if kind == "raise":
        raise RuntimeError(f"boom while building {name}")
    return instantiate(dict(config), _convert_="all")


def make_specs(
    n: int = N, extra: Mapping[int, dict[str, Any]] | None = None
) -> list[TournamentSpec]:
    """``extra`` maps a tournament index to more agents for that tournament only."""
    extra = extra or {}
    population, scenario = load_population(), load_scenario()
    seeds = np.random.SeedSequence(7).spawn(n)
    return [
        TournamentSpec(
            index=i,
            seed=int(s.generate_state(1)[0]),
            agents=LINEUP | extra.get(i, {}),
            population=population,
            scenario=scenario,
            n_users=900,
            days=6,
        )
        for i, s in enumerate(seeds)
    ]


def table(results: list[TournamentResult]) -> list[str]:
    """Everything but the wall-clock decision timings, as comparable text (NaN-safe)."""
    return [
        json.dumps({k: v for k, v in asdict(r).items() if k != "decision_ms"}, sort_keys=True)
        for r in results
    ]


def run(specs: list[TournamentSpec], out: Path, **kwargs: Any) -> RunOutcome:
    options: dict[str, Any] = {"num_workers": 2, "progress": False, "with_regret": False}
    return run_tournaments(specs, out, build, **(options | kwargs))


def stored(out: Path) -> list[str]:
    return sorted(p.name for p in (out / RESULTS_DIR).iterdir())


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # workers cannot import this test module: ship its test agents and factory by value
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(module)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    outcome = run(make_specs(), tmp_path_factory.mktemp("in_process"), in_process=True)
    assert not outcome.failed and len(outcome.results) == N
    return table(outcome.results)


def test_ray_gives_the_in_process_results_whatever_the_worker_count(
    local_ray: None, reference: list[str], tmp_path: Path
) -> None:
    one = run(make_specs(), tmp_path / "one", num_workers=1)
    two = run(make_specs(), tmp_path / "two", num_workers=2)
    assert table(one.results) == reference
    assert table(two.results) == reference
    assert stored(tmp_path / "two") == [f"{i:05d}.json" for i in range(N)]
    assert not (tmp_path / "two" / FAILED_FILE).exists()


def test_results_are_on_disk_as_they_complete(local_ray: None, tmp_path: Path) -> None:
    # one worker plays them in order: tournament i must find the i earlier results stored
    directory = str(tmp_path / RESULTS_DIR)
    extra = {i: {"count": {"test": "count", "dir": directory, "expect": i}} for i in range(4)}
    outcome = run(make_specs(4, extra), tmp_path, num_workers=1)
    assert outcome.failed == {}
    assert len(outcome.results) == 4
    assert [r.faults["count"] for r in outcome.results] == [[]] * 4  # each found its count


def test_a_rerun_resumes_without_duplicates(
    local_ray: None, reference: list[str], tmp_path: Path
) -> None:
    specs = make_specs()
    first = run(specs[:4], tmp_path)
    assert (first.skipped, len(first.results)) == (0, 4)
    (tmp_path / RESULTS_DIR / "00002.json").unlink()  # as if it had not finished

    resumed = run(specs, tmp_path)
    assert resumed.skipped == 3
    assert [r.index for r in resumed.results] == list(range(N))
    assert table(resumed.results) == reference
    assert stored(tmp_path) == [f"{i:05d}.json" for i in range(N)]

    again = run(specs, tmp_path)
    assert (again.skipped, len(again.results), again.play_s) == (N, N, 0.0)


def test_resuming_with_other_specs_is_refused(tmp_path: Path) -> None:
    specs = make_specs(2)
    run(specs, tmp_path, in_process=True)
    with pytest.raises(ValueError, match="another tournament"):
        run([replace(specs[1], seed=specs[1].seed + 1)], tmp_path, in_process=True)


def test_a_killed_worker_costs_no_tournament(local_ray: None, tmp_path: Path) -> None:
    marker = tmp_path / "died"
    specs = make_specs(4, {2: {"mortal": {"test": "die", "marker": str(marker)}}})
    outcome = run(specs, tmp_path / "out")
    assert marker.exists()  # a worker process really died
    assert outcome.failed == {}
    assert outcome.retries == {2: 1}
    assert [r.index for r in outcome.results] == [0, 1, 2, 3]
    # the retried tournament is the one an undisturbed run plays
    again = run(specs, tmp_path / "again", in_process=True)
    assert table(outcome.results) == table(again.results)


def test_failures_are_reported_and_the_rest_finish(local_ray: None, tmp_path: Path) -> None:
    extra: dict[int, dict[str, Any]] = {
        1: {"broken": {"test": "raise"}},
        3: {"doomed": {"test": "die", "marker": str(tmp_path / "m"), "always": True}},
    }
    outcome = run(make_specs(5, extra), tmp_path, max_retries=1)
    assert [r.index for r in outcome.results] == [0, 2, 4]
    assert sorted(outcome.failed) == [1, 3]
    assert "RuntimeError: boom while building broken" in outcome.failed[1]
    assert "worker died 2 time(s)" in outcome.failed[3]
    assert outcome.retries == {3: 1}  # the exception is not retried, the death once
    on_disk = json.loads((tmp_path / FAILED_FILE).read_text())
    assert sorted(on_disk) == ["1", "3"]


def test_ctrl_c_keeps_what_finished_and_a_rerun_completes(tmp_path: Path) -> None:
    specs = make_specs(4, {2: {"stop": {"test": "interrupt"}}})
    outcome = run(specs, tmp_path, in_process=True)
    assert outcome.interrupted
    assert [r.index for r in outcome.results] == [0, 1]
    assert stored(tmp_path) == ["00000.json", "00001.json"]
    healed = [replace(s, agents=LINEUP) for s in specs]
    resumed = run(healed, tmp_path, in_process=True)
    assert (resumed.skipped, len(resumed.results), resumed.interrupted) == (2, 4, False)


def test_more_workers_than_cluster_cpus_is_refused(local_ray: None, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs 3 CPUs"):
        run(make_specs(3), tmp_path, num_workers=3)
