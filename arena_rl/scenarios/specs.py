"""What every scenario plugin's presets share: the config tree, YAML reading, trait
distributions and the checks that make every error name its file, segment and field."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
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

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Independent draws of the given shape (float64), clipped into the valid range."""
        if self.kind == "constant":
            out = np.full(shape, self.a)
        elif self.kind == "normal":
            out = rng.normal(self.a, self.b, shape)
        elif self.kind == "lognormal":
            out = self.a * np.exp(rng.normal(0.0, self.b, shape))
        else:
            out = rng.beta(self.a, self.b, shape)
        return np.clip(out, self.lower, self.upper)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; SpecError naming the file otherwise."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    return data


def preset_path(name_or_path: str | Path, group: str) -> Path:
    """A preset's file: a YAML path as given, or ``conf/<group>/<name>.yaml``."""
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


def number(value: object, where: str) -> float:
    """A finite number as float; SpecError naming ``where`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise SpecError(f"{where}: must be finite, got {value}")
    return float(value)


def distribution(value: object, where: str, bounds: tuple[float, float]) -> Distribution:
    """A trait distribution from YAML: a number, {mean, sd}, {median, sd_log} or {a, b}."""
    lo, hi = bounds
    if isinstance(value, Mapping):
        keys = set(value)
        if keys == {"mean", "sd"}:
            dist = Distribution(
                "normal",
                number(value["mean"], where + ".mean"),
                number(value["sd"], where + ".sd"),
                lower=lo,
                upper=hi,
            )
        elif keys == {"median", "sd_log"}:
            dist = Distribution(
                "lognormal",
                number(value["median"], where + ".median"),
                number(value["sd_log"], where + ".sd_log"),
                lower=lo,
                upper=hi,
            )
            if dist.a <= 0:
                raise SpecError(f"{where}.median: must be > 0, got {dist.a}")
        elif keys == {"a", "b"}:
            dist = Distribution(
                "beta", number(value["a"], where + ".a"), number(value["b"], where + ".b")
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
        dist = Distribution("constant", number(value, where), lower=lo, upper=hi)
        centre = dist.a
    if not lo <= centre <= hi:
        raise SpecError(f"{where}: value {centre} outside the allowed range [{lo}, {hi}]")
    return dist


def dataclass_from(
    cls: type, data: object, where: str, positive: frozenset[str] = frozenset()
) -> Any:
    """Build a flat dataclass of non-negative floats from a mapping, rejecting unknown or
    non-numeric keys; fields in ``positive`` (scales, half-lives) must also be non-zero."""
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    values = {k: number(v, f"{where}.{k}") for k, v in data.items()}
    negative = [k for k, v in values.items() if v < 0]
    if negative:
        raise SpecError(f"{where}.{negative[0]}: must be >= 0, got {values[negative[0]]}")
    zero = [k for k, v in values.items() if v == 0 and k in positive]
    if zero:
        raise SpecError(f"{where}.{zero[0]}: must be > 0 (it is a scale or a half-life)")
    return cls(**values)


TAIL_DISCOUNT = 0.98
"""Default daily discount of the value users create after the experiment ends: a day later is
worth 2 % less, so the tail weighs about the next 50 days (1 / (1 - 0.98))."""


def tail_discount(data: Mapping[str, Any], where: str) -> float:
    """The scenario's ``tail_discount`` in [0, 1): 0 turns the tail value off; 1 or more would
    add up value for ever (the tail diverges)."""
    value = number(data.get("tail_discount", TAIL_DISCOUNT), f"{where}, field 'tail_discount'")
    if not 0.0 <= value < 1.0:
        raise SpecError(
            f"{where}, field 'tail_discount': must be in [0, 1) (0 turns the value after the "
            f"horizon off; 1 or more makes it infinite), got {value}"
        )
    return value


def positive_int(data: Mapping[str, Any], key: str, default: int, where: str, low: int = 1) -> int:
    """An integer field >= ``low`` (its default when absent); SpecError naming it otherwise."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpecError(f"{where}, field {key!r}: must be an integer >= {low}, got {value!r}")
    return value


def users_per_arm(n_users: int, n_arms: int) -> int:
    """Each arm's share of ``n_users`` (the rest are dropped); ValueError when an arm would be
    empty."""
    if n_arms < 1:
        raise ValueError(f"n_arms must be >= 1, got {n_arms}")
    if n_users // n_arms < 1:
        raise ValueError(f"n_users={n_users} is too few for {n_arms} arms")
    return n_users // n_arms


@dataclass(frozen=True)
class Cohort:
    """Who the users of every arm are: when each joins, its segment and its traits. Every array
    has shape (n_arms, users_per_arm); each arm's row is sorted by joining day."""

    join_day: np.ndarray
    """int16: the day each user joins (enrols, arrives)."""
    joined_by: np.ndarray
    """(n_arms, join_days + 1) int64: users of each arm joined by day d (column d)."""
    segment: np.ndarray
    """int8: index of each user's segment."""
    traits: dict[str, np.ndarray]
    """float32, by trait name."""


def draw_cohort(
    segments: Sequence[Any],
    traits: Sequence[str],
    *,
    n_arms: int,
    users_per_arm: int,
    initial_share: float,
    join_days: int,
    assignment: str,
    twins: bool,
    join_rng: np.random.Generator,
    trait_rng: np.random.Generator,
) -> Cohort:
    """Draw a population's users from a preset's segments (objects with ``share`` and a
    :class:`Distribution` per trait).

    A share ``initial_share`` joins on day 0, the rest uniformly over days 1..``join_days``.
    Segments are drawn per user ("complete") or as the exact mix in every arm ("stratified").
    In ``twins`` mode every arm gets the same users. Joining days and segments come from
    ``join_rng``, traits from ``trait_rng``; a loop over segments, never over users.
    """
    m, rows, shape = users_per_arm, 1 if twins else n_arms, (n_arms, users_per_arm)
    late = join_rng.random((rows, m)) >= initial_share
    join = np.where(late, join_rng.integers(1, max(join_days, 1) + 1, (rows, m)), 0)
    join = np.sort(join, axis=1) if join_days else np.zeros((rows, m), np.int64)
    join_day = np.ascontiguousarray(np.broadcast_to(join, shape), np.int16)
    joined_by = np.stack([np.bincount(row, minlength=join_days + 1).cumsum() for row in join_day])
    shares = np.array([s.share for s in segments])
    if assignment == "stratified":
        segment = np.broadcast_to(_block_segments(shares, m, join_rng), (rows, m))
    else:
        segment = join_rng.choice(len(shares), size=(rows, m), p=shares)
    values_by_trait = {}
    for trait in traits:
        values = np.empty((rows, m))
        for s, seg in enumerate(segments):
            members = segment == s
            values[members] = getattr(seg, trait).draw(trait_rng, (int(members.sum()),))
        values_by_trait[trait] = np.ascontiguousarray(np.broadcast_to(values, shape), np.float32)
    segment_all = np.ascontiguousarray(np.broadcast_to(segment, shape), np.int8)
    return Cohort(join_day, joined_by, segment_all, values_by_trait)


def _block_segments(shares: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Segment of each column: exact shares by largest remainder, in random order."""
    raw = shares * m
    counts = np.floor(raw).astype(int)
    counts[np.argsort(counts - raw)[: m - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(len(shares)), counts))
