"""What an LLM agent asks the model to answer, and how an answer becomes a decision.

Three answer formats, all JSON with a schema the backend enforces where it can:

- ``moves`` (the default): ``{"move": one of the candidates, "reasoning"}``. The agent builds a
  few candidate moves with the effects it observed after each, and the model picks one: the
  question a 135M model can answer, in a handful of tokens.
- ``directions`` (for small models): ``{"changes": {key: "raise"|"keep"|"lower"}, "reasoning"}``.
  A 135M model fills a per-key enum far better than it picks numbers; the agent turns each
  direction into a bounded step.
- ``values`` (for large models): ``{"changes": {key: new value}, "reasoning"}``, the live SDK's
  LLM example's shape; the agent bounds each move by the delta limit.

Parsing is forgiving where the intent is unambiguous (code fences, prose around the JSON,
truncated JSON, key case and spelling, direction synonyms, numbers as strings) and strict
otherwise: an unknown key, a negative or non-finite value or an unknown direction is dropped and
said why. An answer with nothing usable is "no change", with the reason recorded. Key spellings
are read against the knob names of the scenario being played (passed in), so nothing here
knows one scenario's keys.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("moves", "directions", "values")
DIRECTIONS = ("raise", "keep", "lower")
_SYNONYMS = {
    "raise": "raise", "increase": "raise", "up": "raise", "higher": "raise", "more": "raise",
    "+": "raise", "keep": "keep", "hold": "keep", "same": "keep", "none": "keep",
    "unchanged": "keep", "no change": "keep", "=": "keep", "lower": "lower",
    "decrease": "lower", "down": "lower", "reduce": "lower", "less": "lower", "cut": "lower",
    "-": "lower",
}  # fmt: skip
REASONING_CHARS = 120
MOVE_REASONING_CHARS = 40
"""Shorter for a move: completion tokens are most of a local answer's time after the prompt,
and a small model that runs on fills the cap with repeated digits ("1.1.1.1..."), a token
each. The move itself comes first in the answer, so the cap never changes which is chosen."""


def answer_schema(answer: str, keys: Sequence[str]) -> dict[str, Any]:
    """JSON schema of the answer: the grammar a local model is held to. For ``moves``,
    ``keys`` are the candidate moves' names."""
    if answer == "moves":
        return {
            "type": "object",
            "properties": {
                "move": {"type": "string", "enum": list(keys)},
                "reasoning": {"type": "string", "maxLength": MOVE_REASONING_CHARS},
            },
            "required": ["move", "reasoning"],
        }
    if answer == "directions":
        change: dict[str, Any] = {"type": "string", "enum": list(DIRECTIONS)}
        changes = {"type": "object", "properties": dict.fromkeys(keys, change), "required": keys}
    else:
        number = {"type": "number", "minimum": 0}
        changes = {"type": "object", "properties": dict.fromkeys(keys, number)}
    return {
        "type": "object",
        "properties": {
            "changes": changes,
            "reasoning": {"type": "string", "maxLength": REASONING_CHARS},
        },
        "required": ["changes", "reasoning"],
    }


@dataclass(frozen=True)
class Answer:
    """A parsed answer: per key a direction or a target value, and what had to be fixed."""

    directions: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    reasoning: str = ""
    repairs: tuple[str, ...] = ()
    """What was fixed or dropped to use the answer (empty: it was clean)."""
    error: str | None = None
    """Why nothing in the answer was usable (then: no change)."""
    move: str | None = None
    """The candidate move chosen (``moves`` format)."""

    @property
    def usable(self) -> bool:
        return self.error is None


def key_aliases(known: Sequence[str]) -> dict[str, str]:
    """Spelling-free form (lower case, letters and digits only) -> knob name: how "scan_xp"
    or "SCANXP" is read as scanXp."""
    return {_plain(k): k for k in known}


def _plain(raw: str) -> str:
    return re.sub(r"[^a-z0-9]", "", raw.lower())


