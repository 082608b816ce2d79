"""Play one tournament: pure, synchronous, seeded -> a :class:`TournamentResult`.

A tournament is one experiment (``run_experiment``) described by a picklable
:class:`TournamentSpec`; its result is a plain, JSON-able record, so the Ray runner can ship it
back, write it to disk before scheduling more, and read it again on resume.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from arena_rl.agent import Agent
from arena_rl.core import ground_truth
from arena_rl.core.disk_cache import digest
from arena_rl.core.events import Subscriber
from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.core.scenario import Scenario
from arena_rl.eventlog.recorder import EventLogRecorder
from arena_rl.experiment import run_experiment
from arena_rl.personas.users import PersonaUsersConfig

AgentFactory = Callable[[str, Mapping[str, Any]], Agent]
"""Builds an agent from its name and config (``_target_`` + hyperparameters)."""


@dataclass(frozen=True)
class TournamentSpec:
    """Everything needed to play one tournament, and nothing that cannot be pickled."""

    index: int
    seed: int
    agents: dict[str, dict[str, Any]]
    """Agent name -> config (``_target_`` + hyperparameters), in arm order."""
    population: Any
    """A population preset of the scenario's plugin."""
    scenario: Scenario
    n_users: int
    days: int
    pairing: str = "ffa"
    """"ffa" (every selected agent) or "A vs B" for a round-robin pair."""
    decision_timeout_s: float | None = None
    """A decision slower than this is recorded as a fault and dropped (None: no limit)."""
    plan_value: float | None = None
    """Expected objective of the ground-truth plan; None: computed (and cached) where played.
    The driver fills it once per run, so workers do not each repeat the search."""
    eventlog_users: int | str | None = None
    """Keep an event log of the tournament with these users' events ("none", "all" or a
    number per arm); None: no log. The log never changes a result."""
    persona_users: dict[str, Any] | None = None
    """LLM persona users beside the population (:class:`PersonaUsersConfig` as plain JSON);
    None: none."""


@dataclass(frozen=True)
class TournamentResult:
    """One tournament's outcome, per agent; JSON-able via :meth:`to_json`.

    ``objective`` includes the control arm under ``CONTROL_ARM``; ``lift`` is an agent's
    objective minus control's (same population sample); ``regret`` is the expected objective of
    the ground-truth plan (oracle's schedule) minus the agent's realised objective.
    """

    index: int
    seed: int
    pairing: str
    agents: list[str]
    objective: dict[str, float]
    lift: dict[str, float]
    regret: dict[str, float]
    comparisons: list[dict[str, Any]]
    guardrails: dict[str, dict[str, int]]
    faults: dict[str, list[str]]
    decision_ms: dict[str, float]
    history: dict[str, dict[str, list[float]]] = field(repr=False)
    """Per arm and metric, the value at the end of each day (for MLflow step = day)."""
    daily_value: dict[str, list[float]] = field(repr=False)
    audit: list[dict[str, Any]] = field(repr=False)
    spec_digest: str = ""
    """Digest of :func:`experiment_record` of the spec that was played: a resumed run checks
    that a stored result is of the tournament it asks for."""
    usage: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per agent that reports it, e.g. an LLM's calls, cache hits, tokens, latency and cost."""
    notes: dict[str, list[str]] = field(default_factory=dict, repr=False)
    tail: dict[str, float] = field(default_factory=dict)
    """Per arm, the value after the horizon that ``objective`` includes."""
    personas: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per arm, the persona users' totals (flagged: never in ``comparisons``), and their model
    usage under ``"usage"``; empty without persona users."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> TournamentResult:
        return cls(**json.loads(text))


def experiment_record(spec: TournamentSpec) -> dict[str, Any]:
    """What decides a tournament's result besides its seed and pairing, as plain JSON."""
    record = {
        "agents": spec.agents,
        "population": asdict(spec.population),
        "scenario": {"plugin": spec.scenario.plugin, **asdict(spec.scenario)},  # type: ignore[call-overload]
        "n_users": spec.n_users,
        "days": spec.days,
        "decision_timeout_s": spec.decision_timeout_s,
    }
    if spec.persona_users is not None:  # absent otherwise: earlier results keep their digest
        record["persona_users"] = spec.persona_users
    plain: dict[str, Any] = json.loads(json.dumps(record, default=repr))
    return plain


def recorder_for(spec: TournamentSpec) -> EventLogRecorder | None:
    """The event log recorder ``spec`` asks for, or None."""
    if spec.eventlog_users is None:
        return None
    settings = {"seed": spec.seed, "days": spec.days, "n_users": spec.n_users,
                "pairing": spec.pairing, "scenario": spec.scenario.name,
                "population": getattr(spec.population, "name", "")}  # fmt: skip
    return EventLogRecorder(
        spec.scenario.user_events,
        users=spec.eventlog_users,
        seed=spec.seed,
        tournament=spec.index,
        settings=settings,
    )


def plan_value(spec: TournamentSpec) -> float:
    """Expected objective of the ground-truth plan for this tournament's population and days
    (the driver computes it once and passes it in the spec; the disk cache serves the rest)."""
    if spec.plan_value is not None:
        return spec.plan_value
    return ground_truth.plan_value(spec.population, spec.scenario, spec.days)[0]


def play_tournament(
    spec: TournamentSpec,
    build: AgentFactory,
    *,
    with_regret: bool = True,
    subscribers: Sequence[Subscriber] = (),
) -> TournamentResult:
    """Play ``spec``: build its agents, run the experiment (``subscribers`` listening), and
    summarise per agent."""
    agents = {name: build(name, config) for name, config in spec.agents.items()}
    result = run_experiment(
        agents,
        seed=spec.seed,
        population=spec.population,
        scenario=spec.scenario,
        n_users=spec.n_users,
        days=spec.days,
        decision_timeout_s=spec.decision_timeout_s,
        subscribers=subscribers,
        persona_users=(
            None
            if spec.persona_users is None
            else PersonaUsersConfig.model_validate(spec.persona_users)
        ),
    )
    best = plan_value(spec) if with_regret else float("nan")
    return TournamentResult(
        index=spec.index,
        seed=spec.seed,
        pairing=spec.pairing,
        agents=list(result.names),
        objective=result.objective,
        lift={n: result.lift(n) for n in result.names},
        regret={n: best - result.objective[n] for n in result.names},
        comparisons=[asdict(c) for c in result.comparisons],
        guardrails=result.guardrail_counts,
        faults=result.faults,
        decision_ms={
            n: float(np.mean(t)) * 1000 if t else 0.0 for n, t in result.decision_seconds.items()
        },
        history={
            arm: {m: [float(x) for x in v] for m, v in h.items()}
            for arm, h in result.history.items()
        },
        daily_value={arm: [float(x) for x in v] for arm, v in result.daily_value.items()},
        audit=result.audit,
        spec_digest=digest(experiment_record(spec)),
        usage=result.usage,
        notes=result.notes,
        tail=result.tail,
        personas=result.personas,
    )


__all__ = [
    "CONTROL_ARM",
    "TournamentResult",
    "TournamentSpec",
    "plan_value",
    "play_tournament",
    "recorder_for",
]
