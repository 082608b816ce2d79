"""Tests for arena_rl.core.stats: each test checks numbers against scipy or a published table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from arena_rl.core.stats import (
    Comparison,
    MeanSummary,
    MetricValue,
    RatioSummary,
    bootstrap_mean_ci,
    confidence,
    fisher,
    holm_adjust,
    welch,
)


def _beta_binomial(
    rng: np.random.Generator, size: tuple[int, ...], mean: float, icc: float, mean_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Clustered successes: user p_u ~ Beta with intra-cluster correlation ``icc``."""
    total = 1.0 / icc - 1.0
    p = rng.beta(mean * total, (1.0 - mean) * total, size=size)
    m = 1 + rng.poisson(mean_m - 1.0, size=size)
    return rng.binomial(m, p), m


# --- labels and values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "label"),
    [(0, "low"), (9, "low"), (10, "medium"), (29, "medium"), (30, "high"), (1000, "high")],
)
def test_confidence_thresholds(n: int, label: str) -> None:
    assert confidence(n) == label


def test_metric_value_to_api_uses_camel_case() -> None:
    api = MetricValue(value=1.5, std_dev=0.5, sample_size=12, confidence="medium").to_api()
    assert api == {"value": 1.5, "stdDev": 0.5, "sampleSize": 12, "confidence": "medium"}


def test_mean_summary_matches_numpy() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, size=57)
    s = MeanSummary.from_sample(x)
    assert s.n == 57
    assert s.mean == pytest.approx(np.mean(x), abs=1e-12)
    assert s.var == pytest.approx(np.var(x, ddof=1), abs=1e-12)
    metric = s.to_metric()
    assert metric.std_dev == pytest.approx(np.std(x, ddof=1), abs=1e-12)
    assert (metric.sample_size, metric.confidence) == (57, "high")


def test_mean_summary_small_samples() -> None:
    assert math.isnan(MeanSummary.from_sample([]).mean)
    assert math.isnan(MeanSummary.from_sample([4.0]).var)
    assert MeanSummary.from_sample([]).to_metric() == MetricValue(0.0, None, 0, "low")
    assert MeanSummary.from_sample([4.0]).to_metric() == MetricValue(4.0, None, 1, "low")


def test_ratio_summary_to_metric_and_validation() -> None:
    s = RatioSummary.from_sample([1, 0, 3, 0], [2, 0, 4, 1])  # the user with m=0 is dropped
    assert (s.n_clusters, s.successes, s.trials) == (3, 4, 7)
    assert (s.sum_x2, s.sum_m2, s.sum_xm) == (10, 21, 14)
    metric = s.to_metric()
    assert metric.value == pytest.approx(4 / 7)
    assert metric.std_dev == pytest.approx(math.sqrt(4 / 7 * 3 / 7))
    assert (metric.sample_size, metric.confidence) == (7, "low")
    assert RatioSummary.from_counts(0, 0).to_metric() == MetricValue(0.0, None, 0, "low")
    with pytest.raises(ValueError, match="0 <= x <= m"):
        RatioSummary.from_sample([3], [2])
    with pytest.raises(ValueError, match="shape"):
        RatioSummary.from_sample([1, 1], [2])


# --- Welch ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.05, 0.10])
def test_welch_matches_scipy_on_raw_samples(alpha: float) -> None:
    rng = np.random.default_rng(12345)
    treat, ctrl = rng.normal(5.0, 2.0, size=40), rng.normal(4.2, 3.0, size=55)
    c = welch(
        MeanSummary.from_sample(treat),
        MeanSummary.from_sample(ctrl),
        metric="XP_VELOCITY",
        variant="B",
        alpha=alpha,
    )
    ref = sps.ttest_ind(treat, ctrl, equal_var=False)
    ci = ref.confidence_interval(confidence_level=1.0 - alpha)
    assert c.p_value == pytest.approx(ref.pvalue, abs=1e-10)
    assert c.ci_low == pytest.approx(ci.low, abs=1e-10)
    assert c.ci_high == pytest.approx(ci.high, abs=1e-10)
    assert c.effect == pytest.approx(treat.mean() - ctrl.mean(), abs=1e-12)
    pooled_avg_sd = math.sqrt((treat.var(ddof=1) + ctrl.var(ddof=1)) / 2.0)
    assert c.effect_size == pytest.approx((treat.mean() - ctrl.mean()) / pooled_avg_sd)
    assert (c.test, c.metric, c.variant, c.odds_ratio) == ("welch", "XP_VELOCITY", "B", None)
    assert c.p_adjusted == c.p_value
    assert c.significant == (ref.pvalue < alpha)


