"""A rerun into the same output directory resumes only the same experiment: one that asks for
other days, users, population, scenario or agent settings is refused before any work."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from arena_rl.config import build_agent
from arena_rl.scenarios import load_population, load_scenario
from arena_rl.tournament.play import TournamentSpec
from arena_rl.tournament.runner import (
    EXPERIMENT_FILE,
    RESULTS_DIR,
    StaleResultsError,
    run_tournaments,
)

AGENTS = {"random": {"_target_": "agents.random_agent.RandomAgent", "step_pct": 10.0}}


def specs(n: int = 2, **changes: object) -> list[TournamentSpec]:
    scenario = load_scenario("default")
    base = TournamentSpec(
        index=0, seed=0, agents=AGENTS, population=load_population(scenario),
        scenario=scenario, n_users=600, days=3,
    )  # fmt: skip
    return [dataclasses.replace(base, index=i, seed=100 + i, **changes) for i in range(n)]  # type: ignore[arg-type]


def play(plan: list[TournamentSpec], out: Path) -> int:
    outcome = run_tournaments(
        plan, out, build_agent, num_workers=0, in_process=True, progress=False,
        with_regret=False,
    )  # fmt: skip
    return len(outcome.results) - outcome.skipped


def test_the_same_experiment_resumes_and_plays_only_what_is_missing(tmp_path: Path) -> None:
    assert play(specs(2), tmp_path) == 2
    assert play(specs(3), tmp_path) == 1  # one more seed: the first two are reused
    record = json.loads((tmp_path / EXPERIMENT_FILE).read_text())
    assert record["days"] == 3 and record["population"]["name"] == "default"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"days": 4}, "days 3 here, 4 now"),
        ({"n_users": 900}, "n_users 600 here, 900 now"),
        ({"population": load_population(load_scenario("default"), "casual")},
         "population 'default' here, 'casual' now"),
        ({"scenario": dataclasses.replace(load_scenario("default"), economy={"scanXp": 12.0})},
         "scenario 'default' with other settings"),
    ],
)  # fmt: skip
def test_another_experiment_in_the_same_directory_is_refused_naming_the_difference(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    play(specs(2), tmp_path)
    before = sorted((tmp_path / RESULTS_DIR).iterdir())
    with pytest.raises(StaleResultsError, match=message):
        play(specs(2, **changes), tmp_path)
    assert sorted((tmp_path / RESULTS_DIR).iterdir()) == before  # nothing touched


def test_other_agent_settings_are_refused_per_tournament(tmp_path: Path) -> None:
    play(specs(2), tmp_path)
    other = {"random": {**AGENTS["random"], "step_pct": 20.0}}
    with pytest.raises(StaleResultsError, match="other agents or agent settings"):
        play(specs(2, agents=other), tmp_path)


def test_results_without_a_record_are_refused(tmp_path: Path) -> None:
    play(specs(1), tmp_path)
    (tmp_path / EXPERIMENT_FILE).unlink()
    with pytest.raises(StaleResultsError, match="no record of the experiment"):
        play(specs(1), tmp_path)
