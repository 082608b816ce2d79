"""Replay over an external event log: a log of one's own, described by a manifest.

A platform team's log (Parquet or JSON Lines, one event per row) and a ``manifest.yaml`` that
says how to read it: which field is the case (a user, a ticket, an order), which the time and
which the activity; where a policy could have intervened (decision points: an activity, an
optional condition on the event's fields, the allowed actions, the field holding the action
taken and, if known, its probability, and the fields a policy may look at); and which later
activities of the same case count as a positive or a negative outcome, within a window. Every
problem is reported at once with its row or field, before any replay.

The replay gives the policy, at each decision point, the point's name, its features and the
allowed actions, in its own process that holds only the decision points strictly before (as
:mod:`arena_rl.eventlog.replay` does for arena_rl's own logs). ``docs/replay.md`` has an example.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from arena_rl.eventlog.ope import Estimate, cross_fitted_predictions, estimate
from arena_rl.eventlog.replay import PolicyProcess, absorb, isolate, requests


class ManifestError(ValueError):
    """A manifest or log that cannot be replayed; the message lists every problem found."""


class Condition(BaseModel):
    """A test on the triggering event's field: ``field op value``."""

    model_config = ConfigDict(extra="forbid")
    field: str
    op: Literal["==", "!=", "<", "<=", ">", ">=", "in"]
    value: Any

    def holds(self, row: Mapping[str, Any]) -> bool:
        got = row.get(self.field)
        if self.op == "in":
            return bool(got in self.value)
        return got is not None and _compare(got, self.op, self.value)


class DecisionPointSpec(BaseModel):
    """Where a policy could have acted: on each event of ``activity`` meeting ``when``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    activity: str
    when: list[Condition] = Field(default_factory=list)
    allowed_actions: list[str] = Field(min_length=1)
    action: str
    """The field of the triggering event that holds the action taken."""
    propensity: str | None = None
    """The field holding the logging policy's probability of that action (none: 1)."""
    features: list[str] = Field(default_factory=list)


class Outcomes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    positive: list[str] = Field(default_factory=list)
    negative: list[str] = Field(default_factory=list)
    window_days: float = Field(gt=0)

    @model_validator(mode="after")
    def _some(self) -> Outcomes:
        if not self.positive and not self.negative:
            raise ValueError("name at least one positive or negative outcome activity")
        return self


class Manifest(BaseModel):
    """How to read an external event log for replay."""

    model_config = ConfigDict(extra="forbid")
    log: str
    """The log file (Parquet or .jsonl), relative to the manifest."""
    case_id: str
    timestamp: str
    activity: str
    activities: list[str] | None = None
    """Every activity the log may hold (none: any); another is an error naming its row."""
    decision_points: list[DecisionPointSpec] = Field(min_length=1)
    outcomes: Outcomes


@dataclass(frozen=True)
class ExternalLog:
    """The decision points read off an external log, oldest first."""

    manifest: Manifest
    points: list[dict[str, Any]]
    """Each: ``row`` (in the log), ``case``, ``time`` (seconds), ``point``, ``features``,
    ``allowed``, ``action``, ``probability``, ``reward`` (positive minus negative outcomes of
    its case within the window after it) and ``closes`` (when that window ends)."""
    source: Path = field(default=Path())


def load_external(manifest_path: str | Path) -> ExternalLog:
    """Read and check a manifest and its log; every problem is reported at once."""
    manifest_path = Path(manifest_path)
    try:
        manifest = Manifest.model_validate(yaml.safe_load(manifest_path.read_text()) or {})
    except FileNotFoundError:
        raise ManifestError(f"no manifest at {manifest_path}") from None
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise ManifestError(f"{manifest_path}: " + "; ".join(problems)) from None
    log_path = manifest_path.parent / manifest.log
    rows = _read_rows(log_path)
    problems = _check(manifest, rows)
    if problems:
        shown = problems[:20] + (
            [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        )
        raise ManifestError(f"{log_path} does not fit {manifest_path.name}: " + "; ".join(shown))
    return ExternalLog(manifest, _points(manifest, rows), log_path)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise ManifestError(f"the manifest's log {path} does not exist")
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    rows = []
    for number, line in enumerate(path.read_text().splitlines()):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path} line {number + 1}: not JSON ({exc.msg})") from None
    return rows


