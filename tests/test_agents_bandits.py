"""Behaviour of the arm-based bandits (ucb, thompson, etc, linucb) and their shared schedule.

Most tests drive an agent by hand: a fake platform applies every requested update at once and
feeds signals whose estimated objective is a chosen number per arm, so what each strategy does
with its rewards is checked without the simulator's noise.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping

import numpy as np
import pytest
from scipy import stats

from agents.arms import ArmBandit, arm_economies, bound_arms, resolve_arms
from agents.etc import ExploreThenCommit
from agents.linucb import LinUCB
from agents.random_agent import RandomAgent
from agents.thompson import ThompsonSampling
from agents.ucb import UCB1
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals
from arena_rl.core.stats import Confidence, MetricValue
from arena_rl.experiment import run_experiment
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, KNOBS, validate_overrides
from arena_rl.scenarios.gamification.metrics import METRICS
from arena_rl.scenarios.gamification.specs import ARM_SETS

BASE = dict(DEFAULT_ECONOMY)
ARMS = {
    "generous": {"scanXp": 1.2, "streakBonusPerDay": 1.4},
    "base": {},
    "lean": {"photoXp": 0.5, "firstScanOfDayXp": 0.5, "issueReportXp": 1.5},
}


def info(days: int = 28) -> VariantInfo:
    return VariantInfo.of("v", days=days, base_economy=BASE)


def signals(
    day: int, value: float, *, confidence: Confidence = "high", enrolled: int = 1000
) -> Signals:
    """Signals whose estimated objective (agents.common.reward) is exactly ``value``.

    Nobody active and no scans, so the estimate is ``-xp_cost · XP_VELOCITY``.
    """
    xp = -value / load_scenario().objective.xp_cost
    metrics = {m: MetricValue(0.0, 0.0, 100, confidence) for m in METRICS}
    metrics["XP_VELOCITY"] = MetricValue(xp, 1.0, 100, confidence)
    return Signals(enrolled, 0, 0, 0, day, metrics)


def drive(
    agent: ArmBandit, value_of: Callable[[int, int], float], days: int = 28
) -> list[ConfigUpdate | None]:
    """Run ``agent`` on a fake platform that applies updates at once (no clamp, no limit).

    ``value_of(arm, day)`` is the reward seen on ``day`` for the arm whose economy ran the day
    before (-1 when the economy is none of the arms').
    """
    agent.reset(info(days), np.random.default_rng(0))
    config, ran, answers = dict(BASE), -1, []
    for day in range(days):
        answer = agent.decide(signals(day, value_of(ran, day)), config)
        answers.append(answer)
        if answer is not None:
            assert answer.reasoning
            validate_overrides(answer.overrides)
            config.update(answer.overrides)
        ran = next((i for i, t in enumerate(agent.targets_) if t == config), -1)
    return answers


def by_arm(values: Mapping[int, float]) -> Callable[[int, int], float]:
    return lambda arm, day: values.get(arm, 0.0)


# ---- the shared schedule -------------------------------------------------------------------


def test_arm_economies_scale_the_base_and_round_caps() -> None:
    economies = arm_economies(BASE, {"x": {"scanXp": 1.5, "feedbackDailyCap": 0.33}}, KNOBS)
    assert economies["x"]["scanXp"] == 15.0
    assert economies["x"]["feedbackDailyCap"] == 3.0
    assert economies["x"]["photoXp"] == BASE["photoXp"]
    assert arm_economies(BASE, {"x": {"scanDailyCap": 0.0}}, KNOBS)["x"]["scanDailyCap"] == 0.0
    with pytest.raises(ValueError):
        arm_economies(BASE, {}, KNOBS)


def test_arms_default_to_the_scenarios_default_set() -> None:
    """``arms: null`` on gamification is the scenario's default arm set, in order."""
    scenario = load_scenario()
    agent = UCB1()
    agent.reset(info(), np.random.default_rng(0))
    assert agent.arm_names_ == ["retention", "balanced", "frugal", "lean", "reports"]
    assert agent.targets_ == list(arm_economies(BASE, ARM_SETS["default"], KNOBS).values())
    assert resolve_arms("default", scenario, BASE) == resolve_arms(None, scenario, BASE)


def test_arms_by_name_and_from_the_bounds() -> None:
    derived = resolve_arms("bounds", load_scenario(), BASE)
    assert derived == bound_arms(BASE, KNOBS)
    assert list(derived) == ["base", "lower", "higher", "mixed_a", "mixed_b"]
    assert derived["base"] == BASE
    for key, knob in KNOBS.by_name.items():  # a third of the way toward each bound
        third = (knob.search_high - BASE[key]) / 3
        assert derived["lower"][key] == pytest.approx(BASE[key] * 2 / 3, abs=0.5)
        assert derived["higher"][key] == pytest.approx(BASE[key] + third, abs=0.5)
    first, second = KNOBS.keys[:2]  # mixed arms move neighbours apart
    assert derived["mixed_a"][first] < BASE[first] and derived["mixed_a"][second] > BASE[second]
    assert derived["mixed_b"][first] > BASE[first] and derived["mixed_b"][second] < BASE[second]
    for economy in derived.values():
        KNOBS.validate(economy)


def test_unknown_arm_sets_and_knobs_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match=r"no arm set 'bold'; available: default, bounds"):
        UCB1("bold").reset(info(), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"unknown knob 'gold'.*scanXp"):
        UCB1({"a": {"gold": 2.0}}).reset(info(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="finite and >= 0"):
        UCB1({"a": {"scanXp": -1.0}}).reset(info(), np.random.default_rng(0))


def test_a_pull_is_scored_after_the_transition_and_averages_its_hold() -> None:
    agent = UCB1(ARMS, hold_days=3, transition_days=2)
    # day 0 moves to arm 0; days 1-2 are its transition; days 3-5 its hold
    drive(agent, lambda arm, day: 100.0 if day < 3 else float(day), days=6)
    (pull,) = agent.pulls_
    assert pull.arm == 0
    assert pull.daily == (3.0, 4.0, 5.0)
    assert pull.value == pytest.approx(4.0)
    assert agent.counts_.tolist() == [1, 0, 0]


def test_unconfident_days_are_not_scored() -> None:
    agent = ExploreThenCommit(ARMS, hold_days=2)
    agent.reset(info(), np.random.default_rng(0))
    config = dict(BASE)
    for day in range(10):
        update = agent.decide(signals(day, 1.0, confidence="low"), config)
        if update is not None:
            config.update(update.overrides)
    assert not agent.pulls_


def test_being_pushed_off_the_target_restarts_the_pull() -> None:
    agent = ExploreThenCommit(ARMS, hold_days=2)
    agent.reset(info(), np.random.default_rng(0))
    target = agent.targets_[0]
    agent.decide(signals(0, 0.0), BASE)
    agent.decide(signals(1, 1.0), target)  # one held day
    agent.decide(signals(2, 1.0), BASE)  # a breaker reset put the variant back
    agent.decide(signals(3, 2.0), target)
    assert not agent.pulls_
    agent.decide(signals(4, 2.0), target)
    assert agent.pulls_[0].daily == (2.0, 2.0)


def test_no_new_arm_is_started_that_cannot_finish() -> None:
    agent = ExploreThenCommit(ARMS, hold_days=2)
    drive(agent, by_arm({0: 1.0, 1: 3.0, 2: 2.0}), days=6)
    # pulls end on days 2 and 4; arm 2 would be scored on days 5 and 6: past the end
    assert [p.arm for p in agent.pulls_] == [0, 1]
    assert agent.pull_ is not None and agent.pull_.arm == 1


def test_drift_is_fitted_from_repeated_pulls() -> None:
    agent = ExploreThenCommit(ARMS, rounds=2, hold_days=1)
    drive(agent, lambda arm, day: 10.0 - 0.1 * day, days=12)
    assert agent.drift() == pytest.approx(-0.1, rel=0.5)
    means = agent.arm_means()
    assert np.ptp(means) < np.ptp([p.value for p in agent.pulls_])


def test_edge_signals_do_not_raise() -> None:
    for agent in (UCB1(ARMS), ThompsonSampling(ARMS), ExploreThenCommit(ARMS), LinUCB(ARMS)):
        agent.reset(info(), np.random.default_rng(0))
        config = dict(BASE)
        for sig in [
            signals(0, 0.0, confidence="low", enrolled=0),
            signals(1, 0.0, enrolled=0),
            signals(2, -1e6),
            signals(3, 1e6),
            signals(4, 0.0, confidence="medium"),
            signals(5, 0.0),
        ]:
            update = agent.decide(sig, config)
            if update is not None:
                config.update(validate_overrides(update.overrides))


# ---- the strategies ------------------------------------------------------------------------


def test_ucb_pulls_every_arm_once_then_exploits() -> None:
    agent = UCB1(ARMS, c=0.0)
    drive(agent, by_arm({0: 1.0, 1: 3.0, 2: 2.0}))
    arms = [p.arm for p in agent.pulls_]
    assert arms[:3] == [0, 1, 2]
    assert set(arms[3:]) == {1}


def test_ucb_bonus_revisits_a_close_arm() -> None:
    rewards = {0: 1.0, 1: 3.0, 2: 2.0}
    greedy, curious = UCB1(ARMS, c=0.0), UCB1(ARMS, c=1e6)
    drive(greedy, by_arm(rewards))
    drive(curious, by_arm(rewards))
    assert len({p.arm for p in curious.pulls_[3:]}) > len({p.arm for p in greedy.pulls_[3:]})


def test_thompson_posterior_follows_the_pulls() -> None:
    agent = ThompsonSampling(ARMS)
    drive(agent, by_arm({0: 1.0, 1: 3.0, 2: 2.0}), days=8)
    mean, sd = agent.posterior()
    assert agent.counts_.tolist() == [1, 1, 1]
    assert mean[1] > mean[2] > mean[0]
    drive(agent, by_arm({0: 1.0, 1: 3.0, 2: 2.0}))
    mean, later_sd = agent.posterior()
    assert agent.counts_[1] > 1
    assert later_sd[1] < sd[1]  # more pulls, narrower posterior
    assert mean[1] == max(mean)


def test_thompson_samples_from_its_own_generator() -> None:
    def choices(seed: int) -> list[int]:
        agent = ThompsonSampling(ARMS, prior_sd=1.0, noise_sd=50.0)
        agent.reset(info(), np.random.default_rng(seed))
        config = dict(BASE)
        for day in range(28):
            update = agent.decide(signals(day, float(day % 3)), config)
            if update is not None:
                config.update(update.overrides)
        return [p.arm for p in agent.pulls_]

    assert choices(1) == choices(1)
    assert len({tuple(choices(s)) for s in range(6)}) > 1  # wide posteriors: draws differ


def test_etc_commits_to_the_best_mean_after_its_budget() -> None:
    agent = ExploreThenCommit(ARMS, rounds=2)
    drive(agent, by_arm({0: 1.0, 1: 2.0, 2: 3.0}))
    arms = [p.arm for p in agent.pulls_]
    assert arms[:6] == [0, 1, 2, 0, 1, 2]
    assert agent.committed_
    assert set(arms[6:]) == {2}


def test_linucb_context_is_scaled_and_unknown_reads_as_half() -> None:
    agent = LinUCB(ARMS)
    agent.reset(info(), np.random.default_rng(0))
    unknown = agent.context(signals(0, 0.0, confidence="low", enrolled=0))
    assert unknown.shape == (7,)  # bias, active, retention, 3 objective metrics, day
    assert unknown[1:6].tolist() == [0.5] * 5
    x = agent.context(signals(14, -0.5))  # XP_VELOCITY 50: its first level
    assert np.all((x >= 0) & (x <= 1))
    assert x[0] == 1.0
    assert x[-1] == pytest.approx(0.5)
    assert x[4] == pytest.approx(0.5)  # XP_VELOCITY at its level reads 0.5
    assert agent.levels_ == {"XP_VELOCITY": pytest.approx(50.0)}  # zero readings set none
    assert agent.context(signals(15, -1.0))[4] == pytest.approx(1.0)  # doubled


def test_linucb_prefers_the_arm_that_paid_in_this_context() -> None:
    agent = LinUCB(ARMS, alpha=1.0)
    drive(agent, lambda arm, day: {0: 1.0, 1: 3.0, 2: 2.0}.get(arm, 0.0) + 0.1 * (-1) ** day)
    predicted, _ = agent.scores(agent.context(signals(20, 2.0)))
    assert int(np.argmax(predicted)) == 1
    arms = [p.arm for p in agent.pulls_]
    assert arms[:2] == [0, 1]  # untried arms carry the widest bonus
    assert arms[-3:] == [1, 1, 1]


def test_linucb_bonus_shrinks_with_pulls() -> None:
    agent = LinUCB(ARMS, alpha=1.0)
    drive(agent, by_arm({0: 1.0, 1: 1.0, 2: 1.0}), days=4)
    _, bonus = agent.scores(agent.context(signals(4, 1.0)))
    assert agent.counts_[0] == 1
    assert bonus[0] < bonus[1]


@pytest.mark.parametrize("make", [UCB1, ThompsonSampling, ExploreThenCommit, LinUCB])
def test_pickles_before_reset_and_repeats_with_the_same_seed(
    make: Callable[..., ArmBandit],
) -> None:
    agent = pickle.loads(pickle.dumps(make(ARMS)))
    assert agent.arms == ARMS
    first = run_experiment({"a": agent}, seed=5, n_users=600, days=10)
    again = run_experiment({"a": make(ARMS)}, seed=5, n_users=600, days=10)
    assert first.audit == again.audit
    assert not first.faults["a"]
    counts = first.guardrail_counts["a"]
    assert counts["rejected_rate_limited"] == counts["rejected_invalid_update"] == 0


@pytest.mark.slow
def test_bandits_beat_random_on_the_default_population() -> None:
    """The brief's self-check with the configured defaults: each bandit vs random, 20 seeds,
    one-sided Wilcoxon signed-rank test on the paired lifts (random's lifts are heavy-tailed)."""
    from arena_rl.config import agent_configs, build_agent

    names = ["ucb", "thompson", "etc", "linucb"]
    configs = agent_configs(names)
    lifts: dict[str, list[float]] = {n: [] for n in [*names, "random"]}
    for seed in range(20):
        agents = {n: build_agent(n, configs[n]) for n in names} | {"random": RandomAgent()}
        result = run_experiment(agents, seed=seed, n_users=2000 * (len(agents) + 1))
        for name in lifts:
            lifts[name].append(result.lift(name))
    for name in names:
        test = stats.wilcoxon(lifts[name], lifts["random"], alternative="greater")
        assert test.pvalue < 0.05, (name, np.mean(lifts[name]), test.pvalue)
        assert np.mean(lifts[name]) > 0, name
