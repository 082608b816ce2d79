"""Ground truth: the expected objective of any static economy, and the best static economy.

The expected objective is a Monte-Carlo integral over the population model. Candidates are
evaluated side by side as arms of one *twins* population (the same users and the same daily
random draws in every arm), so differences between economies carry no sampling noise from
the users and a coordinate search on them is stable.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arena_rl.core.disk_cache import DiskCache, cache_root, digest
from arena_rl.scenarios.gamification.economy import (
    DEFAULT_ECONOMY,
    ECONOMY_KEYS,
    INTEGER_KEYS,
    economy_array,
)
from arena_rl.scenarios.gamification.population import Population
from arena_rl.scenarios.gamification.specs import PopulationSpec, Scenario

SEARCH_MULTIPLIERS = (0.0, 0.25, 0.5, 0.7, 0.85, 1.0, 1.2, 1.45, 2.0, 3.0)
REFINE_MULTIPLIERS = (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25)
SCHEDULE_MULTIPLIERS = (0.5, 0.7, 0.85, 1.0, 1.2, 1.45, 2.0)
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


def evaluate_schedules(
    schedules: np.ndarray,
    spec: PopulationSpec,
    scenario: Scenario,
    *,
    users_per_arm: int = 20_000,
    seed: int = 12345,
    days: int | None = None,
    delta_limit_pct: float | None = 50.0,
) -> np.ndarray:
    """Expected objective of open-loop economy schedules, reached under the delta clamp.

    Args:
        schedules: (K, n_phases, 10); phase ``p`` is the target on days ``[p·L, (p+1)·L)``
            with ``L = ceil(days / n_phases)``.
        delta_limit_pct: each day the economy moves from the scenario's base toward the
            target by at most this % of its current value, as the guardrails allow (None: no
            clamp).

    Returns:
        (K,) objective summed over the horizon, on a twins population (as
        :func:`evaluate_economies`, which is the one-phase case).
    """
    horizon = days or scenario.days
    k, n_phases, _ = schedules.shape
    phase_days = -(-horizon // n_phases)
    alone = dataclasses.replace(scenario, interference=0.0)
    pop = Population(spec, alone, n_arms=k, seed=seed, n_users=k * users_per_arm, twins=True)
    current = np.tile(economy_array([scenario.base_economy()]), (k, 1))
    total = np.zeros(k)
    for day in range(horizon):
        target = schedules[:, min(day // phase_days, n_phases - 1)]
        current = target if delta_limit_pct is None else _clamped(current, target, delta_limit_pct)
        total += pop.step(current).value
    return total


def _clamped(current: np.ndarray, target: np.ndarray, delta_limit_pct: float) -> np.ndarray:
    """One day's move toward ``target`` under the delta clamp (as the guardrails apply it)."""
    limit = delta_limit_pct / 100.0
    reference = np.where(current > 0, current, economy_array([DEFAULT_ECONOMY]))
    low = np.where(current > 0, current * (1 - limit), 0.0)
    moved = np.clip(target, low, current + reference * limit)
    caps = [i for i, key in enumerate(ECONOMY_KEYS) if key in INTEGER_KEYS]
    moved[:, caps] = np.round(moved[:, caps])
    return moved


