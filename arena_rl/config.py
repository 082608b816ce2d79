"""The only module that knows Hydra: structured config, validation, and the turn into specs.

Everything past this boundary sees plain dataclasses and dicts, never a ``DictConfig``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import os
import sys
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import MISSING, DictConfig, OmegaConf

from arena_rl.agent import Agent, ScenarioMismatchError, VariantInfo, check_scenario
from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.core.ground_truth import plan_value
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.eventlog.recorder import check_user_sample
from arena_rl.personas.users import PersonaUsersConfig
from arena_rl.scenarios import plugins, scenario_from_dict, target_of
from arena_rl.scenarios.prior import PopulationPrior
from arena_rl.scenarios.specs import CONF_DIR
from arena_rl.tournament.play import TournamentSpec

FORMATS = ("ffa", "round_robin")


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key."""


@dataclass
class TournamentConf:
    n_tournaments: int = 4
    """Seeded tournaments (per pair, for round_robin)."""
    days: int | None = None
    """Days per tournament; null = the scenario's."""
    format: str = "ffa"
    """ffa: all agents in one experiment; round_robin: every pair in its own."""
    max_retries: int = 2
    """Retries of a tournament whose worker died."""
    decision_timeout_s: float | None = 60.0
    """A decision slower than this is a fault and is dropped; null: no limit. The local LLM
    takes seconds per decision, hence a minute."""


@dataclass
class RayConf:
    address: str | None = None
    """null: start a local Ray; "auto" or "ray://host:port": join a cluster."""
    num_workers: int = 2
    """Worker actors, one CPU each; 0 plays every tournament in this process, without Ray (the
    same results; quicker for a few tournaments of a few seconds)."""


@dataclass
class TrackingConf:
    uri: str | None = None
    """null: sqlite:///<cwd>/mlflow.db, which `mlflow ui` opens from the project directory."""
    experiment: str = "arena_rl"
    enabled: bool = True


@dataclass
class EventLogConf:
    enabled: bool = True
    """Keep an event log of every tournament (``<run dir>/eventlog/<index>/``, and the MLflow
    parent run's ``eventlog/`` artifacts): docs/eventlog.md."""
    users: Any = 100
    """Whose user-level events it keeps: "none", "all", or this many users per arm drawn at
    random (agents' decisions and the guardrails' answers are always kept). 100 keeps a default
    tournament's log small and quick to write."""
    process_views: bool = False
    """Also draw each tournament's process views (users' journeys per arm, variants, time to
    the goal) into its log folder: needs the process extra (pm4py)."""


@dataclass
class LivePageConf:
    host: str = "127.0.0.1"
    """Where the live page listens: this machine only, unless told otherwise."""
    port: int = 8765
    """0: any free port (the URL is printed either way)."""
    linger_s: float = 0.0
    """Keep serving the page this long after the run ends, so a browser can catch up."""


