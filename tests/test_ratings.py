"""Leaderboard aggregation: exact counts on hand-built results, statistics on real tournaments."""

from __future__ import annotations

import json
import math
from itertools import combinations
from typing import Any

import numpy as np
import pytest
from hydra.utils import instantiate

from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.specs import load_population
from arena_rl.tournament.play import TournamentResult, TournamentSpec, play_tournament
from arena_rl.tournament.ratings import (
    AgentStanding,
    format_leaderboard,
    leaderboard,
    standings_records,
)

CHEAP_AGENTS: dict[str, dict[str, Any]] = {
    "rule": {"_target_": "agents.rule.RuleBased"},
    "random": {"_target_": "agents.random_agent.RandomAgent"},
    "static": {"_target_": "agents.control.StaticControl"},
}


def made(
    index: int,
    objective: dict[str, float],
    *,
    control: float = 0.0,
    regret: dict[str, float] | None = None,
    faults: dict[str, list[str]] | None = None,
    guardrails: dict[str, dict[str, int]] | None = None,
) -> TournamentResult:
    """A hand-built result: only the fields the leaderboard reads carry meaning."""
    names = list(objective)
    return TournamentResult(
        index=index,
        seed=index,
        pairing="ffa" if len(names) != 2 else " vs ".join(names),
        agents=names,
        objective={CONTROL_ARM: control, **objective},
        lift={n: v - control for n, v in objective.items()},
        regret=regret if regret is not None else {n: math.nan for n in names},
        comparisons=[],
        guardrails=guardrails or {n: {"accepted": 1, "clamped": 0, "rejected": 0} for n in names},
        faults=faults or {n: [] for n in names},
        decision_ms={n: 1.0 for n in names},
        history={},
        daily_value={},
        audit=[],
    )


def by_name(standings: list[AgentStanding]) -> dict[str, AgentStanding]:
    return {s.name: s for s in standings}


def noisy(n: int, means: dict[str, float], seed: int = 0) -> list[TournamentResult]:
    """``n`` ffa tournaments; each agent's objective is its mean plus unit normal noise."""
    rng = np.random.default_rng(seed)
    return [made(i, {a: m + rng.normal() for a, m in means.items()}) for i in range(n)]


def play(index: int, agents: dict[str, dict[str, Any]], pairing: str = "ffa") -> TournamentResult:
    spec = TournamentSpec(
        index,
        1000 + index,
        agents,
        load_population(),
        load_scenario(),
        n_users=1500,
        days=8,
        pairing=pairing,
    )
    return play_tournament(spec, build=lambda _, cfg: instantiate(cfg), with_regret=False)


@pytest.fixture(scope="module")
def ffa_results() -> list[TournamentResult]:
    return [play(i, CHEAP_AGENTS) for i in range(6)]


@pytest.fixture(scope="module")
def round_robin_results() -> list[TournamentResult]:
    pairs = list(combinations(CHEAP_AGENTS, 2)) * 2
    return [
        play(i, {a: CHEAP_AGENTS[a], b: CHEAP_AGENTS[b]}, pairing=f"{a} vs {b}")
        for i, (a, b) in enumerate(pairs)
    ]


def test_win_rate_and_mean_rank_are_counted_per_tournament() -> None:
    results = [
        made(0, {"a": 3.0, "b": 2.0, "c": 1.0}),
        made(1, {"a": 1.0, "b": 3.0, "c": 2.0}),
        made(2, {"a": 3.0, "b": 1.0, "c": 2.0}),
    ]
    s = by_name(leaderboard(results, n_resamples=200))
    assert s["a"].win_rate == pytest.approx(2 / 3)
    assert s["b"].win_rate == pytest.approx(1 / 3)
    assert s["c"].win_rate == 0.0
    assert s["a"].mean_rank == pytest.approx((1 + 3 + 1) / 3)
    assert s["b"].mean_rank == pytest.approx((2 + 1 + 3) / 3)
    assert s["c"].mean_rank == pytest.approx((3 + 2 + 2) / 3)
    assert all(x.n == 3 for x in s.values())


