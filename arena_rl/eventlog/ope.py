"""Off-policy evaluation over logged decision points: what would another policy have earned?

Each logged decision gives a realised ``reward``, the probability ``logging_p`` the logging
policy gave to the action it took, and the probability ``target_p`` the target policy gives to
that same action (for a deterministic target: 1.0 if it would have taken it, else 0.0; for a
stochastic target an indicator that an action *sampled* from the target matched the logged one
is an unbiased stand-in for the probability, at the price of extra variance). The model-based
estimators also take a reward model's prediction for the logged action (``q_logged``) and its
prediction of the expected reward under the target policy (``q_target``).

The estimators follow the usual definitions (those of Open Bandit Pipeline), with importance
weights ``w = target_p / logging_p``::

    IPS   = mean(w·r)
    SNIPS = Σ w·r / Σ w
    DM    = mean(q_target)
    DR    = mean(q_target + w·(r − q_logged))
    SNDR  = mean(q_target) + Σ w·(r − q_logged) / Σ w

:func:`estimate` returns each with a percentile bootstrap CI over decisions, the weights'
effective sample size and a warning when the weights degenerated. Per-decision estimators
assume a decision's reward depends on that decision alone; when an economy change keeps acting
for weeks it does not, and :func:`trajectory_ips` weighs whole schedules instead.
``docs/ope.md`` gives the assumptions and when each estimator is biased.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold

FloatArray = npt.NDArray[np.float64]

MIN_BOOTSTRAP_REPLICATES = 100
MIN_EFFECTIVE_SAMPLE_SIZE = 10
MIN_EFFECTIVE_SAMPLE_SHARE = 0.01
BOOTSTRAP_CELLS_PER_CHUNK = 2_000_000
"""Resampled rows held at once: bounds the bootstrap's memory at large n (a few tens of MB)."""


@dataclass(frozen=True)
class Estimate:
    """One estimator's answer: the point value, its bootstrap CI and how far to trust it."""

    name: str
    value: float
    ci_low: float
    ci_high: float
    ess: float
    n: int
    warning: str | None


@dataclass(frozen=True)
class _Logged:
    """Per-decision columns the estimators read; samples lie on the last axis.

    The same kernels then compute a point estimate from 1-D columns and all bootstrap
    replicates at once from (B, n) resampled columns.
    """

    reward: FloatArray
    weight: FloatArray
    q_logged: FloatArray | None = None
    q_target: FloatArray | None = None

    def take(self, rows: npt.NDArray[np.int64]) -> _Logged:
        """The columns resampled at ``rows`` (any shape; its last axis becomes the samples')."""
        return _Logged(
            reward=self.reward[rows],
            weight=self.weight[rows],
            q_logged=None if self.q_logged is None else self.q_logged[rows],
            q_target=None if self.q_target is None else self.q_target[rows],
        )

    def model(self) -> tuple[FloatArray, FloatArray]:
        """(q_logged, q_target), for the estimators that cannot run without a reward model."""
        if self.q_logged is None or self.q_target is None:
            raise ValueError("q_logged and q_target are needed for DM, DR and SNDR")
        return self.q_logged, self.q_target


Kernel = Callable[[_Logged], FloatArray]


