"""The live API's JSON shapes for configs, ``act()`` results and decision-log entries.

Pure functions from guardrail results to camelCase dicts, so the shapes are in one place and
testable without a server. ``iso`` maps simulated days to an ISO-8601 timestamp.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from arena_rl.core.guardrails import GuardrailResult

Iso = Callable[..., str]


def json_safe(value: Any) -> Any:
    """A copy JSON can encode strictly: NaN and ±inf become null (computed values, e.g. a
    metric's spread). Agent input is already bounded and finite (``boundary``), so the recursion
    stays shallow."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def encode(value: Any) -> bytes:
    """``json_safe(value)`` as compact UTF-8 JSON: byte for byte what a JSON response sends, so
    a value that does not change (a decision, a day's signals) is encoded once, not per read."""
    return json.dumps(
        json_safe(value), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode("utf-8")


def wire_config(config: Mapping[str, float], integer: frozenset[str]) -> dict[str, float | int]:
    """Integer knobs (caps) go out as integers, the others as numbers (the live platform's
    JSON)."""
    return {k: int(v) if k in integer else v for k, v in config.items()}


def coerce(value: object) -> object:
    """JSON integers too large for a float become inf, which the guardrails reject cleanly."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return math.inf
    return value


def act_response(
    result: GuardrailResult, requested: Mapping[str, object], iso: Iso, integer: frozenset[str]
) -> dict[str, Any]:
    """The ``PUT /variant/config`` data: ``rejectionReason`` is the CODE, the text is in
    ``rejectionDetail`` (as the live platform and its demo answer); ``clampedDeltas`` entries
    carry ``clamped: true`` plus previous/requested/applied/deltaPercent/maxDelta/baseline."""
    code, allowed = result.rejection_code, result.next_allowed_update
    response: dict[str, Any] = {
        "accepted": result.accepted,
        "appliedConfig": None,
        "clampedDeltas": None,
        "rejectionReason": None if code is None else str(code),
        "rejectionDetail": None if result.accepted else result.detail,
        "nextAllowedUpdate": None if allowed is None else iso(allowed, round_up=True),
        "decisionLogId": result.decision_id,
    }
    if result.accepted and result.applied_config is not None:
        applied = {k: result.applied_config[k] for k in requested}
        response["appliedConfig"] = wire_config(applied, integer)
        deltas = {k: d.to_api() for k, d in result.clamped_deltas.items()}
        response["clampedDeltas"] = deltas or None
    return response


def decision_entry(
    result: GuardrailResult,
    *,
    variant_id: str,
    requested: Mapping[str, object],
    reasoning: str,
    now: float,
    iso: Iso,
    integer: frozenset[str],
    agent_signals: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A decision-log entry. Unlike the act response, ``rejectionReason`` here is the human
    text and ``rejectionCode`` the CODE (the live platform's inversion, kept on purpose)."""
    entry: dict[str, Any] = {
        "id": result.decision_id,
        "timestamp": iso(now),
        "variantId": variant_id,
        "accepted": result.accepted,
        "economyOverrides": dict(requested),
        "reasoning": reasoning,
        "simDay": now,
    }
    if agent_signals:
        entry["signals"] = dict(agent_signals)
    if result.accepted:
        response = act_response(result, requested, iso, integer)
        entry["appliedConfig"] = response["appliedConfig"]
        entry["clampedDeltas"] = response["clampedDeltas"]
    else:
        entry["rejectionReason"] = result.detail
        entry["rejectionCode"] = str(result.rejection_code)
    return entry
