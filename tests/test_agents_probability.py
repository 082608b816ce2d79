"""Every strategy states the probability of what it decided (``action_probability``), the
propensity off-policy evaluation weighs logged decisions by.

The contract: over an experiment, every stated probability is in (0, 1] (NaN only where an agent
documents that it cannot state one) and a deterministic strategy states exactly 1.0. The
statistical checks replay one decision state many times with fresh generators and compare how
often each answer comes out with the probability stated for it, within ``Z`` binomial standard
errors plus one count. Every seed is fixed, so the outcome is reproducible.
"""

from __future__ import annotations

import copy
import math
import sys
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from agents.arms import ArmBandit
from agents.common import BaseAgent
from agents.hedge import HedgeEnsemble
from agents.ppo import PPOAgent
from agents.random_agent import RandomAgent
from agents.thompson import ThompsonSampling, win_probabilities
from arena_rl.agent import Agent, FunctionAgent, VariantInfo, action_probability
from arena_rl.config import agent_configs, build_agent
from arena_rl.core.guardrails import ConfigUpdate, GuardrailResult
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.experiment import ExperimentResult, run_experiment
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, INTEGER_KEYS
from arena_rl.scenarios.gamification.metrics import METRICS
from arena_rl.scenarios.specs import CONF_DIR

AGENT_NAMES = sorted(p.stem for p in (CONF_DIR / "agents").glob("*.yaml") if p.stem != "llm")
STOCHASTIC = {"random", "thompson", "hedge"}
"""Registered strategies whose stated probabilities may be below 1."""
UNSTATED = {"bayesopt"}
"""Registered strategies that state NaN (cannot say) where they chose at random."""
SETTINGS = {"n_users": 1500}  # the scenario's 28 days: the bandits get past their first sweep
Z = 4.5
"""Tolerance in binomial standard errors (a two-sided false alarm of about 7e-6 per check)."""

ActionKey = Hashable


def compose_agent(name: str, overrides: Sequence[str] = ()) -> Agent:
    return build_agent(name, agent_configs([name], list(overrides))[name])


@dataclass
class Call:
    """One decide() call: the agent just before it (if kept), its inputs, answer and stated
    probability."""

    before: Any
    signals: Signals
    config: dict[str, float]
    update: ConfigUpdate | None
    probability: float


class Recorder:
    """Drives an agent through an experiment and records every decision it makes."""

    def __init__(self, agent: Any, keep_states: bool = False) -> None:
        self.agent, self.keep_states = agent, keep_states
        self.calls: list[Call] = []

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        self.agent.reset(info, rng)

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        before = clone(self.agent) if self.keep_states else None
        update = self.agent.decide(signals, current_config)
        probability = action_probability(self.agent)
        self.calls.append(Call(before, signals, dict(current_config), update, probability))
        return update

    def on_result(self, result: GuardrailResult) -> None:
        self.agent.on_result(result)

    def action_probability(self) -> float:
        return action_probability(self.agent)


def record(agent: Any, seed: int = 0, keep_states: bool = False) -> list[Call]:
    return run_recorded(agent, seed, keep_states)[0]


def run_recorded(
    agent: Any, seed: int = 0, keep_states: bool = False
) -> tuple[list[Call], ExperimentResult]:
    recorder = Recorder(agent, keep_states)
    result = run_experiment({"agent": recorder}, seed=seed, **SETTINGS)
    return recorder.calls, result


def clone(agent: Any) -> Any:
    """A deep copy sharing what never changes (the ground truth, the frozen signals seen)."""
    memo: dict[int, Any] = {}
    for shared in [getattr(agent, "info_", None), *getattr(agent, "history_", ())]:
        if shared is not None:
            memo[id(shared)] = shared
    return copy.deepcopy(agent, memo)


def action_key(update: ConfigUpdate | None) -> ActionKey:
    """An answer as an action: its overrides (the reasoning is not part of it), None = hold."""
    return None if update is None else tuple(sorted(update.overrides.items()))


