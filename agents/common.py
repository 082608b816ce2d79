"""Helpers every strategy shares: confidence gates, the reward estimate, bounded moves.

Everything here works on any scenario through its knobs (``info.knobs``) and its objective
estimate; ``BaseAgent`` is re-exported so strategies import their plumbing from one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from arena_rl.agent import BaseAgent, VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.knobs import Knobs
from arena_rl.core.signals import Signals

__all__ = [
    "BaseAgent",
    "close_enough",
    "confident",
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


def reward(signals: Signals, info: VariantInfo) -> float | None:
    """Today's scenario objective estimated from signals; None until the metrics the
    estimate reads (``scenario.objective_metrics``) are confident."""
    if not confident(signals, info.scenario.objective_metrics):
        return None
    return info.estimate_objective(signals)


CLOSE_ENOUGH = 0.05
"""A value closer than this to a target counts as there (a ±x % clamp halves toward 0 for
ever); a knob with a narrow range uses a thousandth of its range instead."""


def close_enough(knobs: Knobs, key: str) -> float:
    """How near a target a knob's value counts as there: :data:`CLOSE_ENOUGH`, or a thousandth
    of the knob's range when that is smaller."""
    knob = knobs.by_name[key]
    return min(CLOSE_ENOUGH, 1e-3 * (knob.high - knob.low))


def toward(
    target: Mapping[str, float], current: Mapping[str, float], reasoning: str, knobs: Knobs
) -> ConfigUpdate | None:
    """Request the knobs where ``target`` differs from ``current`` (clipped into bounds,
    integers rounded).

    The delta clamp turns a far target into a bounded step, so asking for the target outright
    is the fastest legal way there. None when already there.
    """
    wanted = knobs.clipped({k: target[k] for k in knobs.keys if k in target})
    changes = {k: v for k, v in wanted.items() if abs(v - current[k]) > close_enough(knobs, k)}
    return ConfigUpdate(changes, reasoning) if changes else None


def same_action(a: ConfigUpdate | None, b: ConfigUpdate | None) -> bool:
    """Whether two answers are the same action: both hold, or request the same overrides (the
    reasoning is commentary, not part of the action). What action probabilities are of."""
    if a is None or b is None:
        return a is b
    return dict(a.overrides) == dict(b.overrides)


def scaled(
    base: Mapping[str, float], multipliers: Mapping[str, float], knobs: Knobs
) -> dict[str, float]:
    """``base`` with some knobs multiplied (clipped into bounds, integers rounded): how arms
    are written in config."""
    return knobs.clipped({k: base[k] * multipliers.get(k, 1.0) for k in knobs.keys})


def nudged(
    current: Mapping[str, float],
    keys: Sequence[str],
    factor: float,
    knobs: Knobs,
    min_cap: float = 1.0,
) -> dict[str, float]:
    """``current`` with ``keys`` multiplied by ``factor``.

    An integer knob moves by at least one whole unit (rounding would otherwise pin a small
    one, e.g. 2 × 0.88 → 2) and never below ``min_cap`` when cut.
    """
    target = dict(current)
    for key in keys:
        value = current[key] * factor
        if key in knobs.integer:
            step = round(value) - current[key]
            if step == 0 and factor != 1.0:
                step = 1.0 if factor > 1.0 else -1.0
            value = current[key] + step
            if factor < 1.0:
                value = max(value, min(min_cap, current[key]))
        target[key] = max(value, 0.0)
    return target
