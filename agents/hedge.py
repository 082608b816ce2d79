"""``hedge``: exponential weights (Hedge, as in the SDK's 10) over simple sub-strategies.

At each decision the ensemble samples one sub-strategy with probability ∝ its weight and lets
it move the economy. ``window_days`` later the choice is scored: the mean reward estimate of
the days after it minus that of the days up to it, centred on the mean of all such changes
(the objective drifts down as users churn, whoever is in charge), times ``reward_gain``,
clipped to [-1, 1]. The chosen one's weight is multiplied by ``exp(eta · score)`` and the
weights are renormalised to sum to 1. Only the chosen sub-strategy learns (bandit feedback: a
road not taken has no reward estimate).

The sub-strategies (SDK 10's reactive / conservative / bold, recast for a cost-aware objective)
each propose a target economy from today's signals, the history and the current economy. They
move the scenario's *levers* (``scenario.levers()``: named groups of knobs), never a knob named
here, so the ensemble plays any scenario:

- ``lean``: cuts the ``cost`` lever (gamification: XP that pays for nothing the objective
  values, and the farmed caps).
- ``value``: raises the ``value`` lever (gamification: report XP and the scan cap), while a
  raise is affordable (:func:`affordable`).
- ``reactive``: answers the signals like the SDK's rules, while a raise is affordable: the
  harm metric falling → raise the ``retention`` lever; the first objective metric falling
  (gamification: scans per active user) → raise the ``activity`` lever; otherwise hold.
- ``hold``: changes nothing (lets the ensemble learn to stop when every move hurts).
- ``raise:<lever>`` / ``cut:<lever>``: move one lever of the scenario either way, always.
- ``raise`` / ``cut``: move every knob either way, always.

Which run (``experts: null``): ``lean``, ``value`` and ``reactive`` (:data:`DEFAULT_EXPERTS`)
on a scenario whose levers they need (gamification's); else ``raise:<lever>`` and
``cut:<lever>`` for every lever of the scenario, plus ``hold``; on a scenario without levers,
``raise``, ``cut`` and ``hold``.

"Affordable" was gamification's XP cost share of the value it brings (below 30 %); no other
scenario splits its objective into a cost and a value, so it is now the objective estimate's
trend: a raise is affordable while the estimate is not falling (the mean of its last
:data:`TREND_DAYS` confident days is at least that of the :data:`TREND_DAYS` before, less
:data:`AFFORDABLE_SLACK` of its size), and not before there are that many days to compare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated

import numpy as np
from pydantic import Field

from agents.common import (
    BaseAgent,
    Count,
    NonNegative,
    Positive,
    confident,
    hyperparameters,
    nudged,
    reward,
    same_action,
    toward,
)
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.scenario import Scenario
from arena_rl.core.signals import Signals


@dataclass(frozen=True)
class View:
    """What a sub-strategy sees when it proposes: the scenario (its knobs, levers and
    metrics), and the confident days so far, oldest first (today's last)."""

    scenario: Scenario
    history: Sequence[Signals]
    rewards: Sequence[float]
    """The objective estimate of each day of ``history``."""

    @property
    def signals(self) -> Signals:
        """Today's signals."""
        return self.history[-1]

    def lever(self, name: str) -> tuple[str, ...]:
        """The knobs of one of the scenario's levers (none if it has no such lever)."""
        return tuple(self.scenario.levers().get(name, ()))


Expert = Callable[[View, Mapping[str, float], float], dict[str, float] | None]
"""(view, current economy, step as a fraction) -> target economy, or None to hold."""

TREND_DAYS = 3
"""Days over which a metric, or the objective estimate, is judged to be falling."""
AFFORDABLE_SLACK = 0.02
"""How far (relative) the objective estimate's recent mean may sit below the one before and a
raise still count as affordable: about the drift of three days of churn at the default
gamification economy, so that drift alone does not close the gate."""
MIN_WHOLE = 1.0
"""An integer knob is never cut below this by a step (0 switches something off: a cap, a
trial, an intro offer; that is a decision, not a nudge)."""


def affordable(view: View) -> bool:
    """Whether a raise is affordable: the objective estimate is not falling (see the module
    docstring); False until there are ``2 × TREND_DAYS`` confident days to compare."""
    if len(view.rewards) < 2 * TREND_DAYS:
        return False
    recent = float(np.mean(view.rewards[-TREND_DAYS:]))
    before = float(np.mean(view.rewards[-2 * TREND_DAYS : -TREND_DAYS]))
    return recent >= before - AFFORDABLE_SLACK * abs(before)


def _move(
    view: View, current: Mapping[str, float], keys: Sequence[str], factor: float
) -> dict[str, float] | None:
    """``current`` with ``keys`` multiplied by ``factor`` (None when there are no keys)."""
    if not keys:
        return None
    return nudged(current, keys, factor, view.scenario.knobs, MIN_WHOLE)


def lean(view: View, current: Mapping[str, float], step: float) -> dict[str, float] | None:
    """Cut the cost lever: what pays for nothing the objective values."""
    return _move(view, current, view.lever("cost"), 1.0 - step)


def value(view: View, current: Mapping[str, float], step: float) -> dict[str, float] | None:
    """Pay more for the value lever, while a raise is affordable."""
    if not affordable(view):
        return None
    return _move(view, current, view.lever("value"), 1.0 + step)


def _falling(history: Sequence[Signals], metric: str, tolerance: float) -> bool:
    """Whether today's ``metric`` is more than ``tolerance`` (relative) below its recent best."""
    recent = [s.metrics[metric].value for s in history[-TREND_DAYS - 1 :]]
    if len(recent) <= TREND_DAYS or not confident(history[-1], [metric]):
        return False
    best = max(recent[:-1])
    return best > 0 and recent[-1] < best * (1.0 - tolerance)


def reactive(view: View, current: Mapping[str, float], step: float) -> dict[str, float] | None:
    """The SDK's threshold reactions, on trends instead of fixed levels."""
    if not affordable(view):
        return None
    scenario = view.scenario
    retention, activity = view.lever("retention"), view.lever("activity")
    if retention and _falling(view.history, scenario.harm_metric, 0.01):
        return _move(view, current, retention, 1.0 + step)
    for metric in scenario.objective_metrics[:1]:
        if activity and _falling(view.history, metric, 0.05):
            return _move(view, current, activity, 1.0 + step)
    return None


def hold(view: View, current: Mapping[str, float], step: float) -> dict[str, float] | None:
    """Change nothing."""
    return None


def raise_all(view: View, current: Mapping[str, float], step: float) -> dict[str, float] | None:
    """Raise every knob."""
    return _move(view, current, view.scenario.knobs.keys, 1.0 + step)


def cut_all(view: View, current: Mapping[str, float], step: float) -> dict[str, float] | None:
    """Cut every knob."""
    return _move(view, current, view.scenario.knobs.keys, 1.0 - step)


EXPERTS: Mapping[str, Expert] = MappingProxyType(
    {
        "lean": lean,
        "value": value,
        "reactive": reactive,
        "hold": hold,
        "raise": raise_all,
        "cut": cut_all,
    }
)
"""The named sub-strategies a config may name (besides ``raise:<lever>`` / ``cut:<lever>``)."""

NEEDS: Mapping[str, tuple[tuple[str, ...], ...]] = MappingProxyType(
    {"lean": (("cost",),), "value": (("value",),), "reactive": (("retention", "activity"),)}
)
"""Sub-strategy -> the levers it needs: at least one of each inner tuple."""

DEFAULT_EXPERTS: Mapping[str, float] = MappingProxyType(
    {"lean": 25.0, "value": 25.0, "reactive": 10.0}
)
"""Sub-strategy -> step (%) when the config names none and the scenario has their levers."""
GENERIC_STEP_PCT = 10.0
"""Step (%) of the lever (or all-knob) sub-strategies when the config names none."""


@dataclass(frozen=True)
class LeverExpert:
    """``raise:<lever>`` or ``cut:<lever>``: move one lever of the scenario, always (a class,
    not a closure, so an agent pickles after ``reset`` too)."""

    direction: str
    lever: str

    @property
    def why(self) -> str:
        """What it does, for the update's reasoning."""
        return f"{self.direction} the {self.lever} lever"

    def __call__(
        self, view: View, current: Mapping[str, float], step: float
    ) -> dict[str, float] | None:
        sign = 1.0 if self.direction == "raise" else -1.0
        return _move(view, current, view.lever(self.lever), 1.0 + sign * step)


def default_experts(scenario: Scenario) -> dict[str, float]:
    """The sub-strategies and steps ``experts: null`` runs on this scenario (module docstring)."""
    levers = scenario.levers()
    if all(_missing(name, levers) is None for name in DEFAULT_EXPERTS):
        return dict(DEFAULT_EXPERTS)
    if not levers:
        return {"raise": GENERIC_STEP_PCT, "cut": GENERIC_STEP_PCT, "hold": 0.0}
    chosen = {f"{d}:{lever}": GENERIC_STEP_PCT for lever in levers for d in ("raise", "cut")}
    return {**chosen, "hold": 0.0}


def _missing(name: str, levers: Mapping[str, Sequence[str]]) -> str | None:
    """Why the scenario cannot run sub-strategy ``name`` (None: it can)."""
    for options in NEEDS.get(name, ()):
        if not any(levers.get(lever) for lever in options):
            return f"needs the scenario's {' or '.join(map(repr, options))} lever"
    return None


def resolve_experts(names: Sequence[str], scenario: Scenario) -> list[Expert]:
    """The sub-strategy of each name, for this scenario.

    Raises:
        ValueError: naming a sub-strategy that does not exist, or whose levers the scenario
            lacks, with the names it could run.
    """
    levers = scenario.levers()
    known = [*EXPERTS, *(f"{d}:{lever}" for lever in levers for d in ("raise", "cut"))]
    out = []
    for name in names:
        direction, _, lever = name.partition(":")
        if name in EXPERTS:
            why = _missing(name, levers)
            if why is not None:
                raise ValueError(
                    f"sub-strategy {name!r} {why}; scenario {scenario.name!r} has levers "
                    f"{', '.join(levers) or 'none'}; known: {', '.join(known)}"
                )
            out.append(EXPERTS[name])
        elif direction in ("raise", "cut") and lever in levers:
            out.append(LeverExpert(direction, lever))
        else:
            raise ValueError(f"unknown sub-strategies [{name!r}]; known: {', '.join(known)}")
    return out


class HedgeEnsemble(BaseAgent):
    """Hedge over sub-strategies: one sampled per decision, scored by the later reward change.

    Args:
        experts: sub-strategy name (a key of ``EXPERTS``, or ``raise:<lever>`` /
            ``cut:<lever>`` for a lever of the scenario) -> its step, % of the current value;
            None: :func:`default_experts` for the scenario played.
        eta: learning rate of the exponential weights.
        window_days: w; a choice made on day t is scored by the mean reward estimate of the w
            days after it minus that of the w days up to it. Averaging tames daily noise, and
            the delay lets a move show its worth: a cut first hurts (loss aversion), then pays.
        reward_gain: multiplies the (centred) reward change before clipping to [-1, 1].

    :meth:`action_probability` is the summed weight of the sub-strategies that would have given
    the same answer as the one drawn: the drawn one's weight when its move is its own, more
    when several would hold (``hold``, and ``value``/``reactive`` while they see nothing to
    do). It is conditional on the weights, which depend on which sub-strategy earlier draws
    picked, even where two would have held alike. 1.0 when nothing is drawn (no confident
    reward yet, or the rate limit).
    """

    @hyperparameters
    def __init__(
        self,
        experts: Annotated[Mapping[str, NonNegative], Field(min_length=1)] | None = None,
        eta: NonNegative = 0.3,
        window_days: Count = 3,
        reward_gain: Positive = 10.0,
    ) -> None:
        self.experts = experts
        self.eta = eta
        self.window_days = window_days
        self.reward_gain = reward_gain

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        chosen = default_experts(info.scenario) if self.experts is None else self.experts
        self.names_ = list(chosen)
        self.experts_ = resolve_experts(self.names_, info.scenario)
        self.steps_ = np.array([chosen[n] / 100.0 for n in self.names_])
        self.weights_ = np.full(len(self.names_), 1.0 / len(self.names_))
        self.history_: list[Signals] = []
        self.rewards_: list[float] = []
        self.pending_: list[tuple[int, int, float]] = []
        """Choices awaiting their score: (expert, index of the day's reward, mean before)."""
        self.changes_: list[float] = []
        self.probability_ = 1.0

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        self.probability_ = 1.0
        estimate = reward(signals, self.info_)
        if estimate is None or not np.isfinite(estimate):
            return None  # nothing is changed blind
        self.history_.append(signals)
        self.rewards_.append(estimate)
        self._score_due()
        if not self.may_update(signals):
            return None
        chosen = int(self.rng_.choice(len(self.names_), p=self.weights_))
        window = max(self.window_days, 1)
        if len(self.rewards_) >= window:
            before = float(np.mean(self.rewards_[-window:]))
            self.pending_.append((chosen, len(self.rewards_) - 1, before))
        name, step = self.names_[chosen], float(self.steps_[chosen])
        target = self._proposal(chosen, current_config)
        update: ConfigUpdate | None = None
        if target is not None:
            weights = ", ".join(
                f"{n} {w:.2f}" for n, w in zip(self.names_, self.weights_, strict=True)
            )
            expert = self.experts_[chosen]
            why = expert.why if isinstance(expert, LeverExpert) else expert.__doc__ or name
            why = why.strip().rstrip(".").lower()
            update = toward(
                target,
                current_config,
                f"hedge follows {name}, step {step:.0%}: {why} ({weights})",
                self.info_.knobs,
            )
        self.probability_ = self._chance_of(update, current_config)
        return update

    def action_probability(self) -> float:
        """Summed weight of the sub-strategies giving the last answer (see the class docstring)."""
        return self.probability_

    def _proposal(self, expert: int, current: Mapping[str, float]) -> dict[str, float] | None:
        """The target economy sub-strategy ``expert`` proposes now (None: hold)."""
        view = View(self.info_.scenario, self.history_, self.rewards_)
        return self.experts_[expert](view, current, float(self.steps_[expert]))

    def _chance_of(self, update: ConfigUpdate | None, current: Mapping[str, float]) -> float:
        """Chance that the draw picks a sub-strategy answering ``update`` (the sub-strategies
        are pure functions of the history and the economy, so each can be asked)."""
        weights = self.weights_ / self.weights_.sum()  # what rng.choice draws with
        chance = 0.0
        for expert, weight in enumerate(weights):
            target = self._proposal(expert, current)
            answer = None if target is None else toward(target, current, "", self.info_.knobs)
            if same_action(answer, update):
                chance += float(weight)
        return chance

    def _score_due(self) -> None:
        """Score every choice whose window has passed; multiply its weight; renormalise."""
        window = max(self.window_days, 1)
        now = len(self.rewards_) - 1
        while self.pending_ and self.pending_[0][1] + window <= now:
            expert, index, before = self.pending_.pop(0)
            change = float(np.mean(self.rewards_[index + 1 : index + window + 1])) - before
            # centred: the objective drifts down as users churn, whichever expert is in charge
            drift = float(np.mean(self.changes_)) if self.changes_ else 0.0
            self.changes_.append(change)
            score = float(np.clip(self.reward_gain * (change - drift), -1.0, 1.0))
            self.weights_[expert] *= np.exp(self.eta * score)
            self.weights_ /= self.weights_.sum()
