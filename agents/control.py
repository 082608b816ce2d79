"""``control``: never changes anything. The zero-lift reference every strategy must beat."""

from __future__ import annotations

from collections.abc import Mapping

from agents.common import BaseAgent, hyperparameters
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals


class StaticControl(BaseAgent):
    """Holds the variant at its starting economy for the whole experiment."""

    @hyperparameters  # it takes none: a stray one in config is refused, named
    def __init__(self) -> None:
        pass

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return None
