"""The server's Hydra boundary: structured schema for ``conf/serve.yaml`` and its validation.

Like ``arena_rl.config`` for tournaments, this is the only server module that sees a
``DictConfig``; everything past :func:`serve_settings` is plain :class:`ServeSettings`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from arena_rl.config import register_scenario_schema
from arena_rl.core.guardrails import GuardrailConfig
from arena_rl.personas.users import PersonaUsersConfig
from arena_rl.scenarios import scenario_from_dict
from arena_rl.scenarios.specs import CONF_DIR, SpecError
from arena_rl.server.clock import DEFAULT_EPOCH, MINUTES_PER_DAY, parse_epoch
from arena_rl.server.settings import ServeSettings


class ServeConfigError(ValueError):
    """A server configuration that cannot run; the message names the key."""


@dataclass
class TimeConf:
    mode: str = "realtime"
    """realtime: ``seconds_per_day`` wall seconds per simulated day; manual: admin advances."""
    seconds_per_day: float = 60.0
    epoch: str = DEFAULT_EPOCH
    """The wall-clock-like instant of simulated time 0 on the wire."""


_RAILS = GuardrailConfig()


@dataclass
class ServeGuardrailsConf:
    """The live platform's guardrails. Three settings differ from a tournament's on purpose:
    the rate limit is counted in simulated minutes (the live API's ``updateIntervalMin``, 60
    there); breakers wait for a researcher's reset (``admin reset-breaker``), as on the live
    platform, where a tournament has no researcher and resets them itself; and so the cool-down
    before that reset is a day, not the three a tournament waits before resetting on its own."""

    update_interval_min: float = 60.0
    delta_limit_pct: float = _RAILS.delta_limit_pct
    breaker_rejection_limit: int = _RAILS.breaker_rejection_limit
    breaker_cooldown_days: float = 1.0
    breaker_retention_floor: float = _RAILS.breaker_retention_floor
    auto_reset: bool = False


@dataclass
class WebhooksConf:
    max_attempts: int = 4
    """First try included."""
    backoff_s: float = 0.5
    """Wait before the first retry; doubles each retry."""
    timeout_s: float = 5.0


@dataclass
class HeartbeatConf:
    timeout_factor: float = 3.0
    """heartbeat_timeout after this many requested poll intervals of silence."""
    check_interval_s: float = 1.0
    """Wall seconds between liveness checks."""


@dataclass
class AnomalyConf:
    clamped_streak: int = 4
    """Consecutive max-delta (clamped) updates that raise anomaly_detected."""
    retention_below: float = 0.3
    """Retention under this (n >= 30) raises anomaly_detected."""


@dataclass
class ServeTrackingConf:
    enabled: bool = True
    uri: str | None = None
    """null: sqlite:///<cwd>/mlflow.db."""
    experiment: str = "arena_rl_served"
    on_complete: bool = True
    """Log automatically when the experiment completes."""


@dataclass
class ServeConf:
    seed: int = 0
    """Population, ids and arm assignment come from it."""
    host: str = "127.0.0.1"
    """Bind address; 0.0.0.0 exposes the server (the SDK needs https then)."""
    port: int = 7860
    """0 picks a free port (the manifests say which)."""
    experiment_name: str = "arena_rl served experiment"
    variants: Any = 1
    """Treatment variants: a count (Treatment-1, ...) or a list of names (max 4)."""
    control_name: str = "Control"
    days: int | None = None
    """Horizon in simulated days (completes there); null = the scenario's."""
    time: TimeConf = field(default_factory=TimeConf)
    guardrails: ServeGuardrailsConf = field(default_factory=ServeGuardrailsConf)
    manifest_dir: str | None = None
    """null: <hydra output dir>/manifests."""
    token_secret: str | None = None
    """HMAC key of the strategy tokens; null: random per start. Tokens never outlive the start
    that issued them (a restart is a new experiment), secret or not."""
    webhooks: WebhooksConf = field(default_factory=WebhooksConf)
    heartbeat: HeartbeatConf = field(default_factory=HeartbeatConf)
    anomaly: AnomalyConf = field(default_factory=AnomalyConf)
    tracking: ServeTrackingConf = field(default_factory=ServeTrackingConf)
    persona_users: Any = None
    """null: none; else LLM persona users beside the population in every variant, e.g.
    ``{file: default, per_arm: 3}`` (docs/personas.md)."""
    population: Any = None
    scenario: Any = None


ConfigStore.instance().store(name="serve_schema", node=ServeConf)
register_scenario_schema()


