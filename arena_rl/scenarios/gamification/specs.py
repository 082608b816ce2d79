"""The gamification scenario: its population presets and tenant settings, YAML -> validated
frozen dataclasses, and the plugin itself (:class:`GamificationScenario`).

Everything a user can mistype is checked here, before any simulation starts, and every error
names the file, the segment and the field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from arena_rl.core.events import UserEventType
from arena_rl.core.knobs import KnobError, Knobs
from arena_rl.core.scenario import Arms
from arena_rl.core.signals import Signals
from arena_rl.scenarios.gamification.economy import KNOBS
from arena_rl.scenarios.gamification.metrics import METRICS
from arena_rl.scenarios.prior import PopulationPrior, prior_from_dict
from arena_rl.scenarios.specs import (
    TAIL_DISCOUNT,
    Distribution,
    SpecError,
    dataclass_from,
    distribution,
    number,
    positive_int,
    preset_path,
    read_yaml,
    tail_discount,
)

if TYPE_CHECKING:
    from arena_rl.scenarios.gamification.population import Population

PLUGIN = "gamification"


@dataclass(frozen=True)
class SegmentSpec:
    """One persona segment: its share of users and the distributions of its traits."""

    name: str
    share: float
    base_activity: Distribution
    intrinsic: Distribution
    xp_sensitivity: Distribution
    loss_aversion: Distribution
    crowding: Distribution
    habit: Distribution
    scan_rate: Distribution
    scan_elasticity: Distribution
    feedback_rate: Distribution
    feedback_elasticity: Distribution
    feedback_quality: Distribution
    churn_hazard: Distribution
    mission_target: Distribution
    scan_value: Distribution


TRAITS: tuple[str, ...] = tuple(f.name for f in fields(SegmentSpec))[2:]

# field -> (lower bound, upper bound) of the values a trait may take
TRAIT_BOUNDS: dict[str, tuple[float, float]] = {
    "base_activity": (-math.inf, math.inf),
    "intrinsic": (0.0, math.inf),
    "xp_sensitivity": (0.0, math.inf),
    "loss_aversion": (1.0, math.inf),
    "crowding": (0.0, math.inf),
    "habit": (0.0, math.inf),
    "scan_rate": (1.0, math.inf),
    "scan_elasticity": (0.0, math.inf),
    "feedback_rate": (0.0, 1.0),
    "feedback_elasticity": (0.0, math.inf),
    "feedback_quality": (0.0, 1.0),
    "churn_hazard": (0.0, 1.0),
    "mission_target": (1.0, math.inf),
    "scan_value": (0.0, math.inf),
}


@dataclass(frozen=True)
class Behaviour:
    """Population-wide mechanism constants (see docs/population.md for each equation)."""

    xp_scale: float = 90.0
    gain_loss_weight: float = 1.0
    reference_rate: float = 0.15
    novelty_gain: float = 0.25
    novelty_halflife_days: float = 14.0
    novelty_habituation: float = 20.0
    habituation_halflife_days: float = 14.0
    intrinsic_recovery: float = 0.1
    crowding_threshold: float = 0.8
    habit_days: float = 14.0
    photo_rate: float = 0.15
    photo_elasticity: float = 0.5
    issue_rate: float = 0.08
    issue_elasticity: float = 0.6
    status_rate: float = 0.12
    status_elasticity: float = 0.4
    mission_reward: float = 40.0


@dataclass(frozen=True)
class PopulationSpec:
    """A validated persona preset."""

    name: str
    segments: tuple[SegmentSpec, ...]
    n_users: int = 2000
    """Users over all arms; each arm gets ``n_users // n_arms``."""
    initial_share: float = 0.6
    """Share of users enrolled on day 0."""
    enrol_days: int = 14
    """The rest enrol uniformly over days 1..enrol_days."""
    behaviour: Behaviour = field(default_factory=Behaviour)
    assignment: str = "complete"
    """"complete": each user's segment drawn independently; "stratified": exact segment mix."""


@dataclass(frozen=True)
class Objective:
    """The scenario objective: value created by users minus what their XP costs.

    Per arm and day: ``active_value·active + scan_value·Σ scan value + useful_feedback_value·
    useful feedback + report_value·reports − xp_cost·XP − overspend_cost·max(0, XP −
    xp_budget·enrolled)``, divided by the arm's enrolled users.
    """

    active_value: float = 1.0
    scan_value: float = 0.25
    useful_feedback_value: float = 1.0
    report_value: float = 1.5
    xp_cost: float = 0.01
    xp_budget: float = 80.0
    overspend_cost: float = 0.03


