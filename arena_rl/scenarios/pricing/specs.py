"""The pricing scenario: its customer presets and tenant settings, YAML -> validated frozen
dataclasses, and the plugin itself (:class:`PricingScenario`).

Everything a user can mistype is checked here, before any simulation starts, and every error
names the file, the segment and the field. The model's equations, and what each parameter
means, are in ``docs/scenarios/pricing.md``.
"""

from __future__ import annotations

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
from arena_rl.scenarios.pricing.knobs import KNOBS
from arena_rl.scenarios.pricing.metrics import HARM_METRIC, METRICS, OBJECTIVE_METRIC
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
    from arena_rl.scenarios.pricing.population import Customers

PLUGIN = "pricing"


@dataclass(frozen=True)
class Segment:
    """One customer segment: its share of prospects and the distributions of its traits."""

    name: str
    share: float
    wtp: Distribution
    """Willingness to pay for a month of the product, USD/month."""
    price_sensitivity: Distribution
    """Logit of take-up per unit of relative surplus (WTP - price) / WTP."""
    loss_aversion: Distribution
    """How much more a price above the reference hurts than one below it pleases (>= 1)."""
    reference_price: Distribution
    """The market price a prospect has in mind before paying anything, USD/month."""
    reference_rate: Distribution
    """Share of the gap to each price paid that the reference price closes (per payment)."""
    trial_propensity: Distribution
    """Logit of starting a free trial of typical length at a price worth its WTP."""
    conversion_propensity: Distribution
    """Logit of paying at the end of a trial, before learning and price effects."""
    annual_propensity: Distribution
    """Logit of choosing the annual plan over the monthly one with no annual discount."""
    churn_hazard: Distribution
    """Daily cancellation hazard of a subscriber paying exactly its WTP, with no loss."""


TRAITS: tuple[str, ...] = tuple(f.name for f in fields(Segment))[2:]

TRAIT_BOUNDS: dict[str, tuple[float, float]] = {
    "wtp": (0.01, math.inf),
    "price_sensitivity": (0.0, math.inf),
    "loss_aversion": (1.0, math.inf),
    "reference_price": (0.01, math.inf),
    "reference_rate": (0.0, 1.0),
    "trial_propensity": (-math.inf, math.inf),
    "conversion_propensity": (-math.inf, math.inf),
    "annual_propensity": (-math.inf, math.inf),
    "churn_hazard": (0.0, 1.0),
}
"""Trait -> (lower, upper) bounds of the values a draw may take."""


@dataclass(frozen=True)
class Behaviour:
    """Population-wide mechanism constants (docs/scenarios/pricing.md, one per equation)."""

    judge_months: float = 1.0
    """Months H over which intro savings count: M intro months weigh 1 - e^(-M/H)."""
    trial_price_weight: float = 0.5
    """Weight of the price in the decision to start a free trial (nothing is paid yet)."""
    commitment_penalty: float = 2.5
    """Logit a prospect needs on top to pay on sign-up when there is no free trial."""
    trial_appeal: float = 0.3
    """Logit of trial take-up per ln(1 + trial_days / 7): longer free trials attract more."""
    trial_learning: float = 2.0
    """Logit of conversion a long trial adds at most (users learn the product's value)."""
    trial_learning_days: float = 5.0
    """Days over which that learning saturates (1 - 1/e of it by then)."""
    trial_lapse: float = 0.015
    """Logit of conversion lost per trial day (the decision loses urgency, users forget)."""
    reference_weight: float = 0.7
    """Logit of take-up and conversion per unit of relative gain against the reference price."""
    annual_discount_weight: float = 6.0
    """Logit of choosing the annual plan per unit of annual discount."""
    wtp_churn: float = 2.0
    """Log-hazard per unit of price over WTP (price / WTP - 1)."""
    loss_churn: float = 1.5
    """Log-hazard per unit of relative loss against the reference price (times λ)."""


POSITIVE_FIELDS = frozenset({"judge_months", "trial_learning_days"})
"""Behaviour constants that divide: zero is as invalid as negative."""


