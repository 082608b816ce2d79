"""arena_rl: an offline arena for incentive-design research.

Public entry points: :func:`parallel_env` (PettingZoo) and :func:`gym_env` (Gymnasium).
"""

import time

IMPORTED_AT = time.perf_counter()
"""When arena_rl was first imported: commands count their start-up (imports) from here."""

from arena_rl.core.guardrails import ConfigUpdate, GuardrailConfig, Guardrails, RejectionCode
from arena_rl.core.knobs import Knob, KnobError, Knobs
from arena_rl.core.scenario import Scenario
from arena_rl.core.signals import Signals
from arena_rl.envs.gym import ArenaGymEnv, gym_env
from arena_rl.envs.parallel import ArenaParallelEnv, parallel_env
from arena_rl.scenarios import SpecError, load_population, load_scenario, plugins

__all__ = [
    "ArenaGymEnv",
    "ArenaParallelEnv",
    "ConfigUpdate",
    "GuardrailConfig",
    "Guardrails",
    "Knob",
    "KnobError",
    "Knobs",
    "RejectionCode",
    "Scenario",
    "Signals",
    "SpecError",
    "gym_env",
    "load_population",
    "load_scenario",
    "parallel_env",
    "plugins",
]
