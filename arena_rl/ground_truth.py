"""Ground truth: the expected objective of any static economy, and the best static economy.

The expected objective is a Monte-Carlo integral over the population model. Candidates are
evaluated side by side as arms of one *twins* population (the same users and the same daily
random draws in every arm), so differences between economies carry no sampling noise from
the users and a coordinate search on them is stable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from arena_rl.economy import DEFAULT_ECONOMY, ECONOMY_KEYS, INTEGER_KEYS, economy_array
from arena_rl.population import Population
from arena_rl.specs import PopulationSpec, Scenario

SEARCH_MULTIPLIERS = (0.0, 0.25, 0.5, 0.7, 0.85, 1.0, 1.2, 1.45, 2.0, 3.0)
REFINE_MULTIPLIERS = (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25)
UPPER_BOUND = 10.0
"""No key is searched above this multiple of its global default."""


def evaluate_economies(
    economies: Sequence[Mapping[str, float]] | np.ndarray,
    spec: PopulationSpec,
    scenario: Scenario,
    *,
    users_per_arm: int = 20_000,
    seed: int = 12345,
    days: int | None = None,
) -> np.ndarray:
    """Expected scenario objective of each static economy (total value per enrolled user).

    Args:
        economies: K full economies, or a (K, 10) array in ``ECONOMY_KEYS`` order.
        users_per_arm: Monte-Carlo sample per economy; the same users for every economy.
        seed: the common random numbers' seed.
        days: horizon (default: the scenario's).

    Returns:
        (K,) objective summed over the horizon. Interference is off: a static economy's value
        is defined for it alone.
    """
    table = np.asarray(economies if isinstance(economies, np.ndarray) else economy_array(
        list(economies)), dtype=np.float64)  # fmt: skip
    k = table.shape[0]
    alone = dataclasses.replace(scenario, interference=0.0)
    pop = Population(spec, alone, n_arms=k, seed=seed, n_users=k * users_per_arm, twins=True)
    total = np.zeros(k)
    for _ in range(days or scenario.days):
        total += pop.step(table).value
    return total


@dataclass(frozen=True)
class StaticOptimum:
    """The best static economy found, with its value and the default economy's value."""

    economy: dict[str, float]
    value: float
    default_value: float
    evaluations: int


def _candidates(current: float, key: str, multipliers: Sequence[float]) -> list[float]:
    base = current if current > 0 else DEFAULT_ECONOMY[key]
    values = {min(base * m, DEFAULT_ECONOMY[key] * UPPER_BOUND) for m in multipliers}
    values.add(current)
    if key in INTEGER_KEYS:
        values = {float(round(v)) for v in values}
    return sorted(values)


def best_static_economy(
    spec: PopulationSpec,
    scenario: Scenario,
    *,
    users_per_arm: int = 20_000,
    seed: int = 12345,
    max_sweeps: int = 4,
) -> StaticOptimum:
    """Coordinate search for the static economy with the highest expected objective.

    Each coordinate step evaluates a grid of values for one key, all other keys fixed, in one
    twins population; sweeps repeat until no key improves, then a finer grid refines.
    """
    best = scenario.base_economy()
    best_value = float(evaluate_economies([best], spec, scenario,
                                          users_per_arm=users_per_arm, seed=seed)[0])  # fmt: skip
    default_value, evaluations = best_value, 1
    for multipliers in (SEARCH_MULTIPLIERS, REFINE_MULTIPLIERS):
        for _ in range(max_sweeps):
            improved = False
            for key in ECONOMY_KEYS:
                values = _candidates(best[key], key, multipliers)
                trial = [{**best, key: v} for v in values]
                scores = evaluate_economies(trial, spec, scenario,
                                            users_per_arm=users_per_arm, seed=seed)  # fmt: skip
                evaluations += len(values)
                i = int(np.argmax(scores))
                if scores[i] > best_value + 1e-9:
                    best, best_value, improved = trial[i], float(scores[i]), True
            if not improved:
                break
    return StaticOptimum(best, best_value, default_value, evaluations)