def replay(
    call: Call, n: int, seed: int, key: Callable[[ConfigUpdate | None], ActionKey] = action_key
) -> list[tuple[ActionKey, float]]:
    """``n`` answers of the agent from the recorded state, each with a fresh generator."""
    out = []
    for child in np.random.SeedSequence(seed).spawn(n):
        agent = clone(call.before)
        agent.rng_ = np.random.default_rng(child)
        update = agent.decide(call.signals, call.config)
        out.append((key(update), agent.action_probability()))
    return out


def assert_frequencies_match(outcomes: list[tuple[ActionKey, float]], covered: float) -> float:
    """Each answer's frequency matches the probability stated for it (the same one every time:
    the state is the same); the answers seen carry at least ``covered`` of the stated mass.
    Returns the smallest probability checked."""
    n = len(outcomes)
    stated: dict[ActionKey, list[float]] = defaultdict(list)
    for key, probability in outcomes:
        stated[key].append(probability)
    for key, ps in stated.items():
        p = ps[0]
        assert 0.0 < p <= 1.0, (key, p)
        assert max(ps) - min(ps) <= 1e-12 * p, (key, min(ps), max(ps))
        frequency = len(ps) / n
        error = math.sqrt(p * (1.0 - p) / n)
        assert abs(frequency - p) <= Z * error + 1.0 / n, (key, frequency, p, error)
    total = sum(ps[0] for ps in stated.values())
    assert covered <= total <= 1.0 + 1e-9, total
    return min(ps[0] for ps in stated.values())


def confident_signals(day: int, value: float = 1.0, enrolled: int = 1000) -> Signals:
    metrics = {m: MetricValue(value, 0.1, enrolled, "high") for m in METRICS}
    return Signals(enrolled, enrolled // 2, enrolled // 2, 3 * enrolled, day, metrics)


# ---- the protocol --------------------------------------------------------------------------------


def test_the_protocol_helper_reads_1_for_agents_that_state_nothing() -> None:
    class Bare:  # the bare protocol, no action_probability
        def reset(self, info: VariantInfo, rng: np.random.Generator) -> None: ...
        def decide(self, signals: Signals, config: Mapping[str, float]) -> None: ...
        def on_result(self, result: GuardrailResult) -> None: ...

    class Coin(BaseAgent):
        def decide(self, signals: Signals, config: Mapping[str, float]) -> None: ...
        def action_probability(self) -> float:
            return 0.5

    assert isinstance(Bare(), Agent)
    assert action_probability(Bare()) == 1.0
    assert action_probability(FunctionAgent(lambda signals, config: None)) == 1.0
    assert BaseAgent().action_probability() == 1.0
    assert action_probability(Coin()) == 0.5


# ---- (a) the contract, over one experiment -------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "oracle" else n for n in AGENT_NAMES],
)
def test_stated_probabilities_over_an_experiment(name: str) -> None:
    calls = record(compose_agent(name))
    stated = [c.probability for c in calls]
    assert len(stated) > 10  # a decision a day
    if name in UNSTATED:
        # NaN exactly on the first answer that shows a newly chosen economy, else 1.0
        assert all(p == 1.0 or math.isnan(p) for p in stated), stated
        seen: set[str] = set()
        for c in calls:
            if c.update is not None:
                fresh = c.update.reasoning not in seen
                seen.add(c.update.reasoning)
                assert math.isnan(c.probability) == fresh, (c.update.reasoning, c.probability)
        assert sum(math.isnan(p) for p in stated) >= 3  # the initial design, at least
    elif name in STOCHASTIC:
        assert all(0.0 < p <= 1.0 for p in stated), stated
        if name != "thompson":  # draws on every update; thompson only between its pulls
            assert any(c.probability < 1.0 for c in calls if c.update is not None)
    else:
        assert stated == [1.0] * len(stated)


