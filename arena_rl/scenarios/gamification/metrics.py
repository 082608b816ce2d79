"""The gamification signals: the live platform's six metrics, computed from simulated users.

Windows: SCAN_FREQUENCY and XP_VELOCITY are today's (per active user, per enrolled user),
RETENTION_RATE the last seven days, STREAK_LENGTH the current streak, and MISSION_COMPLETION
and FEEDBACK_QUALITY everything since enrolment. Each metric is one reduction over the user
axis per arm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from arena_rl.core.signals import Signals, Summaries, mean_summaries, ratio_summaries
from arena_rl.core.stats import RatioSummary

if TYPE_CHECKING:
    from arena_rl.scenarios.gamification.population import Population

METRICS: tuple[str, ...] = (
    "SCAN_FREQUENCY",
    "XP_VELOCITY",
    "RETENTION_RATE",
    "MISSION_COMPLETION",
    "STREAK_LENGTH",
    "FEEDBACK_QUALITY",
)
"""The six live-platform metrics, in a fixed order (observation layout depends on it)."""

WEEK_MASK = np.uint8(0x7F)
"""Bits of ``Population.recent`` that cover the last seven days (bit 0 = today)."""


def summarise(pop: Population) -> Summaries:
    """Per metric, one summary per arm (row 0 = control) of the enrolled users' state."""
    n = pop.n_enrolled
    u = slice(None, n)
    enrolled = pop.enrolled_mask()
    recent = pop.recent[:, u]
    active_today = (recent & 1).astype(bool)
    active_7d = (recent & WEEK_MASK) > 0
    return {
        "SCAN_FREQUENCY": mean_summaries(pop.scans_today[:, u], active_today),
        "XP_VELOCITY": mean_summaries(pop.xp_today[:, u], enrolled),
        "RETENTION_RATE": [
            RatioSummary.from_counts(int(k), int(e))
            for k, e in zip(active_7d.sum(axis=1), enrolled.sum(axis=1), strict=True)
        ],
        "MISSION_COMPLETION": ratio_summaries(
            pop.missions_completed[:, u], pop.missions_assigned[:, u]
        ),
        "STREAK_LENGTH": mean_summaries(pop.streak[:, u], enrolled),
        "FEEDBACK_QUALITY": ratio_summaries(pop.useful_total[:, u], pop.scans_total[:, u]),
    }


def signals(pop: Population, summaries: Summaries) -> list[Signals]:
    """The live-platform signals of every arm (index 0 = control)."""
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
            total_actions=int(total_scans[arm]),
            experiment_days=pop.day,
            metrics={name: summaries[name][arm].to_metric() for name in METRICS},
        )
        for arm in range(pop.n_arms)
    ]