def test_ties_share_the_win_and_the_rank() -> None:
    results = [made(0, {"a": 2.0, "b": 2.0, "c": 1.0}), made(1, {"a": 5.0, "b": 5.0, "c": 5.0})]
    s = by_name(leaderboard(results, n_resamples=200))
    assert s["a"].win_rate == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert s["c"].win_rate == pytest.approx((0 + 1 / 3) / 2)
    assert s["a"].mean_rank == pytest.approx((1.5 + 2) / 2)
    assert s["c"].mean_rank == pytest.approx((3 + 2) / 2)
    assert s["a"].rating_mu == pytest.approx(s["b"].rating_mu)
    assert sum(x.win_rate for x in s.values()) == pytest.approx(1.0)


def test_openskill_ranks_a_clearly_better_agent_first() -> None:
    results = noisy(12, {"weak": 0.0, "strong": 3.0, "middle": 1.5})
    standings = leaderboard(results, n_resamples=200)
    assert [s.name for s in standings] == ["strong", "middle", "weak"]
    mu = {s.name: s.rating_mu for s in standings}
    assert mu["strong"] > mu["middle"] > mu["weak"]
    strong = standings[0]
    assert strong.rating_lo == pytest.approx(strong.rating_mu - 1.96 * strong.rating_sigma, 1e-3)
    assert strong.rating_hi == pytest.approx(strong.rating_mu + 1.96 * strong.rating_sigma, 1e-3)


def test_bootstrap_ci_contains_the_mean_and_shrinks_with_more_tournaments() -> None:
    def width(n: int) -> float:
        s = by_name(leaderboard(noisy(n, {"a": 10.0, "b": 0.0}), n_resamples=1000))["a"]
        assert s.objective_lo <= s.objective <= s.objective_hi
        assert s.lift_lo <= s.lift <= s.lift_hi
        return s.objective_hi - s.objective_lo

    assert width(80) < 0.5 * width(5)


def test_p_best_is_near_one_for_a_dominant_agent_and_sums_to_one() -> None:
    standings = leaderboard(noisy(10, {"a": 0.0, "b": 0.3, "top": 8.0}))
    s = by_name(standings)
    assert s["top"].p_best > 0.99
    assert sum(x.p_best for x in standings) == pytest.approx(1.0)


def test_close_agents_split_p_best() -> None:
    s = by_name(leaderboard(noisy(10, {"a": 0.0, "b": 0.0}, seed=3)))
    assert 0.05 < s["a"].p_best < 0.95
    assert s["a"].p_best + s["b"].p_best == pytest.approx(1.0)


def test_deterministic_for_a_seed_and_blind_to_completion_order(
    ffa_results: list[TournamentResult],
) -> None:
    first = leaderboard(ffa_results, seed=7)
    assert leaderboard(list(reversed(ffa_results)), seed=7) == first
    other = leaderboard(ffa_results, seed=8)
    assert [s.objective for s in other] == [s.objective for s in first]
    assert [s.objective_lo for s in other] != [s.objective_lo for s in first]


def test_real_ffa_tournaments(ffa_results: list[TournamentResult]) -> None:
    standings = leaderboard(ffa_results)
    assert {s.name for s in standings} == set(CHEAP_AGENTS)
    assert [s.objective for s in standings] == sorted(
        (s.objective for s in standings), reverse=True
    )
    assert sum(s.win_rate for s in standings) == pytest.approx(1.0)
    assert sum(s.p_best for s in standings) == pytest.approx(1.0)
    for s in standings:
        assert s.n == len(ffa_results)
        assert s.objective_lo <= s.objective <= s.objective_hi
        assert s.lift_lo <= s.lift <= s.lift_hi
        assert math.isnan(s.regret)  # with_regret=False: nan-safe, not an error
        assert 1.0 <= s.mean_rank <= len(CHEAP_AGENTS)
        assert s.accepted + s.clamped + s.rejected > 0 or s.name == "static"
        assert s.faults == 0
        assert s.decision_ms >= 0.0


