"""Calibration of the population against published behavioural effect sizes.

Each :class:`Effect` is one behavioural claim of the model (docs/population.md §4), stated in
units the simulator can measure, with the published range, its source and the experiment that
measures it on the simulated population. ``scripts/calibrate.py`` prints the table,
``tests/test_calibration.py`` checks that every effect has the status ``docs/calibration.md``
documents for it. The model is not fitted to these figures: the table says where it agrees.

Experiments run in twins mode (every arm holds the same users and the same daily draws), so an
arm difference carries no user-sampling noise; the spread over seeds gives the CI.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, ECONOMY_KEYS, economy_array
from arena_rl.scenarios.gamification.population import Population
from arena_rl.scenarios.gamification.specs import (
    GamificationScenario,
    PopulationSpec,
    load_population,
)

DAYS = 28
"""Horizon of the default scenario: between-subject effects are read over it."""
PRE_DAYS = 14
"""Days users spend on the old economy before a change, so their reference point is set."""
XP_KEYS = tuple(k for k in ECONOMY_KEYS if not k.endswith("Cap"))
"""The XP amounts (caps are counts, not XP, and stay as they are when XP is scaled)."""


def scaled_economy(factor: float, **overrides: float) -> dict[str, float]:
    """The default economy with every XP amount times ``factor`` (caps unchanged)."""
    economy = {k: v * factor if k in XP_KEYS else v for k, v in DEFAULT_ECONOMY.items()}
    economy.update(overrides)
    return economy


@dataclass(frozen=True)
class Setup:
    """What every experiment runs on: the preset, the scenario and the arm size."""

    spec: PopulationSpec
    scenario: GamificationScenario
    users_per_arm: int = 20_000

    @classmethod
    def default(cls, users_per_arm: int = 20_000, preset: str = "default") -> Setup:
        """The named preset with the default scenario."""
        scenario = load_scenario("default")
        assert isinstance(scenario, GamificationScenario)
        return cls(load_population(preset), scenario, users_per_arm)

    def cohort(self) -> PopulationSpec:
        """The preset with everyone enrolled on day 0: for changes made to established users,
        whose tenure must be the same when the economy changes."""
        return dataclasses.replace(self.spec, initial_share=1.0, enrol_days=0)


Phases = Sequence[tuple[int, Sequence[Mapping[str, float]]]]


def simulate(
    setup: Setup, phases: Phases, seed: int, *, cohort: bool
) -> tuple[Population, np.ndarray]:
    """Run twins arms through ``phases`` (days, one economy per arm) and return the population
    and the (days, n_arms) share of enrolled users active each day."""
    n_arms = len(phases[0][1])
    spec = setup.cohort() if cohort else setup.spec
    pop = Population(
        spec, setup.scenario, n_arms, seed=seed, n_users=n_arms * setup.users_per_arm, twins=True
    )
    daily = []
    for days, economies in phases:
        table = economy_array(list(economies))
        for _ in range(days):
            outcome = pop.step(table)
            daily.append(outcome.active / np.maximum(outcome.enrolled, 1))
    return pop, np.asarray(daily)


def active_share(pop: Population) -> np.ndarray:
    """(n_arms, users) each user's share of enrolled days on which they were active."""
    days_in = np.maximum(pop.day - pop.enrol_day.astype(np.float64), 1.0)
    return pop.active_days / days_in


def cohens_d(treated: np.ndarray, control: np.ndarray) -> float:
    """Standardised mean difference with the pooled SD, as the meta-analyses report it."""
    pooled = math.sqrt((treated.var(ddof=1) + control.var(ddof=1)) / 2)
    return float((treated.mean() - control.mean()) / pooled)


# ---- the experiments: one seed in, one number out ----------------------------------------------


def gamification_lift(setup: Setup, seed: int) -> float:
    """d of per-user active-day share, default XP economy vs no XP at all, over 28 days from
    enrolment (a between-subject gamified vs non-gamified comparison)."""
    pop, _ = simulate(setup, [(DAYS, [scaled_economy(0.0), DEFAULT_ECONOMY])], seed, cohort=False)
    share = active_share(pop)
    return cohens_d(share[1], share[0])


def diminishing_returns(setup: Setup, seed: int) -> float:
    """Active days gained by raising all XP 50 % above default, as a share of those gained by
    the default over no XP: below 0.5 means a concave response (linear would give 0.5)."""
    arms = [scaled_economy(0.0), DEFAULT_ECONOMY, scaled_economy(1.5)]
    pop, _ = simulate(setup, [(DAYS, arms)], seed, cohort=False)
    days = pop.active_days.mean(axis=1)
    return float((days[2] - days[1]) / (days[1] - days[0]))


