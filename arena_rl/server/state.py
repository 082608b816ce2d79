"""The served experiment: one population, its guardrails and signals, behind one lock.

It drives an :class:`~arena_rl.core.experiment.ExperimentCore`, whose day step is the one
simulated day of every arm (control = arm 0), signals recomputed once (the signals cache, in
simulated time) and every treatment's harm checked. What the server adds is its own concern: the
wall clock, tokens, the live decision log and webhooks. Agents' updates go through the core's
guardrails with ``now`` = simulated days, so the rate limit (``updateIntervalMin``) counts
simulated minutes. Every method takes the lock and first brings the
population up to the clock, so requests, the realtime ticker and admin calls never interleave
half-way. Events (config updates, breaker trips, anomalies, heartbeat lapses) go to ``emit``,
which only queues them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from arena_rl.core.events import DailyHistory
from arena_rl.core.experiment import ExperimentCore
from arena_rl.core.guardrails import (
    ConfigUpdate,
    ExperimentStatus,
    GuardrailConfig,
    GuardrailResult,
    Guardrails,
    RejectionCode,
)
from arena_rl.core.scenario import Model, Scenario
from arena_rl.core.stats import RatioSummary
from arena_rl.server.clock import MINUTES_PER_DAY, SimClock
from arena_rl.server.wire import (
    act_response,
    coerce,
    decision_entry,
    encode,
    json_safe,
    wire_config,
)

Emit = Callable[[str, str, dict[str, Any]], None]
"""(variant id, event name, event data) -> None; must not block."""


class NotRunningError(RuntimeError):
    """An agent acted or observed while the experiment is not RUNNING (HTTP 403)."""

    def __init__(self, status: ExperimentStatus) -> None:
        self.status = status
        code = (
            "EXPERIMENT_PAUSED" if status is ExperimentStatus.PAUSED else "EXPERIMENT_NOT_RUNNING"
        )
        super().__init__(f"{code}: experiment is {status}; agents may act only while RUNNING")


@dataclass(frozen=True)
class Variant:
    variant_id: str
    name: str
    arm: int
    """Row in the population (0 = control)."""

    @property
    def is_control(self) -> bool:
        return self.arm == 0


@dataclass
class _Liveness:
    """Per-variant agent liveness: heartbeats are wall-clock, as the SDK's interval is."""

    last_wall: float | None = None
    last_sim: float | None = None
    interval_s: float = 30.0
    metadata: dict[str, Any] = field(default_factory=dict)
    count: int = 0
    lapsed: bool = False


@dataclass
class _Watch:
    """Per-variant anomaly state, so each anomaly fires once per episode."""

    clamped_streak: int = 0
    low_retention: bool = False
    last_update_sim: float | None = None


