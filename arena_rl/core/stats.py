"""Hypothesis tests and intervals on per-arm summary moments.

The simulator keeps users as arrays and reduces each arm to a few sums in one pass, so every test
here works from moments (n, Σx, Σx²) or cluster counts, never from raw samples. Welch's t serves
the continuous metrics and Fisher's exact test the proportions; proportions that pool several
events per user are clustered, and their Fisher test is corrected with the Rao-Scott design
effect so that heavy users do not pass for independent trials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

Confidence = Literal["high", "medium", "low"]
TestName = Literal["welch", "fisher"]

__all__ = [
    "Comparison",
    "Confidence",
    "MeanSummary",
    "MetricValue",
    "RatioSummary",
    "bootstrap_mean_ci",
    "confidence",
    "fisher",
    "holm_adjust",
    "welch",
]


def confidence(n: int) -> Confidence:
    """The live platform's sample-size label: high n ≥ 30, medium 10-29, low < 10."""
    if n >= 30:
        return "high"
    return "medium" if n >= 10 else "low"


@dataclass(frozen=True)
class MetricValue:
    """One metric of one variant, as the live API reports it."""

    value: float
    std_dev: float | None
    sample_size: int
    confidence: Confidence

    def to_api(self) -> dict[str, float | int | str | None]:
        """CamelCase keys, as the live TendedLoop API spells them."""
        return {
            "value": self.value,
            "stdDev": self.std_dev,
            "sampleSize": self.sample_size,
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class MeanSummary:
    """Moments of a per-user quantity: n users, Σx and Σx²."""

    n: int
    total: float
    total_sq: float

    @classmethod
    def from_sample(cls, x: npt.ArrayLike) -> MeanSummary:
        """Summarise a 1-D sample; shape (n,)."""
        arr = np.asarray(x, dtype=np.float64).ravel()
        return cls(n=int(arr.size), total=float(arr.sum()), total_sq=float(arr @ arr))

    @property
    def mean(self) -> float:
        """Sample mean; nan for an empty arm."""
        return self.total / self.n if self.n > 0 else math.nan

    @property
    def var(self) -> float:
        """Sample variance (ddof=1); nan when n < 2, clipped at 0 against rounding."""
        if self.n < 2:
            return math.nan
        return max(self.total_sq - self.total * self.total / self.n, 0.0) / (self.n - 1)

    def to_metric(self) -> MetricValue:
        """Mean with its sample sd; an empty arm reports 0.0, as the platform does."""
        return MetricValue(
            value=self.mean if self.n > 0 else 0.0,
            std_dev=math.sqrt(self.var) if self.n >= 2 else None,
            sample_size=self.n,
            confidence=confidence(self.n),
        )


@dataclass(frozen=True)
class RatioSummary:
    """Sums for a clustered proportion: user u has x_u successes out of m_u ≥ 1 trials."""

    n_clusters: int
    successes: int
    trials: int
    sum_x2: int
    sum_m2: int
    sum_xm: int

    @classmethod
    def from_sample(cls, x: npt.ArrayLike, m: npt.ArrayLike) -> RatioSummary:
        """Summarise per-user successes ``x`` and trials ``m``, both shape (n_users,).

        Users with no trials carry no information about the proportion and are dropped.
        """
        xs = np.asarray(x, dtype=np.int64).ravel()
        ms = np.asarray(m, dtype=np.int64).ravel()
        if xs.shape != ms.shape:
            raise ValueError(f"x and m differ in shape: {xs.shape} vs {ms.shape}")
        if np.any(xs < 0) or np.any(xs > ms):
            raise ValueError("need 0 <= x <= m for every user")
        keep = ms > 0
        xs, ms = xs[keep], ms[keep]
        return cls(
            n_clusters=int(xs.size),
            successes=int(xs.sum()),
            trials=int(ms.sum()),
            sum_x2=int(xs @ xs),
            sum_m2=int(ms @ ms),
            sum_xm=int(xs @ ms),
        )

    @classmethod
    def from_counts(cls, successes: int, trials: int) -> RatioSummary:
        """An unclustered proportion: every trial is its own cluster (m_u = 1)."""
        if not 0 <= successes <= trials:
            raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
        return cls(
            n_clusters=trials,
            successes=successes,
            trials=trials,
            sum_x2=successes,
            sum_m2=trials,
            sum_xm=successes,
        )

    @property
    def proportion(self) -> float:
        """Ratio estimator Σx / Σm; nan with no trials."""
        return self.successes / self.trials if self.trials > 0 else math.nan

    @property
    def design_effect(self) -> float:
        """Rao-Scott (1992) design effect: cluster variance of the ratio over binomial variance.

        Floored at 1.0 (a test is never made more liberal than the binomial one) and 1.0 where
        undefined (fewer than two clusters, p in {0, 1}). Exactly 1.0 when every cluster holds
        one trial: the n/(n-1) factor of the cluster estimator would otherwise shave a trial off
        a plain proportion for no reason.
        """
        n, total_m = self.n_clusters, self.trials
        if n < 2 or self.sum_m2 == total_m:  # second test: all m_u = 1, nothing clustered
            return 1.0
        p = self.successes / total_m
        if p <= 0.0 or p >= 1.0:
            return 1.0
        # Σ(x_u - p·m_u)², expanded so that it needs only the stored sums.
        resid_sq = self.sum_x2 - 2.0 * p * self.sum_xm + p * p * self.sum_m2
        var_cluster = n / (n - 1) * max(resid_sq, 0.0) / total_m**2
        var_binomial = p * (1.0 - p) / total_m
        return max(var_cluster / var_binomial, 1.0)

    def effective(self) -> tuple[int, int]:
        """(successes, trials) shrunk by the design effect and rounded, for an exact test.

        Effective trials stay ≥ 1 when there were any, so a clustered arm never vanishes.
        """
        if self.trials == 0:
            return 0, 0
        deff = self.design_effect
        return round(self.successes / deff), max(round(self.trials / deff), 1)

    def to_metric(self) -> MetricValue:
        """Proportion with its Bernoulli sd; sample size counts trials, as the platform does."""
        if self.trials == 0:
            return MetricValue(0.0, None, 0, confidence(0))
        p = self.proportion
        return MetricValue(p, math.sqrt(p * (1.0 - p)), self.trials, confidence(self.trials))


@dataclass(frozen=True)
class Comparison:
    """One treatment arm against control on one metric.

    ``effect`` is treatment - control in the metric's units with its (1 - alpha) CI, unadjusted.
    ``p_adjusted`` and ``significant`` treat the comparison as a family of one until
    :func:`holm_adjust` fills them across arms.
    """

    metric: str
    variant: str
    test: TestName
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    effect_size: float
    significant: bool
    odds_ratio: float | None = None


def welch(
    treatment: MeanSummary,
    control: MeanSummary,
    *,
    metric: str,
    variant: str,
    alpha: float = 0.05,
) -> Comparison:
    """Welch's unequal-variance t-test; CI on the Welch-Satterthwaite df; Cohen's d.

    Degenerate arms (n < 2, or no variance on either side) give p = 1 and a nan CI: no evidence
    either way, and no exception in the middle of a tournament.
    """
    effect = treatment.mean - control.mean
    v_t, v_c = treatment.var, control.var
    n_t, n_c = treatment.n, control.n
    if n_t < 2 or n_c < 2 or (v_t == 0.0 and v_c == 0.0):
        return Comparison(
            metric, variant, "welch", effect, math.nan, math.nan, 1.0, 1.0, math.nan, False
        )
    res = stats.ttest_ind_from_stats(
        treatment.mean, math.sqrt(v_t), n_t, control.mean, math.sqrt(v_c), n_c, equal_var=False
    )
    p = float(res.pvalue)
    a, b = v_t / n_t, v_c / n_c
    se = math.sqrt(a + b)
    df = (a + b) ** 2 / (a * a / (n_t - 1) + b * b / (n_c - 1))
    half = float(stats.t.ppf(1.0 - alpha / 2.0, df)) * se
    d = effect / math.sqrt((v_t + v_c) / 2.0)
    return Comparison(
        metric, variant, "welch", effect, effect - half, effect + half, p, p, d, p < alpha
    )


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval for a proportion p observed on n (possibly effective) trials."""
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return centre - half, centre + half


def fisher(
    treatment: RatioSummary,
    control: RatioSummary,
    *,
    metric: str,
    variant: str,
    alpha: float = 0.05,
) -> Comparison:
    """Fisher's exact test on design-effect-corrected counts; Newcombe CI; Cohen's h.

    Each arm's successes and trials are divided by its Rao-Scott design effect and rounded before
    the exact test. The CI for p_t - p_c is Newcombe's (1998) method 10, from Wilson intervals
    around the raw proportions on the effective (unrounded) trial counts, so it always contains
    the reported raw difference.
    """
    if treatment.trials == 0 or control.trials == 0:
        effect = treatment.proportion - control.proportion
        return Comparison(
            metric, variant, "fisher", effect, math.nan, math.nan, 1.0, 1.0, math.nan, False
        )
    p_t, p_c = treatment.proportion, control.proportion
    s_t, n_t = treatment.effective()
    s_c, n_c = control.effective()
    res = stats.fisher_exact(
        np.array([[s_t, n_t - s_t], [s_c, n_c - s_c]]), alternative="two-sided"
    )
    p = float(res.pvalue)
    odds = float(res.statistic)

    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    lo_t, hi_t = _wilson(p_t, treatment.trials / treatment.design_effect, z)
    lo_c, hi_c = _wilson(p_c, control.trials / control.design_effect, z)
    effect = p_t - p_c
    ci_low = effect - math.hypot(p_t - lo_t, hi_c - p_c)
    ci_high = effect + math.hypot(hi_t - p_t, p_c - lo_c)
    h = 2.0 * math.asin(math.sqrt(p_t)) - 2.0 * math.asin(math.sqrt(p_c))
    return Comparison(
        metric, variant, "fisher", effect, ci_low, ci_high, p, p, h, p < alpha, odds_ratio=odds
    )


def holm_adjust(comparisons: Sequence[Comparison], alpha: float = 0.05) -> list[Comparison]:
    """Holm step-down adjustment over one family (one metric, all treatment arms).

    Returns new comparisons in the input order with ``p_adjusted`` (monotone in p, capped at 1)
    and ``significant = p_adjusted < alpha``.
    """
    m = len(comparisons)
    order = sorted(range(m), key=lambda i: comparisons[i].p_value)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * comparisons[i].p_value))
        adjusted[i] = running
    return [
        replace(c, p_adjusted=q, significant=q < alpha)
        for c, q in zip(comparisons, adjusted, strict=True)
    ]


def bootstrap_mean_ci(
    values: npt.ArrayLike,
    rng: np.random.Generator,
    n_resamples: int = 2000,
    alpha: float = 0.05,
    *,
    method: Literal["percentile", "BCa"] = "percentile",
) -> tuple[float, float, float]:
    """Mean and bootstrap (1 - alpha) CI of per-tournament values; shape (n,).

    Percentile by default: it needs no jackknife and stays defined for the handful of
    tournaments a quick run produces. Fewer than two values give a nan interval; identical
    values give a zero-width one (scipy would warn and return nan).
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, math.nan, math.nan
    if np.all(arr == arr[0]):
        return mean, mean, mean
    res = stats.bootstrap(
        (arr,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=1.0 - alpha,
        method=method,
        rng=rng,
    )
    ci = res.confidence_interval
    return mean, float(ci.low), float(ci.high)