@dataclass(frozen=True)
class ScheduleOptimum:
    """The best open-loop schedule found: one economy per phase of equal length."""

    phases: list[dict[str, float]]
    phase_days: int
    value: float
    static_value: float
    """The best static economy's value when reached under the same clamp (the start)."""

    def economy_on(self, day: int) -> dict[str, float]:
        """The economy the schedule prescribes for ``day``."""
        return self.phases[min(day // self.phase_days, len(self.phases) - 1)]


def best_schedule(
    spec: PopulationSpec,
    scenario: Scenario,
    *,
    n_phases: int = 4,
    days: int | None = None,
    delta_limit_pct: float | None = 50.0,
    users_per_arm: int = 5_000,
    seed: int = 12345,
    max_sweeps: int = 2,
) -> ScheduleOptimum:
    """Coordinate search for the best schedule of ``n_phases`` economies.

    A dynamic economy can beat every static one in this model: users judge XP against a
    reference they adapt to (so a rising economy keeps them in the domain of gains), and the
    day-0 economy becomes newcomers' reference at no cost. The search starts from the best
    static economy repeated and moves one (phase, key) at a time.
    """
    scenario = dataclasses.replace(scenario, days=days or scenario.days)
    static = best_static_economy(spec, scenario, users_per_arm=users_per_arm, seed=seed)
    plan = np.tile(economy_array([static.economy]), (n_phases, 1))
    best_value = float(evaluate_schedules(
        plan[None], spec, scenario, users_per_arm=users_per_arm, seed=seed,
        delta_limit_pct=delta_limit_pct,
    )[0])  # fmt: skip
    static_value = best_value
    for _ in range(max_sweeps):
        improved = False
        for phase in range(n_phases):
            for i, key in enumerate(ECONOMY_KEYS):
                values = _candidates(plan[phase, i], key, SCHEDULE_MULTIPLIERS)
                trials = np.repeat(plan[None], len(values), axis=0)
                trials[:, phase, i] = values
                scores = evaluate_schedules(trials, spec, scenario, users_per_arm=users_per_arm,
                                            seed=seed, delta_limit_pct=delta_limit_pct)  # fmt: skip
                j = int(np.argmax(scores))
                if scores[j] > best_value + 1e-9:
                    plan, best_value, improved = trials[j], float(scores[j]), True
        if not improved:
            break
    phases = [dict(zip(ECONOMY_KEYS, map(float, row), strict=True)) for row in plan]
    return ScheduleOptimum(phases, -(-scenario.days // n_phases), best_value, static_value)


def schedule_value(
    plan: ScheduleOptimum,
    spec: PopulationSpec,
    scenario: Scenario,
    *,
    days: int | None = None,
    users_per_arm: int = 20_000,
    seed: int = 2024,
) -> float:
    """The plan's expected objective on a large fresh sample: the search's own score is
    optimistic (it picked the plan on that sample) and carries that sample's noise."""
    schedule = economy_array(plan.phases)[None]
    return float(
        evaluate_schedules(
            schedule, spec, scenario, users_per_arm=users_per_arm, seed=seed, days=days
        )[0]
    )


PLAN_SEARCH_USERS = 3000
"""Users per arm in the driver's search for the ground-truth plan (the value itself is then
measured on a large fresh sample by :func:`schedule_value`)."""


def _code_version() -> str:
    """A hash of the code that decides the ground truth: a change to the model or the search
    makes every cached plan stale."""
    from arena_rl.scenarios.gamification import economy, population, specs

    sources = [Path(m.__file__).read_bytes() for m in (economy, population, specs)]  # type: ignore[arg-type]
    sources.append(Path(__file__).read_bytes())
    return hashlib.sha256(b"".join(sources) + np.__version__.encode()).hexdigest()


def plan_value(
    spec: PopulationSpec, scenario: Scenario, days: int, *, cache: bool = True
) -> tuple[float, bool]:
    """The expected objective of the ground-truth plan (:func:`best_schedule`, valued by
    :func:`schedule_value`): the reference every tournament's regret is measured against.

    The search takes seconds, so its result is cached on disk under
    ``<cache root>/ground_truth`` (``$ARENA_RL_CACHE``, default ``~/.cache/arena_rl``), keyed by
    the population, the scenario, the horizon, the search's settings and the ground-truth code.

    Returns:
        The value, and whether it came from the cache.
    """
    key = digest(
        {
            "what": "plan_value",
            "population": dataclasses.asdict(spec),
            "scenario": dataclasses.asdict(scenario),
            "days": days,
            "search_users_per_arm": PLAN_SEARCH_USERS,
            "code": _code_version(),
        }
    )

    def search() -> float:
        plan = best_schedule(spec, scenario, days=days, users_per_arm=PLAN_SEARCH_USERS)
        return schedule_value(plan, spec, scenario, days=days)

    if not cache:
        return search(), False
    value, cached = DiskCache(cache_root() / "ground_truth").get_or_compute(key, search)
    return float(value), cached
