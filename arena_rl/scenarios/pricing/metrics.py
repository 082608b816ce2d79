"""The pricing signals: six metrics of a subscription business, from simulated customers.

Windows: REVENUE_PER_USER and ARPPU are today's (recognised revenue, per arrived prospect and
per paying subscriber), RETENTION_RATE is the state now, and TRIAL_START_RATE,
CONVERSION_RATE and ANNUAL_SHARE count everything since the experiment began. Proportions are
per customer (one trial each), so they are unclustered counts; the two means need only the
sum and sum of squares of the recognised-revenue array, so summarising costs two passes over
the customers whatever the metric count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from arena_rl.core.signals import Signals, Summaries
from arena_rl.core.stats import MeanSummary, RatioSummary

if TYPE_CHECKING:
    from arena_rl.scenarios.pricing.population import Customers

METRICS: tuple[str, ...] = (
    "REVENUE_PER_USER",
    "TRIAL_START_RATE",
    "CONVERSION_RATE",
    "RETENTION_RATE",
    "ANNUAL_SHARE",
    "ARPPU",
)
"""The six metrics, in a fixed order (observation layouts depend on it)."""

OBJECTIVE_METRIC = "REVENUE_PER_USER"
"""The metric that is the objective itself: today's recognised revenue per arrived prospect."""

HARM_METRIC = "RETENTION_RATE"
"""Share of customers who ever paid who still do: what the circuit breaker watches."""

MONTH_DAYS = 30
"""Days per billing month; ARPPU is stated per 30 days."""


def _ratios(successes: np.ndarray, trials: np.ndarray) -> list[RatioSummary]:
    """One unclustered proportion per arm from (n_arms,) counts."""
    return [
        RatioSummary.from_counts(int(s), int(n)) for s, n in zip(successes, trials, strict=True)
    ]


def _means(n: np.ndarray, total: np.ndarray, total_sq: np.ndarray) -> list[MeanSummary]:
    """One mean summary per arm from (n_arms,) counts, sums and sums of squares."""
    return [
        MeanSummary(int(k), float(s), float(q)) for k, s, q in zip(n, total, total_sq, strict=True)
    ]


def summarise(model: Customers) -> Summaries:
    """Per metric, one summary per arm (row 0 = control), after the last simulated day.

    Recognised revenue is 0 for every customer not paying today (prospects yet to arrive
    included), so its sums over whole rows are sums over the arrived prospects.
    """
    c = model.counts
    rate = model.rate  # (n_arms, users_per_arm) USD recognised today
    total = rate.sum(axis=1, dtype=np.float64)
    total_sq = np.einsum("ij,ij->i", rate, rate, dtype=np.float64)
    enrolled = model.enrolled_by(model.day - 1)
    paying = model.subscribers()
    return {
        "REVENUE_PER_USER": _means(enrolled, total, total_sq),
        "TRIAL_START_RATE": _ratios(c["started"], enrolled),
        "CONVERSION_RATE": _ratios(c["converted"], c["trials_ended"]),
        "RETENTION_RATE": _ratios(paying, c["paid_first"]),
        "ANNUAL_SHARE": _ratios(c["annual_first"], c["paid_first"]),
        "ARPPU": _means(paying, total * MONTH_DAYS, total_sq * MONTH_DAYS**2),
    }


def objective_summary(model: Customers) -> list[MeanSummary]:
    """Each arm's revenue per arrived prospect so far (tail included once credited)."""
    total = model.value_total
    return _means(
        model.enrolled_by(model.day - 1),
        total.sum(axis=1, dtype=np.float64),
        np.einsum("ij,ij->i", total, total, dtype=np.float64),
    )


def signals(model: Customers, summaries: Summaries) -> list[Signals]:
    """What a live agent sees of every arm (index 0 = control)."""
    t = model.day - 1
    enrolled = model.enrolled_by(t)
    active = model.subscribers() + model.trials()
    # subscribed on any of days t-6..t: subscribed now, or last subscribed on one of them
    active_7d = ((model.alive > 0) | (model.last_day >= t - 6)).sum(axis=1)
    payments = model.counts["payments"]
    return [
        Signals(
            enrolled=int(enrolled[arm]),
            active_today=int(active[arm]),
            active_7d=int(active_7d[arm]),
            total_actions=int(payments[arm]),
            experiment_days=model.day,
            metrics={name: summaries[name][arm].to_metric() for name in METRICS},
        )
        for arm in range(model.n_arms)
    ]
