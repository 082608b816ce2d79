"""``oracle``: follows the simulator's ground-truth plan — the upper reference.

It is the only strategy allowed to read the ground truth (the population model and scenario in
``VariantInfo``); it still goes through the same guardrails, one clamped step at a time. With
``plan: schedule`` (default) it follows the best open-loop schedule of ``n_phases`` economies,
found under the same delta clamp; with ``plan: static`` it steers to the best static economy.
A schedule can beat every static economy when users adapt (gamification's judge XP against a
reference point they adapt to), so the order in which an economy unfolds matters. The search is
the scenario-generic one (:mod:`arena_rl.core.ground_truth`), so the oracle plays any scenario.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

import numpy as np

from agents.common import BaseAgent, Count, hyperparameters, toward
from arena_rl.agent import VariantInfo
from arena_rl.core.ground_truth import ScheduleOptimum, best_schedule
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals


@lru_cache(maxsize=16)
def _plan(
    population_blob: bytes,
    scenario_blob: bytes,
    days: int,
    n_phases: int,
    delta_limit_pct: float,
    users_per_arm: int,
) -> ScheduleOptimum:
    # population and scenario may hold dicts (unhashable): cached by their pickled bytes
    return best_schedule(
        pickle.loads(population_blob),
        pickle.loads(scenario_blob),
        n_phases=n_phases,
        days=days,
        delta_limit_pct=delta_limit_pct,
        users_per_arm=users_per_arm,
    )


class Oracle(BaseAgent):
    """Knows the best plan for the scenario and follows it as fast as the guardrails allow.

    Args:
        plan: "schedule" (best open-loop schedule) or "static" (best static economy).
        n_phases: phases of the schedule (equal lengths over the experiment).
        users_per_arm: Monte-Carlo size of the ground-truth search (cached per scenario).
    """

    @hyperparameters
    def __init__(
        self,
        plan: Literal["schedule", "static"] = "schedule",
        n_phases: Count = 4,
        users_per_arm: Count = 3000,
    ) -> None:
        self.plan = plan
        self.n_phases = n_phases
        self.users_per_arm = users_per_arm

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        phases = self.n_phases if self.plan == "schedule" else 1
        population, scenario = pickle.dumps(info.population), pickle.dumps(info.scenario)
        self.plan_ = _plan(population, scenario, info.days, phases, info.delta_limit_pct,
                           self.users_per_arm)  # fmt: skip

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        if not self.may_update(signals):
            return None
        target = self.plan_.economy_on(signals.experiment_days)
        why = f"follow the ground-truth {self.plan} plan"
        return toward(target, current_config, why, self.info_.knobs)
