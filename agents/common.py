"""Helpers every strategy shares: confidence gates, the reward estimate, bounded moves.

``BaseAgent`` is re-exported here so strategies import their plumbing from one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from arena_rl.agent import BaseAgent, VariantInfo, objective_estimate
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals
from arena_rl.scenarios.gamification.economy import ECONOMY_KEYS, INTEGER_KEYS, round_caps
from arena_rl.scenarios.gamification.specs import Objective

__all__ = [
    "BaseAgent",
    "confident",
    "cost_share",
    "nudged",
    "reward",
    "same_action",
    "scaled",
    "toward",
]

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


def same_action(a: ConfigUpdate | None, b: ConfigUpdate | None) -> bool:
    """Whether two answers are the same action: both hold, or request the same overrides (the
    reasoning is commentary, not part of the action). What action probabilities are of."""
    if a is None or b is None:
        return a is b
    return dict(a.overrides) == dict(b.overrides)


def scaled(base: Mapping[str, float], multipliers: Mapping[str, float]) -> dict[str, float]:
    """``base`` with some keys multiplied (caps rounded): how arms are written in config."""
    return round_caps({k: base[k] * multipliers.get(k, 1.0) for k in ECONOMY_KEYS})


def cost_share(signals: Signals, objective: Objective, minimum: str = "medium") -> float | None:
    """Today's XP cost as a share of the gross value it is estimated to bring.

    Gross value = the reward estimate plus the XP cost; None until the reward metrics
    (XP_VELOCITY among them) have ``minimum`` confidence, or when nothing is produced.
    """
    net = objective_estimate(signals, objective)
    if net is None or not confident(signals, REWARD_METRICS, minimum):
        return None
    xp = signals.metrics["XP_VELOCITY"].value
    cost = objective.xp_cost * xp + objective.overspend_cost * max(xp - objective.xp_budget, 0.0)
    gross = net + cost
    return cost / gross if gross > 0.0 and np.isfinite(gross) else None


def nudged(
    current: Mapping[str, float], keys: Sequence[str], factor: float, min_cap: float = 1.0
) -> dict[str, float]:
    """``current`` with ``keys`` multiplied by ``factor``.

    A cap moves by at least one whole unit (rounding would otherwise pin a small cap, e.g.
    2 × 0.88 → 2) and never below ``min_cap`` when cut.
    """
    target = dict(current)
    for key in keys:
        value = current[key] * factor
        if key in INTEGER_KEYS:
            step = round(value) - current[key]
            if step == 0 and factor != 1.0:
                step = 1.0 if factor > 1.0 else -1.0
            value = current[key] + step
            if factor < 1.0:
                value = max(value, min(min_cap, current[key]))
        target[key] = max(value, 0.0)
    return target