def _seconds(value: Any) -> float | None:
    """A timestamp as seconds since the epoch (ISO text, a datetime or a number), or None."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _check(manifest: Manifest, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every problem of the log against its manifest, each naming its row or field."""
    if not rows:
        return ["the log has no rows"]
    problems: list[str] = []
    present = set().union(*(r.keys() for r in rows))
    named = {manifest.case_id, manifest.timestamp, manifest.activity}
    for point in manifest.decision_points:
        named |= {point.action, *point.features, *(c.field for c in point.when)}
        named |= {point.propensity} if point.propensity else set()
    problems += [
        f"the manifest names field {f!r}, which no row has" for f in sorted(named - present)
    ]
    activities = {r.get(manifest.activity) for r in rows}
    referenced = {p.activity for p in manifest.decision_points}
    referenced |= set(manifest.outcomes.positive) | set(manifest.outcomes.negative)
    if manifest.activities is not None:
        known = set(manifest.activities)
        problems += [
            f"the manifest names activity {a!r}, not in its activities"
            for a in sorted(referenced - known)
        ]
        problems += [
            f"row {i}: unknown activity {r.get(manifest.activity)!r}"
            for i, r in enumerate(rows)
            if r.get(manifest.activity) not in known
        ]
    else:
        problems += [
            f"the manifest names activity {a!r}, which no row has"
            for a in sorted(referenced - activities)
        ]
    last: float | None = None
    for i, row in enumerate(rows):
        for needed in (manifest.case_id, manifest.timestamp, manifest.activity):
            if row.get(needed) is None and needed in present:
                problems.append(f"row {i}: field {needed!r} is missing")
        time = _seconds(row.get(manifest.timestamp))
        if time is None and row.get(manifest.timestamp) is not None:
            problems.append(
                f"row {i}: {manifest.timestamp} {row.get(manifest.timestamp)!r} is not a time"
            )
        elif time is not None:
            if last is not None and time < last:
                problems.append(
                    f"row {i}: timestamps out of order ({manifest.timestamp} goes back)"
                )
            last = time
        for point in manifest.decision_points:
            if not _triggers(point, row, manifest):
                continue
            action = row.get(point.action)
            if action not in point.allowed_actions:
                problems.append(
                    f"row {i}: decision point {point.name!r}: action {action!r} is not one of "
                    f"{point.allowed_actions}"
                )
            if point.propensity:
                p = row.get(point.propensity)
                if not (isinstance(p, int | float) and 0 < p <= 1):
                    problems.append(
                        f"row {i}: {point.propensity} {p!r} is not a probability in (0, 1]"
                    )
    return problems


def _triggers(point: DecisionPointSpec, row: Mapping[str, Any], manifest: Manifest) -> bool:
    return row.get(manifest.activity) == point.activity and all(c.holds(row) for c in point.when)


