"""A plain per-user reference implementation of one simulated day, checked against the vectorised
``Population.step`` and some of its phases.

The reference follows docs/population.md (§2.1 economy response, §2.2 the day, §2.3 objective
and each user's share of it):
a loop over users with scalar float64 maths, no arrays in the model's equations. It starts from
a copy of the population's state before the step and uses the uniforms the step draws (from a
copy of its generator). Continuous quantities must agree to float32 precision (rtol 1e-5); counts,
streaks, masks and activity bits exactly.

A discrete draw whose float64 margin lies within float32 rounding of its boundary (u1 within
1e-6 of a threshold, a floor's argument within ~1e-5 of an integer) could honestly go either
way. There the reference takes the vectorised outcome and records a tie; each test allows at
most two, so a real disagreement cannot hide behind them.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import pytest

from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, ECONOMY_KEYS, economy_array
from arena_rl.scenarios.gamification.population import (
    STATE_FIELDS,
    Population,
    _EconomyResponse,
    _uniforms,
)
from arena_rl.scenarios.gamification.specs import TRAITS, Behaviour, load_population

N_USERS = 200
MAX_TIES = 2
RTOL = 1e-5
EXACT = (
    "streak", "alive", "mission_progress", "scans_today", "scans_total", "active_days",
    "feedback_total", "useful_total", "missions_assigned", "missions_completed", "recent",
    "counted_total",
)  # fmt: skip
CONTINUOUS = ("intrinsic_now", "reference", "xp_today", "xp_total", "reports_total",
              "overspend_total")  # fmt: skip
assert set(EXACT) | set(CONTINUOUS) == {*STATE_FIELDS, "recent"}


def _economy(**changes: float) -> dict[str, float]:
    return {**DEFAULT_ECONOMY, **changes}


# a raise that binds both daily caps (and pays more for streaks), and a cut with no feedback XP
RAISED = _economy(scanXp=14.0, streakBonusPerDay=8.0, scanDailyCap=4.0, feedbackDailyCap=1.0)
RAISED_MORE = {**RAISED, "scanXp": 18.0, "photoXp": 15.0}
CUT = _economy(feedbackXp=0.0, photoXp=0.0, issueReportXp=12.0, streakBonusCap=20.0)


@dataclasses.dataclass(frozen=True)
class Case:
    """A population stepped vectorised up to ``day``, then one day checked against the reference."""

    name: str
    preset: str
    day: int
    warmup: list[dict[str, float]]
    """The arms' economies on days 0 .. day - 1."""
    today: list[dict[str, float]]
    """The arms' economies on the checked day."""
    interference: float = 0.0
    twins: bool = False
    seed: int = 3


CASES = [
    # a mission day (7) with newcomers, and arm 1's economy raised today (a novelty boost)
    Case("mission_day_raise", "default", 7, [_economy(), RAISED], [_economy(), RAISED_MORE]),
    # a mid-week day (10): newcomers get their mission at once; a global leaderboard
    Case("midweek_interference", "farmers", 10, [_economy(), CUT], [_economy(), CUT], 0.5),
    # the last enrolment day (14, also a mission day), same users in both arms
    Case("twins_last_enrolment", "casual", 14, [RAISED, CUT], [RAISED, CUT], twins=True),
]


def _prepared(case: Case) -> Population:
    scenario = dataclasses.replace(load_scenario("default"), interference=case.interference)
    pop = Population(
        load_population(case.preset),
        scenario,
        n_arms=len(case.today),
        seed=case.seed,
        n_users=N_USERS,
        twins=case.twins,
    )
    table = economy_array(case.warmup)
    for _ in range(case.day):
        pop.step(table)
    return pop


# --- the reference -----------------------------------------------------------------------------


def _lever(rate: float, elasticity: float, xp: float, default: float) -> float:
    """L(rate, e, x, d) of §2.1: 1x the rate at the global default XP, log response around it."""
    return rate * max(0.0, 1.0 + elasticity * (math.log(1.0 + xp / default) - math.log(2.0)))


