"""``random``: a random walk over the economy — the floor a learning strategy must clear."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from agents.common import CLOSE_ENOUGH, BaseAgent, toward
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals
from arena_rl.scenarios.gamification.economy import ECONOMY_KEYS, INTEGER_KEYS


def _share(low: float, high: float, bound: float) -> float:
    """The share of ``[-bound, bound]`` that ``[low, high]`` covers (a uniform draw's chance)."""
    if bound <= 0.0:
        return 1.0 if low <= 0.0 <= high else 0.0
    return max(min(high, bound) - max(low, -bound), 0.0) / (2.0 * bound)


def _log(x: float) -> float:
    return math.log(x) if x > 0.0 else -math.inf


def _rounds_to(value: float, current: float) -> tuple[float, float]:
    """The log-steps ``u`` for which ``round(current · e^u)`` is the whole number ``value``."""
    return _log((value - 0.5) / current), _log((value + 0.5) / current)


class RandomAgent(BaseAgent):
    """Moves each chosen key by a random log-step whenever the rate limit allows.

    Each of the ``keys`` gets a target ``current · e^u`` with ``u`` uniform on ``[-b, b]``,
    ``b = ln(1 + step_pct/100)``, independently; :func:`agents.common.toward` then drops the keys
    that would move by at most 0.05 and rounds the caps. So the update mixes a discrete part
    (which keys move, and the whole number each moved cap is set to) and a continuous one (the
    new value of each moved non-cap key).

    :meth:`action_probability` is the probability of the discrete part: the product over
    ``keys`` of P(it stays) for a key left out of the update, P(that whole number) for a moved
    cap, and P(it moves) for a moved non-cap key. A hold between moves is certain (1.0).
    :meth:`action_density` is the whole answer's likelihood: the same product with each moved
    non-cap key's P(it moves) replaced by the density of ``ln(new / current)``, ``1/(2b)``, so
    a target policy's density on the same scale gives the importance weight.

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
        self.probability_ = self.density_ = 1.0
        if signals.experiment_days % self.hold_days or not self.may_update(signals):
            return None
        keys = list(self.keys or ECONOMY_KEYS)
        bound = np.log1p(self.step_pct / 100.0)
        steps = np.exp(self.rng_.uniform(-bound, bound, len(keys)))
        target = {k: current_config[k] * s for k, s in zip(keys, steps, strict=True)}
        update = toward(target, current_config, f"random step of up to ±{self.step_pct:g} %")
        self.probability_, self.density_ = self._chances(update, keys, current_config)
        return update

    def action_probability(self) -> float:
        """Probability of the discrete part of the last answer (see the class docstring)."""
        return getattr(self, "probability_", 1.0)

    def action_density(self) -> float:
        """Likelihood of the last answer: :meth:`action_probability` for the discrete part
        times the density of ``ln(new / current)`` (``1/(2b)``, in place of P(it moves)) of each
        moved non-cap key. Equals :meth:`action_probability` when no non-cap key moved."""
        return getattr(self, "density_", 1.0)

    def _chances(
        self, update: ConfigUpdate | None, keys: Sequence[str], current: Mapping[str, float]
    ) -> tuple[float, float]:
        """(P(discrete part), likelihood) of ``update``, key by key (the steps are independent)."""
        bound = abs(float(np.log1p(self.step_pct / 100.0)))
        moved = {} if update is None else update.overrides
        probability = density = 1.0
        for key in keys:
            now = current[key]
            if key in moved and key in INTEGER_KEYS:  # a whole number: a discrete outcome
                chance = _share(*_rounds_to(moved[key], now), bound)
                probability, density = probability * chance, density * chance
                continue
            stays = self._stays(key, now, bound)
            if key in moved:
                probability *= 1.0 - stays
                density *= 1.0 / (2.0 * bound) if bound > 0.0 else 1.0
            else:
                probability, density = probability * stays, density * stays
        return probability, density

    @staticmethod
    def _stays(key: str, current: float, bound: float) -> float:
        """P(``toward`` leaves ``key`` out): its rounded target within 0.05 of ``current``."""
        if current <= 0.0:
            return 1.0  # 0 times any step is 0
        if key in INTEGER_KEYS:
            whole = round(current)
            if abs(whole - current) > CLOSE_ENOUGH:
                return 0.0  # no whole number is close enough: it always moves
            return _share(*_rounds_to(whole, current), bound)
        return _share(_log(1.0 - CLOSE_ENOUGH / current), _log(1.0 + CLOSE_ENOUGH / current), bound)