@dataclass
class RootConf:
    seed: int = 0
    """Root seed: every tournament, population and agent stream is spawned from it."""
    tournament: TournamentConf = field(default_factory=TournamentConf)
    ray: RayConf = field(default_factory=RayConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    eventlog: EventLogConf = field(default_factory=EventLogConf)
    progress: bool = True
    """A progress bar on the driver."""
    live: bool = False
    """Watch the run in a browser: the live page's URL is printed at the start (docs/live.md)."""
    live_page: LivePageConf = field(default_factory=LivePageConf)
    persona_users: Any = None
    """null: none; else LLM persona users beside the population in every arm, e.g.
    ``{file: default, per_arm: 5, llm: {budget_usd: 1.0}}`` (docs/personas.md)."""
    population: Any = None
    scenario: Any = None
    agents: Any = None


ConfigStore.instance().store(name="schema", node=RootConf)


@dataclass
class ReplayConf:
    log: str = MISSING
    """A run's output folder (its eventlog/), one tournament's log folder, or an MLflow run id."""
    policy: str = MISSING
    """The agent to replay (a name in conf/agents/)."""
    policy_params: dict[str, Any] = field(default_factory=dict)
    """Overrides of its hyperparameters."""
    tournaments: Any = None
    """null: every tournament in the log; or a list of tournament indices."""
    seed: int = 0
    """Seeds the policy (reset at each arm's first decision point) and the bootstrap."""
    n_boot: int = 1000
    """Bootstrap replicates of each estimate's CI."""
    progress: bool = True
    tracking: TrackingConf = field(default_factory=TrackingConf)


ConfigStore.instance().store(name="replay_schema", node=ReplayConf)


def schema_twin(spec: type, target: str | None = None) -> type:
    """A mutable dataclass with ``spec``'s fields and defaults (nested dataclasses twinned too).

    It is Hydra's schema for a config group whose files are validated into the frozen ``spec``
    later: every key exists, with its default, so a file states only what differs and any key
    can be overridden on the command line, while the defaults stay stated once, in ``spec``
    (a frozen dataclass itself would make the node read-only).
    """
    hints = typing.get_type_hints(spec)
    twin_fields: list[tuple[str, Any, Any]] = []
    if target is not None:  # the class the node is validated into (a scenario plugin's)
        twin_fields.append(("_target_", str, target))
    for f in dataclasses.fields(spec):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            nested = schema_twin(kind)
            twin_fields.append((f.name, nested, field(default_factory=nested)))
        elif f.default is not dataclasses.MISSING:
            twin_fields.append((f.name, Any, f.default))
        else:
            twin_fields.append((f.name, Any, field(default_factory=f.default_factory)))
    return dataclasses.make_dataclass(f"{spec.__name__}Schema", twin_fields)


def register_scenario_schema() -> None:
    """Register each scenario plugin's schema as ``scenario_schema/<plugin>`` (every Hydra app
    that composes the ``scenario`` group); a scenario file starts from it with
    ``- /scenario_schema@_here_: <plugin>`` in its defaults list."""
    for name, cls in plugins().items():
        node = schema_twin(cls, target=target_of(cls))
        ConfigStore.instance().store(group="scenario_schema", name=name, node=node)


register_scenario_schema()


@dataclass(frozen=True)
class Settings:
    """A validated run: plain values only."""

    seed: int
    agents: dict[str, dict[str, Any]]
    specs: list[TournamentSpec]
    num_workers: int
    address: str | None
    max_retries: int
    tracking_uri: str | None
    tracking_experiment: str
    tracking_enabled: bool
    progress: bool
    resolved: dict[str, Any]
    truth_cached: bool = False
    """Whether the ground-truth plan's value came from the disk cache (no search this run)."""
    truth_s: float = 0.0
    """Seconds spent getting it."""
    process_views: bool = False
    """Draw each tournament's process views from its event log."""
    live: LivePageConf | None = None
    """Where to serve the live page; None: no page."""
    personas: PersonaUsersConfig | None = None
    """The persona users of every tournament; None: none."""


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The app's config composed exactly as scripts/tournament.py composes it (for tests,
    notebooks and helper scripts; the schema is registered by importing this module)."""
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app (e.g. the replay command)
        return compose(config_name="config", overrides=list(overrides))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def agent_configs(names: Sequence[str], overrides: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Plain configs of the named agents, as ``+agents=[...]`` selects them (in that order)."""
    cfg = compose_config([f"+agents=[{','.join(names)}]", *overrides])
    agents = OmegaConf.to_container(cfg.agents, resolve=True)
    assert isinstance(agents, dict)
    return {str(name): conf for name, conf in agents.items()}


def available_agents() -> list[str]:
    """Names of the strategies registered in ``conf/agents/``."""
    return sorted(p.stem for p in (CONF_DIR / "agents").glob("*.yaml"))


def no_agents_message() -> str:
    names = available_agents()
    return (
        "No agents selected. Choose them as a config group, e.g.\n"
        "    python scripts/tournament.py '+agents=[ucb,oracle]'\n"
        f"Available agents: {', '.join(names)}\n"
        "Override a hyperparameter with agents.<name>.<key>=value; enter a strategy twice under\n"
        "another name with '+agents@agents.<new_name>=<strategy>'."
    )


