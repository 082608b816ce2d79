"""The event log's shape: OCEL 2.0's four tables in Parquet, plus the decision points.

Object-centric event logs (OCEL 2.0, ocel-standard.org) hold *events* (id, type, time,
attributes), *objects* (id, type, attributes), *event-to-object* links and *object-to-object*
links, each link with a qualifier that says what part the object plays. Columns that OCEL names
carry its ``ocel_`` prefix; every other column is an attribute. One tournament's log is one
folder of these files; :mod:`arena_rl.eventlog.ocel` exports it to OCEL 2.0 SQLite and JSON.

Times: day ``d`` of an experiment starts at :data:`START` + ``d`` days. Within a day the
agents' decisions and the guardrails' answers come first (a second apart, in the order they
happened), users act from noon (one minute apart per kind, in :attr:`Scenario.user_events`
order), and a circuit breaker that trips on the day's figures trips at the start of the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa

START = datetime(2026, 1, 1)
"""Simulated day 0 starts here (timestamps in the log are naive UTC)."""

USER_EVENTS_FROM_S = 12 * 3600
"""Users' events of a day are timed from noon, after every decision of that day."""

# ---- object types -------------------------------------------------------------------------
TOURNAMENT, ARM, AGENT, ECONOMY, USER = "tournament", "arm", "agent", "economy version", "user"
OBJECT_TYPES = (TOURNAMENT, ARM, AGENT, ECONOMY, USER)

# ---- event types (the scenario adds its user-level kinds) ---------------------------------
DECISION_MADE = "decision made"
UPDATE_REQUESTED = "update requested"
UPDATE_APPLIED = "update applied"
UPDATE_CLAMPED = "update clamped"
UPDATE_REJECTED = "update rejected"
BREAKER_TRIPPED = "circuit breaker tripped"
BREAKER_RECOVERED = "circuit breaker recovered"
DAY_CLOSED = "day closed"
"""One per arm and day, after the day's decisions: ``value`` is the objective earned that day
per enrolled user, ``detail`` JSON of enrolled and active users, each metric at day's end and
the economy in force (:meth:`DayClosed.arm_summary`)."""
PERSONA_ACTED = "persona acted"
"""One per LLM persona user and day (runs with persona users): ``value`` is the XP the app
awarded, ``code`` who decided (``model`` or ``twin``), ``detail`` JSON of the rest of
:class:`~arena_rl.core.events.PersonaActed` (user, persona, what it did, its reason)."""
AGENT_EVENTS = (
    DECISION_MADE,
    UPDATE_REQUESTED,
    UPDATE_APPLIED,
    UPDATE_CLAMPED,
    UPDATE_REJECTED,
    BREAKER_TRIPPED,
    BREAKER_RECOVERED,
    DAY_CLOSED,
    PERSONA_ACTED,
)

TEXT = pa.dictionary(pa.int32(), pa.string())
"""A text column with few distinct values (types, arms, qualifiers, a user's id on each of its
events): stored as numbers into a dictionary, which Parquet writes without hashing a string."""

EVENTS = pa.schema(
    [
        ("ocel_id", pa.int64()),
        ("ocel_type", TEXT),
        ("ocel_time", pa.timestamp("us")),
        ("day", pa.int32()),
        ("arm", TEXT),
        ("value", pa.float64()),
        ("code", pa.string()),
        ("detail", pa.string()),
    ]
)
"""``ocel_id``: the event's number (OCEL's exports write it as text); ``value``: a number the
type defines (a user event's count or amount, a decision's probability); ``code``: a rejection
code; ``detail``: text or JSON (a request, an economy)."""

OBJECTS = pa.schema(
    [
        ("ocel_id", pa.string()),
        ("ocel_type", pa.string()),
        ("arm", pa.string()),
        ("day", pa.int32()),
        ("detail", pa.string()),
    ]
)
"""``arm``: the arm an object belongs to; ``day``: when it began (a user's enrolment day, an
economy version's first day); ``detail``: JSON (an economy's knobs, a tournament's settings,
an agent's configuration)."""

