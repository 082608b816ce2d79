"""The experiment core: one experiment's population, economies, guardrails, signals and day clock.

:meth:`ExperimentCore.step_day` is the only place a simulated day happens: the scenario's
population steps under each arm's current economy, the signals are summarised, each
treatment's harm signal is checked against control (the circuit breaker), and each arm's
objective is added up. The core knows the scenario only through its protocol
(:class:`~arena_rl.core.scenario.Scenario`). Updates go through
:meth:`ExperimentCore.submit`, which passes them to the five guardrails. The PettingZoo
environment, the in-process experiment runner and the HTTP server drive a core and add only
their own concern; what happens is published on the core's event stream
(:class:`~arena_rl.core.events.EventStream`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from arena_rl.core.events import (
    BreakerRecovered,
    BreakerTripped,
    DayClosed,
    DecisionMade,
    EventStream,
    PersonaActed,
    Subscriber,
    UpdateResolved,
    UserDay,
)
from arena_rl.core.guardrails import ConfigUpdate, GuardrailConfig, GuardrailResult, Guardrails
from arena_rl.core.scenario import DayOutcome, Model, Scenario
from arena_rl.core.signals import OBJECTIVE, Signals, Summaries, compare_to_control
from arena_rl.core.stats import Comparison, RatioSummary

CONTROL_ARM = "control_arm"
"""The control arm's name, in every experiment, result and run (an agent may itself be named
"control": the static strategy)."""


class DayActors(Protocol):
    """Users outside the vectorised population who live each day under their arm's economy
    (LLM persona users): the core lets them act after the population, on the same day."""

    def act(
        self, day: int, arms: Sequence[str], economies: Sequence[Mapping[str, float]]
    ) -> Sequence[PersonaActed]: ...


@dataclass(frozen=True)
class DayReport:
    """What one :meth:`ExperimentCore.step_day` produced, for the driver's own concerns."""

    outcome: DayOutcome
    summaries: Summaries
    tripped: tuple[str, ...]
    """Treatment arms whose circuit breaker tripped at the end of the day."""


