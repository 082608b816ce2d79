"""The experiment as a PettingZoo ``ParallelEnv``: agents are the treatment variants.

Control lives inside the environment. One step is one simulated day; agents act on decision
days (every ``decision_interval`` days) and every action passes the five guardrails. An
observation is exactly what a live agent gets: its variant's signals and current config, plus
when its next update is allowed. The reward is the per-step change of the scenario objective,
i.e. the value the arm created that day per enrolled user; the last day's reward adds the
value its users create after the horizon (the scenario's tail value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from arena_rl.core.events import Subscriber
from arena_rl.core.experiment import CONTROL_ARM, ExperimentCore
from arena_rl.core.guardrails import ConfigUpdate, GuardrailConfig, GuardrailResult, Guardrails
from arena_rl.core.knobs import Knobs
from arena_rl.core.scenario import Model, Scenario
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.scenarios import load_population, load_scenario

COUNT_FIELDS = ("enrolled", "active_today", "active_7d", "total_actions", "experiment_days")
METRIC_FIELDS = ("value", "std_dev", "sample_size", "confidence")
CONFIDENCE_CODES = {"low": 0.0, "medium": 1.0, "high": 2.0}
OBS_HIGH = 1e9
"""Finite ceiling of every observation entry (Gymnasium's checker rejects infinite bounds)."""

Action = np.ndarray | ConfigUpdate | None


@dataclass(frozen=True)
class ObservationLayout:
    """How a scenario's signals and config flatten into an observation vector:
    counts | per metric (value, std_dev, sample_size, confidence 0/1/2) | config | days to wait.
    """

    metrics: tuple[str, ...]
    keys: tuple[str, ...]

    @classmethod
    def of(cls, scenario: Scenario) -> ObservationLayout:
        return cls(tuple(scenario.metrics), scenario.knobs.keys)

    @property
    def size(self) -> int:
        return len(COUNT_FIELDS) + len(self.metrics) * len(METRIC_FIELDS) + len(self.keys) + 1

    def encode(self, sig: Signals, config: Mapping[str, float], wait_days: float) -> np.ndarray:
        """Flatten signals + current config into the observation vector (float32, all >= 0)."""
        values = [float(getattr(sig, f)) for f in COUNT_FIELDS]
        for name in self.metrics:
            m = sig.metrics[name]
            values += [m.value, m.std_dev or 0.0, float(m.sample_size)]
            values.append(CONFIDENCE_CODES[m.confidence])
        values += [config[k] for k in self.keys]
        values.append(wait_days)
        return np.clip(np.asarray(values, dtype=np.float32), 0.0, OBS_HIGH)

    def decode(self, obs: np.ndarray) -> tuple[Signals, dict[str, float], float]:
        """Inverse of :meth:`encode`: (signals, current config, days until allowed)."""
        obs = np.asarray(obs, dtype=np.float64)
        counts = {f: round(float(obs[i])) for i, f in enumerate(COUNT_FIELDS)}
        labels = {code: name for name, code in CONFIDENCE_CODES.items()}
        metrics, i = {}, len(COUNT_FIELDS)
        for name in self.metrics:
            value, std, n, conf = obs[i : i + 4]
            level = labels[float(conf)]
            metrics[name] = MetricValue(float(value), float(std), round(float(n)), level)  # type: ignore[arg-type]
            i += 4
        config = {k: float(obs[i + j]) for j, k in enumerate(self.keys)}
        return Signals(**counts, metrics=metrics), config, float(obs[-1])


def action_to_update(
    action: np.ndarray, config: Mapping[str, float], delta_limit_pct: float, knobs: Knobs
) -> ConfigUpdate | None:
    """A Box action in [-1, 1]^n_knobs moves each knob by ``action × delta_limit_pct`` % of its
    value (knob order), then into its bounds.

    An all-zero action is "no change": nothing is submitted, so no rate limit is spent.
    """
    action = np.clip(np.nan_to_num(np.asarray(action, dtype=np.float64)), -1.0, 1.0)
    if not action.any():
        return None
    step = 1.0 + action * delta_limit_pct / 100.0
    requested = {k: config[k] * s for k, s in zip(knobs.keys, step, strict=True)}
    overrides = {k: v for k, v in knobs.clipped(requested).items() if v != config[k]}
    return ConfigUpdate(overrides, reasoning="box action") if overrides else None


class ArenaParallelEnv(ParallelEnv):
    """An A/B/n experiment on a synthetic population, one arm per agent plus control.

    Args:
        n_agents: treatment variants (agents are named ``variant_1`` ... ``variant_n``).
        population: preset name or path, or a preset of the scenario's plugin (default: the
            scenario's default preset).
        scenario: scenario name or path, or a :class:`~arena_rl.core.scenario.Scenario`.
        n_users: total users over all arms (default: the preset's).
        days: horizon in days (default: the scenario's).
        decision_interval: days between decisions (default: the scenario's).
        guardrails: :class:`GuardrailConfig` overrides (default: the scenario's).
        render_mode: ``"ansi"`` or None.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "arena_rl_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        n_agents: int = 2,
        population: Any = None,
        scenario: str | Scenario = "default",
        n_users: int | None = None,
        days: int | None = None,
        decision_interval: int | None = None,
        guardrails: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {n_agents}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.scenario = load_scenario(scenario) if isinstance(scenario, str) else scenario
        if population is None or isinstance(population, str):
            self.spec = load_population(self.scenario, population)
        else:
            self.spec = population
        self.n_users = n_users or self.spec.n_users
        self.days = days or self.scenario.days
        self.decision_interval = decision_interval or self.scenario.decision_interval
        for name, value in (("days", self.days), ("decision_interval", self.decision_interval)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.guardrail_config = GuardrailConfig(
            **{**self.scenario.guardrails, **(guardrails or {})}
        )
        if self.n_users < n_agents + 1:
            raise ValueError(f"n_users={self.n_users} is too few for {n_agents + 1} arms")
        self.render_mode = render_mode
        self.possible_agents = [f"variant_{i}" for i in range(1, n_agents + 1)]
        self.agents: list[str] = []
        self.layout = ObservationLayout.of(self.scenario)
        self._obs_space = spaces.Box(0.0, OBS_HIGH, shape=(self.layout.size,), dtype=np.float32)
        self._act_space = spaces.Box(-1.0, 1.0, shape=(len(self.scenario.knobs),), dtype=np.float32)
        self._seed_seq = np.random.SeedSequence()
        self.core: ExperimentCore | None = None
        self.subscribers: list[Subscriber] = []
        """Event-stream consumers attached to each episode's core at reset."""

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Box:
        return self._act_space

    @property
    def arms(self) -> list[str]:
        """Control first, then every variant, in population arm order."""
        return [CONTROL_ARM, *self.possible_agents]

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        if seed is not None:
            self._seed_seq = np.random.SeedSequence(seed)
        pop_seed, action_seed = self._seed_seq.spawn(2)
        self._seed_seq = np.random.SeedSequence(self._seed_seq.generate_state(4))  # next episode
        self._act_space.seed(int(action_seed.generate_state(1)[0]))
        self.core = ExperimentCore(
            self.spec,
            self.scenario,
            self.arms,
            pop_seed,
            self.n_users,
            self.guardrail_config,
            self.subscribers,
        )
        self.agents = list(self.possible_agents)
        self.last_result: dict[str, GuardrailResult | None] = dict.fromkeys(self.possible_agents)
        return self._observations(), {a: self._info(a) for a in self.agents}

    @property
    def population(self) -> Model | None:
        return None if self.core is None else self.core.population

    @property
    def guardrails(self) -> Guardrails | None:
        return None if self.core is None else self.core.guardrails

    @property
    def objective(self) -> dict[str, float]:
        """Each arm's realised objective this episode."""
        assert self.core is not None, "call reset() first"
        return self.core.objective

    def step(
        self, actions: Mapping[str, Action]
    ) -> tuple[dict, dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict]]:
        """Advance one day. Actions are Box vectors, :class:`ConfigUpdate` objects or None."""
        if self.core is None:
            raise RuntimeError("call reset() before step()")
        core = self.core
        results: dict[str, GuardrailResult | None] = dict.fromkeys(self.agents)
        if core.day % self.decision_interval == 0:
            now = float(core.day)
            core.tick(now)
            for agent in self.agents:
                update = actions.get(agent)
                if isinstance(update, np.ndarray | list | tuple):
                    limit = self.guardrail_config.delta_limit_pct
                    knobs = self.scenario.knobs
                    update = action_to_update(np.asarray(update), core.config(agent), limit, knobs)
                if update is not None:
                    results[agent] = core.submit(agent, update, now)
        self.last_result = results
        report = core.step_day()
        rewards = {a: float(report.outcome.value[i]) for i, a in enumerate(self.agents, start=1)}
        done = core.day >= self.days
        if done:  # the last reward carries the value the arm's users create after the horizon
            tail = core.reach_horizon()
            rewards = {a: r + tail[a] for a, r in rewards.items()}
        observations = self._observations()
        infos = {a: self._info(a) for a in self.agents}
        terminations = dict.fromkeys(self.agents, False)
        truncations = dict.fromkeys(self.agents, done)
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def signals_of(self, arm: str) -> Signals:
        """The latest signals of any arm (control included): what the scoreboard shows."""
        assert self.core is not None, "call reset() first"
        return self.core.signals_of(arm)

    def _observations(self) -> dict[str, np.ndarray]:
        assert self.core is not None
        core, obs = self.core, {}
        for agent in self.agents:
            allowed = core.guardrails.next_allowed_update(agent)
            wait = 0.0 if allowed is None else max(allowed - core.day, 0.0)
            obs[agent] = self.layout.encode(core.signals_of(agent), core.config(agent), wait)
        return obs

    def _info(self, agent: str) -> dict[str, Any]:
        assert self.core is not None
        return {
            "day": self.core.day,
            "objective": self.core.objective[agent],
            "guardrail": self.last_result[agent],
            "decision_day": self.core.day % self.decision_interval == 0,
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self.core is None:
            return None
        lines = [f"day {self.core.day}/{self.days}"]
        for arm, sig in zip(self.arms, self.core.signals, strict=True):
            shown = "  ".join(f"{name} {m.value:.3g}" for name, m in sig.metrics.items())
            lines.append(f"{arm:>12}  active {sig.active_today:5d}/{sig.enrolled:<5d}  {shown}")
        return "\n".join(lines)

    def close(self) -> None:
        pass


def parallel_env(**kwargs: Any) -> ArenaParallelEnv:
    """PettingZoo's conventional factory; every argument of :class:`ArenaParallelEnv` applies."""
    return ArenaParallelEnv(**kwargs)