@dataclass(frozen=True)
class PricingPopulation:
    """A validated customer preset of the pricing scenario."""

    name: str
    segments: tuple[Segment, ...]
    n_users: int = 10_000
    """Prospects over all arms; each arm gets ``n_users // n_arms``."""
    initial_share: float = 0.3
    """Share of prospects who arrive on day 0."""
    arrival_days: int = 60
    """The rest arrive uniformly over days 1..arrival_days."""
    behaviour: Behaviour = field(default_factory=Behaviour)
    assignment: str = "complete"
    """"complete": each prospect's segment drawn independently; "stratified": exact mix."""


_POPULATION_FIELDS = {f.name for f in fields(PricingPopulation)} | {"scenario"}


def _segment(seg_name: object, seg: object, where: str, hint: str) -> Segment:
    """One validated segment; ``hint`` is appended to field-name errors."""
    seg_where = f"{where}: segment {seg_name!r}"
    if not isinstance(seg, Mapping):
        raise SpecError(f"{seg_where}: expected a mapping of traits")
    extra = set(seg) - {"share", *TRAITS}
    if extra:
        raise SpecError(f"{seg_where}: unknown field(s) {sorted(map(str, extra))}{hint}")
    missing = [t for t in ("share", *TRAITS) if t not in seg]
    if missing:
        raise SpecError(f"{seg_where}: missing field(s) {missing}{hint}")
    share = number(seg["share"], f"{seg_where}, field 'share'")
    if not 0 < share <= 1:
        raise SpecError(f"{seg_where}, field 'share': must be in (0, 1], got {share}")
    traits = {t: distribution(seg[t], f"{seg_where}, field {t!r}", TRAIT_BOUNDS[t]) for t in TRAITS}
    return Segment(name=str(seg_name), share=share, **traits)


def population_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> PricingPopulation:
    """Validate a customer preset given as a mapping (as read from YAML).

    An optional ``scenario`` key names the preset's plugin and must be "pricing"; a preset
    without one whose segments do not fit is probably another plugin's, and the error says so.
    """
    where = source
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__}")
    plugin = data.get("scenario")
    if plugin is not None and plugin != PLUGIN:
        raise SpecError(
            f"{where}: a population of the {plugin!r} scenario, not of {PLUGIN!r}; choose a "
            f"{PLUGIN} preset"
        )
    hint = "" if plugin else f" (not a {PLUGIN} preset? {PLUGIN} presets state 'scenario: pricing')"
    unknown = set(data) - _POPULATION_FIELDS
    if unknown:
        raise SpecError(
            f"{where}: unknown field(s) {sorted(map(str, unknown))}; known: "
            f"{sorted(_POPULATION_FIELDS)}{hint}"
        )
    segments_data = data.get("segments")
    if not isinstance(segments_data, Mapping) or not segments_data:
        raise SpecError(
            f"{where}: 'segments' must be a non-empty mapping of segment name -> traits"
        )
    segments = tuple(_segment(k, v, where, hint) for k, v in segments_data.items())
    total = sum(s.share for s in segments)
    if abs(total - 1.0) > 1e-6:
        raise SpecError(f"{where}: segment shares must sum to 1, got {total:.6g}")
    n_users = positive_int(data, "n_users", PricingPopulation.n_users, where, low=2)
    initial_share = number(
        data.get("initial_share", PricingPopulation.initial_share),
        f"{where}, field 'initial_share'",
    )
    if not 0 < initial_share <= 1:
        raise SpecError(f"{where}, field 'initial_share': must be in (0, 1], got {initial_share}")
    arrival_days = positive_int(data, "arrival_days", PricingPopulation.arrival_days, where, low=0)
    if arrival_days > 10_000:
        raise SpecError(f"{where}, field 'arrival_days': must be at most 10000, got {arrival_days}")
    assignment = data.get("assignment", PricingPopulation.assignment)
    if assignment not in ("complete", "stratified"):
        raise SpecError(
            f"{where}, field 'assignment': must be 'complete' or 'stratified', got {assignment!r}"
        )
    behaviour = dataclass_from(
        Behaviour, data.get("behaviour"), f"{where}, behaviour", POSITIVE_FIELDS
    )
    return PricingPopulation(
        name=str(data.get("name", source)),
        segments=segments,
        n_users=n_users,
        initial_share=initial_share,
        arrival_days=arrival_days,
        behaviour=behaviour,
        assignment=assignment,
    )


