"""Value beyond the horizon: the stationary projection against the simulation carried on,
the overspend projection against brute force, and the tail's one path into the objective."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from agents.random_agent import RandomAgent
from arena_rl.core.ground_truth import evaluate_economies
from arena_rl.envs.parallel import ArenaParallelEnv
from arena_rl.experiment import run_experiment
from arena_rl.scenarios import load_population, load_scenario, scenario_from_dict
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY
from arena_rl.scenarios.gamification.specs import GamificationScenario, Objective
from arena_rl.scenarios.gamification.tail import discounted_overspend
from arena_rl.scenarios.pricing.specs import PricingScenario
from arena_rl.scenarios.specs import SpecError

LEAN = {**DEFAULT_ECONOMY, "streakBonusPerDay": 0.0, "photoXp": 0.0, "firstScanOfDayXp": 0.0}
RICH = {k: v * 1.5 for k, v in DEFAULT_ECONOMY.items()}  # over the XP budget at the horizon


def carried_on(scenario: Any, economies: list[Mapping[str, float]], users_per_arm: int) -> tuple:
    """The stationary tail of each arm at the horizon, and the discounted value the same users
    create when the simulation simply goes on (common random numbers: twins)."""
    population = load_population(scenario)
    n = len(economies)
    model = scenario.model(population, n, 3, n * users_per_arm, twins=True)
    table = scenario.knobs.array(economies)
    for _ in range(scenario.days):
        model.step(table)
    onward = copy.deepcopy(model)
    enrolled = onward.enrolled_by(scenario.days - 1)
    tail = model.credit_tail()
    gamma, simulated = scenario.tail_discount, np.zeros(n)
    for k in range(1, 600):  # γ^600 < 1e-5 at γ = 0.98
        outcome = onward.step(table)
        simulated += gamma**k * outcome.value * outcome.enrolled / enrolled
    return tail, simulated


def test_gamification_tail_matches_the_simulation_carried_on() -> None:
    """A lean and the default economy within 10 %. An economy with every XP 1.5× is over the
    XP budget at the horizon: its tail is a small difference of large value and overspend, so
    it is held to 3 units of objective (about a tenth of the default's tail) and to its sign.
    It needs the overspend projected day by day, because the XP of a shrinking cohort falls
    under the budget in time."""
    tail, simulated = carried_on(load_scenario(), [LEAN, DEFAULT_ECONOMY, RICH], 8000)
    assert (simulated > 0).all() and tail[2] > 0
    np.testing.assert_allclose(tail[:2], simulated[:2], rtol=0.10)
    assert abs(tail[2] - simulated[2]) < 3.0


def test_pricing_tail_matches_the_simulation_carried_on() -> None:
    scenario = load_scenario("pricing")
    base = scenario.base_economy()
    economies = [base, {**base, "monthly_price": 25.0}, {**base, "annual_discount": 0.4}]
    tail, simulated = carried_on(scenario, economies, 8000)
    np.testing.assert_allclose(tail, simulated, rtol=0.10)


def test_overspend_projection_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    xp = rng.gamma(2.0, 50.0, size=(2, 3000))
    survival = rng.uniform(0.9, 1.0, size=(2, 3000))
    enrolled = np.array([3000, 3000])
    objective, gamma = Objective(xp_budget=80.0), 0.98
    days = np.arange(1, 800)
    exact = [
        objective.overspend_cost
        * float(
            gamma**days
            @ np.maximum(np.power.outer(survival[a], days).T @ xp[a] - 80.0 * enrolled[a], 0)
        )
        for a in range(2)
    ]
    got = discounted_overspend(xp, survival, enrolled, objective, gamma)
    assert min(exact) > 0
    np.testing.assert_allclose(got, exact, rtol=1e-3)
    assert discounted_overspend(xp / 10, survival, enrolled, objective, gamma).tolist() == [0, 0]


def test_the_tail_enters_the_objective_once_through_the_last_reward() -> None:
    env = ArenaParallelEnv(n_agents=1, n_users=1500, days=6)
    env.reset(seed=4)
    rewards = 0.0
    while env.agents:
        _, reward, *_ = env.step({})
        rewards += reward[env.possible_agents[0]]
    core = env.core
    assert core is not None and core.tail is not None
    arm = env.possible_agents[0]
    assert core.tail[arm] > 0
    assert rewards == pytest.approx(core.objective[arm], rel=1e-12)
    with pytest.raises(RuntimeError, match="once"):
        core.reach_horizon()


def test_a_tail_of_zero_gives_the_objective_without_it() -> None:
    scenario = load_scenario()
    off = dataclasses.replace(scenario, tail_discount=0.0)
    with_tail = run_experiment({"r": RandomAgent()}, seed=2, n_users=1200, days=5)
    without = run_experiment({"r": RandomAgent()}, seed=2, n_users=1200, days=5, scenario=off)
    assert without.tail == {"control_arm": 0.0, "r": 0.0}
    for arm, value in with_tail.objective.items():
        assert value == pytest.approx(without.objective[arm] + with_tail.tail[arm], rel=1e-12)
        assert value == pytest.approx(
            float(np.sum(with_tail.daily_value[arm])) + with_tail.tail[arm]
        )
    population = load_population(scenario)
    both = [
        evaluate_economies([LEAN], population, s, users_per_arm=500)[0] for s in (scenario, off)
    ]
    assert both[0] > both[1]  # ground truth counts the tail the same way


@pytest.mark.parametrize("cls", [GamificationScenario, PricingScenario])
@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1])
def test_a_tail_discount_outside_0_1_is_refused_by_name(cls: type, bad: float) -> None:
    with pytest.raises(SpecError, match=r"tail_discount.*\[0, 1\)"):
        cls.from_dict({"tail_discount": bad}, source="scenario")  # type: ignore[attr-defined]
    assert (
        scenario_from_dict(
            {"_target_": f"{cls.__module__}.{cls.__name__}", "tail_discount": 0.0}, source="s"
        ).tail_discount
        == 0.0
    )
