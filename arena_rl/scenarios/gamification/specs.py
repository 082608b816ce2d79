"""Population presets and scenarios: YAML in ``conf/`` -> validated frozen dataclasses.

Everything a user can mistype is checked here, before any simulation starts, and every error
names the file, the segment and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from arena_rl.scenarios.gamification.economy import EconomyError, resolve_economy

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
"""The Hydra config tree; presets are looked up here by name. It is ``conf/`` at the top of a
checkout, linked into the package (``arena_rl/conf``) so that an installed arena_rl ships it."""


class SpecError(ValueError):
    """A population preset or scenario that cannot be used; the message says where."""


@dataclass(frozen=True)
class Distribution:
    """A per-user trait distribution: constant, normal, lognormal or beta.

    ``kind`` is one of "constant", "normal" (a=mean, b=sd), "lognormal" (a=median, b=sd of
    log) or "beta" (a, b shape parameters).
    """

    kind: str
    a: float
    b: float = 0.0
    lower: float = -math.inf
    upper: float = math.inf
    """Draws are clipped into [lower, upper], the trait's valid range."""

    def median(self) -> float:
        """A typical value, used to describe a segment's 'median user'."""
        if self.kind == "beta":
            return self.a / (self.a + self.b)
        return self.a


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

    xp_scale: float = 60.0
    gain_loss_weight: float = 1.0
    reference_rate: float = 0.15
    novelty_gain: float = 2.0
    novelty_halflife_days: float = 3.0
    novelty_habituation: float = 20.0
    habituation_halflife_days: float = 14.0
    intrinsic_recovery: float = 0.1
    crowding_threshold: float = 1.0
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


@dataclass(frozen=True)
class Scenario:
    """One tenant's experiment: horizon, decision cadence, objective and base economy."""

    name: str = "default"
    days: int = 28
    decision_interval: int = 1
    economy: Mapping[str, float] = field(default_factory=dict)
    objective: Objective = field(default_factory=Objective)
    interference: float = 0.0
    guardrails: Mapping[str, Any] = field(default_factory=dict)

    def base_economy(self) -> dict[str, float]:
        """Global defaults overridden by this scenario's (tenant's) economy."""
        return resolve_economy(self.economy, where=f"scenario {self.name!r} economy")


POSITIVE_FIELDS = frozenset(
    {"xp_scale", "novelty_halflife_days", "habituation_halflife_days", "habit_days"}
)
"""Behaviour constants that divide: zero is as invalid as negative."""


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    return data


