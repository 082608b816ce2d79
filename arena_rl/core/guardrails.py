"""The five guardrails every agent update passes, in order, and the audit log of every decision.

The order is the live platform's: control lock, status gate, circuit breaker,
then input validation, rate limiter and delta clamp. The clamp follows the documented production
rule (±``delta_limit_pct`` of the *current* value, so updates compound), not the demo server's
fixed-baseline window. Time is simulated days (floats); nothing here reads a clock or a global
RNG, so the same calls give the same decisions, ids and audit log.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

import numpy as np
from scipy.stats import fisher_exact

from arena_rl.core.knobs import KnobError, Knobs


class ExperimentStatus(StrEnum):
    """Experiment lifecycle; agents may act only while RUNNING."""

    DRAFT = "DRAFT"
    RECRUITING = "RECRUITING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"

    def can_transition_to(self, target: ExperimentStatus) -> bool:
        """Whether the lifecycle allows moving from this status to ``target``."""
        return target in _TRANSITIONS[self]

    def check_transition(self, target: ExperimentStatus) -> None:
        """Raise ValueError naming both states if ``self -> target`` is not a legal move."""
        if not self.can_transition_to(target):
            allowed = ", ".join(sorted(_TRANSITIONS[self])) or "none"
            raise ValueError(
                f"illegal experiment status transition {self} -> {target}; "
                f"allowed from {self}: {allowed}"
            )


_TRANSITIONS: Mapping[ExperimentStatus, frozenset[ExperimentStatus]] = MappingProxyType(
    {
        ExperimentStatus.DRAFT: frozenset({ExperimentStatus.RECRUITING}),
        ExperimentStatus.RECRUITING: frozenset({ExperimentStatus.RUNNING}),
        ExperimentStatus.RUNNING: frozenset({ExperimentStatus.PAUSED, ExperimentStatus.COMPLETED}),
        ExperimentStatus.PAUSED: frozenset({ExperimentStatus.RUNNING, ExperimentStatus.COMPLETED}),
        ExperimentStatus.COMPLETED: frozenset(),
    }
)


class RejectionCode(StrEnum):
    """Why an update was refused; the first four are the live platform's codes."""

    CONTROL_VARIANT_IMMUTABLE = "CONTROL_VARIANT_IMMUTABLE"
    EXPERIMENT_NOT_RUNNING = "EXPERIMENT_NOT_RUNNING"
    CIRCUIT_BREAKER_ACTIVE = "CIRCUIT_BREAKER_ACTIVE"
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_UPDATE = "INVALID_UPDATE"
    """Unknown key, non-number, NaN/inf, a value outside its knob's bounds, a fractional value
    of an integer knob, or empty overrides."""


def _check_field(obj: object, name: str, lo: float, hi: float, *, integer: bool = False) -> None:
    """Raise ValueError naming the field unless it is a finite number (an int if asked) in range."""
    value = getattr(obj, name)
    wrong_type = isinstance(value, bool) or not isinstance(value, int | float)
    if wrong_type or (integer and not isinstance(value, int)):
        raise ValueError(f"{name} must be {'an int' if integer else 'a number'}, got {value!r}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")


