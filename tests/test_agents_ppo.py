"""The ``ppo`` strategy: shipped checkpoint, acting, feature parity with training, the script."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import arena_rl
from agents.ppo import (
    DEFAULT_CHECKPOINT,
    FEATURE_NAMES,
    FEATURE_SIZE,
    ActorCritic,
    PPOAgent,
    env_action,
    load_checkpoint,
    policy_features,
    save_checkpoint,
)
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import GuardrailResult
from arena_rl.core.signals import Signals
from arena_rl.core.stats import MetricValue
from arena_rl.envs.parallel import ObservationLayout
from arena_rl.experiment import run_experiment
from arena_rl.scenarios.gamification.economy import (
    DEFAULT_ECONOMY,
    ECONOMY_KEYS,
    INTEGER_KEYS,
    validate_overrides,
)
from arena_rl.scenarios.gamification.metrics import METRICS

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"n_users": 1500, "days": 10}


def variant_info(days: int = 28) -> VariantInfo:
    return VariantInfo.of("v", days=days)


def day_signals(day: int, confidence: str = "high") -> Signals:
    values = {"SCAN_FREQUENCY": 4.0, "XP_VELOCITY": 45.0, "RETENTION_RATE": 0.6,
              "MISSION_COMPLETION": 0.1, "STREAK_LENGTH": 1.5, "FEEDBACK_QUALITY": 0.2}  # fmt: skip
    metrics = {m: MetricValue(values[m], 0.5, 800, confidence) for m in METRICS}  # type: ignore[arg-type]
    return Signals(1000, 450, 700, 5000, day, metrics)


def requests(result: object, name: str) -> list[dict]:
    return [a["requested"] for a in result.audit if a["variant"] == name]  # type: ignore[attr-defined]


def test_shipped_checkpoint_is_small_and_loads() -> None:
    assert DEFAULT_CHECKPOINT.stat().st_size < 1_000_000
    model, meta = load_checkpoint(DEFAULT_CHECKPOINT)
    assert meta["features"] == list(FEATURE_NAMES)
    assert set(meta["keys"]) <= set(ECONOMY_KEYS) and 0 < meta["step_pct"] <= 50
    out = model.actor_mean(torch.zeros(1, FEATURE_SIZE))
    assert out.shape == (1, len(meta["keys"]))


def test_shipped_policy_acts_within_its_action_space() -> None:
    agent = PPOAgent()
    agent.reset(variant_info(), np.random.default_rng(0))
    config = dict(DEFAULT_ECONOMY)
    step = agent.meta_["step_pct"] / 100
    moved = 0
    for day in range(28):
        update = agent.decide(day_signals(day), config)
        if update is None:
            continue
        moved += 1
        assert update.reasoning.startswith("PPO policy")
        validate_overrides(update.overrides)
        for key, value in update.overrides.items():
            assert key in agent.meta_["keys"]
            slack = 0.5 if key in INTEGER_KEYS else 1e-9  # caps are rounded
            assert abs(value - config[key]) <= step * config[key] + slack
        config.update(update.overrides)
    assert moved > 0


def test_decisions_are_deterministic_and_ignore_the_seed_when_deterministic() -> None:
    first = run_experiment({"ppo": PPOAgent()}, seed=3, **SMALL)
    again = run_experiment({"ppo": PPOAgent()}, seed=3, **SMALL)
    assert requests(first, "ppo") and requests(first, "ppo") == requests(again, "ppo")
    a, b = PPOAgent(), PPOAgent()
    a.reset(variant_info(), np.random.default_rng(1))
    b.reset(variant_info(), np.random.default_rng(2))
    assert a.decide(day_signals(4), DEFAULT_ECONOMY) == b.decide(day_signals(4), DEFAULT_ECONOMY)


def test_sampling_mode_draws_from_the_agent_rng_only() -> None:
    def decisions(seed: int) -> list:
        agent = PPOAgent(deterministic=False)
        agent.reset(variant_info(), np.random.default_rng(seed))
        return [agent.decide(day_signals(d), DEFAULT_ECONOMY) for d in range(5)]

    torch.manual_seed(0)
    first = decisions(7)
    torch.manual_seed(1)  # the global torch RNG plays no part
    assert decisions(7) == first
    assert decisions(8) != first


def test_pickles_before_reset_and_honours_the_rate_limit() -> None:
    agent = pickle.loads(pickle.dumps(PPOAgent(hold_days=1)))
    agent.reset(variant_info(), np.random.default_rng(0))
    rejected = GuardrailResult(False, None, {}, None, "", next_allowed_update=6.0, decision_id="x")
    agent.on_result(rejected)
    assert agent.decide(day_signals(5), DEFAULT_ECONOMY) is None
    assert agent.decide(day_signals(6), DEFAULT_ECONOMY) is not None


def test_low_confidence_metrics_are_zero_features() -> None:
    sure = policy_features(day_signals(3), DEFAULT_ECONOMY, 28)
    unsure = policy_features(day_signals(3, "low"), DEFAULT_ECONOMY, 28)
    metric_slots = [i for i, n in enumerate(FEATURE_NAMES) if n.split("/")[0] in METRICS]
    assert (sure[metric_slots] > 0).all() and (unsure[metric_slots] == 0).all()
    economy_slots = [i for i, n in enumerate(FEATURE_NAMES) if n.endswith("/default")]
    assert np.array_equal(sure[economy_slots], np.ones(len(ECONOMY_KEYS), dtype=np.float32))


def test_training_and_agent_features_are_identical() -> None:
    """The training path (env observation, decoded) and the agent path (signals + config, as
    run_experiment passes them) give bit-identical features, over a run with moving configs."""
    env = arena_rl.gym_env(**SMALL)
    obs, _ = env.reset(seed=11)
    layout = ObservationLayout.of(env.arena.scenario)
    rng = np.random.default_rng(0)
    for _ in range(SMALL["days"]):
        signals, config, _ = layout.decode(obs)
        trained = policy_features(signals, config, env.arena.days)
        rails = env.arena.guardrails
        assert rails is not None
        acting = policy_features(
            env.arena.signals_of("variant_1"), rails.current_config("variant_1"), env.arena.days
        )
        assert np.array_equal(trained, acting)
        obs, *_ = env.step(rng.uniform(-1, 1, 10).astype(np.float32))


def test_env_action_moves_only_the_policy_keys_by_at_most_the_step() -> None:
    action = env_action(np.array([5.0, -0.5]), ["photoXp", "scanXp"], 20.0, 50.0)
    expected = np.zeros(len(ECONOMY_KEYS))
    expected[ECONOMY_KEYS.index("photoXp")] = 0.4  # clipped to 1, × 20/50
    expected[ECONOMY_KEYS.index("scanXp")] = -0.2
    assert np.allclose(action, expected)


def test_checkpoint_for_other_features_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    meta = {"features": ["something else"], "keys": ["scanXp"], "step_pct": 20.0, "hidden": 8}
    save_checkpoint(path, ActorCritic(FEATURE_SIZE, 1, 8), meta)
    with pytest.raises(ValueError, match="other features"):
        load_checkpoint(path)


def test_train_script_with_a_tiny_budget_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "tiny.pt"
    command = [sys.executable, "scripts/train_ppo.py", "--total-steps", "2000", "--seed", "3",
               "--out", str(out), "--eval-seeds", "0", "--eval-n-users", "1500",
               "--populations", "default", "prior", "--eval-populations", "default", "prior",
               "--eval-days", "7"]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "episodes" in done.stdout and "ppo regret" in done.stdout
    assert "eval on default, 1 seeds" in done.stdout and "eval on prior, 1 seeds" in done.stdout
    agent = PPOAgent(checkpoint=str(out))
    result = run_experiment({"ppo": agent}, seed=0, **SMALL)
    assert result.faults["ppo"] == [] and requests(result, "ppo")