class ServedExperiment:
    """One experiment with a control and N treatment variants, served over HTTP.

    Args:
        experiment_id / experiment_name: as the platform names them.
        variants: control first (arm 0), then the treatments in arm order.
        population / scenario / n_users / seed: the synthetic population.
        guardrails: guardrail settings; times in simulated days.
        clock: the simulated clock; read, never advanced here except by :meth:`advance`.
        emit: event sink (webhooks).
        days: horizon; the experiment completes when the population reaches it (None: never).
        anomaly_streak: consecutive clamped (max-delta) updates that raise ``anomaly_detected``.
        anomaly_retention: retention below this (n >= 30) raises ``anomaly_detected``.
        heartbeat_factor: a heartbeat lapses after this many requested poll intervals.
        on_complete: called once, under the lock, when the experiment completes; it must not
            block (the runtime starts its MLflow logging in a thread it can wait for).
    """

    def __init__(
        self,
        *,
        experiment_id: str,
        experiment_name: str,
        variants: Sequence[Variant],
        population: Any,
        scenario: Scenario,
        n_users: int,
        seed: int,
        guardrails: GuardrailConfig,
        clock: SimClock,
        emit: Emit,
        days: int | None = None,
        anomaly_streak: int = 4,
        anomaly_retention: float = 0.3,
        heartbeat_factor: float = 3.0,
        on_complete: Callable[[], None] | None = None,
    ) -> None:
        if not variants or variants[0].arm != 0 or len(variants) < 2:
            raise ValueError("need the control (arm 0) first and at least one treatment")
        self.experiment_id, self.experiment_name = experiment_id, experiment_name
        self.variants = {v.variant_id: v for v in variants}
        self.order = tuple(v.variant_id for v in variants)
        self.control_id = variants[0].variant_id
        self.seed, self.days, self.clock, self._emit = seed, days, clock, emit
        self.anomaly_streak, self.anomaly_retention = anomaly_streak, anomaly_retention
        self.heartbeat_factor = heartbeat_factor
        self._on_complete = on_complete
        self._lock = threading.RLock()
        self._history = DailyHistory()
        self.core = ExperimentCore(
            population, scenario, self.order, seed, n_users, guardrails, [self._history]
        )
        self._integer = scenario.knobs.integer
        self._decisions: dict[str, list[dict[str, Any]]] = {v: [] for v in self.order}
        self._encoded: dict[str, list[bytes]] = {v: [] for v in self.order}
        """Each decision-log entry as sent, encoded once when logged (entries never change)."""
        self._signals_json: dict[int, tuple[object, bytes]] = {}
        """Per arm, the signals object last encoded and its JSON: signals change once a day."""
        self._liveness = {v: _Liveness() for v in self.order}
        self._watch = {v: _Watch() for v in self.order}

    @property
    def rails(self) -> Guardrails:
        return self.core.guardrails

    @property
    def population(self) -> Model:
        return self.core.population

    @property
    def objective(self) -> dict[str, float]:
        return self.core.objective

    # ---- time -------------------------------------------------------------------------------

    def sync(self) -> int:
        """Step the population up to the clock (one step per whole simulated day); days run."""
        with self._lock:
            return self._sync_locked()

    def _sync_locked(self) -> int:
        now = self.clock.now()
        stepped = 0
        while self.population.day < math.floor(now + 1e-9):
            if self.rails.status is ExperimentStatus.COMPLETED:
                break
            self._step_day()
            stepped += 1
            if self.days is not None and self.population.day >= self.days:
                self._complete_locked()
        if self.rails.status is ExperimentStatus.RUNNING or stepped:
            self.core.tick(self._now())
        return stepped

    def _now(self) -> float:
        """Guardrail time: the clock, but never before the last simulated day reached."""
        return max(self.clock.now(), float(self.population.day))

    def _step_day(self) -> None:
        report = self.core.step_day()
        retention = cast(Sequence[RatioSummary], report.summaries[self.core.scenario.harm_metric])
        for i, vid in enumerate(self.order[1:], start=1):
            if vid in report.tripped:
                self._fire(vid, "circuit_breaker_triggered", self._breaker_data(vid))
            self._check_retention(vid, retention[i])

    def _check_retention(self, vid: str, treated: RatioSummary) -> None:
        watch = self._watch[vid]
        if treated.trials < 30:
            return
        low = treated.successes / treated.trials < self.anomaly_retention
        if low and not watch.low_retention:
            self._fire(
                vid,
                "anomaly_detected",
                {
                    "anomaly": "LOW_RETENTION",
                    "retentionRate": treated.successes / treated.trials,
                    "threshold": self.anomaly_retention,
                },
            )
        watch.low_retention = low

    def advance(self, days: float) -> dict[str, Any]:
        """Manual mode: move the clock ``days`` forward and simulate the whole days passed."""
        with self._lock:
            self.clock.advance(days)
            stepped = self._sync_locked()
            return {"steppedDays": stepped, **self._time_locked()}

    # ---- lifecycle --------------------------------------------------------------------------

    @property
    def status(self) -> ExperimentStatus:
        return self.rails.status

    def set_status(self, target: ExperimentStatus) -> dict[str, Any]:
        """Move along RUNNING ⇄ PAUSED → COMPLETED; ValueError on an illegal move."""
        with self._lock:
            self._sync_locked()
            if target is ExperimentStatus.COMPLETED:
                self.rails.status.check_transition(target)
                self._complete_locked()
            else:
                self.rails.set_status(target)
                if target is ExperimentStatus.RUNNING:
                    self.clock.thaw()
                else:
                    self.clock.freeze()
            return self._time_locked()

    def _complete_locked(self) -> None:
        if self.rails.status is ExperimentStatus.COMPLETED:
            return
        self.rails.set_status(ExperimentStatus.COMPLETED)
        self.clock.freeze()
        if self._on_complete is not None:  # runs under the lock: it must only start slow work
            self._on_complete()

    def reset_breaker(self, variant_id: str) -> None:
        """A researcher's reset of a tripped breaker (after its cool-down); ValueError if not."""
        with self._lock:
            self._sync_locked()
            self.core.reset_breaker(self._variant(variant_id).variant_id, self._now())

    # ---- agent reads ------------------------------------------------------------------------

    def info(self, variant_id: str) -> dict[str, Any]:
        with self._lock:
            self._sync_locked()
            v = self._variant(variant_id)
            allowed = self.rails.next_allowed_update(v.variant_id)
            cfg = self.rails.config
            return {
                "variantId": v.variant_id,
                "variantName": v.name,
                "experimentId": self.experiment_id,
                "experimentName": self.experiment_name,
                "experimentStatus": str(self.status),
                "mode": "AGENT",
                "isControl": v.is_control,
                "currentConfig": wire_config(
                    self.rails.current_config(v.variant_id), self._integer
                ),
                "lastConfigUpdate": self._last_update_iso(v.variant_id),
                "updateIntervalMin": round(cfg.update_interval_days * MINUTES_PER_DAY),
                "deltaLimitPct": cfg.delta_limit_pct,
                "nextAllowedUpdate": None
                if allowed is None
                else self.clock.iso(allowed, round_up=True),
                "circuitBreakerActive": self.rails.breaker_active(v.variant_id),
                **self._time_locked(),
            }

    def signals(self, variant_id: str) -> dict[str, Any]:
        """The variant's latest daily signals; NotRunningError unless RUNNING (SDK loops stop)."""
        with self._lock:
            self._sync_locked()
            v = self._variant(variant_id)
            self._touch(v.variant_id)
            if self.status is not ExperimentStatus.RUNNING:
                raise NotRunningError(self.status)
            return self.core.signals[v.arm].to_api()

    def signals_json(self, variant_id: str) -> bytes:
        """:meth:`signals` encoded, once per simulated day (every SDK loop polls it)."""
        with self._lock:
            self._sync_locked()
            v = self._variant(variant_id)
            self._touch(v.variant_id)
            if self.status is not ExperimentStatus.RUNNING:
                raise NotRunningError(self.status)
            current = self.core.signals[v.arm]
            cached = self._signals_json.get(v.arm)
            if cached is None or cached[0] is not current:
                cached = (current, encode(current.to_api()))
                self._signals_json[v.arm] = cached
            return cached[1]

    def scoreboard(self) -> dict[str, Any]:
        with self._lock:
            self._sync_locked()
            rows = []
            for vid in self.order:
                v, sig, live = self.variants[vid], self.core.signals[self.variants[vid].arm], None
                live = self._liveness[vid].last_sim
                rows.append(
                    {
                        "variantId": vid,
                        "variantName": v.name,
                        "isControl": v.is_control,
                        "currentConfig": wire_config(self.rails.current_config(vid), self._integer),
                        "lastConfigUpdate": self._last_update_iso(vid),
                        "lastHeartbeat": None if live is None else self.clock.iso(live),
                        "metrics": {n: m.to_api() for n, m in sig.metrics.items()},
                        "enrolledCount": sig.enrolled,
                        "activeCount": sig.active_today,
                        "totalDecisions": len(self._decisions[vid]),
                    }
                )
            return {"variants": rows, "experimentStatus": str(self.status), **self._time_locked()}

    def decisions(self, variant_id: str, page: int, page_size: int) -> dict[str, Any]:
        """The variant's own decision log, newest first, 1-based pages."""
        with self._lock:
            log = self._decisions[self._variant(variant_id).variant_id]
            # slice the page off the end: the log grows with every attempt, a page does not
            end = len(log) - (page - 1) * page_size
            items = log[max(0, end - page_size) : end][::-1] if end > 0 else []
            return {"decisions": items, "total": len(log), "page": page, "pageSize": page_size}

    def decisions_json(self, variant_id: str, page: int, page_size: int) -> bytes:
        """:meth:`decisions` encoded, from the entries encoded when they were logged."""
        with self._lock:
            log = self._encoded[self._variant(variant_id).variant_id]
            end = len(log) - (page - 1) * page_size
            items = log[max(0, end - page_size) : end][::-1] if end > 0 else []
            total = len(log)
        head = b'{"decisions":[' + b",".join(items)
        return head + b'],"total":%d,"page":%d,"pageSize":%d}' % (total, page, page_size)

    # ---- agent writes -----------------------------------------------------------------------

    def act(
        self,
        variant_id: str,
        overrides: Mapping[str, object],
        reasoning: str,
        agent_signals: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Submit an update through the guardrails; the ``act()`` response data.

        Every attempt is audited. Raises NotRunningError (HTTP 403) for a treatment while the
        experiment is not RUNNING, after logging the EXPERIMENT_NOT_RUNNING rejection.
        """
        with self._lock:
            self._sync_locked()
            v = self._variant(variant_id)
            self._touch(v.variant_id)
            requested = {str(k): coerce(x) for k, x in overrides.items()}
            now = self._now()
            trips_before = self.rails.counts(v.variant_id)["breaker_trips"]
            update = ConfigUpdate(cast(Mapping[str, float], requested), reasoning)
            result = self.core.submit(v.variant_id, update, now)
            self._record(v, requested, reasoning, result, now, agent_signals)
            if self.rails.counts(v.variant_id)["breaker_trips"] > trips_before:
                self._fire(v.variant_id, "circuit_breaker_triggered", self._breaker_data(v))
            if result.rejection_code is RejectionCode.EXPERIMENT_NOT_RUNNING:
                raise NotRunningError(self.status)
            return act_response(result, requested, self.clock.iso, self._integer)

    def _record(
        self,
        v: Variant,
        requested: Mapping[str, object],
        reasoning: str,
        result: GuardrailResult,
        now: float,
        agent_signals: Mapping[str, Any] | None,
    ) -> None:
        """Append the decision-log entry (live shape) and raise the events it implies."""
        entry = decision_entry(
            result,
            variant_id=v.variant_id,
            requested=requested,
            reasoning=reasoning,
            now=now,
            iso=self.clock.iso,
            integer=self._integer,
            agent_signals=agent_signals,
        )
        watch = self._watch[v.variant_id]
        if result.accepted:
            watch.last_update_sim = now
            data = {
                "decisionLogId": result.decision_id,
                "appliedConfig": entry["appliedConfig"],
                "clampedDeltas": entry["clampedDeltas"],
                "currentConfig": wire_config(
                    self.rails.current_config(v.variant_id), self._integer
                ),
                "reasoning": reasoning,
            }
            self._fire(v.variant_id, "config_updated", data)
            watch.clamped_streak = watch.clamped_streak + 1 if result.clamped else 0
            if watch.clamped_streak == self.anomaly_streak:
                self._fire(
                    v.variant_id,
                    "anomaly_detected",
                    {"anomaly": "CONSECUTIVE_MAX_DELTA", "count": watch.clamped_streak},
                )
        entry = json_safe(entry)  # what every read sends; kept so, it is encoded once
        self._decisions[v.variant_id].append(entry)
        self._encoded[v.variant_id].append(encode(entry))

    def _breaker_data(self, v: Variant | str) -> dict[str, Any]:
        vid = v if isinstance(v, str) else v.variant_id
        trips = [e for e in self.rails.audit_log if e.kind == "breaker_trip" and e.variant == vid]
        return {
            "reason": trips[-1].detail if trips else "",
            "revertedConfig": wire_config(self.rails.current_config(vid), self._integer),
            "nextAllowedUpdate": self.clock.iso(
                self.rails.next_allowed_update(vid) or 0.0, round_up=True
            ),
        }

    # ---- heartbeats -------------------------------------------------------------------------

    def heartbeat(
        self, variant_id: str, interval_s: float | None, metadata: Mapping[str, Any] | None
    ) -> None:
        with self._lock:
            live = self._liveness[self._variant(variant_id).variant_id]
            live.last_wall, live.last_sim = time.monotonic(), self._now()
            if interval_s is not None:
                live.interval_s = float(interval_s)
            if metadata:
                live.metadata = dict(metadata)
            live.count += 1
            live.lapsed = False

    def _touch(self, variant_id: str) -> None:
        """An agent call (observe/act) is a sign of life too, once heartbeats have started:
        the SDK polls every ``requestedPollInterval`` but beats only every
        ``heartbeat_interval`` (30 s by default), which may be far longer."""
        live = self._liveness[variant_id]
        if live.last_wall is not None:
            live.last_wall, live.lapsed = time.monotonic(), False

    def check_heartbeats(self, wall_now: float | None = None) -> list[str]:
        """Fire ``heartbeat_timeout`` once per lapse (no heartbeat for factor × interval)."""
        wall_now = time.monotonic() if wall_now is None else wall_now
        fired: list[str] = []
        with self._lock:
            if self.status is not ExperimentStatus.RUNNING:
                return fired
            for vid, live in self._liveness.items():
                if live.last_wall is None or live.lapsed:
                    continue
                silent = wall_now - live.last_wall
                if silent > self.heartbeat_factor * live.interval_s:
                    live.lapsed = True
                    fired.append(vid)
                    data = {
                        "lastHeartbeat": self.clock.iso(live.last_sim or 0.0),
                        "requestedPollInterval": live.interval_s,
                        "silentSeconds": round(silent, 3),
                    }
                    self._fire(vid, "heartbeat_timeout", data)
        return fired

    # ---- helpers ----------------------------------------------------------------------------

    def _variant(self, variant_id: str) -> Variant:
        try:
            return self.variants[variant_id]
        except KeyError:
            raise KeyError(f"unknown variant {variant_id!r}") from None

    def _last_update_iso(self, vid: str) -> str | None:
        last = self._watch[vid].last_update_sim
        return None if last is None else self.clock.iso(last)

    def _time_locked(self) -> dict[str, Any]:
        now = self._now()
        return {"simulatedNow": self.clock.iso(now), "simulatedDay": now}

    def _fire(self, vid: str, event: str, data: dict[str, Any]) -> None:
        self._emit(vid, event, data)

    def state(self) -> dict[str, Any]:
        """The admin view: status, time, and per-variant counts and liveness."""
        with self._lock:
            self._sync_locked()
            return {
                "experimentId": self.experiment_id,
                "experimentName": self.experiment_name,
                "experimentStatus": str(self.status),
                "timeMode": self.clock.mode,
                "populationDay": self.population.day,
                "days": self.days,
                **self._time_locked(),
                "variants": [
                    {
                        "variantId": vid,
                        "variantName": self.variants[vid].name,
                        "isControl": self.variants[vid].is_control,
                        "guardrailCounts": self.rails.counts(vid),
                        "breakerActive": self.rails.breaker_active(vid),
                        "heartbeats": self._liveness[vid].count,
                        "decisions": len(self._decisions[vid]),
                        "objective": self.objective[vid],
                    }
                    for vid in self.order
                ],
            }

    def revision(self) -> tuple[str, int, int]:
        """Status, population day and decision count: when equal, a second logging adds
        nothing."""
        with self._lock:
            total = sum(len(log) for log in self._decisions.values())
            return str(self.status), self.population.day, total

    def all_decisions(self) -> dict[str, list[dict[str, Any]]]:
        """Every variant's decision log, oldest first (for tracking and tests)."""
        with self._lock:
            return {vid: [dict(e) for e in log] for vid, log in self._decisions.items()}

    def snapshot(self) -> dict[str, Any]:
        """Plain copies of everything tracking needs, taken under the lock (arm order)."""
        with self._lock:
            self._sync_locked()
            return {
                "comparisons": self.core.comparisons(),
                "objective": dict(self.objective),
                "daily_value": {v: list(self._history.value.get(v, [])) for v in self.order},
                "history": {
                    v: {
                        m: list(self._history.metrics.get(v, {}).get(m, []))
                        for m in self.core.scenario.metrics
                    }
                    for v in self.order
                },
                "counts": {v: self.rails.counts(v) for v in self.order[1:]},
                "audit": [e.to_record() for e in self.rails.audit_log],
                "decisions": {v: [dict(e) for e in log] for v, log in self._decisions.items()},
                "status": str(self.status),
                "population_day": self.population.day,
            }
