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

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from arena_rl.llm.backends import BackendError
from arena_rl.llm.client import LLMClient, Usage
from arena_rl.llm.prices import Budget, BudgetExhausted
from arena_rl.llm.settings import LLMSettings
from arena_rl.personas import analysis
from arena_rl.personas.spec import Persona, PersonaFileError, load_personas
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
        """The study's settings, with the persona's own model where it names one (a local
        model is a file, not a name: there the persona's model is not used)."""
        if persona.model and self.llm.backend != "local":
            return self.llm.model_copy(update={"model": persona.model})
        return self.llm

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


# ---- several studies ----------------------------------------------------------------------------


def run_studies(
    specs: Sequence[StudySpec],
    workers: int,
    address: str | None = None,
    on_done: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every study's result, in the order of ``specs`` whatever order they finish in.

    Args:
        specs: the studies (several changes × runs).
        workers: 0 runs them one after another in this process; N runs up to N at once as
            Ray tasks of one CPU each (a study is seconds of work: one task per study).
        address: the Ray cluster to join (see :func:`arena_rl.tournament.runner.connect`).
        on_done: called with (index, result) as each finishes, e.g. to save it at once.
    """
    done = on_done or (lambda index, result: None)
    if workers == 0:
        results = []
        for index, spec in enumerate(specs):
            results.append(run_study(spec))
            done(index, results[-1])
        return results
    import ray

    from arena_rl.tournament.runner import connect, disconnect

    ours = not ray.is_initialized()
    connect(address, workers)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_study)
        queue = list(enumerate(specs))
        pending: dict[Any, int] = {}
        found: dict[int, dict[str, Any]] = {}
        while queue or pending:
            while queue and len(pending) < workers:  # at most `workers` studies at once
                index, spec = queue.pop(0)
                pending[task.remote(spec)] = index
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                found[index] = ray.get(ref)
                done(index, found[index])
        return [found[i] for i in range(len(specs))]
    finally:
        if ours:
            disconnect()


# ---- MLflow -------------------------------------------------------------------------------------


def log_studies(
    uri: str | None,
    experiment: str,
    params: Mapping[str, Any],
    results: Sequence[Mapping],
    out: Path,
) -> str:
    """One MLflow run for the invocation, from the driver: params, the studies' metrics
    summed (``study/...``), each change's comparison row (``change<i>/...``) and every file
    under ``out`` as artifacts. Returns the run id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    # the tournament's own experiment set-up, so studies land beside tournaments' runs
    from arena_rl.tournament.tracking import (
        _artifact_root,
        _experiment_id,
        default_tracking_uri,
        git_commit,
    )

    uri = uri or default_tracking_uri()
    client = MlflowClient(uri)
    run = client.create_run(
        _experiment_id(client, experiment, _artifact_root(uri)),
        run_name=f"study: {' | '.join(params['changes'])[:200]}",
        tags={"arena_rl.kind": "study", "git_commit": git_commit()},
    )
    run_id: str = run.info.run_id
    stamp = int(time.time() * 1000)
    values = {f"study/{k}": v for k, v in _summed(results).items()}
    for i, row in enumerate(analysis.compare(results), start=1):
        values |= {f"change{i}/{k}": v for k, v in row.items() if k != "change"}
    metrics = [Metric(k, float(v), stamp, 0) for k, v in values.items() if math.isfinite(v)]
    flat = {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in params.items()}
    try:
        client.log_batch(
            run_id, metrics=metrics, params=[Param(k, str(v)[:6000]) for k, v in flat.items()]
        )
        client.log_artifacts(run_id, str(out))
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def _summed(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The studies' metrics added up (mean_response_s averaged), with counts of studies."""
    total: dict[str, float] = {"studies": len(results)}
    total["budget_reached"] = sum(r["status"] == "budget_reached" for r in results)
    for r in results:
        for k, v in r["metrics"].items():
            total[k] = total.get(k, 0.0) + v
    total["mean_response_s"] = _mean_finite(r["metrics"]["mean_response_s"] for r in results)
    return total


def _mean_finite(values: Iterable[float]) -> float:
    known = [v for v in values if math.isfinite(v)]
    return sum(known) / len(known) if known else math.nan


# ---- the command line ---------------------------------------------------------------------------

PROG = "python -m arena_rl personas study"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Personas discuss proposed XP economy changes; several changes × runs "
        "are compared side by side.",
    )
    p.add_argument(
        "--change",
        action="append",
        required=True,
        metavar="CHANGE",
        help="free text, or NAME=VALUE,... knob assignments; repeat to compare",
    )
    p.add_argument("--personas", default="default", help="persona file (JSON) or its name")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--k", type=int, default=4, help="the file's first K personas")
    who.add_argument("--ids", help="comma-separated persona ids, in speaking order")
    p.add_argument("--turns", type=int, default=3, help="rounds of discussion")
    p.add_argument("--runs", type=int, default=1, help="runs per change (seeds SEED..SEED+R-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--history", type=int, default=4, help="last messages a persona sees")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Ray workers; 0 runs in-process (default: 0 for one study, else cores)",
    )
    p.add_argument("--address", default=None, help="Ray cluster to join (default: local)")
    p.add_argument("--backend", choices=("local", "openai", "anthropic"), default="local")
    p.add_argument("--model", help="model name (openai/anthropic)")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--prices", help="price table file (default: the shipped one)")
    p.add_argument(
        "--budget-usd",
        type=float,
        default=None,
        help="the most the whole invocation may spend (split evenly over studies)",
    )
    p.add_argument("--cache-path", help="answer cache file (default: the per-user one)")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument(
        "--llm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other LLM setting, e.g. max_calls_per_minute=30 (repeatable)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: studies/<time>)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: ./mlflow.db)")
    p.add_argument("--experiment", default="personas-study", help="MLflow experiment name")
    p.add_argument("--no-mlflow", action="store_true")
    return p  # fmt: skip


