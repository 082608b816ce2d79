"""``ucb``: UCB1 over a handful of economies — optimism in the face of uncertainty.

As the SDK's 07_ucb1: every arm is pulled once, then the arm with the highest upper confidence
bound ``mean + c·sqrt(ln N / n_i)``. Adapted to the simulator: a pull lasts days
(:mod:`agents.arms`); the reward is the estimated scenario objective, not a clipped change of a
composite; and since UCB1's bound is for rewards on a unit range, means are put in units of the
measured noise of one pull, so ``c`` near 1 keeps its textbook meaning.
"""

from __future__ import annotations

import numpy as np

from agents.arms import ArmBandit, Arms
from agents.common import Count, NonNegative, NonNegativeInt, hyperparameters
from arena_rl.core.signals import Signals


class UCB1(ArmBandit):
    """UCB1 over arms of the economy.

    Args:
        arms: arm name -> multipliers of the base economy (tried once each, in this order),
            a name of one of the scenario's arm sets, or None: its default set
            (:func:`agents.arms.resolve_arms`).
        c: exploration weight; 0 is greedy, 2 explores a lot.
        hold_days: days of reward averaged per pull, after the transition.
        transition_days: days at a new target that are not scored.
    """

    @hyperparameters
    def __init__(
        self,
        arms: Arms | str | None = None,
        c: NonNegative = 1.0,
        hold_days: Count = 2,
        transition_days: NonNegativeInt = 0,
    ) -> None:
        super().__init__(arms, hold_days=hold_days, transition_days=transition_days)
        self.c = c

    def upper_bounds(self) -> np.ndarray:
        """(n_arms,) UCB index in pull-noise units (drift-adjusted means); +inf if never pulled."""
        n = self.counts_
        bonus = self.c * np.sqrt(np.log(max(int(n.sum()), 1)) / np.maximum(n, 1))
        return np.where(n > 0, self.normalised(np.nan_to_num(self.arm_means())) + bonus, np.inf)

    def select(self, signals: Signals) -> tuple[int, str]:
        untried = self.first_untried()
        if untried is not None:
            return untried, "every arm is pulled once first"
        bounds = self.upper_bounds()
        arm = int(np.argmax(bounds))
        mean = self.arm_means()[arm]
        return arm, f"highest upper bound {bounds[arm]:+.2f} (mean reward {mean:.3f}/user-day)"
