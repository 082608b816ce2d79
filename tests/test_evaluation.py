"""Off-policy evaluation of a replay: the weights of refused decisions, and the carry-over test
(its size when a decision's reward depends on that decision alone, its power when the economy
before keeps acting, and its silence where the log cannot tell)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from arena_rl.eventlog.evaluation import carry_over, off_policy
from arena_rl.eventlog.replay import ReplayedDecision, ReplayResult

ECONOMIES = np.array([[10.0, 5.0], [7.0, 3.5], [12.0, 5.0]])
"""Three economies of two knobs, as a uniform logger would choose among them."""
KNOBS = ("scanXp", "feedbackXp")


def log(rng: np.random.Generator, lag: float, arms: int = 30, decisions: int = 14) -> pa.Table:
    """Decision points of ``arms`` arms logged uniformly at random over :data:`ECONOMIES`; the
    reward is the chosen economy's value, plus ``lag`` times the value of the economy before,
    plus arm and day effects and noise."""
    chosen = rng.integers(len(ECONOMIES), size=(arms, decisions))
    before = np.concatenate([np.zeros((arms, 1), int), chosen[:, :-1]], axis=1)
    value = np.array([0.0, 0.3, -0.2])
    reward = (
        value[chosen]
        + lag * value[before]
        + rng.normal(0, 0.5, (arms, 1))
        + np.linspace(0, 1, decisions)
        + rng.normal(0, 0.3, (arms, decisions))
    )
    columns: dict[str, list[object]] = {
        "tournament": [0] * (arms * decisions),
        "arm": [f"arm_{a}" for a in range(arms) for _ in range(decisions)],
        "day": [2 * d for _ in range(arms) for d in range(decisions)],
        "reward": reward.ravel().tolist(),
        "allowed_refusal": [None] * (arms * decisions),
        "action": [
            json.dumps(dict(zip(KNOBS, ECONOMIES[c].tolist(), strict=True))) for c in chosen.ravel()
        ],
    }
    for k, knob in enumerate(KNOBS):
        columns[f"economy.{knob}"] = ECONOMIES[before.ravel(), k].tolist()
        columns[f"allowed.{knob}.low"] = [0.0] * (arms * decisions)
        columns[f"allowed.{knob}.high"] = [100.0] * (arms * decisions)
    return pa.table(columns)


def test_without_carry_over_the_test_fires_at_its_level() -> None:
    """400 logs whose rewards depend on the current economy only: the test at 5 % fires in
    5 % of them (binomial sd 1.1 %; tolerance ±2.7 %)."""
    rng = np.random.default_rng(0)
    fired = [carry_over(log(rng, lag=0.0), alpha=0.05).warning is not None for _ in range(400)]
    assert 0.023 <= np.mean(fired) <= 0.077


def test_a_lasting_effect_is_found_and_named() -> None:
    rng = np.random.default_rng(1)
    found = [carry_over(log(rng, lag=0.5)) for _ in range(50)]
    assert np.mean([f.warning is not None for f in found]) >= 0.9
    warning = next(f.warning for f in found if f.warning)
    assert "carry-over" in warning and "trajectory IPS" in warning


def test_a_log_whose_economy_never_changes_cannot_tell() -> None:
    rng = np.random.default_rng(2)
    table = log(rng, lag=0.0)
    for knob in KNOBS:
        same = pa.array([ECONOMIES[0, KNOBS.index(knob)]] * table.num_rows)
        table = table.set_column(
            table.column_names.index(f"economy.{knob}"), f"economy.{knob}", same
        )
    table = table.set_column(
        table.column_names.index("action"), "action", pa.array([None] * table.num_rows, pa.string())
    )
    found = carry_over(table)
    assert np.isnan(found.p_value) and found.warning is None


def test_a_refused_decision_weighs_one_whatever_was_asked() -> None:
    """Where the guardrails refuse any change every action has the same effect, so the replay
    agrees there whatever it asks: the weight is 1, not 1/p. Rewards all 1, logged at p = 1/3,
    the target agreeing on every refused row and on a third of the rest: IPS is exactly 1."""
    table = log(np.random.default_rng(3), lag=0.0, arms=3, decisions=6)
    n = table.num_rows
    refused = np.arange(n) % 2 == 0
    table = table.set_column(table.column_names.index("reward"), "reward", pa.array([1.0] * n))
    table = table.append_column("probability", pa.array([1 / 3] * n))
    table = table.set_column(
        table.column_names.index("allowed_refusal"),
        "allowed_refusal",
        pa.array(["rate_limited" if r else None for r in refused], pa.string()),
    )
    others = np.flatnonzero(~refused)
    agrees = refused.copy()
    agrees[others[::3]] = True
    replayed = ReplayResult(
        [
            ReplayedDecision(i, 0, 0, "arm", None, 1.0, "", bool(a), None)
            for i, a in enumerate(agrees)
        ],
        [],
        0.0,
    )
    found = off_policy(table, replayed, n_boot=100)
    assert found["ips"].value == pytest.approx(1.0)
