"""Signals from simulated users, and calibration of the statistics on A/A experiments."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats as sps

from arena_rl.core.signals import OBJECTIVE, compare_to_control
from arena_rl.core.stats import MeanSummary, fisher, welch
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, economy_array
from arena_rl.scenarios.gamification.metrics import METRICS
from arena_rl.scenarios.gamification.population import Population
from arena_rl.scenarios.gamification.specs import load_population


def run(n_arms: int, users_per_arm: int, days: int, seed: int, economies=None) -> Population:
    pop = Population(
        load_population(), load_scenario(), n_arms, seed=seed, n_users=n_arms * users_per_arm
    )
    table = economy_array(economies or [DEFAULT_ECONOMY] * n_arms)
    for _ in range(days):
        pop.step(table)
    return pop


def test_signals_are_computed_from_the_users() -> None:
    pop = run(2, 800, 10, seed=1)
    sig = pop.signals(pop.summarise())[1]
    n = pop.n_enrolled
    enrolled = pop.enrolled_mask()[1]
    active_today = (pop.recent[1, :n] & 1).astype(bool)
    assert sig.enrolled == enrolled.sum()
    assert sig.active_today == active_today.sum()
    assert sig.total_actions == int(pop.scans_total[1].sum())
    assert sig.experiment_days == 10
    scan = sig.metrics["SCAN_FREQUENCY"]
    assert scan.value == pytest.approx(pop.scans_today[1, :n][active_today].mean(), rel=1e-6)
    assert scan.sample_size == sig.active_today
    assert scan.std_dev == pytest.approx(pop.scans_today[1, :n][active_today].std(ddof=1), 1e-5)
    retention = sig.metrics["RETENTION_RATE"]
    assert retention.value == pytest.approx(sig.active_7d / sig.enrolled)
    streak = sig.metrics["STREAK_LENGTH"]
    assert streak.value == pytest.approx(pop.streak[1, :n][enrolled].mean(), rel=1e-6)
    quality = sig.metrics["FEEDBACK_QUALITY"]
    assert quality.value == pytest.approx(pop.useful_total[1].sum() / pop.scans_total[1].sum())
    assert 0.0 <= quality.value <= 1.0
    assert all(m.confidence == "high" for m in sig.metrics.values())
    assert set(sig.to_api()["metrics"]) == set(METRICS)


@pytest.mark.parametrize("xp_budget", [80.0, 5.0])  # 5: every arm overspends, shared by XP
def test_each_users_objective_adds_up_to_the_arms_objective(xp_budget: float) -> None:
    """The objective summary is the day's value split exactly over users: summed over an arm's
    users it is the arm's objective, day by day (users enrol over the days)."""
    scenario = load_scenario()
    scenario = dataclasses.replace(
        scenario, objective=dataclasses.replace(scenario.objective, xp_budget=xp_budget)
    )
    pop = Population(load_population(), scenario, 3, seed=6, n_users=3 * 700)
    table = economy_array(
        [DEFAULT_ECONOMY, {**DEFAULT_ECONOMY, "scanXp": 30.0}, {**DEFAULT_ECONOMY, "photoXp": 0}]
    )
    arm_total = np.zeros(3)
    for _ in range(12):
        outcome = pop.step(table)
        arm_total += outcome.value * outcome.enrolled
    users = pop.user_objective().sum(axis=1)
    assert users == pytest.approx(arm_total, rel=1e-4)
    summary = pop.objective_summary()
    assert [s.n for s in summary] == list(pop.enrolled_by(11))
    assert [s.mean for s in summary] == pytest.approx(users / pop.enrolled_by(11), rel=1e-6)


def test_confidence_is_low_for_a_tiny_experiment() -> None:
    pop = run(2, 6, 1, seed=0)
    sig = pop.signals(pop.summarise())[1]
    assert sig.metrics["RETENTION_RATE"].confidence == "low"


def test_welch_on_population_summaries_matches_scipy_on_the_raw_users() -> None:
    pop = run(2, 600, 8, seed=2)
    n = pop.n_enrolled
    enrolled = pop.enrolled_mask()
    streaks = [pop.streak[a, :n][enrolled[a]].astype(np.float64) for a in (0, 1)]
    summaries = pop.summarise()["STREAK_LENGTH"]
    ours = welch(summaries[1], summaries[0], metric="STREAK_LENGTH", variant="v")
    ref = sps.ttest_ind(streaks[1], streaks[0], equal_var=False)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    lo, hi = ref.confidence_interval()
    assert (ours.ci_low, ours.ci_high) == pytest.approx((lo, hi), rel=1e-8)


def test_retention_fisher_matches_scipy_fisher_exact() -> None:
    pop = run(2, 500, 9, seed=3)
    s = pop.summarise()["RETENTION_RATE"]
    ours = fisher(s[1], s[0], metric="RETENTION_RATE", variant="v")
    table = [[s[1].successes, s[1].trials - s[1].successes],
             [s[0].successes, s[0].trials - s[0].successes]]  # fmt: skip
    assert ours.p_value == pytest.approx(sps.fisher_exact(table).pvalue, rel=1e-10)


def test_compare_to_control_detects_a_real_lift_and_applies_holm() -> None:
    economies = [DEFAULT_ECONOMY, DEFAULT_ECONOMY, {**DEFAULT_ECONOMY, "scanXp": 15.0}]
    pop = run(3, 3000, 14, seed=4, economies=economies)
    results = compare_to_control(pop.summarise(), ["same", "more_scan_xp"])
    by_key = {(c.metric, c.variant): c for c in results}
    lifted = by_key[("XP_VELOCITY", "more_scan_xp")]
    assert lifted.effect > 0 and lifted.significant and lifted.ci_low > 0
    assert not by_key[("XP_VELOCITY", "same")].significant
    for metric in METRICS:  # Holm: the adjusted p-values are never below the raw ones
        for variant in ("same", "more_scan_xp"):
            c = by_key[(metric, variant)]
            assert c.p_adjusted >= c.p_value


@pytest.mark.slow
def test_aa_false_positive_rate_and_ci_coverage_are_nominal() -> None:
    """2,000 A/A comparisons per metric: independent arm pairs with identical economies.

    Each population has 40 arms paired (0, 1), (2, 3), ...; 100 seeds give 2,000 independent
    comparisons per metric. Bars: false-positive rate at alpha = 0.05 within 5 % ± 1 %, and
    95 % CIs cover the true difference (0) 95 % ± 1.5 % of the time.
    """
    pairs, seeds = 20, 100
    tested = (*METRICS, OBJECTIVE)  # the objective per enrolled user is tested like a metric
    rejections = dict.fromkeys(tested, 0)
    covered = dict.fromkeys(tested, 0)
    for seed in range(seeds):
        pop = run(2 * pairs, 500, 14, seed=seed)
        summaries = {**pop.summarise(), OBJECTIVE: pop.objective_summary()}
        for metric in tested:
            for i in range(pairs):
                a, b = summaries[metric][2 * i + 1], summaries[metric][2 * i]
                test = welch if isinstance(a, MeanSummary) else fisher
                c = test(a, b, metric=metric, variant="aa")  # type: ignore[arg-type]
                rejections[metric] += c.p_value < 0.05
                covered[metric] += c.ci_low <= 0.0 <= c.ci_high
    total = pairs * seeds
    report = {m: (rejections[m] / total, covered[m] / total) for m in tested}
    print("A/A false-positive rate and CI coverage:", report)
    for metric, (fpr, coverage) in report.items():
        assert 0.04 <= fpr <= 0.06, (metric, fpr)
        assert 0.935 <= coverage <= 0.965, (metric, coverage)
