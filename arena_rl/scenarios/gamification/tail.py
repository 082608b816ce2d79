"""Value beyond the horizon: what each user would still create, discounted, if the economy
stayed as it is after the last simulated day.

A stationary projection of the final state. A user still in the app goes on creating their
recent daily gross value and earning their recent daily XP, and stays one more day with
probability ``s = 1 − h·(1 − p)``: the model's own churn hazard ``h`` at their last activity
probability ``p``. Day ``k`` after the horizon is discounted by ``γᵏ`` (the scenario's
``tail_discount``). The linear parts sum in closed form, ``Σₖ (γs)ᵏ = γs / (1 − γs)``.

The overspend penalty is not linear: it charges an arm's XP above its budget, and the XP of a
shrinking cohort falls under the budget in time. So the arm's XP ``k`` days on,
``Xₖ = Σᵤ xᵤ·sᵤᵏ``, is projected day by day, with users grouped by survival into fine bins so
the cost grows with bins × days, not users × days; the discounted overspend is then shared over
the arm's users in proportion to their discounted XP, as each day's overspend is.

The cohort is closed at the horizon: users who would enrol later are not counted.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from arena_rl.scenarios.gamification.specs import Objective

SURVIVAL_BINS = 4096
"""Bins of daily survival on [0, 1] for the XP projection (each bin at its XP-weighted mean)."""

TAIL_TOLERANCE = 1e-6
"""Days are projected until the discount ``γᵏ`` falls below this."""


def tail_per_user(
    gross: np.ndarray,
    xp: np.ndarray,
    survival: np.ndarray,
    enrolled: np.ndarray,
    objective: Objective,
    gamma: float,
) -> np.ndarray:
    """Each user's expected discounted objective after the horizon.

    Args:
        gross: (n_arms, n) each user's daily value before XP costs (0 for users gone).
        xp: (n_arms, n) each user's daily XP (0 for users gone).
        survival: (n_arms, n) each user's probability of staying another day.
        enrolled: (n_arms,) the arm's enrolled users (the budget is per enrolled user).
        objective: the scenario's objective (XP cost, budget, overspend cost).
        gamma: the daily discount, in [0, 1).

    Returns:
        (n_arms, n) float64; its sum over an arm's users is the arm's tail value.
    """
    kept = gamma * survival.astype(np.float64)
    weight = kept / (1.0 - kept)  # Σ_{k≥1} (γs)ᵏ
    tail = (gross - objective.xp_cost * xp) * weight
    overspend = discounted_overspend(xp, survival, enrolled, objective, gamma)
    if overspend.any():
        share = xp * weight
        tail -= overspend[:, None] * share / np.maximum(share.sum(axis=1, keepdims=True), 1e-300)
    return tail


def discounted_overspend(
    xp: np.ndarray,
    survival: np.ndarray,
    enrolled: np.ndarray,
    objective: Objective,
    gamma: float,
) -> np.ndarray:
    """(n_arms,) ``Σₖ γᵏ·c·max(Xₖ − B·E, 0)`` per arm: the overspend cost after the horizon."""
    budget = objective.xp_budget * np.asarray(enrolled, dtype=np.float64)
    out = np.zeros(xp.shape[0])
    if gamma == 0 or objective.overspend_cost == 0:
        return out
    days = np.arange(1, math.ceil(math.log(TAIL_TOLERANCE) / math.log(gamma)) + 1)
    discount = gamma**days
    for arm in range(xp.shape[0]):  # a handful of arms; every user at once within each
        x = xp[arm].astype(np.float64)
        if x.sum() <= budget[arm]:  # Xₖ ≤ X₀: never over the budget
            continue
        s = survival[arm].astype(np.float64)
        bins = np.minimum((s * SURVIVAL_BINS).astype(np.int64), SURVIVAL_BINS - 1)
        mass = np.bincount(bins, x, minlength=SURVIVAL_BINS)
        used = mass > 0
        level = np.bincount(bins, x * s, minlength=SURVIVAL_BINS)[used] / mass[used]
        projected = mass[used] @ np.power.outer(level, days)  # Xₖ for every k
        over = np.maximum(projected - budget[arm], 0.0)
        out[arm] = objective.overspend_cost * float(discount @ over)
    return out