POSITIVE_FIELDS = frozenset(
    {"xp_scale", "novelty_halflife_days", "habituation_halflife_days", "habit_days"}
)
"""Behaviour constants that divide: zero is as invalid as negative."""


def population_from_dict(
    data: Mapping[str, Any], source: str = "<dict>"
) -> PopulationSpec | PopulationPrior:
    """Validate a population preset given as a mapping (as read from YAML), or a prior over
    presets (a mapping with a ``prior:`` block, :mod:`arena_rl.scenarios.prior`)."""
    where = f"{source}"
    allowed = {"name", "n_users", "initial_share", "enrol_days", "segments", "behaviour",
               "assignment", "scenario"}  # fmt: skip
    plugin = data.get("scenario", PLUGIN)
    if plugin != PLUGIN:
        raise SpecError(
            f"{where}: a population of the {plugin!r} scenario, not of {PLUGIN!r}; choose a "
            f"{PLUGIN} preset"
        )
    if "prior" in data:  # a distribution over presets: one is drawn per tournament
        return prior_from_dict(data, load_population, where, POSITIVE_FIELDS)
    unknown = set(data) - allowed
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(allowed)}")
    segments_data = data.get("segments")
    if not isinstance(segments_data, Mapping) or not segments_data:
        raise SpecError(
            f"{where}: 'segments' must be a non-empty mapping of segment name -> traits"
        )
    segments = []
    for seg_name, seg in segments_data.items():
        seg_where = f"{where}: segment {seg_name!r}"
        if not isinstance(seg, Mapping):
            raise SpecError(f"{seg_where}: expected a mapping of traits")
        missing = [t for t in ("share", *TRAITS) if t not in seg]
        if missing:
            raise SpecError(f"{seg_where}: missing field(s) {missing}")
        extra = set(seg) - {"share", *TRAITS}
        if extra:
            raise SpecError(f"{seg_where}: unknown field(s) {sorted(extra)}")
        share = number(seg["share"], f"{seg_where}, field 'share'")
        if not 0 < share <= 1:
            raise SpecError(f"{seg_where}, field 'share': must be in (0, 1], got {share}")
        traits = {
            t: distribution(seg[t], f"{seg_where}, field {t!r}", TRAIT_BOUNDS[t]) for t in TRAITS
        }
        segments.append(SegmentSpec(name=str(seg_name), share=share, **traits))
    total = sum(s.share for s in segments)
    if abs(total - 1.0) > 1e-6:
        raise SpecError(f"{where}: segment shares must sum to 1, got {total:.6g}")
    n_users = data.get("n_users", PopulationSpec.n_users)
    if isinstance(n_users, bool) or not isinstance(n_users, int) or n_users < 2:
        raise SpecError(f"{where}, field 'n_users': must be an integer >= 2, got {n_users!r}")
    initial_share = number(
        data.get("initial_share", PopulationSpec.initial_share), f"{where}, field 'initial_share'"
    )
    if not 0 < initial_share <= 1:
        raise SpecError(f"{where}, field 'initial_share': must be in (0, 1], got {initial_share}")
    enrol_days = positive_int(data, "enrol_days", PopulationSpec.enrol_days, where, low=0)
    assignment = data.get("assignment", PopulationSpec.assignment)
    if assignment not in ("complete", "stratified"):
        raise SpecError(
            f"{where}, field 'assignment': must be 'complete' or 'stratified', got {assignment!r}"
        )
    return PopulationSpec(
        assignment=assignment,
        name=str(data.get("name", source)),
        n_users=n_users,
        initial_share=initial_share,
        enrol_days=enrol_days,
        segments=tuple(segments),
        behaviour=dataclass_from(
            Behaviour, data.get("behaviour"), f"{where}, behaviour", POSITIVE_FIELDS
        ),
    )


def load_population(name_or_path: str | Path = "default") -> PopulationSpec:
    """Load a preset by name (``conf/population/<name>.yaml``), from a YAML path, or from a
    persona file (``.json``: one segment per persona, ``docs/personas.md``)."""
    if Path(name_or_path).suffix == ".json":
        from arena_rl.personas.twin import load_persona_population  # personas import this module

        return load_persona_population(name_or_path)
    path = preset_path(name_or_path, "population")
    spec = population_from_dict(read_yaml(path), source=str(path))
    if isinstance(spec, PopulationPrior):
        raise SpecError(f"{path}: a prior over populations, not one preset (draw from it)")
    return spec