def test_welch_detects_a_clear_shift() -> None:
    rng = np.random.default_rng(7)
    treat, ctrl = rng.normal(1.0, 1.0, size=200), rng.normal(0.0, 1.0, size=200)
    c = welch(
        MeanSummary.from_sample(treat), MeanSummary.from_sample(ctrl), metric="m", variant="B"
    )
    assert c.significant
    assert c.p_value < 1e-10
    assert c.ci_low > 0.5


@pytest.mark.parametrize(
    ("treat", "ctrl"),
    [([1.0], [1.0, 2.0, 3.0]), ([1.0, 2.0], []), ([2.0, 2.0, 2.0], [5.0, 5.0])],
    ids=["n=1", "empty", "zero-variance"],
)
def test_welch_degenerate_inputs(treat: list[float], ctrl: list[float]) -> None:
    c = welch(
        MeanSummary.from_sample(treat), MeanSummary.from_sample(ctrl), metric="m", variant="B"
    )
    assert c.p_value == 1.0
    assert c.p_adjusted == 1.0
    assert not c.significant
    assert math.isnan(c.ci_low)
    assert math.isnan(c.ci_high)


def test_welch_zero_variance_in_one_arm_only_is_a_valid_test() -> None:
    treat, ctrl = [2.0, 2.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0, 5.0]
    c = welch(
        MeanSummary.from_sample(treat), MeanSummary.from_sample(ctrl), metric="m", variant="B"
    )
    # Control: mean 3, var 2.5, n 5 -> se^2 = 0.5; Welch df = 0.5^2 / (0.5^2 / 4) = 4.
    t_stat = (2.0 - 3.0) / math.sqrt(0.5)
    assert c.p_value == pytest.approx(2.0 * sps.t.sf(abs(t_stat), 4), abs=1e-12)
    half = sps.t.ppf(0.975, 4) * math.sqrt(0.5)
    assert (c.ci_low, c.ci_high) == pytest.approx((-1.0 - half, -1.0 + half), abs=1e-12)


# --- Fisher and Newcombe ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "n1", "b", "n2"),
    [(56, 70, 48, 80), (9, 10, 3, 10), (5, 56, 0, 29), (3, 400, 11, 380), (0, 10, 0, 20)],
)
def test_fisher_unclustered_matches_scipy_exactly(a: int, n1: int, b: int, n2: int) -> None:
    c = fisher(
        RatioSummary.from_counts(a, n1),
        RatioSummary.from_counts(b, n2),
        metric="RETENTION_RATE",
        variant="B",
    )
    ref = sps.fisher_exact([[a, n1 - a], [b, n2 - b]], alternative="two-sided")
    assert c.p_value == ref.pvalue
    assert c.odds_ratio is not None
    if math.isnan(ref.statistic):  # 0/10 vs 0/20: the sample odds ratio is 0/0
        assert math.isnan(c.odds_ratio)
    else:
        assert c.odds_ratio == ref.statistic
    assert c.effect == a / n1 - b / n2
    assert c.effect_size == pytest.approx(
        2 * math.asin(math.sqrt(a / n1)) - 2 * math.asin(math.sqrt(b / n2))
    )
    assert c.test == "fisher"


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score, no CC).
NEWCOMBE_TABLE_II = [
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
]


