"""Behaviour of the rule, pid and hedge strategies: what could silently go wrong in each."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from types import MappingProxyType

import numpy as np
import pytest
from scipy import stats

import agents.hedge as hedge_module
from agents.common import nudged
from agents.hedge import HedgeEnsemble, View, affordable, default_experts
from agents.pid import PIDController
from agents.random_agent import RandomAgent
from agents.rule import RuleBased, cost_share
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import GuardrailResult
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.experiment import run_experiment
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, KNOBS, validate_overrides
from arena_rl.scenarios.gamification.metrics import METRICS

BASE = dict(DEFAULT_ECONOMY)


def info() -> VariantInfo:
    return VariantInfo.of("v", base_economy=BASE)


def signals(day: int, confidence: str = "high", active: int = 450, **values: float) -> Signals:
    """1000 enrolled users; every metric at a plausible value unless given."""
    plain = {
        "SCAN_FREQUENCY": 4.0,
        "XP_VELOCITY": 50.0,
        "RETENTION_RATE": 0.8,
        "MISSION_COMPLETION": 0.3,
        "STREAK_LENGTH": 2.0,
        "FEEDBACK_QUALITY": 0.17,
    }
    plain.update(values)
    n = 1000 if confidence == "high" else 20 if confidence == "medium" else 5
    metrics = {m: MetricValue(plain[m], 0.1, n, confidence) for m in METRICS}  # type: ignore[arg-type]
    return Signals(1000, active, 800, 10_000, day, metrics)


def accepted(day: int) -> GuardrailResult:
    return GuardrailResult(True, dict(BASE), {}, None, "", day + 1.0, "dec")


def ready(agent: RuleBased | PIDController | HedgeEnsemble, seed: int = 0) -> None:
    agent.reset(info(), np.random.default_rng(seed))


def drive(agent, days: range, config: dict[str, float], **values: float) -> list:
    """Feed ``days`` of the same signals, applying every update in full; returns the updates."""
    updates = []
    for day in days:
        update = agent.decide(signals(day, **values), config)
        updates.append(update)
        if update is not None:
            config.update(update.overrides)
            agent.on_result(accepted(day))
    return updates


# --- rule -------------------------------------------------------------------------------------


def test_nudged_moves_caps_by_a_whole_unit_and_keeps_the_floor() -> None:
    config = {**BASE, "feedbackDailyCap": 2.0, "streakBonusCap": 1.0}
    down = nudged(config, ["feedbackDailyCap", "streakBonusCap", "photoXp"], 0.88, KNOBS)
    assert down["feedbackDailyCap"] == 1.0  # 2 × 0.88 rounds back to 2: a whole unit instead
    assert down["streakBonusCap"] == 1.0  # never below min_cap
    assert down["photoXp"] == pytest.approx(8.8)
    assert nudged(config, ["feedbackDailyCap"], 1.1, KNOBS)["feedbackDailyCap"] == 3.0
    validate_overrides(down)


def test_cost_share_is_the_xp_cost_over_the_gross_value() -> None:
    scenario = info().scenario
    share = cost_share(signals(3, XP_VELOCITY=50.0), scenario)  # type: ignore[arg-type]
    assert share is not None and 0.2 < share < 0.6
    cheaper = cost_share(signals(3, XP_VELOCITY=20.0), scenario)  # type: ignore[arg-type]
    assert cheaper is not None and cheaper < share
    assert cost_share(signals(3, confidence="low"), scenario) is None  # type: ignore[arg-type]


def test_rule_trims_only_on_confident_metrics() -> None:
    agent = RuleBased(cooldown_days=0)
    ready(agent)
    config = dict(BASE)
    assert drive(agent, range(10), config, confidence="low") == [None] * 10
    assert config == BASE
    updates = drive(agent, range(10, 14), config, XP_VELOCITY=60.0)
    made = [u for u in updates if u is not None]
    assert made, "expensive XP on confident metrics must trigger the cost rule"
    for key in made[0].overrides:
        assert key in agent.trim_keys and made[0].overrides[key] < BASE[key]
    assert "trim" in made[0].reasoning


def test_rule_cost_hysteresis() -> None:
    agent = RuleBased(cooldown_days=0, cost_share_enter=0.4, cost_share_exit=0.2, window_days=1)
    ready(agent)
    config = dict(BASE)
    scenario = info().scenario

    def xp_for(share: float) -> float:  # XP velocity that gives this cost share
        lo, hi = 0.0, 80.0
        for _ in range(60):
            mid = (lo + hi) / 2
            value = cost_share(signals(1, XP_VELOCITY=mid), scenario)  # type: ignore[arg-type]
            lo, hi = (mid, hi) if value is not None and value < share else (lo, mid)
        return lo

    between, above, below = xp_for(0.3), xp_for(0.45), xp_for(0.15)
    assert drive(agent, range(1, 4), config, XP_VELOCITY=between) == [None] * 3  # not entered
    assert all(drive(agent, range(4, 6), config, XP_VELOCITY=above))  # enters
    assert all(drive(agent, range(6, 8), config, XP_VELOCITY=between))  # keeps trimming
    assert drive(agent, range(8, 10), config, XP_VELOCITY=below) == [None] * 2  # exits
    assert drive(agent, range(10, 12), config, XP_VELOCITY=between) == [None] * 2  # stays out


def test_rule_holds_for_its_cooldown_after_each_change() -> None:
    agent = RuleBased(cooldown_days=2)
    ready(agent)
    updates = drive(agent, range(1, 12), dict(BASE), XP_VELOCITY=60.0)
    days = [day for day, u in zip(range(1, 12), updates, strict=True) if u is not None]
    assert len(days) >= 2 and all(b - a == 3 for a, b in pairwise(days))


def test_rule_retention_guard_raises_levers_and_pauses_trimming() -> None:
    agent = RuleBased(cooldown_days=0, window_days=3, retention_drop=0.02)
    ready(agent)
    config = dict(BASE)
    drive(agent, range(1, 5), config, XP_VELOCITY=60.0, RETENTION_RATE=0.8)
    update = agent.decide(signals(5, XP_VELOCITY=60.0, RETENTION_RATE=0.75), config)
    assert update is not None and set(update.overrides) == set(agent.retention_levers)
    assert all(update.overrides[k] > config[k] for k in agent.retention_levers)
    assert "retention" in update.reasoning
    agent.on_result(accepted(5))
    config.update(update.overrides)
    # still more than retention_release below its recent best: the cost rule stays paused
    assert agent.decide(signals(6, XP_VELOCITY=60.0, RETENTION_RATE=0.785), config) is None
    # recovered: trimming resumes
    resumed = agent.decide(signals(7, XP_VELOCITY=60.0, RETENTION_RATE=0.8), config)
    assert resumed is not None and set(resumed.overrides) <= set(agent.trim_keys)


# --- pid --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("xp", "direction", "sign"), [(60, 1, -1), (20, 1, 1), (60, -1, 1)])
def test_pid_output_sign_follows_the_error(xp: float, direction: float, sign: int) -> None:
    agent = PIDController(setpoint=35.0, ki=0.0, kd=0.0, direction=direction)
    ready(agent)
    update = agent.decide(signals(1, XP_VELOCITY=xp), BASE)
    assert update is not None
    for key in agent.lever_:
        assert np.sign(update.overrides[key] - BASE[key]) == sign


def test_pid_output_is_clamped_and_scales_the_weighted_lever() -> None:
    agent = PIDController(kp=10.0, output_limit=0.2, lever={"scanXp": 1.0, "photoXp": 0.5})
    ready(agent)
    update = agent.decide(signals(1, XP_VELOCITY=500.0), BASE)
    assert update is not None and set(update.overrides) == {"scanXp", "photoXp"}
    assert update.overrides["scanXp"] == pytest.approx(BASE["scanXp"] * 0.8)
    assert update.overrides["photoXp"] == pytest.approx(BASE["photoXp"] * 0.9)


def test_pid_integral_is_clamped_and_does_not_wind_up_while_saturated() -> None:
    saturated = PIDController(kp=10.0, ki=1.0, output_limit=0.1)
    ready(saturated)
    drive(saturated, range(1, 15), dict(BASE), XP_VELOCITY=100.0)
    assert saturated.integral_ == 0.0  # pinned at the clamp the whole time
    slow = PIDController(kp=0.01, ki=0.01, kd=0.0, integral_limit=1.5, output_limit=1.0)
    ready(slow)
    drive(slow, range(1, 30), dict(BASE), XP_VELOCITY=100.0)
    assert slow.integral_ == pytest.approx(-1.5)


def test_pid_derivative_is_on_the_measurement() -> None:
    agent = PIDController(kp=0.0, ki=0.0, kd=1.0, smoothing=1.0)
    ready(agent)
    config = dict(BASE)
    assert agent.decide(signals(1, XP_VELOCITY=40.0), config) is None  # no derivative yet
    agent.setpoint = 10.0  # a setpoint change alone gives no kick
    assert agent.decide(signals(2, XP_VELOCITY=40.0), config) is None
    update = agent.decide(signals(3, XP_VELOCITY=44.0), config)  # rising XP → cut
    assert update is not None and all(update.overrides[k] < config[k] for k in update.overrides)


def test_pid_skips_no_ops_and_unconfident_readings() -> None:
    agent = PIDController(setpoint=35.0)
    ready(agent)
    assert agent.decide(signals(1, XP_VELOCITY=35.0), BASE) is None
    assert agent.decide(signals(2, confidence="low", XP_VELOCITY=90.0), BASE) is None
    at_floor = {**BASE, **dict.fromkeys(agent.lever_, 0.0)}
    assert agent.decide(signals(3, XP_VELOCITY=90.0), at_floor) is None


def test_pid_rejects_unknown_metric_or_keys() -> None:
    with pytest.raises(ValueError, match="economy keys"):
        ready(PIDController(lever={"gold": 1.0}))
    with pytest.raises(ValueError, match="metric"):
        ready(PIDController(metric="HAPPINESS"))


# --- hedge ------------------------------------------------------------------------------------


def test_hedge_starts_uniform_and_samples_by_weight() -> None:
    agent = HedgeEnsemble(experts={"lean": 10.0, "hold": 0.0})
    ready(agent)
    assert agent.weights_.tolist() == [0.5, 0.5]
    agent.weights_ = np.array([1.0, 0.0])
    updates = drive(agent, range(1, 8), dict(BASE))
    assert all(u is not None and "lean" in u.reasoning for u in updates)


def test_hedge_rewards_the_sub_strategy_whose_choices_raise_the_reward() -> None:
    agent = HedgeEnsemble(experts={"lean": 10.0, "hold": 0.0}, eta=1.0, window_days=1)
    ready(agent, seed=3)
    config, xp = dict(BASE), 60.0
    for day in range(1, 28):
        update = agent.decide(signals(day, XP_VELOCITY=xp), config)
        xp += -2.0 if update is not None else 2.0  # lean's cuts pay, holding costs
        if update is not None:
            config.update(update.overrides)
            agent.on_result(accepted(day))
    assert agent.weights_.sum() == pytest.approx(1.0)
    assert agent.weights_[0] > 0.8


def test_hedge_rejects_unknown_sub_strategies() -> None:
    with pytest.raises(ValueError, match=r"unknown sub-strategies.*raise:cost"):
        ready(HedgeEnsemble(experts={"lean": 10.0, "yolo": 50.0}))


def test_hedge_defaults_on_gamification_are_lean_value_reactive() -> None:
    agent = HedgeEnsemble()
    ready(agent)
    assert agent.names_ == ["lean", "value", "reactive"]
    assert agent.steps_.tolist() == [0.25, 0.25, 0.1]
    assert default_experts(info().scenario) == {"lean": 25.0, "value": 25.0, "reactive": 10.0}


def view(rewards: list[float], **values: float) -> View:
    """Confident days worth ``rewards`` (the history's signals all alike but the last day's
    ``values``)."""
    history = [signals(d) for d in range(len(rewards) - 1)] + [signals(len(rewards), **values)]
    return View(info().scenario, history, rewards)


def test_value_and_reactive_raise_only_while_the_objective_is_not_falling() -> None:
    falling, flat, short = view([1.0] * 3 + [0.9] * 3), view([1.0] * 3 + [0.99] * 3), view([1.0])
    assert not affordable(falling) and affordable(flat) and not affordable(short)
    experts = hedge_module.EXPERTS
    assert experts["value"](falling, BASE, 0.2) is None
    raised = experts["value"](flat, BASE, 0.2)
    assert raised is not None and raised["issueReportXp"] == pytest.approx(30.0)
    assert raised["scanDailyCap"] == 24.0  # the value lever, caps whole
    dropped = view([1.0] * 6, RETENTION_RATE=0.7)  # retention fell; the objective did not
    target = experts["reactive"](dropped, BASE, 0.1)
    assert target is not None and target["firstScanOfDayXp"] > BASE["firstScanOfDayXp"]
    scans = view([1.0] * 6, SCAN_FREQUENCY=3.0)  # scans per active user fell: the activity lever
    target = experts["reactive"](scans, BASE, 0.1)
    assert target is not None and target["scanXp"] == pytest.approx(11.0)
    assert experts["reactive"](view([1.0] * 6), BASE, 0.1) is None  # nothing falling


def test_hedge_learns_to_drop_a_sub_strategy_that_inflates_xp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def inflate(view: View, current: Mapping[str, float], step: float) -> dict[str, float] | None:
        return nudged(current, ("scanXp", "feedbackXp", "firstScanOfDayXp"), 1.25, KNOBS)

    monkeypatch.setattr(
        hedge_module, "EXPERTS", MappingProxyType({**hedge_module.EXPERTS, "inflate": inflate})
    )
    weights = []
    for seed in range(4):
        agent = HedgeEnsemble(experts={"lean": 25.0, "inflate": 25.0}, eta=1.0, window_days=1)
        run_experiment({"h": agent}, seed=seed, n_users=1500)
        weights.append(agent.weights_[1])
    assert np.mean(weights) < 0.3


# --- all three --------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [RuleBased, PIDController, HedgeEnsemble])
def test_every_update_is_valid_and_explained(make: type) -> None:
    result = run_experiment({"a": make()}, seed=2, n_users=1500, days=14)
    entries = [e for e in result.audit if e["variant"] == "a" and e["kind"] == "update"]
    assert entries and all(e["accepted"] and e["reasoning"] for e in entries)
    assert result.faults["a"] == []


@pytest.mark.slow
def test_rule_pid_hedge_beat_random_and_control() -> None:
    """Paired over 20 seeds: each beats random (one-sided paired t, p < 0.05) and control."""
    lifts: dict[str, list[float]] = {"rule": [], "pid": [], "hedge": [], "random": []}
    for seed in range(20):
        agents = {
            "rule": RuleBased(),
            "pid": PIDController(),
            "hedge": HedgeEnsemble(),
            "random": RandomAgent(),
        }
        result = run_experiment(agents, seed=seed, n_users=10_000)
        for name in lifts:
            lifts[name].append(result.lift(name))
    for name in ("rule", "pid", "hedge"):
        mine = np.asarray(lifts[name])
        assert stats.ttest_rel(mine, lifts["random"], alternative="greater").pvalue < 0.05, name
        assert stats.ttest_1samp(mine, 0.0, alternative="greater").pvalue < 0.05, name
