"""The synthetic user population: persona traits -> user-state arrays, one vectorised day step.

Users live in ``(n_arms, users_per_arm)`` float32 arrays, each arm's row sorted by enrolment
day, so the enrolled users are (nearly) a prefix and a day touches only the prefix that covers
every arm; users not yet enrolled are simply not ``alive``. Segments are assigned per the
preset's ``assignment``: "complete" (default) draws every user's segment and enrolment day
independently, as individual randomisation on a live platform does, so Welch and Fisher tests
hold their nominal size; "stratified" gives every arm exactly the same segment mix (a
randomised block design: more power, but unstratified tests become conservative). Per-arm
economy values broadcast as ``(n_arms, 1)`` columns: one day is a few dozen whole-array
operations, no Python loop over users or arms. The equations, and the behavioural findings
each stands for, are in ``docs/population.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from arena_rl.core.scenario import DayOutcome
from arena_rl.core.signals import Signals, Summaries, mean_summaries
from arena_rl.core.stats import MeanSummary
from arena_rl.scenarios.gamification import metrics
from arena_rl.scenarios.gamification.economy import ECONOMY_KEYS
from arena_rl.scenarios.gamification.specs import (
    TRAITS,
    Behaviour,
    GamificationScenario,
    PopulationSpec,
)
from arena_rl.scenarios.gamification.tail import tail_per_user
from arena_rl.scenarios.specs import draw_cohort, users_per_arm

F32 = np.float32
LN2 = math.log(2.0)
SCRATCH_F32 = ("f1", "f2", "utility", "logit", "p_active", "scans", "counted",
               "feedback", "useful", "xp")  # fmt: skip

_K = {key: i for i, key in enumerate(ECONOMY_KEYS)}
STATE_FIELDS = (
    "intrinsic_now", "reference", "streak", "alive", "mission_progress",
    "scans_today", "xp_today", "scans_total", "active_days", "xp_total", "feedback_total",
    "useful_total", "missions_assigned", "missions_completed", "counted_total", "reports_total",
    "overspend_total",
)  # fmt: skip

RATE_WINDOW_DAYS = 7
"""The value after the horizon carries forward each user's mean daily value and XP over the
last whole week before it (from cumulative totals kept at every seventh day)."""


def _uniforms(rng: np.random.Generator, shape: tuple[int, int]) -> list[np.ndarray]:
    """Three independent uniforms per user on (0, 1), 16 bits each, from one 64-bit draw.

    Three float draws cost ~10 ns a user; slicing one raw 64-bit word costs ~4 ns, and 16 bits
    (steps of 1.5e-5) are finer than any probability the model distinguishes.
    """
    raw = rng.bit_generator.random_raw(shape[0] * shape[1]).view(np.uint16)
    words = raw.reshape(shape[0], shape[1], 4).transpose(2, 0, 1)[:3].astype(F32)
    words *= F32(1 / 65536)
    words += F32(0.5 / 65536)
    return list(words)


class _EconomyResponse:
    """Everything about users' behaviour that depends on the economy but not on their state.

    Recomputed only when an arm's economy changes, so a static economy costs nothing here.
    Per-arm values are (n_arms, 1) columns; per-user values are (n_arms, users_per_arm).
    """

    def __init__(self, economy: np.ndarray, traits: dict[str, np.ndarray], b: Behaviour) -> None:
        self.economy = economy.copy()
        e = {k: economy[:, i : i + 1].astype(F32) for k, i in _K.items()}
        self.per_arm = e

        def lever(rate: float, elasticity: float, key: str, default: float) -> np.ndarray:
            # per-arm expected count: diminishing (log) response to the key's XP, 1x at default
            gain = np.log1p(e[key] / F32(default)) - F32(LN2)
            return F32(rate) * np.maximum(F32(1) + F32(elasticity) * gain, F32(0))

        issues = lever(b.issue_rate, b.issue_elasticity, "issueReportXp", 25.0)
        statuses = lever(b.status_rate, b.status_elasticity, "statusReportXp", 20.0)
        self.reports = issues + statuses
        self.photo_xp = e["photoXp"] * lever(b.photo_rate, b.photo_elasticity, "photoXp", 10.0)
        self.daily_xp = e["firstScanOfDayXp"] + e["issueReportXp"] * issues
        self.daily_xp += e["statusReportXp"] * statuses

        # the incentive of one more scan (feedback) is its XP while the user's usual volume
        # stays under the daily cap; effort responds to it with diminishing (log) returns
        base_scans, base_share = traits["scan_rate"], traits["feedback_rate"]
        scan_cap, feedback_cap = e["scanDailyCap"], e["feedbackDailyCap"]
        scan_incentive = e["scanXp"] * np.minimum(scan_cap / base_scans, F32(1))
        feedback_incentive = e["feedbackXp"] * np.minimum(
            feedback_cap / (base_scans * base_share + F32(1e-3)), F32(1)
        )
        scan_gain = np.log1p(scan_incentive * F32(1 / 10)) - F32(LN2)
        feedback_gain = np.log1p(feedback_incentive * F32(1 / 15)) - F32(LN2)
        mean_scans = base_scans * np.maximum(
            F32(1) + traits["scan_elasticity"] * scan_gain, F32(0.1)
        )
        self.mean_scans = np.maximum(mean_scans, F32(1.001))
        self.log_stay = np.log((self.mean_scans - F32(1)) / self.mean_scans)
        effort = np.maximum(F32(1) + traits["feedback_elasticity"] * feedback_gain, F32(0))
        self.feedback_share = np.minimum(base_share * effort, F32(1))
        # paid per feedback, users spread the same care over more, thinner feedback: the share
        # that is useful falls as (1 / effort)^2 (gamers, with high elasticity, most of all)
        thinning = np.minimum(F32(1) / np.maximum(effort, F32(1e-3)), F32(1))
        self.feedback_quality = traits["feedback_quality"] * thinning * thinning
        # the XP a user expects from an active day, before any streak bonus
        self.anticipated = (
            e["scanXp"] * np.minimum(self.mean_scans, scan_cap)
            + e["feedbackXp"] * np.minimum(self.mean_scans * self.feedback_share, feedback_cap)
            + self.photo_xp * self.mean_scans
            + self.daily_xp
        )
        # (n_arms, 1) utility of the arm's typical anticipated XP: what novelty reacts to
        typical = self.anticipated.mean(axis=1, keepdims=True) / F32(b.xp_scale)
        self.typical_utility = np.log1p(typical).astype(F32)


@dataclass(slots=True)
class _Day:
    """What every phase of one ``Population.step`` shares: the day, the enrolled prefix, the
    economy's cached response, and scratch temporaries.

    The temporaries are views of preallocated buffers, shape (n_arms, n); any phase may
    overwrite them, so nothing is passed between phases through them.
    """

    t: int
    """The day being simulated."""
    enrolled: np.ndarray
    """(n_arms,) users of each arm enrolled by day ``t``."""
    n: int
    """Length of the enrolled prefix: the day touches columns ``[:n]`` of every arm."""
    cols: slice
    """``slice(None, n)``: the prefix's columns."""
    response: _EconomyResponse
    """Today's economy response (§2.1): per-arm values (n_arms, 1), per-user (n_arms, m)."""
    f1: np.ndarray
    """float32 temporary."""
    f2: np.ndarray
    """float32 temporary."""
    mask: np.ndarray
    """bool temporary."""


