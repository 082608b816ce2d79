"""GPBayesOpt: design in the box, refits, EI's preference, seeding, applied economies, exploit.

The agent is driven day by day with synthetic signals whose reward is a known function of the
economy, so each behaviour is checked without the simulator's noise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pytest

from agents.bayesopt import (
    GPBayesOpt,
    bounds_box,
    expected_improvement,
    latin_hypercube,
    search_box,
)
from agents.common import reward
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, KNOBS, validate_overrides
from arena_rl.scenarios.gamification.metrics import METRICS
from arena_rl.scenarios.gamification.specs import SEARCH_BOX

BOX = {"scanXp": [0.5, 2.0], "firstScanOfDayXp": [0.1, 1.5]}


def variant_info(days: int = 28) -> VariantInfo:
    return VariantInfo.of("v", days=days)


def signals_worth(day: int, value: float, confidence: str = "high") -> Signals:
    """Signals whose :func:`reward` is ``value``: everyone active, no XP, no feedback, so the
    objective is active_value + scan_value × scans."""
    objective = load_scenario().objective
    scans = (value - objective.active_value) / objective.scan_value
    metrics = {m: MetricValue(0.0, 0.1, 1000, confidence) for m in METRICS}  # type: ignore[arg-type]
    metrics["SCAN_FREQUENCY"] = MetricValue(scans, 1.0, 1000, confidence)  # type: ignore[arg-type]
    return Signals(1000, 1000, 1000, 5000, day, metrics)


Score = Callable[[Mapping[str, float]], float]


def drive(
    agent: GPBayesOpt,
    score: Score,
    days: int = 28,
    clamp: float | None = None,
    confidence: str = "high",
    after_each_day: Callable[[GPBayesOpt], None] | None = None,
) -> list[ConfigUpdate | None]:
    """Play ``days`` decisions; each day's signals are worth ``score`` of the economy users saw.
    Updates are applied in full, or within ±``clamp`` of the current value."""
    config = dict(DEFAULT_ECONOMY)
    updates: list[ConfigUpdate | None] = []
    for day in range(days):
        value = score(config) if day else 0.0
        update = agent.decide(signals_worth(day, value, confidence), dict(config))
        if update is not None:
            validate_overrides(update.overrides)
            for key, wanted in update.overrides.items():
                if clamp is not None:
                    low, high = config[key] * (1 - clamp), config[key] * (1 + clamp)
                    wanted = float(np.clip(wanted, low, high))
                config[key] = wanted
        updates.append(update)
        if after_each_day is not None:
            after_each_day(agent)
    return updates


def peaked_at(agent: GPBayesOpt, peak: np.ndarray) -> Score:
    """A reward with one maximum at ``peak`` in the agent's unit cube."""
    return lambda config: 1.5 - 0.3 * float(np.sum((agent.unit_of(config) - peak) ** 2))


def started(seed: int = 0, **kwargs: object) -> GPBayesOpt:
    kwargs.setdefault("box", BOX)
    agent = GPBayesOpt(**kwargs)  # type: ignore[arg-type]
    agent.reset(variant_info(), np.random.default_rng(seed))
    return agent


def test_signals_helper_sets_the_reward() -> None:
    assert reward(signals_worth(3, 1.37), variant_info()) == pytest.approx(1.37)


def test_latin_hypercube_puts_one_point_in_every_stratum_of_every_axis() -> None:
    points = latin_hypercube(6, 3, np.random.default_rng(0))
    assert points.shape == (6, 3) and np.all((points >= 0) & (points < 1))
    for axis in points.T:
        assert sorted(np.floor(axis * 6).astype(int)) == list(range(6))


def test_initial_design_stays_in_the_box() -> None:
    agent = started(n_initial=5)
    for point in agent.design_:
        economy = agent.economy_of(point)
        for key, (low, high) in BOX.items():
            base = DEFAULT_ECONOMY[key]
            assert low * base - 1e-9 <= economy[key] <= high * base + 1e-9
    first = agent.decide(signals_worth(0, 0.0, "low"), dict(DEFAULT_ECONOMY))
    assert first is not None and set(first.overrides) <= set(BOX)
    assert first.reasoning.startswith("BO evaluation 1 (initial design)")


def test_the_gp_is_refit_after_each_completed_evaluation() -> None:
    agent = started()
    seen: list[tuple[int, int]] = []
    drive(agent, peaked_at(agent, np.array([0.7, 0.2])), after_each_day=lambda a: seen.append(
        (a.n_evaluations_, a.n_fits_)))  # fmt: skip
    assert all(evaluations == fits for evaluations, fits in seen)
    assert agent.n_evaluations_ >= 4  # the initial design and EI steps before day 19
    assert agent.gp_ is not None and agent.gp_.X_train_.shape[0] == len(agent.y_)
    # two scored days per evaluation (hold 3, transition 1)
    assert len(agent.y_) == 2 * agent.n_evaluations_


