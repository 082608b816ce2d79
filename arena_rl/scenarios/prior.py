"""A population prior: a distribution over populations, so a result can be measured on users
no one tuned for.

A prior perturbs a base preset of the scenario, within documented ranges, once per draw:
- every segment trait's typical value (mean, median, the constant, or a beta's mean) times a
  factor drawn log-uniformly from its ``factors`` range, or plus a shift drawn uniformly from
  its ``shifts`` range (for traits on a logit scale), each segment independently, clipped into
  the trait's valid range;
- every behaviour constant drawn uniformly from its ``behaviour`` range;
- the segment shares drawn from a Dirichlet around the base shares (``concentration``: larger
  is closer), then any segment named in ``shares`` given a share drawn uniformly from its
  range and the others rescaled to the rest.

It works for any plugin whose preset is a dataclass with ``segments`` (dataclasses with
``name``, ``share`` and :class:`~arena_rl.scenarios.specs.Distribution` traits) and a
``behaviour`` dataclass. A draw is a preset like any other, named ``<prior>/<k>``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from arena_rl.scenarios.specs import Distribution, SpecError, number, positive_int

Range = tuple[float, float]


@dataclass(frozen=True)
class PopulationPrior:
    """A validated population prior (see the module docstring for what each part does)."""

    name: str
    base: Any
    """The preset each draw perturbs (its ``n_users`` is the draws')."""
    factors: Mapping[str, Range]
    shifts: Mapping[str, Range]
    behaviour: Mapping[str, Range]
    concentration: float
    shares: Mapping[str, Range]

    @property
    def n_users(self) -> int:
        return int(self.base.n_users)

    def draw(self, seed: int | np.random.SeedSequence, index: int = 0) -> Any:
        """One population from the prior: the same seed gives the same population."""
        rng = np.random.default_rng(seed)
        segments = [self._segment(s, rng) for s in self.base.segments]
        shares = self._shares(rng)
        segments = [dataclasses.replace(s, share=shares[s.name]) for s in segments]
        constants = {
            key: float(rng.uniform(low, high)) for key, (low, high) in self.behaviour.items()
        }
        return dataclasses.replace(
            self.base,
            name=f"{self.name}/{index}",
            segments=tuple(segments),
            behaviour=dataclasses.replace(self.base.behaviour, **constants),
        )

    def _segment(self, segment: Any, rng: np.random.Generator) -> Any:
        changed = {}
        for trait, (low, high) in self.factors.items():
            factor = math.exp(rng.uniform(math.log(low), math.log(high)))
            changed[trait] = _moved(getattr(segment, trait), factor=factor)
        for trait, (low, high) in self.shifts.items():
            changed[trait] = _moved(getattr(segment, trait), shift=float(rng.uniform(low, high)))
        return dataclasses.replace(segment, **changed)

    def _shares(self, rng: np.random.Generator) -> dict[str, float]:
        names = [s.name for s in self.base.segments]
        base = np.array([s.share for s in self.base.segments])
        drawn = dict(zip(names, map(float, rng.dirichlet(self.concentration * base)), strict=True))
        fixed = {n: float(rng.uniform(low, high)) for n, (low, high) in self.shares.items()}
        rest = sum(v for n, v in drawn.items() if n not in fixed)
        left = 1.0 - sum(fixed.values())
        return {n: fixed.get(n, v * left / rest) for n, v in drawn.items()}


def _moved(dist: Distribution, factor: float = 1.0, shift: float = 0.0) -> Distribution:
    """``dist`` with its typical value times ``factor`` plus ``shift``, kept inside the
    trait's valid range."""
    if dist.kind == "beta":  # move the mean a / (a + b), keeping a + b (the concentration)
        total = dist.a + dist.b
        mean = min(max(dist.a / total * factor + shift, 0.01), 0.99)
        return dataclasses.replace(dist, a=mean * total, b=(1 - mean) * total)
    low = dist.lower if dist.kind != "lognormal" else max(dist.lower, 1e-9)
    return dataclasses.replace(dist, a=min(max(dist.a * factor + shift, low), dist.upper))


def prior_from_dict(
    data: Mapping[str, Any],
    base_of: Callable[[str], Any],
    where: str,
    positive: frozenset[str] = frozenset(),
) -> PopulationPrior:
    """Validate a prior given as a population file's ``prior:`` block (plus ``name`` and
    ``n_users`` beside it); ``base_of`` loads the base preset by name, and behaviour constants
    in ``positive`` must stay > 0. Each problem is named by its field, before work starts."""
    block = data["prior"]
    if not isinstance(block, Mapping):
        raise SpecError(f"{where}, field 'prior': expected a mapping")
    known = {"base", "factors", "shifts", "behaviour", "concentration", "shares"}
    unknown = set(block) - known
    if unknown:
        raise SpecError(
            f"{where}, prior: unknown field(s) {sorted(unknown)}; known: {sorted(known)}"
        )
    extra = set(data) - {"name", "scenario", "n_users", "prior"}
    if extra:
        raise SpecError(
            f"{where}: a prior file has name, scenario, n_users and prior; not {sorted(extra)}"
        )
    base = base_of(str(block.get("base", "default")))
    n_users = positive_int(data, "n_users", base.n_users, where, low=2)
    base = dataclasses.replace(base, n_users=n_users)
    traits = {f.name for f in dataclasses.fields(base.segments[0])} - {"name", "share"}
    constants = {f.name for f in dataclasses.fields(base.behaviour)}
    segments = {s.name for s in base.segments}
    factors = _ranges(block.get("factors"), f"{where}, prior.factors", traits, positive=True)
    shifts = _ranges(block.get("shifts"), f"{where}, prior.shifts", traits)
    both = set(factors) & set(shifts)
    if both:
        raise SpecError(f"{where}, prior: trait(s) {sorted(both)} both scaled and shifted")
    behaviour = _ranges(block.get("behaviour"), f"{where}, prior.behaviour", constants)
    for key, (low, _) in behaviour.items():
        if low < 0 or (low == 0 and key in positive):
            bound = "> 0 (it is a scale or a half-life)" if key in positive else ">= 0"
            raise SpecError(f"{where}, prior.behaviour.{key}: must be {bound}, got low {low}")
    shares = _ranges(block.get("shares"), f"{where}, prior.shares", segments)
    for name, (low, high) in shares.items():
        if low < 0 or high >= 1:
            raise SpecError(
                f"{where}, prior.shares.{name}: must lie in [0, 1), got [{low}, {high}]"
            )
    if shares and sum(high for _, high in shares.values()) >= 1:
        raise SpecError(
            f"{where}, prior.shares: the named segments' shares can reach "
            f"{sum(h for _, h in shares.values()):g}, leaving nothing for the others; they "
            "must sum to less than 1"
        )
    if set(shares) == segments:
        raise SpecError(f"{where}, prior.shares: leave at least one segment to take the rest")
    concentration = number(block.get("concentration", 50.0), f"{where}, prior.concentration")
    if not concentration > 0:
        raise SpecError(f"{where}, prior.concentration: must be > 0, got {concentration}")
    return PopulationPrior(
        name=str(data.get("name", "prior")),
        base=base,
        factors=factors,
        shifts=shifts,
        behaviour=behaviour,
        concentration=concentration,
        shares=shares,
    )


def _ranges(
    data: object, where: str, allowed: set[str], positive: bool = False
) -> dict[str, Range]:
    """``{name: [low, high]}`` with known names, finite numbers and low <= high."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a mapping of name -> [low, high]")
    unknown = set(map(str, data)) - allowed
    if unknown:
        raise SpecError(f"{where}: unknown name(s) {sorted(unknown)}; known: {sorted(allowed)}")
    out: dict[str, Range] = {}
    for name, pair in data.items():
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise SpecError(f"{where}.{name}: expected [low, high], got {pair!r}")
        low, high = (number(v, f"{where}.{name}") for v in pair)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise SpecError(f"{where}.{name}: bounds must be finite, got [{low}, {high}]")
        if low > high:
            raise SpecError(f"{where}.{name}: inverted range [{low}, {high}] (low > high)")
        if positive and low <= 0:
            raise SpecError(f"{where}.{name}: a factor range must be > 0, got [{low}, {high}]")
        out[str(name)] = (low, high)
    return out