def _ratio(numerator: FloatArray, denominator: FloatArray, *, empty: float) -> FloatArray:
    """numerator / denominator, with ``empty`` where no weight at all makes it undefined."""
    out = np.full(np.shape(numerator), empty, dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _ips(logged: _Logged) -> FloatArray:
    return np.asarray(np.mean(logged.weight * logged.reward, axis=-1))


def _snips(logged: _Logged) -> FloatArray:
    weighted = np.sum(logged.weight * logged.reward, axis=-1)
    return _ratio(weighted, np.sum(logged.weight, axis=-1), empty=np.nan)


def _dm(logged: _Logged) -> FloatArray:
    _, q_target = logged.model()
    return np.asarray(np.mean(q_target, axis=-1))


def _dr(logged: _Logged) -> FloatArray:
    q_logged, q_target = logged.model()
    return np.asarray(np.mean(q_target + logged.weight * (logged.reward - q_logged), axis=-1))


def _sndr(logged: _Logged) -> FloatArray:
    """SNDR; with no weight at all the correction has nothing to say, so it falls back to DM."""
    q_logged, q_target = logged.model()
    correction = np.sum(logged.weight * (logged.reward - q_logged), axis=-1)
    return np.mean(q_target, axis=-1) + _ratio(
        correction, np.sum(logged.weight, axis=-1), empty=0.0
    )


WEIGHTED_KERNELS: dict[str, Kernel] = {"ips": _ips, "snips": _snips}
MODEL_KERNELS: dict[str, Kernel] = {"dm": _dm, "dr": _dr, "sndr": _sndr}
UNWEIGHTED = frozenset({"dm"})
"""Estimators that use no importance weight: every row counts once and weights cannot degenerate."""


# --- input checks ---------------------------------------------------------------------------


def _column(name: str, values: npt.ArrayLike, length: int | None = None) -> FloatArray:
    """A finite 1-D float array, or a ValueError that names the argument."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per decision), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: there are no logged decisions")
    if length is not None and array.size != length:
        raise ValueError(f"{name} has {array.size} values but reward has {length}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf")
    return array


def _check_probabilities(name: str, p: FloatArray, *, zero_allowed: bool) -> None:
    low_ok = p >= 0 if zero_allowed else p > 0
    if not np.all(low_ok & (p <= 1)):
        bounds = "[0, 1]" if zero_allowed else "(0, 1]"
        raise ValueError(f"{name} must lie in {bounds}; got values from {p.min()} to {p.max()}")


def _weights(logging_p: FloatArray, target_p: FloatArray) -> FloatArray:
    _check_probabilities("logging_p", logging_p, zero_allowed=False)
    _check_probabilities("target_p", target_p, zero_allowed=True)
    return target_p / logging_p


def _logged(
    reward: npt.ArrayLike,
    logging_p: npt.ArrayLike,
    target_p: npt.ArrayLike,
    q_logged: npt.ArrayLike | None = None,
    q_target: npt.ArrayLike | None = None,
) -> _Logged:
    """Checked columns; q arrays must come as a pair, since DR needs both."""
    rewards = _column("reward", reward)
    n = rewards.size
    weight = _weights(_column("logging_p", logging_p, n), _column("target_p", target_p, n))
    if (q_logged is None) != (q_target is None):
        missing = "q_target" if q_target is None else "q_logged"
        raise ValueError(f"{missing} is missing: q_logged and q_target go together")
    if q_logged is None or q_target is None:
        return _Logged(rewards, weight)
    return _Logged(
        rewards, weight, _column("q_logged", q_logged, n), _column("q_target", q_target, n)
    )


# --- point estimates ------------------------------------------------------------------------


def ips(reward: npt.ArrayLike, logging_p: npt.ArrayLike, target_p: npt.ArrayLike) -> float:
    """Inverse propensity scoring: unbiased when logging_p is right and covers the target."""
    return float(_ips(_logged(reward, logging_p, target_p)))


def snips(reward: npt.ArrayLike, logging_p: npt.ArrayLike, target_p: npt.ArrayLike) -> float:
    """Self-normalised IPS: a little bias (O(1/n)) for much less variance; NaN with no weight."""
    return float(_snips(_logged(reward, logging_p, target_p)))


def direct_method(q_target: npt.ArrayLike) -> float:
    """Direct method: the reward model's mean under the target, exactly as biased as the model."""
    values = _column("q_target", q_target)
    return float(np.mean(values))


def doubly_robust(
    reward: npt.ArrayLike,
    logging_p: npt.ArrayLike,
    target_p: npt.ArrayLike,
    q_logged: npt.ArrayLike,
    q_target: npt.ArrayLike,
) -> float:
    """Doubly robust: unbiased if either logging_p or the reward model is right."""
    return float(_dr(_logged(reward, logging_p, target_p, q_logged, q_target)))


def self_normalised_doubly_robust(
    reward: npt.ArrayLike,
    logging_p: npt.ArrayLike,
    target_p: npt.ArrayLike,
    q_logged: npt.ArrayLike,
    q_target: npt.ArrayLike,
) -> float:
    """DR whose correction is self-normalised: bounded by the residuals when weights blow up."""
    return float(_sndr(_logged(reward, logging_p, target_p, q_logged, q_target)))


# --- reliability ----------------------------------------------------------------------------


def effective_sample_size(weight: npt.ArrayLike) -> float:
    """(Σw)² / Σw²: how many equally weighted decisions the weighted sample is worth (0 if none)."""
    w = np.asarray(weight, dtype=float)
    squares = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / squares if squares > 0 else 0.0


def degenerate_weights_warning(weight: npt.ArrayLike) -> str | None:
    """A warning when ESS < max(10, 1% of n) or no weight is positive; None when weights are fine.

    Few decisions then carry the estimate, so its bootstrap CI understates the uncertainty.
    """
    w = np.asarray(weight, dtype=float)
    n = w.size
    ess = effective_sample_size(w)
    carrying = int(np.count_nonzero(w > 0))
    threshold = max(MIN_EFFECTIVE_SAMPLE_SIZE, MIN_EFFECTIVE_SAMPLE_SHARE * n)
    if carrying > 0 and ess >= threshold:
        return None
    return (
        f"importance weights degenerated: the target policy rarely takes the logged actions, "
        f"only {carrying} of {n} decisions carry weight (effective sample size {ess:.1f} < "
        f"{threshold:g}); the confidence interval cannot be trusted"
    )


# --- bootstrap ------------------------------------------------------------------------------


def _bootstrap(
    logged: _Logged, kernels: Mapping[str, Kernel], n_boot: int, seed: int
) -> dict[str, FloatArray]:
    """Replicates of every kernel on the same resampled rows (common random numbers).

    Rows are drawn as (B, n) index arrays, in chunks only when B·n would not fit in memory.
    """
    rng = np.random.default_rng(seed)
    n = logged.reward.size
    chunk = max(1, BOOTSTRAP_CELLS_PER_CHUNK // n)
    replicates = {name: np.empty(n_boot) for name in kernels}
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        resampled = logged.take(rng.integers(0, n, size=(stop - start, n)))
        for name, kernel in kernels.items():
            replicates[name][start:stop] = kernel(resampled)
    return replicates


def _percentile_interval(replicates: FloatArray, alpha: float) -> tuple[float, float]:
    """Percentile CI; replicates left undefined (no weight drawn) are dropped, NaN if all are."""
    defined = replicates[np.isfinite(replicates)]
    if defined.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(defined, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def _check_bootstrap_settings(n_boot: int, alpha: float) -> None:
    if n_boot < MIN_BOOTSTRAP_REPLICATES:
        raise ValueError(f"n_boot must be at least {MIN_BOOTSTRAP_REPLICATES}, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def _estimates(
    logged: _Logged,
    kernels: Mapping[str, Kernel],
    *,
    n_boot: int,
    seed: int,
    alpha: float,
) -> dict[str, Estimate]:
    """Point value, CI, ESS and warning for each kernel; DM's rows are all equally weighted."""
    n = logged.reward.size
    ess = effective_sample_size(logged.weight)
    warning = degenerate_weights_warning(logged.weight)
    replicates = _bootstrap(logged, kernels, n_boot, seed)
    results: dict[str, Estimate] = {}
    for name, kernel in kernels.items():
        unweighted = name in UNWEIGHTED
        low, high = _percentile_interval(replicates[name], alpha)
        results[name] = Estimate(
            name=name,
            value=float(kernel(logged)),
            ci_low=low,
            ci_high=high,
            ess=float(n) if unweighted else ess,
            n=n,
            warning=None if unweighted else warning,
        )
    return results


def estimate(
    reward: npt.ArrayLike,
    logging_p: npt.ArrayLike,
    target_p: npt.ArrayLike,
    q_logged: npt.ArrayLike | None = None,
    q_target: npt.ArrayLike | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Estimate]:
    """IPS and SNIPS, plus DM, DR and SNDR when a reward model's q arrays are given.

    CIs are percentile bootstraps over decisions (rows resampled with replacement, seeded);
    they assume decisions are independent, which carry-over between decisions breaks.
    """
    _check_bootstrap_settings(n_boot, alpha)
    logged = _logged(reward, logging_p, target_p, q_logged, q_target)
    kernels = dict(WEIGHTED_KERNELS)
    if logged.q_logged is not None:
        kernels |= MODEL_KERNELS
    return _estimates(logged, kernels, n_boot=n_boot, seed=seed, alpha=alpha)


# --- carry-over: whole trajectories ---------------------------------------------------------


def _matrix(name: str, values: npt.ArrayLike, trajectories: int) -> FloatArray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 2 or array.shape[0] != trajectories or array.shape[1] == 0:
        raise ValueError(
            f"{name} must have shape ({trajectories}, T): one row per trajectory, one column "
            f"per decision; got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf")
    return array


def trajectory_weights(
    logging_p_matrix: npt.ArrayLike, target_p_matrix: npt.ArrayLike
) -> FloatArray:
    """Each trajectory's weight: the product of target_p / logging_p over its decisions."""
    logging = np.asarray(logging_p_matrix, dtype=float)
    target = np.asarray(target_p_matrix, dtype=float)
    if logging.shape != target.shape:
        raise ValueError(
            f"target_p_matrix has shape {target.shape} but logging_p_matrix has {logging.shape}"
        )
    weights = np.prod(_weights(logging, target), axis=-1)
    if not np.all(np.isfinite(weights)):
        raise ValueError("trajectory weights overflow: logging_p_matrix is too small too often")
    return np.asarray(weights, dtype=float)


def trajectory_ips(
    reward_per_trajectory: npt.ArrayLike,
    logging_p_matrix: npt.ArrayLike,
    target_p_matrix: npt.ArrayLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Estimate]:
    """IPS and weighted (self-normalised) IPS of the mean trajectory reward.

    Weighing an arm's whole schedule stays unbiased under carry-over between its decisions,
    but the product of T ratios degenerates fast: read the ESS and the warning. Pad a
    trajectory shorter than T with probability 1 in both matrices.
    """
    _check_bootstrap_settings(n_boot, alpha)
    reward = _column("reward_per_trajectory", reward_per_trajectory)
    m = reward.size
    logging = _matrix("logging_p_matrix", logging_p_matrix, m)
    target = _matrix("target_p_matrix", target_p_matrix, m)
    logged = _Logged(reward, trajectory_weights(logging, target))
    kernels: dict[str, Kernel] = {"trajectory_ips": _ips, "trajectory_wis": _snips}
    return _estimates(logged, kernels, n_boot=n_boot, seed=seed, alpha=alpha)


# --- reward model ---------------------------------------------------------------------------


def _feature_matrix(name: str, values: npt.ArrayLike) -> FloatArray:
    """2-D float features (a 1-D array is one feature); NaN marks a missing value, inf is bad."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, np.newaxis]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D or 2-D array, got shape {array.shape}")
    if np.any(np.isinf(array)):
        raise ValueError(f"{name} contains inf (NaN is allowed: it marks a value not asked for)")
    return array


def _design_matrix(features: npt.ArrayLike, actions: npt.ArrayLike) -> FloatArray:
    """Context features and action features side by side, one row per decision."""
    context = _feature_matrix("features", features)
    action = _feature_matrix("actions", actions)
    if context.shape[0] != action.shape[0]:
        raise ValueError(f"actions has {action.shape[0]} rows but features has {context.shape[0]}")
    return np.hstack([context, action])


@dataclass(frozen=True)
class RewardModel:
    """A fitted regressor of reward on (context, action) features."""

    regressor: HistGradientBoostingRegressor

    def predict(self, features: npt.ArrayLike, actions: npt.ArrayLike) -> FloatArray:
        """Predicted reward for each row's context and action."""
        design = _design_matrix(features, actions)
        if design.shape[1] != self.regressor.n_features_in_:
            raise ValueError(
                f"features and actions have {design.shape[1]} columns together; the model was "
                f"fitted on {self.regressor.n_features_in_}"
            )
        return np.asarray(self.regressor.predict(design), dtype=float)


def fit_reward_model(
    features: npt.ArrayLike, actions: npt.ArrayLike, reward: npt.ArrayLike, *, seed: int = 0
) -> RewardModel:
    """Gradient-boosted trees on [features, actions]: fast from hundreds to tens of thousands of
    rows, and they take NaN (a knob not asked for) natively. Small leaves, shrinkage and an L2
    penalty keep them from chasing noise at small n."""
    design = _design_matrix(features, actions)
    rewards = _column("reward", reward, design.shape[0])
    regressor = HistGradientBoostingRegressor(
        learning_rate=0.05,
        max_iter=200,
        max_leaf_nodes=15,
        min_samples_leaf=min(20, max(5, design.shape[0] // 20)),
        l2_regularization=1.0,
        random_state=seed,
    )
    regressor.fit(design, rewards)
    return RewardModel(regressor)


def cross_fitted_predictions(
    features: npt.ArrayLike,
    actions: npt.ArrayLike,
    reward: npt.ArrayLike,
    target_actions: npt.ArrayLike,
    *,
    folds: int = 5,
    seed: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """(q_logged, q_target): row i's predictions come from a model not trained on row i.

    A model that saw row i predicts its noise too, pulling q_logged towards r and DR towards
    DM; cross-fitting removes that bias. ``target_actions`` is the deterministic target's
    action per row, in the same columns as ``actions``.
    """
    context = _feature_matrix("features", features)
    logged_actions = _feature_matrix("actions", actions)
    wanted = _feature_matrix("target_actions", target_actions)
    if wanted.shape != logged_actions.shape:
        raise ValueError(
            f"target_actions has shape {wanted.shape} but actions has {logged_actions.shape}"
        )
    rewards = _column("reward", reward, context.shape[0])
    n = rewards.size
    if not 2 <= folds <= n:
        raise ValueError(f"folds must lie between 2 and the number of rows ({n}), got {folds}")
    q_logged = np.empty(n)
    q_target = np.empty(n)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, held_out in splitter.split(context):
        model = fit_reward_model(context[train], logged_actions[train], rewards[train], seed=seed)
        q_logged[held_out] = model.predict(context[held_out], logged_actions[held_out])
        q_target[held_out] = model.predict(context[held_out], wanted[held_out])
    return q_logged, q_target