def compose_serve_config(overrides: Sequence[str] = ()) -> DictConfig:
    """``conf/serve.yaml`` composed as ``python -m arena_rl serve`` composes it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="serve", overrides=list(overrides))


def _variant_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, bool):
        raise ServeConfigError(f"variants must be a count or a list of names, got {value!r}")
    if isinstance(value, int):
        if not 1 <= value <= 4:
            raise ServeConfigError(f"variants must be 1 to 4 treatment variants, got {value}")
        return tuple(f"Treatment-{i}" for i in range(1, value + 1))
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return tuple(str(v) for v in value)
    raise ServeConfigError(f"variants must be a count or a list of names, got {value!r}")


def _guardrails(g: dict[str, Any]) -> GuardrailConfig:
    minutes = g["update_interval_min"]
    if not (isinstance(minutes, int | float) and math.isfinite(minutes) and 0 <= minutes <= 10080):
        raise ServeConfigError(
            f"guardrails.update_interval_min must be in [0, 10080] minutes, got {minutes!r}"
        )
    try:
        return GuardrailConfig(
            update_interval_days=minutes / MINUTES_PER_DAY,
            delta_limit_pct=float(g["delta_limit_pct"]),
            breaker_rejection_limit=g["breaker_rejection_limit"],
            breaker_cooldown_days=float(g["breaker_cooldown_days"]),
            breaker_retention_floor=float(g["breaker_retention_floor"]),
            auto_reset=g["auto_reset"],
        )
    except ValueError as exc:
        raise ServeConfigError(f"guardrails.{exc}") from None


def serve_settings(cfg: DictConfig, *, output_dir: Path | None = None) -> ServeSettings:
    """Validate the composed config into :class:`ServeSettings`, before anything starts.

    Args:
        cfg: the composed ``serve`` config.
        output_dir: where manifests and tracking files go unless ``manifest_dir`` says otherwise
            (Hydra's run directory under ``python -m arena_rl serve``; default: the cwd).
    """
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    c: dict[str, Any] = {str(k): v for k, v in container.items()}
    try:
        scenario = scenario_from_dict(c["scenario"], source="scenario")
        population = scenario.population_from_dict(c["population"], source="population")
    except SpecError as exc:
        raise ServeConfigError(str(exc)) from None
    personas = None
    if c["persona_users"] is not None:
        try:
            personas = PersonaUsersConfig.parse(c["persona_users"])
        except ValueError as exc:
            raise ServeConfigError(str(exc)) from None
        if "scanXp" not in scenario.knobs.by_name:
            raise ServeConfigError(f"persona_users: scenario {scenario.name!r} has no XP economy")
    t = c["time"]
    if t["mode"] not in ("manual", "realtime"):
        raise ServeConfigError(f"time.mode must be 'manual' or 'realtime', got {t['mode']!r}")
    if not t["seconds_per_day"] > 0:
        raise ServeConfigError(f"time.seconds_per_day must be > 0, got {t['seconds_per_day']}")
    try:
        parse_epoch(t["epoch"])
    except ValueError as exc:
        raise ServeConfigError(str(exc)) from None
    base = output_dir or Path.cwd()
    manifest_dir = Path(c["manifest_dir"]) if c["manifest_dir"] else base / "manifests"
    tracking = c["tracking"]
    try:
        return ServeSettings(
            population=population,
            scenario=scenario,
            persona_users=personas,
            variants=_variant_names(c["variants"]),
            control_name=c["control_name"],
            experiment_name=c["experiment_name"],
            host=c["host"],
            port=c["port"],
            n_users=population.n_users,
            seed=c["seed"],
            days=scenario.days if c["days"] is None else c["days"],
            time_mode=t["mode"],
            seconds_per_day=float(t["seconds_per_day"]),
            epoch=t["epoch"],
            guardrails=_guardrails(c["guardrails"]),
            manifest_dir=manifest_dir,
            token_secret=c["token_secret"],
            webhook_max_attempts=c["webhooks"]["max_attempts"],
            webhook_backoff_s=float(c["webhooks"]["backoff_s"]),
            webhook_timeout_s=float(c["webhooks"]["timeout_s"]),
            heartbeat_factor=float(c["heartbeat"]["timeout_factor"]),
            monitor_interval_s=float(c["heartbeat"]["check_interval_s"]),
            anomaly_clamped_streak=c["anomaly"]["clamped_streak"],
            anomaly_retention=float(c["anomaly"]["retention_below"]),
            tracking_enabled=tracking["enabled"],
            tracking_uri=tracking["uri"],
            tracking_experiment=tracking["experiment"],
            tracking_on_complete=tracking["on_complete"],
            tracking_out_dir=base / "served_runs",
            resolved=c,
        )
    except ValueError as exc:
        raise ServeConfigError(str(exc)) from None
