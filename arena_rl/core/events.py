"""The experiment core's event stream: typed, immutable events and the subscribers that read them.

The core publishes what happens in an experiment as it happens, and consumers sit outside it
(like Gymnasium's wrappers, or Mesa's ``DataCollector``): the audit log, the per-day histories
that tracking logs, the event-log writer, the live page. Each subscriber gets each day's events
in one batch (``on_day``), in the order they happened. A consumer that is absent costs nothing;
one that raises, or takes longer than the stream's ``slow_after_s``, is detached and reported,
and the experiment goes on. User-level events (:class:`UserDay`, one columnar batch per day) are
built only while some subscriber asks for them (``user_events = True``). ``docs/events.md``
describes every event type.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from arena_rl.core.guardrails import AllowedActions, AuditEntry, ConfigUpdate
from arena_rl.core.signals import Signals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DayClosed:
    """A simulated day is over. Arrays have shape (n_arms,), in ``arms`` order (control first)."""

    day: int
    """The day just simulated (0-based); the next one is ``day + 1``."""
    arms: tuple[str, ...]
    economies: tuple[Mapping[str, float], ...]
    """Each arm's economy during the day."""
    enrolled: np.ndarray
    active: np.ndarray
    value: np.ndarray
    """The scenario objective earned today per enrolled user: each arm's reward."""
    totals: Mapping[str, np.ndarray]
    """The scenario's own totals of the day (e.g. scans and XP; revenue)."""
    signals: tuple[Signals, ...]
    """Each arm's signals at the end of the day, as an agent sees them."""

    def arm_summary(self, i: int) -> dict[str, object]:
        """Arm ``i``'s day as plain JSON values: enrolled and active users, each metric's
        value at day's end and the economy in force (what the event log keeps of the day and
        the live page draws)."""
        return {
            "enrolled": int(self.enrolled[i]),
            "active": int(self.active[i]),
            "metrics": {n: float(m.value) for n, m in self.signals[i].metrics.items()},
            "economy": {k: float(v) for k, v in self.economies[i].items()},
        }


@dataclass(frozen=True)
class UpdateResolved:
    """An update an agent requested, and the guardrails' answer: applied (``entry.applied``,
    with ``entry.clamped_deltas`` where the delta clamp moved it) or rejected
    (``entry.rejection_code``)."""

    entry: AuditEntry

    @property
    def arm(self) -> str:
        return self.entry.variant


@dataclass(frozen=True)
class BreakerTripped:
    """A variant's circuit breaker tripped (``entry.detail`` says why); it reverted to its last
    safe economy and accepts nothing until reset."""

    entry: AuditEntry

    @property
    def arm(self) -> str:
        return self.entry.variant


@dataclass(frozen=True)
class BreakerRecovered:
    """A tripped breaker was reset (after its cool-down): the variant accepts updates again."""

    entry: AuditEntry

    @property
    def arm(self) -> str:
        return self.entry.variant


@dataclass(frozen=True)
class DecisionMade:
    """An agent decided, on a decision day, before the day was simulated."""

    day: int
    arm: str
    agent: str
    observation: Signals
    """The signals exactly as the agent was given them."""
    config: Mapping[str, float]
    """The variant's economy when it decided."""
    action: ConfigUpdate | None
    """What it returned (None: hold); faults are recorded as holds."""
    probability: float
    """The probability with which it chose this action (1.0 if deterministic)."""
    seconds: float
    allowed: AllowedActions
    """What the guardrails would have accepted at that moment."""
    tokens: float | None = None
    """The language-model tokens the decision used (None: the agent counts none)."""
    reasoning: str = ""
    """The agent's words for it: its update's reasoning, or, for a hold, what it noted."""


@dataclass(frozen=True)
class PersonaActed:
    """An LLM persona user's day (beside the vectorised population, never in its statistics):
    what it did under its arm's economy and why, in its own words."""

    day: int
    arm: str
    user: str
    """The persona user's name within the arm: ``<persona id>#<n>``."""
    persona: str
    source: str
    """Who decided: ``model`` (a model call or its cached answer) or ``twin`` (the persona's
    behavioural-model twin, when the model failed or the budget was reached)."""
    opened: bool
    scans: int
    feedback: int
    reports: int
    quit: bool
    xp: float
    """XP the app awarded for the day."""
    streak: int
    """The streak after the day."""
    reason: str
    tokens: int = 0
    """Model tokens the day cost (0 when cached or from the twin)."""
    fault: str = ""
    """Why the twin decided instead (empty when the model did)."""


@dataclass(frozen=True)
class UserDay:
    """Every enrolled user's day, as columns (one row per user and arm), built only on request.

    ``columns`` holds equal-length arrays: ``arm`` (int8, index into ``arms``), ``user``
    (int32, the user's index within its arm), ``enrolled_today``, ``active``, ``churned``
    (bool), ``scans``, ``feedback``, ``useful_feedback``, ``xp`` (float32; scans,
    written feedback, useful feedback and XP awarded today), ``streak`` (float32, after today).
    """

    day: int
    arms: tuple[str, ...]
    users_per_arm: int
    """Every arm's size, enrolled or not yet (``user`` indexes into it)."""
    columns: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["user"])