@dataclasses.dataclass(frozen=True)
class ArmEconomy:
    """§2.1 per-arm terms: photo XP per scan p_x, daily XP D, reports per active day n_rep."""

    photo_xp: float
    daily_xp: float
    reports: float


@dataclasses.dataclass(frozen=True)
class UserEconomy:
    """§2.1 per-user terms: expected scans μ, feedback share φ, useful share q', anticipated X̄."""

    mean_scans: float
    log_stay: float
    feedback_share: float
    feedback_quality: float
    anticipated: float


def arm_economy(x: Mapping[str, float], b: Behaviour) -> ArmEconomy:
    issues = _lever(b.issue_rate, b.issue_elasticity, x["issueReportXp"], 25.0)
    statuses = _lever(b.status_rate, b.status_elasticity, x["statusReportXp"], 20.0)
    photos = _lever(b.photo_rate, b.photo_elasticity, x["photoXp"], 10.0)
    daily = x["firstScanOfDayXp"] + x["issueReportXp"] * issues + x["statusReportXp"] * statuses
    return ArmEconomy(x["photoXp"] * photos, daily, issues + statuses)


def user_economy(x: Mapping[str, float], arm: ArmEconomy, tr: Mapping[str, float]) -> UserEconomy:
    r, f = tr["scan_rate"], tr["feedback_rate"]
    scan_incentive = x["scanXp"] * min(x["scanDailyCap"] / r, 1.0)
    feedback_incentive = x["feedbackXp"] * min(x["feedbackDailyCap"] / (r * f + 1e-3), 1.0)
    gamma_s = math.log(1.0 + scan_incentive / 10.0) - math.log(2.0)
    gamma_f = math.log(1.0 + feedback_incentive / 15.0) - math.log(2.0)
    mu = max(1.001, r * max(0.1, 1.0 + tr["scan_elasticity"] * gamma_s))
    effort = max(0.0, 1.0 + tr["feedback_elasticity"] * gamma_f)
    phi = min(1.0, f * effort)
    thinning = 1.0 if effort == 0 else min(1.0, 1.0 / effort)
    anticipated = (
        x["scanXp"] * min(mu, x["scanDailyCap"])
        + x["feedbackXp"] * min(mu * phi, x["feedbackDailyCap"])
        + arm.photo_xp * mu
        + arm.daily_xp
    )
    return UserEconomy(
        mu, math.log(1.0 - 1.0 / mu), phi, tr["feedback_quality"] * thinning**2, anticipated
    )


def user_traits(pop: Population, a: int, j: int) -> dict[str, float]:
    tr = {name: float(pop.traits[name][a, j]) for name in TRAITS}
    tr["loss_aversion"] += 1.0  # the population stores λ - 1, the only part its maths uses
    return tr


def typical_utility(pop: Population, x: Mapping[str, float], a: int) -> float:
    """ū_a = ln(1 + mean over the arm's users of X̄ / X0)."""
    b = pop.spec.behaviour
    arm = arm_economy(x, b)
    users = range(pop.users_per_arm)
    mean = sum(user_economy(x, arm, user_traits(pop, a, j)).anticipated for j in users) / len(users)
    return math.log(1.0 + mean / b.xp_scale)


def novelty_step(
    novelty: float, habituation: float, now: float, last: float | None, b: Behaviour
) -> tuple[float, float]:
    """§2.2 step 1, one arm: decay, then a boost from a rise in typical utility."""
    novelty *= 0.5 ** (1.0 / b.novelty_halflife_days)
    if last is not None:
        rise = max(0.0, now - last)
        novelty += b.novelty_gain * rise / (1.0 + b.novelty_habituation * habituation)
        habituation = 0.5 ** (1.0 / b.habituation_halflife_days) * habituation + rise
    return novelty, habituation


class Ties:
    """Discrete decisions too close to call in float32; the reference follows the step there."""

    def __init__(self) -> None:
        self.where: list[str] = []

    def less(self, x: float, y: float, vectorised: bool, what: str) -> bool:
        if abs(x - y) <= 1e-6:
            self.where.append(what)
            return vectorised
        return x < y

    def floor(self, x: float, vectorised: float, what: str) -> float:
        if abs(x - round(x)) <= 1e-5 * (1.0 + abs(x)):
            self.where.append(what)
            return vectorised
        return float(math.floor(x))


