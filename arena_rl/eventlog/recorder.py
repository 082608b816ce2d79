"""Record one experiment's event log from the core's event stream, as columns.

:class:`EventLogRecorder` subscribes to an experiment core and keeps what it publishes: the
agents' decisions and the guardrails' answers as a few rows a day, the users' days as NumPy
columns (one chunk a day, never an object per user), and the objects they touch (tournament,
arms, agents, economy versions, users). :meth:`EventLogRecorder.tables` turns it into the
tables of :mod:`arena_rl.eventlog.schema`; ids and times are built there, column-wise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arena_rl.core.events import (
    BreakerRecovered,
    BreakerTripped,
    DayClosed,
    DecisionMade,
    Event,
    PersonaActed,
    UpdateResolved,
    UserDay,
    UserEventType,
)
from arena_rl.core.guardrails import AuditEntry
from arena_rl.eventlog import schema as s

ObjectKey = tuple[str, str | None, object]
"""(object type, the arm it belongs to or None, its own part): ids are built from it once the
arms' display names are known."""

NO_USERS, ALL_USERS = "none", "all"


def check_user_sample(users: object) -> int | str:
    """``eventlog.users``: "none", "all", or a whole number of users per arm (>= 0)."""
    if users in (NO_USERS, ALL_USERS):
        return str(users)
    if isinstance(users, bool) or not isinstance(users, int) or users < 0:
        raise ValueError(
            f"eventlog.users must be 'none', 'all' or a whole number of users per arm >= 0, "
            f"got {users!r}"
        )
    return users


OUTCOMES = {s.UPDATE_APPLIED: "applied", s.UPDATE_CLAMPED: "clamped", s.UPDATE_REJECTED: "rejected"}
"""An answered update's event type -> its outcome, in a word."""


def update_outcome(entry: AuditEntry) -> tuple[str, str | None, str | None]:
    """How the log records the guardrails' answer to an update: its event type, rejection
    code and detail (the clamp's changes as JSON where it clamped)."""
    if not (entry.accepted and entry.applied is not None):
        return s.UPDATE_REJECTED, entry.rejection_code, entry.detail
    if entry.clamped_deltas:
        return s.UPDATE_CLAMPED, None, json_text(entry.clamped_deltas)
    return s.UPDATE_APPLIED, None, entry.detail


@dataclass
class _Row:
    """An agent-level event: a decision, a request and its answer, a breaker's trip or reset."""

    type: str
    day: int
    second: int
    arm: str
    links: list[tuple[ObjectKey, str]]
    value: float | None = None
    code: str | None = None
    detail: str | None = None


@dataclass
class _Decision:
    """A decision point, filled in as its outcome and the following days arrive."""

    row: dict[str, Any]
    reward: float = 0.0
    reward_days: int = 0