def _resolve(name_or_path: str | Path, group: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise SpecError(f"{group} file not found: {path}")
        return path
    candidate = CONF_DIR / group / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        raise SpecError(f"unknown {group} {name_or_path!r}; available: {', '.join(known)}")
    return candidate


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise SpecError(f"{where}: must be finite, got {value}")
    return float(value)


def _distribution(value: object, where: str, bounds: tuple[float, float]) -> Distribution:
    lo, hi = bounds
    if isinstance(value, Mapping):
        keys = set(value)
        if keys == {"mean", "sd"}:
            dist = Distribution(
                "normal",
                _number(value["mean"], where + ".mean"),
                _number(value["sd"], where + ".sd"),
                lower=lo,
                upper=hi,
            )
        elif keys == {"median", "sd_log"}:
            dist = Distribution(
                "lognormal",
                _number(value["median"], where + ".median"),
                _number(value["sd_log"], where + ".sd_log"),
                lower=lo,
                upper=hi,
            )
            if dist.a <= 0:
                raise SpecError(f"{where}.median: must be > 0, got {dist.a}")
        elif keys == {"a", "b"}:
            dist = Distribution(
                "beta", _number(value["a"], where + ".a"), _number(value["b"], where + ".b")
            )
            if dist.a <= 0 or dist.b <= 0:
                raise SpecError(f"{where}: beta shape parameters must be > 0")
            if lo < 0 or hi > 1:
                raise SpecError(f"{where}: a beta distribution only fits a share in [0, 1]")
        else:
            raise SpecError(
                f"{where}: a distribution is a number, {{mean, sd}}, {{median, sd_log}} or "
                f"{{a, b}}; got keys {sorted(map(str, keys))}"
            )
        if dist.kind != "beta" and dist.b < 0:
            raise SpecError(f"{where}: spread must be >= 0, got {dist.b}")
        centre = dist.median()
    else:
        dist = Distribution("constant", _number(value, where), lower=lo, upper=hi)
        centre = dist.a
    if not lo <= centre <= hi:
        raise SpecError(f"{where}: value {centre} outside the allowed range [{lo}, {hi}]")
    return dist


def _dataclass_from(cls: type, data: object, where: str) -> Any:
    """Build a flat dataclass of floats from a mapping, rejecting unknown or non-numeric keys."""
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    values = {k: _number(v, f"{where}.{k}") for k, v in data.items()}
    negative = [k for k, v in values.items() if v < 0]
    if negative:
        raise SpecError(f"{where}.{negative[0]}: must be >= 0, got {values[negative[0]]}")
    zero = [k for k, v in values.items() if v == 0 and k in POSITIVE_FIELDS]
    if zero:
        raise SpecError(f"{where}.{zero[0]}: must be > 0 (it is a scale or a half-life)")
    return cls(**values)


def population_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> PopulationSpec:
    """Validate a population preset given as a mapping (as read from YAML)."""
    where = f"{source}"
    allowed = {"name", "n_users", "initial_share", "enrol_days", "segments", "behaviour",
               "assignment"}  # fmt: skip
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
        share = _number(seg["share"], f"{seg_where}, field 'share'")
        if not 0 < share <= 1:
            raise SpecError(f"{seg_where}, field 'share': must be in (0, 1], got {share}")
        traits = {
            t: _distribution(seg[t], f"{seg_where}, field {t!r}", TRAIT_BOUNDS[t]) for t in TRAITS
        }
        segments.append(SegmentSpec(name=str(seg_name), share=share, **traits))
    total = sum(s.share for s in segments)
    if abs(total - 1.0) > 1e-6:
        raise SpecError(f"{where}: segment shares must sum to 1, got {total:.6g}")
    n_users = data.get("n_users", PopulationSpec.n_users)
    if isinstance(n_users, bool) or not isinstance(n_users, int) or n_users < 2:
        raise SpecError(f"{where}, field 'n_users': must be an integer >= 2, got {n_users!r}")
    initial_share = _number(
        data.get("initial_share", PopulationSpec.initial_share), f"{where}, field 'initial_share'"
    )
    if not 0 < initial_share <= 1:
        raise SpecError(f"{where}, field 'initial_share': must be in (0, 1], got {initial_share}")
    enrol_days = data.get("enrol_days", PopulationSpec.enrol_days)
    if isinstance(enrol_days, bool) or not isinstance(enrol_days, int) or enrol_days < 0:
        raise SpecError(f"{where}, field 'enrol_days': must be an integer >= 0, got {enrol_days!r}")
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
        behaviour=_dataclass_from(Behaviour, data.get("behaviour"), f"{where}, behaviour"),
    )


def load_population(name_or_path: str | Path = "default") -> PopulationSpec:
    """Load a preset by name (``conf/population/<name>.yaml``) or from a YAML path."""
    path = _resolve(name_or_path, "population")
    return population_from_dict(_read_yaml(path), source=str(path))


def scenario_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Scenario:
    """Validate a scenario given as a mapping (as read from YAML)."""
    allowed = {f.name for f in fields(Scenario)}
    unknown = set(data) - allowed
    if unknown:
        raise SpecError(f"{source}: unknown field(s) {sorted(unknown)}; known: {sorted(allowed)}")
    days = data.get("days", Scenario.days)
    interval = data.get("decision_interval", Scenario.decision_interval)
    for key, value in (("days", days), ("decision_interval", interval)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(f"{source}, field {key!r}: must be an integer >= 1, got {value!r}")
    interference = _number(
        data.get("interference", Scenario.interference), f"{source}, field 'interference'"
    )
    if interference < 0:
        raise SpecError(f"{source}, field 'interference': must be >= 0, got {interference}")
    economy = data.get("economy") or {}
    if not isinstance(economy, Mapping):
        raise SpecError(f"{source}, field 'economy': expected a mapping of economy keys")
    scenario = Scenario(
        name=str(data.get("name", source)),
        days=days,
        decision_interval=interval,
        economy=dict(economy),
        objective=_dataclass_from(Objective, data.get("objective"), f"{source}, objective"),
        interference=interference,
        guardrails=dict(data.get("guardrails") or {}),
    )
    try:
        scenario.base_economy()  # validates the tenant economy now, not mid-run
    except EconomyError as exc:
        raise SpecError(f"{source}, field 'economy': {exc}") from exc
    return scenario


def load_scenario(name_or_path: str | Path = "default") -> Scenario:
    """Load a scenario by name (``conf/scenario/<name>.yaml``) or from a YAML path."""
    path = _resolve(name_or_path, "scenario")
    data = dict(_read_yaml(path))
    data.pop("defaults", None)  # Hydra's composition list: the schema is this module's defaults
    return scenario_from_dict(data, source=str(path))
