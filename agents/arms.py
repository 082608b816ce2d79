"""What the arm-based bandits (``ucb``, ``thompson``, ``etc``, ``linucb``) share: arms as target
economies, and the pull schedule.

An arm is a target economy, written in config as multipliers of the base economy. Pulling an arm
takes days, not a click: the variant moves toward the arm's economy (the delta clamp may need
several updates), the first ``transition_days`` at the target are not scored (novelty after a
raise, loss aversion after a cut), and the pull's reward is the mean of
:func:`agents.common.reward` over the next ``hold_days``. Only completed pulls reach the
statistics. Subclasses choose *which* arm to pull next (:meth:`ArmBandit.select`).

Where the arms come from (the ``arms`` hyperparameter, resolved at ``reset`` against the
scenario being played, :func:`resolve_arms`): None takes the scenario's ``"default"`` arm set,
or, for a scenario that ships none, arms derived from the knobs' bounds
(:func:`bound_arms`); a string names one of the scenario's arm sets (or ``"bounds"``); a
mapping gives the arms outright.

Two things keep 28 days of pulls honest: arm means are compared after removing a common drift
(the population changes over the weeks, so early and late pulls differ for reasons that are
not the arm), and no new arm is started that cannot finish before the end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from agents.common import (
    BaseAgent,
    Count,
    NonNegativeInt,
    hyperparameters,
    reward,
    same_action,
    scaled,
    toward,
)
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.knobs import Knobs
from arena_rl.core.scenario import Arms, Scenario
from arena_rl.core.signals import Signals

__all__ = ["ArmBandit", "Arms", "CompletedPull", "arm_economies", "bound_arms", "resolve_arms"]

DRIFT_RIDGE = 20.0
"""Pseudo-evidence (in day²) that the population does not drift: a slope is believed only once
an arm's repeated pulls lie some days apart (two pulls 6 days apart give 18 day²)."""

DEFAULT_SET = "default"
"""The scenario arm set ``arms: null`` takes when the scenario ships it."""
BOUNDS_SET = "bounds"
"""The name that asks for :func:`bound_arms` whatever the scenario ships."""
BOUND_FRACTION = 1.0 / 3.0
"""How far derived arms move each knob from its base toward a bound (a share of the way)."""


def bound_arms(base: Mapping[str, float], knobs: Knobs) -> dict[str, dict[str, float]]:
    """Five target economies spread over the knobs' box, for a scenario without arm sets.

    Each knob moves :data:`BOUND_FRACTION` of the way from its base value toward its low or
    high bound (``base + f·(bound − base)``, then rounded where integer; an unbounded top is
    the knob's ``search_high``, a multiple of its default):

    - ``base``: the base economy itself (the start, so its pull needs no move);
    - ``lower``: every knob toward its low bound; ``higher``: every knob toward its high bound;
    - ``mixed_a``: knobs in even positions (knob order) toward low, odd ones toward high;
      ``mixed_b``: the mirror image. With ``lower`` and ``higher`` they make every knob seen
      both ways, and neighbouring knobs seen moving together and apart.

    These are economies, not multipliers, so a knob whose base is 0 moves too. An arm equal
    to an earlier one is left out (with one knob, the mixed arms are ``lower`` and ``higher``).
    """
    n = len(knobs)
    lows: dict[str, list[bool] | None] = {
        "base": None,
        "lower": [True] * n,
        "higher": [False] * n,
        "mixed_a": [i % 2 == 0 for i in range(n)],
        "mixed_b": [i % 2 == 1 for i in range(n)],
    }
    arms: dict[str, dict[str, float]] = {}
    for name, pattern in lows.items():
        target = dict(base)
        for key, low in zip(knobs.keys, pattern or (), strict=False):
            knob = knobs.by_name[key]
            bound = knob.low if low else knob.search_high
            target[key] = base[key] + BOUND_FRACTION * (bound - base[key])
        economy = knobs.clipped({k: target[k] for k in knobs.keys})
        if economy not in arms.values():  # one knob: the mixed arms repeat lower and higher
            arms[name] = economy
    return arms


