"""``linucb``: disjoint LinUCB — an arm's value depends on the state of the population.

As the SDK's 08_contextual_bandit (Li et al., WWW 2010, algorithm 1): each arm has its own
ridge regression of reward on a context vector, ``A_i = I + Σ x xᵀ``, ``b_i = Σ r x``, and the
arm with the highest ``θ_iᵀx + α·sqrt(xᵀ A_i⁻¹ x)`` is pulled. The context is what a live agent
sees of any scenario, each feature scaled to about [0, 1] (:func:`context`): a bias, the share
of enrolled users active today, the scenario's harm metric (a share: retention), each metric
the objective estimate reads relative to its first confident reading, and the elapsed share of
the experiment (so "this arm was good *early*" can be told from "this arm is good"). A pull's
context is the mean over its scored days; rewards are normalised as for the other bandits
(centred, in units of one pull's noise), and since that scale is re-estimated as pulls come in,
``A`` and ``b`` are rebuilt from the stored pulls (a handful) at every choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from agents.arms import ArmBandit, Arms, CompletedPull
from agents.common import Count, NonNegative, NonNegativeInt, Positive, confident, hyperparameters
from arena_rl.agent import VariantInfo
from arena_rl.core.signals import Signals

UNKNOWN = 0.5
"""What a feature reads while it cannot be known (no users, no confidence, no reference)."""


def context(
    signals: Signals,
    days: int,
    harm_metric: str,
    metrics: Sequence[str],
    levels: Mapping[str, float],
) -> np.ndarray:
    """(4 + len(metrics),) context features in [0, 1].

    ``[bias, active share, harm metric, *metrics, day share]``. The harm metric is a share and
    reads as it is; each of ``metrics`` reads ``value / (2·level)``, so its level (the first
    confident reading, see :meth:`LinUCB.levels_`) reads 0.5 and a doubling reads 1. A metric
    without confidence today, or without a level yet, reads :data:`UNKNOWN`.
    """

    def feature(name: str, scale: float | None) -> float:
        if not scale or not confident(signals, (name,)):
            return UNKNOWN
        return float(np.clip(signals.metrics[name].value / scale, 0.0, 1.0))

    active = signals.active_today / signals.enrolled if signals.enrolled else UNKNOWN
    levels_scaled = [2.0 * levels[m] if m in levels else None for m in metrics]
    return np.array(
        [
            1.0,
            float(np.clip(active, 0.0, 1.0)),
            feature(harm_metric, 1.0),
            *(feature(m, scale) for m, scale in zip(metrics, levels_scaled, strict=True)),
            float(np.clip(signals.experiment_days / max(days, 1), 0.0, 1.0)),
        ]
    )


class LinUCB(ArmBandit):
    """Disjoint LinUCB over arms of the economy.

    Args:
        arms: arm name -> multipliers of the base economy (ties, e.g. before any pull, go to the
            first arm in this order), a name of one of the scenario's arm sets, or None: its
            default set (:func:`agents.arms.resolve_arms`).
        alpha: width of the confidence bonus, in pull-noise units; 0 is greedy. Larger than the
            SDK's 1.5, whose rewards live on [0, 1]; ours are several pull-noise units apart.
        ridge: weight of the identity prior in ``A_i`` (1 is the paper's).
        hold_days: days of reward averaged per pull, after the transition.
        transition_days: days at a new target that are not scored.
    """

    @hyperparameters
    def __init__(
        self,
        arms: Arms | str | None = None,
        alpha: NonNegative = 4.0,
        ridge: Positive = 1.0,
        hold_days: Count = 2,
        transition_days: NonNegativeInt = 0,
    ) -> None:
        super().__init__(arms, hold_days=hold_days, transition_days=transition_days)
        self.alpha = alpha
        self.ridge = ridge

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        scenario = info.scenario
        self.harm_metric_ = scenario.harm_metric
        self.metrics_ = tuple(m for m in scenario.objective_metrics if m != self.harm_metric_)
        self.levels_: dict[str, float] = {}
        """Metric -> its first confident non-zero reading (the scale of its feature)."""
        self.held_contexts_: list[np.ndarray] = []
        self.pull_contexts_: list[np.ndarray] = []  # one per completed pull, as self.pulls_

    def context(self, signals: Signals) -> np.ndarray:
        """Today's context (:func:`context`), after recording any metric's first level."""
        for m in self.metrics_:
            if m not in self.levels_ and confident(signals, (m,)):
                value = abs(float(signals.metrics[m].value))
                if np.isfinite(value) and value > 0.0:
                    self.levels_[m] = value
        return context(signals, self.info_.days, self.harm_metric_, self.metrics_, self.levels_)

    def on_hold(self, signals: Signals) -> None:
        self.held_contexts_.append(self.context(signals))

    def learn(self, pull: CompletedPull) -> None:
        # the last hold_days contexts are this pull's (a restarted pull leaves older ones)
        self.pull_contexts_.append(np.mean(self.held_contexts_[-len(pull.daily) :], axis=0))
        self.held_contexts_ = []

    def scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n_arms,) predicted normalised reward and confidence bonus for context ``x``."""
        k, d = len(self.targets_), x.size
        a = np.tile(self.ridge * np.eye(d), (k, 1, 1))
        b = np.zeros((k, d))
        rewards = self.normalised(np.array([p.value for p in self.pulls_]))
        for pull, features, r in zip(self.pulls_, self.pull_contexts_, rewards, strict=True):
            a[pull.arm] += np.outer(features, features)
            b[pull.arm] += r * features
        a_inv = np.linalg.inv(a)
        theta = np.einsum("kij,kj->ki", a_inv, b)
        width = np.sqrt(np.einsum("i,kij,j->k", x, a_inv, x))
        return theta @ x, self.alpha * width

    def select(self, signals: Signals) -> tuple[int, str]:
        predicted, bonus = self.scores(self.context(signals))
        arm = int(np.argmax(predicted + bonus))
        return arm, f"highest upper bound {predicted[arm]:+.2f} + {bonus[arm]:.2f} in this context"
