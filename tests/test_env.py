"""The PettingZoo environment and the Gymnasium wrapper: API contracts, determinism, guardrails."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test, parallel_seed_test

import arena_rl
from arena_rl.core.experiment import CONTROL_ARM
from arena_rl.core.guardrails import ConfigUpdate, RejectionCode
from arena_rl.envs.parallel import ObservationLayout, action_to_update
from arena_rl.scenarios import load_scenario
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, KNOBS

LAYOUT = ObservationLayout.of(load_scenario("default"))

SMALL = {"n_users": 600, "days": 10}


def rollout(env: arena_rl.ArenaParallelEnv, seed: int, actions_seed: int = 0) -> list:
    """Whole trajectory (obs, rewards) under a seeded random policy."""
    rng = np.random.default_rng(actions_seed)
    obs, _ = env.reset(seed=seed)
    trajectory = [obs]
    while env.agents:
        acts = {
            a: rng.uniform(-1, 1, len(env.scenario.knobs)).astype(np.float32) for a in env.agents
        }
        obs, rewards, *_ = env.step(acts)
        trajectory.append((obs, rewards))
    return trajectory


def same(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


SCENARIOS = ("default", "pricing")
"""Every compliance test runs on each scenario plugin: gamification's default tenant, pricing."""
PRICING_SMALL = {"n_users": 900, "days": 40}
"""Pricing's prospects arrive over weeks: a shorter horizon still sees trials end and renew."""