def streak_bonus(setup: Setup, seed: int) -> float:
    """Percentage points of active-day share added by the default streak bonus (vs
    ``streakBonusPerDay`` 0), over 28 days from enrolment."""
    arms = [scaled_economy(1.0, streakBonusPerDay=0.0), DEFAULT_ECONOMY]
    pop, _ = simulate(setup, [(DAYS, arms)], seed, cohort=False)
    share = active_share(pop).mean(axis=1)
    return float(100 * (share[1] - share[0]))


def streak_framing(setup: Setup, seed: int) -> float:
    """Lift of the streak bonus (forfeited by a missed day: loss-framed) over the lift of a flat
    daily bonus paying the same XP per active day (gain-framed), both vs no bonus."""
    base = scaled_economy(1.0, streakBonusPerDay=0.0)
    bonus = _mean_streak_bonus_per_active_day(setup, seed)
    flat = scaled_economy(1.0, streakBonusPerDay=0.0)
    flat["firstScanOfDayXp"] += bonus
    pop, _ = simulate(setup, [(DAYS, [base, DEFAULT_ECONOMY, flat])], seed, cohort=False)
    share = active_share(pop).mean(axis=1)
    return float((share[1] - share[0]) / (share[2] - share[0]))


def _mean_streak_bonus_per_active_day(setup: Setup, seed: int) -> float:
    """Mean streak bonus XP paid per active day under the default economy (from each active
    user-day's streak after the day, as the platform pays it)."""
    spec, econ = setup.spec, DEFAULT_ECONOMY
    pop = Population(spec, setup.scenario, 1, seed=seed, n_users=setup.users_per_arm, twins=True)
    table = economy_array([econ])
    paid, days = 0.0, 0.0
    for _ in range(DAYS):
        pop.step(table)
        n = pop.n_enrolled
        active = (pop.recent[0, :n] & 1).astype(bool)
        bonus = np.minimum(pop.streak[0, :n][active] * econ["streakBonusPerDay"],
                           econ["streakBonusCap"])  # fmt: skip
        paid += float(bonus.sum())
        days += float(active.sum())
    return paid / max(days, 1.0)


def loss_aversion(setup: Setup, seed: int, change: float = 0.2) -> float:
    """|drop| in daily active share after all XP is cut by ``change`` over the rise after it is
    raised by as much, in the first week after the change, for users used to the default."""
    arms = [DEFAULT_ECONOMY, scaled_economy(1 - change), scaled_economy(1 + change)]
    _, daily = simulate(setup, [(PRE_DAYS, [DEFAULT_ECONOMY] * 3), (7, arms)], seed, cohort=True)
    week = daily[PRE_DAYS:].mean(axis=0)
    return float((week[0] - week[1]) / (week[2] - week[0]))


def novelty_decay(setup: Setup, seed: int) -> float:
    """Relative activity lift in week 4 over that in week 1 after the XP economy is introduced
    to users who had two weeks without XP (1 = no decay)."""
    none = scaled_economy(0.0)
    _, daily = simulate(
        setup, [(PRE_DAYS, [none, none]), (DAYS, [none, DEFAULT_ECONOMY])], seed, cohort=True
    )
    after = daily[PRE_DAYS:]
    lift = after[:, 1] / after[:, 0] - 1
    return float(lift[21:28].mean() / lift[:7].mean())


def crowding_out(setup: Setup, seed: int) -> float:
    """d of intrinsic motivation after two weeks of the default XP economy vs never rewarded
    (the free-choice comparison of the undermining experiments, read on the latent I)."""
    pop, _ = simulate(
        setup, [(PRE_DAYS, [scaled_economy(0.0), DEFAULT_ECONOMY])], seed, cohort=True
    )
    return cohens_d(pop.intrinsic_now[1], pop.intrinsic_now[0])


def _feedback_doubled(setup: Setup, seed: int) -> Population:
    arms = [DEFAULT_ECONOMY, scaled_economy(1.0, feedbackXp=2 * DEFAULT_ECONOMY["feedbackXp"])]
    pop, _ = simulate(setup, [(DAYS, arms)], seed, cohort=False)
    return pop


def gaming_quantity(setup: Setup, seed: int) -> float:
    """Relative change in feedback given when ``feedbackXp`` is doubled (15 -> 30)."""
    pop = _feedback_doubled(setup, seed)
    feedback = pop.feedback_total.sum(axis=1)
    return float(feedback[1] / feedback[0] - 1)


def gaming_quality(setup: Setup, seed: int) -> float:
    """Relative change in the useful share of feedback when ``feedbackXp`` is doubled."""
    pop = _feedback_doubled(setup, seed)
    useful = pop.useful_total.sum(axis=1) / pop.feedback_total.sum(axis=1)
    return float(useful[1] / useful[0] - 1)


# ---- the table -----------------------------------------------------------------------------------

INSIDE, OUTSIDE, DIRECTION = "inside", "outside", "direction"
"""Documented statuses: the point estimate lies inside / outside the published range, or only
a direction (sign or shape) is published and ``low``/``high`` bound that direction."""