def parse_answer(text: str, keys: Sequence[str], known: Sequence[str] | None = None) -> Answer:
    """Read a model's answer; never raises. ``keys`` are those the agent may change; ``known``
    every knob of the scenario (default: ``keys``), so a knob the agent may not change is
    recognised and dropped as locked rather than unknown."""
    aliases = key_aliases(known if known is not None else keys)
    repairs: list[str] = []
    data = _json_object(text, repairs)
    if data is None:
        return Answer(error=f"no JSON object in the answer: {_clip(text, 80)!r}")
    changes = data.get("changes")
    if changes is None:
        for alias in ("economyOverrides", "economy_overrides", "overrides"):
            if isinstance(data.get(alias), Mapping):
                changes = data[alias]
                repairs.append(f"read changes from {alias!r}")
                break
    if changes is None and any(_plain(k) in aliases for k in data):
        changes = {k: v for k, v in data.items() if k != "reasoning"}
        repairs.append("read changes from the top level")
    reasoning = data.get("reasoning")
    reasoning = _clip(str(reasoning).strip(), REASONING_CHARS) if reasoning is not None else ""
    if changes is None:
        return Answer(reasoning=reasoning, error="the answer has no 'changes'")
    if not isinstance(changes, Mapping):
        return Answer(reasoning=reasoning, error=f"'changes' is not an object: {changes!r}")
    directions: dict[str, str] = {}
    values: dict[str, float] = {}
    for raw_key, raw in changes.items():
        key = aliases.get(_plain(str(raw_key)))
        if key is None or key not in keys:
            repairs.append(f"dropped unknown or locked key {raw_key!r}")
            continue
        if key != raw_key:
            repairs.append(f"read {raw_key!r} as {key}")
        number = _number(raw)
        if number is not None:
            if math.isfinite(number) and number >= 0:
                values[key] = number
            else:
                repairs.append(f"dropped {key}={raw!r}: values must be finite and >= 0")
        elif isinstance(raw, str) and raw.strip().lower() in _SYNONYMS:
            direction = _SYNONYMS[raw.strip().lower()]
            if direction != "keep":
                directions[key] = direction
        else:
            repairs.append(f"dropped {key}={raw!r}: not a direction or a number")
    return Answer(directions, values, reasoning, tuple(repairs))


def parse_move(text: str, moves: Sequence[str]) -> Answer:
    """Read a ``moves`` answer; never raises. A move named by a synonym ("decrease" for
    "lower"), spelt with spaces for underscores ("trim cost" for trim_cost) or found as a bare
    word outside JSON is repaired; anything else is unusable."""
    repairs: list[str] = []
    data = _json_object(text, repairs)
    if data is None:
        data = {"move": text}
        repairs.append("read the move from plain text")
    reasoning = data.get("reasoning")
    reasoning = _clip(str(reasoning).strip(), REASONING_CHARS) if reasoning is not None else ""
    raw = next((data[k] for k in ("move", "choice", "action") if k in data), None)
    if raw is None:
        return Answer(reasoning=reasoning, error="the answer has no 'move'")
    said = str(raw).strip().lower()
    if said in moves:
        return Answer(move=said, reasoning=reasoning, repairs=tuple(repairs))
    joined = re.sub(r"[\s-]+", "_", said)
    if joined in moves:
        repairs.append(f"read {_clip(str(raw), 40)!r} as {joined}")
        return Answer(move=joined, reasoning=reasoning, repairs=tuple(repairs))
    named = {_SYNONYMS.get(word, word) for word in re.findall(r"[a-z_]+", said)} & set(moves)
    if len(named) == 1:
        move = named.pop()
        repairs.append(f"read {_clip(str(raw), 40)!r} as {move}")
        return Answer(move=move, reasoning=reasoning, repairs=tuple(repairs))
    return Answer(reasoning=reasoning, error=f"no single known move in {_clip(str(raw), 60)!r}")


def _json_object(text: str, repairs: list[str]) -> dict[str, Any] | None:
    """The first JSON object in ``text``: fenced, wrapped in prose or cut off by a token limit."""
    start = text.find("{")
    if start < 0:
        return None
    body = text[start:]
    try:
        data, _ = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError:
        data = None
        completed = _closed(body)
        if completed is not None:
            try:
                data = json.loads(completed)
                repairs.append("completed truncated JSON")
            except json.JSONDecodeError:
                data = None
    return data if isinstance(data, dict) else None


def _closed(body: str) -> str | None:
    """Close the strings, objects and arrays a truncated JSON text left open; drop a dangling
    key or separator at the cut."""
    stack: list[str] = []
    in_string = escaped = False
    for char in body:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]":
            if not stack:
                return None
            stack.pop()
    if not stack and not in_string:
        return None  # not truncated: malformed some other way
    text = body + ('"' if in_string else "")
    while True:  # peel a trailing separator or value-less key until the text ends cleanly
        peeled = _DANGLING.sub(lambda m: "{" if m.group(0).startswith("{") else "", text)
        if peeled == text:
            return text + "".join(reversed(stack))
        text = peeled


_DANGLING = re.compile(r'[,:]\s*$|,\s*"[^"]*"\s*$|\{\s*"[^"]*"\s*$')


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            return None
    return None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