def test_example_agent_and_sampling_ppo_keep_the_contract() -> None:
    from agents.example_threshold import ScanThreshold

    assert {c.probability for c in record(ScanThreshold())} == {1.0}
    stated = [
        c.probability for c in record(compose_agent("ppo", ["agents.ppo.deterministic=false"]))
    ]
    assert all(0.0 < p <= 1.0 for p in stated) and min(stated) < 1.0, stated


@pytest.mark.parametrize("name", sorted(STOCHASTIC | UNSTATED))
def test_asking_for_the_probability_changes_no_decision(name: str) -> None:
    """Asking after every call draws nothing from the agent's generator: the same experiment."""
    _, asked = run_recorded(compose_agent(name), seed=3)
    plain = run_experiment({"agent": compose_agent(name)}, seed=3, **SETTINGS)
    assert asked.audit == plain.audit
    assert asked.objective == plain.objective


# ---- (b) stated probabilities match frequencies --------------------------------------------------


def test_thompson_win_probabilities_match_sampling() -> None:
    rng = np.random.default_rng(0)
    n = 400_000
    for _ in range(5):
        k = int(rng.integers(2, 7))
        mean, sd = rng.normal(0.0, 2.0, k), rng.uniform(0.2, 3.0, k)
        stated = win_probabilities(mean, sd)
        draws = mean + sd * rng.standard_normal((n, k))
        frequency = np.bincount(draws.argmax(axis=1), minlength=k) / n
        error = np.sqrt(stated * (1 - stated) / n)
        assert np.all(np.abs(frequency - stated) <= Z * error + 1.0 / n), (frequency, stated)
        assert stated.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(win_probabilities(np.zeros(4), np.ones(4)), 0.25)
    assert win_probabilities(np.array([0.0, 50.0]), np.array([1.0, 1.0]))[1] == pytest.approx(1.0)


class CoinBandit(ArmBandit):
    """Picks an arm uniformly at random (a test double for a stochastic ``select``)."""

    def selection_probabilities(self, signals: Signals) -> np.ndarray | None:
        return np.full(len(self.targets_), 1.0 / len(self.targets_))

    def select(self, signals: Signals) -> tuple[int, str]:
        return int(self.rng_.integers(len(self.targets_))), "coin"


COIN_ARMS = {"up": {"scanXp": 1.5}, "up_too": {"scanXp": 1.5}, "down": {"scanXp": 0.5}, "base": {}}


def test_arm_bandits_charge_a_random_arm_to_the_answer_that_shows_it() -> None:
    outcomes, info = [], VariantInfo.of("v")
    for seed in range(2000):
        agent = CoinBandit(COIN_ARMS)
        agent.reset(info, np.random.default_rng(seed))
        agent.next_allowed_ = 1.0  # rate-limited on day 0: the arm is drawn but not shown
        assert agent.decide(confident_signals(0), DEFAULT_ECONOMY) is None
        assert agent.action_probability() == 1.0
        update = agent.decide(confident_signals(1), DEFAULT_ECONOMY)
        outcomes.append((action_key(update), agent.action_probability()))
        if update is not None:  # still moving there (the base arm's pull ends on day 2)
            agent.decide(confident_signals(2), DEFAULT_ECONOMY)
            assert agent.action_probability() == 1.0  # the pull goes on: certain
    stated = dict(outcomes)
    up = action_key(ConfigUpdate({"scanXp": 15.0}))
    # two arms give the same answer; the base arm holds (nothing to change)
    assert stated == {up: 0.5, action_key(ConfigUpdate({"scanXp": 5.0})): 0.25, None: 0.25}
    assert_frequencies_match(outcomes, covered=1.0)


@pytest.mark.slow
def test_thompson_stated_probability_matches_replays() -> None:
    # a wider pull noise keeps the posterior uncertain, so the draws really compete
    agent = compose_agent("thompson", ["agents.thompson.noise_sd=3.0"])
    calls = record(agent, seed=0, keep_states=True)
    uncertain = [c for c in calls if 0.05 < c.probability < 0.95]
    assert len(uncertain) >= 2, [c.probability for c in calls]
    smallest = 1.0
    for i, call in enumerate(uncertain[:2]):
        smallest = min(smallest, assert_frequencies_match(replay(call, 2000, i), covered=0.995))
    assert smallest < 0.5


