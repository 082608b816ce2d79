"""arena_rl: an offline arena for incentive-design research.

Public entry points: :func:`parallel_env` (PettingZoo) and :func:`gym_env` (Gymnasium).
"""

from arena_rl.economy import DEFAULT_ECONOMY, ECONOMY_KEYS, EconomyError, resolve_economy
from arena_rl.env import ArenaParallelEnv, parallel_env
from arena_rl.guardrails import ConfigUpdate, GuardrailConfig, Guardrails, RejectionCode
from arena_rl.gym_env import ArenaGymEnv, gym_env
from arena_rl.metrics import METRICS, Signals
from arena_rl.population import Population
from arena_rl.specs import SpecError, load_population, load_scenario

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