def small(scenario: str) -> dict[str, object]:
    return {"scenario": scenario, **(SMALL if scenario == "default" else PRICING_SMALL)}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_parallel_api_test_passes(scenario: str) -> None:
    parallel_api_test(arena_rl.parallel_env(scenario=scenario), num_cycles=60)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_parallel_seed_test_passes(scenario: str) -> None:
    parallel_seed_test(lambda: arena_rl.parallel_env(**small(scenario)))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_check_env_passes_on_the_gym_env(scenario: str) -> None:
    check_env(arena_rl.gym_env(**small(scenario)))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_check_env_passes_with_fixed_opponents(scenario: str) -> None:
    knobs = len(arena_rl.load_scenario(scenario).knobs)
    env = arena_rl.gym_env(opponents=[None, lambda obs: np.full(knobs, 0.2)], **small(scenario))
    check_env(env, skip_render_check=True)
    assert env.arena.possible_agents == ["variant_1", "variant_2", "variant_3"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_seed_same_full_trajectory_and_different_seed_differs(scenario: str) -> None:
    env = arena_rl.parallel_env(n_agents=3, **small(scenario))
    first, again = rollout(env, seed=7), rollout(env, seed=7)
    assert same(first, again)
    assert not same(first, rollout(env, seed=8))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_observations_stay_inside_the_space_for_a_whole_episode(scenario: str) -> None:
    env = arena_rl.parallel_env(**small(scenario))
    for step in rollout(env, seed=1)[1:]:
        for agent, obs in step[0].items():
            assert env.observation_space(agent).contains(obs)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_env_pickles_mid_episode_and_continues_identically(scenario: str) -> None:
    env = arena_rl.parallel_env(**small(scenario))
    knobs = len(env.scenario.knobs)
    env.reset(seed=3)
    for _ in range(8):
        env.step({a: np.zeros(knobs) for a in env.agents})
    clone = pickle.loads(pickle.dumps(env))
    acts = {a: np.full(knobs, 0.3) for a in env.agents}
    assert same(env.step(acts)[:2], clone.step(acts)[:2])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_spaces_follow_the_scenarios_knobs_and_metrics(scenario: str) -> None:
    env = arena_rl.parallel_env(scenario=scenario)
    knobs, metrics = env.scenario.knobs, env.scenario.metrics
    assert env.action_space("variant_1").shape == (len(knobs),)
    assert env.observation_space("variant_1").shape == (5 + 4 * len(metrics) + len(knobs) + 1,)


def test_truncation_at_horizon_empties_agents_in_the_same_step() -> None:
    env = arena_rl.parallel_env(**SMALL)
    env.reset(seed=0)
    for day in range(SMALL["days"]):
        _, _, terms, truncs, _ = env.step({a: None for a in env.agents})
        assert not any(terms.values())
        assert all(truncs.values()) == (day == SMALL["days"] - 1)
    assert env.agents == []


def test_observation_round_trip_is_the_live_signals() -> None:
    env = arena_rl.parallel_env(**SMALL)
    env.reset(seed=0)
    obs, *_ = env.step({a: None for a in env.agents})
    sig, config, wait = LAYOUT.decode(obs["variant_1"])
    live = env.signals_of("variant_1")
    assert obs["variant_1"].shape == (LAYOUT.size,)
    assert sig.enrolled == live.enrolled and sig.active_today == live.active_today
    for name, metric in live.metrics.items():
        assert sig.metrics[name].value == pytest.approx(metric.value, rel=1e-6)
        assert sig.metrics[name].sample_size == metric.sample_size
        assert sig.metrics[name].confidence == metric.confidence
    assert config == DEFAULT_ECONOMY
    assert wait == 0.0
    assert np.array_equal(LAYOUT.encode(live, config, wait), obs["variant_1"])


def test_reward_is_the_change_of_the_cumulative_objective() -> None:
    env = arena_rl.parallel_env(**SMALL)
    env.reset(seed=0)
    total = 0.0
    for _ in range(4):
        _, rewards, _, _, infos = env.step({a: None for a in env.agents})
        total += rewards["variant_1"]
        assert infos["variant_1"]["objective"] == pytest.approx(total)
    assert total != 0.0


def test_box_action_moves_keys_within_the_delta_limit_and_zero_means_no_update() -> None:
    assert action_to_update(np.zeros(10), DEFAULT_ECONOMY, 50.0, KNOBS) is None
    update = action_to_update(np.array([1.0, -1.0] + [0.0] * 8), DEFAULT_ECONOMY, 50.0, KNOBS)
    assert update is not None
    assert update.overrides == {"scanXp": 15.0, "feedbackXp": 7.5}


def test_actions_pass_guardrails_and_change_the_arms_economy() -> None:
    env = arena_rl.parallel_env(n_agents=2, **SMALL)
    env.reset(seed=0)
    env.step({"variant_1": ConfigUpdate({"scanXp": 100}, "go big"), "variant_2": None})
    result = env.last_result["variant_1"]
    assert result is not None and result.accepted and result.clamped
    assert env.guardrails.current_config("variant_1")["scanXp"] == 15.0  # clamped to +50 %
    assert env.guardrails.current_config("variant_2") == DEFAULT_ECONOMY
    # the default rate limit is one accepted update per day, and each step is a new day
    env.step({"variant_1": ConfigUpdate({"scanXp": 20}), "variant_2": None})
    assert env.last_result["variant_1"].accepted
    assert env.guardrails.current_config("variant_1")["scanXp"] == 20.0  # within 15 ± 50 %
    reasons = [e.reasoning for e in env.guardrails.audit_log]
    assert "go big" in reasons


def test_rate_limit_in_days_rejects_and_observation_shows_the_wait() -> None:
    env = arena_rl.parallel_env(guardrails={"update_interval_days": 3}, **SMALL)
    env.reset(seed=0)
    env.step({"variant_1": ConfigUpdate({"scanXp": 12}), "variant_2": None})
    obs, *_ = env.step({"variant_1": ConfigUpdate({"scanXp": 13}), "variant_2": None})
    assert env.last_result["variant_1"].rejection_code == RejectionCode.RATE_LIMITED
    _, _, wait = LAYOUT.decode(obs["variant_1"])
    assert wait == pytest.approx(1.0)  # accepted on day 0, next allowed on day 3, now day 2


def test_decisions_only_on_decision_days() -> None:
    env = arena_rl.parallel_env(decision_interval=3, **SMALL)
    env.reset(seed=0)
    submitted = []
    for _ in range(6):
        env.step({"variant_1": ConfigUpdate({"scanXp": 11}), "variant_2": None})
        submitted.append(env.last_result["variant_1"] is not None)
    assert submitted == [True, False, False, True, False, False]


def test_harmful_variant_trips_the_breaker_and_reverts() -> None:
    env = arena_rl.parallel_env(n_users=6000, days=28, guardrails={"breaker_min_harm": 0.03})
    env.reset(seed=0)
    tripped = False
    for _ in range(28):  # ask for zero XP every day: clamped to -50 % a day, users leave
        if not env.agents:
            break
        cut = {k: 0.0 for k in DEFAULT_ECONOMY}
        env.step({"variant_1": ConfigUpdate(cut, "cut everything"), "variant_2": None})
        tripped |= any(e.kind == "breaker_trip" for e in env.guardrails.audit_log)
    assert tripped
    trip = next(e for e in env.guardrails.audit_log if e.kind == "breaker_trip")
    assert trip.variant == "variant_1"


def test_bad_constructor_arguments_fail_early_with_clear_errors() -> None:
    with pytest.raises(ValueError, match="n_agents"):
        arena_rl.parallel_env(n_agents=0)
    with pytest.raises(ValueError, match="delta_limit_pct"):
        arena_rl.parallel_env(guardrails={"delta_limit_pct": 500})
    with pytest.raises(arena_rl.SpecError, match="unknown population 'nope'"):
        arena_rl.parallel_env(population="nope")


def test_render_ansi_lists_every_arm() -> None:
    env = arena_rl.parallel_env(render_mode="ansi", **SMALL)
    env.reset(seed=0)
    env.step({a: None for a in env.agents})
    text = env.render()
    assert text is not None
    for arm in (CONTROL_ARM, "variant_1", "variant_2"):
        assert arm in text


def test_step_results_pickle() -> None:
    env = arena_rl.parallel_env(**SMALL)
    env.reset(seed=0)
    env.step({"variant_1": ConfigUpdate({"scanXp": 30}, "x"), "variant_2": None})
    results = (env.last_result, env.signals_of(CONTROL_ARM), env.guardrails.audit_log)
    assert pickle.loads(pickle.dumps(results)) == results
    assert env.population is not None
    outcome = env.population.step(np.ones((3, 10)) * 10)
    again = pickle.loads(pickle.dumps(outcome))
    assert np.array_equal(again.value, outcome.value) and again.day == outcome.day