class Population:
    """User state of every arm of one experiment, stepped one day at a time.

    Args:
        spec: the persona preset.
        scenario: objective weights and the interference switch.
        n_arms: control plus one arm per treatment variant.
        seed: root seed; traits, enrolment and daily draws come from spawned streams.
        n_users: total users over all arms (default: the preset's); each arm gets
            ``n_users // n_arms``.
        twins: ground-truth mode: every arm gets the *same* users and the same daily random
            draws (common random numbers), so arms differ only by their economy.
    """

    def __init__(
        self,
        spec: PopulationSpec,
        scenario: GamificationScenario,
        n_arms: int,
        seed: int | np.random.SeedSequence = 0,
        n_users: int | None = None,
        twins: bool = False,
    ) -> None:
        m = users_per_arm(spec.n_users if n_users is None else n_users, n_arms)
        self.spec, self.scenario = spec, scenario
        self.n_arms, self.users_per_arm, self.twins = n_arms, m, twins
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        trait_seq, enrol_seq, day_seq = seq.spawn(3)
        enrol_rng = np.random.default_rng(enrol_seq)
        self._rng = np.random.default_rng(day_seq)

        cohort = draw_cohort(
            spec.segments,
            TRAITS,
            n_arms=n_arms,
            users_per_arm=m,
            initial_share=spec.initial_share,
            join_days=spec.enrol_days,
            assignment=spec.assignment,
            twins=twins,
            join_rng=enrol_rng,
            trait_rng=np.random.default_rng(trait_seq),
        )
        self.enrol_day, self.segment, self.traits = cohort.join_day, cohort.segment, cohort.traits
        # users of each arm enrolled by day d (column d; constant after the last enrolment day)
        self._enrolled_by = cohort.joined_by
        self.traits["loss_aversion"] -= F32(1.0)  # only the excess over 1 is ever used

        shape = (n_arms, m)
        for name in STATE_FIELDS:
            setattr(self, name, np.zeros(shape, F32))
        self.intrinsic_now[:] = self.traits["intrinsic"]
        self.recent = np.zeros(shape, np.uint8)  # activity bits of the last 8 days
        zeros = np.zeros(shape, F32)
        self._weeks = ((0, zeros, zeros), (0, zeros, zeros))
        """(day, gross value, XP) cumulative per user at the last two multiples of seven days
        (float32, like the state)."""
        self._tail: np.ndarray | None = None
        """Each enrolled user's tail value, once credited at the horizon."""
        self.day = 0
        self.n_enrolled = 0
        self.novelty = np.zeros((n_arms, 1), F32)
        self.habituation = np.zeros((n_arms, 1), F32)
        self._last_typical: np.ndarray | None = None
        self._response: _EconomyResponse | None = None
        self._scratch: dict[str, np.ndarray] = {name: np.zeros(shape, F32) for name in SCRATCH_F32}
        self._scratch.update({name: np.zeros(shape, bool) for name in ("active", "mask", "done")})

    # state arrays are created by name in __init__; declare them for type checkers
    intrinsic_now: np.ndarray
    reference: np.ndarray
    streak: np.ndarray
    alive: np.ndarray
    mission_progress: np.ndarray
    scans_today: np.ndarray
    xp_today: np.ndarray
    scans_total: np.ndarray
    active_days: np.ndarray
    xp_total: np.ndarray
    feedback_total: np.ndarray
    useful_total: np.ndarray
    missions_assigned: np.ndarray
    missions_completed: np.ndarray
    counted_total: np.ndarray
    """Scans that counted (under the daily cap): the scans the objective values."""
    reports_total: np.ndarray
    """Reports made so far: each active day's expected reports under that day's economy."""
    overspend_total: np.ndarray
    """The user's share of the arm's overspend cost so far (the arm's, split by XP)."""

    def enrolled_by(self, day: int) -> np.ndarray:
        """(n_arms,) users of each arm enrolled on or before ``day``."""
        return self._enrolled_by[:, min(max(day, 0), self.spec.enrol_days)] if day >= 0 else (
            np.zeros(self.n_arms, np.int64))  # fmt: skip

    def enrolled_mask(self) -> np.ndarray:
        """(n_arms, n_enrolled) True for users enrolled by the last simulated day."""
        return self.enrol_day[:, : self.n_enrolled] < self.day

    def user_day(self, alive_before: np.ndarray) -> dict[str, np.ndarray]:
        """The last simulated day of every enrolled user, as columns (one row per user).

        Args:
            alive_before: ``alive`` as it was before that day's step (to tell today's churn).

        Returns:
            Equal-length arrays: ``arm`` (int8), ``user`` (int32, index within the arm),
            ``enrolled_today``, ``active``, ``churned`` (bool), ``scans``, ``feedback``,
            ``useful_feedback``, ``reports`` (expected: the model counts reports in
            expectation), ``xp`` and ``streak`` (float32), ``streak_week`` (bool: the streak
            reached 7 days today). Read right after the step: feedback comes from that day's
            scratch.
        """
        n, t = self.n_enrolled, self.day - 1
        enrolled = self.enrol_day[:, :n] <= t
        arm, user = np.nonzero(enrolled)
        newcomers = self.enrol_day[:, :n] == t
        was_alive = (alive_before[:, :n] > 0) | newcomers
        churned = was_alive & (self.alive[:, :n] == 0)
        scratch = self._scratch
        reports = np.zeros((self.n_arms, n), F32)
        if self._response is not None:
            np.multiply(self.recent[:, :n] & 1, self._response.reports, out=reports)
        return {
            "arm": arm.astype(np.int8),
            "user": user.astype(np.int32),
            "enrolled_today": newcomers[enrolled],
            "active": (self.recent[:, :n] & 1).astype(bool)[enrolled],
            "churned": churned[enrolled],
            "scans": self.scans_today[:, :n][enrolled],
            "feedback": scratch["feedback"][:, :n][enrolled],
            "useful_feedback": scratch["useful"][:, :n][enrolled],
            "reports": reports[enrolled],
            "xp": self.xp_today[:, :n][enrolled],
            "streak": self.streak[:, :n][enrolled],
            "streak_week": (self.streak[:, :n] == 7)[enrolled],
        }

    def summarise(self) -> Summaries:
        """Per metric, one summary per arm (row 0 = control); see :mod:`.metrics`."""
        return metrics.summarise(self)

    def signals(self, summaries: Summaries) -> list[Signals]:
        """The live-platform signals of every arm (index 0 = control)."""
        return metrics.signals(self, summaries)

    def state_nbytes(self) -> int:
        """Bytes held per user array: traits, state, the weekly snapshots the tail value reads,
        cached economy response and scratch."""
        arrays = [*self.traits.values(), self.recent, self.segment, self.enrol_day]
        arrays += [getattr(self, f) for f in STATE_FIELDS]
        arrays += [*self._scratch.values()]
        arrays += [self._weeks[0][1], self._weeks[0][2], self._weeks[1][1], self._weeks[1][2]]
        if self._response is not None:
            arrays += [v for v in vars(self._response).values() if isinstance(v, np.ndarray)]
        return sum(a.nbytes for a in arrays if a.shape and a.shape[-1] == self.users_per_arm)

    def _update_novelty(self, typical_utility: np.ndarray) -> None:
        """Novelty (§2.2 step 1), per arm: a rise in what users stand to gain lifts activity for
        a while (cuts are losses, handled by reference dependence); habituation to frequent
        changes shrinks each new boost, so churning the economy cannot buy engagement for ever,
        and a change nobody gains from is no news at all. ``typical_utility`` is (n_arms, 1)."""
        b = self.spec.behaviour
        self.novelty *= F32(0.5 ** (1.0 / b.novelty_halflife_days))
        if self._last_typical is not None:
            change = np.maximum(typical_utility - self._last_typical, F32(0))
            self.novelty += (
                F32(b.novelty_gain)
                * change
                / (F32(1) + F32(b.novelty_habituation) * self.habituation)
            )
            self.habituation *= F32(0.5 ** (1.0 / b.habituation_halflife_days))
            self.habituation += change
        self._last_typical = typical_utility

    def _arm_shift(self, utility: np.ndarray) -> np.ndarray:
        """Per-arm logit shift (§2.2 step 9): novelty, plus leaderboard interference when on.

        ``utility`` is (n_arms, n); the shift is an (n_arms, 1) column.

        With interference, users compare their XP with the whole population's: an arm whose
        anticipated XP utility is above the cross-arm mean feels rewarding, the others deprived.
        """
        if self.scenario.interference <= 0:
            return self.novelty
        alive = self.alive[:, : utility.shape[1]]  # enrolled users who have not churned
        mean_utility = (utility * alive).sum(axis=1, keepdims=True) / np.maximum(
            alive.sum(axis=1, keepdims=True), F32(1)
        )
        return self.novelty + F32(self.scenario.interference) * (mean_utility - mean_utility.mean())

    def step(self, economies: np.ndarray) -> DayOutcome:
        """Simulate one day for every user of every arm, phase by phase (docs/population.md §2.2).

        Args:
            economies: (n_arms, 10) economy values in ``ECONOMY_KEYS`` order, row 0 = control.

        Returns:
            Per-arm totals of the day, including the objective value per enrolled user.
        """
        d = self._open_day(economies)
        self._update_novelty(d.response.typical_utility)
        newcomers = self._enrol(d)
        utility = self._anticipated_utility(d, newcomers)
        logit = self._xp_drive(d, utility)
        intrinsic = self._update_intrinsic(d, utility)
        p_active = self._activity_probability(d, logit, intrinsic, utility)
        u1, u2, u3 = _uniforms(self._rng, (1 if self.twins else self.n_arms, d.n))  # step 11
        active = self._activity_and_churn(d, u1, p_active)
        scans = self._scans(d, u1, p_active, active)
        counted, feedback, useful = self._feedback(d, scans, u2, u3)
        self._advance_streaks(d, active)
        done = self._missions(d, newcomers, counted)
        xp = self._xp_awarded(d, active, counted, feedback, scans, done)
        self._adapt_reference(d, utility)
        self._record(d, active, scans, xp, feedback, useful, done)
        outcome = self._outcome(d, active, counted, useful, scans, xp)
        self._keep_week()
        return outcome

    # ---- the phases of one day, in order ------------------------------------------------------
    # Hot path: every operation writes into preallocated scratch, sliced to the enrolled prefix
    # (``d.f1``, ``d.f2``, ``d.mask`` are temporaries any phase may overwrite; each phase's
    # result has a buffer of its own), because fresh temporaries of this size cost more in page
    # faults than the arithmetic itself. Array shapes are (n_arms, n) unless stated otherwise.

    def _open_day(self, economies: np.ndarray) -> _Day:
        """Check the economy table, find today's enrolled prefix and the economy's response
        (§2.1, rebuilt only when the table changed), and slice the scratch to the prefix."""
        economy = np.asarray(economies, dtype=np.float64)
        if economy.shape != (self.n_arms, len(ECONOMY_KEYS)):
            raise ValueError(f"economies must have shape ({self.n_arms}, 10), got {economy.shape}")
        t = self.day
        enrolled = self.enrolled_by(t)
        # arms enrol independently; the day touches the prefix that covers every arm's enrolled
        n = self.n_enrolled = int(enrolled.max())
        if self._response is None or not np.array_equal(economy, self._response.economy):
            self._response = _EconomyResponse(economy, self.traits, self.spec.behaviour)
        u, w = slice(None, n), self._scratch
        return _Day(
            t=t,
            enrolled=enrolled,
            n=n,
            cols=u,
            response=self._response,
            f1=w["f1"][:, u],
            f2=w["f2"][:, u],
            mask=w["mask"][:, u],
        )

    def _enrol(self, d: _Day) -> np.ndarray | None:
        """Enrolment (§2.2 step 2): users whose enrolment day is today become alive.

        Returns the (n_arms, n) bool mask of today's newcomers, or None once the enrolment
        period is over."""
        if d.t > self.spec.enrol_days:
            return None
        newcomers = self.enrol_day[:, d.cols] == d.t
        self.alive[:, d.cols] += newcomers
        return newcomers

    def _anticipated_utility(self, d: _Day, newcomers: np.ndarray | None) -> np.ndarray:
        """Utility of the XP a user anticipates today (§2.2 steps 3-5): U = ln(1 + (X̄ + λB)/X0).

        The streak bonus B at stake is also a loss to avoid, since skipping a day forfeits it,
        so it weighs loss_aversion λ times as much; the log gives diminishing returns. Today's
        newcomers take today's economy as normal: their reference point starts at U.
        """
        b, e, tr, f1, f2 = self.spec.behaviour, d.response.per_arm, self.traits, d.f1, d.f2
        streak = self.streak[:, d.cols]
        utility = self._scratch["utility"][:, d.cols]
        np.add(streak, F32(1), out=f1)
        f1 *= e["streakBonusPerDay"]
        np.minimum(f1, e["streakBonusCap"], out=f1)
        np.minimum(streak, F32(1), out=f2)
        f1 *= f2
        np.add(tr["loss_aversion"][:, d.cols], F32(1), out=utility)
        utility *= f1
        utility += d.response.anticipated[:, d.cols]
        utility *= F32(1.0 / b.xp_scale)
        np.log1p(utility, out=utility)  # diminishing returns to XP
        if newcomers is not None:
            np.copyto(self.reference[:, d.cols], utility, where=newcomers)
        return utility

    def _xp_drive(self, d: _Day, utility: np.ndarray) -> np.ndarray:
        """XP drive of the activity logit (§2.2 step 6): β(U + wG), where G is the gain or loss
        Δ = U - R against the reference point, losses weighing λ times as much.

        Returns the logit buffer holding the drive; ``_activity_probability`` adds the rest."""
        b, tr, f1, f2 = self.spec.behaviour, self.traits, d.f1, d.f2
        logit = self._scratch["logit"][:, d.cols]
        np.subtract(utility, self.reference[:, d.cols], out=f1)  # gain (> 0) or loss (< 0)
        np.minimum(f1, F32(0), out=f2)
        f2 *= tr["loss_aversion"][:, d.cols]
        f1 += f2
        f1 *= F32(b.gain_loss_weight)
        f1 += utility
        np.multiply(tr["xp_sensitivity"][:, d.cols], f1, out=logit)
        return logit

    def _update_intrinsic(self, d: _Day, utility: np.ndarray) -> np.ndarray:
        """Intrinsic motivation (§2.2 step 7): I recovers towards its trait value I0 at rate ρ,
        and is crowded out by c·max(0, U - θ) when large extrinsic rewards are at stake.

        Only users in the app (alive) feel either. Updates ``intrinsic_now`` in place and
        returns its view of the prefix."""
        b, tr, f1, f2 = self.spec.behaviour, self.traits, d.f1, d.f2
        intrinsic = self.intrinsic_now[:, d.cols]
        np.subtract(tr["intrinsic"][:, d.cols], intrinsic, out=f1)
        f1 *= F32(b.intrinsic_recovery)
        np.subtract(utility, F32(b.crowding_threshold), out=f2)
        np.maximum(f2, F32(0), out=f2)
        f2 *= tr["crowding"][:, d.cols]  # large extrinsic rewards crowd out intrinsic motivation
        f1 -= f2
        f1 *= self.alive[:, d.cols]  # only users in the app feel either (not those yet to enrol)
        intrinsic += f1
        np.maximum(intrinsic, F32(0), out=intrinsic)
        return intrinsic

    def _activity_probability(
        self, d: _Day, logit: np.ndarray, intrinsic: np.ndarray, utility: np.ndarray
    ) -> np.ndarray:
        """Activity probability (§2.2 steps 8-10): p = A / (1 + exp(-z)), with logit
        z = XP drive + I + base activity + habit k_h·min(s, H)/H + the arm's shift (novelty,
        plus leaderboard interference when switched on). Completes ``logit`` in place."""
        b, tr, f1 = self.spec.behaviour, self.traits, d.f1
        logit += intrinsic
        logit += tr["base_activity"][:, d.cols]
        np.minimum(self.streak[:, d.cols], F32(b.habit_days), out=f1)
        f1 *= tr["habit"][:, d.cols]
        f1 *= F32(1 / b.habit_days)
        logit += f1
        logit += self._arm_shift(utility)
        p_active = self._scratch["p_active"][:, d.cols]
        np.negative(logit, out=p_active)
        np.exp(p_active, out=p_active)
        p_active += F32(1)
        np.divide(self.alive[:, d.cols], p_active, out=p_active)
        return p_active

    def _activity_and_churn(self, d: _Day, u1: np.ndarray, p_active: np.ndarray) -> np.ndarray:
        """Activity and churn (§2.2 step 12), both from the uniform u1 (shape (n_arms, n), or
        (1, n) in twins mode): active if u1 < p; churned, for good, if u1 > 1 - h(1 - p), a
        region inside the inactive one. Clears ``alive`` of the churned; returns the active mask.
        """
        f1, stays = d.f1, d.mask
        active = self._scratch["active"][:, d.cols]
        np.less(u1, p_active, out=active)
        np.subtract(F32(1), p_active, out=f1)
        f1 *= self.traits["churn_hazard"][:, d.cols]
        np.subtract(F32(1), f1, out=f1)
        np.greater(u1, f1, out=stays)
        np.logical_not(stays, out=stays)
        self.alive[:, d.cols] *= stays
        return active

    def _scans(
        self, d: _Day, u1: np.ndarray, p_active: np.ndarray, active: np.ndarray
    ) -> np.ndarray:
        """Scans of the day (§2.2 step 13): geometric on {1, 2, ...} with mean μ, by inverse
        CDF of u1 / p (again uniform, given u1 < p); 0 for inactive users."""
        f1 = d.f1
        scans = self._scratch["scans"][:, d.cols]
        np.maximum(p_active, F32(1e-6), out=f1)
        np.divide(u1, f1, out=scans)
        np.minimum(scans, F32(1), out=scans)
        np.log(scans, out=scans)
        scans /= d.response.log_stay[:, d.cols]
        np.floor(scans, out=scans)
        scans += F32(1)
        scans *= active
        return scans

    def _feedback(
        self, d: _Day, scans: np.ndarray, u2: np.ndarray, u3: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Daily caps, feedback and useful feedback (§2.2 step 14).

        Counted scans min(S, C_s); feedback min(S, ⌊Sφ + u2⌋) and useful feedback
        ⌊F q' + u3⌋, by stochastic rounding, which keeps their expected values exact.
        Returns (counted, feedback, useful)."""
        r = d.response
        counted = self._scratch["counted"][:, d.cols]
        np.minimum(scans, r.per_arm["scanDailyCap"], out=counted)
        feedback = self._scratch["feedback"][:, d.cols]
        np.multiply(scans, r.feedback_share[:, d.cols], out=feedback)
        feedback += u2
        np.floor(feedback, out=feedback)
        np.minimum(feedback, scans, out=feedback)
        useful = self._scratch["useful"][:, d.cols]
        np.multiply(feedback, r.feedback_quality[:, d.cols], out=useful)
        useful += u3
        np.floor(useful, out=useful)
        return counted, feedback, useful

    def _advance_streaks(self, d: _Day, active: np.ndarray) -> None:
        """Streaks (§2.2 step 15): s <- (s + 1) if active today, else 0; in place."""
        streak = self.streak[:, d.cols]
        streak += F32(1)
        streak *= active

    def _missions(self, d: _Day, newcomers: np.ndarray | None, counted: np.ndarray) -> np.ndarray:
        """Weekly missions (§2.2 step 16), on a global calendar: on days divisible by 7 every
        alive user gets a new mission and progress restarts; other days, newcomers get theirs
        at once. Counted scans advance the progress. Returns the mask of missions done today.
        """
        progress = self.mission_progress[:, d.cols]
        if d.t % 7 == 0:  # weekly missions for everyone; newcomers get theirs on enrolment
            self.missions_assigned[:, d.cols] += self.alive[:, d.cols]
            progress[:] = 0
        elif newcomers is not None:
            self.missions_assigned[:, d.cols] += newcomers
        target = self.traits["mission_target"][:, d.cols]
        done, reached = self._scratch["done"][:, d.cols], d.mask
        np.less(progress, target, out=done)
        progress += counted
        np.greater_equal(progress, target, out=reached)
        done &= reached
        return done

    def _xp_awarded(
        self,
        d: _Day,
        active: np.ndarray,
        counted: np.ndarray,
        feedback: np.ndarray,
        scans: np.ndarray,
        done: np.ndarray,
    ) -> np.ndarray:
        """XP awarded today (§2.2 step 17): on an active day the streak bonus (from the streak
        *after* today) and the daily XP D, plus XP for counted scans, feedback up to its cap,
        photos, and the mission reward."""
        b, e, r, f1 = self.spec.behaviour, d.response.per_arm, d.response, d.f1
        xp = self._scratch["xp"][:, d.cols]
        np.multiply(self.streak[:, d.cols], e["streakBonusPerDay"], out=xp)
        np.minimum(xp, e["streakBonusCap"], out=xp)
        xp += r.daily_xp
        xp *= active
        np.multiply(counted, e["scanXp"], out=f1)
        xp += f1
        np.minimum(feedback, e["feedbackDailyCap"], out=f1)
        f1 *= e["feedbackXp"]
        xp += f1
        np.multiply(scans, r.photo_xp, out=f1)
        xp += f1
        np.multiply(done, F32(b.mission_reward), out=f1)
        xp += f1
        return xp

    def _adapt_reference(self, d: _Day, utility: np.ndarray) -> None:
        """Reference adaptation (§2.2 step 18): R <- R + α(U - R), active or not; in place."""
        f1, reference = d.f1, self.reference[:, d.cols]
        np.subtract(utility, reference, out=f1)
        f1 *= F32(self.spec.behaviour.reference_rate)
        reference += f1  # the reference point adapts to what users get used to

    def _record(
        self,
        d: _Day,
        active: np.ndarray,
        scans: np.ndarray,
        xp: np.ndarray,
        feedback: np.ndarray,
        useful: np.ndarray,
        done: np.ndarray,
    ) -> None:
        """Bookkeeping (§2.2 step 19): today's scans and XP, the per-user totals, the 8-day
        activity bits ``recent`` (bit 0 = today); then the clock moves on to the next day."""
        u = d.cols
        self.scans_today[:, u] = scans
        self.xp_today[:, u] = xp
        self.scans_total[:, u] += scans
        self.active_days[:, u] += active
        self.xp_total[:, u] += xp
        self.feedback_total[:, u] += feedback
        self.useful_total[:, u] += useful
        self.missions_completed[:, u] += done
        recent = self.recent[:, u]
        recent <<= 1
        recent |= active
        self.day = d.t + 1

    def _outcome(
        self,
        d: _Day,
        active: np.ndarray,
        counted: np.ndarray,
        useful: np.ndarray,
        scans: np.ndarray,
        xp: np.ndarray,
    ) -> DayOutcome:
        """Per-arm totals and the objective value per enrolled user (§2.3), in float64."""
        obj, enrolled, f1 = self.scenario.objective, d.enrolled, d.f1
        active_n = active.sum(axis=1, dtype=np.float64)
        xp_sum = xp.sum(axis=1, dtype=np.float64)
        scan_value = np.multiply(counted, self.traits["scan_value"][:, d.cols], out=f1)
        overspend = obj.overspend_cost * np.maximum(xp_sum - obj.xp_budget * enrolled, 0.0)
        value = (
            obj.active_value * active_n
            + obj.scan_value * scan_value.sum(axis=1, dtype=np.float64)
            + obj.useful_feedback_value * useful.sum(axis=1, dtype=np.float64)
            + obj.report_value * d.response.reports[:, 0] * active_n
            - obj.xp_cost * xp_sum
            - overspend
        ) / np.maximum(enrolled, 1)
        self._credit_users(d, active, counted, xp, overspend / np.maximum(xp_sum, 1.0))
        totals = {"scans": scans.sum(axis=1, dtype=np.float64), "xp": xp_sum}
        return DayOutcome(day=d.t, enrolled=enrolled, active=active_n, value=value, totals=totals)

    def _credit_users(
        self,
        d: _Day,
        active: np.ndarray,
        counted: np.ndarray,
        xp: np.ndarray,
        overspend_per_xp: np.ndarray,
    ) -> None:
        """Keep what each user's share of the objective needs beyond the totals kept anyway
        (active days, useful feedback, XP): counted scans, reports, and the arm's overspend
        split by XP on a day it overspends. :meth:`user_objective` adds them up on demand."""
        u, f2 = d.cols, d.f2
        self.counted_total[:, u] += counted
        np.multiply(active, d.response.reports, out=f2)
        self.reports_total[:, u] += f2
        if overspend_per_xp.any():
            np.multiply(xp, overspend_per_xp[:, None].astype(F32), out=f2)
            self.overspend_total[:, u] += f2

    def _keep_week(self) -> None:
        """At every seventh day, keep each user's cumulative gross value and XP: the tail value
        reads their rates over the last whole week from the two latest snapshots."""
        if self.day % RATE_WINDOW_DAYS == 0:
            gross = self._gross().astype(F32)
            self._weeks = (self._weeks[-1], (self.day, gross, self.xp_total.copy()))

    def _gross(self) -> np.ndarray:
        """(n_arms, users_per_arm) each user's value so far before XP costs, float64."""
        obj = self.scenario.objective
        return (
            obj.active_value * self.active_days.astype(np.float64)
            + obj.report_value * self.reports_total
            + obj.scan_value * self.traits["scan_value"] * self.counted_total
            + obj.useful_feedback_value * self.useful_total
        )

    def user_objective(self) -> np.ndarray:
        """(n_arms, n_enrolled) each user's objective so far, float64: the value they created
        minus their XP's cost and their share of the overspend, plus their tail value once
        :meth:`credit_tail` added it. Summed over an arm's users it is the arm's objective."""
        obj, u = self.scenario.objective, slice(None, self.n_enrolled)
        value = self._gross()[:, u] - obj.xp_cost * self.xp_total[:, u] - self.overspend_total[:, u]
        return value if self._tail is None else value + self._tail

    def objective_summary(self) -> list[MeanSummary]:
        """Each arm's objective per enrolled user (:meth:`user_objective`), for the statistics
        against control; computed on demand, not every day."""
        return mean_summaries(self.user_objective(), self.enrolled_mask())

    def tail_per_user(self) -> np.ndarray:
        """(n_arms, n_enrolled) each user's expected discounted objective after the last
        simulated day if the economy stays as it is (:mod:`.tail`): their mean daily gross value
        and XP over the last whole week (:data:`RATE_WINDOW_DAYS`; since enrolment for newer
        users), and their daily survival ``1 − h·(1 − p)`` at the last day's activity
        probability; zero for users gone, and everywhere when the tail is off."""
        n, gamma, t = self.n_enrolled, self.scenario.tail_discount, self.day
        if gamma == 0 or t == 0:
            return np.zeros((self.n_arms, n))
        u = slice(None, n)
        older, newer = self._weeks  # the latest snapshot a whole week or more before today
        since, gross_then, xp_then = newer if t - newer[0] >= RATE_WINDOW_DAYS else older
        days = np.clip(t - np.maximum(self.enrol_day[:, u], since), 1, None)
        alive = self.alive[:, u]
        p_active = self._scratch["p_active"][:, u]  # the last day's, 0 for users gone
        survival = (F32(1) - self.traits["churn_hazard"][:, u] * (F32(1) - p_active)) * alive
        return tail_per_user(
            (self._gross()[:, u] - gross_then[:, u]) * alive / days,
            (self.xp_total[:, u] - xp_then[:, u]) * alive / days,
            survival,
            self.enrolled_by(t - 1),
            self.scenario.objective,
            gamma,
        )

    def credit_tail(self) -> np.ndarray:
        """At the horizon, once: credit each user's tail value (:meth:`tail_per_user`) to their
        objective; returns (n_arms,) the tail per enrolled user."""
        if self._tail is not None:
            raise RuntimeError("the tail was already credited: the horizon is reached once")
        self._tail = self.tail_per_user()
        return self._tail.sum(axis=1) / np.maximum(self.enrolled_by(self.day - 1), 1)
