"""Off-policy evaluation of a replayed policy on a log's decision points.

The replay says, at each logged decision point, what the target policy would have done; the
log says what was done, with what probability, and what it earned. The estimators of
:mod:`arena_rl.eventlog.ope` turn those into the target's expected reward per decision. The
reward model (for DM, DR and SNDR) reads the observation and the economy the action leads to
(the arm's knobs with the action applied inside the guardrails' window), so a hold and a
change are compared on what they do to the economy.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from arena_rl.eventlog.ope import Estimate, cross_fitted_predictions, estimate
from arena_rl.eventlog.replay import ReplayResult, economy_after, logged_action

MIN_ROWS_FOR_A_MODEL = 20
"""Below this many decision points no reward model is fitted (DM, DR, SNDR are left out)."""


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


def off_policy(
    decisions: pa.Table, replayed: ReplayResult, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Estimate]:
    """IPS, SNIPS, DM, DR and SNDR of the replayed policy's mean reward per decision, with
    bootstrap CIs. The target's probability of the logged action is 1 where it agreed and 0
    where not (for a stochastic target, whether its own draw matched: an unbiased estimate)."""
    rows = decisions.to_pylist()
    knobs = [
        name[len("economy.") :] for name in decisions.column_names if name.startswith("economy.")
    ]
    reward = np.array([r["reward"] for r in rows], float)
    logging_p = np.array([r["probability"] for r in rows], float)
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