EXTRAS = {
    "torch": ("ppo", "pip install torch==2.13.0"),
    "llama_cpp": ("llm", 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install "arena-rl[llm]"'),
}
"""Optional package -> (the extra that brings it, the install line to run). torch is installed
on its own, as the CPU build: anything else that pulled it would fetch a CUDA build of GBs."""


def build_agent(name: str, config: Mapping[str, Any]) -> Agent:
    """Instantiate one agent from its config (``_target_`` + hyperparameters); an agent whose
    optional dependency is missing is refused with the line that installs it."""
    try:
        return instantiate(dict(config), _convert_="all")
    except Exception as exc:
        missing = _missing_module(exc)
        if missing in EXTRAS:
            extra, line = EXTRAS[missing]
            raise ConfigError(
                f"agents.{name} needs {missing}, which is not installed (the '{extra}' extra). "
                f"Install it with:\n    {line}"
            ) from exc
        cause = exc.__cause__ or exc  # Hydra wraps the agent's own error in one of its own
        raise ConfigError(f"agents.{name}: cannot build it: {cause}") from exc


def _missing_module(exc: BaseException | None) -> str | None:
    """The top-level module whose absence caused ``exc`` (Hydra wraps the ImportError)."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name.split(".")[0]
        exc = exc.__cause__ or exc.__context__
    return None


def dry_run(name: str, config: Mapping[str, Any], info: VariantInfo) -> None:
    """Build the agent, reset it and ask for one decision on empty signals: a bad
    hyperparameter fails here, before Ray starts, instead of in every worker."""
    agent = build_agent(name, config)
    try:
        check_scenario(name, agent, info.scenario)
    except ScenarioMismatchError as exc:
        raise ConfigError(f"agents.{name}: {exc}") from exc
    empty = MetricValue(0.0, None, 0, "low")
    signals = Signals(0, 0, 0, 0, 0, dict.fromkeys(info.scenario.metrics, empty))
    try:
        agent.reset(info, np.random.default_rng(0))
        agent.decide(signals, dict(info.base_economy))
    except Exception as exc:
        raise ConfigError(f"agents.{name}: fails a dry run: {type(exc).__name__}: {exc}") from exc


PRIOR_STREAM = 7
"""Spawn key of the random stream that draws populations from a prior."""


def _positive(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
    return value


def _check_tracking_uri(uri: str | None) -> None:
    """A local store's folder must exist and be writable now, not after every tournament has
    played (a server's URI is checked when the run is logged)."""
    if uri is None:
        return
    if not isinstance(uri, str) or not uri:
        raise ConfigError(f"tracking.uri must be a URI string or null, got {uri!r}")
    scheme, _, rest = uri.partition(":")
    if scheme == "sqlite":
        path = Path(rest[3:])  # sqlite:///relative.db or sqlite:////absolute.db
        if not rest.startswith("///") or not rest[3:]:
            raise ConfigError(f"tracking.uri {uri!r}: a SQLite URI is sqlite:///<path to .db>")
        folder = path.parent if path.is_absolute() else (Path.cwd() / path).parent
    elif scheme == "file" or "://" not in uri:
        folder = Path(rest if scheme == "file" else uri).expanduser()
        folder = folder if folder.is_absolute() else Path.cwd() / folder
        folder = folder if folder.exists() else folder.parent
    else:
        return
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ConfigError(
            f"tracking.uri {uri!r}: the folder {folder} does not exist or is not writable"
        )


def settings_from(cfg: DictConfig) -> Settings:
    """Validate the composed config and plan every tournament, before any work starts."""
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    resolved: dict[str, Any] = {str(k): v for k, v in container.items()}
    agents = resolved.get("agents") or {}
    if not agents:
        raise ConfigError(no_agents_message())
    for name, conf in agents.items():
        if not isinstance(conf, dict) or "_target_" not in conf:
            raise ConfigError(f"agents.{name}: expected a config with _target_, got {conf!r}")
        if name == CONTROL_ARM:
            raise ConfigError("agents.control_arm: the name is reserved for the control arm")
    t = resolved["tournament"]
    n_tournaments = _positive(t["n_tournaments"], "tournament.n_tournaments")
    if t["format"] not in FORMATS:
        raise ConfigError(f"tournament.format must be one of {FORMATS}, got {t['format']!r}")
    if t["format"] == "round_robin" and len(agents) < 2:
        raise ConfigError("tournament.format=round_robin needs at least two agents")
    max_retries = t["max_retries"]
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"tournament.max_retries must be an integer >= 0, got {max_retries!r}")
    num_workers = resolved["ray"]["num_workers"]
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(
            "ray.num_workers must be an integer >= 0 (0: play in this process), "
            f"got {num_workers!r}"
        )
    cores = os.cpu_count() or 1
    if resolved["ray"]["address"] is None and num_workers > cores:
        print(
            f"warning: ray.num_workers={num_workers} on this machine's {cores} cores: the "
            "workers share them (the same results, no faster; each holds its own memory)",
            file=sys.stderr,
        )
    timeout = t["decision_timeout_s"]
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
    ):
        raise ConfigError(
            f"tournament.decision_timeout_s must be a number of seconds > 0, or null for no "
            f"limit; got {timeout!r}"
        )
    eventlog = resolved["eventlog"]
    if not isinstance(eventlog["enabled"], bool):
        raise ConfigError(f"eventlog.enabled must be true or false, got {eventlog['enabled']!r}")
    try:
        eventlog_users = check_user_sample(eventlog["users"]) if eventlog["enabled"] else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if eventlog["process_views"] and importlib.util.find_spec("pm4py") is None:
        raise ConfigError(
            "eventlog.process_views=true needs pm4py, which comes with the process extra: "
            "pip install 'arena_rl[process]'"
        )
    if eventlog["process_views"] and not eventlog["enabled"]:
        raise ConfigError("eventlog.process_views=true needs the event log (eventlog.enabled)")
    live = _live_page(resolved["live"], resolved["live_page"])
    personas = _persona_users(resolved["persona_users"])
    tracking = resolved["tracking"]
    if tracking["enabled"]:
        _check_tracking_uri(tracking["uri"])
    scenario = scenario_from_dict(resolved["scenario"], source="scenario")
    population = scenario.population_from_dict(resolved["population"], source="population")
    days = scenario.days if t["days"] is None else _positive(t["days"], "tournament.days")
    if personas is not None and "scanXp" not in scenario.knobs.by_name:
        raise ConfigError(
            f"persona_users: persona users live in the gamification app; scenario "
            f"{scenario.name!r} has no XP economy"
        )
    prior = population if isinstance(population, PopulationPrior) else None
    if prior is not None:  # agents are checked on the preset the prior perturbs
        population = prior.base

    for name, conf in agents.items():  # fail on bad hyperparameters now, not in a worker
        dry_run(name, conf, VariantInfo.of(name, population, scenario, days=days))
    if t["format"] == "ffa":
        lineups = [list(agents)]
    else:
        lineups = [list(pair) for pair in itertools.combinations(agents, 2)]
    n_users = population.n_users
    for lineup in lineups:
        if n_users < len(lineup) + 1:
            raise ConfigError(f"population.n_users={n_users} is too few for {len(lineup) + 1} arms")
    seeds = np.random.SeedSequence(resolved["seed"]).spawn(n_tournaments * len(lineups))
    # one population per tournament, the same for each of its pairings: the preset, or a draw
    # from the prior (its own stream, so drawing leaves every tournament's seed unchanged)
    if prior is None:
        populations = [population] * n_tournaments
    else:
        draws = np.random.SeedSequence([resolved["seed"], PRIOR_STREAM]).spawn(n_tournaments)
        populations = [prior.draw(seq, k) for k, seq in enumerate(draws)]
    started = time.perf_counter()
    truths = {}
    cached = True
    for k, drawn in enumerate(populations):
        if drawn.name not in truths:
            if prior is not None:
                print(f"ground truth of population {drawn.name} ({k + 1} of {n_tournaments})")
            truths[drawn.name], hit = plan_value(drawn, scenario, days)
            cached = cached and hit
    truth_s = time.perf_counter() - started
    specs = [
        TournamentSpec(
            index=i,
            seed=int(seq.generate_state(1)[0]),
            agents={name: agents[name] for name in lineup},
            population=populations[i // len(lineups)],
            scenario=scenario,
            n_users=n_users,
            days=days,
            pairing="ffa" if t["format"] == "ffa" else " vs ".join(lineup),
            decision_timeout_s=t["decision_timeout_s"],
            plan_value=truths[populations[i // len(lineups)].name],
            eventlog_users=eventlog_users,
            persona_users=None if personas is None else personas.model_dump(mode="json"),
        )
        for i, (seq, lineup) in enumerate(
            zip(seeds, [lu for _ in range(n_tournaments) for lu in lineups], strict=True)
        )
    ]
    return Settings(
        seed=resolved["seed"],
        agents=agents,
        specs=specs,
        num_workers=num_workers,
        address=resolved["ray"]["address"],
        max_retries=max_retries,
        tracking_uri=tracking["uri"],
        tracking_experiment=tracking["experiment"],
        tracking_enabled=tracking["enabled"],
        progress=resolved["progress"],
        resolved=resolved,
        truth_cached=cached,
        truth_s=truth_s,
        process_views=eventlog["process_views"],
        live=live,
        personas=personas,
    )


def _persona_users(data: object) -> PersonaUsersConfig | None:
    """``persona_users``, checked: its settings, its persona file and its price table."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ConfigError(f"persona_users must be a mapping or null, got {data!r}")
    try:
        return PersonaUsersConfig.parse(data)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _live_page(live: object, page: dict[str, Any]) -> LivePageConf | None:
    """``live`` and ``live_page.*``, checked (the port's being free is checked when the page
    starts: taken, the run goes on without it)."""
    if not isinstance(live, bool):
        raise ConfigError(f"live must be true or false, got {live!r}")
    port, linger = page["port"], page["linger_s"]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(
            f"live_page.port must be a port number 0-65535 (0: any free), got {port!r}"
        )
    if isinstance(linger, bool) or not isinstance(linger, int | float) or linger < 0:
        raise ConfigError(f"live_page.linger_s must be seconds >= 0, got {linger!r}")
    if not isinstance(page["host"], str) or not page["host"]:
        raise ConfigError(f"live_page.host must be a host name or address, got {page['host']!r}")
    return LivePageConf(page["host"], port, float(linger)) if live else None
