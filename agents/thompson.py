"""``thompson``: Thompson sampling over a handful of economies, with a Gaussian posterior.

The SDK's 05_thompson_sampling keeps a Beta-Bernoulli posterior on "the composite went up since
the last cycle". Our reward is the scenario objective, a continuous average over thousands of
users (near-normal by the central limit theorem, possibly negative); turning it into a coin
flip would throw away how much better an arm is, and "up since yesterday" mostly measures the
drift of the population and the shock of the last change, not the arm. So each arm's mean pull
reward gets a Normal-Normal posterior (known noise: the measured scatter of one pull, see
:meth:`agents.arms.ArmBandit.pull_noise`), and the arm whose posterior draw is highest is
pulled next. As in Agrawal & Goyal's Gaussian Thompson sampling (AISTATS 2013), every arm is
played once first: the prior is centred and scaled by what the pulls measure, and a random
first sweep would zigzag the economy between raises and cuts.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from agents.arms import ArmBandit, Arms
from agents.common import Count, NonNegativeInt, Positive, hyperparameters
from arena_rl.core.signals import Signals

GRID_PER_SD = 16
"""Grid points per (smallest) posterior sd in :func:`win_probabilities`' integral."""
GRID_SDS = 9.0
"""How far, in each arm's sds, the integral reaches beyond the extreme means (a tail beyond 9
sds holds ~1e-19 of a normal)."""
MAX_GRID = 200_000
"""Most grid points (reached only when the sds differ by orders of magnitude)."""


def win_probabilities(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """(n,) chance that arm i's draw is the highest of independent N(mean_i, sd_i²) draws.

    By numerical integration, not sampling (it draws nothing):
    ``P_i = ∫ φ_i(x) · Π_{j≠i} Φ_j(x) dx``, the trapezoid rule on one grid of step
    ``min(sd) / GRID_PER_SD`` over ``[min(mean - GRID_SDS·sd), max(mean + GRID_SDS·sd)]``
    (for these smooth, fast-decaying integrands its error is far below 1e-9), normalised to
    sum to 1. Ties have probability 0, so argmax's first-index tie-breaking does not matter.
    """
    mean, sd = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
    if mean.size == 1:
        return np.ones(1)
    low, high = float(np.min(mean - GRID_SDS * sd)), float(np.max(mean + GRID_SDS * sd))
    n = min(int(np.ceil((high - low) / float(np.min(sd)) * GRID_PER_SD)) + 1, MAX_GRID)
    x = np.linspace(low, high, n)
    z = (x[None, :] - mean[:, None]) / sd[:, None]  # (arms, grid)
    log_cdf = log_ndtr(z)
    log_density = -0.5 * z**2 - np.log(sd[:, None] * np.sqrt(2.0 * np.pi))
    # φ_i · Π_{j≠i} Φ_j = φ_i / Φ_i · Π_j Φ_j, in logs
    integrand = np.exp(log_density - log_cdf + log_cdf.sum(axis=0)[None, :])
    wins = np.trapezoid(integrand, x, axis=1)
    return np.asarray(wins / wins.sum())


class ThompsonSampling(ArmBandit):
    """Gaussian Thompson sampling over arms of the economy.

    Work is in normalised units (pull rewards centred on the average pull and divided by the
    noise of one pull), so the prior is scale-free: arm means ~ N(0, prior_sd²) around the
    average arm, each pull ~ N(arm mean, noise_sd²).

    Its stated :meth:`action_probability` on the answer that starts a sampled pull is the
    chance that the posterior draw picks an arm giving that answer, integrated numerically
    (:func:`win_probabilities`; ``rng_`` is never touched for it); 1.0 during the first sweep
    and while a pull goes on.

    Args:
        arms: arm name -> multipliers of the base economy (tried once each, in this order),
            a name of one of the scenario's arm sets, or None: its default set
            (:func:`agents.arms.resolve_arms`).
        prior_sd: prior spread of arm means around the average arm, in pull-noise units.
        noise_sd: spread of one pull around its arm's mean, in pull-noise units (above 1 when
            the population drifts between pulls more than it scatters within one).
        hold_days: days of reward averaged per pull, after the transition.
        transition_days: days at a new target that are not scored.
    """

    @hyperparameters
    def __init__(
        self,
        arms: Arms | str | None = None,
        prior_sd: Positive = 3.0,
        noise_sd: Positive = 1.0,
        hold_days: Count = 2,
        transition_days: NonNegativeInt = 0,
    ) -> None:
        super().__init__(arms, hold_days=hold_days, transition_days=transition_days)
        self.prior_sd = prior_sd
        self.noise_sd = noise_sd

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """(n_arms,) posterior mean and sd of each arm's mean, in normalised units."""
        n = self.counts_.astype(float)
        observed = self.normalised(np.nan_to_num(self.arm_means()))
        precision = 1.0 / self.prior_sd**2 + n / self.noise_sd**2
        mean = np.where(n > 0, n * observed / self.noise_sd**2, 0.0) / precision
        return mean, 1.0 / np.sqrt(precision)

    def selection_probabilities(self, signals: Signals) -> np.ndarray | None:
        """Each arm's chance of the highest posterior draw (:func:`win_probabilities`); None
        while the first sweep picks arms in order."""
        if self.first_untried() is not None:
            return None
        return win_probabilities(*self.posterior())

    def select(self, signals: Signals) -> tuple[int, str]:
        untried = self.first_untried()
        if untried is not None:
            return untried, "every arm is pulled once first"
        mean, sd = self.posterior()
        draws = mean + sd * self.rng_.standard_normal(mean.size)
        arm = int(np.argmax(draws))
        return arm, f"highest posterior draw {draws[arm]:+.2f} (posterior mean {mean[arm]:+.2f})"
