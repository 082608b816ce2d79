"""The scenario protocol: what an economy plugin brings, and all the core knows of it.

A scenario (gamification's XP economy, subscription pricing, ...) declares its action space
(:class:`~arena_rl.core.knobs.Knobs`), builds its synthetic population (a :class:`Model`),
summarises it into signals, states its objective and the harm signal the circuit breaker
watches, and describes itself for people and language models. The experiment core, the
environments, the tournament runner and the ground-truth search work through this protocol
only, so nothing outside a plugin's own folder knows an economy key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from arena_rl.core.events import UserEventType
from arena_rl.core.knobs import Knobs
from arena_rl.core.signals import Signals, Summaries
from arena_rl.core.stats import MeanSummary

Arms = Mapping[str, Mapping[str, float]]
"""Arm name -> {knob: multiplier of the base economy}; knobs left out stay at base."""


@dataclass(frozen=True)
class DayOutcome:
    """Per-arm totals of one simulated day; every array has shape (n_arms,)."""

    day: int
    enrolled: np.ndarray
    """Users (customers) of each arm who have arrived by the end of the day."""
    active: np.ndarray
    """Users active today, in the scenario's sense (in the app; holding a subscription)."""
    value: np.ndarray
    """Scenario objective earned today, per enrolled user of the arm (the step's reward)."""
    totals: Mapping[str, np.ndarray]
    """The scenario's own per-arm totals of the day (e.g. scans and XP; revenue)."""


class Model(Protocol):
    """One experiment's synthetic users, every arm side by side, stepped a day at a time.

    Built by :meth:`Scenario.model`. Users are array rows; one :meth:`step` moves every user
    of every arm with whole-array operations.
    """

    day: int
    """Days simulated so far (the next day's index)."""
    alive: np.ndarray
    """(n_arms, users_per_arm) > 0 where a user is still a user (enrolled, not churned)."""

    def step(self, economies: np.ndarray) -> DayOutcome:
        """Simulate one day; ``economies`` is (n_arms, n_knobs) in knob order, row 0 control."""
        ...

    def summarise(self) -> Summaries:
        """Per metric (the scenario's metrics, in order), one summary per arm."""
        ...

    def objective_summary(self) -> Sequence[MeanSummary]:
        """Per arm, each enrolled user's objective so far (their tail value included once
        credited): summed over an arm's users it is the arm's objective. Asked for when the
        arms are compared, not every day."""
        ...

    def signals(self, summaries: Summaries) -> list[Signals]:
        """What a live agent sees of each arm (index 0 = control)."""
        ...

    def credit_tail(self) -> np.ndarray:
        """At the horizon, once: the expected discounted value that each user creates after
        the last simulated day if the economy stays as it is, added to that user's objective
        (:meth:`objective_summary`); returns (n_arms,) its sum per enrolled user, which the
        caller adds to the arm's objective. Zeros when the scenario's ``tail_discount`` is 0;
        RuntimeError if called twice."""
        ...

    def user_day(self, alive_before: np.ndarray) -> dict[str, np.ndarray]:
        """The last simulated day of every enrolled user, as equal-length columns (``arm``
        and ``user`` first); ``alive_before`` is ``alive`` as it was before that day."""
        ...


class Scenario(Protocol):
    """An economy plugin, as one tenant configured it: knobs, population, signals, objective.

    Implementations are frozen dataclasses (picklable, hashable by value where their fields
    are) with the experiment settings below as fields, and the rest as methods.
    """

    name: str
    """The tenant's name (the config file's)."""
    days: int
    """Horizon of one experiment, in days."""
    tail_discount: float
    """Daily discount of the value users create after the horizon (0: none is counted)."""
    decision_interval: int
    """Days between agents' decisions."""
    user_events: tuple[UserEventType, ...]
    """The kinds of user-level event the event log reads off :meth:`Model.user_day`."""
    guardrails: Mapping[str, Any]
    """Overrides of the guardrail settings for this tenant."""

    @property
    def plugin(self) -> str:
        """The plugin's name: its folder under ``arena_rl/scenarios/``."""
        ...

    @property
    def default_population(self) -> str:
        """The population preset (in ``conf/population/``) the scenario runs on by default."""
        ...

    @property
    def knobs(self) -> Knobs:
        """The action space: every knob, its bounds, default and integrality."""
        ...

    @property
    def metrics(self) -> tuple[str, ...]:
        """Names of the signal metrics, in a fixed order (observation layouts depend on it)."""
        ...

    @property
    def objective_metrics(self) -> tuple[str, ...]:
        """The metrics :meth:`estimate_objective` reads: a careful strategy waits until they
        are confident before it trusts the estimate."""
        ...

    @property
    def harm_metric(self) -> str:
        """The ratio metric (higher is better) the circuit breaker compares with control."""
        ...

    def base_economy(self) -> dict[str, float]:
        """The knobs' defaults overridden by this tenant's own economy."""
        ...

    def population_from_dict(self, data: Mapping[str, Any], source: str) -> Any:
        """Validate a population preset of this plugin (as read from YAML)."""
        ...

    def load_population(self, name_or_path: str) -> Any:
        """A population preset of this plugin by name (``conf/population/``) or YAML path."""
        ...

    def model(
        self,
        population: Any,
        n_arms: int,
        seed: int | np.random.SeedSequence,
        n_users: int | None = None,
        twins: bool = False,
    ) -> Model:
        """A population of ``n_users`` (default: the preset's) split over ``n_arms`` arms.

        ``twins=True`` is ground-truth mode: every arm gets the same users and the same daily
        random draws (common random numbers), so arms differ only by their economy.
        """
        ...

    def isolated(self) -> Scenario:
        """This scenario with arms that cannot affect one another: a static economy's value
        is defined for it alone."""
        ...

    def estimate_objective(self, signals: Signals) -> float | None:
        """Today's objective per enrolled user, estimated from public signals (None until
        they hold the data it needs): what a strategy without ground truth optimises."""
        ...

    def arm_sets(self) -> Mapping[str, Arms]:
        """Named arm sets the plugin ships for arm-based bandits (may be empty)."""
        ...

    def search_box(self) -> Mapping[str, tuple[float, float]]:
        """Knob -> [low, high] multipliers of the base economy that a searching strategy (e.g.
        Bayesian optimisation) explores; empty: derive the box from the knobs' bounds."""
        ...

    def levers(self) -> Mapping[str, tuple[str, ...]]:
        """Named groups of knobs that move together (e.g. "cost", "value", "retention"), for
        strategies that nudge groups rather than single knobs; may be empty."""
        ...

    def describe(self) -> str:
        """The scenario for a reader who knows nothing of it: what users do, what each knob
        and metric means, and the objective (the LLM agent's prompt quotes it)."""
        ...
