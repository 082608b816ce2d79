"""Every generic strategy plays any scenario: on subscription pricing (the second plugin) each
one builds from its config, resets and decides inside the knobs' bounds, with its arms, search
box, sub-strategies or moves derived from that scenario; a strategy tied to gamification is
refused there before any work starts.

``Bare`` is pricing without the arm sets, search box and levers it ships, for what a strategy
derives from the knobs alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from itertools import cycle
from typing import Any

import numpy as np
import pytest
from test_agents_probability import assert_frequencies_match

from agents.arms import bound_arms, resolve_arms
from agents.bayesopt import GPBayesOpt
from agents.example_threshold import ScanThreshold
from agents.hedge import HedgeEnsemble
from agents.llm import LLMAgent
from agents.pid import PIDController
from agents.ppo import PPOAgent
from agents.random_agent import RandomAgent
from agents.rule import RuleBased
from agents.ucb import UCB1
from arena_rl.agent import Agent, VariantInfo, check_scenario
from arena_rl.config import agent_configs, build_agent
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.scenario import Scenario
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.experiment import run_experiment
from arena_rl.llm import Usage
from arena_rl.scenarios import load_scenario

PRICING = load_scenario("pricing")
KNOBS = PRICING.knobs
BASE = PRICING.base_economy()
GENERIC = ["control", "random", "ucb", "thompson", "etc", "linucb", "bayesopt", "hedge", "oracle"]
"""Registered strategies meant for any scenario (``llm`` too: below, without a model)."""
SMALL = {"scenario": PRICING, "n_users": 900, "days": 40}
FAST_ORACLE = ["agents.oracle.users_per_arm=200"]


class Bare:
    """``inner`` without arm sets, a search box or levers: what is left to derive from."""

    def __init__(self, inner: Scenario) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def arm_sets(self) -> Mapping[str, Any]:
        return {}

    def search_box(self) -> Mapping[str, tuple[float, float]]:
        return {}

    def levers(self) -> Mapping[str, tuple[str, ...]]:
        return {}


def compose(name: str) -> Agent:
    overrides = FAST_ORACLE if name == "oracle" else []
    return build_agent(name, agent_configs([name], overrides)[name])


def info(scenario: Any = PRICING, days: int = 20) -> VariantInfo:
    return VariantInfo.of("v", scenario=scenario, days=days)


def requested(result: Any, name: str) -> list[dict[str, float]]:
    return [json.loads(str(a["requested"])) for a in result.audit if a["variant"] == name]


def edge_signals() -> list[Signals]:
    def metrics(value: float, n: int, conf: str, std: float | None) -> dict[str, MetricValue]:
        return {m: MetricValue(value, std, n, conf) for m in PRICING.metrics}  # type: ignore[arg-type]

    return [
        Signals(0, 0, 0, 0, 0, metrics(0.0, 0, "low", None)),
        Signals(5, 1, 2, 3, 3, metrics(0.5, 5, "low", 0.1)),
        Signals(100_000, 100_000, 100_000, 10**8, 17, metrics(1e6, 100_000, "high", 1e6)),
        Signals(1000, 0, 0, 0, 14, metrics(0.0, 1000, "high", 0.0)),
        Signals(1000, 400, 500, 900, 18, metrics(0.3, 1000, "medium", 0.1)),
    ]


def confident(day: int, **values: float) -> Signals:
    metrics = {
        m: MetricValue(values.get(m, 0.5), 0.1, 1000, "high")  # type: ignore[arg-type]
        for m in PRICING.metrics
    }
    return Signals(1000, 400, 500, 900, day, metrics)


# ---- every generic strategy ----------------------------------------------------------------


@pytest.mark.parametrize("name", GENERIC)
def test_generic_strategy_plays_pricing_inside_the_bounds(name: str) -> None:
    result = run_experiment({name: compose(name)}, seed=1, **SMALL)
    made = requested(result, name)
    for overrides in made:
        KNOBS.validate(overrides, where=name)  # known knobs, in bounds, whole where integer
    counts = result.guardrail_counts[name]
    assert counts["rejected_invalid_update"] == counts["rejected_rate_limited"] == 0, counts
    assert result.faults[name] == []
    assert (len(made) == 0) == (name == "control")


@pytest.mark.parametrize("name", GENERIC)
def test_generic_strategy_survives_edge_signals_on_pricing(name: str) -> None:
    agent = compose(name)
    agent.reset(info(), np.random.default_rng(0))
    config = dict(BASE)
    for signals in edge_signals():
        update = agent.decide(signals, config)
        if update is not None:
            config.update(KNOBS.validate(update.overrides, where=name))


# ---- what each derives from the scenario ---------------------------------------------------


def test_bandit_arms_are_the_scenarios_set_else_spread_over_the_bounds() -> None:
    agent = UCB1()
    agent.reset(info(), np.random.default_rng(0))
    assert agent.arm_names_ == list(PRICING.arm_sets()["default"])
    derived = resolve_arms(None, Bare(PRICING), BASE)  # type: ignore[arg-type]
    assert derived == bound_arms(BASE, KNOBS)
    assert list(derived) == ["base", "lower", "higher", "mixed_a", "mixed_b"]
    assert derived["base"] == BASE
    for key, knob in KNOBS.by_name.items():
        low, high = derived["lower"][key], derived["higher"][key]
        assert knob.low <= low <= BASE[key] <= high <= knob.high
        assert high > BASE[key] or key in KNOBS.integer  # a third of the way may round back
    assert derived["higher"]["monthly_price"] == pytest.approx(15 + (40 - 15) / 3)
    assert derived["lower"]["trial_days"] == 5.0  # 7 - 7/3, a whole number of days
    for economy in derived.values():
        KNOBS.validate(economy)
    with pytest.raises(ValueError, match=r"no arm set 'lean'; available: default, bounds"):
        UCB1("lean").reset(info(), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"unknown knob 'scanXp'.*monthly_price"):
        UCB1({"a": {"scanXp": 2.0}}).reset(info(), np.random.default_rng(0))


def test_bayesopt_box_spans_the_bounds_when_the_scenario_ships_none() -> None:
    agent = GPBayesOpt()
    agent.reset(info(), np.random.default_rng(0))
    assert agent.keys_ == KNOBS.keys
    linear = {k for k, flag in zip(agent.keys_, agent.linear_, strict=True) if flag}
    assert linear == {k.name for k in KNOBS.knobs if k.low == 0}  # a 0 is reached linearly
    assert agent.economy_of(np.zeros(len(KNOBS))) == {k.name: k.low for k in KNOBS.knobs}
    assert agent.economy_of(np.ones(len(KNOBS))) == pytest.approx(
        {k.name: k.high for k in KNOBS.knobs}
    )
    with pytest.raises(ValueError, match=r"unknown knob 'scanXp'"):
        GPBayesOpt(box={"scanXp": [0.5, 2.0]}).reset(info(), np.random.default_rng(0))


def test_hedge_sub_strategies_come_from_the_levers() -> None:
    agent = HedgeEnsemble()
    agent.reset(info(), np.random.default_rng(0))
    levers = list(PRICING.levers())
    assert agent.names_ == [f"{d}:{lever}" for lever in levers for d in ("raise", "cut")] + ["hold"]
    bare = HedgeEnsemble()
    bare.reset(info(Bare(PRICING)), np.random.default_rng(0))
    assert bare.names_ == ["raise", "cut", "hold"]
    with pytest.raises(ValueError, match=r"'lean' needs the scenario's 'cost' lever"):
        HedgeEnsemble(experts={"lean": 25.0}).reset(info(), np.random.default_rng(0))
    # reactive needs retention or activity: pricing has a retention lever
    reactive = HedgeEnsemble(experts={"reactive": 10.0, "cut:price": 10.0})
    reactive.reset(info(), np.random.default_rng(0))
    config, updates = dict(BASE), []
    for day in range(8):  # retention falls on day 7
        rate = 0.8 if day < 7 else 0.7
        reactive.weights_ = np.array([1.0, 0.0])
        update = reactive.decide(confident(day, RETENTION_RATE=rate), config)
        updates.append(update)
    assert updates[:-1] == [None] * 7
    assert updates[-1] is not None and set(updates[-1].overrides) == {"annual_discount"}


def test_random_walks_every_knob_inside_the_bounds() -> None:
    agent = RandomAgent(step_pct=50.0)
    agent.reset(info(), np.random.default_rng(0))
    assert agent.keys_ == list(KNOBS.keys)
    config = {**BASE, "monthly_price": 39.0, "trial_days": 3.0}
    moved: set[str] = set()
    for _ in range(200):
        update = agent.decide(confident(0), config)
        assert update is not None
        moved |= set(KNOBS.validate(update.overrides))
    assert moved == set(KNOBS.keys)
    with pytest.raises(ValueError, match=r"unknown knob\(s\) 'scanXp'"):
        RandomAgent(keys=["scanXp"]).reset(info(), np.random.default_rng(0))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("monthly_price", 38.0),
        ("monthly_price", 5.5),
        ("trial_days", 29.0),
        ("annual_discount", 0.0),
    ],
)
def test_random_states_the_chance_of_a_step_clipped_onto_a_bound(key: str, value: float) -> None:
    """Near a bound, every step past it lands on the bound: a discrete outcome it states."""
    agent = RandomAgent(step_pct=20.0, keys=[key])
    agent.reset(info(), np.random.default_rng(1))
    config = {**BASE, key: value}
    outcomes = []
    for _ in range(3000):
        update = agent.decide(confident(0), config)
        moved = {} if update is None else update.overrides
        knob = KNOBS.by_name[key]
        at = moved.get(key)
        kind = (
            None if at is None else at if at in (knob.low, knob.high) or knob.integer else "moved"
        )
        outcomes.append((kind, agent.action_probability()))
    assert_frequencies_match(outcomes, covered=0.99)
    if value in (38.0, 5.5):
        assert any(kind in (5.0, 40.0) for kind, _ in outcomes)


class ScriptedClient:
    """Stands in for the model: answers every question from a cycle of texts."""

    def __init__(self, *answers: str) -> None:
        self.answers, self.asked = cycle(answers), []
        self.usage = Usage()

    def complete(self, messages: list[dict[str, str]], schema: object, sampling: object) -> str:
        self.asked.append(messages)
        return next(self.answers)


def scripted(*answers: str, **kwargs: Any) -> tuple[LLMAgent, ScriptedClient]:
    agent, client = LLMAgent(**kwargs), ScriptedClient(*answers)
    agent.client_ = client  # type: ignore[assignment]
    return agent, client


def test_llm_moves_and_prompt_come_from_the_scenario() -> None:
    agent, client = scripted('{"move": "raise_price", "reasoning": "r"}')
    agent.reset(info(), np.random.default_rng(0))
    assert list(agent.moves_) == [
        "trim_price", "raise_price", "trim_acquisition", "raise_acquisition", "trim_discounts",
        "raise_discounts",
    ]  # fmt: skip
    update = agent.decide(confident(0), dict(BASE))
    assert update == ConfigUpdate({"monthly_price": 17.25}, update.reasoning if update else "")
    system = client.asked[0][0]["content"]
    assert PRICING.describe() in system and "XP" not in system
    assert "- monthly_price: default 15 USD/month, a number in [5, 40]" in system
    bare, _ = scripted('{"move": "raise_all", "reasoning": "r"}')
    bare.reset(info(Bare(PRICING)), np.random.default_rng(0))
    assert list(bare.moves_) == ["raise_all", "trim_all"]
    assert bare.moves_["trim_all"]["scale"] == {  # the integer knobs (days, months) stay
        "monthly_price": 0.9, "annual_discount": 0.9, "intro_discount": 0.9,
    }  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['scanXp'\].*monthly_price"):
        LLMAgent(keys=["scanXp"]).reset(info(), np.random.default_rng(0))


@pytest.mark.parametrize("answer", ["moves", "directions", "values"])
def test_llm_plays_pricing_inside_the_bounds(answer: str) -> None:
    texts = {
        "moves": ['{"move": "trim_acquisition", "reasoning": "r"}', '{"move": "undo"}'],
        "directions": ['{"changes": {"Trial Days": "lower", "monthly price": "raise"}}'],
        "values": ['{"changes": {"monthly_price": 99, "intro_months": 1.4, "scanXp": 3}}'],
    }[answer]
    agent, _ = scripted(*texts, answer=answer, decide_every_days=2)
    result = run_experiment({"llm": agent}, seed=2, **SMALL)
    made = requested(result, "llm")
    assert made and result.faults["llm"] == []
    for overrides in made:
        KNOBS.validate(overrides, where="llm")


# ---- gamification only ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "agent"),
    [
        ("ppo", PPOAgent()),
        ("pid", PIDController()),
        ("rule", RuleBased()),
        ("mine", ScanThreshold()),
    ],
)
def test_gamification_only_strategies_are_refused_on_pricing(name: str, agent: Agent) -> None:
    # ValueError: the refusal's own class (ScenarioMismatchError) is one
    with pytest.raises(ValueError, match=rf"agent '{name}'.*'gamification'.*'pricing'"):
        check_scenario(name, agent, PRICING)
    check_scenario(name, agent, load_scenario())  # gamification: fine
    with pytest.raises(ValueError, match=rf"agent '{name}'"):
        run_experiment({name: agent}, seed=0, **SMALL)