@dataclass(frozen=True)
class GuardrailConfig:
    """Guardrail settings for one experiment; times are simulated days."""

    update_interval_days: float = 1.0
    delta_limit_pct: float = 50.0
    breaker_rejection_limit: int = 3
    """Consecutive rejected updates that trip the breaker (its own rejections do not count)."""
    breaker_cooldown_days: float = 3.0
    breaker_retention_floor: float = 0.2
    breaker_alpha: float = 0.01
    breaker_min_harm: float = 0.05
    """Smallest absolute retention gap (control minus treatment) that counts as harm."""
    breaker_min_sample: int = 30
    auto_reset: bool = True
    """No researcher is in the simulator to reset a breaker, so it resets after the cool-down."""

    def __post_init__(self) -> None:
        _check_field(self, "update_interval_days", 0.0, math.inf)
        _check_field(self, "delta_limit_pct", 5.0, 100.0)
        _check_field(self, "breaker_rejection_limit", 1, math.inf, integer=True)
        _check_field(self, "breaker_cooldown_days", 0.0, math.inf)
        _check_field(self, "breaker_retention_floor", 0.0, 1.0)
        _check_field(self, "breaker_alpha", 0.0, 1.0)
        _check_field(self, "breaker_min_harm", 0.0, 1.0)
        _check_field(self, "breaker_min_sample", 1, math.inf, integer=True)
        if not isinstance(self.auto_reset, bool):
            raise ValueError(f"auto_reset must be a bool, got {self.auto_reset!r}")


@dataclass(frozen=True)
class ConfigUpdate:
    """An agent's request: partial economy overrides plus why (the live SDK's ConfigUpdate)."""

    overrides: Mapping[str, float]
    reasoning: str = ""


@dataclass(frozen=True)
class ClampedDelta:
    """How the clamp changed one requested value.

    ``delta_percent`` is the applied change as % of ``previous`` (of the default when previous
    is 0, the reference the window was built from, so it stays finite).
    """

    previous: float
    requested: float
    applied: float
    max_delta: float
    delta_percent: float

    def to_api(self) -> dict[str, float | bool]:
        """The superset camelCase shape that every SDK consumer accepts."""
        return {
            "previous": self.previous,
            "requested": self.requested,
            "applied": self.applied,
            "clamped": True,
            "deltaPercent": self.delta_percent,
            "maxDelta": self.max_delta,
            "baseline": self.previous,
        }


@dataclass(frozen=True)
class GuardrailResult:
    """The answer to one submitted update (the live ``act()`` response, in sim days)."""

    accepted: bool
    applied_config: dict[str, float] | None
    clamped_deltas: dict[str, ClampedDelta]
    rejection_code: RejectionCode | None
    detail: str
    next_allowed_update: float | None
    decision_id: str

    @property
    def clamped(self) -> bool:
        """Whether any requested value was clamped (accepted all the same)."""
        return bool(self.clamped_deltas)


AuditKind = Literal["update", "breaker_trip", "breaker_reset"]