@dataclass(frozen=True)
class UserEventType:
    """One kind of user-level event and how it reads off a :class:`UserDay`: it happened to a
    user on a day where ``column`` is true, or above 0 for a number, and then ``value`` (when
    set) says what that number is (e.g. "scans that day"). A scenario lists its kinds."""

    name: str
    column: str
    value: str | None = None
    expected: bool = False
    """The column is an expected count (the model counts it in expectation): an event log
    draws each user's realised count from a Poisson with that mean, on its own random stream."""


Event = (
    DayClosed
    | UpdateResolved
    | BreakerTripped
    | BreakerRecovered
    | DecisionMade
    | PersonaActed
    | UserDay
)


class Subscriber(Protocol):
    """Receives each day's events in one batch, oldest first.

    A subscriber may set ``user_events = True`` to also receive :class:`UserDay` batches (they
    cost time to build, so they are made only while someone asks).
    """

    def on_day(self, events: Sequence[Event]) -> None: ...


class EventStream:
    """Collects the core's events and hands each day's batch to every subscriber.

    Args:
        subscribers: the consumers, in delivery order.
        slow_after_s: a subscriber whose batch takes longer than this is detached (it would
            hold up the experiment); None: no limit.
    """

    def __init__(self, subscribers: Iterable[Subscriber] = (), slow_after_s: float | None = 5.0):
        self.subscribers: list[Subscriber] = list(subscribers)
        self.slow_after_s = slow_after_s
        self.detached: list[str] = []
        """Why each detached subscriber was detached."""
        self._pending: list[Event] = []

    @property
    def active(self) -> bool:
        """Whether anyone listens (events are not even built otherwise)."""
        return bool(self.subscribers)

    @property
    def wants_users(self) -> bool:
        return any(getattr(s, "user_events", False) for s in self.subscribers)

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def publish(self, event: Event) -> None:
        if self.subscribers:
            self._pending.append(event)

    def flush(self) -> None:
        """Deliver what was published since the last flush; detach a subscriber that fails or
        stalls, unless it is ``essential`` (the run's own results, like the audit log)."""
        batch, self._pending = tuple(self._pending), []
        if not batch:
            return
        for subscriber in list(self.subscribers):
            if getattr(subscriber, "essential", False):
                subscriber.on_day(batch)  # the run's own results: a failure is a bug, and raises
                continue
            started = time.perf_counter()
            try:
                subscriber.on_day(batch)
            except Exception as exc:  # a consumer never takes the experiment down
                self._detach(subscriber, f"raised {type(exc).__name__}: {exc}")
                continue
            took = time.perf_counter() - started
            if self.slow_after_s is not None and took > self.slow_after_s:
                self._detach(subscriber, f"took {took:.2f} s, over {self.slow_after_s:g} s")

    def _detach(self, subscriber: Subscriber, why: str) -> None:
        self.subscribers.remove(subscriber)
        message = f"event subscriber {type(subscriber).__name__} detached: {why}"
        self.detached.append(message)
        log.error(message)


class AuditLog:
    """Subscriber: every guardrail decision (update, breaker trip, breaker reset), in order."""

    essential = True
    """Part of the run's results: never detached (see :meth:`EventStream.flush`)."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def on_day(self, events: Sequence[Event]) -> None:
        audited = UpdateResolved | BreakerTripped | BreakerRecovered
        self.entries += [e.entry for e in events if isinstance(e, audited)]

    def records(self, rename: Mapping[str, str] | None = None) -> list[dict[str, object]]:
        """Flat rows (:meth:`AuditEntry.to_record`), variants renamed where ``rename`` says."""
        rename = rename or {}
        return [
            {**e.to_record(), "variant": rename.get(e.variant, e.variant)} for e in self.entries
        ]


class DailyHistory:
    """Subscriber: per arm, each day's objective value and each metric's value at day's end.

    A day's value is the change of the arm's running objective (the sum the leaderboard ranks),
    so the daily values add up exactly as the running total does.
    """

    essential = True
    """Part of the run's results: never detached (see :meth:`EventStream.flush`)."""

    def __init__(self) -> None:
        self.running: dict[str, float] = {}
        self.value: dict[str, list[float]] = {}
        self.metrics: dict[str, dict[str, list[float]]] = {}

    def on_day(self, events: Sequence[Event]) -> None:
        for event in events:
            if not isinstance(event, DayClosed):
                continue
            for i, arm in enumerate(event.arms):
                before = self.running.get(arm, 0.0)
                self.running[arm] = before + float(event.value[i])
                self.value.setdefault(arm, []).append(self.running[arm] - before)
                history = self.metrics.setdefault(arm, {})
                for name, metric in event.signals[i].metrics.items():
                    history.setdefault(name, []).append(metric.value)