def test_expected_improvement_prefers_an_unexplored_promising_region() -> None:
    agent = started(trend=False)
    # explored: the left half, where the reward rises toward the unexplored right half
    xs = np.array([[0.0, 0.2], [0.1, 0.8], [0.2, 0.5], [0.3, 0.1], [0.4, 0.9], [0.5, 0.4]])
    agent.inputs_ = list(xs)
    agent.y_ = list(1.0 + 0.4 * xs[:, 0])
    gp = agent._fit()
    best = float(max(agent.y_))
    explored_low, unexplored = np.array([[0.05, 0.5]]), np.array([[0.8, 0.5]])
    ei_low = expected_improvement(gp, explored_low, best, agent.xi)[0]
    ei_new = expected_improvement(gp, unexplored, best, agent.xi)[0]
    assert ei_new > ei_low
    assert agent.suggest(gp, 0.5)[0] > 0.5  # the EI maximiser lies in the unexplored half


def test_same_seed_same_suggestions_and_another_seed_differs() -> None:
    runs = []
    for seed in (3, 3, 4):
        agent = started(seed)
        updates = drive(agent, peaked_at(agent, np.array([0.3, 0.6])))
        runs.append([(dict(u.overrides), u.reasoning) if u else None for u in updates])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_scores_the_economy_users_saw_not_the_one_suggested() -> None:
    # every candidate is at least 1.6 × base scanXp, but the clamp allows +50 % a day and the
    # agent stops moving after one day: users saw 1.5 × base
    agent = started(box={"scanXp": [1.6, 3.0], "photoXp": [0.5, 2.0]}, max_move_days=1)
    drive(agent, lambda config: 1.0, days=5, clamp=0.5)
    scored = agent._scored()
    assert agent.n_evaluations_ == 1 and len(scored) == 1
    seen = agent.unit_of({**DEFAULT_ECONOMY, "scanXp": 15.0, "photoXp": 10.0})
    assert scored[0][0] == pytest.approx(seen[0]) and scored[0][0] < 0.0
    assert agent.design_[0][0] >= 0.0  # what it asked for was inside the box


def test_exploits_the_best_posterior_mean_after_the_budget() -> None:
    agent = started(max_evaluations=4)
    score = peaked_at(agent, np.array([0.8, 0.2]))
    updates = drive(agent, score)
    assert agent.phase_ == "exploit" and agent.n_evaluations_ == 4
    # noiseless rewards: the best posterior mean among scored economies is the best scored one
    assert agent.best_ is not None
    assert score({**DEFAULT_ECONOMY, **agent.economy_of(agent.best_)}) == pytest.approx(
        max(agent.y_)
    )
    late = [u for u in updates[-5:] if u is not None]
    assert all(u.reasoning.startswith("BO exploit after 4 evaluations") for u in late)


def test_learns_nothing_from_low_confidence_signals() -> None:
    agent = started()
    updates = drive(agent, lambda config: 2.0, confidence="medium")
    assert agent.n_fits_ > 0  # medium confidence is enough
    agent = started()
    updates = drive(agent, lambda config: 2.0, confidence="low")
    assert agent.n_fits_ == 0 and agent.y_ == []
    assert agent.phase_ == "exploit" and agent.best_ is None
    assert all(u is None for u in updates[agent.exploit_day_ :])  # holds what users have


def test_rejects_a_malformed_box() -> None:
    with pytest.raises(ValueError, match="box"):
        started(box={"scanXp": [2.0, 1.0]})
    with pytest.raises(ValueError, match=r"unknown knob 'gold'.*scanXp"):
        started(box={"gold": [0.5, 2.0]})


def test_the_default_box_is_the_scenarios() -> None:
    agent = GPBayesOpt()
    agent.reset(variant_info(), np.random.default_rng(0))
    assert agent.keys_ == tuple(SEARCH_BOX)
    # a low of 0 (showing-up XP, whose optimum is often 0) is a linear axis; the rest log
    assert agent.linear_.tolist() == [low == 0 for low, _ in SEARCH_BOX.values()]
    for point in (np.zeros(len(SEARCH_BOX)), np.ones(len(SEARCH_BOX))):
        economy = agent.economy_of(point)
        for key, (low, high) in SEARCH_BOX.items():
            wanted = (low if point[0] == 0 else high) * DEFAULT_ECONOMY[key]
            assert economy[key] == pytest.approx(round(wanted) if key in KNOBS.integer else wanted)


def test_a_box_from_the_bounds_searches_a_zero_low_linearly() -> None:
    """Without a scenario box, every knob spans its bounds (an open top: ten times the
    default); a low of 0 cannot be reached on a log axis, so it is searched linearly."""
    box = bounds_box(DEFAULT_ECONOMY, KNOBS)
    assert box == {k: (0.0, 10.0) for k in KNOBS.keys}
    agent = started(box={"scanXp": [0.0, 2.0], "photoXp": [0.5, 2.0]})
    assert agent.linear_.tolist() == [True, False]
    assert agent.economy_of(np.array([0.0, 0.0])) == {"scanXp": 0.0, "photoXp": 5.0}
    middle = agent.economy_of(np.array([0.5, 0.5]))
    assert middle["scanXp"] == pytest.approx(10.0)  # linear: halfway from 0 to 2x
    assert middle["photoXp"] == pytest.approx(10.0)  # log: the geometric middle of 0.5x-2x
    assert agent.unit_of({"scanXp": 15.0, "photoXp": 20.0}) == pytest.approx([0.75, 1.0])
    assert search_box(None, load_scenario(), DEFAULT_ECONOMY) == dict(SEARCH_BOX)
