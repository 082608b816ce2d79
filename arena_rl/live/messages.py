"""The live page's stream format: one JSON message per thing that happened, for every source.

A running tournament set, the served experiment and a replayed event log all speak it, so the
page draws them alike. A message is a flat JSON object with a ``type``:

- ``run``: what is being watched (``source``: tournament, served or replay; ``agents``,
  ``arms`` with control first, ``control``, ``metrics``, ``knobs``, ``tournaments``, ``days``).
- ``day``: one arm's day in one tournament: ``value`` (the objective earned that day per
  enrolled user), ``enrolled``, ``active``, ``metrics`` (each at day's end), ``economy``.
- ``decision``: an agent decided: ``agent``, ``action`` (the knobs it asked for, or null for a
  hold), ``reasoning`` (its words; an LLM's rationale), ``probability``, ``tokens`` (what the
  decision cost a language-model agent; null for others).
- ``guardrail``: the guardrails' answer to an update: ``outcome`` (applied, clamped, rejected),
  ``code`` (the rejection code), ``detail``, and the ``reasoning`` that came with the update.
- ``breaker``: a circuit breaker ``tripped`` or ``recovered`` (``state``), with ``detail``.
- ``persona``: an LLM persona user's day (runs with persona users): ``user``, ``persona``,
  ``source`` (model or twin), ``opened``, ``scans``, ``feedback``, ``reports``, ``quit``,
  ``xp``, ``streak``, ``reason``, ``tokens``, ``fault``.
- ``tournament``: one finished: ``lift``, ``regret``, ``usage`` (e.g. an LLM's calls and tokens).
- ``progress``: ``done`` of ``total`` tournaments, ``failed``, ``elapsed_s``, ``eta_s``.
- ``leaderboard``: ``rows`` of agent, tournaments, mean lift with its 95% CI, mean regret.
- ``dropped``: ``count`` messages this page never got (a slow page or a full buffer).
- ``end``: the run is over (``status``; ``mlflow``: the MLflow run, when there is one).

The kinds a tournament's event log also holds (``day``, ``decision``, ``guardrail``,
``breaker``, ``persona``) are built here from the core's events while it runs, and from the
log's tables when it is replayed, so the two give the same bytes (:func:`encode`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

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
)
from arena_rl.eventlog import schema as s
from arena_rl.eventlog.recorder import OUTCOMES, json_text, persona_detail, update_outcome

Message = dict[str, Any]

IN_THE_LOG = ("day", "decision", "guardrail", "breaker")
"""The message types a tournament's event log holds (a replay gives exactly these)."""

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def encode(message: Message) -> str:
    """The message as compact JSON; a number that is not finite becomes null (JSON has no
    NaN, and the page's parser would refuse it)."""
    return _ENCODER.encode(_finite(message))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def run_message(
    source: str,
    title: str,
    agents: Sequence[str],
    arms: Sequence[str],
    metrics: Sequence[str],
    knobs: Sequence[str],
    tournaments: int,
    days: int | None,
) -> Message:
    """What is being watched: the first message of every stream (``arms``: control first;
    ``days``: the horizon, None for a served experiment that runs until it is stopped)."""
    return {
        "type": "run",
        "source": source,
        "title": title,
        "agents": list(agents),
        "arms": list(arms),
        "control": arms[0],
        "metrics": list(metrics),
        "knobs": list(knobs),
        "tournaments": tournaments,
        "days": days,
    }


# ---- from the core's events (a live run) ------------------------------------------------


def from_events(
    events: Sequence[Event], tournament: int, names: Mapping[str, str]
) -> list[Message]:
    """One day's batch of core events as messages; arms are shown by ``names`` (arm -> the
    agent that plays it; an arm not in it keeps its own name, like control)."""
    out: list[Message] = []
    for e in events:
        if isinstance(e, DecisionMade):
            action = None if e.action is None else json.loads(json_text(dict(e.action.overrides)))
            reasoning = e.reasoning
            out.append(
                _decision(
                    tournament,
                    e.day,
                    names.get(e.arm, e.arm),
                    e.agent,
                    action,
                    reasoning,
                    e.probability,
                    e.tokens,
                )
            )
        elif isinstance(e, UpdateResolved):
            kind, code, detail = update_outcome(e.entry)
            arm, day = names.get(e.arm, e.arm), int(e.entry.sim_day)
            out.append(_guardrail(tournament, day, arm, kind, code, detail, e.entry.reasoning))
        elif isinstance(e, BreakerTripped | BreakerRecovered):
            kind = s.BREAKER_TRIPPED if isinstance(e, BreakerTripped) else s.BREAKER_RECOVERED
            arm = names.get(e.arm, e.arm)
            out.append(_breaker(tournament, int(e.entry.sim_day), arm, kind, e.entry.detail))
        elif isinstance(e, PersonaActed):
            detail = json.loads(persona_detail(e))  # as the log keeps it
            out.append(_persona(tournament, e.day, names.get(e.arm, e.arm), e.source, e.xp, detail))
        elif isinstance(e, DayClosed):
            for i, arm in enumerate(e.arms):
                summary = json.loads(json_text(e.arm_summary(i)))  # as the log keeps it
                out.append(_day(tournament, e.day, names.get(arm, arm), float(e.value[i]), summary))
    return out


