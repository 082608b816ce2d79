"""Any :class:`~arena_rl.agent.Agent` as a policy of the PettingZoo or Gymnasium environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from arena_rl.agent import Agent, VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.envs.parallel import ObservationLayout


class AgentPolicy:
    """Lets any :class:`Agent` drive the PettingZoo or Gymnasium environment directly.

    Call it with an observation vector to get the action (a ConfigUpdate or None, which both
    environments accept); pass each step's info to :meth:`observe` so the agent hears the
    guardrails' answers. Usable as a fixed opponent of :func:`arena_rl.gym_env`.
    """

    def __init__(self, agent: Agent, info: VariantInfo, rng: np.random.Generator) -> None:
        self.agent = agent
        self.layout = ObservationLayout.of(info.scenario)
        agent.reset(info, rng)

    def __call__(self, observation: np.ndarray) -> ConfigUpdate | None:
        signals, config, _ = self.layout.decode(observation)
        return self.agent.decide(signals, config)

    def observe(self, info: Mapping[str, Any]) -> None:
        """Forward the step's guardrail result (``info["guardrail"]``) to the agent."""
        result = info.get("guardrail")
        if result is not None:
            self.agent.on_result(result)
