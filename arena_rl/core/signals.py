"""Per-variant signals, as the live platform reports them, and their statistics vs control.

A scenario's model summarises its users into one :data:`Summary` per metric and arm (one
reduction over the user axis each, with :func:`mean_summaries` and :func:`ratio_summaries`)
and turns them into :class:`Signals`, what a live agent sees. Statistics vs control (Welch's
t, Fisher's exact with a design-effect correction for metrics whose trials cluster within
users, Holm across arms) come from :mod:`arena_rl.core.stats`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from arena_rl.core.stats import (
    Comparison,
    MeanSummary,
    MetricValue,
    RatioSummary,
    fisher,
    holm_adjust,
    welch,
)

Summary = MeanSummary | RatioSummary
Summaries = Mapping[str, Sequence[Summary]]
"""Per metric, one summary per arm (row 0 = control)."""

OBJECTIVE = "OBJECTIVE"
"""The comparisons' name for each enrolled user's objective so far (what the user created
minus what their rewards cost): compared to control beside the metrics, but no live-platform
signal, so agents never see it."""


@dataclass(frozen=True)
class Signals:
    """What a live agent sees of its variant: counts and the scenario's metrics (the live
    platform's ``GET /signals``)."""

    enrolled: int
    active_today: int
    active_7d: int
    total_actions: int
    """The scenario's count of its core action so far: scans (gamification), payments
    (pricing). The live API calls it ``totalScans``."""
    experiment_days: int
    metrics: Mapping[str, MetricValue]

    def to_api(self) -> dict[str, object]:
        """The live API's camelCase shape."""
        return {
            "enrolled": self.enrolled,
            "activeToday": self.active_today,
            "active7d": self.active_7d,
            "totalScans": self.total_actions,
            "experimentDays": self.experiment_days,
            "metrics": {name: m.to_api() for name, m in self.metrics.items()},
        }


def mean_summaries(x: np.ndarray, mask: np.ndarray) -> list[MeanSummary]:
    """Mean summaries of ``x`` over the users where ``mask`` holds, one per arm."""
    x = np.where(mask, x.astype(np.float64), 0.0)
    n = mask.sum(axis=1)
    total, total_sq = x.sum(axis=1), (x * x).sum(axis=1)
    return [
        MeanSummary(int(k), float(s), float(q)) for k, s, q in zip(n, total, total_sq, strict=True)
    ]


def ratio_summaries(x: np.ndarray, m: np.ndarray) -> list[RatioSummary]:
    """Clustered proportions: x successes out of m trials per user, users with m > 0."""
    x, m = x.astype(np.int64), m.astype(np.int64)
    sums = np.stack(
        [(m > 0).sum(1), x.sum(1), m.sum(1), (x * x).sum(1), (m * m).sum(1), (x * m).sum(1)]
    )
    return [RatioSummary(*map(int, column)) for column in sums.T]


def compare_to_control(
    summaries: Summaries, variants: list[str], alpha: float = 0.05
) -> list[Comparison]:
    """Every treatment arm vs control on every metric; Holm-adjusted across arms per metric.

    Args:
        summaries: a model's summaries (:meth:`Model.summarise`); arm 0 is control.
        variants: names of arms 1..n, in order.
    """
    results: list[Comparison] = []
    for metric, per_arm in summaries.items():
        control, *treatments = per_arm
        family = [
            welch(t, control, metric=metric, variant=v, alpha=alpha)  # type: ignore[arg-type]
            if isinstance(t, MeanSummary)
            else fisher(t, control, metric=metric, variant=v, alpha=alpha)  # type: ignore[arg-type]
            for t, v in zip(treatments, variants, strict=True)
        ]
        results.extend(holm_adjust(family, alpha=alpha))
    return results
