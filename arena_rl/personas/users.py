"""LLM persona users: a few described people living inside an experiment, beside the population.

Each arm gets the same ``per_arm`` persona users. Every simulated day each one is shown its
persona, its own last days and what the app shows it (XP per action, caps, its streak and XP
balance) and answers in structured JSON what it does: opens the app or not, scans, feedback,
reports, quits, with a one-line reason. The app awards XP by its rules
(:func:`~arena_rl.scenarios.gamification.economy.xp_for_day`). When the model fails (an error,
an answer that is not the JSON asked for, or the budget reached) the persona's behavioural-model
twin decides that day instead, and the fault is counted; a persona whose calls keep failing
stays with its twin. Their days are :class:`~arena_rl.core.events.PersonaActed` events and
their own per-arm totals, never part of the population's statistics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arena_rl.core.events import PersonaActed
from arena_rl.core.scenario import Scenario
from arena_rl.llm import BackendError, LLMClient, Usage
from arena_rl.llm.prices import Budget, BudgetExhausted
from arena_rl.llm.settings import LLMSettings
from arena_rl.personas.spec import Persona, load_personas, resolve_persona_file
from arena_rl.personas.twin import base_preset, twin_traits
from arena_rl.scenarios.gamification.economy import xp_for_day
from arena_rl.scenarios.gamification.specs import PopulationSpec, population_from_dict

PERSONA_STREAM = 0x9E75_0A5E
"""Mixed into the experiment's seed for persona users' own random streams (the twins' draws
and the models' sampling seeds), so adding persona users changes no other draw."""

MAX_COUNT = 30
"""The most scans or feedback a persona may report for a day (the app's caps are lower)."""

CHOICES = ("use the app", "skip today", "quit for good")
"""What a persona user does with the app on a day: one choice (a tiny model asked two yes/no
questions, open and quit, answers yes to both far too often)."""

DAY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "maxLength": 100},
        "today": {"enum": list(CHOICES)},
        "scans": {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
        "feedback": {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
        "reports": {"type": "integer", "minimum": 0, "maximum": 5},
    },
    "required": ["reason", "today", "scans", "feedback", "reports"],
    "additionalProperties": False,
}
"""What a persona user answers for a day (forced by the local backend's grammar)."""

DAY_PROMPT_CHARS = 900
"""An upper bound on the day's prompt without its history (what the app shows, the question)."""
HISTORY_CHARS_PER_DAY = 80
"""An upper bound on one past day's line in the prompt."""

SUMMARY_KEYS = ("users", "days", "model_days", "twin_days", "faults", "opened_days", "scans",
                "feedback", "reports", "quits", "xp")  # fmt: skip
"""Per-arm totals of persona users' days (:meth:`PersonaUsers.summary`)."""


