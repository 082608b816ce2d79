"""Off-policy evaluation of a replayed policy on a log's decision points.

The replay says, at each logged decision point, what the target policy would have done; the
log says what was done, with what probability, and what it earned. The estimators of
:mod:`arena_rl.eventlog.ope` turn those into the target's expected reward per decision. The
reward model (for DM, DR and SNDR) reads the observation and the economy the action leads to
(the arm's knobs with the action applied inside the guardrails' window), so a hold and a
change are compared on what they do to the economy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from scipy import stats

from arena_rl.eventlog.ope import Estimate, cross_fitted_predictions, estimate
from arena_rl.eventlog.replay import ReplayResult, economy_after, logged_action

MIN_ROWS_FOR_A_MODEL = 20
"""Below this many decision points no reward model is fitted (DM, DR, SNDR are left out)."""
CARRY_OVER_ALPHA = 0.01
"""Level of the carry-over test below which the replay warns."""


def features(decisions: pa.Table) -> np.ndarray:
    """The context of each decision point: every numeric observation and economy column."""
    names = [
        name
        for name, kind in zip(decisions.column_names, decisions.schema.types, strict=True)
        if name.startswith(("obs.", "economy."))
        and (pa.types.is_integer(kind) or pa.types.is_floating(kind))
    ]
    columns = [decisions[name].to_numpy(zero_copy_only=False).astype(float) for name in names]
    return np.column_stack(columns) if columns else np.zeros((len(decisions), 0))


def knobs_of(decisions: pa.Table) -> list[str]:
    """The economy's knobs, as the log's ``economy.<knob>`` columns name them."""
    return [n[len("economy.") :] for n in decisions.column_names if n.startswith("economy.")]


def off_policy(
    decisions: pa.Table, replayed: ReplayResult, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Estimate]:
    """IPS, SNIPS, DM, DR and SNDR of the replayed policy's mean reward per decision, with
    bootstrap CIs. The target's probability of the logged action is 1 where it agreed and 0
    where not (for a stochastic target, whether its own draw matched: an unbiased estimate).

    Agreement is by effect (the economy once through the guardrails), so the weights are too:
    where the guardrails refused any change (``allowed_refusal``) every action, a hold
    included, left the economy as it was, and that effect was certain under any policy; its
    weight is 1, not 1 over the logged action's probability (which overweighted those rows:
    +5 % bias in IPS where 2.5 % of decisions were refused)."""
    rows = decisions.to_pylist()
    knobs = knobs_of(decisions)
    reward = np.array([r["reward"] for r in rows], float)
    refused = np.array([r["allowed_refusal"] is not None for r in rows], bool)
    logging_p = np.where(refused, 1.0, np.array([r["probability"] for r in rows], float))
    target_p = np.array([float(d.agrees) for d in replayed.decisions])
    if len(rows) < MIN_ROWS_FOR_A_MODEL:
        return estimate(reward, logging_p, target_p, n_boot=n_boot, seed=seed)
    logged = [economy_after(r, logged_action(r), knobs) for r in rows]
    wanted = [
        economy_after(r, d.action, knobs) for r, d in zip(rows, replayed.decisions, strict=True)
    ]
    q_logged, q_target = cross_fitted_predictions(
        features(decisions), np.array(logged), reward, np.array(wanted), seed=seed
    )
    return estimate(reward, logging_p, target_p, q_logged, q_target, n_boot=n_boot, seed=seed)


@dataclass(frozen=True)
class CarryOver:
    """Whether the economy an arm ran *before* a decision still moves that decision's reward.

    Per-decision estimators value one-step departures from the logged schedule: the economy
    before each decision is the logged one. When a change keeps acting for weeks (novelty,
    habits, reference points) the policy followed throughout would have met other economies
    before each decision, and earned something else: per-decision estimates are then biased
    for the policy's value. The test regresses each decision's reward on the economy its
    action led to and on the one before it (day and arm effects removed) and asks, with an F
    test, whether the economy before adds anything. Logged at random, the economy before is
    independent of the one after it, so the test is valid; a stochastic logger that adapts is
    only approximately so.
    """

    f_statistic: float
    p_value: float
    """NaN where the log cannot tell (the economy never changed, or too few rows)."""
    n: int
    warning: str | None


def carry_over(decisions: pa.Table, alpha: float = CARRY_OVER_ALPHA) -> CarryOver:
    """Test a log for carry-over (see :class:`CarryOver`); a warning when p < ``alpha``."""
    rows = decisions.to_pylist()
    knobs = knobs_of(decisions)
    reward = np.array([r["reward"] for r in rows], float)
    before = np.array([[float(r[f"economy.{k}"]) for k in knobs] for r in rows])
    after = np.array([economy_after(r, logged_action(r), knobs) for r in rows])
    arms = np.unique([f"{r['tournament']}/{r['arm']}" for r in rows], return_inverse=True)[1]
    days = np.unique(decisions["day"].to_numpy(zero_copy_only=False), return_inverse=True)[1]
    day_effects = np.eye(int(days.max(initial=0)) + 1)[days][:, 1:]
    restricted = _within(np.column_stack([_scaled(after), day_effects]), arms)
    full = np.column_stack([restricted, _within(_scaled(before), arms)])
    y = _within(reward[:, None], arms)[:, 0]
    rss_restricted, rank_restricted = _least_squares(restricted, y)
    rss_full, rank_full = _least_squares(full, y)
    df1 = rank_full - rank_restricted
    df2 = len(rows) - int(arms.max(initial=-1)) - 1 - rank_full
    if df1 <= 0 or df2 <= 0 or rss_full <= 0:
        return CarryOver(float("nan"), float("nan"), len(rows), None)
    f = ((rss_restricted - rss_full) / df1) / (rss_full / df2)
    p = float(stats.f.sf(f, df1, df2))
    warning = None
    if p < alpha:
        warning = (
            f"carry-over: the economy in force before each decision still moves its reward "
            f"(F = {f:.1f}, p = {p:.1e}), so the per-decision estimates value one-step "
            "departures from the logged schedule, not the policy followed throughout; "
            "trajectory IPS weighs whole schedules (read its ESS), or log with a longer "
            "decision interval"
        )
    return CarryOver(float(f), p, len(rows), warning)


def _scaled(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Columns centred and scaled to unit spread (constant ones become 0)."""
    spread = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def _within(x: npt.NDArray[np.float64], groups: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
    """Each column minus its group's mean (removes one effect per group)."""
    counts = np.bincount(groups).astype(float)
    sums = np.zeros((len(counts), x.shape[1]))
    np.add.at(sums, groups, x)
    return x - (sums / counts[:, None])[groups]


def _least_squares(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> tuple[float, int]:
    """Residual sum of squares and rank of the least-squares fit of y on x."""
    if x.shape[1] == 0:
        return float(y @ y), 0
    coef, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ coef
    return float(residual @ residual), int(rank)