@pytest.mark.parametrize(("a", "n1", "b", "n2", "lo", "hi"), NEWCOMBE_TABLE_II)
def test_newcombe_interval_matches_published_table(
    a: int, n1: int, b: int, n2: int, lo: float, hi: float
) -> None:
    c = fisher(
        RatioSummary.from_counts(a, n1), RatioSummary.from_counts(b, n2), metric="m", variant="B"
    )
    assert c.ci_low == pytest.approx(lo, abs=1e-4)
    assert c.ci_high == pytest.approx(hi, abs=1e-4)


def test_fisher_zero_trials_is_not_evidence() -> None:
    c = fisher(
        RatioSummary.from_counts(0, 0), RatioSummary.from_counts(4, 9), metric="m", variant="B"
    )
    assert (c.p_value, c.p_adjusted, c.significant) == (1.0, 1.0, False)
    assert math.isnan(c.ci_low)
    assert math.isnan(c.ci_high)


def test_fisher_clustered_uses_effective_counts() -> None:
    rng = np.random.default_rng(3)
    x_t, m_t = _beta_binomial(rng, (300,), mean=0.35, icc=0.2, mean_m=8.0)
    x_c, m_c = _beta_binomial(rng, (300,), mean=0.30, icc=0.2, mean_m=8.0)
    t, c = RatioSummary.from_sample(x_t, m_t), RatioSummary.from_sample(x_c, m_c)
    assert t.design_effect > 1.5
    assert c.design_effect > 1.5
    cmp = fisher(t, c, metric="MISSION_COMPLETION", variant="B")
    (s_t, n_t), (s_c, n_c) = t.effective(), c.effective()
    assert n_t == round(t.trials / t.design_effect)
    assert s_t == round(t.successes / t.design_effect)
    ref = sps.fisher_exact([[s_t, n_t - s_t], [s_c, n_c - s_c]])
    assert cmp.p_value == ref.pvalue
    assert cmp.odds_ratio == ref.statistic
    assert cmp.effect == t.proportion - c.proportion
    naive = fisher(
        RatioSummary.from_counts(t.successes, t.trials),
        RatioSummary.from_counts(c.successes, c.trials),
        metric="MISSION_COMPLETION",
        variant="B",
    )
    assert cmp.ci_low < cmp.effect < cmp.ci_high
    assert cmp.ci_high - cmp.ci_low > 1.2 * (naive.ci_high - naive.ci_low)
    assert cmp.p_value > naive.p_value


# --- design effect ----------------------------------------------------------------------------


def test_design_effect_is_one_without_clustering() -> None:
    assert RatioSummary.from_counts(56, 70).design_effect == 1.0
    assert RatioSummary.from_counts(56, 70).effective() == (56, 70)
    rng = np.random.default_rng(11)
    per_user = rng.binomial(1, 0.3, size=500)
    assert RatioSummary.from_sample(per_user, np.ones(500, dtype=int)).design_effect == 1.0
    # Several independent trials per user with a common p: clusters carry no extra variance.
    m = 1 + rng.poisson(4.0, size=5000)
    deff = RatioSummary.from_sample(rng.binomial(m, 0.3), m).design_effect
    assert 1.0 <= deff < 1.08


def test_design_effect_undefined_cases_are_one() -> None:
    assert RatioSummary.from_sample([2], [5]).design_effect == 1.0  # one cluster
    assert RatioSummary.from_sample([0, 0, 0], [2, 5, 1]).design_effect == 1.0  # p = 0
    assert RatioSummary.from_sample([2, 5, 1], [2, 5, 1]).design_effect == 1.0  # p = 1
    assert RatioSummary.from_sample([], []).effective() == (0, 0)


def test_design_effect_matches_direct_ratio_variance() -> None:
    rng = np.random.default_rng(5)
    x, m = _beta_binomial(rng, (400,), mean=0.25, icc=0.1, mean_m=12.0)
    s = RatioSummary.from_sample(x, m)
    n, total_m = x.size, m.sum()
    p = x.sum() / total_m
    var_ratio = n / (n - 1) * np.sum((x - p * m) ** 2) / total_m**2
    deff = var_ratio / (p * (1 - p) / total_m)
    assert deff > 1.5
    assert s.design_effect == pytest.approx(deff, rel=1e-12)