class PersonaUsersConfig(BaseModel):
    """``persona_users:`` in a tournament's or a served experiment's config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = "default"
    """A persona file: a name in ``conf/personas/`` or a path."""
    per_arm: int = Field(default=5, ge=1, le=100)
    ids: tuple[str, ...] | None = None
    """Which personas, in order (users cycle through them); None: the file's, in order."""
    base: str = "default"
    """The population preset the personas' twins start from."""
    history_days: int = Field(default=5, ge=0, le=28)
    """Past days each persona is shown."""
    max_failures: int = Field(default=3, ge=1)
    """Failed days in a row after which a persona stays with its twin."""
    llm: LLMSettings = LLMSettings()

    @classmethod
    def parse(cls, data: Mapping[str, Any], where: str = "persona_users") -> PersonaUsersConfig:
        """Validated settings, the persona file loaded and checked; ValueError naming each
        bad field."""
        data = dict(data)
        llm = LLMSettings.parse(data.pop("llm", None), f"{where}.llm")
        try:
            config = cls.model_validate({**data, "llm": llm})
        except ValidationError as exc:
            problems = [f"{where}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise ValueError("; ".join(problems)) from None
        config.personas()  # a bad file or unknown id fails here, before any work
        return config

    def chosen(self) -> list[Persona]:
        """The personas these users are made from, each once, in order."""
        everyone = load_personas(resolve_persona_file(self.file), base=self.base)
        by_id = {p.id: p for p in everyone}
        unknown = [i for i in self.ids or () if i not in by_id]
        if unknown:
            raise ValueError(
                f"persona_users.ids: unknown persona(s) {unknown} in {self.file}; "
                f"known: {', '.join(by_id)}"
            )
        return [by_id[i] for i in dict.fromkeys(self.ids)] if self.ids else everyone

    def personas(self) -> list[Persona]:
        """The personas of the users of one arm, in user order (cycling through
        :meth:`chosen`)."""
        chosen = self.chosen()
        return [chosen[j % len(chosen)] for j in range(self.per_arm)]

    def calls(self, n_arms: int, days: int) -> int:
        """The most model calls one experiment makes (every day of every persona user)."""
        return n_arms * self.per_arm * days

    def estimate_usd(self, n_arms: int, days: int) -> float:
        """The most one experiment can spend, before any call (NaN: the model is unpriced)."""
        system = max(len(p.system_prompt()) for p in self.personas())
        prompt = system + DAY_PROMPT_CHARS + HISTORY_CHARS_PER_DAY * self.history_days
        return self.llm.estimate_usd(self.calls(n_arms, days), prompt)


@dataclass
class _User:
    persona: Persona
    name: str
    twin_column: int
    streak: int = 0
    xp: float = 0.0
    quit: bool = False
    failures: int = 0
    last_opened: int = -100
    """The last day it opened the app."""
    history: list[str] = field(default_factory=list)
    system: str = ""
    """Its persona's system prompt (made once)."""

    def __post_init__(self) -> None:
        self.system = self.persona.system_prompt()


_CLIENTS: dict[LLMSettings, LLMClient] = {}
"""One client per settings in this process (a local model loads once per process)."""


def _client(settings: LLMSettings) -> LLMClient:
    if settings not in _CLIENTS:
        _CLIENTS[settings] = settings.client()
    return _CLIENTS[settings]


class PersonaUsers:
    """The persona users of one experiment: ``act`` lives one day for all of them.

    Args:
        config: the validated settings.
        scenario: the experiment's scenario (gamification: persona users read XP economies).
        arms: the experiment's arms, control first.
        seed: the experiment's seed (persona users draw from their own stream of it).
    """

    def __init__(
        self, config: PersonaUsersConfig, scenario: Scenario, arms: Sequence[str], seed: int
    ) -> None:
        if "scanXp" not in scenario.knobs.by_name:
            raise ValueError(
                f"persona users live in the gamification scenario's app; {scenario.name!r} "
                "has no XP economy"
            )
        self.config, self.scenario, self.arms = config, scenario, tuple(arms)
        personas = config.personas()
        self.budget = Budget(config.llm.budget_usd) if config.llm.budget_usd else None
        self.usage = Usage()
        self._seed = seed
        self._seeds = np.random.SeedSequence([seed, PERSONA_STREAM])
        distinct = _distinct(personas)
        self.twins = self._twin_population(personas, len(self.arms))
        order = self.twins.segment[0]  # stratified: the same persona columns in every arm
        columns = {i: list(np.flatnonzero(order == i)) for i in range(len(distinct))}
        index = {p.id: i for i, p in enumerate(distinct)}
        self.users: list[list[_User]] = []
        for _ in self.arms:
            taken = {i: iter(c) for i, c in columns.items()}
            seen: dict[str, int] = {}
            row = []
            for p in personas:
                seen[p.id] = seen.get(p.id, 0) + 1
                row.append(_User(p, f"{p.id}#{seen[p.id]}", int(next(taken[index[p.id]]))))
            self.users.append(row)
        self.days = 0
        """Days lived so far."""
        self.totals = [dict.fromkeys(SUMMARY_KEYS, 0.0) for _ in self.arms]
        for t in self.totals:
            t["users"] = float(len(personas))

    def _twin_population(self, personas: list[Persona], n_arms: int) -> Any:
        """The personas' twins: one behavioural-model user per persona user and arm, all
        enrolled on day 0, each arm with exactly the same twins."""
        m = len(personas)
        spec = twins_preset(personas, self.config.base, m * n_arms, f"twins of {self.config.file}")
        return self.scenario.model(spec, n_arms, self._seeds.spawn(1)[0], m * n_arms)

    # ---- a day -----------------------------------------------------------------------------

    def act(
        self, day: int, arms: Sequence[str], economies: Sequence[Mapping[str, float]]
    ) -> list[PersonaActed]:
        """Every persona user's day ``day`` under its arm's economy (the twins live it too)."""
        twins = self.twins
        self.days = day + 1
        alive_before = twins.alive.copy()
        twins.step(self.scenario.knobs.array(economies))
        twin_day = twins.user_day(alive_before)
        m = twins.alive.shape[1]
        acted = []
        # each user's sampling seed for the day, from the day's own stream
        seeds = np.random.default_rng([self._seed, PERSONA_STREAM, day]).integers(
            0, 2**31, (len(arms), len(self.users[0]))
        )
        for a, (arm, economy) in enumerate(zip(arms, economies, strict=True)):
            for j, user in enumerate(self.users[a]):
                if user.quit:
                    continue
                seed = int(seeds[a, j])
                answer, tokens, fault = self._ask(user, day, economy, seed)
                if answer is None:
                    answer = _twin_answer(twin_day, a * m + user.twin_column)
                acted.append(self._apply(a, arm, day, user, economy, answer, tokens, fault))
        return acted

    def _ask(
        self, user: _User, day: int, economy: Mapping[str, float], seed: int
    ) -> tuple[dict[str, Any] | None, int, str]:
        """The model's answer for the day, its tokens and '' ; or None and why it failed."""
        if user.failures >= self.config.max_failures:
            return None, 0, f"stays with its twin after {user.failures} failed days"
        if self.budget is not None and self.budget.exhausted:
            return None, 0, "budget reached"
        settings = self.config.llm.with_model(user.persona.model)
        try:
            client = _client(settings)
        except BackendError as exc:  # no model to ask (a missing package, server, key)
            user.failures += 1
            return None, 0, f"BackendError: {str(exc)[:160]}"
        client.budget, client.usage = self.budget, Usage()
        messages = [
            {"role": "system", "content": user.system},
            {"role": "user", "content": self._prompt(user, day, economy)},
        ]
        sampling = settings.sampling(user.persona.temperature, seed)
        try:
            text = client.complete(messages, DAY_SCHEMA, sampling)
            answer = _parse(text)
        except BudgetExhausted as exc:
            return None, 0, f"budget reached: {exc}"
        except (BackendError, ValueError) as exc:
            user.failures += 1
            return None, 0, f"{type(exc).__name__}: {str(exc)[:160]}"
        finally:
            _add(self.usage, client.usage)
        user.failures = 0
        return answer, client.usage.prompt_tokens + client.usage.completion_tokens, ""

    def _prompt(self, user: _User, day: int, e: Mapping[str, float]) -> str:
        history = "; ".join(user.history[-self.config.history_days :]) or "none yet"
        return (
            f"You use a facility-feedback app: you scan QR codes in buildings, can give feedback "
            f"with a scan and report issues. Today is day {day + 1}. The app pays "
            f"{e['scanXp']:g} XP a scan (first {e['scanDailyCap']:g} scans a day), "
            f"{e['feedbackXp']:g} XP a feedback (first {e['feedbackDailyCap']:g}), "
            f"{e['firstScanOfDayXp']:g} XP for the day's first scan, {e['issueReportXp']:g} XP "
            f"an issue report, and {e['streakBonusPerDay']:g} XP a day per streak day (at most "
            f"{e['streakBonusCap']:g}). Your streak: {user.streak} days. Your XP: {user.xp:g}. "
            f"Your last days: {history}.\nWhat do you do today, and why? Say why in your own "
            "words, then choose: use the app, skip today, or quit for good; and how many scans, "
            "feedback and issue reports you make."
        )

    def _apply(
        self,
        a: int,
        arm: str,
        day: int,
        user: _User,
        economy: Mapping[str, float],
        answer: Mapping[str, Any],
        tokens: int,
        fault: str,
    ) -> PersonaActed:
        """Apply a day's answer to the persona user: streak, XP, history and totals."""
        opened = bool(answer["open_app"])
        scans = int(answer["scans"]) if opened else 0
        feedback = min(int(answer["feedback"]), scans)
        reports = int(answer["reports"]) if opened else 0
        user.streak = user.streak + 1 if opened else 0
        if opened:
            user.last_opened = day
        xp = xp_for_day(economy, scans, feedback, reports, user.streak)
        user.xp += xp
        user.quit = bool(answer["quit"])
        did = (
            f"day {day + 1}: {scans} scans, {feedback} feedback, {reports} reports"
            if opened
            else f"day {day + 1}: did not open the app"
        )
        user.history.append(did)
        t = self.totals[a]
        t["days"] += 1
        t["model_days" if not fault else "twin_days"] += 1
        t["faults"] += bool(fault) and not fault.startswith("stays with")
        t["opened_days"] += opened
        t["scans"] += scans
        t["feedback"] += feedback
        t["reports"] += reports
        t["quits"] += user.quit
        t["xp"] += xp
        reason = " ".join(str(answer["reason"]).split())[:160]
        return PersonaActed(
            day, arm, user.name, user.persona.id, "twin" if fault else "model", opened,
            scans, feedback, reports, user.quit, xp, user.streak, reason, tokens, fault,
        )  # fmt: skip

    def summary(self) -> dict[str, dict[str, float]]:
        """Per arm, the persona users' totals (:data:`SUMMARY_KEYS`) and the live platform's
        metrics that their days define, as ``metric_<NAME>``: SCAN_FREQUENCY (scans per day
        the app was opened, over the run), XP_VELOCITY (XP per user and day), RETENTION_RATE
        (the share who opened it in the last seven days) and STREAK_LENGTH (the mean streak at
        the end). Missions and feedback quality are the population's alone."""
        out = {}
        for arm, users, t in zip(self.arms, self.users, self.totals, strict=True):
            n, days = len(users), self.days
            out[arm] = {
                **t,
                "metric_SCAN_FREQUENCY": t["scans"] / t["opened_days"]
                if t["opened_days"]
                else math.nan,
                "metric_XP_VELOCITY": t["xp"] / (n * days) if days else math.nan,
                "metric_RETENTION_RATE": sum(u.last_opened > days - 8 for u in users) / n,
                "metric_STREAK_LENGTH": sum(u.streak for u in users) / n,
            }
        return out

    def usage_dict(self) -> dict[str, float]:
        """Model calls, cache hits, tokens, latency, cost and budget refusals of the run."""
        out = self.usage.as_dict()
        out["budget_refused"] = float(self.budget.refused if self.budget else 0)
        return out


def twins_preset(personas: Sequence[Persona], base: str, n_users: int, name: str) -> PopulationSpec:
    """A population of the personas' twins, all enrolled on day 0, each persona's share its
    count in ``personas`` (so with ``users_per_arm == len(personas)``, every arm holds exactly
    one twin per persona user: the assignment is stratified)."""
    data = base_preset(base)
    distinct = _distinct(personas)
    preset = {
        **{k: v for k, v in data.items() if k != "segments"},
        "name": name,
        "n_users": n_users,
        "initial_share": 1.0,
        "enrol_days": 0,
        "assignment": "stratified",
        "segments": {
            p.id: {"share": sum(q.id == p.id for q in personas) / len(personas),
                   **twin_traits(p, data)}
            for p in distinct
        },
    }  # fmt: skip
    return cast(PopulationSpec, population_from_dict(preset, name))


def _distinct(personas: Sequence[Persona]) -> list[Persona]:
    seen: dict[str, Persona] = {}
    for p in personas:
        seen.setdefault(p.id, p)
    return list(seen.values())


def _parse(text: str) -> dict[str, Any]:
    """The day's answer, checked; ValueError when it is not the JSON asked for."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {text[:80]!r}") from exc
    if not isinstance(data, dict) or set(DAY_SCHEMA["required"]) - set(data):
        raise ValueError(f"missing fields in {text[:80]!r}")
    if data["today"] not in CHOICES:
        raise ValueError(f"today must be one of {CHOICES}, got {data['today']!r}")
    out: dict[str, Any] = {"reason": str(data["reason"]), "open_app": data["today"] == CHOICES[0],
                           "quit": data["today"] == CHOICES[2]}  # fmt: skip
    for key, top in (("scans", MAX_COUNT), ("feedback", MAX_COUNT), ("reports", 5)):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ValueError(f"{key} must be a whole number, got {value!r}")
        out[key] = int(min(max(value, 0), top))
    return out


def _twin_answer(day: Mapping[str, np.ndarray], row: int) -> dict[str, Any]:
    """The twin's day as a persona answer (expected counts rounded)."""
    active = bool(day["active"][row])
    return {
        "open_app": active,
        "scans": round(float(day["scans"][row])) if active else 0,
        "feedback": round(float(day["feedback"][row])) if active else 0,
        "reports": round(float(day["reports"][row])) if active else 0,
        "quit": bool(day["churned"][row]),
        "reason": "(behavioural-model twin)",
    }


def _add(total: Usage, part: Usage) -> None:
    for name in vars(total):
        setattr(total, name, getattr(total, name) + getattr(part, name))
