"""``bayesopt``: Gaussian-process Bayesian optimisation of a few economy knobs by expected
improvement — the SDK's 09, done properly.

The search runs in a unit cube over multipliers of the base economy, one axis per knob of the
box (:func:`search_box`): the scenario's own ``search_box()`` when it ships one, else a box
derived from the knobs' bounds. An axis whose low multiplier is above 0 is searched on the
log of the multiplier (a tenth to a quarter more is a span of ratios); one that reaches 0 is
searched on the multiplier itself (a log cannot reach 0, and "none at all" is a setting worth
trying for a discount or a trial). A seeded Latin-hypercube design comes first; then each next
economy maximises expected improvement under scikit-learn's GP (Matern or RBF plus white noise,
hyperparameters fitted by marginal likelihood, normalised targets, plus a linear drift over the
experiment). An evaluation moves to the candidate through the delta clamp, holds it, and scores
the daily :func:`agents.common.reward` after a transition, each held day one observation (the GP
averages them and learns the noise level from them); inputs are the economy users actually saw
(the clamp may stop short), not the one suggested. In the last part of the experiment (or after
``max_evaluations``) it moves to the scored economy of best posterior mean and stays.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import Field
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    DotProduct,
    Exponentiation,
    Kernel,
    Matern,
    WhiteKernel,
)
from threadpoolctl import threadpool_limits

from agents.common import (
    BaseAgent,
    Count,
    Fraction,
    NonNegative,
    NonNegativeInt,
    Positive,
    hyperparameters,
    reward,
    toward,
)
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.knobs import Knobs
from arena_rl.core.scenario import Scenario
from arena_rl.core.signals import Signals

Box = Mapping[str, Sequence[float]]
"""Knob -> [low, high] multipliers of the base economy (its reference value, see
:func:`reference_values`)."""


def reference_values(base: Mapping[str, float], knobs: Knobs) -> dict[str, float]:
    """What box multipliers multiply, per knob: the base value; where that is 0 (nothing to
    multiply), the knob's default; where that is 0 too, the top of its search range."""
    return {
        k: base[k] or knobs.by_name[k].default or knobs.by_name[k].search_high for k in knobs.keys
    }


def bounds_box(base: Mapping[str, float], knobs: Knobs) -> dict[str, tuple[float, float]]:
    """The box that spans every knob's bounds: ``[low / reference, high / reference]`` per
    knob, where an unbounded top is the knob's ``search_high`` (a multiple of its default);
    knobs fixed by their bounds (low == high) are left out. A knob whose low bound is 0 gets a
    low multiplier of 0 and so is searched on the linear scale."""
    reference = reference_values(base, knobs)
    return {
        k.name: (k.low / reference[k.name], k.search_high / reference[k.name])
        for k in knobs.knobs
        if k.search_high > k.low
    }


def search_box(
    box: Box | None, scenario: Scenario, base: Mapping[str, float]
) -> dict[str, tuple[float, float]]:
    """The box to search: ``box`` as given (checked against the scenario's knobs), else the
    scenario's ``search_box()``, else :func:`bounds_box`.

    Raises:
        ValueError: for an unknown knob, or bounds that are not ``0 <= low < high`` (finite).
    """
    if box is None:
        box = scenario.search_box() or bounds_box(base, scenario.knobs)
    if not isinstance(box, Mapping) or not box:
        raise ValueError(f"box: need knob -> [low, high] multipliers, got {box!r}")
    clean = {}
    for key, bounds in box.items():
        if key not in scenario.knobs.by_name:
            raise ValueError(
                f"box: unknown knob {key!r}; this scenario's knobs are "
                f"{', '.join(scenario.knobs.keys)}"
            )
        values = [float(v) for v in bounds]
        if len(values) != 2 or not all(np.isfinite(values)) or not 0 <= values[0] < values[1]:
            raise ValueError(f"box.{key}: need [low, high] with 0 <= low < high, got {bounds!r}")
        clean[str(key)] = (values[0], values[1])
    return clean