@dataclass(frozen=True)
class Effect:
    """One behavioural claim, its published range and the experiment that measures it."""

    key: str
    name: str
    unit: str
    low: float
    high: float
    published: str
    source: str
    status: str
    measure: Callable[[Setup, int], float]

    def verdict(self, value: float) -> bool:
        """True when ``value`` lies in [low, high]."""
        return self.low <= value <= self.high


EFFECTS: tuple[Effect, ...] = (
    Effect(
        "gamification_lift",
        "activity lift from the XP economy (default vs no XP)",
        "Cohen's d, active-day share",
        0.04,
        0.62,
        "g = 0.25 [0.04, 0.46] behavioural; d = 0.48 [0.33, 0.62]",
        "Sailer & Homner 2020; Kim & Castelli 2021",
        INSIDE,
        gamification_lift,
    ),
    Effect(
        "diminishing_returns",
        "concave response: +50 % XP vs default, over default vs none",
        "ratio of active-day gains",
        0.0,
        0.5,
        "concave value function (direction only)",
        "Kahneman & Tversky 1979; Tversky & Kahneman 1992",
        DIRECTION,
        diminishing_returns,
    ),
    Effect(
        "streak_bonus",
        "streak bonus (default vs streakBonusPerDay 0)",
        "pp of active-day share",
        6.0,
        26.0,
        "+16 pp [6, 26] of days on goal, loss-framed daily incentive",
        "Patel et al. 2016",
        OUTSIDE,
        streak_bonus,
    ),
    Effect(
        "streak_framing",
        "loss-framed streak bonus vs equal-XP flat bonus",
        "ratio of lifts",
        1.0,
        math.inf,
        "loss-framed beats gain-framed (0.16 vs 0.05; gain n.s.)",
        "Patel et al. 2016",
        INSIDE,
        streak_framing,
    ),
    Effect(
        "loss_aversion",
        "response to a 20 % XP cut vs a 20 % raise (week 1)",
        "ratio |cut| / raise",
        1.5,
        2.5,
        "lambda mean 1.955 [1.82, 2.10]; 2.25; typical 1.5-2.5",
        "Brown et al. 2024; Tversky & Kahneman 1992",
        OUTSIDE,
        loss_aversion,
    ),
    Effect(
        "novelty_decay",
        "lift in week 4 over week 1 after XP is introduced",
        "ratio of relative lifts",
        0.7,
        1.3,
        "effect held ~4 weeks, then declined (one 14-week study)",
        "Rodrigues et al. 2022; Koivisto & Hamari 2014",
        INSIDE,
        novelty_decay,
    ),
    Effect(
        "crowding_out",
        "intrinsic motivation after 2 weeks of XP vs never rewarded",
        "Cohen's d, intrinsic motivation",
        -0.40,
        0.0,
        "d = -0.40 to -0.28 (tangible rewards); points: n.s.",
        "Deci, Koestner & Ryan 1999; Mekler et al. 2017",
        INSIDE,
        crowding_out,
    ),
    Effect(
        "gaming_quantity",
        "feedback given when feedbackXp doubles",
        "relative change",
        0.0,
        math.inf,
        "more pay, more output (direction only)",
        "Mason & Watts 2009; Khern-am-nuai et al. 2018",
        DIRECTION,
        gaming_quantity,
    ),
    Effect(
        "gaming_quality",
        "useful share of feedback when feedbackXp doubles",
        "relative change",
        -math.inf,
        0.0,
        "quality unchanged or lower (direction only)",
        "Mason & Watts 2009; Khern-am-nuai et al. 2018",
        DIRECTION,
        gaming_quality,
    ),
)
"""Every effect the calibration checks, in the order of docs/calibration.md."""


@dataclass(frozen=True)
class Estimate:
    """The simulated effect over seeds: mean and a t-interval."""

    effect: Effect
    mean: float
    low: float
    high: float
    values: tuple[float, ...]

    @property
    def inside(self) -> bool:
        """The point estimate lies in the published range."""
        return self.effect.verdict(self.mean)

    @property
    def status(self) -> str:
        """The status this estimate earns (compare with ``effect.status``)."""
        if self.effect.status == DIRECTION:
            return DIRECTION if self.inside else OUTSIDE
        return INSIDE if self.inside else OUTSIDE


def estimate(effect: Effect, setup: Setup, seeds: Sequence[int], level: float = 0.95) -> Estimate:
    """Run ``effect``'s experiment once per seed; mean and ``level`` t-interval over seeds."""
    values = np.array([effect.measure(setup, seed) for seed in seeds], dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return Estimate(effect, mean, math.nan, math.nan, tuple(values))
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1))
    half /= math.sqrt(len(values))
    return Estimate(effect, mean, mean - half, mean + half, tuple(values.tolist()))