# ---- from an event log (a replay) -------------------------------------------------------


def from_log(tables: Mapping[str, pa.Table]) -> Iterator[Message]:
    """A tournament's event log (:mod:`arena_rl.eventlog.schema`'s tables) as the messages its
    live run sent, in the same order."""
    decisions = tables["decisions"].to_pylist()
    tournament = int(decisions[0]["tournament"]) if decisions else _tournament(tables)
    events = tables["events"]
    agent_level = pc.is_in(events["ocel_type"].cast(pa.string()), pa.array(s.AGENT_EVENTS))
    rows = events.filter(agent_level).sort_by("ocel_id").to_pylist()
    next_decision = iter(decisions)
    reasoning = ""
    for row in rows:
        kind, day, arm = row["ocel_type"], int(row["day"]), row["arm"]
        if kind == s.DECISION_MADE:
            d = next(next_decision)
            action = None if d["action"] is None else json.loads(d["action"])
            reasoning, tokens = d["reasoning"] or "", d.get("tokens")
            yield _decision(
                tournament, day, arm, d["agent"], action, reasoning, d["probability"], tokens
            )
        elif kind == s.UPDATE_REQUESTED:  # its answer comes next
            reasoning = json.loads(row["detail"])["reasoning"]
        elif kind in OUTCOMES:
            yield _guardrail(tournament, day, arm, kind, row["code"], row["detail"], reasoning)
        elif kind in (s.BREAKER_TRIPPED, s.BREAKER_RECOVERED):
            yield _breaker(tournament, day, arm, kind, row["detail"])
        elif kind == s.DAY_CLOSED:
            yield _day(tournament, day, arm, row["value"], json.loads(row["detail"]))
        elif kind == s.PERSONA_ACTED:
            yield _persona(
                tournament, day, arm, row["code"], row["value"], json.loads(row["detail"])
            )


def _tournament(tables: Mapping[str, pa.Table]) -> int:
    """The tournament's index, from its root object (``tournament/<index>``)."""
    ids = tables["objects"]["ocel_id"].to_pylist()
    root = next(i for i in ids if i.startswith(f"{s.TOURNAMENT}/"))
    return int(root.split("/", 1)[1])


# ---- the messages themselves ------------------------------------------------------------


def _persona(
    tournament: int, day: int, arm: str, source: str, xp: float, detail: Mapping[str, Any]
) -> Message:
    return {"type": "persona", "tournament": tournament, "day": day, "arm": arm,
            "source": source, "xp": xp, **detail}  # fmt: skip


def _decision(
    tournament: int,
    day: int,
    arm: str,
    agent: str,
    action: Any,
    reasoning: str,
    probability: float,
    tokens: float | None,
) -> Message:
    return {
        "type": "decision",
        "tournament": tournament,
        "day": day,
        "arm": arm,
        "agent": agent,
        "action": action,
        "reasoning": reasoning,
        "probability": probability,
        "tokens": tokens,
    }


def _guardrail(
    tournament: int,
    day: int,
    arm: str,
    kind: str,
    code: str | None,
    detail: str | None,
    reasoning: str,
) -> Message:
    return {
        "type": "guardrail",
        "tournament": tournament,
        "day": day,
        "arm": arm,
        "outcome": OUTCOMES[kind],
        "code": code,
        "detail": detail,
        "reasoning": reasoning,
    }


def _breaker(tournament: int, day: int, arm: str, kind: str, detail: str | None) -> Message:
    state = "tripped" if kind == s.BREAKER_TRIPPED else "recovered"
    return {
        "type": "breaker",
        "tournament": tournament,
        "day": day,
        "arm": arm,
        "state": state,
        "detail": detail,
    }


def _day(tournament: int, day: int, arm: str, value: float, summary: Mapping[str, Any]) -> Message:
    return {
        "type": "day",
        "tournament": tournament,
        "day": day,
        "arm": arm,
        "value": value,
        **summary,
    }