def load_population(name_or_path: str | Path = PLUGIN) -> PricingPopulation:
    """Load a customer preset by name (``conf/population/<name>.yaml``) or from a YAML path."""
    path = preset_path(name_or_path, "population")
    return population_from_dict(read_yaml(path), source=str(path))


ARM_SETS: Mapping[str, Arms] = MappingProxyType(
    {
        "default": {
            # the same offer, a fifth dearer: more revenue per subscriber, fewer of them
            "premium": {"monthly_price": 1.2},
            # a fifth cheaper: more subscribers, less from each
            "value": {"monthly_price": 0.8},
            # a longer trial and a deeper intro: buy acquisition with delayed revenue
            "acquire": {"trial_days": 2.0, "intro_discount": 1.5},
            # no intro offer and a bigger annual discount: fewer step-up losses, more lock-in
            "commit": {"intro_months": 0.0, "annual_discount": 1.6},
        }
    }
)
"""Named arm sets for the arm-based bandits (multipliers of the base economy)."""

LEVERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        # what every paying customer pays
        "price": ("monthly_price",),
        # what brings prospects in: free days and a cheaper start
        "acquisition": ("trial_days", "intro_discount", "intro_months"),
        # what keeps subscribers: the annual lock-in
        "retention": ("annual_discount",),
        # every discount at once
        "discounts": ("annual_discount", "intro_discount"),
    }
)
"""Named groups of knobs that move together, for strategies that nudge groups."""

DESCRIPTION = """\
A subscription product sold online. Prospects arrive over the experiment; each sees its variant's
offer (monthly price, annual discount, free trial length, intro discount and how many months it
lasts) and starts a free trial (or, with no trial, pays at once) or leaves. At the end of the
trial it pays or leaves; payers choose a monthly plan (renewed every 30 days at the variant's
current price once the intro months are over) or an annual one (twelve months at the annual
discount, paid up front, no cancelling within the year). Prospects judge prices against their
willingness to pay and a reference price: a market price at first, then drifting toward what
they pay. A price above the reference is a loss and hurts more than a saving pleases, so raising
the price on existing subscribers, or ending an intro discount, drives cancellations.

Signals per variant: enrolled = prospects arrived, active today / in the last 7 days = holding a
trial or a paid subscription, total actions = payments so far, and six metrics:
REVENUE_PER_USER (revenue recognised today per arrived prospect, USD), TRIAL_START_RATE (share of
arrived prospects who started a trial, or paid at once when there is no trial), CONVERSION_RATE
(share of ended trials that became paid), RETENTION_RATE (share of customers who ever paid who
still do), ANNUAL_SHARE (share of first payments on the annual plan) and ARPPU (revenue
recognised today per paying subscriber, as USD per 30 days).

Objective, per arrived prospect per day: revenue recognised today, in USD. Revenue is accrued: a
monthly payment counts 1/30 a day for 30 days, an annual one 1/365 a day for a year, so annual
plans are no windfall and free trials delay revenue. A higher price earns more from each
subscriber, but fewer prospects start, convert and stay."""


USER_EVENTS = (
    UserEventType("prospect arrived", "arrived_today"),
    UserEventType("subscribed", "subscribed"),
    UserEventType("charged", "charged", "USD paid that day"),
    UserEventType("cancelled", "cancelled"),
    UserEventType("lost", "lost"),
)
"""What the event log reads off a prospect's day (``Customers.user_day``)."""