def _points(manifest: Manifest, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The decision points, each with its reward: its case's positive minus negative outcome
    events strictly after it and within the window."""
    window = manifest.outcomes.window_days * 86_400
    good, bad = set(manifest.outcomes.positive), set(manifest.outcomes.negative)
    outcomes: dict[Any, list[tuple[float, int]]] = {}
    for row in rows:
        sign = (row[manifest.activity] in good) - (row[manifest.activity] in bad)
        if sign:
            outcomes.setdefault(row[manifest.case_id], []).append(
                (_seconds(row[manifest.timestamp]) or 0.0, sign)
            )
    points = []
    for i, row in enumerate(rows):
        for spec in manifest.decision_points:
            if not _triggers(spec, row, manifest):
                continue
            time = _seconds(row[manifest.timestamp]) or 0.0
            later = outcomes.get(row[manifest.case_id], [])
            reward = sum(sign for t, sign in later if time < t <= time + window)
            points.append(
                {
                    "row": i, "case": row[manifest.case_id], "time": time, "point": spec.name,
                    "features": {f: row.get(f) for f in spec.features},
                    "allowed": list(spec.allowed_actions), "action": row[spec.action],
                    "probability": float(row[spec.propensity]) if spec.propensity else 1.0,
                    "reward": float(reward), "closes": time + window,
                }
            )  # fmt: skip
    return points


# ---- replay ------------------------------------------------------------------------------------


class ChoicePolicy(Protocol):
    """A policy over named actions: at a decision point, one of the allowed actions."""

    def choose(self, point: str, features: Mapping[str, Any], allowed: Sequence[str]) -> str: ...


@dataclass(frozen=True)
class ExternalReplay:
    """Per decision point (in the log's order): the policy's action, agreement, violation."""

    actions: list[str | None]
    agrees: list[bool]
    violations: list[str | None]
    faults: list[str]

    @property
    def agreement(self) -> float:
        return float(np.mean(self.agrees)) if self.agrees else math.nan

    @property
    def n_violations(self) -> int:
        return sum(v is not None for v in self.violations)


def replay_external(
    log: ExternalLog, policy: Callable[[], ChoicePolicy], *, timeout_s: float = 60.0
) -> ExternalReplay:
    """Ask ``policy`` (built in its own process) at every decision point; it holds only the
    decision points strictly before (each reward once its window has closed)."""
    points = log.points
    times = [p["time"] for p in points]
    actions, agrees, violations = [], [], []
    with PolicyProcess(_serve_choices, (policy,), timeout_s) as child:
        for i, point in enumerate(points):
            before = bisect.bisect_left(times, point["time"])

            def closed(p: Mapping[str, Any], now: float = point["time"]) -> bool:
                return bool(p["closes"] <= now)

            payload = (point["point"], point["features"], point["allowed"])
            where = f"decision point {i} (row {point['row']}, {point['point']!r})"
            action, fault = child.ask(None, points, before, closed, payload, where)
            violation = fault
            if violation is None and action not in point["allowed"]:
                violation = (
                    f"row {point['row']}: action {action!r} is not one of {point['allowed']}"
                )
            actions.append(action)
            agrees.append(violation is None and action == point["action"])
            violations.append(violation)
        faults = child.faults()
    return ExternalReplay(actions, agrees, violations, faults)


def _serve_choices(conn: Connection, policy: Callable[[], ChoicePolicy]) -> None:
    isolate()
    try:
        chooser = policy()
    except Exception as exc:
        conn.send(("error", f"could not build the policy: {type(exc).__name__}: {exc}"))
        return
    faults: list[str] = []
    for message in requests(conn):
        if message[0] == "ask":
            _, _, new, closed, point, features, allowed = message
            absorb(new, closed)
            try:
                answer = chooser.choose(point, dict(features), list(allowed))
            except Exception as exc:
                faults.append(f"{point}: raised {type(exc).__name__}: {exc}")
                conn.send(("ok", (None, f"the policy raised {type(exc).__name__}: {exc}")))
                continue
            conn.send(("ok", (answer if isinstance(answer, str) else repr(answer), None)))
        elif message[0] == "faults":
            conn.send(("ok", faults))


def off_policy_external(
    log: ExternalLog, replayed: ExternalReplay, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Estimate]:
    """The estimators of the target's mean reward per decision point; the reward model reads
    the numeric features and the action (one column per allowed action)."""
    points = log.points
    reward = np.array([p["reward"] for p in points])
    logging_p = np.array([p["probability"] for p in points])
    target_p = np.array(replayed.agrees, float)
    names = sorted({a for p in points for a in p["allowed"]})
    keys = sorted({k for p in points for k, v in p["features"].items() if _number(v)})
    if len(points) < 20 or not names:
        return estimate(reward, logging_p, target_p, n_boot=n_boot, seed=seed)
    context = np.array(
        [[_float(p["features"].get(k)) for k in keys] for p in points], float
    ).reshape(len(points), len(keys))
    logged = np.array([[float(p["action"] == n) for n in names] for p in points])
    wanted = np.array([[float(a == n) for n in names] for a in replayed.actions])
    q_logged, q_target = cross_fitted_predictions(context, logged, reward, wanted, seed=seed)
    return estimate(reward, logging_p, target_p, q_logged, q_target, n_boot=n_boot, seed=seed)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _float(value: Any) -> float:
    """A feature as a number; NaN where it is not one (the reward model takes NaN)."""
    return float(value) if _number(value) else math.nan


def _compare(got: Any, op: str, value: Any) -> bool:
    tests: dict[str, Callable[[Any, Any], Any]] = {
        "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    }  # fmt: skip
    try:
        return bool(tests[op](got, value))
    except TypeError:
        return False
