"""Focus-group studies: K personas discuss a proposed change to the XP economy for T turns,
then each answers an exit question (stance; will they open the app, scan and give feedback
more, the same or less).

One study's result follows TinyTroupe's results shape (``transcript``, ``agents``, ``metrics``,
``config``) plus an ``analysis`` (:mod:`arena_rl.personas.analysis`). Every model call goes
through :class:`~arena_rl.llm.client.LLMClient`, so it is cached (a rerun with the same seed is
free and gives the identical transcript), rate-limited, retried and costed; a spending cap ends
the study cleanly with what was said so far. Transcript timestamps come from a simulated clock
(one minute a message), as in TinyTroupe's environments, so that a rerun is identical too.

Experiment mode runs several changes × R runs, in process or as Ray tasks, and compares them
(:func:`arena_rl.personas.analysis.compare`); one MLflow run records the whole invocation.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from arena_rl.llm.backends import BackendError
from arena_rl.llm.client import LLMClient, Usage
from arena_rl.llm.prices import Budget, BudgetExhausted
from arena_rl.llm.settings import LLMSettings
from arena_rl.personas import analysis
from arena_rl.personas.spec import Persona
from arena_rl.scenarios.gamification.economy import KNOBS

FACILITATOR = "facilitator"
CLOCK_START = datetime(2026, 1, 5, 10, 0)
"""The simulated clock's first tick (a Monday morning); each message adds a minute."""
CONTEXT = (
    "You are in a focus group about a facility-feedback app: people scan QR codes in "
    "buildings, give feedback and report issues to earn XP, levels and daily streak bonuses."
)
STATUSES = ("completed", "budget_reached")

# what is said comes first: SmolLM2-135M asked for the stance first mostly fills "say" with a
# word or two, asked to speak first it writes sentences and then states a stance in keeping.
# The length cap leaves room for the stance within the default max_tokens (about 4 characters
# a token); an answer cut off before its stance is an error, not a guess.
SAY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "say": {"type": "string", "minLength": 1, "maxLength": analysis.SAY_CHARS},
        "stance": {"type": "string", "enum": list(analysis.STANCES)},
    },
    "required": ["say", "stance"],
}
# the exit answer's point is its choices: they come first, the free-text reason last
_DIRECTION = {"type": "string", "enum": list(analysis.DIRECTIONS)}
EXIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "stance": {"type": "string", "enum": list(analysis.STANCES)},
        **dict.fromkeys(analysis.BEHAVIOURS, _DIRECTION),
        "reason": {"type": "string", "maxLength": analysis.REASON_CHARS},
    },
    "required": ["stance", *analysis.BEHAVIOURS, "reason"],
}