def _checked(arms: Mapping[str, Mapping[str, float]], knobs: Knobs, where: str) -> Arms:
    """Arms whose knobs all exist and whose multipliers are finite and >= 0."""
    if not isinstance(arms, Mapping) or not arms:
        raise ValueError(f"{where}: an arm-based strategy needs at least one arm, got {arms!r}")
    for name, multipliers in arms.items():
        if not isinstance(multipliers, Mapping):
            raise ValueError(f"{where}.{name}: expected knob -> multiplier, got {multipliers!r}")
        for key, factor in multipliers.items():
            if key not in knobs.by_name:
                raise ValueError(
                    f"{where}.{name}: unknown knob {key!r}; this scenario's knobs are "
                    f"{', '.join(knobs.keys)}"
                )
            if isinstance(factor, bool) or not isinstance(factor, int | float):
                raise ValueError(f"{where}.{name}.{key}: a multiplier must be a number")
            if not math.isfinite(factor) or factor < 0:
                raise ValueError(f"{where}.{name}.{key}: a multiplier must be finite and >= 0")
    return arms


def resolve_arms(
    arms: Mapping[str, Mapping[str, float]] | str | None,
    scenario: Scenario,
    base: Mapping[str, float],
) -> dict[str, dict[str, float]]:
    """Each arm's target economy, for the ``arms`` hyperparameter on this scenario.

    None: the scenario's ``"default"`` arm set, else :func:`bound_arms`; a string: that arm
    set of the scenario (``"bounds"``: :func:`bound_arms`); a mapping: arm name -> {knob:
    multiplier of ``base``}, checked against the scenario's knobs.
    """
    knobs, sets = scenario.knobs, scenario.arm_sets()
    if arms is None:
        arms = DEFAULT_SET if DEFAULT_SET in sets else BOUNDS_SET
    if isinstance(arms, str):
        if arms == BOUNDS_SET:
            return bound_arms(base, knobs)
        if arms not in sets:
            known = ", ".join([*sets, BOUNDS_SET])
            raise ValueError(
                f"arms: scenario {scenario.name!r} ({scenario.plugin}) has no arm set {arms!r}; "
                f"available: {known}"
            )
        arms = sets[arms]
    return arm_economies(base, _checked(arms, knobs, "arms"), knobs)


def arm_economies(
    base: Mapping[str, float], arms: Arms, knobs: Knobs
) -> dict[str, dict[str, float]]:
    """Each arm's target economy: the base economy scaled by the arm's multipliers."""
    if not arms:
        raise ValueError("an arm-based strategy needs at least one arm")
    return {name: scaled(base, multipliers, knobs) for name, multipliers in arms.items()}


@dataclass
class Pull:
    """The pull in progress: its arm, why it was chosen, days at the target, rewards kept, and
    the chance of each arm having been chosen for it when the choice was random (None when it
    was not, or once an answer has shown it)."""

    arm: int
    why: str
    days_at_target: int = 0
    rewards: list[float] = field(default_factory=list)
    chances: np.ndarray | None = None


@dataclass(frozen=True)
class CompletedPull:
    """A finished pull: its arm, mean reward, the daily rewards averaged, and the day it ended."""

    arm: int
    value: float
    daily: tuple[float, ...]
    day: int


