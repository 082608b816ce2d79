"""``oracle``: steers toward the simulator's best static economy — the upper reference.

It is the only strategy allowed to read the ground truth (the population model and scenario in
``VariantInfo``); it still goes through the same guardrails, one clamped step at a time.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from agents.common import BaseAgent, toward
from arena_rl.agent import VariantInfo
from arena_rl.ground_truth import StaticOptimum, best_static_economy
from arena_rl.guardrails import ConfigUpdate
from arena_rl.metrics import Signals
from arena_rl.specs import PopulationSpec


@lru_cache(maxsize=16)
def _optimum(spec: PopulationSpec, scenario_blob: bytes, users_per_arm: int) -> StaticOptimum:
    # the scenario holds dicts (unhashable), so it is cached by its pickled bytes
    return best_static_economy(spec, pickle.loads(scenario_blob), users_per_arm=users_per_arm)


class Oracle(BaseAgent):
    """Knows the best static economy for the scenario and moves there as fast as allowed.

    Args:
        users_per_arm: Monte-Carlo size of the ground-truth search (cached per scenario).
    """

    def __init__(self, users_per_arm: int = 3000) -> None:
        self.users_per_arm = users_per_arm

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        blob = pickle.dumps(info.scenario)
        self.target_ = _optimum(info.population, blob, self.users_per_arm).economy

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        if not self.may_update(signals):
            return None
        return toward(self.target_, current_config, "step toward the best static economy")
