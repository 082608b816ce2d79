"""``rule``: confidence-gated threshold rules (the SDK's 01/03/12), recast for the objective.

The SDK's rules push a metric toward a fixed target ("scans < 2 → raise scanXp"), which here
only buys activity at any price. These rules read what the objective prices instead:

1. **Retention guard** (first, since a cut is felt about twice as hard as a raise):
   RETENTION_RATE fell more than ``retention_drop`` below its best of the last
   ``window_days`` → raise the retention levers by ``raise_pct``. While it stays more than
   ``retention_release`` below, the cost rule is paused (hysteresis).
2. **Cost trim**: XP costs more than ``cost_share_enter`` of the gross value it is estimated to
   bring (the reward estimate plus the XP cost, averaged over ``window_days``) → trim the
   ``trim_keys`` (XP that pays for nothing the objective values) by ``trim_pct``; keep trimming
   until the share falls below ``cost_share_exit`` (hysteresis).
3. Otherwise hold.

Every rule reads only metrics with at least ``min_confidence``, and after each accepted change
the agent holds ``cooldown_days`` so the next decision sees the effect of the last one.

Gamification only (``scenarios``): the cost rule prices XP with the gamification objective's
XP cost, and its default keys are XP keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from agents.common import (
    BaseAgent,
    Confidence,
    Count,
    Fraction,
    NonNegative,
    NonNegativeInt,
    Percent,
    Positive,
    confident,
    hyperparameters,
    nudged,
    toward,
)
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import ConfigUpdate, GuardrailResult
from arena_rl.core.signals import Signals
from arena_rl.scenarios.gamification.specs import GamificationScenario


def cost_share(
    signals: Signals, scenario: GamificationScenario, minimum: str = "medium"
) -> float | None:
    """Today's XP cost as a share of the gross value it is estimated to bring.

    Gross value = the objective estimate plus the XP cost; None until the estimate's metrics
    (XP_VELOCITY among them) have ``minimum`` confidence, or when nothing is produced.
    """
    if not confident(signals, scenario.objective_metrics, minimum):
        return None
    net = scenario.estimate_objective(signals)
    if net is None:
        return None
    objective = scenario.objective
    xp = signals.metrics["XP_VELOCITY"].value
    cost = objective.xp_cost * xp + objective.overspend_cost * max(xp - objective.xp_budget, 0.0)
    gross = net + cost
    return cost / gross if gross > 0.0 and np.isfinite(gross) else None


class RuleBased(BaseAgent):
    """Threshold rules on the XP cost share and on retention, with hysteresis and a cooldown.

    Args:
        trim_keys: keys the cost rule trims; default: XP that buys nothing the objective values
            (first-scan and streak bonuses, photos) and the caps farmed for XP.
        trim_pct: size of one trim, % of the current value.
        cost_share_enter: XP cost / gross value above which trimming starts.
        cost_share_exit: ... below which it stops (< ``cost_share_enter``).
        retention_levers: keys the retention guard raises.
        raise_pct: size of one retention raise, % of the current value.
        retention_drop: fall of RETENTION_RATE below its recent best that fires the guard.
        retention_release: fall below which the paused cost rule may resume.
        window_days: confident days averaged (one day's estimate is noisy).
        cooldown_days: days held after each accepted change, on top of the rate limit.
        min_confidence: least confidence of every metric a rule reads.
        min_cap: smallest value a trimmed cap is given.
    """

    scenarios = ("gamification",)
    """It prices XP with the gamification objective (see the module docstring)."""

    @hyperparameters
    def __init__(
        self,
        trim_keys: Sequence[str] = (
            "firstScanOfDayXp",
            "streakBonusPerDay",
            "photoXp",
            "streakBonusCap",
            "feedbackDailyCap",
        ),
        trim_pct: Percent = 15.0,
        cost_share_enter: Fraction = 0.3,
        cost_share_exit: Fraction = 0.25,
        retention_levers: Sequence[str] = ("issueReportXp", "statusReportXp"),
        raise_pct: Positive = 15.0,
        retention_drop: Fraction = 0.01,
        retention_release: Fraction = 0.005,
        window_days: Count = 3,
        cooldown_days: NonNegativeInt = 1,
        min_confidence: Confidence = "medium",
        min_cap: NonNegative = 1.0,
    ) -> None:
        if cost_share_exit > cost_share_enter:  # hysteresis: trimming must be able to stop
            raise ValueError(
                f"cost_share_exit must be <= cost_share_enter ({cost_share_enter:g}), "
                f"got {cost_share_exit:g}"
            )
        self.trim_keys = trim_keys
        self.trim_pct = trim_pct
        self.cost_share_enter = cost_share_enter
        self.cost_share_exit = cost_share_exit
        self.retention_levers = retention_levers
        self.raise_pct = raise_pct
        self.retention_drop = retention_drop
        self.retention_release = retention_release
        self.window_days = window_days
        self.cooldown_days = cooldown_days
        self.min_confidence = min_confidence
        self.min_cap = min_cap

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        self.cost_shares_: list[float] = []
        self.retention_: list[float] = []
        self.trimming_ = False
        self.guarding_ = False
        self.hold_until_ = 0
        self.pending_day_: int | None = None

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        self._observe(signals)
        day = signals.experiment_days
        if day < self.hold_until_ or not self.may_update(signals):
            return None
        update = self._retention_rule(current_config) or self._cost_rule(current_config)
        if update is not None:
            self.pending_day_ = day
        return update

    def on_result(self, result: GuardrailResult) -> None:
        super().on_result(result)
        if result.accepted and self.pending_day_ is not None:
            self.hold_until_ = self.pending_day_ + 1 + self.cooldown_days
        self.pending_day_ = None

    def _observe(self, signals: Signals) -> None:
        """Record today's confident readings (a low-confidence day adds nothing)."""
        if confident(signals, ["RETENTION_RATE"], self.min_confidence):
            self.retention_.append(signals.metrics["RETENTION_RATE"].value)
        scenario = self.info_.scenario
        assert isinstance(scenario, GamificationScenario)  # check_scenario refused the rest
        share = cost_share(signals, scenario, self.min_confidence)
        if share is not None:
            self.cost_shares_.append(share)

    def _retention_rule(self, current: Mapping[str, float]) -> ConfigUpdate | None:
        recent = self.retention_[-self.window_days - 1 :]
        if len(recent) <= self.window_days:
            return None
        drop = max(recent[:-1]) - recent[-1]
        if drop <= self.retention_release:
            self.guarding_ = False
        if drop <= self.retention_drop:
            return None
        self.guarding_ = True
        knobs = self.info_.knobs
        target = nudged(current, self.retention_levers, 1.0 + self.raise_pct / 100.0, knobs)
        return toward(
            target,
            current,
            f"retention {recent[-1]:.3f} fell {drop:.3f} below its {self.window_days}-day best: "
            f"raise {', '.join(self.retention_levers)} by {self.raise_pct:g} %",
            knobs,
        )

    def _cost_rule(self, current: Mapping[str, float]) -> ConfigUpdate | None:
        if self.guarding_ or len(self.cost_shares_) < self.window_days:
            return None
        share = float(np.mean(self.cost_shares_[-self.window_days :]))
        if share > self.cost_share_enter:
            self.trimming_ = True
        elif share < self.cost_share_exit:
            self.trimming_ = False
        if not self.trimming_:
            return None
        knobs = self.info_.knobs
        target = nudged(current, self.trim_keys, 1.0 - self.trim_pct / 100.0, knobs, self.min_cap)
        return toward(
            target,
            current,
            f"XP costs {share:.0%} of the value it brings ({self.window_days}-day mean): "
            f"trim {', '.join(self.trim_keys)} by {self.trim_pct:g} %",
            knobs,
        )