class ArmBandit(BaseAgent):
    """Runs pulls of economy arms; subclasses choose the arms.

    Subclasses implement :meth:`select` and may override :meth:`on_hold` (each scored day) and
    :meth:`learn` (each completed pull). The shared statistics are ``counts_`` (completed
    pulls per arm), ``pulls_`` (every completed pull, in order) and the helpers below.

    A subclass whose :meth:`select` draws at random also implements
    :meth:`selection_probabilities`; :meth:`action_probability` is then, on the first answer
    that shows a pull's arm (the pull's first answer, unless the rate limit holds it back), the
    summed chance of the arms that would have given that same answer, after the "too few days
    left" fallback; 1.0 on every other answer (continuing a pull is certain).

    Args:
        arms: arm name -> multipliers of the base economy; a name of one of the scenario's arm
            sets; or None: the scenario's default set (see :func:`resolve_arms`).
        hold_days: days of reward averaged per pull, after the transition.
        transition_days: days at a new target that are not scored.
    """

    @hyperparameters
    def __init__(
        self,
        arms: Arms | str | None = None,
        hold_days: Count = 2,
        transition_days: NonNegativeInt = 0,
    ) -> None:
        self.arms = arms
        self.hold_days = hold_days
        self.transition_days = transition_days

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        economies = resolve_arms(self.arms, info.scenario, info.base_economy)
        self.arm_names_: list[str] = list(economies)
        self.targets_: list[dict[str, float]] = list(economies.values())
        self.counts_ = np.zeros(len(self.targets_), dtype=np.int64)
        self.pulls_: list[CompletedPull] = []
        self.pull_: Pull | None = None
        self.probability_ = 1.0

    # ---- what subclasses supply ------------------------------------------------------------

    def select(self, signals: Signals) -> tuple[int, str]:
        """The arm to pull next, and why (it goes into the update's reasoning)."""
        raise NotImplementedError

    def selection_probabilities(self, signals: Signals) -> np.ndarray | None:
        """(n_arms,) chance that :meth:`select` picks each arm in the current state, or None
        when it picks deterministically (the default). Must not draw from ``rng_``."""
        return None

    def on_hold(self, signals: Signals) -> None:
        """Called on every scored day of the pull in progress (e.g. to record context)."""

    def learn(self, pull: CompletedPull) -> None:
        """Called once per completed pull, after ``counts_`` and ``pulls_`` include it."""

    # ---- shared statistics -----------------------------------------------------------------

    def first_untried(self) -> int | None:
        """The first arm (in config order) never pulled to completion, if any."""
        untried = np.flatnonzero(self.counts_ == 0)
        return int(untried[0]) if untried.size else None

    def drift(self) -> float:
        """Common reward drift per day, fitted within arms over the completed pulls.

        Churn, habits and fading novelty move every arm's reward over the weeks, so a pull from
        day 3 and one from day 20 are not comparable as they stand. The slope comes from arms
        pulled more than once (arm fixed effects + one linear trend), shrunk by
        :data:`DRIFT_RIDGE` toward 0; it is 0 until some arm has been pulled twice.
        """
        if len(self.pulls_) < 2:
            return 0.0
        k, n = len(self.targets_), np.maximum(self.counts_, 1)
        arms = np.array([p.arm for p in self.pulls_])
        days = np.array([p.day for p in self.pulls_], dtype=float)
        values = np.array([p.value for p in self.pulls_])
        day_c = days - (np.bincount(arms, days, k) / n)[arms]
        value_c = values - (np.bincount(arms, values, k) / n)[arms]
        return float(day_c @ value_c) / (float(day_c @ day_c) + DRIFT_RIDGE)

    def arm_means(self) -> np.ndarray:
        """(n_arms,) mean pull reward per arm as of the latest pull (drift removed); NaN for arms
        never pulled."""
        means = np.full(len(self.targets_), np.nan)
        if not self.pulls_:
            return means
        slope, latest = self.drift(), self.pulls_[-1].day
        arms = np.array([p.arm for p in self.pulls_])
        values = np.array([p.value + slope * (latest - p.day) for p in self.pulls_])
        tried = self.counts_ > 0
        means[tried] = (np.bincount(arms, values, len(means)) / np.maximum(self.counts_, 1))[tried]
        return means

    def pull_noise(self) -> float | None:
        """Standard error of one pull's reward, from the day-to-day scatter within pulls.

        Pooled over the completed pulls (each gives hold_days - 1 degrees of freedom); None
        until there is scatter to pool. The unit in which arms are compared.
        """
        dof = sum(len(p.daily) - 1 for p in self.pulls_)
        if dof <= 0:
            return None
        squares = sum(float(np.sum((np.array(p.daily) - p.value) ** 2)) for p in self.pulls_)
        level = float(np.mean([abs(p.value) for p in self.pulls_]))
        floor = 1e-3 * level + 1e-9  # identical days must not make every difference infinite
        return max(float(np.sqrt(squares / dof / self.hold_days)), floor)

    def normalised(self, values: np.ndarray) -> np.ndarray:
        """Rewards centred on the average completed pull, in units of :meth:`pull_noise`."""
        noise = self.pull_noise() or 1.0
        centre = float(np.mean([p.value for p in self.pulls_])) if self.pulls_ else 0.0
        return (np.asarray(values, dtype=float) - centre) / noise

    def best_arm(self) -> int:
        """The pulled arm with the highest drift-adjusted mean (arm 0 before any pull)."""
        return int(np.nanargmax(self.arm_means())) if self.pulls_ else 0

    # ---- the schedule ----------------------------------------------------------------------

    def _observe(self, signals: Signals, current: Mapping[str, float]) -> bool:
        """Score one observed day of the pull in progress; True when the pull completes."""
        pull = self.pull_
        assert pull is not None
        if toward(self.targets_[pull.arm], current, "", self.info_.knobs) is not None:
            # not there yet, or pushed off it (a breaker reset): the count starts again
            pull.days_at_target, pull.rewards = 0, []
            return False
        # the config in force is the target, so yesterday (what today's signals show) ran on it
        pull.days_at_target += 1
        value = reward(signals, self.info_)
        if pull.days_at_target <= self.transition_days or value is None:
            return False
        self.on_hold(signals)
        pull.rewards.append(value)
        if len(pull.rewards) < self.hold_days:
            return False
        done = CompletedPull(
            pull.arm, float(np.mean(pull.rewards)), tuple(pull.rewards), signals.experiment_days
        )
        self.counts_[done.arm] += 1
        self.pulls_.append(done)
        self.learn(done)
        return True

    def _start_pull(self, signals: Signals, current: Mapping[str, float], last: int | None) -> Pull:
        chances = self.selection_probabilities(signals)
        arm, why = self._feasible(*self.select(signals), signals, current, last)
        pull = Pull(arm, why)
        if chances is not None:  # the chance of each arm after the fallback
            pull.chances = np.zeros(len(self.targets_))
            for choice in np.flatnonzero(chances):
                fallback = self._feasible(int(choice), "", signals, current, last)[0]
                pull.chances[fallback] += chances[choice]
        if arm == last:  # still there and settled: no transition to sit out
            pull.days_at_target = self.transition_days
        return pull

    def _feasible(
        self, arm: int, why: str, signals: Signals, current: Mapping[str, float], last: int | None
    ) -> tuple[int, str]:
        """The arm to pull instead of ``arm`` when its pull could not finish in time."""
        there = toward(self.targets_[arm], current, "", self.info_.knobs) is None
        days_needed = (0 if there else 1 + self.transition_days) + self.hold_days
        if arm != last and days_needed > self.info_.days - signals.experiment_days:
            # a pull that cannot finish teaches nothing: stay with the best arm so far
            return self.best_arm(), "too few days left for another pull; best arm so far"
        return arm, why

    def action_probability(self) -> float:
        """The chance of the last answer: below 1 only on the first answer that shows a randomly
        chosen arm (see the class docstring)."""
        return self.probability_

    def _chance_of(
        self, update: ConfigUpdate | None, chances: np.ndarray, current: Mapping[str, float]
    ) -> float:
        """Summed chance of the arms whose pull would have answered ``update`` now."""
        return float(
            sum(
                chances[arm]
                for arm in np.flatnonzero(chances)
                if same_action(toward(self.targets_[arm], current, "", self.info_.knobs), update)
            )
        )

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        self.probability_ = 1.0
        last = None
        if self.pull_ is not None and self._observe(signals, current_config):
            last, self.pull_ = self.pull_.arm, None
        if self.pull_ is None:
            self.pull_ = self._start_pull(signals, current_config, last)
        if not self.may_update(signals):
            return None  # shows nothing of the arm: a random choice is charged when it shows
        pull = self.pull_
        reasoning = f"pull arm {self.arm_names_[pull.arm]!r}: {pull.why}"
        update = toward(self.targets_[pull.arm], current_config, reasoning, self.info_.knobs)
        if pull.chances is not None:
            self.probability_ = self._chance_of(update, pull.chances, current_config)
            pull.chances = None
        return update
