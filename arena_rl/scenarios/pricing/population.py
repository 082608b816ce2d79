"""The synthetic customers of a subscription business: segment traits -> state arrays, and one
event-driven, vectorised day step.

Customers live in ``(n_arms, users_per_arm)`` arrays (row 0 = control), each arm's row sorted
by arrival day. A customer makes a decision only on a few days: on arrival (take the offer or
leave), at the end of a trial (pay or leave) and at each renewal (pay the current price or
cancel). Each holds the day of its next decision in ``next_event``, so a day is one comparison
over every customer, then whole-array arithmetic on the few who are due, gathered by flat
index: no Python loop over customers or arms. Revenue is recognised daily from each customer's
``rate`` (USD/day), which changes only at a payment or a cancellation.

Random draws are counter-based: the uniform behind a decision is a hash of (seed, arm, customer,
day, decision), so it costs nothing for customers with nothing to decide, and in twins mode
(the arm left out of the hash) every arm's customer faces the same draw for the same decision on
the same day: common random numbers even when arms' events fall on different days. The
equations, and the findings each stands for, are in ``docs/scenarios/pricing.md``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from arena_rl.core.scenario import DayOutcome
from arena_rl.core.signals import Signals, Summaries
from arena_rl.core.stats import MeanSummary
from arena_rl.scenarios.pricing import metrics
from arena_rl.scenarios.pricing.knobs import (
    ANNUAL_DISCOUNT,
    INTRO_DISCOUNT,
    INTRO_MONTHS,
    KNOBS,
    PRICE,
    TRIAL_DAYS,
)
from arena_rl.scenarios.pricing.specs import TRAITS, PricingPopulation
from arena_rl.scenarios.specs import draw_cohort, users_per_arm

F32 = np.float32
MONTH_DAYS = metrics.MONTH_DAYS
"""A billing month, in days."""
YEAR_DAYS = 365
"""An annual plan's term, in days."""
NEVER = np.iinfo(np.int16).max
"""``next_event`` of a customer with nothing left to decide (left, churned)."""
LONG_AGO = np.iinfo(np.int16).min
"""``last_day`` of a customer still subscribed, or never subscribed."""
MAX_DAY = int(NEVER) - YEAR_DAYS - 1
"""Days are int16; the last day on which an annual renewal can still be scheduled."""

# ``status`` codes: where each customer stands
PENDING, LEFT, TRIAL, MONTHLY, ANNUAL, CHURNED = range(6)

# ``_uniform`` purposes: which decision a draw is for
_START, _CONVERT, _PLAN, _RENEW = range(4)
_MASK64 = (1 << 64) - 1
_K_COL, _K_DAY, _K_USE = 0x9E3779B97F4A7C15, 0x8CB92BA72F3D8DD7, 0xF1357AEA2E62A9C5
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)

COUNTS = ("started", "trials_started", "trials_ended", "converted", "paid_first",
          "annual_first", "payments", "churned")  # fmt: skip
"""Per-arm running totals kept by the step (int64, shape (n_arms,))."""
DAY_COUNTS = ("payments", "new_subscribers", "renewals", "trials_started", "churned")
"""Per-arm counts of one day, in ``DayOutcome.totals`` (with revenue, cash, subscribers and
trials)."""


def _gain(price: np.ndarray, reference: np.ndarray, loss_aversion: np.ndarray) -> np.ndarray:
    """Reference-dependent value of a price: the relative saving (r - p) / r, or λ times the
    relative loss when the price is above the reference (Kahneman & Tversky 1979)."""
    g = (reference - price) / reference
    return np.where(g < 0.0, loss_aversion * g, g)


def _bernoulli(u: np.ndarray, logit: np.ndarray) -> np.ndarray:
    """True with probability sigmoid(logit), given uniforms ``u`` on (0, 1): u < 1/(1+e^-z)."""
    return u * (1.0 + np.exp(-np.clip(logit, -30.0, 30.0))) < 1.0


