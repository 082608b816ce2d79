"""Per-variant signals, as the live platform reports them, computed from simulated users.

Windows: SCAN_FREQUENCY and XP_VELOCITY are today's (per active user, per enrolled user),
RETENTION_RATE the last seven days, STREAK_LENGTH the current streak, and MISSION_COMPLETION
and FEEDBACK_QUALITY everything since enrolment. Each metric is summarised per arm with one
reduction over the user axis; statistics vs control (Welch's t, Fisher's exact with a
design-effect correction for metrics whose trials cluster within users, Holm across arms) come
from :mod:`arena_rl.core.stats`.
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
from arena_rl.scenarios.gamification.population import WEEK_MASK, Population

METRICS: tuple[str, ...] = (
    "SCAN_FREQUENCY",
    "XP_VELOCITY",
    "RETENTION_RATE",
    "MISSION_COMPLETION",
    "STREAK_LENGTH",
    "FEEDBACK_QUALITY",
)
"""The six live-platform metrics, in a fixed order (observation layout depends on it)."""

Summary = MeanSummary | RatioSummary
Summaries = Mapping[str, Sequence[Summary]]
"""Per metric, one summary per arm (row 0 = control)."""


@dataclass(frozen=True)
class Signals:
    """What a live agent sees of its variant: counts and six metrics (``GET /signals``)."""

    enrolled: int
    active_today: int
    active_7d: int
    total_scans: int
    experiment_days: int
    metrics: Mapping[str, MetricValue]

    def to_api(self) -> dict[str, object]:
        """The live API's camelCase shape."""
        return {
            "enrolled": self.enrolled,
            "activeToday": self.active_today,
            "active7d": self.active_7d,
            "totalScans": self.total_scans,
            "experimentDays": self.experiment_days,
            "metrics": {name: m.to_api() for name, m in self.metrics.items()},
        }


def _mean_summaries(x: np.ndarray, mask: np.ndarray) -> list[MeanSummary]:
    """Mean summaries of ``x`` over the users where ``mask`` holds, one per arm."""
    x = np.where(mask, x.astype(np.float64), 0.0)
    n = mask.sum(axis=1)
    total, total_sq = x.sum(axis=1), (x * x).sum(axis=1)
    return [
        MeanSummary(int(k), float(s), float(q)) for k, s, q in zip(n, total, total_sq, strict=True)
    ]


def _ratio_summaries(x: np.ndarray, m: np.ndarray) -> list[RatioSummary]:
    """Clustered proportions: x successes out of m trials per user, users with m > 0."""
    x, m = x.astype(np.int64), m.astype(np.int64)
    sums = np.stack(
        [(m > 0).sum(1), x.sum(1), m.sum(1), (x * x).sum(1), (m * m).sum(1), (x * m).sum(1)]
    )
    return [RatioSummary(*map(int, column)) for column in sums.T]


def summarise(pop: Population) -> Summaries:
    """Per metric, one summary per arm (row 0 = control) of the enrolled users' state."""
    n = pop.n_enrolled
    u = slice(None, n)
    enrolled = pop.enrolled_mask()
    recent = pop.recent[:, u]
    active_today = (recent & 1).astype(bool)
    active_7d = (recent & WEEK_MASK) > 0
    return {
        "SCAN_FREQUENCY": _mean_summaries(pop.scans_today[:, u], active_today),
        "XP_VELOCITY": _mean_summaries(pop.xp_today[:, u], enrolled),
        "RETENTION_RATE": [
            RatioSummary.from_counts(int(k), int(e))
            for k, e in zip(active_7d.sum(axis=1), enrolled.sum(axis=1), strict=True)
        ],
        "MISSION_COMPLETION": _ratio_summaries(
            pop.missions_completed[:, u], pop.missions_assigned[:, u]
        ),
        "STREAK_LENGTH": _mean_summaries(pop.streak[:, u], enrolled),
        "FEEDBACK_QUALITY": _ratio_summaries(pop.useful_total[:, u], pop.scans_total[:, u]),
    }


def signals(pop: Population, summaries: Summaries | None = None) -> list[Signals]:
    """The live-platform signals of every arm (index 0 = control)."""
    summaries = summaries or summarise(pop)
    n = pop.n_enrolled
    recent = pop.recent[:, :n]
    enrolled = pop.enrolled_mask().sum(axis=1)
    active_today = (recent & 1).sum(axis=1)
    active_7d = ((recent & WEEK_MASK) > 0).sum(axis=1)
    total_scans = pop.scans_total[:, :n].sum(axis=1, dtype=np.float64)
    return [
        Signals(
            enrolled=int(enrolled[arm]),
            active_today=int(active_today[arm]),
            active_7d=int(active_7d[arm]),
            total_scans=int(total_scans[arm]),
            experiment_days=pop.day,
            metrics={name: summaries[name][arm].to_metric() for name in METRICS},
        )
        for arm in range(pop.n_arms)
    ]


def compare_to_control(
    summaries: Summaries, variants: list[str], alpha: float = 0.05
) -> list[Comparison]:
    """Every treatment arm vs control on every metric; Holm-adjusted across arms per metric.

    Args:
        summaries: output of :func:`summarise`; arm 0 is control.
        variants: names of arms 1..n, in order.
    """
    results: list[Comparison] = []
    for metric in METRICS:
        control, *treatments = summaries[metric]
        family = [
            welch(t, control, metric=metric, variant=v, alpha=alpha)  # type: ignore[arg-type]
            if isinstance(t, MeanSummary)
            else fisher(t, control, metric=metric, variant=v, alpha=alpha)  # type: ignore[arg-type]
            for t, v in zip(treatments, variants, strict=True)
        ]
        results.extend(holm_adjust(family, alpha=alpha))
    return results