@pytest.mark.slow
def test_hedge_stated_probability_matches_replays() -> None:
    calls = record(compose_agent("hedge"), seed=0, keep_states=True)
    drawn = [c for c in calls if c.probability < 1.0]
    assert len(drawn) >= 10
    for i, call in enumerate([drawn[0], drawn[len(drawn) // 2], drawn[-1]]):
        assert_frequencies_match(replay(call, 2000, i), covered=0.995)


def random_signature(update: ConfigUpdate | None) -> ActionKey:
    """The discrete part of a random step: which keys moved, and the value of each moved cap."""
    if update is None:
        return ()
    return tuple(
        sorted((k, v if k in INTEGER_KEYS else "moved") for k, v in update.overrides.items())
    )


def random_outcomes(agent: RandomAgent, config: Mapping[str, float], n: int, seed: int) -> list:
    agent.reset(VariantInfo.of("v"), np.random.default_rng(seed))
    signals = confident_signals(0)
    out = []
    for _ in range(n):  # decide keeps no state but the generator: each call is a fresh draw
        update = agent.decide(signals, config)
        out.append((random_signature(update), agent.action_probability()))
    return out


ODD_ECONOMY = {
    **DEFAULT_ECONOMY,
    "scanXp": 0.2,  # a move of at most 0.05 is dropped: mostly stays
    "photoXp": 0.0,  # 0 times any step: always stays
    "streakBonusCap": 3.0,  # a small cap: few whole numbers in reach
    "scanDailyCap": 150.0,  # a large one: many
    "feedbackDailyCap": 1.0,
}


@pytest.mark.parametrize("economy", [DEFAULT_ECONOMY, ODD_ECONOMY], ids=["default", "odd"])
@pytest.mark.parametrize(
    "key", ["scanXp", "photoXp", "streakBonusCap", "scanDailyCap", "feedbackDailyCap"]
)
def test_random_one_key_probabilities_match_frequencies(
    key: str, economy: Mapping[str, float]
) -> None:
    outcomes = random_outcomes(RandomAgent(step_pct=20.0, keys=[key]), economy, 3000, seed=1)
    assert_frequencies_match(outcomes, covered=0.99)


@pytest.mark.slow
@pytest.mark.parametrize("economy", [DEFAULT_ECONOMY, ODD_ECONOMY], ids=["default", "odd"])
def test_random_discrete_part_matches_frequencies(economy: Mapping[str, float]) -> None:
    n = 20_000
    outcomes = random_outcomes(RandomAgent(step_pct=20.0), economy, n, seed=2)
    frequent = [(k, p) for k, p in outcomes if p * n >= 30]  # enough draws to judge
    assert len(frequent) > n / 2
    stated: dict[ActionKey, list[float]] = defaultdict(list)
    for key, probability in outcomes:
        stated[key].append(probability)
    for key, ps in stated.items():
        p = ps[0]
        assert max(ps) - min(ps) <= 1e-12 * p
        if p * n >= 30:
            error = math.sqrt(p * (1.0 - p) / n)
            assert abs(len(ps) / n - p) <= Z * error + 1.0 / n, (key, len(ps) / n, p)
    assert sum(ps[0] for ps in stated.values()) <= 1.0 + 1e-9


def test_random_density_and_holds() -> None:
    agent = RandomAgent(step_pct=20.0, keys=["issueReportXp"], hold_days=2)
    agent.reset(VariantInfo.of("v"), np.random.default_rng(0))
    bound = math.log1p(0.2)
    for _ in range(50):
        update = agent.decide(confident_signals(0), DEFAULT_ECONOMY)
        assert update is not None  # 25 XP: a move of over 0.05 is all but certain
        assert agent.action_density() == pytest.approx(1.0 / (2.0 * bound))
        # it stays while 25 · e^u is within 0.05 of 25
        stays = (math.log1p(0.05 / 25.0) - math.log1p(-0.05 / 25.0)) / (2.0 * bound)
        assert agent.action_probability() == pytest.approx(1.0 - stays, rel=1e-12)
    assert agent.decide(confident_signals(1), DEFAULT_ECONOMY) is None  # a day between moves
    assert agent.action_probability() == agent.action_density() == 1.0


def ppo_signature(current: Mapping[str, float], agent: PPOAgent) -> Callable:
    """The discrete part of a sampled PPO step: each cap's value, each other key at a bound or
    not."""
    delta = agent.info_.delta_limit_pct
    share = min(agent.meta_["step_pct"] / delta, 1.0)

    def key(update: ConfigUpdate | None) -> ActionKey:
        moved = {} if update is None else update.overrides
        out = []
        for k in agent.meta_["keys"]:
            value = moved.get(k, current[k])
            if k in INTEGER_KEYS:
                out.append((k, value))
            else:
                bounds = [current[k] * (1.0 + s * share * delta / 100.0) for s in (-1.0, 1.0)]
                out.append((k, bounds.index(value) if value in bounds else "inside"))
        return tuple(out)

    return key


@pytest.mark.slow
def test_sampling_ppo_discrete_part_matches_frequencies() -> None:
    agent = PPOAgent(deterministic=False)
    agent.reset(VariantInfo.of("v"), np.random.default_rng(0))
    config = {**DEFAULT_ECONOMY, "streakBonusCap": 5.0, "feedbackDailyCap": 3.0}
    key = ppo_signature(config, agent)
    n, signals = 6000, confident_signals(3)
    outcomes = []
    for _ in range(n):  # decide keeps no state but the torch generator
        update = agent.decide(signals, config)
        outcomes.append((key(update), agent.action_probability()))
    stated: dict[ActionKey, list[float]] = defaultdict(list)
    for k, p in outcomes:
        stated[k].append(p)
    checked = 0
    for k, ps in stated.items():
        p = ps[0]
        assert 0.0 < p <= 1.0 and max(ps) - min(ps) <= 1e-9 * p
        if p * n >= 30:
            checked += 1
            error = math.sqrt(p * (1.0 - p) / n)
            assert abs(len(ps) / n - p) <= Z * error + 1.0 / n, (k, len(ps) / n, p)
    assert checked >= 3


# ---- (c) the LLM agent ---------------------------------------------------------------------------


def test_llm_at_temperature_0_states_1_without_running_a_model() -> None:
    from agents.llm import LLMAgent

    loaded = "llama_cpp" in sys.modules
    greedy = compose_agent("llm")
    assert isinstance(greedy, LLMAgent) and greedy.temperature == 0
    assert greedy.action_probability() == 1.0 == action_probability(greedy)
    assert math.isnan(LLMAgent(temperature=0.7).action_probability())
    assert loaded or "llama_cpp" not in sys.modules  # no model was loaded for this


def test_thompson_states_1_during_its_first_sweep() -> None:
    agent = ThompsonSampling({"a": {"scanXp": 1.5}, "b": {"scanXp": 0.5}})
    agent.reset(VariantInfo.of("v"), np.random.default_rng(0))
    assert agent.selection_probabilities(confident_signals(0)) is None
    agent.decide(confident_signals(0), DEFAULT_ECONOMY)
    assert agent.action_probability() == 1.0


def test_hedge_states_1_when_it_draws_nothing() -> None:
    agent = HedgeEnsemble()
    agent.reset(VariantInfo.of("v"), np.random.default_rng(0))
    low = Signals(0, 0, 0, 0, 0, {m: MetricValue(0.0, None, 0, "low") for m in METRICS})
    assert agent.decide(low, DEFAULT_ECONOMY) is None  # no confident reward: nothing drawn
    assert agent.action_probability() == 1.0
