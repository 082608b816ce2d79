"""Helpers every strategy shares: confidence gates, the reward estimate, bounded moves.

``BaseAgent`` is re-exported here so strategies import their plumbing from one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from arena_rl.agent import BaseAgent, VariantInfo, objective_estimate
from arena_rl.economy import ECONOMY_KEYS, round_caps
from arena_rl.guardrails import ConfigUpdate
from arena_rl.metrics import Signals

__all__ = ["BaseAgent", "confident", "reward", "scaled", "toward"]

LEVELS = {"low": 0, "medium": 1, "high": 2}


def confident(signals: Signals, metrics: Iterable[str], minimum: str = "medium") -> bool:
    """Whether every named metric has at least ``minimum`` confidence (a careful live agent
    acts on nothing less)."""
    need = LEVELS[minimum]
    return all(LEVELS[signals.metrics[m].confidence] >= need for m in metrics)


REWARD_METRICS = ("SCAN_FREQUENCY", "XP_VELOCITY", "FEEDBACK_QUALITY")
"""The metrics :func:`reward` reads."""


def reward(signals: Signals, info: VariantInfo) -> float | None:
    """Today's scenario objective estimated from signals; None until the data is confident."""
    if not confident(signals, REWARD_METRICS):
        return None
    return objective_estimate(signals, info.objective)


CLOSE_ENOUGH = 0.05
"""XP closer than this to a target counts as there (a ±x % clamp halves toward 0 for ever)."""


def toward(
    target: Mapping[str, float], current: Mapping[str, float], reasoning: str
) -> ConfigUpdate | None:
    """Request the keys where ``target`` differs from ``current`` (caps rounded).

    The delta clamp turns a far target into a bounded step, so asking for the target outright
    is the fastest legal way there. None when already there.
    """
    wanted = round_caps({k: target[k] for k in ECONOMY_KEYS if k in target})
    changes = {k: v for k, v in wanted.items() if abs(v - current[k]) > CLOSE_ENOUGH}
    return ConfigUpdate(changes, reasoning) if changes else None


def scaled(base: Mapping[str, float], multipliers: Mapping[str, float]) -> dict[str, float]:
    """``base`` with some keys multiplied (caps rounded): how arms are written in config."""
    return round_caps({k: base[k] * multipliers.get(k, 1.0) for k in ECONOMY_KEYS})
