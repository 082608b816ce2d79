"""Learning tests: strategies against each other on the default population, 20 seeds.

One free-for-all experiment per seed, every agent in its own arm of the same population, so
all comparisons are paired by seed. Thresholds: each learner beats ``random`` by a one-sided
paired t-test at p < 0.05; ``oracle`` is at least as good as every agent within noise (its mean
paired advantage is above -2 standard errors); ``control`` has ~0 lift (|mean| below 3
standard errors).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from arena_rl.config import agent_configs, build_agent
from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.experiment import run_experiment

AGENTS = ["control", "random", "ucb", "thompson", "bayesopt", "ppo", "oracle"]
LEARNERS = ["ucb", "thompson", "bayesopt", "ppo"]
SEEDS = range(20)
USERS_PER_ARM = 2000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def objectives() -> dict[str, np.ndarray]:
    configs = agent_configs(AGENTS)
    totals: dict[str, list[float]] = {}
    for seed in SEEDS:
        agents = {name: build_agent(name, configs[name]) for name in AGENTS}
        result = run_experiment(agents, seed=seed, n_users=USERS_PER_ARM * (len(AGENTS) + 1))
        for arm, value in result.objective.items():
            totals.setdefault(arm, []).append(value)
    values = {arm: np.asarray(v) for arm, v in totals.items()}
    for arm, v in values.items():
        lift = v - values[CONTROL_ARM]
        print(f"{arm:>12}: objective {v.mean():6.2f}, lift {lift.mean():+5.2f} ± {lift.std():.2f}")
    return values


@pytest.mark.parametrize("learner", LEARNERS)
def test_learner_beats_random(objectives: dict[str, np.ndarray], learner: str) -> None:
    test = stats.ttest_rel(objectives[learner], objectives["random"], alternative="greater")
    assert test.pvalue < 0.05, (learner, objectives[learner].mean(), test.pvalue)


@pytest.mark.parametrize("agent", [a for a in AGENTS if a != "oracle"])
def test_oracle_is_at_least_as_good_as_every_agent(
    objectives: dict[str, np.ndarray], agent: str
) -> None:
    advantage = objectives["oracle"] - objectives[agent]
    standard_error = advantage.std(ddof=1) / np.sqrt(len(advantage))
    assert advantage.mean() > -2 * standard_error, (agent, advantage.mean(), standard_error)


def test_control_agent_has_no_lift(objectives: dict[str, np.ndarray]) -> None:
    lift = objectives["control"] - objectives[CONTROL_ARM]
    standard_error = lift.std(ddof=1) / np.sqrt(len(lift))
    assert abs(lift.mean()) < 3 * standard_error, (lift.mean(), standard_error)