def test_design_effect_matches_beta_binomial_theory() -> None:
    # Equal cluster sizes m and intra-cluster correlation rho: deff = 1 + (m - 1) * rho.
    rng = np.random.default_rng(9)
    p = rng.beta(0.3 * 9.0, 0.7 * 9.0, size=40_000)  # rho = 1 / (a + b + 1) = 0.1
    m = np.full(40_000, 10)
    deff = RatioSummary.from_sample(rng.binomial(m, p), m).design_effect
    assert deff == pytest.approx(1.9, abs=0.06)


@pytest.mark.slow
def test_corrected_fisher_holds_its_size_on_clustered_aa_data() -> None:
    rng = np.random.default_rng(2024)
    draws, users = 2000, 150
    x, m = _beta_binomial(rng, (draws, 2, users), mean=0.3, icc=0.15, mean_m=10.0)
    corrected = naive = 0
    for xd, md in zip(x, m, strict=True):
        t, c = RatioSummary.from_sample(xd[0], md[0]), RatioSummary.from_sample(xd[1], md[1])
        corrected += fisher(t, c, metric="m", variant="B").p_value < 0.05
        raw_t = RatioSummary.from_counts(t.successes, t.trials)
        raw_c = RatioSummary.from_counts(c.successes, c.trials)
        naive += fisher(raw_t, raw_c, metric="m", variant="B").p_value < 0.05
    assert abs(corrected / draws - 0.05) <= 0.015
    assert naive / draws > 0.07


# --- Holm -------------------------------------------------------------------------------------


def _cmp(variant: str, p: float) -> Comparison:
    return Comparison("m", variant, "welch", 0.0, -1.0, 1.0, p, p, 0.0, p < 0.05)


def test_holm_matches_hand_computation() -> None:
    out = holm_adjust([_cmp("B", 0.01), _cmp("C", 0.04), _cmp("D", 0.03)])
    assert [c.variant for c in out] == ["B", "C", "D"]
    assert [c.p_adjusted for c in out] == pytest.approx([0.03, 0.06, 0.06])
    assert [c.significant for c in out] == [True, False, False]
    assert [c.p_value for c in out] == [0.01, 0.04, 0.03]


def test_holm_caps_at_one_and_respects_alpha() -> None:
    out = holm_adjust([_cmp("B", 0.6), _cmp("C", 0.7), _cmp("D", 0.02)], alpha=0.1)
    assert [c.p_adjusted for c in out] == pytest.approx([1.0, 1.0, 0.06])
    assert [c.significant for c in out] == [False, False, True]
    assert holm_adjust([]) == []


def test_holm_is_monotone_in_p() -> None:
    ps = np.random.default_rng(1).uniform(0.0, 0.2, size=12)
    out = holm_adjust([_cmp(str(i), float(p)) for i, p in enumerate(ps)])
    adj = np.array([c.p_adjusted for c in out])
    order = np.argsort(ps)
    assert np.all(np.diff(adj[order]) >= 0.0)
    assert np.all(adj >= ps)
    assert np.all(adj <= 1.0)


# --- bootstrap --------------------------------------------------------------------------------


def test_bootstrap_mean_ci_matches_scipy() -> None:
    values = np.random.default_rng(4).exponential(2.0, size=25)
    mean, lo, hi = bootstrap_mean_ci(values, np.random.default_rng(99), n_resamples=999)
    ref = sps.bootstrap(
        (values,), np.mean, n_resamples=999, method="percentile", rng=np.random.default_rng(99)
    ).confidence_interval
    assert mean == pytest.approx(values.mean())
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert lo < mean < hi


def test_bootstrap_mean_ci_small_and_constant_inputs() -> None:
    rng = np.random.default_rng(0)
    empty = bootstrap_mean_ci([], rng)
    assert all(math.isnan(v) for v in empty)
    mean, lo, hi = bootstrap_mean_ci([3.5], rng)
    assert mean == 3.5
    assert math.isnan(lo)
    assert math.isnan(hi)
    assert bootstrap_mean_ci([2.0, 2.0, 2.0], rng) == (2.0, 2.0, 2.0)