@dataclass(frozen=True)
class PricingScenario:
    """A subscription business, as one tenant runs it: horizon, decision cadence and base offer.

    The second scenario plugin (see :class:`arena_rl.core.scenario.Scenario`). Arms never
    interact (each has its own prospects), so :meth:`isolated` is the scenario itself.
    """

    name: str = "pricing"
    days: int = 120
    """Horizon: long enough for four monthly renewals of the first prospects."""
    decision_interval: int = 1
    economy: Mapping[str, float] = field(default_factory=dict)
    """This tenant's overrides of the knobs' defaults."""
    guardrails: Mapping[str, Any] = field(default_factory=dict)
    tail_discount: float = TAIL_DISCOUNT
    """Daily discount of the revenue subscribers bring after the last day, added to the
    objective (``docs/scenarios/pricing.md``); 0 turns it off."""

    plugin = PLUGIN
    default_population = PLUGIN
    metrics = METRICS
    objective_metrics = (OBJECTIVE_METRIC,)
    harm_metric = HARM_METRIC
    user_events = USER_EVENTS

    @property
    def knobs(self) -> Knobs:
        """The five knobs of the offer."""
        return KNOBS

    def base_economy(self) -> dict[str, float]:
        """Knob defaults overridden by this tenant's economy."""
        return KNOBS.resolve(self.economy, where=f"scenario {self.name!r} economy")

    def population_from_dict(self, data: Mapping[str, Any], source: str) -> PricingPopulation:
        """Validate a customer preset (see :func:`population_from_dict`)."""
        return population_from_dict(data, source)

    def load_population(self, name_or_path: str | Path) -> PricingPopulation:
        """A customer preset by name or YAML path."""
        return load_population(name_or_path)

    def model(
        self,
        population: PricingPopulation,
        n_arms: int,
        seed: int | np.random.SeedSequence,
        n_users: int | None = None,
        twins: bool = False,
    ) -> Customers:
        """The vectorised customers (:class:`~arena_rl.scenarios.pricing.population.Customers`)."""
        from arena_rl.scenarios.pricing.population import Customers

        return Customers(population, n_arms, seed, n_users, twins, self.tail_discount)

    def isolated(self) -> PricingScenario:
        """Arms never share customers or prices: already isolated."""
        return self

    def estimate_objective(self, signals: Signals) -> float | None:
        """REVENUE_PER_USER is the objective itself, observed: today's recognised revenue per
        arrived prospect (USD); None before anyone has arrived."""
        metric = signals.metrics.get(OBJECTIVE_METRIC)
        if metric is None or metric.sample_size == 0:
            return None
        return metric.value

    def arm_sets(self) -> Mapping[str, Arms]:
        """Four offers around the base: dearer, cheaper, acquisition-heavy, commitment-heavy."""
        return ARM_SETS

    def search_box(self) -> Mapping[str, tuple[float, float]]:
        """Empty: searchers derive the box from the knob bounds, which are already plausible
        offers (a multiplier box would be meaningless for knobs whose base may be 0)."""
        return {}

    def levers(self) -> Mapping[str, tuple[str, ...]]:
        """Price, acquisition, retention and discount groups."""
        return LEVERS

    def describe(self) -> str:
        """The scenario, its signals and objective, then one line per knob."""
        return f"{DESCRIPTION}\n\nKnobs:\n{KNOBS.describe()}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> PricingScenario:
        """Validate a scenario given as a mapping (as read from YAML or composed by Hydra)."""
        if not isinstance(data, Mapping):
            raise SpecError(f"{source}: expected a mapping, got {type(data).__name__}")
        allowed = {f.name for f in fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise SpecError(
                f"{source}: unknown field(s) {sorted(map(str, unknown))}; known: {sorted(allowed)}"
            )
        days = positive_int(data, "days", cls.days, source)
        interval = positive_int(data, "decision_interval", cls.decision_interval, source)
        economy = data.get("economy") or {}
        if not isinstance(economy, Mapping):
            raise SpecError(f"{source}, field 'economy': expected a mapping of knobs")
        guardrails = data.get("guardrails") or {}
        if not isinstance(guardrails, Mapping):
            raise SpecError(f"{source}, field 'guardrails': expected a mapping")
        try:
            clean = KNOBS.validate(economy, where=f"{source}, field 'economy'")
        except KnobError as exc:
            raise SpecError(str(exc)) from exc
        return cls(
            name=str(data.get("name", cls.name)),
            days=days,
            decision_interval=interval,
            economy=clean,
            guardrails=dict(guardrails),
            tail_discount=tail_discount(data, source),
        )
