"""Wire one served experiment together: clock, tokens, state, webhooks and background threads.

:class:`ArenaRuntime` owns the parts and their lifetimes; it does no HTTP (``app.py``) and holds
no experiment logic (``state.py``). One background thread moves a realtime clock's population
forward and watches heartbeats; another delivers webhooks.

The experiment lives in memory: a restart is a new experiment (same seed, same ids, fresh state),
and the tokens of the old start stop working (``tokens.py``). What a run leaves behind is its
MLflow logging, which :meth:`ArenaRuntime.shutdown` does on a graceful stop (SIGTERM, Ctrl-C) as
completion does.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import numpy as np

from arena_rl.live.feed import LiveFeed
from arena_rl.live.hub import Hub
from arena_rl.live.messages import run_message
from arena_rl.personas.users import PersonaUsers
from arena_rl.server.clock import SimClock
from arena_rl.server.settings import ServeSettings
from arena_rl.server.state import ServedExperiment, Variant
from arena_rl.server.tokens import TokenAuthority
from arena_rl.server.webhooks import WebhookDispatcher, WebhookRegistry


def _ids(seed: int, n: int) -> tuple[str, list[str]]:
    """Deterministic ``exp_<8hex>`` and ``var_<8hex>`` ids (the live formats) from the seed."""
    words = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])).integers(
        0, 2**32, size=n + 1, dtype=np.uint64
    )
    hexes = [f"{int(w):08x}" for w in words]
    return f"exp_{hexes[0]}", [f"var_{h}" for h in hexes[1:]]


class ArenaRuntime:
    """The served experiment and everything around it, for one server process."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        s = settings
        experiment_id, variant_ids = _ids(s.seed, len(s.variants) + 1)
        names = (s.control_name, *s.variants)
        variants = [
            Variant(vid, name, arm)
            for arm, (vid, name) in enumerate(zip(variant_ids, names, strict=True))
        ]
        self.clock = SimClock(s.time_mode, s.seconds_per_day, s.epoch)
        secret = s.token_secret.encode() if s.token_secret else None
        self.tokens = TokenAuthority(experiment_id, secret)
        self.registry = WebhookRegistry()
        self.dispatcher = WebhookDispatcher(
            self.registry, s.webhook_max_attempts, s.webhook_backoff_s, s.webhook_timeout_s
        )
        self.experiment = ServedExperiment(
            experiment_id=experiment_id,
            experiment_name=s.experiment_name,
            variants=variants,
            population=s.population,
            scenario=s.scenario,
            n_users=s.n_users,
            seed=s.seed,
            guardrails=s.guardrails,
            clock=self.clock,
            emit=self.emit,
            days=s.days,
            anomaly_streak=s.anomaly_clamped_streak,
            anomaly_retention=s.anomaly_retention,
            heartbeat_factor=s.heartbeat_factor,
            on_complete=self._completed if s.tracking_enabled and s.tracking_on_complete else None,
        )
        if s.persona_users is not None:  # they live each served day, inside its lock
            core = self.experiment.core
            core.actors = PersonaUsers(s.persona_users, s.scenario, core.arms, s.seed)
        self.variant_tokens = {v.variant_id: self.tokens.issue(v.variant_id) for v in variants}
        self.live = Hub()
        """The live page's messages (``/live/``): the experiment's days and guardrail answers."""
        self.live.publish(
            [
                run_message(
                    "served",
                    s.experiment_name,
                    list(s.variants),
                    list(names),
                    s.scenario.metrics,
                    s.scenario.knobs.keys,
                    1,
                    s.days,
                )
            ]
        )
        shown = {v.variant_id: v.name for v in variants}
        self.experiment.core.events.subscribe(
            LiveFeed(self.live.publish, 0, every_s=0, names=shown)
        )
        self.api_url = ""
        self.last_run_id: str | None = None
        self._log_lock = threading.Lock()
        self._logged: tuple[str, int, int] | None = None
        self._complete_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- events -----------------------------------------------------------------------------

    def emit(self, variant_id: str, event: str, data: dict[str, Any]) -> None:
        """Queue one event for the variant's subscribers (never blocks)."""
        exp = self.experiment
        envelope = {
            "id": f"evt_{secrets.token_hex(8)}",
            "event": event,
            "experimentId": exp.experiment_id,
            "variantId": variant_id,
            "variantName": exp.variants[variant_id].name,
            "timestamp": self.clock.iso(self.clock.now()),
            "data": data,
        }
        self.dispatcher.emit(variant_id, event, envelope)

    # ---- lifetime ---------------------------------------------------------------------------

    def start(self, api_url: str) -> None:
        """Start background work; ``api_url`` is where clients reach the bound server."""
        self.api_url = api_url.rstrip("/")
        self.dispatcher.start()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._background, name="arena-clock", daemon=True
            )
            self._thread.start()

    @property
    def start_id(self) -> str:
        """This server start's id: only tokens issued by it verify."""
        return self.tokens.start_id

    def stop(self) -> None:
        self.live.close()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.dispatcher.stop()

    def shutdown(self, reason: str = "shutdown") -> str | None:
        """Stop, then log the experiment to MLflow unless tracking is off or that logging
        already happened (completion); the parent run id, or None.

        A completion logging still running is waited for: it runs in a daemon thread, which
        the interpreter would kill half-way at exit.
        """
        self.stop()
        if self._complete_thread is not None:
            self._complete_thread.join()
        s = self.settings
        if not (s.tracking_enabled and s.tracking_on_complete):
            return None
        if self._logged == self.experiment.revision():
            return self.last_run_id
        return self._log_quietly(reason)

    def _background(self) -> None:
        """Realtime: simulate days as they pass; always: watch heartbeats."""
        s = self.settings
        tick = min(s.monitor_interval_s, max(s.seconds_per_day / 20.0, 0.05))
        while not self._stop.wait(tick):
            if self.clock.running:
                self.experiment.sync()
            self.experiment.check_heartbeats()

    # ---- manifests and tracking -------------------------------------------------------------

    def manifests(self) -> dict[str, dict[str, Any]]:
        """Per variant name, the arena manifest the live platform hands out."""
        exp, cfg = self.experiment, self.settings.guardrails
        return {
            v.name: {
                "experimentId": exp.experiment_id,
                "experimentName": exp.experiment_name,
                "variantId": v.variant_id,
                "variantName": v.name,
                "isControl": v.is_control,
                "strategyToken": self.variant_tokens[v.variant_id],
                "apiUrl": self.api_url,
                "constraints": {
                    "updateIntervalMin": round(cfg.update_interval_days * 1440),
                    "deltaLimitPct": cfg.delta_limit_pct,
                },
            }
            for v in exp.variants.values()
        }

    def write_manifests(self, directory: Path) -> list[Path]:
        """Write ``<variant>.json`` per variant and ``admin.json``, last; owner-only permissions.
        Each file is whole or absent (written aside, then renamed): a reader waiting for
        ``admin.json`` once read it created but still empty."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        files = {f"{_slug(name)}.json": m for name, m in self.manifests().items()}
        files["admin.json"] = {
            "experimentId": self.experiment.experiment_id,
            "startId": self.start_id,
            "apiUrl": self.api_url,
            "adminToken": self.tokens.admin_token,
        }
        for filename, content in files.items():
            path = directory / filename
            aside = directory / f".{filename}.tmp"
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(content, indent=2) + "\n")
            os.replace(aside, path)
            written.append(path)
        return written

    def log_to_mlflow(self, reason: str = "admin") -> str:
        """Log the experiment as it is now; one logging at a time. Returns the parent run id.

        ``reason`` (``admin``, ``completed``, ``shutdown``) becomes the ``arena_end`` tag.
        """
        from arena_rl.server.mlflow_log import log_served  # MLflow import is slow: only on use

        s = self.settings
        with self._log_lock:
            out = s.tracking_out_dir or Path.cwd() / "served_runs"
            run_name = f"served-{self.experiment.experiment_id}"
            revision = self.experiment.revision()
            self.last_run_id = log_served(
                self.experiment,
                tracking_uri=s.tracking_uri,
                experiment=s.tracking_experiment,
                run_name=run_name,
                config=s.resolved,
                out_dir=out / f"{run_name}-{self.start_id}",
                tags={"arena_end": reason, "arena_start_id": self.start_id},
            )
            self._logged = revision
            return self.last_run_id

    def _log_quietly(self, reason: str) -> str | None:
        try:
            return self.log_to_mlflow(reason)
        except Exception as exc:  # a tracking failure must not take the server down
            print(f"arena_rl serve: MLflow logging failed: {exc}")
            return None

    def _completed(self) -> None:
        """Called under the experiment's lock: log in a thread that :meth:`shutdown` awaits."""
        self._complete_thread = threading.Thread(
            target=self._log_quietly, args=("completed",), name="arena-complete", daemon=True
        )
        self._complete_thread.start()


def _slug(name: str) -> str:
    """A file-name-safe version of a variant name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "variant"
