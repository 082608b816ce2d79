"""The contract every strategy registered in conf/agents/ must keep."""

from __future__ import annotations

import importlib
import inspect
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import arena_rl
from arena_rl.agent import Agent, FunctionAgent, VariantInfo
from arena_rl.config import agent_configs, build_agent
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.envs.policy import AgentPolicy
from arena_rl.experiment import run_experiment
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, validate_overrides
from arena_rl.scenarios.gamification.metrics import METRICS
from arena_rl.scenarios.specs import CONF_DIR

AGENT_NAMES = sorted(p.stem for p in (CONF_DIR / "agents").glob("*.yaml"))
SMALL = {"n_users": 1500, "days": 12}


def compose_agent(name: str) -> Agent:
    configs = agent_configs([name])
    assert list(configs) == [name]
    return build_agent(name, configs[name])


def variant_info() -> VariantInfo:
    return VariantInfo.of("v")


def requests(result, name: str) -> list[dict]:
    return [json.loads(str(a["requested"])) for a in result.audit if a["variant"] == name]


def test_every_required_strategy_is_registered() -> None:
    required = {"control", "random", "rule", "pid", "ucb", "thompson", "etc", "linucb",
                "bayesopt", "hedge", "ppo", "llm", "oracle"}  # fmt: skip
    assert required <= set(AGENT_NAMES)


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_composes_instantiates_and_pickles_before_reset(name: str) -> None:
    agent = compose_agent(name)
    assert isinstance(agent, Agent)
    clone = pickle.loads(pickle.dumps(agent))
    assert type(clone) is type(agent)


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_decisions_are_valid_deterministic_and_never_rate_limited(name: str) -> None:
    first = run_experiment({name: compose_agent(name)}, seed=5, **SMALL)
    again = run_experiment({name: compose_agent(name)}, seed=5, **SMALL)
    made = requests(first, name)
    for overrides in made:
        validate_overrides(overrides, where=name)
    assert made == requests(again, name)
    assert first.objective == again.objective
    counts = first.guardrail_counts[name]
    assert counts["rejected_rate_limited"] == 0, counts  # a careful agent never wastes one
    assert counts["rejected_invalid_update"] == 0, counts
    assert first.faults[name] == []


def edge_signals() -> list[Signals]:
    def metrics(value: float, n: int, conf: str, std: float | None) -> dict[str, MetricValue]:
        return {m: MetricValue(value, std, n, conf) for m in METRICS}  # type: ignore[arg-type]

    return [
        Signals(0, 0, 0, 0, 0, metrics(0.0, 0, "low", None)),  # nothing observed yet
        Signals(5, 1, 2, 3, 3, metrics(0.5, 5, "low", 0.1)),  # all metrics low confidence
        Signals(100_000, 100_000, 100_000, 10**8, 27, metrics(1e6, 100_000, "high", 1e6)),
        Signals(1000, 0, 0, 0, 14, metrics(0.0, 1000, "high", 0.0)),  # everyone left
    ]


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_survives_edge_signals(name: str) -> None:
    agent = compose_agent(name)
    agent.reset(variant_info(), np.random.default_rng(0))
    config = dict(DEFAULT_ECONOMY)
    for signals in edge_signals():
        update = agent.decide(signals, config)
        if update is not None:
            assert isinstance(update, ConfigUpdate)
            validate_overrides(update.overrides, where=name)


def test_function_agent_runs_an_sdk_style_decide_function() -> None:
    class SdkUpdate:  # the SDK's ConfigUpdate shape: economy_overrides + reasoning
        def __init__(self, economy_overrides: dict[str, float], reasoning: str) -> None:
            self.economy_overrides, self.reasoning = economy_overrides, reasoning

    def decide(signals: Signals, config: dict[str, float]) -> SdkUpdate | None:
        scan = signals.metrics["SCAN_FREQUENCY"]
        if scan.confidence != "low" and scan.value < 5.0:
            return SdkUpdate({"scanXp": config["scanXp"] * 1.1}, "scans are low")
        return None

    result = run_experiment({"sdk": FunctionAgent(decide)}, seed=0, **SMALL)
    reasons = [a["reasoning"] for a in result.audit if a["variant"] == "sdk"]
    assert reasons and all(r == "scans are low" for r in reasons)


def test_agent_policy_drives_the_gym_env_as_an_opponent() -> None:
    from agents.random_agent import RandomAgent

    policy = AgentPolicy(RandomAgent(step_pct=10), variant_info(), np.random.default_rng(1))
    env = arena_rl.gym_env(opponents=[policy], **SMALL)
    env.reset(seed=0)
    for _ in range(3):
        env.step(None)
    rails = env.arena.guardrails
    assert rails is not None and rails.counts("variant_2")["accepted"] == 3


def test_example_agent_in_docs_runs() -> None:
    from agents.example_threshold import ScanThreshold

    result = run_experiment({"mine": ScanThreshold(target_scans=6.0)}, seed=0, **SMALL)
    assert result.guardrail_counts["mine"]["accepted"] > 0
    assert Path("docs/agents.md").read_text().count("agents/example_threshold.py") >= 1


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_config_and_class_agree_on_every_default_they_both_state(name: str) -> None:
    """A strategy's YAML lists its hyperparameters (what users read and override); where the
    class states a default too, they are the same value, so a library user and a tournament
    get the same strategy."""
    config = agent_configs([name])[name]
    module, _, cls = str(config["_target_"]).rpartition(".")
    parameters = inspect.signature(getattr(importlib.import_module(module), cls)).parameters
    for key, value in config.items():
        if key == "_target_":
            continue
        assert key in parameters, f"{name}.{key} is not a parameter of {config['_target_']}"
        default = parameters[key].default
        if default is inspect.Parameter.empty or default is None:
            continue  # the config is the only statement
        if isinstance(default, tuple):
            default = list(default)
        assert value == default, f"{name}.{key}: config {value!r} vs class {default!r}"