Phase = Literal["move", "hold", "exploit"]
Bounds = Annotated[Sequence[Positive], Field(min_length=2, max_length=2)]
"""[low, high] bounds of a fitted kernel hyperparameter."""


def latin_hypercube(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """(n, d) points in [0, 1]^d, one per row-stratum of every axis (a random Latin hypercube)."""
    strata = np.stack([rng.permutation(n) for _ in range(d)], axis=1)
    return (strata + rng.random((n, d))) / n


def expected_improvement(
    gp: GaussianProcessRegressor, points: np.ndarray, best: float, xi: float
) -> np.ndarray:
    """EI of (m, d) points over ``best`` (maximisation), in the GP's target units."""
    mean, sd = gp.predict(points, return_std=True)
    sd = np.maximum(sd, 1e-12)
    z = (mean - best - xi) / sd
    return np.asarray((mean - best - xi) * norm.cdf(z) + sd * norm.pdf(z))


class OnColumns(Exponentiation):
    """A scikit-learn kernel that sees only some input columns (GPy's ``active_dims``), so a
    sum of two of them models an economy effect plus a drift over time.

    Built on ``Exponentiation`` with exponent 1, which already delegates the hyperparameters.
    """

    def __init__(self, kernel: Kernel, columns: tuple[int, ...]) -> None:
        super().__init__(kernel, 1.0)
        self.columns = columns

    def get_params(self, deep: bool = True) -> dict[str, object]:
        params: dict[str, object] = {"kernel": self.kernel, "columns": self.columns}
        if deep:
            params.update(("kernel__" + k, v) for k, v in self.kernel.get_params().items())
        return params

    def __call__(
        self, x: np.ndarray, y: np.ndarray | None = None, eval_gradient: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        cols = list(self.columns)
        y = None if y is None else np.asarray(y)[:, cols]
        return self.kernel(np.asarray(x)[:, cols], y, eval_gradient=eval_gradient)

    def diag(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.kernel.diag(np.asarray(x)[:, list(self.columns)]))

    def __repr__(self) -> str:
        return f"{self.kernel} on columns {list(self.columns)}"


class GPBayesOpt(BaseAgent):
    """GP-EI over multipliers of a few knobs (log or linear axes); moves, holds, scores,
    refits; then exploits.

    Args:
        box: knob -> [low, high] multipliers of the base economy (a base of 0 is read as the
            knob's default, :func:`reference_values`); an axis with low > 0 is searched on the
            log scale, one with low 0 on the linear scale. None: the scenario's search box,
            else one spanning the knobs' bounds (:func:`search_box`).
        n_initial: Latin-hypercube points before EI takes over.
        max_evaluations: evaluations before exploiting the best posterior mean.
        hold_days: days an evaluated economy is held (counted from the day it was reached).
        transition_days: first held days left out of the scores (users still adjusting).
        max_move_days: days spent moving toward a candidate before scoring wherever the
            clamp has got to.
        exploit_fraction: final share of the experiment spent on the scored economy of best
            posterior mean.
        xi: EI exploration margin, in reward units (objective per enrolled user per day).
        kernel: "matern" or "rbf", over the box keys.
        nu: Matern smoothness (0.5, 1.5, 2.5 or inf).
        length_scale: initial length scale, in unit-cube units.
        length_scale_bounds: bounds the marginal-likelihood fit keeps length scales in.
        noise_bounds: bounds of the WhiteKernel noise level (on normalised targets).
        ard: one length scale per key instead of one shared (needs more evaluations).
        trend: add a linear drift over the experiment (an additive kernel on the day), so
            days scored at different times compare fairly.
        n_candidates: random points EI is maximised over (half uniform, half near the scored).
        n_restarts: extra optimiser starts of the GP hyperparameter fit.

    The economies it tries are drawn at random (the Latin hypercube, the candidates EI is
    maximised over, the random starts of the GP fit) and have no density it could state, so
    :meth:`action_probability` is NaN on the first answer that shows a newly chosen economy
    (each evaluation's, and the exploit target's when a GP chose it) and 1.0 on every other
    answer (moving on toward a shown economy, holding, staying) — these follow from its state.
    """

    phase_: Phase
    candidate_: np.ndarray
    reason_: str
    unshown_: bool
    """Whether the economy last chosen at random has not been shown in an answer yet."""

    @hyperparameters
    def __init__(
        self,
        box: Box | None = None,
        n_initial: Count = 3,
        max_evaluations: Count = 8,
        hold_days: Count = 3,
        transition_days: NonNegativeInt = 1,
        max_move_days: NonNegativeInt = 3,
        exploit_fraction: Fraction = 0.333,
        xi: NonNegative = 0.01,
        kernel: Literal["matern", "rbf"] = "matern",
        nu: Annotated[float, Field(gt=0, allow_inf_nan=True)] = 2.5,  # inf: the RBF limit
        length_scale: Positive = 0.5,
        length_scale_bounds: Bounds = (0.1, 10.0),
        noise_bounds: Bounds = (1e-3, 1.0),
        ard: bool = False,
        trend: bool = True,
        n_candidates: Count = 2000,
        n_restarts: NonNegativeInt = 1,
    ) -> None:
        if hold_days <= transition_days:  # otherwise no held day is ever scored
            raise ValueError(
                f"hold_days must be > transition_days ({transition_days}), got {hold_days}"
            )
        for name, (low, high) in (
            ("length_scale_bounds", length_scale_bounds),
            ("noise_bounds", noise_bounds),
        ):
            if low > high:
                raise ValueError(f"{name} must be [low, high] with low <= high, got {[low, high]}")
        self.box = box
        self.n_initial = n_initial
        self.max_evaluations = max_evaluations
        self.hold_days = hold_days
        self.transition_days = transition_days
        self.max_move_days = max_move_days
        self.exploit_fraction = exploit_fraction
        self.xi = xi
        self.kernel = kernel
        self.nu = nu
        self.length_scale = length_scale
        self.length_scale_bounds = length_scale_bounds
        self.noise_bounds = noise_bounds
        self.ard = ard
        self.trend = trend
        self.n_candidates = n_candidates
        self.n_restarts = n_restarts

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        box = search_box(self.box, info.scenario, info.base_economy)
        self.keys_ = tuple(box)
        self.linear_ = np.array([box[k][0] == 0.0 for k in self.keys_])
        """Axes searched on the multiplier itself (their low is 0), not on its log."""
        raw = np.array([box[k] for k in self.keys_])
        bounds = np.where(self.linear_[:, None], raw, np.log(np.maximum(raw, 1e-300)))
        self.log_low_, self.log_span_ = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
        reference = reference_values(info.base_economy, info.knobs)
        self.reference_ = {k: reference[k] for k in self.keys_}
        self.design_ = latin_hypercube(self.n_initial, len(self.keys_), rng)
        self.exploit_day_ = math.ceil(info.days * (1 - self.exploit_fraction))
        self.inputs_: list[np.ndarray] = []  # GP inputs of the scored days
        self.y_: list[float] = []  # their rewards
        self.gp_: GaussianProcessRegressor | None = None
        self.n_fits_ = self.n_started_ = self.n_evaluations_ = 0
        self.best_: np.ndarray | None = None
        self.probability_ = 1.0
        self._start_move(self.design_[0], day=0)

    # ---- the cube <-> economies -------------------------------------------------------------
    def economy_of(self, unit: np.ndarray) -> dict[str, float]:
        """The box knobs' values at a unit-cube point (clipped into bounds, integers rounded)."""
        axes = self.log_low_ + np.asarray(unit) * self.log_span_
        return self.info_.knobs.clipped(
            {
                k: self.reference_[k] * float(v if linear else np.exp(v))
                for k, v, linear in zip(self.keys_, axes, self.linear_, strict=True)
            }
        )

    def unit_of(self, config: Mapping[str, float]) -> np.ndarray:
        """The unit-cube point of an applied economy (slightly outside the box is allowed)."""
        ratio = np.array([max(config[k], 1e-6) / self.reference_[k] for k in self.keys_])
        axes = np.where(self.linear_, ratio, np.log(ratio))
        return np.clip((axes - self.log_low_) / self.log_span_, -0.5, 1.5)

    def inputs(self, points: np.ndarray, when: float) -> np.ndarray:
        """GP inputs: (m, d) unit-cube economies, plus the time column (share of the
        experiment) when a trend is modelled."""
        if not self.trend:
            return points
        return np.hstack([points, np.full((len(points), 1), when)])

    # ---- the decision ----------------------------------------------------------------------
    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        self.probability_ = 1.0
        day = signals.experiment_days
        if self.phase_ == "move" and self._arrived(current_config, day):
            self.phase_, self.held_, self.n_scored_ = "hold", 0, 0
        if self.phase_ == "hold":
            score = reward(signals, self.info_)  # None until confident: never learn from noise
            if self.held_ >= self.transition_days and score is not None and math.isfinite(score):
                # today's signals describe yesterday, under the economy users saw (the clamp
                # may have stopped short of the candidate; a breaker may have reverted it)
                seen = self.unit_of(current_config)[None]
                self.inputs_.append(self.inputs(seen, (day - 1) / self.info_.days)[0])
                self.y_.append(score)
                self.n_scored_ += 1
            self.held_ += 1
            late = day >= self.exploit_day_
            if late or (self.held_ >= self.hold_days and self.n_scored_):
                self._finish_evaluation()
                self._choose_next(day)
        elif self.phase_ == "move" and day >= self.exploit_day_:
            self._start_exploit(day)
        if not self.may_update(signals):
            return None
        if self.unshown_:  # this answer shows where the random choice went
            self.probability_, self.unshown_ = math.nan, False
        if self.phase_ == "exploit":
            if self.best_ is None:
                return None  # never saw a confident reward: keep what users have
            return toward(
                self.economy_of(self.best_), current_config, self.reason_, self.info_.knobs
            )
        if self.phase_ == "move":
            return toward(
                self.economy_of(self.candidate_), current_config, self.reason_, self.info_.knobs
            )
        return None

    def action_probability(self) -> float:
        """NaN on the first answer showing a randomly chosen economy, else 1.0 (see the class
        docstring)."""
        return self.probability_

    def _start_move(self, unit: np.ndarray, day: int) -> None:
        self.phase_ = "move"
        self.candidate_, self.move_started_ = np.asarray(unit, dtype=float), day
        self.n_started_ += 1
        self.unshown_ = True
        how = "initial design" if self.n_started_ <= self.n_initial else "max expected improvement"
        self.reason_ = f"BO evaluation {self.n_started_} ({how}): try {self._show(unit)}"

    def _arrived(self, current_config: Mapping[str, float], day: int) -> bool:
        step = toward(self.economy_of(self.candidate_), current_config, "", self.info_.knobs)
        return step is None or day - self.move_started_ >= self.max_move_days

    def _finish_evaluation(self) -> None:
        # each scored day is its own observation: replicates let the GP tell noise from signal
        if self.n_scored_:
            self.n_evaluations_ += 1
            self.gp_ = self._fit()
        self.n_scored_ = 0

    def _choose_next(self, day: int) -> None:
        if day >= self.exploit_day_ or self.n_evaluations_ >= self.max_evaluations:
            self._start_exploit(day)
        elif self.n_started_ < self.n_initial:
            self._start_move(self.design_[self.n_started_], day)
        elif self.gp_ is None:
            self._start_move(self.rng_.random(len(self.keys_)), day)
        else:
            self._start_move(self.suggest(self.gp_, day / self.info_.days), day)

    def _start_exploit(self, day: int) -> None:
        self.phase_ = "exploit"
        self.unshown_ = self.gp_ is not None
        if self.gp_ is None:
            self.reason_ = "BO: no confident reward seen, holding"
            return
        # in-sample: the GP's extrapolation between a few noisy points is not worth betting
        # the rest of the experiment on; EI has already probed where it looked promising
        points = self._scored()
        mean, sd = self.gp_.predict(self.inputs(points, day / self.info_.days), True)
        i = int(np.argmax(mean))
        self.best_ = points[i]
        self.reason_ = (
            f"BO exploit after {self.n_evaluations_} evaluations: best posterior mean "
            f"{mean[i]:.3f} ± {sd[i]:.3f}/user/day at {self._show(points[i])}"
        )

    # ---- the GP ----------------------------------------------------------------------------
    def _fit(self) -> GaussianProcessRegressor:
        d = len(self.keys_)
        scale = np.full(d, self.length_scale) if self.ard else self.length_scale
        bounds = (float(self.length_scale_bounds[0]), float(self.length_scale_bounds[1]))
        shape: Kernel
        if self.kernel == "rbf":
            shape = RBF(scale, length_scale_bounds=bounds)
        elif self.kernel == "matern":
            shape = Matern(scale, length_scale_bounds=bounds, nu=self.nu)
        else:
            raise ValueError(f"kernel must be 'matern' or 'rbf', got {self.kernel!r}")
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * OnColumns(shape, tuple(range(d)))
        if self.trend:  # plus a linear drift in time with a fitted slope variance
            drift = DotProduct(sigma_0=0.0, sigma_0_bounds="fixed")
            kernel += ConstantKernel(1.0, (1e-2, 1e2)) * OnColumns(drift, (d,))
        noise = (float(self.noise_bounds[0]), float(self.noise_bounds[1]))
        gp = GaussianProcessRegressor(
            kernel + WhiteKernel(0.1, noise),
            normalize_y=True,
            n_restarts_optimizer=self.n_restarts,
            random_state=int(self.rng_.integers(2**31 - 1)),
        )
        # one BLAS thread: on matrices this small, thread hand-offs cost more than the maths
        # (L-BFGS-B's tiny BLAS calls run ~4x faster)
        with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
            # with a handful of points the likelihood often peaks at a bound; that is expected
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(np.array(self.inputs_), np.array(self.y_))
        self.n_fits_ += 1
        return gp

    def _scored(self) -> np.ndarray:
        """(n, d) distinct economies scored so far."""
        return np.unique(np.array(self.inputs_)[:, : len(self.keys_)], axis=0)

    def _candidates(self) -> np.ndarray:
        """Seeded random points: half uniform in the box, half near the scored ones."""
        d, n = len(self.keys_), self.n_candidates
        uniform = self.rng_.random((n - n // 2, d))
        if not self.inputs_:
            return uniform
        scored = self._scored()
        centres = scored[self.rng_.integers(len(scored), size=n // 2)]
        near = np.clip(centres + 0.1 * self.rng_.standard_normal((n // 2, d)), 0.0, 1.0)
        return np.vstack([uniform, near])

    def suggest(self, gp: GaussianProcessRegressor, when: float) -> np.ndarray:
        """The candidate of highest EI at time ``when`` over the best posterior mean of the
        scored economies then (the noisy-EI incumbent)."""
        scored = self._scored()
        best = float(np.max(gp.predict(self.inputs(scored, when))))
        points = self._candidates()
        ei = expected_improvement(gp, self.inputs(points, when), best, self.xi)
        return points[int(np.argmax(ei))]

    def _show(self, unit: np.ndarray) -> str:
        target = self.economy_of(unit)
        return ", ".join(f"{k} {target[k]:g}" for k in self.keys_)
