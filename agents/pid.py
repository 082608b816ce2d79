"""``pid``: a discrete PID controller (the SDK's 06) holding one metric at a setpoint.

The SDK steers SCAN_FREQUENCY up with scanXp, which buys scans at any price. A cost-aware
platform steers spend instead: by default this controller holds XP_VELOCITY (XP per enrolled
user per day) at an XP budget by scaling XP keys together, each by its weight in ``lever``.
Any metric and any weighted set of keys can be configured.

Per confident day, with the error normalised by the setpoint so the gains are unit-free::

    e = (setpoint - y) / |setpoint|          y = measurement, smoothed by an EMA
    I = clip(I + e·dt, ±integral_limit)      only while the output is not saturated (anti-windup)
    D = -(y - y_prev) / |setpoint| / dt      derivative on measurement: no kick on a setpoint change
    u = clip(Kp·e + Ki·I + Kd·D, ±output_limit)
    key ← key · (1 + direction · weight_key · u)   for every key in ``lever``

An update that would move nothing (``|u| < min_step``, or every key already there) is skipped.

Gamification only (``scenarios``): its defaults are the XP economy's metric, setpoint and
keys. The controller itself is generic; another scenario needs its own config of ``metric``,
``setpoint`` and ``lever``, and this class's ``scenarios`` widened, once tuned there.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated

import numpy as np
from pydantic import Field

from agents.common import (
    BaseAgent,
    Confidence,
    Fraction,
    NonNegative,
    Positive,
    confident,
    hyperparameters,
    toward,
)
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals

UNPRICED_XP: Mapping[str, float] = MappingProxyType(
    {
        "photoXp": 1.0,
        "firstScanOfDayXp": 1.0,
        "streakBonusPerDay": 1.0,
        "streakBonusCap": 1.0,
        "feedbackDailyCap": 1.0,
    }
)
"""Default lever: the XP that pays for nothing the objective values (photos, first scan of the
day, streaks) and the cap on farmed feedback XP, scaled together. Scaling every XP key instead
also cuts pay for valued scans, feedback and reports, and serves the objective far less."""


class PIDController(BaseAgent):
    """Holds ``metric`` at ``setpoint`` by scaling the ``lever`` keys.

    Args:
        metric: the controlled metric (one of the scenario's metrics).
        setpoint: its target value, in the metric's units (XP per user per day by default).
        kp: proportional gain (fractional change per unit of normalised error).
        ki: integral gain.
        kd: derivative gain (on the measurement).
        output_limit: largest fractional change of one update (0.3 = ±30 %).
        integral_limit: clamp of the error integral (normalised error × days).
        lever: key -> weight; each key moves by ``weight × output`` (a fraction).
        direction: +1 if raising the lever raises the metric (XP keys and XP), -1 if it lowers it.
        smoothing: EMA weight of today's reading (1 = no smoothing; days are noisy).
        min_step: outputs smaller than this are no-ops and are not submitted.
        min_confidence: least confidence of the metric before the controller acts.
    """

    scenarios = ("gamification",)
    """Its defaults are XP keys and an XP budget (see the module docstring)."""

    @hyperparameters
    def __init__(
        self,
        metric: str = "XP_VELOCITY",
        setpoint: float = 35.0,
        kp: NonNegative = 1.0,
        ki: NonNegative = 0.05,
        kd: NonNegative = 0.1,
        output_limit: Positive = 0.3,
        integral_limit: NonNegative = 2.0,
        lever: Annotated[Mapping[str, float], Field(min_length=1)] | None = None,
        direction: float = 1.0,
        smoothing: Annotated[float, Field(gt=0, le=1)] = 0.5,
        min_step: Fraction = 0.01,
        min_confidence: Confidence = "medium",
    ) -> None:
        if direction not in (1.0, -1.0):
            raise ValueError(f"direction must be 1 or -1, got {direction!r}")
        self.metric = metric
        self.setpoint = setpoint
        self.kp = kp
        self.ki = ki
        self.kd = kd
        self.output_limit = output_limit
        self.integral_limit = integral_limit
        self.lever = lever
        self.direction = direction
        self.smoothing = smoothing
        self.min_step = min_step
        self.min_confidence = min_confidence

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        self.lever_ = dict(UNPRICED_XP if self.lever is None else self.lever)
        metrics = tuple(info.scenario.metrics)
        unknown = set(self.lever_) - set(info.knobs.keys)
        if unknown or not self.lever_ or self.metric not in metrics:
            raise ValueError(
                f"PID needs a metric of {metrics} (got {self.metric!r}) and a non-empty lever of "
                f"economy keys (unknown: {sorted(unknown)})"
            )
        self.scale_ = abs(self.setpoint) or 1.0
        self.integral_ = 0.0
        self.measured_: float | None = None
        self.last_day_: int | None = None
        self.last_output_ = 0.0

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        if not confident(signals, [self.metric], self.min_confidence):
            return None
        reading = signals.metrics[self.metric].value
        if not np.isfinite(reading):
            return None
        day = signals.experiment_days
        previous, last_day = self.measured_, self.last_day_
        measured = (
            reading
            if previous is None
            else (self.smoothing * reading + (1.0 - self.smoothing) * previous)
        )
        self.measured_, self.last_day_ = measured, day
        if not self.may_update(signals):
            return None  # integrate only what the controller can act on (anti-windup)
        output = self._step(measured, previous, day - last_day if last_day is not None else 0)
        self.last_output_ = output
        if abs(output) < self.min_step:
            return None
        target = {
            key: max(current_config[key] * (1.0 + self.direction * weight * output), 0.0)
            for key, weight in self.lever_.items()
        }
        return toward(
            target,
            current_config,
            f"PID: {self.metric} {measured:.3g} vs setpoint {self.setpoint:g} → scale "
            f"{', '.join(self.lever_)} by {output:+.1%}",
            self.info_.knobs,
        )

    def _step(self, measured: float, previous: float | None, dt: int) -> float:
        """One PID update on the (smoothed) measurement; returns the clamped output."""
        error = (self.setpoint - measured) / self.scale_
        derivative = 0.0
        if previous is not None and dt > 0:
            derivative = -(measured - previous) / self.scale_ / dt
        raw = self.kp * error + self.ki * self.integral_ + self.kd * derivative
        saturated = abs(raw) >= self.output_limit and np.sign(raw) == np.sign(error)
        if not saturated:  # conditional integration: no windup while the output is pinned
            self.integral_ = float(
                np.clip(
                    self.integral_ + error * max(dt, 1), -self.integral_limit, self.integral_limit
                )
            )
            raw = self.kp * error + self.ki * self.integral_ + self.kd * derivative
        return float(np.clip(raw, -self.output_limit, self.output_limit))
