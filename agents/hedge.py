"""``hedge``: exponential weights (Hedge, as in the SDK's 10) over simple sub-strategies.

At each decision the ensemble samples one sub-strategy with probability ∝ its weight and lets
it move the economy. ``window_days`` later the choice is scored: the mean reward estimate of
the days after it minus that of the days up to it, centred on the mean of all such changes
(the objective drifts down as users churn, whoever is in charge), times ``reward_gain``,
clipped to [-1, 1]. The chosen one's weight is multiplied by ``exp(eta · score)`` and the
weights are renormalised to sum to 1. Only the chosen sub-strategy learns (bandit feedback: a
road not taken has no reward estimate).

The sub-strategies (SDK 10's reactive / conservative / bold, recast for a cost-aware objective)
each propose a target economy from today's signals and the current economy:

- ``lean``: trims XP that pays for nothing the objective values (first-scan and streak
  bonuses, photos) and the caps that are farmed (streak-bonus and feedback caps).
- ``value``: pays more for what the objective does value: reports (issue and status XP) and
  room for more counted scans (scan cap).
- ``reactive``: answers the signals like the SDK's rules: retention falling → raise the
  retention levers; scans per active user falling → raise scanXp; otherwise hold.
- ``hold``: changes nothing (lets the ensemble learn to stop when every move hurts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import numpy as np

from agents.common import BaseAgent, confident, cost_share, nudged, reward, same_action, toward
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals
from arena_rl.scenarios.gamification.specs import Objective

History = Sequence[Signals]
"""The confident signals seen so far, oldest first (today's last)."""

Expert = Callable[
    [Signals, Mapping[str, float], History, float, Objective], dict[str, float] | None
]
"""(today's signals, current economy, history, step as a fraction, objective) -> target or None."""

LEAN_KEYS = (
    "firstScanOfDayXp",
    "streakBonusPerDay",
    "photoXp",
    "streakBonusCap",
    "feedbackDailyCap",
)
VALUE_KEYS = ("issueReportXp", "statusReportXp", "scanDailyCap")
RETENTION_KEYS = ("streakBonusCap", "firstScanOfDayXp")
TREND_DAYS = 3
"""Days over which ``reactive`` judges that a metric is falling."""
AFFORDABLE_SHARE = 0.3
"""XP cost share of gross value (:func:`cost_share`) below which raising XP is affordable."""


def affordable(signals: Signals, objective: Objective) -> bool:
    """Whether XP is cheap enough, relative to what it brings, to raise some."""
    share = cost_share(signals, objective)
    return share is not None and share < AFFORDABLE_SHARE


def lean(
    signals: Signals,
    current: Mapping[str, float],
    history: History,
    step: float,
    objective: Objective,
) -> dict[str, float] | None:
    """Cut XP that buys nothing valued, and the farmed caps."""
    return nudged(current, LEAN_KEYS, 1.0 - step)


def value(
    signals: Signals,
    current: Mapping[str, float],
    history: History,
    step: float,
    objective: Objective,
) -> dict[str, float] | None:
    """Pay more for the acts the objective values, while XP is affordable."""
    if not affordable(signals, objective):
        return None
    return nudged(current, VALUE_KEYS, 1.0 + step)


def _falling(history: History, metric: str, tolerance: float) -> bool:
    """Whether today's ``metric`` is more than ``tolerance`` (relative) below its recent best."""
    recent = [s.metrics[metric].value for s in history[-TREND_DAYS - 1 :]]
    if len(recent) <= TREND_DAYS or not confident(history[-1], [metric]):
        return False
    best = max(recent[:-1])
    return best > 0 and recent[-1] < best * (1.0 - tolerance)


def reactive(
    signals: Signals,
    current: Mapping[str, float],
    history: History,
    step: float,
    objective: Objective,
) -> dict[str, float] | None:
    """The SDK's threshold reactions, on trends instead of fixed levels."""
    if not affordable(signals, objective):
        return None
    if _falling(history, "RETENTION_RATE", 0.01):
        return nudged(current, RETENTION_KEYS, 1.0 + step)
    if _falling(history, "SCAN_FREQUENCY", 0.05):
        return nudged(current, ("scanXp",), 1.0 + step)
    return None


def hold(
    signals: Signals,
    current: Mapping[str, float],
    history: History,
    step: float,
    objective: Objective,
) -> dict[str, float] | None:
    """Change nothing."""
    return None


EXPERTS: Mapping[str, Expert] = MappingProxyType(
    {"lean": lean, "value": value, "reactive": reactive, "hold": hold}
)
"""The sub-strategies a config may name."""

DEFAULT_EXPERTS: Mapping[str, float] = MappingProxyType(
    {"lean": 25.0, "value": 25.0, "reactive": 10.0}
)
"""Sub-strategy -> step (%) when the config names none."""


class HedgeEnsemble(BaseAgent):
    """Hedge over sub-strategies: one sampled per decision, scored by the later reward change.

    Args:
        experts: sub-strategy name (a key of ``EXPERTS``) -> its step, % of the current value.
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

    def __init__(
        self,
        experts: Mapping[str, float] | None = None,
        eta: float = 0.3,
        window_days: int = 3,
        reward_gain: float = 10.0,
    ) -> None:
        self.experts = experts
        self.eta = eta
        self.window_days = window_days
        self.reward_gain = reward_gain

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        chosen = DEFAULT_EXPERTS if self.experts is None else self.experts
        if not chosen:
            raise ValueError("experts: need at least one sub-strategy")
        unknown = set(chosen) - set(EXPERTS)
        if unknown:
            raise ValueError(f"unknown sub-strategies {sorted(unknown)}; known: {list(EXPERTS)}")
        self.names_ = list(chosen)
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
        target = self._proposal(chosen, signals, current_config)
        update: ConfigUpdate | None = None
        if target is not None:
            weights = ", ".join(
                f"{n} {w:.2f}" for n, w in zip(self.names_, self.weights_, strict=True)
            )
            why = (EXPERTS[name].__doc__ or name).strip().rstrip(".").lower()
            update = toward(
                target, current_config, f"hedge follows {name}, step {step:.0%}: {why} ({weights})"
            )
        self.probability_ = self._chance_of(update, signals, current_config)
        return update

    def action_probability(self) -> float:
        """Summed weight of the sub-strategies giving the last answer (see the class docstring)."""
        return self.probability_

    def _proposal(
        self, expert: int, signals: Signals, current: Mapping[str, float]
    ) -> dict[str, float] | None:
        """The target economy sub-strategy ``expert`` proposes now (None: hold)."""
        name, step = self.names_[expert], float(self.steps_[expert])
        return EXPERTS[name](signals, current, self.history_, step, self.info_.objective)

    def _chance_of(
        self, update: ConfigUpdate | None, signals: Signals, current: Mapping[str, float]
    ) -> float:
        """Chance that the draw picks a sub-strategy answering ``update`` (the sub-strategies
        are pure functions of the signals, the economy and the history, so each can be asked)."""
        weights = self.weights_ / self.weights_.sum()  # what rng.choice draws with
        chance = 0.0
        for expert, weight in enumerate(weights):
            target = self._proposal(expert, signals, current)
            answer = None if target is None else toward(target, current, "")
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
