"""The XP economy's knobs: ten parameters, their defaults (the live platform's) and bounds.

Keys are the live platform's camelCase names, so the same dicts cross the agent protocol, the
guardrails and the HTTP API unchanged. As on the live platform, a value only must not be
negative (caps must be whole); the delta clamp bounds how far one update moves it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from arena_rl.core.knobs import Knob, KnobError, Knobs


def _knob(name: str, default: float, description: str, *, integer: bool = False) -> Knob:
    unit = "count" if name.endswith("DailyCap") else "XP"
    return Knob(name, default, 0.0, math.inf, integer, unit, description)


KNOBS = Knobs(
    [
        _knob("scanXp", 10.0, "XP per counted scan"),
        _knob("feedbackXp", 15.0, "XP per feedback given with a scan, up to feedbackDailyCap"),
        _knob("issueReportXp", 25.0, "XP per issue report"),
        _knob("statusReportXp", 20.0, "XP per status report"),
        _knob("photoXp", 10.0, "XP per photo attached to a scan"),
        _knob("firstScanOfDayXp", 15.0, "XP for the first scan of each day"),
        _knob("streakBonusPerDay", 5.0, "bonus XP per day of the current streak, each day"),
        _knob("streakBonusCap", 50.0, "ceiling of the daily streak bonus", integer=True),
        _knob("scanDailyCap", 20.0, "scans a day that earn scanXp", integer=True),
        _knob("feedbackDailyCap", 10.0, "feedbacks a day that earn feedbackXp", integer=True),
    ]
)

DEFAULT_ECONOMY: Mapping[str, float] = KNOBS.defaults
"""Global defaults, as on the live platform."""

ECONOMY_KEYS: tuple[str, ...] = KNOBS.keys
"""Canonical key order; column order of every economy array."""

INTEGER_KEYS: frozenset[str] = KNOBS.integer
"""Caps are whole numbers (counts, or a whole-XP ceiling)."""

EconomyError = KnobError
"""An economy or override that the platform would not accept."""
validate_overrides = KNOBS.validate
resolve_economy = KNOBS.resolve
economy_array = KNOBS.array
round_caps = KNOBS.rounded


def xp_for_day(
    economy: Mapping[str, float], scans: int, feedback: int, reports: int, streak: int
) -> float:
    """The XP the app awards one user for one day's actions (``streak``: the streak after the
    day, 0 on a day the app stayed closed): the rules the population's vectorised step applies
    to expected counts, here for one person's whole actions (LLM persona users)."""
    if streak <= 0:
        return 0.0
    e = economy
    return (
        min(streak * e["streakBonusPerDay"], e["streakBonusCap"])
        + (e["firstScanOfDayXp"] if scans > 0 else 0.0)
        + min(scans, e["scanDailyCap"]) * e["scanXp"]
        + min(feedback, e["feedbackDailyCap"]) * e["feedbackXp"]
        + reports * e["issueReportXp"]
    )
