"""The agent protocol: the live SDK's decision function, plus a seeded reset and a result hook.

A strategy written against :class:`Agent` runs in the simulator (:mod:`arena_rl.experiment`)
and, since ``decide(signals, current_config)`` is the TendedLoop SDK's shape, ports to the live
platform unchanged. :class:`FunctionAgent` turns a plain SDK-style function into an agent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from arena_rl.core.guardrails import ConfigUpdate, GuardrailConfig, GuardrailResult
from arena_rl.core.knobs import Knobs
from arena_rl.core.scenario import Scenario
from arena_rl.core.signals import Signals
from arena_rl.scenarios import load_population, load_scenario


@dataclass(frozen=True)
class VariantInfo:
    """What an agent is told about its variant and experiment before it starts.

    ``scenario`` is the experiment's public design: its knobs, metrics, objective (and an
    estimate of it from signals), and the arm sets and levers it ships. ``population`` is the
    simulator's ground truth: only the oracle may use it (and the scenario's model); every
    other strategy must work from signals alone, as on the live platform.
    """

    variant: str
    days: int
    decision_interval: int
    update_interval_days: float
    delta_limit_pct: float
    base_economy: Mapping[str, float]
    population: Any
    scenario: Scenario

    @property
    def knobs(self) -> Knobs:
        """The scenario's knobs: what this variant may set, and within which bounds."""
        return self.scenario.knobs

    def estimate_objective(self, signals: Signals) -> float | None:
        """Today's objective per enrolled user, estimated from public signals."""
        return self.scenario.estimate_objective(signals)

    @classmethod
    def of(
        cls,
        variant: str = "variant",
        population: Any = None,
        scenario: str | Scenario = "default",
        *,
        days: int | None = None,
        decision_interval: int | None = None,
        guardrails: GuardrailConfig | None = None,
        base_economy: Mapping[str, float] | None = None,
    ) -> VariantInfo:
        """Build the info for presets by name (or objects); unset settings come from the
        scenario, as the environment would set them (the population defaults to the
        scenario's own default preset)."""
        scen = load_scenario(scenario) if isinstance(scenario, str) else scenario
        if population is None or isinstance(population, str):
            spec = load_population(scen, population)
        else:
            spec = population
        rails = guardrails or GuardrailConfig(**scen.guardrails)
        return cls(
            variant=variant,
            days=days or scen.days,
            decision_interval=decision_interval or scen.decision_interval,
            update_interval_days=rails.update_interval_days,
            delta_limit_pct=rails.delta_limit_pct,
            base_economy=dict(base_economy or scen.base_economy()),
            population=spec,
            scenario=scen,
        )


@runtime_checkable
class Agent(Protocol):
    """One strategy controlling one variant.

    A strategy that can only play some scenarios (e.g. a policy trained on one scenario's
    observations) says so with a class attribute ``scenarios`` (plugin names); it is refused
    elsewhere before any work starts (:func:`check_scenario`).

    An agent may also define ``usage() -> dict[str, float]`` (counters since ``reset``, e.g.
    model calls, tokens, cost) and ``notes() -> list[str]`` (its own decision log); both land
    in the experiment's result and in the agent's MLflow run.

    It may also define ``action_probability() -> float``: the probability with which the last
    ``decide`` call chose what it returned (the update's overrides, or None to hold; the
    reasoning text is not part of the action), 1.0 for a deterministic choice. It is the
    propensity off-policy evaluation weighs logged decisions by. A random choice that the
    answer does not show yet (e.g. made on a rate-limited day) is charged to the first call
    whose answer depends on it. An agent with a continuous action space states the
    probability of the discrete part of its choice and documents the rest as a density; NaN
    means the agent cannot state it. :class:`BaseAgent` implements it as 1.0, and
    :func:`action_probability` reads 1.0 for an agent without the method.
    """

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        """Start a new experiment; all randomness must come from ``rng``."""

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        """The live SDK's decision function: an update with reasoning, or None to hold."""

    def on_result(self, result: GuardrailResult) -> None:
        """Receives the guardrails' answer to the update just submitted."""


class BaseAgent:
    """Shared plumbing for strategies: keeps info and rng, and honours the rate limit.

    Subclasses implement ``decide`` and call :meth:`may_update` first, so they never spend a
    submission the rate limiter would reject.
    """

    info_: VariantInfo
    rng_: np.random.Generator

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        self.info_, self.rng_ = info, rng
        self.next_allowed_ = 0.0
        self.last_result_: GuardrailResult | None = None

    def may_update(self, signals: Signals) -> bool:
        """Whether an update now would pass the rate limiter (sim day >= next allowed)."""
        return signals.experiment_days >= self.next_allowed_ - 1e-9

    def on_result(self, result: GuardrailResult) -> None:
        self.last_result_ = result
        if result.next_allowed_update is not None:
            self.next_allowed_ = result.next_allowed_update

    def action_probability(self) -> float:
        """The probability with which the last ``decide`` call chose what it returned (hold
        included). 1.0 here: a strategy that draws from ``rng_`` overrides it."""
        return 1.0


def action_probability(agent: Agent) -> float:
    """The agent's stated probability of its last decision (see :class:`Agent`); 1.0 for an
    agent that states none. A :class:`FunctionAgent` states 1.0 too: a plain SDK function has
    no way to say it drew at random."""
    stated = getattr(agent, "action_probability", None)
    return float(stated()) if callable(stated) else 1.0


class ScenarioMismatchError(ValueError):
    """An agent asked to play a scenario it cannot play."""


def check_scenario(name: str, agent: object, scenario: Scenario) -> None:
    """Refuse an agent whose class declares ``scenarios`` (the plugins it can play, e.g. a
    policy trained on one scenario's observations) without this scenario's plugin."""
    supported = getattr(agent, "scenarios", None)
    if supported is not None and scenario.plugin not in supported:
        raise ScenarioMismatchError(
            f"agent {name!r} ({type(agent).__name__}) plays only the "
            f"{' or '.join(map(repr, supported))} scenario; scenario {scenario.name!r} is a "
            f"{scenario.plugin!r} scenario. Choose another agent or scenario."
        )


SdkDecide = Callable[[Signals, dict[str, float]], Any]


def as_update(answer: Any) -> ConfigUpdate | None:
    """Normalise what an SDK-style function returns: our ConfigUpdate, the SDK's ConfigUpdate
    (``economy_overrides`` + ``reasoning``), a plain dict of overrides, or None."""
    if answer is None or isinstance(answer, ConfigUpdate):
        return answer
    if isinstance(answer, Mapping):
        return ConfigUpdate(dict(answer), reasoning="")
    overrides = getattr(answer, "economy_overrides", None)
    if isinstance(overrides, Mapping):
        return ConfigUpdate(dict(overrides), reasoning=str(getattr(answer, "reasoning", "")))
    raise TypeError(f"a decide function must return a ConfigUpdate, a dict or None, got {answer!r}")


class FunctionAgent(BaseAgent):
    """Wraps a plain ``decide(signals, config)`` function, as written for the live SDK.

    Args:
        decide: the function; it may return our or the SDK's ConfigUpdate, a dict or None.
    """

    def __init__(self, decide: SdkDecide) -> None:
        self.decide_fn = decide

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        return as_update(self.decide_fn(signals, dict(current_config)))
