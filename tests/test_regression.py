"""The gamification numbers, pinned bit for bit: refactors of the simulator, the environment,
the server or the agents must not move them.

The pinned values are in ``tests/regression/gamification.json``. They are the figures a
tournament produces (every arm's realised objective, and a hash of every daily value, metric
history and audit entry) for a fixed lineup and seeds, and the served experiment's signals after
ten manual days with updates along the way. The value after the horizon is switched off
(``tail_discount=0``): that is how today's numbers reproduce the ones from before it existed.
A change that is *meant* to move them regenerates
the file: ``ARENA_RL_WRITE_REGRESSION=1 pytest tests/test_regression.py``, and says why in its
commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from server_support import settings

from arena_rl.config import agent_configs, build_agent
from arena_rl.experiment import run_experiment
from arena_rl.scenarios import load_scenario
from arena_rl.server import ArenaRuntime

PINNED = Path(__file__).parent / "regression" / "gamification.json"
LINEUP = ["ucb", "thompson", "pid", "bayesopt"]
SEEDS = range(4)
USERS = 6000
NO_TAIL = dataclasses.replace(load_scenario(), tail_discount=0.0)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()


def tournament_figures() -> dict[str, Any]:
    """Per seed: each arm's objective (exact, as repr) and digests of everything else."""
    configs = agent_configs(LINEUP)
    out: dict[str, Any] = {}
    for seed in SEEDS:
        agents = {name: build_agent(name, configs[name]) for name in LINEUP}
        result = run_experiment(agents, seed=seed, n_users=USERS, scenario=NO_TAIL)
        daily = {arm: [float(x).hex() for x in v] for arm, v in result.daily_value.items()}
        history = {
            arm: {m: [float(x).hex() for x in np.asarray(v)] for m, v in h.items()}
            for arm, h in result.history.items()
        }
        out[str(seed)] = {
            "objective": {arm: float(v).hex() for arm, v in result.objective.items()},
            "daily_value": _digest(daily),
            "history": _digest(history),
            "audit": _digest(result.audit),
            "comparisons": _digest([repr(c) for c in result.comparisons]),
        }
    return out


def served_figures() -> dict[str, Any]:
    """The served experiment's signals per variant after ten manual days, with two updates."""
    runtime = ArenaRuntime(settings(n_users=3000, seed=11))
    experiment = runtime.experiment
    alpha, beta = experiment.order[1], experiment.order[2]
    experiment.advance(2)
    experiment.act(alpha, {"scanXp": 14, "photoXp": 6}, "regression: raise scans")
    experiment.advance(3)
    experiment.act(beta, {"streakBonusPerDay": 2.5}, "regression: cut streaks")
    experiment.advance(5)
    return {vid: experiment.signals(vid) for vid in experiment.order} | {
        "objective": {vid: float(v).hex() for vid, v in experiment.objective.items()}
    }


def figures() -> dict[str, Any]:
    return {"tournaments": tournament_figures(), "served": served_figures()}


def test_gamification_numbers_are_bit_identical() -> None:
    now = json.loads(json.dumps(figures(), default=repr))
    if os.environ.get("ARENA_RL_WRITE_REGRESSION"):
        PINNED.parent.mkdir(exist_ok=True)
        PINNED.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {PINNED}")
    pinned = json.loads(PINNED.read_text())
    assert now["tournaments"] == pinned["tournaments"]
    assert now["served"] == pinned["served"]