class ExperimentCore:
    """One A/B/n experiment on a synthetic population: control first, then the treatments.

    Args:
        population: the population preset (of the scenario's plugin).
        scenario: the scenario (knobs, model, base economy, objective, harm signal).
        arms: arm names, control first.
        seed: seeds the population (an int or a SeedSequence).
        n_users: users over all arms.
        guardrails: the guardrail settings.
        subscribers: consumers of the event stream (more can subscribe later).
    """

    def __init__(
        self,
        population: Any,
        scenario: Scenario,
        arms: Sequence[str],
        seed: int | np.random.SeedSequence,
        n_users: int,
        guardrails: GuardrailConfig,
        subscribers: Iterable[Subscriber] = (),
    ) -> None:
        if len(arms) < 2 or len(set(arms)) != len(arms):
            raise ValueError(f"need a control and at least one treatment, all distinct: {arms}")
        self.arms = tuple(arms)
        self.control = self.arms[0]
        self.scenario = scenario
        base = scenario.base_economy()
        self.population: Model = scenario.model(population, len(self.arms), seed, n_users)
        self.guardrails = Guardrails(
            dict.fromkeys(self.arms, base), self.control, guardrails, knobs=scenario.knobs
        )
        self.signals: list[Signals] = self.population.signals(self.population.summarise())
        self.objective = dict.fromkeys(self.arms, 0.0)
        """Each arm's realised objective so far (the sum of its daily values, and the tail
        value once the horizon is reached)."""
        self.tail: dict[str, float] | None = None
        """Each arm's value after the horizon, once :meth:`reach_horizon` added it."""
        self.events = EventStream(subscribers)
        self.actors: DayActors | None = None
        """Users beside the population (persona users), set before the first day; None: none."""
        self._audited = 0

    @property
    def day(self) -> int:
        """Days simulated so far (the next day's index)."""
        return self.population.day

    def signals_of(self, arm: str) -> Signals:
        """The latest signals of any arm, control included."""
        return self.signals[self.arms.index(arm)]

    def config(self, arm: str) -> dict[str, float]:
        return self.guardrails.current_config(arm)

    # ---- between days -------------------------------------------------------------------------

    def tick(self, now: float) -> tuple[str, ...]:
        """Advance guardrail time; breakers whose cool-down passed reset (``auto_reset``)."""
        recovered = self.guardrails.tick(now)
        self._publish_audit()
        return recovered

    def submit(self, arm: str, update: ConfigUpdate, now: float) -> GuardrailResult:
        """Pass an update through the five guardrails (in order) at guardrail time ``now``."""
        result = self.guardrails.submit(arm, update, now)
        self._publish_audit()
        return result

    def reset_breaker(self, arm: str, now: float) -> None:
        """A researcher's reset of a tripped breaker; ValueError before its cool-down."""
        self.guardrails.reset_breaker(arm, now)
        self._publish_audit()

    def decided(
        self,
        arm: str,
        agent: str,
        observation: Signals,
        action: ConfigUpdate | None,
        probability: float,
        seconds: float,
        tokens: float | None = None,
        reasoning: str | None = None,
    ) -> None:
        """Record an agent's decision on the event stream (the runner knows agents; the core
        does not). ``reasoning``: its words (default: its update's reasoning)."""
        if self.events.active:
            config = self.config(arm)
            allowed = self.guardrails.allowed(arm, float(self.day))
            event = DecisionMade(
                self.day,
                arm,
                agent,
                observation,
                config,
                action,
                probability,
                seconds,
                allowed,
                tokens,
                reasoning if reasoning is not None else (action.reasoning if action else ""),
            )
            self.events.publish(event)

    # ---- the day ------------------------------------------------------------------------------

    def step_day(self) -> DayReport:
        """Simulate one day for every arm, then summarise, check harm and add up the objective."""
        pop, rails = self.population, self.guardrails
        economies = [rails.current_config(arm) for arm in self.arms]
        alive_before = pop.alive.copy() if self.events.wants_users else None
        outcome = pop.step(self.scenario.knobs.array(economies))
        if self.actors is not None:
            for acted in self.actors.act(outcome.day, self.arms, economies):
                self.events.publish(acted)
        summaries = pop.summarise()
        self.signals = pop.signals(summaries)
        harm = cast(Sequence[RatioSummary], summaries[self.scenario.harm_metric])
        control = harm[0]
        tripped = tuple(
            arm
            for arm, treated in zip(self.arms[1:], harm[1:], strict=True)
            if rails.check_harm(
                arm, treated.successes, treated.trials, control.successes, control.trials, pop.day
            )
        )
        for arm, value in zip(self.arms, outcome.value, strict=True):
            self.objective[arm] += float(value)
        self._publish_audit()  # today's breaker trips, before the day's close
        if alive_before is not None:
            columns = pop.user_day(alive_before)
            self.events.publish(UserDay(outcome.day, self.arms, pop.alive.shape[1], columns))
        if self.events.active:
            self._publish_day(outcome, economies)
        self.events.flush()
        return DayReport(outcome, summaries, tripped)

    def comparisons(self) -> list[Comparison]:
        """Every treatment arm vs control on each metric and on the objective per enrolled user
        (:data:`~arena_rl.core.signals.OBJECTIVE`), Holm-adjusted across arms."""
        pop = self.population
        summaries = {**pop.summarise(), OBJECTIVE: pop.objective_summary()}
        return compare_to_control(summaries, list(self.arms[1:]))

    def reach_horizon(self) -> dict[str, float]:
        """End of the experiment: add each arm's tail value (:meth:`Model.credit_tail`) to its
        objective, once, and return it."""
        if self.tail is not None:
            raise RuntimeError("the horizon was already reached: the tail is added once")
        values = self.population.credit_tail()
        self.tail = {arm: float(v) for arm, v in zip(self.arms, values, strict=True)}
        for arm, value in self.tail.items():
            self.objective[arm] += value
        return self.tail

    def _publish_day(self, outcome: DayOutcome, economies: Sequence[Mapping[str, float]]) -> None:
        def frozen(array: np.ndarray) -> np.ndarray:
            copy = np.array(array)
            copy.flags.writeable = False
            return copy

        self.events.publish(
            DayClosed(
                day=outcome.day,
                arms=self.arms,
                economies=tuple(dict(e) for e in economies),
                enrolled=frozen(outcome.enrolled),
                active=frozen(outcome.active),
                value=frozen(outcome.value),
                totals={name: frozen(array) for name, array in outcome.totals.items()},
                signals=tuple(self.signals),
            )
        )

    def _publish_audit(self) -> None:
        """Publish the audit entries written since the last call, as typed events."""
        entries = self.guardrails.audit_since(self._audited)
        self._audited += len(entries)
        for entry in entries:
            if entry.kind == "update":
                self.events.publish(UpdateResolved(entry))
            elif entry.kind == "breaker_trip":
                self.events.publish(BreakerTripped(entry))
            else:
                self.events.publish(BreakerRecovered(entry))