ARM_SETS: Mapping[str, Arms] = MappingProxyType(
    {
        # Tried in this order, most generous first: the sweep is mostly cuts, no raise-cut zigzag.
        "default": {
            # streaks and the first scan of the day bring users back
            "retention": {"streakBonusPerDay": 1.5, "streakBonusCap": 1.3, "firstScanOfDayXp": 1.3},
            # small nudges around the base, like the SDK's "Default+"
            "balanced": {"scanXp": 1.1, "streakBonusPerDay": 1.2, "photoXp": 0.8},
            # the same economy, a third cheaper across the board
            "frugal": {
                "scanXp": 0.7,
                "feedbackXp": 0.7,
                "photoXp": 0.7,
                "firstScanOfDayXp": 0.7,
                "streakBonusPerDay": 0.7,
            },
            # pay for reports, not for showing up: cut the automatic XP
            "lean": {
                "photoXp": 0.25,
                "firstScanOfDayXp": 0.25,
                "streakBonusPerDay": 0.25,
                "streakBonusCap": 0.5,
                "issueReportXp": 2.0,
                "statusReportXp": 2.0,
                "feedbackDailyCap": 0.3,
            },
            # all of it on reports: nothing for showing up, reports paid several times over
            "reports": {
                "photoXp": 0.0,
                "firstScanOfDayXp": 0.0,
                "streakBonusPerDay": 0.0,
                "issueReportXp": 3.5,
                "statusReportXp": 3.5,
                "feedbackDailyCap": 0.5,
            },
        }
    }
)
"""Named arm sets for the arm-based bandits (multipliers of the base economy)."""

SEARCH_BOX: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "firstScanOfDayXp": (0.0, 1.25),
        "streakBonusPerDay": (0.0, 1.25),
        "streakBonusCap": (0.2, 1.25),
        "photoXp": (0.0, 1.25),
        "feedbackDailyCap": (0.2, 1.25),
        "issueReportXp": (0.5, 5.0),
        "statusReportXp": (0.5, 5.0),
    }
)
"""Multiplier bounds of the base economy for searching strategies: the XP paid for showing up
rather than for useful work, from none to a quarter more, and the XP for reports, from half to
five times the base. Sized on the optima of populations drawn from ``population=prior``
(``scripts/reach.py``): they zero the showing-up XP and pay reports 2.5-4.5 times the base."""

LEVERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        # XP that pays for showing up rather than for anything the objective values
        "cost": (
            "firstScanOfDayXp",
            "streakBonusPerDay",
            "photoXp",
            "streakBonusCap",
            "feedbackDailyCap",
        ),
        # XP for the acts the objective does value
        "value": ("issueReportXp", "statusReportXp", "scanDailyCap"),
        # what brings users back
        "retention": ("streakBonusCap", "firstScanOfDayXp"),
        # what makes active users do more
        "activity": ("scanXp",),
    }
)
"""Named groups of knobs that move together, for strategies that nudge groups."""

DESCRIPTION = """\
A gamified field app: users scan assets, give feedback, file issue and status reports, and
earn XP for it (plus a first-scan-of-the-day bonus, a streak bonus and weekly missions).
Each variant sets the XP economy below; users respond to the XP they expect (with
diminishing returns, judged against a reference point they adapt to, losses weighing more
than gains), get used to changes, and churn when disengaged.

Signals per variant: enrolled users, active today, active in the last 7 days, and six
metrics: SCAN_FREQUENCY (scans per active user today), XP_VELOCITY (XP per enrolled user
today), RETENTION_RATE (share of enrolled users active in the last 7 days), MISSION_COMPLETION
(share of weekly missions completed), STREAK_LENGTH (mean current streak, days) and
FEEDBACK_QUALITY (useful feedback per scan).

Objective, per enrolled user per day: value from active users, scans, useful feedback and
reports, minus the cost of the XP paid out (and more for XP over a budget per user). XP
that pays for showing up rather than for useful work is the usual waste."""


USER_EVENTS = (
    UserEventType("user enrolled", "enrolled_today"),
    UserEventType("active", "active"),
    UserEventType("scan", "scans", "scans that day"),
    UserEventType("feedback", "feedback", "written feedback that day"),
    UserEventType("report", "reports", "reports that day", expected=True),
    UserEventType("XP awarded", "xp", "XP awarded that day"),
    UserEventType("7-day streak", "streak_week"),
    UserEventType("churned", "churned"),
)
"""What the event log reads off a user's day (``Population.user_day``)."""


