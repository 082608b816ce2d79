"""``random``: a random walk over the economy — the floor a learning strategy must clear."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from agents.common import BaseAgent, toward
from arena_rl.economy import ECONOMY_KEYS
from arena_rl.guardrails import ConfigUpdate
from arena_rl.metrics import Signals


class RandomAgent(BaseAgent):
    """Moves each chosen key by a random log-step whenever the rate limit allows.

    Args:
        step_pct: largest move per update, in % of the current value (a log-uniform step).
        keys: which economy keys it touches (default: all ten).
        hold_days: days between moves.
    """

    def __init__(
        self, step_pct: float = 20.0, keys: Sequence[str] | None = None, hold_days: int = 1
    ) -> None:
        self.step_pct = step_pct
        self.keys = keys
        self.hold_days = hold_days

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        if signals.experiment_days % self.hold_days or not self.may_update(signals):
            return None
        keys = list(self.keys or ECONOMY_KEYS)
        bound = np.log1p(self.step_pct / 100.0)
        steps = np.exp(self.rng_.uniform(-bound, bound, len(keys)))
        target = {k: current_config[k] * s for k, s in zip(keys, steps, strict=True)}
        return toward(target, current_config, f"random step of up to ±{self.step_pct:g} %")
