"""Bad hyperparameters are refused when an agent is built, naming the parameter, the value and
what is allowed, so a typo in config fails before any experiment starts, not mid-tournament."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agents.arms import ArmBandit
from agents.bayesopt import GPBayesOpt
from agents.common import BaseAgent
from agents.control import StaticControl
from agents.etc import ExploreThenCommit
from agents.example_threshold import ScanThreshold
from agents.hedge import HedgeEnsemble
from agents.linucb import LinUCB
from agents.llm import LLMAgent
from agents.oracle import Oracle
from agents.pid import PIDController
from agents.ppo import PPOAgent
from agents.random_agent import RandomAgent
from agents.rule import RuleBased
from agents.thompson import ThompsonSampling
from agents.ucb import UCB1
from arena_rl.config import (
    ConfigError,
    agent_configs,
    available_agents,
    build_agent,
    compose_config,
    settings_from,
)

BAD: list[tuple[type[BaseAgent], dict[str, Any], str]] = [
    # (agent, bad hyperparameters, the parameter its message must name)
    (ArmBandit, {"hold_days": 0}, "hold_days"),
    (ArmBandit, {"transition_days": -1}, "transition_days"),
    (ArmBandit, {"arms": 3}, "arms"),
    (UCB1, {"c": -1}, "c"),
    (UCB1, {"c": "high"}, "c"),
    (UCB1, {"c": float("nan")}, "c"),
    (UCB1, {"hold_days": 2.5}, "hold_days"),
    (ThompsonSampling, {"prior_sd": 0.0}, "prior_sd"),
    (ThompsonSampling, {"noise_sd": -1.0}, "noise_sd"),
    (ExploreThenCommit, {"rounds": 0}, "rounds"),
    (ExploreThenCommit, {"transition_days": -2}, "transition_days"),
    (LinUCB, {"alpha": -0.5}, "alpha"),
    (LinUCB, {"ridge": 0.0}, "ridge"),
    (GPBayesOpt, {"n_initial": 0}, "n_initial"),
    (GPBayesOpt, {"max_evaluations": 0}, "max_evaluations"),
    (GPBayesOpt, {"hold_days": 1, "transition_days": 1}, "hold_days"),
    (GPBayesOpt, {"max_move_days": -1}, "max_move_days"),
    (GPBayesOpt, {"exploit_fraction": 1.5}, "exploit_fraction"),
    (GPBayesOpt, {"xi": -0.1}, "xi"),
    (GPBayesOpt, {"kernel": "cubic"}, "kernel"),
    (GPBayesOpt, {"nu": 0.0}, "nu"),
    (GPBayesOpt, {"length_scale": 0.0}, "length_scale"),
    (GPBayesOpt, {"length_scale_bounds": [0.1]}, "length_scale_bounds"),
    (GPBayesOpt, {"noise_bounds": [1.0, 0.1]}, "noise_bounds"),
    (GPBayesOpt, {"ard": "yes"}, "ard"),
    (GPBayesOpt, {"n_candidates": 0}, "n_candidates"),
    (GPBayesOpt, {"n_restarts": -1}, "n_restarts"),
    (HedgeEnsemble, {"experts": {"lean": -5.0}}, "experts"),
    (HedgeEnsemble, {"experts": {}}, "experts"),
    (HedgeEnsemble, {"eta": -0.1}, "eta"),
    (HedgeEnsemble, {"window_days": 0}, "window_days"),
    (HedgeEnsemble, {"reward_gain": 0.0}, "reward_gain"),
    (PIDController, {"kp": -1.0}, "kp"),
    (PIDController, {"ki": -0.1}, "ki"),
    (PIDController, {"kd": -0.1}, "kd"),
    (PIDController, {"output_limit": 0.0}, "output_limit"),
    (PIDController, {"integral_limit": -1.0}, "integral_limit"),
    (PIDController, {"lever": {}}, "lever"),
    (PIDController, {"direction": 0.5}, "direction"),
    (PIDController, {"smoothing": 0.0}, "smoothing"),
    (PIDController, {"min_step": 2.0}, "min_step"),
    (PIDController, {"min_confidence": "certain"}, "min_confidence"),
    (RuleBased, {"trim_keys": "photoXp"}, "trim_keys"),
    (RuleBased, {"trim_pct": 0.0}, "trim_pct"),
    (RuleBased, {"trim_pct": 150.0}, "trim_pct"),
    (RuleBased, {"cost_share_enter": 1.2}, "cost_share_enter"),
    (RuleBased, {"cost_share_exit": 0.5}, "cost_share_exit"),
    (RuleBased, {"raise_pct": -15.0}, "raise_pct"),
    (RuleBased, {"retention_drop": -0.01}, "retention_drop"),
    (RuleBased, {"retention_release": 2.0}, "retention_release"),
    (RuleBased, {"window_days": 0}, "window_days"),
    (RuleBased, {"cooldown_days": -1}, "cooldown_days"),
    (RuleBased, {"min_confidence": "sure"}, "min_confidence"),
    (RuleBased, {"min_cap": -1.0}, "min_cap"),
    (PPOAgent, {"hold_days": 0}, "hold_days"),
    (PPOAgent, {"deterministic": "no"}, "deterministic"),
    (PPOAgent, {"device": 0}, "device"),
    (RandomAgent, {"step_pct": 0.0}, "step_pct"),
    (RandomAgent, {"keys": "scanXp"}, "keys"),
    (RandomAgent, {"hold_days": 0}, "hold_days"),
    (StaticControl, {"hold_days": 1}, "hold_days"),
    (Oracle, {"plan": "best"}, "plan"),
    (Oracle, {"n_phases": 0}, "n_phases"),
    (Oracle, {"users_per_arm": 0}, "users_per_arm"),
    (ScanThreshold, {"target_scans": -1.0}, "target_scans"),
    (ScanThreshold, {"step": 1.5}, "step"),
    (LLMAgent, {"answer": "poem"}, "answer"),
    (LLMAgent, {"response_format": "xml"}, "response_format"),
    (LLMAgent, {"move_pct": 0.0}, "move_pct"),
    (LLMAgent, {"step_pct": 101.0}, "step_pct"),
    (LLMAgent, {"decide_every_days": 0}, "decide_every_days"),
    (LLMAgent, {"history": -1}, "history"),
    (LLMAgent, {"temperature": -0.5}, "temperature"),
    (LLMAgent, {"max_tokens": 0}, "max_tokens"),
    (LLMAgent, {"max_calls_per_minute": 0.0}, "max_calls_per_minute"),
    (LLMAgent, {"max_retries": -1}, "max_retries"),
    (LLMAgent, {"backoff_s": -1.0}, "backoff_s"),
    (LLMAgent, {"timeout_s": 0.0}, "timeout_s"),
    (LLMAgent, {"n_ctx": 0}, "n_ctx"),
    (LLMAgent, {"n_threads": 0}, "n_threads"),
    (LLMAgent, {"n_gpu_layers": -2}, "n_gpu_layers"),
    (LLMAgent, {"prices": 3}, "prices"),
    (LLMAgent, {"cache": "off"}, "cache"),
]


@pytest.mark.parametrize(
    ("agent", "params", "name"),
    BAD,
    ids=[f"{cls.__name__}-{'-'.join(map(str, p.values()))}" for cls, p, _ in BAD],
)
def test_a_bad_hyperparameter_is_refused_when_built_naming_it(
    agent: type[BaseAgent], params: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=rf"(^|; |'){re.escape(name)}\b") as refused:
        agent(**params)
    assert len(str(refused.value)) < 300  # one short line, not pydantic's report


def test_every_agent_module_is_covered() -> None:
    """A new agent (a new ``conf/agents`` entry) needs its bad values listed above."""
    covered = {cls.__module__ for cls, _, _ in BAD}
    configs = agent_configs(available_agents())
    targets = {conf["_target_"].rsplit(".", 1)[0] for conf in configs.values()}
    assert targets <= covered


def test_the_message_says_what_is_allowed_and_what_was_given() -> None:
    with pytest.raises(ValueError) as refused:
        UCB1(c=-1)
    assert str(refused.value) == "c must be a number >= 0, got -1"
    with pytest.raises(ValueError) as refused:
        GPBayesOpt(exploit_fraction=1.5, kernel="cubic", n_initial=0)
    assert str(refused.value) == (
        "n_initial must be an integer >= 1, got 0; "
        "exploit_fraction must be a number in [0, 1], got 1.5; "
        "kernel must be one of 'matern', 'rbf', got 'cubic'"
    )
    with pytest.raises(ValueError, match=r"^UCB1 has no parameter 'cc' \(it takes arms, c, "):
        UCB1(cc=1.0)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"^c must be a number >= 0, got -1$"):
        UCB1(None, -1)  # positional, as the subclasses pass their base's


@pytest.mark.parametrize("name", available_agents())
def test_every_shipped_config_still_builds(name: str) -> None:
    agent = build_agent(name, agent_configs([name])[name])
    assert isinstance(agent, BaseAgent)


def test_values_at_the_edges_of_their_ranges_are_accepted() -> None:
    """The limits refuse nonsense, not research settings: greedy bandits, no cooldown, an
    inverse PID, a hold-only expert, ints where numbers are expected."""
    UCB1(c=0, hold_days=1, transition_days=0)
    LinUCB(alpha=0.0, ridge=1e-6)
    RuleBased(cooldown_days=0, cost_share_enter=0.3, cost_share_exit=0.3, trim_pct=100)
    PIDController(kp=0.0, ki=0.0, kd=0.0, direction=-1, smoothing=1.0)
    HedgeEnsemble(experts={"lean": 10, "hold": 0.0}, eta=0.0)
    GPBayesOpt(nu=float("inf"), exploit_fraction=0.0, hold_days=2, transition_days=1)
    assert UCB1(c=2).c == 2.0


def test_a_bad_value_in_config_is_a_config_error_before_any_work() -> None:
    cfg = compose_config(["+agents=[ucb]", "agents.ucb.c=-1", "tracking.enabled=false"])
    with pytest.raises(ConfigError, match=r"(?s)agents\.ucb: .*\bc must be a number >= 0, got -1"):
        settings_from(cfg)
