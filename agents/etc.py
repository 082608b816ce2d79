"""``etc``: explore-then-commit — try every arm for a fixed budget, then keep the best.

As the SDK's 11_explore_then_exploit: round-robin blocks (each arm once per round, in config
order) for ``rounds`` rounds, then commit to the arm with the best mean pull reward for the rest
of the experiment. With pulls of several days and 28 days in all, one round is the budget that
leaves the second half for exploiting. Its virtue is predictability: after the budget it never
moves again, so users see no more changes.
"""

from __future__ import annotations

from agents.arms import ArmBandit, Arms
from agents.common import Count, NonNegativeInt, hyperparameters
from arena_rl.core.signals import Signals


class ExploreThenCommit(ArmBandit):
    """Round-robin exploration for a fixed number of rounds, then commitment.

    Args:
        arms: arm name -> multipliers of the base economy (explored in this order), a name
            of one of the scenario's arm sets, or None: its default set
            (:func:`agents.arms.resolve_arms`).
        rounds: pulls of every arm before committing.
        hold_days: days of reward averaged per pull, after the transition.
        transition_days: days at a new target that are not scored.
    """

    @hyperparameters
    def __init__(
        self,
        arms: Arms | str | None = None,
        rounds: Count = 1,
        hold_days: Count = 2,
        transition_days: NonNegativeInt = 0,
    ) -> None:
        super().__init__(arms, hold_days=hold_days, transition_days=transition_days)
        self.rounds = rounds

    @property
    def committed_(self) -> bool:
        """Whether the exploration budget (rounds × arms completed pulls) is spent."""
        return len(self.pulls_) >= self.rounds * len(self.targets_)

    def select(self, signals: Signals) -> tuple[int, str]:
        if not self.committed_:
            done = len(self.pulls_)
            return done % len(self.targets_), f"exploring: round {done // len(self.targets_) + 1}"
        arm = self.best_arm()
        return arm, f"committed: best mean reward {self.arm_means()[arm]:.3f}/user-day"
