"""Do LLM persona users react to an economy change the way the behavioural model says?

For each change whose effect the behavioural model knows exactly, two arms live the same days
under the default economy and under the change: once as the personas' twins in the
behavioural model (a large population of them, every arm the same users and the same draws,
so the difference is the change's effect alone), once as LLM persona users (each persona once
per arm). Per change and behaviour (participation, scans, feedback) the table reports both
relative effects, whether they point the same way, and their ratio. The persona side is a
handful of people for a few days: its effects are noisy, and a small local model may not
follow the change at all; the table says what it measures, nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from arena_rl.core.events import PersonaActed
from arena_rl.personas.users import PersonaUsers, PersonaUsersConfig, twins_preset
from arena_rl.scenarios import load_scenario

CHANGES: dict[str, dict[str, float]] = {
    "double scan XP": {"scanXp": 20.0},
    "remove all XP": {
        "scanXp": 0.0, "feedbackXp": 0.0, "issueReportXp": 0.0, "statusReportXp": 0.0,
        "photoXp": 0.0, "firstScanOfDayXp": 0.0, "streakBonusPerDay": 0.0,
    },
    "triple streak bonus": {"streakBonusPerDay": 15.0, "streakBonusCap": 150.0},
    "no feedback XP": {"feedbackXp": 0.0},
}  # fmt: skip
"""Economy changes from the defaults, by name."""

BEHAVIOURS = ("participation", "scans", "feedback")
"""Per user and day: opened the app (share), scans, feedback given."""

FLAT = 0.01
"""A relative effect smaller than this (1 %) counts as no change."""


@dataclass(frozen=True)
class Row:
    """One change and behaviour: the behavioural model's effect and the persona users'."""

    change: str
    behaviour: str
    model: float
    """Relative effect in the behavioural model (changed / default - 1)."""
    personas: float
    """Relative effect among the LLM persona users (NaN when the default arm had none)."""
    persona_days: int
    """Persona user-days per arm behind it (over seeds)."""
    model_share: float
    """Share of those days the model decided (the rest: its twin)."""

    @property
    def agrees(self) -> str:
        """``yes`` when both point the same way (or are both flat), ``no`` otherwise."""
        if math.isnan(self.personas):
            return "n/a"
        return "yes" if _direction(self.model) == _direction(self.personas) else "no"


def _direction(effect: float) -> int:
    return 0 if abs(effect) < FLAT else int(math.copysign(1, effect))


def economies(change: Mapping[str, float]) -> list[dict[str, float]]:
    """[default, changed] economies of the gamification scenario."""
    base = load_scenario("default").base_economy()
    unknown = set(change) - set(base)
    if unknown:
        raise ValueError(f"unknown knob(s) {sorted(unknown)}; knobs: {', '.join(base)}")
    return [dict(base), {**base, **change}]


def model_effects(
    config: PersonaUsersConfig, change: Mapping[str, float], days: int, users: int, seed: int
) -> dict[str, float]:
    """The behavioural model's effect of ``change`` on the personas' twins: two arms of
    ``users`` each, the same users and draws (common random numbers), ``days`` days."""
    scenario = load_scenario("default")
    personas = config.chosen()
    spec = twins_preset(personas, config.base, 2 * users, "calibration twins")
    population = scenario.model(spec, 2, seed, 2 * users, twins=True)
    knobs = scenario.knobs.array(economies(change))
    sums = np.zeros((2, len(BEHAVIOURS)))
    for _ in range(days):
        alive = population.alive.copy()
        population.step(knobs)
        day = population.user_day(alive)
        for a in range(2):
            mine = day["arm"] == a
            sums[a] += [float(np.sum(day[c][mine])) for c in ("active", "scans", "feedback")]
    return {b: float(sums[1, i] / sums[0, i] - 1) for i, b in enumerate(BEHAVIOURS)}


def persona_days(
    config: PersonaUsersConfig, change: Mapping[str, float], days: int, seed: int
) -> tuple[list[PersonaActed], dict[str, float]]:
    """``days`` days of every persona once per arm, under the default economy and the change;
    every persona user-day, and the model usage."""
    scenario = load_scenario("default")
    users = PersonaUsers(config, scenario, ("default", "changed"), seed)
    both = economies(change)
    acted: list[PersonaActed] = []
    for day in range(days):
        acted += users.act(day, users.arms, both)
    return acted, users.usage_dict()


def persona_effects(acted: Sequence[PersonaActed]) -> dict[str, float]:
    """Relative effects among persona users; a user who quit counts as away on later days."""
    totals = {arm: np.zeros(len(BEHAVIOURS)) for arm in ("default", "changed")}
    for e in acted:
        totals[e.arm] += [float(e.opened), e.scans, e.feedback]
    base, changed = totals["default"], totals["changed"]
    return {
        b: float(changed[i] / base[i] - 1) if base[i] > 0 else math.nan
        for i, b in enumerate(BEHAVIOURS)
    }


def calibrate(
    config: PersonaUsersConfig,
    changes: Mapping[str, Mapping[str, float]],
    days: int,
    seeds: Sequence[int],
    model_users: int = 20_000,
) -> tuple[list[Row], dict[str, float]]:
    """The calibration table, and the persona users' model usage over it."""
    rows: list[Row] = []
    usage: dict[str, float] = {}
    for name, change in changes.items():
        model = model_effects(config, change, days, model_users, seeds[0])
        acted: list[PersonaActed] = []
        for seed in seeds:
            days_acted, used = persona_days(config, change, days, seed)
            acted += days_acted
            for k, v in used.items():
                usage[k] = usage.get(k, 0.0) + v
        effects = persona_effects(acted)
        per_arm = sum(e.arm == "default" for e in acted)
        decided = sum(e.source == "model" for e in acted) / max(len(acted), 1)
        rows += [Row(name, b, model[b], effects[b], per_arm, decided) for b in BEHAVIOURS]
    return rows, usage


def markdown(rows: Sequence[Row]) -> str:
    """The table as Markdown (docs/personas.md keeps a measured one)."""
    lines = [
        "| change | behaviour | behavioural model | LLM persona users | same direction | "
        "persona/model | persona days per arm | decided by the model |",
        "|---|---|---:|---:|:---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = (
            r.personas / r.model
            if abs(r.model) >= FLAT and not math.isnan(r.personas)
            else math.nan
        )
        lines.append(
            f"| {r.change} | {r.behaviour} | {r.model:+.1%} | {_pct(r.personas)} | {r.agrees} | "
            f"{'—' if math.isnan(ratio) else f'{ratio:.2f}'} | {r.persona_days} | "
            f"{r.model_share:.0%} |"
        )
    agree = [r for r in rows if r.agrees != "n/a"]
    share = sum(r.agrees == "yes" for r in agree) / len(agree) if agree else math.nan
    lines.append("")
    lines.append(f"Same direction in {share:.0%} of {len(agree)} change × behaviour cells.")
    return "\n".join(lines)


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:+.1%}"


def records(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [{**asdict(r), "agrees": r.agrees} for r in rows]
