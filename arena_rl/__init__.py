"""arena_rl: an offline arena for incentive-design research.

Public entry points: :func:`parallel_env` (PettingZoo) and :func:`gym_env` (Gymnasium).
"""

import time

IMPORTED_AT = time.perf_counter()
"""When arena_rl was first imported: commands count their start-up (imports) from here."""

from arena_rl.core.guardrails import ConfigUpdate, GuardrailConfig, Guardrails, RejectionCode
from arena_rl.core.signals import METRICS, Signals
from arena_rl.envs.gym import ArenaGymEnv, gym_env
from arena_rl.envs.parallel import ArenaParallelEnv, parallel_env
from arena_rl.scenarios.gamification.economy import (
    DEFAULT_ECONOMY,
    ECONOMY_KEYS,
    EconomyError,
    resolve_economy,
)
from arena_rl.scenarios.gamification.population import Population
from arena_rl.scenarios.gamification.specs import SpecError, load_population, load_scenario

__all__ = [
    "DEFAULT_ECONOMY",
    "ECONOMY_KEYS",
    "METRICS",
    "ArenaGymEnv",
    "ArenaParallelEnv",
    "ConfigUpdate",
    "EconomyError",
    "GuardrailConfig",
    "Guardrails",
    "Population",
    "RejectionCode",
    "Signals",
    "SpecError",
    "gym_env",
    "load_population",
    "load_scenario",
    "parallel_env",
    "resolve_economy",
]