def _settings(args: argparse.Namespace) -> LLMSettings:
    chosen = {
        "backend": args.backend,
        "model": args.model,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "prices": args.prices,
        "budget_usd": args.budget_usd,
        "cache_path": args.cache_path,
        "cache": False if args.no_cache else None,
    }
    data = {k: v for k, v in chosen.items() if v is not None}
    for item in args.llm:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--llm {item!r}: expected KEY=VALUE")
        data[key.strip()] = yaml.safe_load(value)
    return LLMSettings.parse(data, "llm")


def build_specs(args: argparse.Namespace) -> list[StudySpec]:
    """Every study the arguments ask for (change-major, then run), checked before any call.

    Raises:
        ValueError, PersonaFileError: the first bad input, named.
    """
    if args.runs < 1:
        raise ValueError(f"--runs must be at least 1, got {args.runs}")
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be 0 or more, got {args.workers}")
    if args.budget_usd is not None and not args.budget_usd > 0:
        raise ValueError(f"--budget-usd must be above 0, got {args.budget_usd:g}")
    changes = [parse_change(c) for c in args.change]
    personas = load_personas(args.personas)
    if args.ids:
        by_id = {p.id: p for p in personas}
        wanted = [i.strip() for i in args.ids.split(",") if i.strip()]
        unknown = [i for i in wanted if i not in by_id]
        if unknown:
            raise ValueError(f"--ids: no persona {', '.join(unknown)} in {args.personas}")
        chosen = [by_id[i] for i in wanted]
    elif not 1 <= args.k <= len(personas):
        raise ValueError(
            f"--k must be between 1 and {len(personas)} ({args.personas} has "
            f"{len(personas)} personas), got {args.k}"
        )
    else:
        chosen = personas[: args.k]
    settings = _settings(args)
    jobs = len(changes) * args.runs
    if settings.budget_usd is not None:
        settings = settings.model_copy(update={"budget_usd": settings.budget_usd / jobs})
    return [
        StudySpec(
            tuple(chosen), c, args.turns, args.seed + r, settings, args.history, args.personas
        )
        for c in changes
        for r in range(args.runs)
    ]


def main(argv: list[str]) -> int:
    """Run the studies; 0 when they ran (a budget that ended some is not a failure), 2 for
    bad input (nothing was called), 1 when the backend cannot answer at all."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        specs = build_specs(args)
        worst = sum(s.worst_case_usd() for s in specs)
        if specs[0].llm.budget_usd is not None and math.isnan(worst):
            raise ValueError(
                "--budget-usd needs a priced model; this one is not in the price table"
            )
    except (ValueError, PersonaFileError, BackendError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    requests = sum(s.requests for s in specs)
    cost = "unknown (the model has no price)" if math.isnan(worst) else f"${worst:.4f}"
    cap = f"; budget ${args.budget_usd:g}" if args.budget_usd else ""
    print(f"{len(specs)} studies, {requests} requests at most: worst case {cost}{cap}")
    out = args.out or Path("studies") / time.strftime("%Y%m%d-%H%M%S")
    folders = [out] if len(specs) == 1 else [
        out / f"change{i // args.runs + 1}-seed{s.seed}" for i, s in enumerate(specs)
    ]  # fmt: skip

    def save(index: int, result: dict[str, Any]) -> None:
        write_study(result, folders[index])
        m = result["metrics"]
        print(f"  {folders[index]}: {result['status']}, {m['messages']} messages, "
              f"{m['calls']} calls, {m['cache_hits']} cached, {m['errors']} errors")  # fmt: skip

    try:  # once, here: a backend that cannot answer fails before Ray starts
        specs[0].llm.make_backend().check()
    except BackendError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    workers = args.workers if args.workers is not None else 0 if len(specs) == 1 else min(
        len(specs), os.cpu_count() or 1
    )  # fmt: skip
    results = run_studies(specs, workers, args.address, save)
    rows = analysis.compare(results)
    analysis.write_comparison(rows, out)
    print(analysis.comparison_markdown(rows), end="")
    print(f"{time.perf_counter() - started:.1f} s; files in {out}")
    if not args.no_mlflow:
        params = {
            "changes": [s.change.text for s in specs[:: args.runs]],
            "k": len(specs[0].personas),
            "turns": args.turns,
            "runs": args.runs,
            "seed": args.seed,
            "personas": [p.id for p in specs[0].personas],
            "persona_file": args.personas,
            "backend": specs[0].llm.backend,
            "model": specs[0].llm.model or specs[0].llm.model_path or "default",
            "temperature": specs[0].llm.temperature,
            "max_tokens": specs[0].llm.max_tokens,
            "budget_usd": args.budget_usd,
        }
        run_id = log_studies(args.tracking_uri, args.experiment, params, results, out)
        print(f"MLflow run {run_id}")
    return 0
