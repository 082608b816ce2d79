"""``random``: a random walk over the economy — the floor a learning strategy must clear."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from agents.common import BaseAgent, Count, Positive, close_enough, hyperparameters, toward
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.knobs import Knob
from arena_rl.core.signals import Signals


def _share(low: float, high: float, bound: float) -> float:
    """The share of ``[-bound, bound]`` that ``[low, high]`` covers (a uniform draw's chance)."""
    if bound <= 0.0:
        return 1.0 if low <= 0.0 <= high else 0.0
    return max(min(high, bound) - max(low, -bound), 0.0) / (2.0 * bound)


def _log1p(x: float) -> float:
    return math.log1p(x) if x > -1.0 else -math.inf


def _steps_to(current: float, below: float, above: float, knob: Knob) -> tuple[float, float]:
    """The log-steps ``u`` for which ``clip(current · e^u)`` into the knob's bounds lies in
    ``[current + below, current + above]`` (``current > 0``); an end at or past a bound takes
    every step beyond it (the clip puts them all on the bound)."""
    lower = -math.inf if current + below <= knob.low else _log1p(below / current)
    upper = math.inf if current + above >= knob.high else _log1p(above / current)
    return lower, upper


class RandomAgent(BaseAgent):
    """Moves each chosen knob by a random log-step whenever the rate limit allows.

    Each of the ``keys`` gets a target ``current · e^u`` with ``u`` uniform on ``[-b, b]``,
    ``b = ln(1 + step_pct/100)``, independently; :func:`agents.common.toward` then clips it into
    the knob's bounds, rounds integer knobs, and drops the knobs that would move by at most
    :func:`agents.common.close_enough`. So the update mixes a discrete part (which knobs move,
    the whole number each moved integer knob is set to, and whether a knob was stopped at a
    bound) and a continuous one (the new value of each other moved knob).

    :meth:`action_probability` is the probability of the discrete part: the product over
    ``keys`` of P(it stays) for a knob left out of the update, P(that whole number) for a moved
    integer knob, P(the steps past the bound) for a knob moved onto a bound it was clipped to,
    and P(it moves) for any other moved knob. A hold between moves is certain (1.0).
    :meth:`action_density` is the whole answer's likelihood: the same product with each
    continuous knob's P(it moves) replaced by the density of ``ln(new / current)``,
    ``1/(2b)``, so a target policy's density on the same scale gives the importance weight.

    Args:
        step_pct: largest move per update, in % of the current value (a log-uniform step).
        keys: which knobs it touches (default: every knob of the scenario), checked at
            ``reset``.
        hold_days: days between moves.
    """

    @hyperparameters
    def __init__(
        self, step_pct: Positive = 20.0, keys: Sequence[str] | None = None, hold_days: Count = 1
    ) -> None:
        self.step_pct = step_pct
        self.keys = keys
        self.hold_days = hold_days

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        knobs = info.knobs
        unknown = [k for k in self.keys or () if k not in knobs.by_name]
        if unknown:
            raise ValueError(
                f"keys: unknown knob(s) {', '.join(map(repr, unknown))}; this scenario's knobs "
                f"are {', '.join(knobs.keys)}"
            )
        self.keys_ = list(self.keys or knobs.keys)

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        self.probability_ = self.density_ = 1.0
        if signals.experiment_days % self.hold_days or not self.may_update(signals):
            return None
        keys = self.keys_
        bound = np.log1p(self.step_pct / 100.0)
        steps = np.exp(self.rng_.uniform(-bound, bound, len(keys)))
        target = {k: current_config[k] * s for k, s in zip(keys, steps, strict=True)}
        why = f"random step of up to ±{self.step_pct:g} %"
        update = toward(target, current_config, why, self.info_.knobs)
        self.probability_, self.density_ = self._chances(update, keys, current_config)
        return update

    def action_probability(self) -> float:
        """Probability of the discrete part of the last answer (see the class docstring)."""
        return getattr(self, "probability_", 1.0)

    def action_density(self) -> float:
        """Likelihood of the last answer: :meth:`action_probability` for the discrete part
        times the density of ``ln(new / current)`` (``1/(2b)``, in place of P(it moves)) of each
        continuously moved knob. Equals :meth:`action_probability` when none moved so."""
        return getattr(self, "density_", 1.0)

    def _chances(
        self, update: ConfigUpdate | None, keys: Sequence[str], current: Mapping[str, float]
    ) -> tuple[float, float]:
        """(P(discrete part), likelihood) of ``update``, knob by knob (the steps are
        independent)."""
        bound = abs(float(np.log1p(self.step_pct / 100.0)))
        knobs = self.info_.knobs
        moved = {} if update is None else update.overrides
        probability = density = 1.0
        for key in keys:
            knob, now = knobs.by_name[key], current[key]
            if key not in moved:
                chance = self._stays(knob, now, bound)
            elif key in knobs.integer:  # a whole number: a discrete outcome
                value = moved[key]
                chance = _share(*_steps_to(now, value - 0.5 - now, value + 0.5 - now, knob), bound)
            else:
                at_low, at_high = self._atoms(knob, now, bound)
                if moved[key] == knob.high:  # clipped onto a bound: an atom
                    chance = at_high
                elif moved[key] == knob.low:
                    chance = at_low
                else:  # a continuous value: P(it moves off the bounds), or its density
                    probability *= 1.0 - self._stays(knob, now, bound) - at_low - at_high
                    density *= 1.0 / (2.0 * bound) if bound > 0.0 else 1.0
                    continue
            probability, density = probability * chance, density * chance
        return probability, density

    def _stays(self, knob: Knob, current: float, bound: float) -> float:
        """P(``toward`` leaves the knob out): its clipped, rounded target within
        :func:`agents.common.close_enough` of ``current``."""
        if current <= 0.0:
            return 1.0  # 0 times any step is 0
        near = close_enough(self.info_.knobs, knob.name)
        if knob.integer:
            whole = float(round(current))
            if abs(whole - current) > near:
                return 0.0  # no whole number is close enough: it always moves
            return _share(
                *_steps_to(current, whole - 0.5 - current, whole + 0.5 - current, knob), bound
            )
        return _share(*_steps_to(current, -near, near, knob), bound)

    def _atoms(self, knob: Knob, current: float, bound: float) -> tuple[float, float]:
        """P(a non-integer knob is moved onto its low bound), P(... onto its high bound) by the
        clip: the steps past a bound that is farther than :func:`agents.common.close_enough`
        (a nearer bound is part of staying)."""
        if current <= 0.0:
            return 0.0, 0.0
        near = close_enough(self.info_.knobs, knob.name)
        at_low = at_high = 0.0
        if knob.low < current - near:
            at_low = _share(-math.inf, _log1p((knob.low - current) / current), bound)
        if knob.high > current + near:
            at_high = _share(_log1p((knob.high - current) / current), math.inf, bound)
        return at_low, at_high