def _plain(value: object) -> object:
    """A JSON-safe copy: non-finite floats and unknown objects become strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bool | str | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return repr(value)


@dataclass(frozen=True)
class AuditEntry:
    """One decision in the audit log: every update (accepted or not), breaker trip and reset."""

    decision_id: str
    sim_day: float
    variant: str
    kind: AuditKind
    accepted: bool
    requested: dict[str, object]
    applied: dict[str, float] | None
    clamped_deltas: dict[str, dict[str, float | bool]]
    rejection_code: str | None
    detail: str
    reasoning: str

    def to_record(self) -> dict[str, object]:
        """A flat JSON-able row for Parquet; nested dicts are JSON strings."""
        return {
            "decision_id": self.decision_id,
            "sim_day": float(self.sim_day),
            "variant": self.variant,
            "kind": self.kind,
            "accepted": self.accepted,
            "requested": json.dumps(_plain(self.requested)),
            "applied": None if self.applied is None else json.dumps(_plain(self.applied)),
            "clamped_deltas": json.dumps(_plain(self.clamped_deltas)),
            "rejection_code": self.rejection_code,
            "detail": self.detail,
            "reasoning": self.reasoning,
        }


@dataclass(frozen=True)
class AllowedActions:
    """What the guardrails would accept from a variant at one moment (a decision point)."""

    refusal: str | None
    """The rejection code any update would get now; None: an update would be screened in."""
    ranges: dict[str, tuple[float, float]]
    """Per knob, the values that pass without being clamped."""


def _zero_counts() -> dict[str, int]:
    counts = dict.fromkeys(("submitted", "accepted", "clamped", "rejected"), 0)
    counts.update({f"rejected_{code.name.lower()}": 0 for code in RejectionCode})
    counts.update(breaker_trips=0, breaker_resets=0)
    return counts


@dataclass
class _VariantState:
    """Mutable per-variant guardrail state (plain data, so Guardrails pickles)."""

    config: dict[str, float]
    safe_config: dict[str, float]
    last_accepted: float | None = None
    rejection_streak: int = 0
    tripped_at: float | None = None
    counts: dict[str, int] = field(default_factory=_zero_counts)


class Guardrails:
    """Guards one experiment's variants and records every decision.

    Args:
        economies: variant name -> economy (validated and completed by ``knobs.resolve``).
        control: name of the control variant (never changes).
        config: guardrail settings.
        status: initial lifecycle status.
        knobs: the scenario's knobs: what an update may set, and to what.
    """

    def __init__(
        self,
        economies: Mapping[str, Mapping[str, float]],
        control: str,
        config: GuardrailConfig = GuardrailConfig(),
        status: ExperimentStatus = ExperimentStatus.RUNNING,
        *,
        knobs: Knobs,
    ) -> None:
        if control not in economies:
            raise ValueError(f"control {control!r} is not one of the variants {list(economies)}")
        self.knobs = knobs
        self.control = control
        self.config = config
        self._status = ExperimentStatus(status)
        self._variants: dict[str, _VariantState] = {}
        for name, economy in economies.items():
            start = knobs.resolve(economy, where=f"variant {name!r}")
            self._variants[name] = _VariantState(config=start, safe_config=dict(start))
        self._audit: list[AuditEntry] = []
        self._now = -math.inf

    @property
    def status(self) -> ExperimentStatus:
        return self._status

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(self._variants)

    @property
    def audit_log(self) -> tuple[AuditEntry, ...]:
        return tuple(self._audit)

    def audit_since(self, start: int) -> tuple[AuditEntry, ...]:
        """The entries from index ``start`` on: a reader that keeps its place copies only
        what is new (the whole log grows with every request a served experiment gets)."""
        return tuple(self._audit[start:])

    def current_config(self, variant: str) -> dict[str, float]:
        """A copy of the variant's full economy as it is now."""
        return dict(self._state(variant).config)

    def last_safe_config(self, variant: str) -> dict[str, float]:
        """The config a breaker trip would revert to."""
        return dict(self._state(variant).safe_config)

    def breaker_active(self, variant: str) -> bool:
        return self._state(variant).tripped_at is not None

    def next_allowed_update(self, variant: str) -> float | None:
        """Earliest sim day the rate limiter and breaker allow (may be past); None if unlimited."""
        state = self._state(variant)
        times = [t for t in (self._rate_time(state), self._reset_time(state)) if t is not None]
        return max(times) if times else None

    def allowed(self, variant: str, now: float) -> AllowedActions:
        """What the guardrails would accept from ``variant`` at ``now``, asking nothing: the
        code an update would be refused with (None: it would be screened in), and per knob the
        values that pass unclamped (the delta window inside the knob's bounds)."""
        state = self._state(variant)
        closed = self._closed(variant, state)
        reset = self.config.auto_reset and self._reset_due(state, now)
        rate_time = self._rate_time(state)
        if closed is not None and not (reset and closed[0] is RejectionCode.CIRCUIT_BREAKER_ACTIVE):
            code: RejectionCode | None = closed[0]
        elif rate_time is not None and now < rate_time:
            code = RejectionCode.RATE_LIMITED
        else:
            code = None
        ranges = {}
        for knob in self.knobs.knobs:
            lo, hi, _ = self._window(knob.name, state.config[knob.name])
            ranges[knob.name] = (max(lo, knob.low), min(hi, knob.high))
        return AllowedActions(None if code is None else str(code), ranges)

    def counts(self, variant: str) -> dict[str, int]:
        """Guardrail counts for tournament results: accepted, clamped, rejected by code, trips."""
        return dict(self._state(variant).counts)

    def set_status(self, status: ExperimentStatus) -> None:
        """Move the experiment along its lifecycle; ValueError on an illegal move."""
        target = ExperimentStatus(status)
        self._status.check_transition(target)
        self._status = target

    def submit(self, variant: str, update: ConfigUpdate, now: float) -> GuardrailResult:
        """Pass one update through the guardrails in order and log the decision.

        Raises:
            KeyError: for an unknown variant (a programming error, not a guardrail).
            ValueError: if ``now`` is not finite or earlier than a previous call's.
        """
        state = self._state(variant)
        self._advance(now)
        if self.config.auto_reset and self._reset_due(state, now):
            self._reset(variant, state, now)
        requested = dict(update.overrides) if isinstance(update.overrides, Mapping) else {}
        counts = state.counts
        counts["submitted"] += 1
        verdict = self._screen(variant, state, update.overrides, now)
        if isinstance(verdict, dict):
            applied, deltas = self._clamp(state.config, verdict)
            state.config.update(applied)
            state.last_accepted = now
            state.rejection_streak = 0
            counts["accepted"] += 1
            counts["clamped"] += bool(deltas)
            detail = "accepted" + (f"; clamped {', '.join(deltas)}" if deltas else "")
            why = update.reasoning
            entry = self._log(
                variant, now, "update", True, detail, requested, why, state.config, deltas
            )
            next_ok = now + self.config.update_interval_days
            return GuardrailResult(
                True, dict(state.config), deltas, None, detail, next_ok, entry.decision_id
            )
        code, detail, next_allowed = verdict
        counts["rejected"] += 1
        counts[f"rejected_{code.name.lower()}"] += 1
        trips = False
        if code in (RejectionCode.INVALID_UPDATE, RejectionCode.RATE_LIMITED):
            state.rejection_streak += 1
            trips = state.rejection_streak >= self.config.breaker_rejection_limit
            if trips:
                detail += f"; circuit breaker tripped after {state.rejection_streak} in a row"
        entry = self._log(
            variant, now, "update", False, detail, requested, update.reasoning, code=code
        )
        if trips:
            self._trip(variant, state, now, f"{state.rejection_streak} rejected updates in a row")
            next_allowed = self._reset_time(state)
        return GuardrailResult(False, None, {}, code, detail, next_allowed, entry.decision_id)

    def check_harm(
        self,
        variant: str,
        treatment_active: int,
        treatment_n: int,
        control_active: int,
        control_n: int,
        now: float,
    ) -> bool:
        """Trip the breaker if the variant harms retention; return True if it tripped now.

        Counts are the successes and trials of the scenario's harm signal, a retention-like
        share where higher is better (gamification: users active in the last 7 days out of
        those enrolled; pricing: customers still paying out of those who ever paid). Harm needs both
        samples of at least ``breaker_min_sample`` users and either treatment retention below
        the floor, or a gap to control of at least ``breaker_min_harm`` that a one-sided Fisher
        exact test finds significant at ``breaker_alpha``. A check with enough data and no harm
        marks the current config as the last safe one.
        """
        state = self._state(variant)
        if variant == self.control:
            raise ValueError(f"check_harm compares a treatment with control; {variant!r} is it")
        for who, active, n in (
            ("treatment", treatment_active, treatment_n),
            ("control", control_active, control_n),
        ):
            if not 0 <= active <= n:
                raise ValueError(f"{who} counts need 0 <= active <= n, got {active} of {n}")
        self._advance(now)
        cfg = self.config
        if state.tripped_at is not None or min(treatment_n, control_n) < cfg.breaker_min_sample:
            return False
        t_rate, c_rate = treatment_active / treatment_n, control_active / control_n
        reason = None
        if t_rate < cfg.breaker_retention_floor:
            reason = f"retention {t_rate:.3f} below floor {cfg.breaker_retention_floor:g}"
        elif c_rate - t_rate >= cfg.breaker_min_harm:
            table = [
                [treatment_active, treatment_n - treatment_active],
                [control_active, control_n - control_active],
            ]
            p = float(fisher_exact(np.array(table), alternative="less").pvalue)
            if p < cfg.breaker_alpha:
                reason = f"retention {t_rate:.3f} vs control {c_rate:.3f}, one-sided p={p:.2g}"
        if reason is None:
            state.safe_config = dict(state.config)
            return False
        self._trip(variant, state, now, reason)
        return True

    def reset_breaker(self, variant: str, now: float) -> None:
        """Reset a tripped breaker once its cool-down has passed; ValueError before then."""
        state = self._state(variant)
        self._advance(now)
        if state.tripped_at is None:
            raise ValueError(f"circuit breaker of variant {variant!r} is not active")
        if not self._reset_due(state, now):
            raise ValueError(
                f"circuit breaker of variant {variant!r} may reset on day "
                f"{self._reset_time(state):g}, not on day {now:g}"
            )
        self._reset(variant, state, now)

    def tick(self, now: float) -> tuple[str, ...]:
        """Advance time; with ``auto_reset``, reset every breaker whose cool-down has passed."""
        self._advance(now)
        if not self.config.auto_reset:
            return ()
        due = [name for name, state in self._variants.items() if self._reset_due(state, now)]
        for name in due:
            self._reset(name, self._variants[name], now)
        return tuple(due)

    def _state(self, variant: str) -> _VariantState:
        try:
            return self._variants[variant]
        except KeyError:
            raise KeyError(f"unknown variant {variant!r}; have {list(self._variants)}") from None

    def _advance(self, now: float) -> None:
        """Refuse non-finite or backwards time: an audit log out of order is a caller bug."""
        if not math.isfinite(now) or now < self._now:
            raise ValueError(f"now must be finite and not before day {self._now:g}, got {now!r}")
        self._now = float(now)

    def _screen(
        self, variant: str, state: _VariantState, overrides: Mapping[str, float], now: float
    ) -> dict[str, float] | tuple[RejectionCode, str, float | None]:
        """Guardrails 1-5: the clean overrides, or (code, detail, next allowed update)."""
        closed = self._closed(variant, state)
        if closed is not None:
            return closed
        try:
            clean = self.knobs.validate(overrides, where=f"variant {variant!r}")
            if not clean:
                raise KnobError(f"variant {variant!r}: empty overrides, nothing to update")
        except KnobError as err:
            return RejectionCode.INVALID_UPDATE, str(err), None
        rate_time = self._rate_time(state)
        if rate_time is not None and now < rate_time:
            interval = self.config.update_interval_days
            detail = f"one update per {interval:g} days; next allowed on day {rate_time:g}"
            return RejectionCode.RATE_LIMITED, detail, rate_time
        return clean

    def _closed(
        self, variant: str, state: _VariantState
    ) -> tuple[RejectionCode, str, float | None] | None:
        """Guardrails 1-3, which refuse any update whatever it asks: the refusal, or None."""
        if variant == self.control:
            return RejectionCode.CONTROL_VARIANT_IMMUTABLE, "control variant is immutable", None
        if self._status is not ExperimentStatus.RUNNING:
            detail = f"experiment is {self._status}; only RUNNING accepts updates"
            return RejectionCode.EXPERIMENT_NOT_RUNNING, detail, None
        if state.tripped_at is not None:
            until = self._reset_time(state)
            detail = f"circuit breaker tripped on day {state.tripped_at:g}; resets day {until:g}"
            return RejectionCode.CIRCUIT_BREAKER_ACTIVE, detail, until
        return None

    def _window(self, key: str, prev: float) -> tuple[float, float, float]:
        """The delta clamp's window around ``prev`` for ``key``: (low, high, max delta)."""
        ref = prev if prev > 0 else self.knobs.defaults[key]
        max_delta = ref * (self.config.delta_limit_pct / 100.0)
        if key in self.knobs.integer:
            max_delta = max(max_delta, 1.0)
        lo, hi = (prev - max_delta, prev + max_delta) if prev > 0 else (0.0, max_delta)
        return lo, hi, max_delta

    def _clamp(
        self, current: Mapping[str, float], requested: Mapping[str, float]
    ) -> tuple[dict[str, float], dict[str, ClampedDelta]]:
        """Guardrail 6: clip each value to ±pct of its current value (of its default at 0); an
        integer knob may always move by one whole unit (±50 % of 1 would pin it at 1 for ever)."""
        applied: dict[str, float] = {}
        deltas: dict[str, ClampedDelta] = {}
        for key, want in requested.items():
            prev = current[key]
            ref = prev if prev > 0 else self.knobs.defaults[key]
            lo, hi, max_delta = self._window(key, prev)
            # The tolerance keeps a request exactly on the edge from being "clamped" by float noise.
            inside = lo <= want <= hi or math.isclose(want, lo) or math.isclose(want, hi)
            got = want if inside else min(max(want, lo), hi)
            if key in self.knobs.integer and not got.is_integer():
                got = float(round(got))
                if not lo <= got <= hi:  # rounding left the window: round toward current instead
                    got = float(math.floor(hi) if got > hi else math.ceil(lo))
            applied[key] = got
            if got != want:
                deltas[key] = ClampedDelta(prev, want, got, max_delta, (got - prev) / ref * 100.0)
        return applied, deltas

    def _rate_time(self, state: _VariantState) -> float | None:
        last = state.last_accepted
        return None if last is None else last + self.config.update_interval_days

    def _reset_time(self, state: _VariantState) -> float | None:
        trip = state.tripped_at
        return None if trip is None else trip + self.config.breaker_cooldown_days

    def _reset_due(self, state: _VariantState, now: float) -> bool:
        until = self._reset_time(state)
        return until is not None and now >= until

    def _trip(self, variant: str, state: _VariantState, now: float, reason: str) -> None:
        """Engage the breaker and revert the variant to its last safe config."""
        state.config = dict(state.safe_config)
        state.tripped_at = now
        state.rejection_streak = 0
        state.counts["breaker_trips"] += 1
        detail = (
            f"circuit breaker tripped: {reason}; reverted to last safe config; "
            f"may reset on day {self._reset_time(state):g}"
        )
        self._log(variant, now, "breaker_trip", False, detail, applied=state.config)

    def _reset(self, variant: str, state: _VariantState, now: float) -> None:
        detail = f"circuit breaker reset (tripped on day {state.tripped_at:g})"
        state.tripped_at = None
        state.rejection_streak = 0
        state.counts["breaker_resets"] += 1
        self._log(variant, now, "breaker_reset", True, detail, applied=state.config)

    def _log(
        self,
        variant: str,
        now: float,
        kind: AuditKind,
        accepted: bool,
        detail: str,
        requested: Mapping[str, object] | None = None,
        reasoning: str = "",
        applied: Mapping[str, float] | None = None,
        deltas: Mapping[str, ClampedDelta] | None = None,
        code: RejectionCode | None = None,
    ) -> AuditEntry:
        """Append one audit entry (copies every mapping) and return it."""
        entry = AuditEntry(
            decision_id=f"dec_{len(self._audit) + 1:06d}",
            sim_day=float(now),
            variant=variant,
            kind=kind,
            accepted=accepted,
            requested=dict(requested or {}),
            applied=None if applied is None else dict(applied),
            clamped_deltas={k: d.to_api() for k, d in (deltas or {}).items()},
            rejection_code=None if code is None else str(code),
            detail=detail,
            reasoning=reasoning,
        )
        self._audit.append(entry)
        return entry
