"""The served experiment's settings as plain, validated values (no Hydra past this point)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena_rl.core.guardrails import GuardrailConfig
from arena_rl.core.scenario import Scenario
from arena_rl.personas.users import PersonaUsersConfig
from arena_rl.server.clock import DEFAULT_EPOCH, TimeMode

MAX_TREATMENTS = 4
"""The live platform allows at most five variants: four treatments and a control."""


@dataclass(frozen=True)
class ServeSettings:
    """Everything :class:`~arena_rl.server.runtime.ArenaRuntime` needs to serve one experiment."""

    population: Any
    scenario: Scenario
    variants: tuple[str, ...] = ("Treatment-1",)
    """Treatment variant names, in arm order (the control is added as arm 0)."""
    control_name: str = "Control"
    experiment_name: str = "arena_rl served experiment"
    host: str = "127.0.0.1"
    port: int = 7860
    """0 picks a free port."""
    n_users: int = 2000
    seed: int = 0
    days: int | None = None
    """Horizon in simulated days; the experiment completes there. None: unbounded."""
    time_mode: TimeMode = "realtime"
    seconds_per_day: float = 60.0
    epoch: str = DEFAULT_EPOCH
    guardrails: GuardrailConfig = field(default_factory=GuardrailConfig)
    manifest_dir: Path | None = None
    token_secret: str | None = None
    """HMAC key of the strategy tokens; None: random per start. Either way a token works only
    with the server start that issued it."""
    webhook_max_attempts: int = 4
    webhook_backoff_s: float = 0.5
    webhook_timeout_s: float = 5.0
    heartbeat_factor: float = 3.0
    monitor_interval_s: float = 1.0
    anomaly_clamped_streak: int = 4
    anomaly_retention: float = 0.3
    tracking_enabled: bool = True
    tracking_uri: str | None = None
    tracking_experiment: str = "arena_rl_served"
    tracking_on_complete: bool = True
    tracking_out_dir: Path | None = None
    resolved: dict[str, Any] = field(default_factory=dict)
    persona_users: PersonaUsersConfig | None = None
    """LLM persona users beside the population in every variant; None: none."""
    """The resolved config, logged as MLflow params."""

    def __post_init__(self) -> None:
        names = (self.control_name, *self.variants)
        if not self.variants or len(self.variants) > MAX_TREATMENTS:
            raise ValueError(
                f"variants: need 1 to {MAX_TREATMENTS} treatment variants, got {len(self.variants)}"
            )
        if len(set(names)) != len(names) or not all(n.strip() for n in names):
            raise ValueError(f"variants: names must be distinct and non-empty, got {list(names)}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        if self.n_users < len(names):
            raise ValueError(f"population.n_users={self.n_users} is too few for {len(names)} arms")
        if self.days is not None and self.days < 1:
            raise ValueError(f"days must be >= 1 or null, got {self.days}")
        for key, value, low in (
            ("webhooks.max_attempts", self.webhook_max_attempts, 1),
            ("anomaly.clamped_streak", self.anomaly_clamped_streak, 1),
        ):
            if value < low:
                raise ValueError(f"{key} must be >= {low}, got {value}")
        for key, number in (
            ("webhooks.backoff_s", self.webhook_backoff_s),
            ("webhooks.timeout_s", self.webhook_timeout_s),
            ("heartbeat.timeout_factor", self.heartbeat_factor),
            ("heartbeat.check_interval_s", self.monitor_interval_s),
        ):
            if not number > 0:
                raise ValueError(f"{key} must be > 0, got {number}")
        if not 0 <= self.anomaly_retention <= 1:
            raise ValueError(
                f"anomaly.retention_below must be in [0, 1], got {self.anomaly_retention}"
            )