# ---- the change ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A proposed change: the words personas are shown, and the knob values when it was
    given as assignments (empty for free text)."""

    text: str
    knobs: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "knobs": dict(self.knobs)}


_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(.*?)\s*$")


def parse_change(raw: str) -> Change:
    """Free text ("scan XP 10 → 6, streak bonus doubled") as it is, or knob assignments
    (``scanXp=6,streakBonusPerDay=10``) rendered from the economy's defaults as
    "scanXp 10 → 6, streakBonusPerDay 5 → 10".

    Raises:
        ValueError: an empty change, or assignments naming an unknown knob, a knob twice, a
            value that is not a number or one the economy does not accept; the message names
            it.
    """
    text = raw.strip()
    if not text:
        raise ValueError("a change must not be empty")
    parts = [_ASSIGNMENT.match(part) for part in text.split(",")]
    if not any(parts):
        return Change(text)
    values: dict[str, object] = {}
    for part, match in zip(text.split(","), parts, strict=True):
        if match is None:
            raise ValueError(
                f"change {text!r}: {part.strip()!r} is not a knob assignment (give either "
                "free text or only NAME=VALUE pairs)"
            )
        name, value = match.groups()
        if name not in KNOBS.by_name:
            raise ValueError(
                f"change {text!r}: unknown knob {name!r}; knobs: {', '.join(KNOBS.keys)}"
            )
        if name in values:
            raise ValueError(f"change {text!r}: knob {name!r} is set twice")
        try:
            values[name] = float(value)
        except ValueError:
            raise ValueError(f"change {text!r}: {name}={value!r} is not a number") from None
    knobs = KNOBS.validate(values, where=f"change {text!r}")
    rendered = ", ".join(f"{k} {KNOBS.defaults[k]:g} → {v:g}" for k, v in knobs.items())
    return Change(rendered, knobs)


# ---- prompts and answers ------------------------------------------------------------------------


def _said(history: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> str:
    # quoted, not "Name: text": a small model continues a "Name:" script with names
    lines = [f'- {names.get(m["speaker"], m["speaker"])} said "{m["text"]}"' for m in history]
    return "\n".join(lines) or "Nobody has spoken yet."


def discussion_messages(
    persona: Persona,
    change: str,
    history: Sequence[Mapping[str, Any]],
    names: Mapping[str, str],
    turn: int,
    turns: int,
) -> list[dict[str, str]]:
    """One turn's request: the persona, the change and the last few messages (short: a small
    local model has a 2048-token context)."""
    user = (
        f"Proposed change to the XP rewards: {change}.\n"
        f"Discussion so far:\n{_said(history, names)}\n"
        f"Round {turn} of {turns}. Your turn, {persona.name.split()[0]}: in one or two "
        "sentences, tell the group what you think of the change, then give your stance."
    )
    return [
        {"role": "system", "content": f"{persona.system_prompt()}\n{CONTEXT}"},
        {"role": "user", "content": user},
    ]


def exit_messages(
    persona: Persona, change: str, history: Sequence[Mapping[str, Any]], names: Mapping[str, str]
) -> list[dict[str, str]]:
    """The exit question: stance, and up/same/down for opening the app, scans and feedback."""
    user = (
        f"Proposed change to the XP rewards: {change}.\n"
        f"End of the discussion:\n{_said(history, names)}\n"
        "Now answer for yourself. Are you for or against the change? Under it, would you "
        "open the app, scan and give feedback more (up), the same or less (down)? "
        "Give a one-line reason."
    )
    return [
        {"role": "system", "content": f"{persona.system_prompt()}\n{CONTEXT}"},
        {"role": "user", "content": user},
    ]


# ---- one study ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudySpec:
    """One study: who talks, about what, for how long, with which model settings.

    Args:
        personas: the participants, in speaking order.
        change: the proposed change.
        turns: rounds of discussion (each persona speaks once a round); at least 1.
        seed: the sampling seed of every request.
        llm: backend, sampling, cache, prices; ``budget_usd`` caps this study's spend.
        history: how many of the last messages a persona sees.
        persona_file: where the personas came from (recorded in the config).
    """

    personas: tuple[Persona, ...]
    change: Change
    turns: int
    seed: int
    llm: LLMSettings
    history: int = 4
    persona_file: str = "default"

    def __post_init__(self) -> None:
        if not self.personas:
            raise ValueError("a study needs at least one persona")
        if self.turns < 1:
            raise ValueError(f"turns must be at least 1, got {self.turns}")
        if self.history < 1:
            raise ValueError(f"history must be at least 1, got {self.history}")

    @property
    def requests(self) -> int:
        """Requests a full study makes: one a persona a turn, and the exit question."""
        return len(self.personas) * (self.turns + 1)

    def settings_for(self, persona: Persona) -> LLMSettings:
        """The study's settings, with the persona's own model where it names one."""
        return self.llm.with_model(persona.model)

    def worst_case_usd(self) -> float:
        """The most the study can cost, before any call (NaN when a model has no price)."""
        chars = max(map(len, map(json.dumps, self._longest_requests())))
        return sum(self.settings_for(p).estimate_usd(self.turns + 1, chars) for p in self.personas)

    def _longest_requests(self) -> list[list[Any]]:
        longest = max(self.personas, key=lambda p: len(p.system_prompt()))
        filler = [{"speaker": "x" * 40, "text": "x" * analysis.SAY_CHARS}] * self.history
        ask = discussion_messages(longest, self.change.text, filler, {}, self.turns, self.turns)
        leave = exit_messages(longest, self.change.text, filler, {})
        return [[ask, SAY_SCHEMA], [leave, EXIT_SCHEMA]]


class _Asker:
    """Sends one study's requests: a client per model, one budget over all, failures kept."""

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        cap = spec.llm.budget_usd
        self.budget = Budget(cap) if cap is not None else None
        self.clients: dict[str | None, LLMClient] = {}
        self.errors: list[dict[str, Any]] = []
        self.answers, self.answer_s = 0, 0.0

    def ask(
        self,
        persona: Persona,
        messages: list[dict[str, str]],
        schema: Mapping[str, Any],
        read: Callable[[str], tuple[Any, str | None]],
        turn: int,
    ) -> Any:
        """The parsed answer, or None with the failure recorded (the persona skips the turn).

        Raises:
            BudgetExhausted: the call could pass the cap; it was not made.
        """
        settings = self.spec.settings_for(persona)
        sampling = settings.sampling(temperature=persona.temperature, seed=self.spec.seed)
        started = time.perf_counter()
        try:
            if settings.model not in self.clients:
                self.clients[settings.model] = settings.client(self.budget)
            client = self.clients[settings.model]
            text = client.complete(messages, schema, sampling)
        except (BackendError, ValueError) as exc:  # ValueError: llama.cpp's too-long prompt
            self.errors.append({"turn": turn, "speaker": persona.id, "error": f"{exc!r}"})
            return None
        self.answers += 1
        self.answer_s += time.perf_counter() - started
        answer, problem = read(text)
        if problem is not None:
            self.errors.append({"turn": turn, "speaker": persona.id, "error": problem})
        return answer

    def usage(self) -> Usage:
        total = Usage()
        for client in self.clients.values():
            for name, value in vars(client.usage).items():
                setattr(total, name, getattr(total, name) + value)
        return total