class EventLogRecorder:
    """Subscriber: one experiment's object-centric event log and its decision points.

    Marked ``essential``: a log that was asked for is part of the run's results, so an error in
    it fails the experiment rather than leaving a log that stops half-way as if complete.

    Args:
        user_events: the scenario's kinds of user-level event (``scenario.user_events``).
        users: which users' events to keep: "none", "all", or that many users per arm, drawn
            at random (seeded by ``seed``) from each arm's users, enrolled or not yet.
        seed: seeds the user sample.
        tournament: the tournament's index (the log's root object).
        settings: what to record of the tournament on its object (seed, days, ...).
    """

    def __init__(
        self,
        user_events: Sequence[UserEventType],
        *,
        users: int | str = NO_USERS,
        seed: int = 0,
        tournament: int = 0,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.essential = True
        self.kinds = tuple(user_events)
        self.sample = check_user_sample(users)
        self.user_events = self.sample not in (NO_USERS, 0)
        """Asks the core for user-level batches (only when some users are kept)."""
        self.tournament = tournament
        self._root: ObjectKey = (s.TOURNAMENT, None, tournament)
        self._objects: dict[ObjectKey, tuple[int | None, str | None]] = {
            self._root: (0, json.dumps(dict(settings or {}), default=str, sort_keys=True))
        }
        self._o2o: list[tuple[ObjectKey, ObjectKey, str]] = []
        self._rows: list[_Row] = []
        self._seconds: dict[int, int] = {}
        self._versions: dict[str, list[dict[str, float]]] = {}
        self._agents: dict[str, str] = {}
        self._decisions: list[_Decision] = []
        self._columns: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        """The scenario's knobs and metrics, as the first decision showed them."""
        self._open: dict[str, _Decision] = {}
        self._last: dict[str, _Decision] = {}
        self._rng = np.random.default_rng([seed, tournament])
        """The log's own stream (the user sample): the experiment's is untouched."""
        self._counts_seed = (seed, tournament, 1)
        """Seeds the draws of each user's count of an event the model keeps in expectation
        (made when the tables are built, the same every time they are)."""
        self._keep: np.ndarray | None = None
        self._needed = ("arm", "user", *dict.fromkeys(k.column for k in self.kinds))
        self._days: list[tuple[int, dict[str, np.ndarray]]] = []
        """Per day, the kept users' columns (``_needed``)."""
        self._users_per_arm = 0
        self._arm_order: tuple[str, ...] = ()

    # ---- the stream -----------------------------------------------------------------------

    def on_day(self, events: Sequence[Event]) -> None:
        for event in events:
            if isinstance(event, DecisionMade):
                self._decision(event)
            elif isinstance(event, UpdateResolved):
                self._update(event)
            elif isinstance(event, BreakerTripped | BreakerRecovered):
                self._breaker(event)
            elif isinstance(event, UserDay) and self.user_events:  # another may have asked
                self._users(event)
            elif isinstance(event, DayClosed):
                self._close(event)
            elif isinstance(event, PersonaActed):
                self._persona(event)

    def _decision(self, e: DecisionMade) -> None:
        self._arm(e.arm)
        agent: ObjectKey = (s.AGENT, e.arm, None)
        if e.arm not in self._agents:
            self._agents[e.arm] = e.agent
            self._objects[agent] = (e.day, None)
            self._o2o += [
                (agent, (s.ARM, e.arm, None), "controls"),
                (agent, self._root, "plays in"),
            ]
        seen = self._version(e.arm, e.config, e.day)
        action = None if e.action is None else dict(e.action.overrides)
        asked = json_text(action)
        links = [(agent, "decided by"), ((s.ARM, e.arm, None), "for"), (seen, "seen")]
        self._add(s.DECISION_MADE, e.day, e.arm, links, e.probability, detail=asked)
        row: dict[str, Any] = {
            "tournament": self.tournament,
            "arm": e.arm,
            "agent": e.agent,
            "day": e.day,
            "action": None if action is None else asked,
            "reasoning": e.reasoning,
            "probability": e.probability,
            "allowed_refusal": e.allowed.refusal,
            "outcome": "hold",
            "tokens": e.tokens,
        }
        obs = e.observation
        row.update(
            {"obs.enrolled": obs.enrolled, "obs.active_today": obs.active_today,
             "obs.active_7d": obs.active_7d, "obs.total_actions": obs.total_actions,
             "obs.experiment_days": obs.experiment_days}
        )  # fmt: skip
        for name, m in obs.metrics.items():
            row[f"obs.{name}.value"] = m.value
            row[f"obs.{name}.std_dev"] = m.std_dev
            row[f"obs.{name}.sample_size"] = m.sample_size
            row[f"obs.{name}.confidence"] = m.confidence
        for knob, value in e.config.items():
            row[f"economy.{knob}"] = value
        for knob, (low, high) in e.allowed.ranges.items():
            row[f"allowed.{knob}.low"], row[f"allowed.{knob}.high"] = low, high
        for knob, value in (action or {}).items():
            if isinstance(value, int | float) and f"economy.{knob}" in row:
                row[f"action.{knob}"] = value
        if not self._columns:
            self._columns = (tuple(e.config), tuple(obs.metrics))
        decision = _Decision(row)
        self._decisions.append(decision)
        self._last[e.arm] = decision
        if e.action is not None:
            self._open[e.arm] = decision

    def _update(self, e: UpdateResolved) -> None:
        entry, arm = e.entry, e.arm
        self._arm(arm)
        day = int(entry.sim_day)
        on_arm: tuple[ObjectKey, str] = ((s.ARM, arm, None), "of")
        requested = {"overrides": entry.requested, "reasoning": entry.reasoning}
        links = [on_arm]
        if arm in self._agents:
            links.append(((s.AGENT, arm, None), "requested by"))
        self._add(s.UPDATE_REQUESTED, day, arm, links, detail=json_text(requested))
        kind, code, detail = update_outcome(entry)
        if kind != s.UPDATE_REJECTED:
            assert entry.applied is not None
            before = self._current(arm)
            made = self._version(arm, entry.applied, day)
            links = [on_arm, (made, "creates")]
            if before is not None and before != made:
                links.append((before, "replaces"))
            self._add(kind, day, arm, links, detail=detail)
        else:
            self._add(kind, day, arm, [on_arm], code=code, detail=detail)
        outcome = OUTCOMES[kind]
        decision = self._open.pop(arm, None)
        if decision is not None:
            decision.row.update(outcome=outcome, rejection_code=code, decision_id=entry.decision_id)

    def _breaker(self, e: BreakerTripped | BreakerRecovered) -> None:
        entry, arm = e.entry, e.arm
        self._arm(arm)
        day = int(entry.sim_day)
        links: list[tuple[ObjectKey, str]] = [((s.ARM, arm, None), "of")]
        if isinstance(e, BreakerTripped):
            if entry.applied is not None:
                links.append((self._version(arm, entry.applied, day), "restores"))
            self._add(s.BREAKER_TRIPPED, day, arm, links, detail=entry.detail)
        else:
            self._add(s.BREAKER_RECOVERED, day, arm, links, detail=entry.detail)

    def _close(self, e: DayClosed) -> None:
        for i, arm in enumerate(e.arms):
            self._arm(arm)
            version = self._version(arm, e.economies[i], e.day)
            links = [((s.ARM, arm, None), "of"), (version, "in force")]
            summary = json_text(e.arm_summary(i))
            self._add(s.DAY_CLOSED, e.day, arm, links, float(e.value[i]), detail=summary)
            last = self._last.get(arm)
            if last is not None:
                last.reward += float(e.value[i])
                last.reward_days += 1

    def _persona(self, e: PersonaActed) -> None:
        self._arm(e.arm)
        links: list[tuple[ObjectKey, str]] = [((s.ARM, e.arm, None), "of")]
        current = self._current(e.arm)
        if current is not None:
            links.append((current, "in force"))
        self._add(s.PERSONA_ACTED, e.day, e.arm, links, e.xp, e.source, persona_detail(e))

    def _users(self, e: UserDay) -> None:
        """Keep the sampled users' columns of the day; events are made from all days at once
        when the tables are built (per-day work is what a small tournament pays for)."""
        cols = e.columns
        if self._users_per_arm == 0:
            self._arm_order = e.arms
            self._users_per_arm = e.users_per_arm
            if self.sample != ALL_USERS:
                self._keep = self._draw_sample(len(e.arms), e.users_per_arm)
        if self._keep is None:
            self._days.append((e.day, {c: cols[c] for c in self._needed}))
            return
        kept = np.flatnonzero(self._keep[cols["arm"], cols["user"]])
        self._days.append((e.day, {c: cols[c][kept] for c in self._needed}))

    def _draw_sample(self, n_arms: int, users_per_arm: int) -> np.ndarray:
        """(n_arms, users_per_arm) bool: the users whose events are kept."""
        n = min(int(self.sample), users_per_arm)
        ranks = self._rng.random((n_arms, users_per_arm)).argsort(axis=1).argsort(axis=1)
        return ranks < n

    # ---- objects --------------------------------------------------------------------------

    def _arm(self, arm: str) -> None:
        key: ObjectKey = (s.ARM, arm, None)
        if key not in self._objects:
            self._objects[key] = (0, None)
            self._o2o.append((key, self._root, "part of"))

    def _current(self, arm: str) -> ObjectKey | None:
        versions = self._versions.get(arm)
        return (s.ECONOMY, arm, len(versions) - 1) if versions else None

    def _version(self, arm: str, economy: Mapping[str, float], day: int) -> ObjectKey:
        """The arm's economy version with these knobs: the current one, or a new one."""
        versions = self._versions.setdefault(arm, [])
        if versions and versions[-1] == dict(economy):
            return (s.ECONOMY, arm, len(versions) - 1)
        key: ObjectKey = (s.ECONOMY, arm, len(versions))
        versions.append(dict(economy))
        self._objects[key] = (day, json_text(dict(economy)))
        self._o2o.append((key, (s.ARM, arm, None), "economy of"))
        if len(versions) > 1:
            self._o2o.append((key, (s.ECONOMY, arm, len(versions) - 2), "revises"))
        return key

    def _add(
        self,
        kind: str,
        day: int,
        arm: str,
        links: list[tuple[ObjectKey, str]],
        value: float | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        second = self._seconds.get(day, 0)
        self._seconds[day] = second + 1
        self._rows.append(_Row(kind, day, second, arm, links, value, code, detail))

    # ---- the tables -----------------------------------------------------------------------

    def tables(self) -> dict[str, pa.Table]:
        """The log as Arrow tables (:data:`schema.TABLES`); each arm is named after the agent
        that decided for it (the control arm keeps its name)."""
        names = self._agents
        made: dict[ObjectKey, str] = {}

        def oid(key: ObjectKey) -> str:
            found = made.get(key)
            if found is None:
                kind, arm, part = key
                if kind == s.TOURNAMENT:
                    found = s.object_id(kind, part)
                else:
                    shown = names.get(str(arm), str(arm))
                    found = s.object_id(kind, shown, *([] if part is None else [part]))
                made[key] = found
            return found

        rows = self._rows
        agent_ids = list(range(len(rows)))
        start = np.datetime64(s.START, "us")
        agent_events = pa.table(
            {
                "ocel_id": agent_ids,
                "ocel_type": [r.type for r in rows],
                "ocel_time": start
                + np.array([r.day for r in rows], "timedelta64[D]")
                + np.array([r.second for r in rows], "timedelta64[s]"),
                "day": [r.day for r in rows],
                "arm": [names.get(r.arm, r.arm) for r in rows],
                "value": [r.value for r in rows],
                "code": [r.code for r in rows],
                "detail": [r.detail for r in rows],
            },
            schema=s.EVENTS,
        )
        e2o = [(agent_ids[i], oid(key), q) for i, r in enumerate(rows) for key, q in r.links]
        user_events, user_links, users, assigned = self._user_tables(len(rows), names)
        objects = pa.table(
            {
                "ocel_id": [oid(k) for k in self._objects],
                "ocel_type": [k[0] for k in self._objects],
                "arm": [None if k[1] is None else names.get(k[1], k[1]) for k in self._objects],
                "day": [day for day, _ in self._objects.values()],
                "detail": [detail for _, detail in self._objects.values()],
            },
            schema=s.OBJECTS,
        )
        o2o = pa.table(
            {
                "ocel_source_id": [oid(a) for a, _, _ in self._o2o],
                "ocel_target_id": [oid(b) for _, b, _ in self._o2o],
                "ocel_qualifier": [q for _, _, q in self._o2o],
            },
            schema=s.OBJECT_OBJECTS,
        )
        e2o_table = pa.table(
            dict(zip(s.EVENT_OBJECTS.names, map(list, zip(*e2o, strict=True)), strict=True))
            if e2o
            else {n: [] for n in s.EVENT_OBJECTS.names},
            schema=s.EVENT_OBJECTS,
        )
        return {
            "events": pa.concat_tables([agent_events, user_events]),
            "objects": pa.concat_tables([objects, users]),
            "event_objects": pa.concat_tables([e2o_table, user_links]),
            "object_objects": pa.concat_tables([o2o, assigned]),
            "decisions": self._decision_table(names),
        }

    def _user_tables(
        self, first_id: int, names: Mapping[str, str]
    ) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
        """User-level events, their links to users, the users and their links to arms: built
        column-wise (a user's id string is made once and taken for each of its events)."""
        if not self._days:
            return tuple(
                _empty(t) for t in (s.EVENTS, s.EVENT_OBJECTS, s.OBJECTS, s.OBJECT_OBJECTS)
            )  # type: ignore[return-value]
        shown = [names.get(a, a) for a in self._arm_order]
        # one row per kept user and day, days in order
        cols = {c: np.concatenate([d[c] for _, d in self._days]) for c in self._needed}
        row_day = np.concatenate([np.full(len(d["arm"]), t, np.int32) for t, d in self._days])
        key = cols["arm"].astype(np.int64) * self._users_per_arm + cols["user"]
        first = _first_rows(key, [len(d["arm"]) for _, d in self._days])
        number = np.empty(len(self._arm_order) * self._users_per_arm, np.int64)
        number[key[first]] = np.arange(len(first))  # users numbered as they first appear
        arm, user, since = cols["arm"][first], cols["user"][first], row_day[first]
        prefixes = pa.array([f"{s.object_id(s.USER, a)}/" for a in shown], pa.string())
        user_ids = pc.binary_join_element_wise(
            prefixes.take(pa.array(arm)), pa.array(user).cast(pa.string()), ""
        )
        user_arm = pa.array(shown, pa.string()).take(pa.array(arm))
        users = pa.table(
            [user_ids, _repeat(s.USER, len(arm)), user_arm, pa.array(since),
             pa.nulls(len(arm), pa.string())],
            schema=s.OBJECTS,
        )  # fmt: skip
        arm_ids = pa.array([s.object_id(s.ARM, a) for a in shown], pa.string())
        assigned = pa.table(
            [user_ids, arm_ids.take(pa.array(arm)), _repeat("assigned to", len(arm))],
            schema=s.OBJECT_OBJECTS,
        )
        # (rows, kinds): how often each kind happened to each user that day, 0 for never
        counts = np.empty((len(key), len(self.kinds)), np.float32)
        draws = np.random.default_rng(self._counts_seed)
        for k, kind in enumerate(self.kinds):
            column = cols[kind.column]
            if kind.expected:  # drawn only where the expectation is positive
                counts[:, k] = 0
                some = np.flatnonzero(column)
                counts[some, k] = draws.poisson(column[some])
            else:
                counts[:, k] = column
        rows, kinds = np.nonzero(counts > 0)
        code, day, owner, count = kinds, row_day[rows], number[key[rows]], counts[rows, kinds]
        n = len(code)
        # a kind's events at a fixed minute of the day: microseconds since the epoch
        minute_us = (s.USER_EVENTS_FROM_S + 60 * np.arange(len(self.kinds))) * 1_000_000
        start_us = np.datetime64(s.START, "us").astype(np.int64)
        time = (start_us + day.astype(np.int64) * 86_400_000_000 + minute_us[code]).view(
            "datetime64[us]"
        )
        valued = np.array([k.value is not None for k in self.kinds])[code]
        owner32 = owner.astype(np.int32)
        events = pa.table(
            [pa.array(np.arange(first_id, first_id + n)),
             _coded(code, [k.name for k in self.kinds]), pa.array(time), pa.array(day),
             _coded(arm[owner], shown), pa.array(count.astype(np.float64), mask=~valued),
             pa.nulls(n, pa.string()), pa.nulls(n, pa.string())],
            schema=s.EVENTS,
        )  # fmt: skip
        links = pa.table(
            [events["ocel_id"], pa.DictionaryArray.from_arrays(owner32, user_ids),
             _coded(np.zeros(n, np.int32), ["user"])],
            schema=s.EVENT_OBJECTS,
        )  # fmt: skip
        return events, links, users, assigned

    def _decision_table(self, names: Mapping[str, str]) -> pa.Table:
        knobs, metrics = self._columns or ((), ())
        rows = [
            d.row | {"arm": names.get(d.row["arm"], d.row["arm"]), "reward": d.reward,
                     "reward_days": d.reward_days}
            for d in self._decisions
        ]  # fmt: skip
        return pa.Table.from_pylist(rows, schema=s.decision_schema(knobs, metrics))


def _first_rows(key: np.ndarray, day_sizes: Sequence[int]) -> np.ndarray:
    """The row where each key first appears, in order, for rows grouped by day (a key appears
    at most once a day): day by day, with no sort of every row."""
    seen = np.zeros(int(key.max(initial=-1)) + 1, bool)
    firsts, start = [], 0
    for size in day_sizes:
        today = np.arange(start, start + size)
        new = today[~seen[key[today]]]
        seen[key[new]] = True
        firsts.append(new)
        start += size
    return np.concatenate(firsts) if firsts else np.zeros(0, np.intp)


def _coded(codes: np.ndarray, texts: list[str]) -> pa.DictionaryArray:
    """``texts[codes[i]]`` for every i, as a dictionary column (no string per row is made)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(texts))


def _repeat(text: str, n: int) -> pa.Array:
    """``text`` n times, as a string column built in Arrow (no Python list of n strings)."""
    indices = pa.array(np.zeros(n, np.int32))
    return pa.DictionaryArray.from_arrays(indices, pa.array([text])).cast(pa.string())


def _empty(schema: pa.Schema) -> pa.Table:
    return pa.table({name: [] for name in schema.names}, schema=schema)


_ENCODER = json.JSONEncoder(sort_keys=True, default=str, allow_nan=True)
"""One encoder for every detail (``json.dumps`` with options builds one per call)."""


def persona_detail(e: PersonaActed) -> str:
    """What the log keeps of a persona user's day besides its XP and source (and what the live
    page shows)."""
    fields = ("user", "persona", "opened", "scans", "feedback", "reports", "quit", "streak",
              "reason", "tokens", "fault")  # fmt: skip
    return json_text({f: getattr(e, f) for f in fields})


def json_text(value: object) -> str:
    """How the log writes a detail (an action, an economy, a day's summary) as JSON text."""
    return _ENCODER.encode(value)