@dataclass(frozen=True)
class GamificationScenario:
    """The XP economy, as one tenant runs it: horizon, decision cadence, objective and base
    economy. The first scenario plugin (see :class:`arena_rl.core.scenario.Scenario`)."""

    name: str = "default"
    days: int = 28
    decision_interval: int = 1
    economy: Mapping[str, float] = field(default_factory=dict)
    """This tenant's overrides of the global XP defaults."""
    objective: Objective = field(default_factory=Objective)
    interference: float = 0.0
    """Leaderboard interference between arms: 0 keeps arms independent."""
    guardrails: Mapping[str, Any] = field(default_factory=dict)
    tail_discount: float = TAIL_DISCOUNT
    """Daily discount of the value the arm's users create after the last day, added to its
    objective (``docs/population.md``, "Value beyond the horizon"); 0 turns it off."""

    plugin = PLUGIN
    default_population = "default"
    metrics = METRICS
    objective_metrics = ("SCAN_FREQUENCY", "XP_VELOCITY", "FEEDBACK_QUALITY")
    harm_metric = "RETENTION_RATE"
    user_events = USER_EVENTS

    @property
    def knobs(self) -> Knobs:
        return KNOBS

    def base_economy(self) -> dict[str, float]:
        """Global defaults overridden by this scenario's (tenant's) economy."""
        return KNOBS.resolve(self.economy, where=f"scenario {self.name!r} economy")

    def population_from_dict(
        self, data: Mapping[str, Any], source: str
    ) -> PopulationSpec | PopulationPrior:
        return population_from_dict(data, source)

    def load_population(self, name_or_path: str | Path) -> PopulationSpec:
        return load_population(name_or_path)

    def model(
        self,
        population: PopulationSpec,
        n_arms: int,
        seed: int | np.random.SeedSequence,
        n_users: int | None = None,
        twins: bool = False,
    ) -> Population:
        from arena_rl.scenarios.gamification.population import Population

        return Population(population, self, n_arms, seed, n_users, twins)

    def isolated(self) -> GamificationScenario:
        return dataclasses.replace(self, interference=0.0)

    def estimate_objective(self, signals: Signals) -> float | None:
        """Uses today's active share, scans per active user, useful-feedback share and XP per
        user (reports and per-segment scan values are not observable and are left out)."""
        if signals.enrolled == 0:
            return None
        m, objective = signals.metrics, self.objective
        active = signals.active_today / signals.enrolled
        scans = active * m["SCAN_FREQUENCY"].value
        useful = scans * m["FEEDBACK_QUALITY"].value
        xp = m["XP_VELOCITY"].value
        return (
            objective.active_value * active
            + objective.scan_value * scans
            + objective.useful_feedback_value * useful
            - objective.xp_cost * xp
            - objective.overspend_cost * max(xp - objective.xp_budget, 0.0)
        )

    def arm_sets(self) -> Mapping[str, Arms]:
        return ARM_SETS

    def search_box(self) -> Mapping[str, tuple[float, float]]:
        return SEARCH_BOX

    def levers(self) -> Mapping[str, tuple[str, ...]]:
        return LEVERS

    def describe(self) -> str:
        return f"{DESCRIPTION}\n\nKnobs:\n{KNOBS.describe()}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> GamificationScenario:
        """Validate a scenario given as a mapping (as read from YAML)."""
        allowed = {f.name for f in fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise SpecError(
                f"{source}: unknown field(s) {sorted(unknown)}; known: {sorted(allowed)}"
            )
        days = positive_int(data, "days", cls.days, source)
        interval = positive_int(data, "decision_interval", cls.decision_interval, source)
        interference = number(
            data.get("interference", cls.interference), f"{source}, field 'interference'"
        )
        if interference < 0:
            raise SpecError(f"{source}, field 'interference': must be >= 0, got {interference}")
        economy = data.get("economy") or {}
        if not isinstance(economy, Mapping):
            raise SpecError(f"{source}, field 'economy': expected a mapping of economy keys")
        scenario = cls(
            name=str(data.get("name", source)),
            days=days,
            decision_interval=interval,
            economy=dict(economy),
            objective=dataclass_from(Objective, data.get("objective"), f"{source}, objective"),
            interference=interference,
            guardrails=dict(data.get("guardrails") or {}),
            tail_discount=tail_discount(data, source),
        )
        try:
            scenario.base_economy()  # validates the tenant economy now, not mid-run
        except KnobError as exc:
            raise SpecError(f"{source}, field 'economy': {exc}") from exc
        return scenario