@dataclasses.dataclass
class Expected:
    utility: np.ndarray
    """(n_arms, n) U of every user in the prefix."""
    p_active: np.ndarray
    """(n_arms, n) activity probability."""
    state: dict[str, np.ndarray]
    novelty: np.ndarray
    habituation: np.ndarray
    outcome: dict[str, np.ndarray]
    ties: list[str]


def reference_day(
    before: Population,
    economies: list[dict[str, float]],
    uniforms: list[np.ndarray] | None = None,
    after: Population | None = None,
) -> Expected:
    """One day of ``before`` with ``economies``, user by user.

    Without ``uniforms`` the day stops before the draws (``utility``, ``p_active``, intrinsic
    motivation and the reference point are computed; nothing else changes). ``after`` (the
    vectorised population after the same day) settles only the ties.
    """
    b, obj, kappa = before.spec.behaviour, before.scenario.objective, before.scenario.interference
    t, n_arms, m = before.day, before.n_arms, before.users_per_arm
    enrol = before.enrol_day
    enrolled = [sum(int(enrol[a, j]) <= t for j in range(m)) for a in range(n_arms)]
    n = max(enrolled)  # the day touches this prefix of every arm's (enrolment-sorted) row
    state = {name: getattr(before, name).astype(np.float64) for name in STATE_FIELDS}
    state["recent"] = before.recent.astype(np.int64)
    ties = Ties()

    # §2.1 and §2.2 step 1: the economy response and each arm's novelty
    arms = [arm_economy(x, b) for x in economies]
    novelty = before.novelty[:, 0].astype(np.float64)
    habituation = before.habituation[:, 0].astype(np.float64)
    last = before._response.economy if before._response is not None else None
    for a, x in enumerate(economies):
        now = typical_utility(before, x, a)
        prev = None
        if before._last_typical is not None:
            assert last is not None
            prev = typical_utility(before, dict(zip(ECONOMY_KEYS, last[a], strict=True)), a)
        novelty[a], habituation[a] = novelty_step(novelty[a], habituation[a], now, prev, b)

    # §2.2 steps 2-7, user by user: enrolment, utility, gain/loss, intrinsic motivation
    utility, drive = np.zeros((n_arms, n)), np.zeros((n_arms, n))
    traits = [[user_traits(before, a, j) for j in range(n)] for a in range(n_arms)]
    econ = [
        [user_economy(economies[a], arms[a], traits[a][j]) for j in range(n)] for a in range(n_arms)
    ]
    newcomer = [[int(enrol[a, j]) == t for j in range(n)] for a in range(n_arms)]
    for a in range(n_arms):
        x = economies[a]
        for j in range(n):
            tr, s = traits[a][j], state["streak"][a, j]
            if newcomer[a][j]:
                state["alive"][a, j] = 1.0
            bonus = min((s + 1.0) * x["streakBonusPerDay"], x["streakBonusCap"]) if s >= 1 else 0
            u = math.log(1.0 + (econ[a][j].anticipated + tr["loss_aversion"] * bonus) / b.xp_scale)
            utility[a, j] = u
            if newcomer[a][j]:
                state["reference"][a, j] = u
            delta = u - state["reference"][a, j]
            felt = delta if delta >= 0 else tr["loss_aversion"] * delta
            drive[a, j] = tr["xp_sensitivity"] * (u + b.gain_loss_weight * felt)
            if state["alive"][a, j]:
                i = state["intrinsic_now"][a, j]
                i += b.intrinsic_recovery * (tr["intrinsic"] - i)
                i -= tr["crowding"] * max(0.0, u - b.crowding_threshold)
                state["intrinsic_now"][a, j] = max(0.0, i)

    # §2.2 step 9: the arm shift, from mean utility of the users in the app
    mean_u = []
    for a in range(n_arms):
        in_app = [utility[a, j] for j in range(n) if state["alive"][a, j]]
        mean_u.append(sum(in_app) / max(len(in_app), 1))
    shift = [
        novelty[a] + (kappa * (mean_u[a] - sum(mean_u) / n_arms) if kappa > 0 else 0.0)
        for a in range(n_arms)
    ]

    # §2.2 steps 8 and 10: habit and the activity probability
    p_active = np.zeros((n_arms, n))
    for a in range(n_arms):
        for j in range(n):
            tr, s = traits[a][j], state["streak"][a, j]
            habit = tr["habit"] * min(s, b.habit_days) / b.habit_days
            z = tr["base_activity"] + state["intrinsic_now"][a, j] + drive[a, j] + habit
            z += shift[a]
            p_active[a, j] = state["alive"][a, j] / (1.0 + math.exp(-z))

    outcome: dict[str, np.ndarray] = {}
    if uniforms is None:
        return Expected(utility, p_active, state, novelty, habituation, outcome, ties.where)
    assert after is not None

    # §2.2 steps 11-19, user by user: the draws, scans, feedback, streak, missions, XP, reference
    act_n, scans_n, xp_n = np.zeros(n_arms), np.zeros(n_arms), np.zeros(n_arms)
    scan_value, useful_n = np.zeros(n_arms), np.zeros(n_arms)
    user_xp = np.zeros((n_arms, n))
    for a in range(n_arms):
        x, row = economies[a], 0 if before.twins else a
        for j in range(n):
            tr, ue, p, where = traits[a][j], econ[a][j], p_active[a, j], f"arm {a} user {j}"
            u1, u2, u3 = (float(uniform[row, j]) for uniform in uniforms)
            active = ties.less(u1, p, bool(after.recent[a, j] & 1), f"{where}: active")
            if state["alive"][a, j]:
                threshold = 1.0 - tr["churn_hazard"] * (1.0 - p)
                vectorised = not after.alive[a, j]
                if ties.less(threshold, u1, vectorised, f"{where}: churn"):
                    state["alive"][a, j] = 0.0
            scans = feedback = useful = 0.0
            if active:  # geometric scans by inverse CDF of u1 / p, uniform given u1 < p
                level = math.log(min(1.0, u1 / max(p, 1e-6))) / ue.log_stay
                vectorised_scans = float(after.scans_today[a, j]) - 1.0
                scans = 1.0 + ties.floor(level, vectorised_scans, f"{where}: scans")
                vectorised_feedback = float(
                    after.feedback_total[a, j] - before.feedback_total[a, j]
                )
                rounded = ties.floor(
                    scans * ue.feedback_share + u2, vectorised_feedback, f"{where}: feedback"
                )
                feedback = min(scans, rounded)
            if feedback > 0:
                vectorised_useful = float(after.useful_total[a, j] - before.useful_total[a, j])
                useful = ties.floor(
                    feedback * ue.feedback_quality + u3, vectorised_useful, f"{where}: useful"
                )
            counted = min(scans, x["scanDailyCap"])
            streak = state["streak"][a, j] + 1.0 if active else 0.0
            state["streak"][a, j] = streak

            if t % 7 == 0:
                state["missions_assigned"][a, j] += state["alive"][a, j]
                state["mission_progress"][a, j] = 0.0
            elif newcomer[a][j]:
                state["missions_assigned"][a, j] += 1.0
            progress = state["mission_progress"][a, j]
            done = progress < tr["mission_target"] <= progress + counted
            state["mission_progress"][a, j] = progress + counted

            xp = 0.0
            if active:
                xp += min(streak * x["streakBonusPerDay"], x["streakBonusCap"]) + arms[a].daily_xp
            xp += x["scanXp"] * counted + x["feedbackXp"] * min(feedback, x["feedbackDailyCap"])
            xp += arms[a].photo_xp * scans + (b.mission_reward if done else 0.0)

            reference = state["reference"][a, j]
            state["reference"][a, j] = reference + b.reference_rate * (utility[a, j] - reference)

            state["scans_today"][a, j] = scans
            state["xp_today"][a, j] = xp
            state["scans_total"][a, j] += scans
            state["active_days"][a, j] += active
            state["xp_total"][a, j] += xp
            state["feedback_total"][a, j] += feedback
            state["useful_total"][a, j] += useful
            state["missions_completed"][a, j] += done
            state["recent"][a, j] = ((int(state["recent"][a, j]) << 1) | active) & 0xFF
            act_n[a] += active
            scans_n[a] += scans
            xp_n[a] += xp
            scan_value[a] += tr["scan_value"] * counted
            useful_n[a] += useful
            user_xp[a, j] = xp
            state["counted_total"][a, j] += counted
            state["reports_total"][a, j] += arms[a].reports * active

    # §2.3: the objective per enrolled user
    value = np.zeros(n_arms)
    for a in range(n_arms):
        earned = (
            obj.active_value * act_n[a]
            + obj.scan_value * scan_value[a]
            + obj.useful_feedback_value * useful_n[a]
            + obj.report_value * arms[a].reports * act_n[a]
            - obj.xp_cost * xp_n[a]
            - obj.overspend_cost * max(0.0, xp_n[a] - obj.xp_budget * enrolled[a])
        )
        value[a] = earned / max(enrolled[a], 1)
        # each user's share: their own value and XP cost, the overspend shared by XP
        overspend = obj.overspend_cost * max(0.0, xp_n[a] - obj.xp_budget * enrolled[a])
        per_xp = obj.xp_cost + overspend / max(xp_n[a], 1.0)
        for j in range(n):
            state["overspend_total"][a, j] += (per_xp - obj.xp_cost) * user_xp[a, j]
    outcome = {
        "enrolled": np.array(enrolled, float),
        "active": act_n,
        "scans": scans_n,
        "xp": xp_n,
        "value": value,
    }
    return Expected(utility, p_active, state, novelty, habituation, outcome, ties.where)


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_one_day_matches_per_user_reference(case: Case) -> None:
    pop = _prepared(case)
    t, n_next = pop.day, int(pop.enrolled_by(case.day).max())
    newcomers = pop.enrol_day[:, :n_next] == t
    assert newcomers.any(), "the checked day must enrol newcomers"
    assert (pop.streak >= 2).any(), "the checked day must start with users on a streak"
    before = copy.deepcopy(pop)
    rows = 1 if pop.twins else pop.n_arms
    uniforms = _uniforms(copy.deepcopy(pop._rng), (rows, n_next))

    outcome = pop.step(economy_array(case.today))
    expected = reference_day(before, case.today, uniforms, pop)

    assert len(expected.ties) <= MAX_TIES, expected.ties
    assert outcome.day == t
    for name in EXACT:
        vectorised = pop.recent if name == "recent" else getattr(pop, name)
        np.testing.assert_array_equal(vectorised, expected.state[name], err_msg=name)
    for name in CONTINUOUS:
        np.testing.assert_allclose(
            getattr(pop, name), expected.state[name], rtol=RTOL, atol=1e-6, err_msg=name
        )
    np.testing.assert_allclose(pop.novelty[:, 0], expected.novelty, rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(pop.habituation[:, 0], expected.habituation, rtol=RTOL, atol=1e-7)
    for name in ("enrolled", "active"):
        np.testing.assert_array_equal(getattr(outcome, name), expected.outcome[name], name)
    np.testing.assert_array_equal(outcome.totals["scans"], expected.outcome["scans"], "scans")
    np.testing.assert_allclose(outcome.totals["xp"], expected.outcome["xp"], rtol=RTOL)
    np.testing.assert_allclose(outcome.value, expected.outcome["value"], rtol=RTOL, atol=1e-6)

    # the day exercised what it is meant to: activity and inactivity, capped scans, missions
    active = (pop.recent & 1).astype(bool)
    assert active.any() and (~active & (pop.alive > 0)).any()
    if case.name == "mission_day_raise":
        assert expected.novelty[1] > before.novelty[1, 0]  # the raise is news
        assert (pop.scans_today[1] > RAISED["scanDailyCap"]).any()
        assert (pop.missions_assigned > before.missions_assigned).any()
    assert (pop.missions_completed > before.missions_completed).any() or t % 7 == 0


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_phases_before_the_draws(case: Case) -> None:
    """Enrolment, anticipated utility, XP drive, intrinsic motivation and the activity
    probability, phase by phase, against the reference's U and p."""
    pop = _prepared(case)
    expected = reference_day(copy.deepcopy(pop), case.today)
    d = pop._open_day(economy_array(case.today))
    pop._update_novelty(d.response.typical_utility)
    newcomers = pop._enrol(d)
    np.testing.assert_array_equal(pop.alive[:, : d.n], expected.state["alive"][:, : d.n])
    utility = pop._anticipated_utility(d, newcomers)
    np.testing.assert_allclose(utility, expected.utility, rtol=RTOL)
    logit = pop._xp_drive(d, utility)
    intrinsic = pop._update_intrinsic(d, utility)
    np.testing.assert_allclose(
        intrinsic, expected.state["intrinsic_now"][:, : d.n], rtol=RTOL, atol=1e-6
    )
    p_active = pop._activity_probability(d, logit, intrinsic, utility)
    np.testing.assert_allclose(p_active, expected.p_active, rtol=RTOL, atol=1e-7)
    assert ((p_active > 0) == (pop.alive[:, : d.n] > 0)).all()


def test_economy_response_matches_reference() -> None:
    """§2.1, per user: expected scans, feedback share and its useful part, anticipated XP; per
    arm: photo and daily XP, reports, typical utility. The farmers' feedback effort hits 0 when
    feedback pays nothing (CUT), and RAISED binds both caps."""
    economies = [_economy(), RAISED, CUT]
    pop3 = Population(load_population("farmers"), load_scenario("default"), 3, 1, n_users=150)
    b = pop3.spec.behaviour
    r = _EconomyResponse(economy_array(economies), pop3.traits, b)
    for a, x in enumerate(economies):
        arm = arm_economy(x, b)
        np.testing.assert_allclose(r.photo_xp[a, 0], arm.photo_xp, rtol=RTOL)
        np.testing.assert_allclose(r.daily_xp[a, 0], arm.daily_xp, rtol=RTOL)
        np.testing.assert_allclose(r.reports[a, 0], arm.reports, rtol=RTOL)
        np.testing.assert_allclose(r.typical_utility[a, 0], typical_utility(pop3, x, a), rtol=RTOL)
        users = [user_economy(x, arm, user_traits(pop3, a, j)) for j in range(pop3.users_per_arm)]
        for field in ("mean_scans", "log_stay", "feedback_share", "feedback_quality"):
            want = [getattr(user, field) for user in users]
            np.testing.assert_allclose(getattr(r, field)[a], want, rtol=RTOL, err_msg=field)
        want = [user.anticipated for user in users]
        np.testing.assert_allclose(r.anticipated[a], want, rtol=RTOL)
    assert (r.feedback_share[2] == 0).any()  # farmers stop giving feedback that pays nothing


def test_novelty_phase_matches_recurrence() -> None:
    """§2.2 step 1 alone: a rise is news, a cut is not, and habituation shrinks each new boost."""
    pop = _prepared(dataclasses.replace(CASES[0], day=0))
    b = pop.spec.behaviour
    start = np.array([[0.8], [0.8]], np.float32)
    steps = [0.0, 0.0, 0.3, 0.3, 0.1, 0.4, 0.4, 0.7, 0.2, 0.2]
    novelty, habituation = [0.0, 0.0], [0.0, 0.0]
    last: list[float | None] = [None, None]
    for k, rise in enumerate(steps):
        typical = start + np.array([[0.0], [rise]], np.float32)
        pop._update_novelty(typical)
        for a in range(2):
            now = float(typical[a, 0])
            novelty[a], habituation[a] = novelty_step(novelty[a], habituation[a], now, last[a], b)
            last[a] = now
        np.testing.assert_allclose(pop.novelty[:, 0], novelty, rtol=RTOL, err_msg=f"step {k}")
        np.testing.assert_allclose(pop.habituation[:, 0], habituation, rtol=RTOL)
    assert pop.novelty[0, 0] == 0 and pop.novelty[1, 0] > 0
