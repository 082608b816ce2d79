"""Ground truth of any scenario: the expected objective of a static economy or an open-loop
schedule, and the best of each, found through the scenario protocol alone.

The expected objective is a Monte-Carlo integral over the scenario's population model.
Candidates are evaluated side by side as arms of one *twins* population (the same users and
the same daily random draws in every arm), so differences between economies carry no
sampling noise from the users and a coordinate search on them is stable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arena_rl.core.disk_cache import DiskCache, cache_root, digest
from arena_rl.core.knobs import Knobs
from arena_rl.core.scenario import Scenario

SEARCH_MULTIPLIERS = (0.0, 0.25, 0.5, 0.7, 0.85, 1.0, 1.2, 1.45, 2.0, 3.0)
REFINE_MULTIPLIERS = (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25)
SCHEDULE_MULTIPLIERS = (0.5, 0.7, 0.85, 1.0, 1.2, 1.45, 2.0)
"""Candidate values are multiples of a knob's current value, clipped into its search range
(its bounds; ten times its default where it has no top)."""


def evaluate_economies(
    economies: Sequence[Mapping[str, float]] | np.ndarray,
    population: Any,
    scenario: Scenario,
    *,
    users_per_arm: int = 20_000,
    seed: int = 12345,
    days: int | None = None,
) -> np.ndarray:
    """Expected scenario objective of each static economy (total value per enrolled user).

    Args:
        economies: K full economies, or a (K, n_knobs) array in knob order.
        users_per_arm: Monte-Carlo sample per economy; the same users for every economy.
        seed: the common random numbers' seed.
        days: horizon (default: the scenario's).

    Returns:
        (K,) objective summed over the horizon, plus the value after it (the scenario's tail
        value, with the economy held). Interference is off: a static economy's value
        is defined for it alone.
    """
    table = np.asarray(economies if isinstance(economies, np.ndarray) else scenario.knobs.array(
        list(economies)), dtype=np.float64)  # fmt: skip
    k = table.shape[0]
    pop = scenario.isolated().model(population, k, seed, k * users_per_arm, twins=True)
    total = np.zeros(k)
    for _ in range(days or scenario.days):
        total += pop.step(table).value
    return total + pop.credit_tail()


@dataclass(frozen=True)
class StaticOptimum:
    """The best static economy found, with its value and the default economy's value."""

    economy: dict[str, float]
    value: float
    default_value: float
    evaluations: int


def _candidates(
    current: float, key: str, multipliers: Sequence[float], knobs: Knobs
) -> list[float]:
    knob = knobs.by_name[key]
    base = current if current > 0 else knob.default
    values = {min(max(base * m, knob.low), knob.search_high) for m in multipliers}
    values.add(current)
    if knob.integer:
        values = {float(round(v)) for v in values}
    return sorted(values)


def best_static_economy(
    population: Any,
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
    best_value = float(evaluate_economies([best], population, scenario,
                                          users_per_arm=users_per_arm, seed=seed)[0])  # fmt: skip
    default_value, evaluations = best_value, 1
    for multipliers in (SEARCH_MULTIPLIERS, REFINE_MULTIPLIERS):
        for _ in range(max_sweeps):
            improved = False
            for key in scenario.knobs.keys:
                values = _candidates(best[key], key, multipliers, scenario.knobs)
                trial = [{**best, key: v} for v in values]
                scores = evaluate_economies(trial, population, scenario,
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
    population: Any,
    scenario: Scenario,
    *,
    users_per_arm: int = 20_000,
    seed: int = 12345,
    days: int | None = None,
    delta_limit_pct: float | None = 50.0,
) -> np.ndarray:
    """Expected objective of open-loop economy schedules, reached under the delta clamp.

    Args:
        schedules: (K, n_phases, n_knobs); phase ``p`` is the target on days ``[p·L, (p+1)·L)``
            with ``L = ceil(days / n_phases)``.
        delta_limit_pct: each day the economy moves from the scenario's base toward the
            target by at most this % of its current value, as the guardrails allow (None: no
            clamp).

    Returns:
        (K,) objective summed over the horizon plus the tail value, on a twins population (as
        :func:`evaluate_economies`, which is the one-phase case).
    """
    horizon = days or scenario.days
    k, n_phases, _ = schedules.shape
    phase_days = -(-horizon // n_phases)
    pop = scenario.isolated().model(population, k, seed, k * users_per_arm, twins=True)
    knobs = scenario.knobs
    current = np.tile(knobs.array([scenario.base_economy()]), (k, 1))
    total = np.zeros(k)
    for day in range(horizon):
        target = schedules[:, min(day // phase_days, n_phases - 1)]
        current = (
            target if delta_limit_pct is None else _clamped(current, target, delta_limit_pct, knobs)
        )
        total += pop.step(current).value
    return total + pop.credit_tail()


def _clamped(
    current: np.ndarray, target: np.ndarray, delta_limit_pct: float, knobs: Knobs
) -> np.ndarray:
    """One day's move toward ``target`` under the delta clamp (as the guardrails apply it)."""
    limit = delta_limit_pct / 100.0
    reference = np.where(current > 0, current, knobs.array([knobs.defaults]))
    step = reference * limit
    low = np.where(current > 0, current * (1 - limit), 0.0)
    caps = [i for i, key in enumerate(knobs.keys) if key in knobs.integer]
    if caps:  # an integer knob may always move by one whole unit
        step[:, caps] = np.maximum(step[:, caps], 1.0)
        low[:, caps] = np.where(current[:, caps] > 0, current[:, caps] - step[:, caps], 0.0)
    moved = np.clip(target, low, current + step)
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
    population: Any,
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
    scenario = dataclasses.replace(scenario, days=days or scenario.days)  # type: ignore[type-var]  # plugins are dataclasses
    static = best_static_economy(population, scenario, users_per_arm=users_per_arm, seed=seed)
    knobs = scenario.knobs
    plan = np.tile(knobs.array([static.economy]), (n_phases, 1))
    best_value = float(evaluate_schedules(
        plan[None], population, scenario, users_per_arm=users_per_arm, seed=seed,
        delta_limit_pct=delta_limit_pct,
    )[0])  # fmt: skip
    static_value = best_value
    for _ in range(max_sweeps):
        improved = False
        for phase in range(n_phases):
            for i, key in enumerate(knobs.keys):
                values = _candidates(plan[phase, i], key, SCHEDULE_MULTIPLIERS, knobs)
                trials = np.repeat(plan[None], len(values), axis=0)
                trials[:, phase, i] = values
                scores = evaluate_schedules(
                    trials,
                    population,
                    scenario,
                    users_per_arm=users_per_arm,
                    seed=seed,
                    delta_limit_pct=delta_limit_pct,
                )
                j = int(np.argmax(scores))
                if scores[j] > best_value + 1e-9:
                    plan, best_value, improved = trials[j], float(scores[j]), True
        if not improved:
            break
    phases = [dict(zip(knobs.keys, map(float, row), strict=True)) for row in plan]
    return ScheduleOptimum(phases, -(-scenario.days // n_phases), best_value, static_value)


def schedule_value(
    plan: ScheduleOptimum,
    population: Any,
    scenario: Scenario,
    *,
    days: int | None = None,
    users_per_arm: int = 20_000,
    seed: int = 2024,
) -> float:
    """The plan's expected objective on a large fresh sample: the search's own score is
    optimistic (it picked the plan on that sample) and carries that sample's noise."""
    schedule = scenario.knobs.array(plan.phases)[None]
    return float(
        evaluate_schedules(
            schedule, population, scenario, users_per_arm=users_per_arm, seed=seed, days=days
        )[0]
    )


PLAN_SEARCH_USERS = 3000
"""Users per arm in the driver's search for the ground-truth plan (the value itself is then
measured on a large fresh sample by :func:`schedule_value`)."""


def _code_version(scenario: Scenario) -> str:
    """A hash of the code that decides the ground truth (the scenario plugin's package and
    this search): a change to the model or the search makes every cached plan stale."""
    package = Path(sys.modules[type(scenario).__module__].__file__ or "").parent
    sources = [p.read_bytes() for p in sorted(package.glob("*.py"))]
    sources.append(Path(__file__).read_bytes())
    return hashlib.sha256(b"".join(sources) + np.__version__.encode()).hexdigest()


def plan_value(
    population: Any, scenario: Scenario, days: int, *, cache: bool = True
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
            "population": dataclasses.asdict(population),
            "scenario": {"plugin": scenario.plugin, **dataclasses.asdict(scenario)},  # type: ignore[call-overload]
            "days": days,
            "search_users_per_arm": PLAN_SEARCH_USERS,
            "code": _code_version(scenario),
        }
    )

    def search() -> float:
        plan = best_schedule(population, scenario, days=days, users_per_arm=PLAN_SEARCH_USERS)
        return schedule_value(plan, population, scenario, days=days)

    if not cache:
        return search(), False
    value, cached = DiskCache(cache_root() / "ground_truth").get_or_compute(key, search)
    return float(value), cached