def test_round_robin_pairs_are_ranked_by_rating(
    round_robin_results: list[TournamentResult],
) -> None:
    standings = leaderboard(round_robin_results)
    assert {s.name for s in standings} == set(CHEAP_AGENTS)
    assert [s.rating_mu for s in standings] == sorted(
        (s.rating_mu for s in standings), reverse=True
    )
    assert sum(s.p_best for s in standings) == pytest.approx(1.0)
    for s in standings:
        assert s.n == 4  # two opponents, each met twice
        assert s.rating_sigma < 25 / 3  # every match taught it something
    # each pair has exactly one win to share out
    assert sum(s.win_rate * s.n for s in standings) == pytest.approx(len(round_robin_results))


def test_round_robin_p_best_is_near_one_for_a_dominant_agent() -> None:
    means = {"top": 10.0, "a": 0.0, "b": 0.5, "c": 0.2}
    rng = np.random.default_rng(1)
    results = [
        made(i, {x: means[x] + rng.normal(), y: means[y] + rng.normal()})
        for i, (x, y) in enumerate(list(combinations(means, 2)) * 8)
    ]
    standings = leaderboard(results)
    assert standings[0].name == "top"
    assert standings[0].p_best > 0.9
    assert sum(s.p_best for s in standings) == pytest.approx(1.0)


def test_regret_is_averaged_over_the_tournaments_that_computed_it() -> None:
    results = [
        made(0, {"a": 1.0, "b": 0.0}, regret={"a": 2.0, "b": 3.0}),
        made(1, {"a": 1.0, "b": 0.0}, regret={"a": math.nan, "b": math.nan}),
        made(2, {"a": 1.0, "b": 0.0}, regret={"a": 4.0, "b": 5.0}),
    ]
    s = by_name(leaderboard(results, n_resamples=200))
    assert s["a"].regret == pytest.approx(3.0)
    assert s["b"].regret == pytest.approx(4.0)


def test_faults_and_guardrail_counts_are_summed() -> None:
    rails = {"accepted": 2, "clamped": 1, "rejected": 3, "submitted": 6}
    results = [
        made(
            i,
            {"a": 1.0, "b": 0.0},
            faults={"a": ["day 2: ValueError: boom"] * i, "b": []},
            guardrails={"a": rails, "b": rails},
        )
        for i in range(3)
    ]
    a = by_name(leaderboard(results, n_resamples=200))["a"]
    assert (a.faults, a.accepted, a.clamped, a.rejected) == (0 + 1 + 2, 6, 3, 9)
    assert a.decision_ms == pytest.approx(1.0)


def test_a_tournament_counted_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="index 1 appears twice"):
        leaderboard([made(1, {"a": 1.0, "b": 0.0}), made(1, {"a": 1.0, "b": 0.0})])


def test_a_non_finite_objective_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="'b'"):
        leaderboard([made(0, {"a": 1.0, "b": math.nan})])


def test_no_results_give_an_empty_leaderboard() -> None:
    assert leaderboard([]) == []
    assert "nothing to rank" in format_leaderboard([])


def test_a_single_tournament_has_no_interval() -> None:
    (s, _) = leaderboard([made(0, {"a": 1.0, "b": 0.0})])
    assert s.objective == 1.0
    assert math.isnan(s.objective_lo) and math.isnan(s.objective_hi)


def test_formatted_table_lists_every_agent_in_order(ffa_results: list[TournamentResult]) -> None:
    standings = leaderboard(ffa_results)
    text = format_leaderboard(standings)
    lines = text.splitlines()
    assert "objective [95% CI]" in lines[0] and "P(best)" in lines[0]
    assert len(lines) == 2 + len(standings)
    for line, s in zip(lines[2:], standings, strict=True):
        assert s.name in line
        assert f"{s.p_best:.3f}" in line
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule line up


def test_records_are_flat_and_json_able(ffa_results: list[TournamentResult]) -> None:
    standings = leaderboard(ffa_results)
    records = standings_records(standings)
    assert [r["rank"] for r in records] == list(range(1, len(standings) + 1))
    assert [r["name"] for r in records] == [s.name for s in standings]
    assert all(isinstance(v, str | int | float) for r in records for v in r.values())
    assert json.loads(json.dumps(records))[0]["name"] == standings[0].name