class _Offer:
    """Today's offer of every arm, as (n_arms,) float64 columns, and what follows from it.

    Recomputed only when the economy table changes (a static economy costs nothing here).
    """

    def __init__(self, economy: np.ndarray, judge_months: float) -> None:
        self.economy = economy.copy()
        self.price = economy[:, PRICE]
        """Monthly list price, USD/month."""
        self.annual_discount = economy[:, ANNUAL_DISCOUNT]
        self.trial_days = np.rint(economy[:, TRIAL_DAYS]).astype(np.int64)
        self.intro_discount = economy[:, INTRO_DISCOUNT]
        self.intro_months = np.rint(economy[:, INTRO_MONTHS]).astype(np.int64)
        # intro savings count with diminishing weight 1 - e^(-M/H): the first months most
        intro_weight = -np.expm1(-self.intro_months / judge_months)
        self.judged_monthly = self.price * (1.0 - self.intro_discount * intro_weight)
        """Judged price of the monthly plan at sign-up, USD/month."""
        self.annual_monthly = self.price * (1.0 - self.annual_discount)
        """The annual plan's price per month, USD/month (twelve of them are paid up front)."""


class Customers:
    """Prospects and subscribers of every arm of one experiment, stepped one day at a time.

    Args:
        spec: the customer preset.
        n_arms: control plus one arm per treatment variant.
        seed: root seed; traits, arrivals and decisions come from spawned streams.
        n_users: prospects over all arms (default: the preset's); each arm gets
            ``n_users // n_arms``.
        twins: ground-truth mode: every arm gets the *same* prospects and the same draw for
            the same decision on the same day (common random numbers), so arms differ only by
            their offer.
        tail_discount: daily discount of the revenue after the last day (the scenario's;
            0: none is counted).
    """

    def __init__(
        self,
        spec: PricingPopulation,
        n_arms: int,
        seed: int | np.random.SeedSequence = 0,
        n_users: int | None = None,
        twins: bool = False,
        tail_discount: float = 0.0,
    ) -> None:
        m = users_per_arm(spec.n_users if n_users is None else n_users, n_arms)
        self.spec, self.behaviour = spec, spec.behaviour
        self.tail_discount = tail_discount
        self.n_arms, self.users_per_arm, self.twins = n_arms, m, twins
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        trait_seq, arrival_seq, day_seq = seq.spawn(3)
        self._key = int(day_seq.generate_state(1, np.uint64)[0])
        arrival_rng, trait_rng = (
            np.random.default_rng(arrival_seq),
            np.random.default_rng(trait_seq),
        )
        shape = (n_arms, m)
        cohort = draw_cohort(
            spec.segments,
            TRAITS,
            n_arms=n_arms,
            users_per_arm=m,
            initial_share=spec.initial_share,
            join_days=spec.arrival_days,
            assignment=spec.assignment,
            twins=twins,
            join_rng=arrival_rng,
            trait_rng=trait_rng,
        )
        self.arrival, self.segment, self.traits = cohort.join_day, cohort.segment, cohort.traits
        # prospects of each arm arrived by day d (column d; constant after the last arrival day)
        self._arrived_by = cohort.joined_by

        # state
        self.status = np.full(shape, PENDING, np.int8)
        self.alive = np.zeros(shape, F32)
        """1 where a customer holds a trial or a paid subscription today."""
        self.next_event = self.arrival.copy()
        """Day of each customer's next decision (arrival, trial end, renewal) or NEVER."""
        self.rate = np.zeros(shape, F32)
        """Revenue recognised per day from each customer, USD/day (0 unless paying)."""
        self.value_total = np.zeros(shape, F32)
        """Revenue recognised from each customer so far, USD: the objective, customer by
        customer (its tail value too, once credited)."""
        self.tail_credited = False
        self.reference = self.traits["reference_price"].copy()
        """Reference price, USD/month: the market's until the first payment."""
        self.intro_left = np.zeros(shape, np.int8)
        """Monthly payments still at the intro discount."""
        self.intro_factor = np.ones(shape, F32)
        """1 - the intro discount promised at sign-up."""
        self.payments = np.zeros(shape, np.int16)
        self.last_day = np.full(shape, LONG_AGO, np.int16)
        """Last day a customer who no longer holds a trial or subscription held one."""
        self.counts = {name: np.zeros(n_arms, np.int64) for name in COUNTS}
        self.cash = np.zeros(n_arms)
        """USD charged so far, per arm."""
        self.day = 0
        self._due = np.zeros(shape, bool)
        self._offer: _Offer | None = None
        self._bind_flat_views()

    def _bind_flat_views(self) -> None:
        """Flat views of the state: the due customers are gathered and scattered by flat index.
        Views share memory with the arrays only until pickled, so unpickling binds them anew."""
        self._flat: Mapping[str, np.ndarray] = {
            name: getattr(self, name).reshape(-1)
            for name in ("status", "alive", "next_event", "rate", "reference", "intro_left",
                         "intro_factor", "payments", "last_day", "arrival")
        }  # fmt: skip
        self._flat_traits = {name: v.reshape(-1) for name, v in self.traits.items()}

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        del state["_flat"], state["_flat_traits"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._bind_flat_views()

    # ---- counts --------------------------------------------------------------------------------

    def enrolled_by(self, day: int) -> np.ndarray:
        """(n_arms,) prospects of each arm arrived on or before ``day``."""
        if day < 0:
            return np.zeros(self.n_arms, np.int64)
        return self._arrived_by[:, min(day, self.spec.arrival_days)]

    def subscribers(self) -> np.ndarray:
        """(n_arms,) customers paying for a subscription now."""
        return self.counts["paid_first"] - self.counts["churned"]

    def trials(self) -> np.ndarray:
        """(n_arms,) customers in a free trial now."""
        return self.counts["trials_started"] - self.counts["trials_ended"]

    def state_nbytes(self) -> int:
        """Bytes held in per-customer arrays: traits, state and scratch."""
        arrays = [*self.traits.values(), *self._flat.values(), self.segment, self._due,
                  self.value_total]  # fmt: skip
        return sum(a.nbytes for a in arrays)

    # ---- the Model protocol ----------------------------------------------------------------------

    def step(self, economies: np.ndarray) -> DayOutcome:
        """Simulate one day for every customer of every arm (docs/scenarios/pricing.md §2).

        Args:
            economies: (n_arms, 5) offers in knob order, row 0 = control.

        Returns:
            Per-arm totals of the day; ``value`` is revenue recognised today per arrived
            prospect, USD.
        """
        offer = self._open_day(economies)
        t = self.day
        np.equal(self.next_event, t, out=self._due)
        due = np.flatnonzero(self._due)
        today = {name: np.zeros(self.n_arms, np.int64) for name in DAY_COUNTS}
        cash = np.zeros(self.n_arms)
        if due.size:
            status = self._flat["status"][due]
            self._arrivals(offer, due[status == PENDING], today, cash)
            self._trial_ends(offer, due[status == TRIAL], today, cash)
            self._renewals(offer, due[(status == MONTHLY) | (status == ANNUAL)], today, cash)
        self.day = t + 1
        self.value_total += self.rate
        enrolled = self.enrolled_by(t)
        revenue = self.rate.sum(axis=1, dtype=np.float64)
        subscribers, trials = self.subscribers(), self.trials()
        return DayOutcome(
            day=t,
            enrolled=enrolled,
            active=(subscribers + trials).astype(np.float64),
            value=revenue / np.maximum(enrolled, 1),
            totals={
                "revenue": revenue,
                "cash": cash,
                **{name: count.astype(np.float64) for name, count in today.items()},
                "subscribers": subscribers.astype(np.float64),
                "trials": trials.astype(np.float64),
            },
        )

    def summarise(self) -> Summaries:
        """Per metric (``metrics.METRICS``, in order), one summary per arm."""
        return metrics.summarise(self)

    def objective_summary(self) -> list[MeanSummary]:
        """Each arm's revenue per arrived prospect so far, customer by customer."""
        return metrics.objective_summary(self)

    def signals(self, summaries: Summaries) -> list[Signals]:
        """What a live agent sees of each arm (index 0 = control)."""
        return metrics.signals(self, summaries)

    def user_day(self, alive_before: np.ndarray) -> dict[str, np.ndarray]:
        """The last simulated day of every arrived prospect, as equal-length columns.

        Args:
            alive_before: ``alive`` as it was before that day's step (to tell today's losses).

        Returns:
            ``arm`` (int8), ``user`` (int32, index within the arm), ``arrived_today``,
            ``subscribed`` (trial or paid), ``trial``, ``annual``, ``lost`` (held a trial or
            subscription yesterday, not today), ``cancelled`` (a paid subscription ended
            today), all bool; ``charged`` (USD paid today), ``revenue`` (USD recognised
            today), ``reference`` (reference price, USD/month), all float32.
        """
        t = self.day - 1
        arrived = self.arrival <= t
        arm, user = np.nonzero(arrived)
        status, rate = self.status[arrived], self.rate[arrived]
        paid_annual = status == ANNUAL
        period = np.where(paid_annual, YEAR_DAYS, MONTH_DAYS)
        paid_today = (status >= MONTHLY) & (status <= ANNUAL)
        paid_today &= self.next_event[arrived] - period == t
        alive = self.alive[arrived] > 0
        lost = (alive_before[arrived] > 0) & ~alive
        return {
            "arm": arm.astype(np.int8),
            "user": user.astype(np.int32),
            "arrived_today": self.arrival[arrived] == t,
            "subscribed": alive,
            "trial": status == TRIAL,
            "annual": paid_annual,
            "lost": lost,
            "cancelled": lost & (status == CHURNED),
            "charged": np.where(paid_today, rate * period, 0.0).astype(F32),
            "revenue": rate,
            "reference": self.reference[arrived],
        }

    # ---- the decisions of one day, in order ------------------------------------------------------
    # Each works on the flat indices ``idx`` of the customers due for it today, gathers their
    # traits and state, decides with whole-array arithmetic (float64: the subsets are small) and
    # scatters the new state back. ``today`` and ``cash`` collect per-arm totals of the day.

    def _open_day(self, economies: np.ndarray) -> _Offer:
        """Check the economy table and return its offer (rebuilt only when the table changed)."""
        economy = np.asarray(economies, dtype=np.float64)
        if economy.shape != (self.n_arms, len(KNOBS)):
            raise ValueError(
                f"economies must have shape ({self.n_arms}, {len(KNOBS)}), got {economy.shape}"
            )
        if self.day > MAX_DAY:
            raise ValueError(f"days are int16: the model cannot step past day {MAX_DAY}")
        if self._offer is None or not np.array_equal(economy, self._offer.economy):
            self._offer = _Offer(economy, self.behaviour.judge_months)
        return self._offer

    def _uniform(self, idx: np.ndarray, purpose: int) -> np.ndarray:
        """Uniforms on (0, 1), one per customer in ``idx``, for ``purpose`` today.

        A SplitMix64 finaliser hashes (seed, arm, customer, day, purpose); the arm is left out in
        twins mode, so every arm's twin of a customer gets the same draw.
        """
        m = self.users_per_arm
        salt = (self._key + self.day * _K_DAY + purpose * _K_USE) & _MASK64
        who = idx % m if self.twins else idx  # a flat index names the arm and the customer
        z = who.astype(np.uint64) * np.uint64(_K_COL) + np.uint64(salt)
        z ^= z >> np.uint64(30)
        z *= _M1
        z ^= z >> np.uint64(27)
        z *= _M2
        z ^= z >> np.uint64(31)
        return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53

    def _annual_probability(self, offer: _Offer, idx: np.ndarray, arm: np.ndarray) -> np.ndarray:
        """Chance π that each customer in ``idx`` would choose the annual plan (§2.4):
        sigmoid(annual_propensity + κ·annual_discount)."""
        logit = self._flat_traits["annual_propensity"][idx] + (
            self.behaviour.annual_discount_weight * offer.annual_discount[arm]
        )
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -30.0, 30.0)))

    def _judged(
        self, offer: _Offer, idx: np.ndarray, arm: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """What a prospect weighs at sign-up (§2.1), one value per customer in ``idx``.

        The judged price p̂ is the plans' judged prices (USD/month) weighted by the chance π of
        choosing the annual plan. Returns the surplus term β·σ, σ = (WTP - p̂) / WTP clipped to
        [-3, 1], and the reference term ω·G(p̂, r)."""
        tr = self._flat_traits
        annual = self._annual_probability(offer, idx, arm)
        judged = offer.judged_monthly[arm] + annual * (
            offer.annual_monthly[arm] - offer.judged_monthly[arm]
        )
        wtp = tr["wtp"][idx]
        surplus = np.clip(1.0 - judged / wtp, -3.0, 1.0) * tr["price_sensitivity"][idx]
        gain = _gain(judged, self._flat["reference"][idx], tr["loss_aversion"][idx])
        return surplus, self.behaviour.reference_weight * gain

    def _arrivals(
        self, offer: _Offer, idx: np.ndarray, today: dict[str, np.ndarray], cash: np.ndarray
    ) -> None:
        """Arrival (§2.2): start a free trial, or pay at once when there is none, or leave.

        logit = trial_propensity + (T > 0 ? a_T·ln((1 + T/7) / 2) + ρ·(βσ + ωG)
                                          : -c + βσ + ωG), at the judged price."""
        if not idx.size:
            return
        b, f = self.behaviour, self._flat
        arm = idx // self.users_per_arm
        trial_days = offer.trial_days[arm]
        surplus, gain = self._judged(offer, idx, arm)
        has_trial = trial_days > 0
        appeal = b.trial_appeal * np.log((1.0 + trial_days / 7.0) / 2.0)
        logit = self._flat_traits["trial_propensity"][idx] + np.where(
            has_trial,
            appeal + b.trial_price_weight * (surplus + gain),
            surplus + gain - b.commitment_penalty,
        )
        start = _bernoulli(self._uniform(idx, _START), logit)
        trial = start & has_trial
        self.counts["started"] += np.bincount(arm[start], minlength=self.n_arms)
        self.counts["trials_started"] += np.bincount(arm[trial], minlength=self.n_arms)
        today["trials_started"] += np.bincount(arm[trial], minlength=self.n_arms)
        left = idx[~start]
        f["status"][left] = LEFT
        f["next_event"][left] = NEVER
        trials = idx[trial]
        f["status"][trials] = TRIAL
        f["alive"][trials] = 1.0
        f["next_event"][trials] = self.day + trial_days[trial]
        buyers = start & ~has_trial
        self._pay(offer, idx[buyers], arm[buyers], True, today, cash)

    def _trial_ends(
        self, offer: _Offer, idx: np.ndarray, today: dict[str, np.ndarray], cash: np.ndarray
    ) -> None:
        """Trial end (§2.3): pay, or leave. With T = days of trial the customer had,
        logit = conversion_propensity + g·(1 - e^(-T/τ)) - δ·T + βσ + ωG, at the judged price.
        """
        if not idx.size:
            return
        b, f = self.behaviour, self._flat
        arm = idx // self.users_per_arm
        length = (self.day - f["arrival"][idx]).astype(np.float64)
        surplus, gain = self._judged(offer, idx, arm)
        learning = b.trial_learning * -np.expm1(-length / b.trial_learning_days)
        logit = self._flat_traits["conversion_propensity"][idx] + learning
        logit += surplus + gain - b.trial_lapse * length
        convert = _bernoulli(self._uniform(idx, _CONVERT), logit)
        self.counts["trials_ended"] += np.bincount(arm, minlength=self.n_arms)
        self.counts["converted"] += np.bincount(arm[convert], minlength=self.n_arms)
        lapsed = idx[~convert]
        f["status"][lapsed] = LEFT
        f["alive"][lapsed] = 0.0
        f["next_event"][lapsed] = NEVER
        f["last_day"][lapsed] = self.day - 1
        self._pay(offer, idx[convert], arm[convert], True, today, cash)

    def _renewals(
        self, offer: _Offer, idx: np.ndarray, today: dict[str, np.ndarray], cash: np.ndarray
    ) -> None:
        """Renewal (§2.5): cancel with probability 1 - exp(-30·h), the billing month's share of
        a daily hazard h = h0·exp(γ·(p/WTP - 1) + θ·λ·max(p - r, 0)/r), at the price p due now (the
        current price; the intro price while intro months last), or pay it."""
        if not idx.size:
            return
        f = self._flat
        arm = idx // self.users_per_arm
        stay = self._uniform(idx, _RENEW) < np.exp(-MONTH_DAYS * self._hazard(offer, idx))
        cancelled, arm_c = idx[~stay], arm[~stay]
        f["status"][cancelled] = CHURNED
        f["alive"][cancelled] = 0.0
        f["rate"][cancelled] = 0.0
        f["next_event"][cancelled] = NEVER
        f["last_day"][cancelled] = self.day - 1
        lost = np.bincount(arm_c, minlength=self.n_arms)
        self.counts["churned"] += lost
        today["churned"] += lost
        self._pay(offer, idx[stay], arm[stay], False, today, cash)

    def _hazard(self, offer: _Offer, idx: np.ndarray) -> np.ndarray:
        """Each subscriber's daily churn hazard at the price due at their next renewal."""
        b, f, tr = self.behaviour, self._flat, self._flat_traits
        arm = idx // self.users_per_arm
        annual = f["status"][idx] == ANNUAL
        intro = (f["intro_left"][idx] > 0) & ~annual
        price = np.where(annual, offer.annual_monthly[arm], offer.price[arm])
        price = np.where(intro, price * f["intro_factor"][idx], price)
        reference = f["reference"][idx]
        loss = tr["loss_aversion"][idx] * np.maximum(price - reference, 0.0) / reference
        log_h = b.wtp_churn * (price / tr["wtp"][idx] - 1.0) + b.loss_churn * loss
        return tr["churn_hazard"][idx] * np.exp(np.clip(log_h, -30.0, 10.0))

    def tail_per_user(self) -> np.ndarray:
        """(n_arms, users_per_arm) each customer's expected discounted revenue after the last
        simulated day, if the offer stays as it is: a paying subscriber's recognised daily
        revenue times ``Σₖ (γ·s)ᵏ = γs / (1 − γs)``, with γ the scenario's ``tail_discount``
        and ``s`` the daily survival implied by their churn hazard at the price due at their
        next renewal (``exp(−h)`` monthly, ``exp(−h·30/365)`` on an annual plan). Trials and
        prospects count nothing (they have not paid yet); an intro price is carried on as it is."""
        tail = np.zeros(self.rate.shape, F32)
        gamma = self.tail_discount
        paying = np.flatnonzero(self._flat["rate"] > 0)
        if gamma == 0 or self._offer is None or not paying.size:
            return tail
        # a renewal cancels with probability 1 − exp(−30·h), once a month or once a year
        period = np.where(self._flat["status"][paying] == ANNUAL, YEAR_DAYS, MONTH_DAYS)
        kept = gamma * np.exp(-self._hazard(self._offer, paying) * MONTH_DAYS / period)
        tail.reshape(-1)[paying] = self._flat["rate"][paying] * kept / (1.0 - kept)
        return tail

    def credit_tail(self) -> np.ndarray:
        """At the horizon, once: add each customer's tail value (:meth:`tail_per_user`) to
        their ``value_total``; returns (n_arms,) the tail per arrived prospect."""
        if self.tail_credited:
            raise RuntimeError("the tail was already credited: the horizon is reached once")
        tail = self.tail_per_user()
        self.value_total += tail
        self.tail_credited = True
        return tail.sum(axis=1, dtype=np.float64) / np.maximum(self.enrolled_by(self.day - 1), 1)

    def _pay(
        self,
        offer: _Offer,
        idx: np.ndarray,
        arm: np.ndarray,
        first: bool,
        today: dict[str, np.ndarray],
        cash: np.ndarray,
    ) -> None:
        """A payment (§2.4): a first payer chooses its plan (annual with logit
        annual_propensity + κ·annual_discount) and locks in the intro terms; then a monthly
        payer pays the current price (times the intro factor while intro months last) for 30
        days, an annual payer twelve months at the annual discount for 365; the reference price
        moves a share α of the way to the monthly price paid."""
        if not idx.size:
            return
        f, tr = self._flat, self._flat_traits
        if first:
            annual = self._uniform(idx, _PLAN) < self._annual_probability(offer, idx, arm)
            f["status"][idx] = np.where(annual, ANNUAL, MONTHLY)
            f["alive"][idx] = 1.0
            f["intro_left"][idx] = np.where(annual, 0, offer.intro_months[arm])
            f["intro_factor"][idx] = 1.0 - offer.intro_discount[arm]
            self.counts["paid_first"] += np.bincount(arm, minlength=self.n_arms)
            self.counts["annual_first"] += np.bincount(arm[annual], minlength=self.n_arms)
        else:
            annual = f["status"][idx] == ANNUAL
        intro_left = f["intro_left"][idx]
        price = offer.price[arm]
        monthly = np.where(intro_left > 0, price * f["intro_factor"][idx], price)
        monthly = np.where(annual, offer.annual_monthly[arm], monthly)
        f["intro_left"][idx] = np.maximum(intro_left - 1, 0)
        charged = np.where(annual, 12.0 * monthly, monthly)
        f["rate"][idx] = np.where(annual, charged / YEAR_DAYS, charged / MONTH_DAYS)
        f["next_event"][idx] = self.day + np.where(annual, YEAR_DAYS, MONTH_DAYS)
        f["payments"][idx] += 1
        reference = f["reference"][idx]
        f["reference"][idx] = reference + tr["reference_rate"][idx] * (monthly - reference)
        paid = np.bincount(arm, minlength=self.n_arms)
        self.counts["payments"] += paid
        today["payments"] += paid
        today["new_subscribers" if first else "renewals"] += paid
        spent = np.bincount(arm, weights=charged, minlength=self.n_arms)
        self.cash += spent
        cash += spent
