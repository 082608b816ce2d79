"""Play one experiment: agents drive the PettingZoo environment through the agent protocol.

Pure and seeded: the same agents, settings and seed give the same result. Every agent plays
behind an :class:`~arena_rl.sandbox.AgentSandbox`: a strategy that raises in any hook, answers
nonsense or takes too long is recorded as a fault and holds; the experiment goes on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arena_rl.agent import Agent, VariantInfo, check_scenario
from arena_rl.core.events import AuditLog, DailyHistory, Subscriber
from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.stats import Comparison
from arena_rl.envs.parallel import ArenaParallelEnv
from arena_rl.personas.users import PersonaUsers, PersonaUsersConfig
from arena_rl.sandbox import AgentSandbox


@dataclass(frozen=True)
class ExperimentResult:
    """Everything one experiment produced, per arm (control included) or per agent."""

    seed: int
    names: tuple[str, ...]
    """Agent names in arm order (arm ``i + 1`` is ``names[i]``)."""
    objective: dict[str, float]
    """Realised scenario objective per arm (sum of daily values per enrolled user, plus the
    tail value); the control arm is under ``CONTROL_ARM``."""
    daily_value: dict[str, np.ndarray]
    history: dict[str, dict[str, np.ndarray]]
    """Per arm, each metric's value at the end of every day: (days,) arrays."""
    comparisons: list[Comparison]
    guardrail_counts: dict[str, dict[str, int]]
    decision_seconds: dict[str, list[float]]
    faults: dict[str, list[str]]
    audit: list[dict[str, object]] = field(default_factory=list)
    usage: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per agent that reports it (``usage()``): counters such as model calls and tokens."""
    notes: dict[str, list[str]] = field(default_factory=dict)
    """Per agent that keeps them (``notes()``): its own log, e.g. an LLM's unused answers."""
    tail: dict[str, float] = field(default_factory=dict)
    """Per arm, the value its users create after the horizon (in ``objective``; 0 when the
    scenario's ``tail_discount`` is 0)."""
    personas: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per arm, the persona users' totals, and their model usage under ``"usage"`` (empty
    without persona users); never part of ``comparisons``."""

    def lift(self, name: str) -> float:
        """Objective of an agent's arm minus control's, on the same population sample."""
        return self.objective[name] - self.objective[CONTROL_ARM]


def run_experiment(
    agents: Mapping[str, Agent],
    seed: int = 0,
    *,
    decision_timeout_s: float | None = None,
    subscribers: Sequence[Subscriber] = (),
    persona_users: PersonaUsersConfig | None = None,
    **env_kwargs: Any,
) -> ExperimentResult:
    """Run one experiment with one arm per agent, plus control.

    Args:
        agents: name -> agent, in arm order; names must be distinct and not ``CONTROL_ARM``.
        seed: root seed: the population and each agent's generator are spawned from it.
        decision_timeout_s: a decision that takes longer is a fault; it is abandoned, not waited
            for (wall-clock, so it depends on the machine).
        subscribers: more consumers of the experiment's event stream (e.g. an event log).
        persona_users: LLM persona users to live beside the population in every arm.
        **env_kwargs: :class:`ArenaParallelEnv` settings (population, scenario, n_users, days,
            decision_interval, guardrails).
    """
    names = tuple(agents)
    if not names or CONTROL_ARM in names:
        raise ValueError(f"need at least one agent, none named {CONTROL_ARM!r}; got {names}")
    env = ArenaParallelEnv(n_agents=len(names), **env_kwargs)
    for name, agent in agents.items():
        check_scenario(name, agent, env.scenario)
    history, audit_log = DailyHistory(), AuditLog()
    env.subscribers += [history, audit_log, *subscribers]
    variant_of = dict(zip(names, env.possible_agents, strict=True))
    env_seed, *agent_seeds = np.random.SeedSequence(seed).spawn(len(names) + 1)
    env.reset(seed=int(env_seed.generate_state(1)[0]))
    assert env.core is not None
    core = env.core
    personas = None
    if persona_users is not None:
        personas = PersonaUsers(persona_users, env.scenario, core.arms, seed)
        core.actors = personas
    knobs = env.scenario.knobs
    boxed = {n: AgentSandbox(n, a, knobs, decision_timeout_s) for n, a in agents.items()}
    for (name, sandbox), agent_seed in zip(boxed.items(), agent_seeds, strict=True):
        info = VariantInfo.of(
            name,
            env.spec,
            env.scenario,
            days=env.days,
            decision_interval=env.decision_interval,
            guardrails=env.guardrail_config,
        )
        sandbox.reset(info, np.random.default_rng(agent_seed))
    try:
        while env.agents:
            actions: dict[str, ConfigUpdate | None] = {}
            if core.day % env.decision_interval == 0:
                listened = core.events.active  # what a decision cost and said: only if asked
                for name, sandbox in boxed.items():
                    variant = variant_of[name]
                    observation = core.signals_of(variant)
                    if listened:
                        tokens, noted = sandbox.tokens(), len(sandbox.notes() or ())
                    update, probability = sandbox.decide(
                        observation, core.config(variant), core.day
                    )
                    actions[variant] = update
                    if listened:
                        seconds = sandbox.seconds[-1] if sandbox.seconds else 0.0
                        after = sandbox.tokens()
                        used = None if tokens is None or after is None else after - tokens
                        # a hold has no update to carry its reasons: the agent's notes say them
                        said = (
                            update.reasoning
                            if update
                            else " ".join((sandbox.notes() or [])[noted:])
                        )
                        core.decided(
                            variant, name, observation, update, probability, seconds, used, said
                        )
            day = core.day
            env.step(actions)
            for name, sandbox in boxed.items():
                result = env.last_result.get(variant_of[name])
                if result is not None:
                    sandbox.on_result(result, day)
    finally:
        for sandbox in boxed.values():
            sandbox.close()

    renamed = {variant_of[n]: n for n in names} | {CONTROL_ARM: CONTROL_ARM}
    comparisons = [dataclasses.replace(c, variant=renamed[c.variant]) for c in core.comparisons()]
    daily = {renamed[arm]: values for arm, values in history.value.items()}
    metrics = {renamed[arm]: h for arm, h in history.metrics.items()}
    tail = {renamed[arm]: value for arm, value in (core.tail or {}).items()}
    return ExperimentResult(
        seed=seed,
        names=names,
        objective={
            arm: float(np.sum(values)) + tail.get(arm, 0.0) for arm, values in daily.items()
        },
        daily_value={arm: np.asarray(values) for arm, values in daily.items()},
        history={arm: {m: np.asarray(v) for m, v in h.items()} for arm, h in metrics.items()},
        comparisons=comparisons,
        guardrail_counts={n: core.guardrails.counts(variant_of[n]) for n in names},
        decision_seconds={n: box.seconds for n, box in boxed.items()},
        faults={n: box.faults for n, box in boxed.items()},
        audit=audit_log.records({variant_of[n]: n for n in names}),
        usage={n: u for n, box in boxed.items() if (u := box.usage()) is not None},
        notes={n: notes for n, box in boxed.items() if (notes := box.notes()) is not None},
        tail=tail,
        personas={} if personas is None else _persona_totals(personas, renamed),
    )


def _persona_totals(
    personas: PersonaUsers, renamed: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    totals = {renamed[arm]: t for arm, t in personas.summary().items()}
    return {**totals, "usage": personas.usage_dict()}