EVENT_OBJECTS = pa.schema(
    [("ocel_event_id", pa.int64()), ("ocel_object_id", TEXT), ("ocel_qualifier", TEXT)]
)
OBJECT_OBJECTS = pa.schema(
    [
        ("ocel_source_id", pa.string()),
        ("ocel_target_id", pa.string()),
        ("ocel_qualifier", pa.string()),
    ]
)

DECISIONS = pa.schema(
    [
        ("tournament", pa.int32()),
        ("arm", pa.string()),
        ("agent", pa.string()),
        ("day", pa.int32()),
        ("action", pa.string()),
        ("reasoning", pa.string()),
        ("probability", pa.float64()),
        ("allowed_refusal", pa.string()),
        ("outcome", pa.string()),
        ("rejection_code", pa.string()),
        ("decision_id", pa.string()),
        ("reward", pa.float64()),
        ("reward_days", pa.int32()),
    ]
)
"""The decision points' fixed columns; :func:`decision_schema` adds the scenario's. One row per
agent decision: ``action`` (the update as the agent returned it, JSON; null for a hold),
``probability`` (of that action under the agent's policy), ``allowed_refusal`` (the rejection
code any update would have got then; null while updates were open), ``outcome`` (``hold``,
``applied``, ``clamped`` or ``rejected``, with ``rejection_code``), and ``reward``: the arm's
objective per enrolled user over the ``reward_days`` until its next decision (to the horizon
for the last; the value after the horizon is not in it)."""

SIGNALS = (
    ("enrolled", pa.int64()),
    ("active_today", pa.int64()),
    ("active_7d", pa.int64()),
    ("total_actions", pa.int64()),
    ("experiment_days", pa.int64()),
)
METRIC = (
    ("value", pa.float64()),
    ("std_dev", pa.float64()),
    ("sample_size", pa.int64()),
    ("confidence", pa.string()),
)


def decision_schema(knobs: Sequence[str], metrics: Sequence[str]) -> pa.Schema:
    """:data:`DECISIONS` plus ``tokens`` (the language-model tokens the decision used; null for
    an agent that counts none) and, as plain columns (features for a reward model, no JSON to
    parse): the observation exactly as the agent saw it (``obs.<signal>``,
    ``obs.<METRIC>.<value|std_dev|sample_size|confidence>``), its arm's economy then
    (``economy.<knob>``), what the guardrails would have let through unclamped
    (``allowed.<knob>.low``/``.high``) and the value it asked for (``action.<knob>``, null
    where it asked nothing)."""
    fields = [*DECISIONS, pa.field("tokens", pa.float64())]
    fields += [pa.field(f"obs.{name}", kind) for name, kind in SIGNALS]
    fields += [pa.field(f"obs.{m}.{name}", kind) for m in metrics for name, kind in METRIC]
    fields += [pa.field(f"economy.{k}", pa.float64()) for k in knobs]
    fields += [
        pa.field(f"allowed.{k}.{end}", pa.float64()) for k in knobs for end in ("low", "high")
    ]
    fields += [pa.field(f"action.{k}", pa.float64()) for k in knobs]
    return pa.schema(fields)


TABLES = {
    "events": EVENTS,
    "objects": OBJECTS,
    "event_objects": EVENT_OBJECTS,
    "object_objects": OBJECT_OBJECTS,
    "decisions": DECISIONS,
}
"""File stem -> schema: one tournament's log is ``<stem>.parquet`` for each (the decisions
table has the scenario's columns after these: :func:`decision_schema`)."""


def object_id(kind: str, *parts: object) -> str:
    """``<type>/<part>/...``: ids that say what they name (``user/ucb/17``)."""
    return "/".join([kind.replace(" ", "_"), *map(str, parts)])