def run_study(spec: StudySpec) -> dict[str, Any]:
    """Run one study to its end, or until the budget stops it; never raises for a failed
    call (it is counted in ``metrics.errors`` and listed in ``errors``)."""
    started = time.perf_counter()
    asker = _Asker(spec)
    names = {p.id: p.name for p in spec.personas}
    transcript = [_entry([], 0, FACILITATOR, "facilitator", f"Proposed change: {spec.change.text}")]
    exits: dict[str, dict[str, Any]] = {}
    status, reason = "completed", ""
    try:
        for turn in range(1, spec.turns + 1):
            for persona in spec.personas:
                history = [m for m in transcript if m["role"] == "participant"][-spec.history :]
                messages = discussion_messages(
                    persona, spec.change.text, history, names, turn, spec.turns
                )
                said = asker.ask(persona, messages, SAY_SCHEMA, analysis.read_say, turn)
                if said is not None:
                    transcript.append(
                        _entry(transcript, turn, persona.id, "participant", said["say"], said)
                    )
        history = [m for m in transcript if m["role"] == "participant"][-spec.history :]
        transcript.append(_entry(transcript, spec.turns + 1, FACILITATOR, "facilitator", EXIT))
        for persona in spec.personas:
            messages = exit_messages(persona, spec.change.text, history, names)
            answer = asker.ask(persona, messages, EXIT_SCHEMA, analysis.read_exit, spec.turns + 1)
            if answer is not None:
                exits[persona.id] = answer
                transcript.append(
                    _entry(transcript, spec.turns + 1, persona.id, "exit", answer["reason"], answer)
                )
    except BudgetExhausted as exc:
        status, reason = "budget_reached", str(exc)
    return {
        "status": status,
        "status_reason": reason,
        "transcript": transcript,
        "agents": [{"id": p.id, "name": p.name, "occupation": p.occupation} for p in spec.personas],
        "metrics": _metrics(asker, transcript, time.perf_counter() - started),
        "config": _config(spec),
        "analysis": analysis.analyse([p.id for p in spec.personas], transcript, exits),
        "errors": asker.errors,
        "budget": None
        if asker.budget is None
        else {
            "cap_usd": asker.budget.cap_usd,
            "spent_usd": asker.budget.spent_usd,
            "refused": asker.budget.refused,
        },
    }


EXIT = "The discussion is over: for or against, and will you use the app more or less?"


def _entry(
    transcript: Sequence[Any],
    turn: int,
    speaker: str,
    role: str,
    text: str,
    answer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    stamp = CLOCK_START + timedelta(minutes=len(transcript))
    entry = {"turn": turn, "speaker": speaker, "role": role, "text": text}
    entry["timestamp"] = stamp.isoformat()
    if answer is not None:
        entry["stance"] = answer["stance"]
    return entry


def _metrics(asker: _Asker, transcript: Sequence[Mapping[str, Any]], seconds: float) -> dict:
    usage = asker.usage()
    return {
        "duration_s": seconds,
        "messages": sum(m["role"] != "facilitator" for m in transcript),
        "tokens": usage.prompt_tokens + usage.completion_tokens,
        "calls": usage.calls,
        "cache_hits": usage.cache_hits,
        "errors": len(asker.errors),
        "mean_response_s": asker.answer_s / asker.answers if asker.answers else math.nan,
        "cost_usd": usage.cost_usd,
        "retries": usage.retries,
    }


def _config(spec: StudySpec) -> dict[str, Any]:
    return {
        "change": spec.change.as_dict(),
        "personas": {"file": spec.persona_file, "ids": [p.id for p in spec.personas]},
        "turns": spec.turns,
        "seed": spec.seed,
        "history": spec.history,
        "llm": spec.llm.model_dump(mode="json"),
    }


# ---- files --------------------------------------------------------------------------------------


def write_study(result: Mapping[str, Any], folder: Path) -> list[Path]:
    """``study.json`` (NaN written as null) and a readable ``transcript.md`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    study, transcript = folder / "study.json", folder / "transcript.md"
    study.write_text(json.dumps(_plain(result), indent=1, ensure_ascii=False) + "\n", "utf-8")
    transcript.write_text(analysis.transcript_markdown(result), encoding="utf-8")
    return [study, transcript]


def _plain(value: Any) -> Any:
    """JSON without NaN (not valid JSON): NaN becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
