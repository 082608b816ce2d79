"""Off-policy estimators: hand-computed values, their properties, coverage on a known bandit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from arena_rl.eventlog import ope

FloatArray = npt.NDArray[np.float64]

# --- a tiny dataset, computed by hand -------------------------------------------------------

REWARD = [1.0, 0.0, 2.0, 1.0, 3.0]
LOGGING_P = [0.5, 0.25, 0.5, 1.0, 0.2]
TARGET_P = [1.0, 0.0, 1.0, 0.5, 0.0]  # weights w = [2, 0, 2, 0.5, 0], Σw = 4.5
Q_LOGGED = [0.5, 0.5, 1.5, 1.0, 2.0]  # r − q_logged = [0.5, −0.5, 0.5, 0, 1]
Q_TARGET = [1.0, 0.5, 2.0, 1.0, 1.0]  # Σ = 5.5

HAND_IPS = (2 + 0 + 4 + 0.5 + 0) / 5  # Σ w·r = 6.5
HAND_SNIPS = 6.5 / 4.5
HAND_DM = 5.5 / 5
HAND_DR = (5.5 + (1 + 0 + 1 + 0 + 0)) / 5  # Σ w·(r − q_logged) = 2
HAND_SNDR = 5.5 / 5 + 2 / 4.5
HAND_ESS = 4.5**2 / (4 + 0 + 4 + 0.25 + 0)


def test_point_estimates_match_hand_computation() -> None:
    assert ope.ips(REWARD, LOGGING_P, TARGET_P) == pytest.approx(HAND_IPS)
    assert ope.snips(REWARD, LOGGING_P, TARGET_P) == pytest.approx(HAND_SNIPS)
    assert ope.direct_method(Q_TARGET) == pytest.approx(HAND_DM)
    assert ope.doubly_robust(REWARD, LOGGING_P, TARGET_P, Q_LOGGED, Q_TARGET) == pytest.approx(
        HAND_DR
    )
    assert ope.self_normalised_doubly_robust(
        REWARD, LOGGING_P, TARGET_P, Q_LOGGED, Q_TARGET
    ) == pytest.approx(HAND_SNDR)
    assert ope.effective_sample_size([2, 0, 2, 0.5, 0]) == pytest.approx(HAND_ESS)


def test_estimate_reports_every_estimator_the_inputs_allow() -> None:
    with_model = ope.estimate(REWARD, LOGGING_P, TARGET_P, Q_LOGGED, Q_TARGET, n_boot=200)
    expected = {
        "ips": HAND_IPS,
        "snips": HAND_SNIPS,
        "dm": HAND_DM,
        "dr": HAND_DR,
        "sndr": HAND_SNDR,
    }
    assert {name: e.value for name, e in with_model.items()} == pytest.approx(expected)
    for name, result in with_model.items():
        assert result.name == name
        assert result.n == 5
        assert result.ci_low <= result.ci_high
    assert with_model["dr"].ess == pytest.approx(HAND_ESS)
    assert with_model["dm"].ess == 5
    assert set(ope.estimate(REWARD, LOGGING_P, TARGET_P, n_boot=200)) == {"ips", "snips"}


def test_bootstrap_is_seeded() -> None:
    first = ope.estimate(REWARD, LOGGING_P, TARGET_P, n_boot=200, seed=3)
    again = ope.estimate(REWARD, LOGGING_P, TARGET_P, n_boot=200, seed=3)
    other = ope.estimate(REWARD, LOGGING_P, TARGET_P, n_boot=200, seed=4)
    assert first == again
    assert (
        first["ips"].ci_low != other["ips"].ci_low or first["ips"].ci_high != other["ips"].ci_high
    )


# --- a synthetic contextual bandit with a known target value --------------------------------

TRUE_TARGET_VALUE = 0.75  # E[max(x, 1 − x)] for x ~ U(0, 1)


def mean_reward(x: FloatArray, action: npt.NDArray[np.int64]) -> FloatArray:
    """Action 0 pays x, action 1 pays 1 − x, action 2 pays 0.6."""
    table = np.stack([x, 1 - x, np.full_like(x, 0.6)], axis=-1)
    return np.take_along_axis(table, action[..., np.newaxis], axis=-1)[..., 0]


def logging_policy(x: FloatArray) -> FloatArray:
    """Softmax over three actions that leans away from what pays: probabilities in (0.1, 0.7)."""
    logits = np.stack([1 - x, x, np.full_like(x, 0.5)], axis=-1) * 1.5
    expo = np.exp(logits)
    return expo / expo.sum(axis=-1, keepdims=True)


def target_action(x: FloatArray) -> npt.NDArray[np.int64]:
    """The deterministic target takes the best action: 0 above x = 0.5, else 1."""
    return np.where(x > 0.5, 0, 1).astype(np.int64)


@dataclass(frozen=True)
class Bandit:
    x: FloatArray
    action: npt.NDArray[np.int64]
    reward: FloatArray
    logging_p: FloatArray
    target_p: FloatArray
    true_logged: FloatArray
    true_target: FloatArray


def simulate(seed: int, n: int, noise: float = 0.5) -> Bandit:
    """n logged decisions; every column vectorised."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=n)
    probabilities = logging_policy(x)
    action = (rng.uniform(size=(n, 1)) > probabilities.cumsum(axis=1)).sum(axis=1)
    action = np.minimum(action, 2).astype(np.int64)
    true_logged = mean_reward(x, action)
    target = target_action(x)
    return Bandit(
        x=x,
        action=action,
        reward=true_logged + rng.normal(scale=noise, size=n),
        logging_p=np.take_along_axis(probabilities, action[:, np.newaxis], axis=1)[:, 0],
        target_p=(action == target).astype(float),
        true_logged=true_logged,
        true_target=mean_reward(x, target),
    )


def test_on_policy_weights_reduce_to_the_sample_mean() -> None:
    data = simulate(seed=1, n=500)
    mean = float(np.mean(data.reward))
    assert ope.ips(data.reward, data.logging_p, data.logging_p) == pytest.approx(mean)
    assert ope.snips(data.reward, data.logging_p, data.logging_p) == pytest.approx(mean)


def test_exact_reward_model_makes_dr_equal_dm() -> None:
    data = simulate(seed=2, n=300, noise=0.0)  # q_logged is then exactly the reward
    q_logged, q_target = data.true_logged, data.true_target
    dm = ope.direct_method(q_target)
    args = (data.reward, data.logging_p, data.target_p, q_logged, q_target)
    assert ope.doubly_robust(*args) == pytest.approx(dm)
    assert ope.self_normalised_doubly_robust(*args) == pytest.approx(dm)


def test_perfect_reward_model_gives_dr_less_variance_than_ips() -> None:
    datasets = [simulate(seed, n=300) for seed in range(200)]
    ips_values = [ope.ips(d.reward, d.logging_p, d.target_p) for d in datasets]
    dr_values = [
        ope.doubly_robust(d.reward, d.logging_p, d.target_p, d.true_logged, d.true_target)
        for d in datasets
    ]
    assert np.var(dr_values) < 0.5 * np.var(ips_values)


def test_ci_covers_and_estimators_are_unbiased_on_a_known_bandit() -> None:
    """200 datasets of n = 500; DR uses a deliberately wrong reward model (it stays unbiased)."""
    errors: dict[str, list[float]] = {"ips": [], "snips": [], "dr": []}
    covered = 0
    for seed in range(200):
        data = simulate(seed, n=500)
        wrong_model = 0.8 * data.true_logged + 0.1, 0.8 * data.true_target + 0.1
        results = ope.estimate(
            data.reward, data.logging_p, data.target_p, *wrong_model, n_boot=200, seed=seed
        )
        for name, found in errors.items():
            found.append(results[name].value - TRUE_TARGET_VALUE)
        covered += results["dr"].ci_low <= TRUE_TARGET_VALUE <= results["dr"].ci_high
    assert covered / 200 >= 0.90
    for name, found in errors.items():
        standard_error = np.std(found, ddof=1) / np.sqrt(len(found))
        assert abs(np.mean(found)) < 3 * standard_error, name


# --- when not to trust the answer -----------------------------------------------------------


def test_degenerate_weights_carry_a_warning() -> None:
    data = simulate(seed=5, n=1000)
    rare = np.zeros(1000)
    rare[:5] = 1.0  # the target would have taken only five of the logged actions
    results = ope.estimate(data.reward, data.logging_p, rare, n_boot=200)
    warning = results["ips"].warning
    assert warning is not None
    assert "degenerated" in warning
    assert "5 of 1000" in warning
    assert "cannot be trusted" in warning
    assert results["snips"].warning == warning


def test_no_positive_weight_warns_and_snips_is_undefined() -> None:
    results = ope.estimate(REWARD, LOGGING_P, np.zeros(5), Q_LOGGED, Q_TARGET, n_boot=200)
    assert results["ips"].value == 0.0
    assert np.isnan(results["snips"].value)
    assert np.isnan(results["snips"].ci_low)
    assert results["sndr"].value == pytest.approx(HAND_DM)  # no weight: falls back to DM
    assert results["ips"].ess == 0.0
    assert results["ips"].warning is not None and "0 of 5" in results["ips"].warning
    assert results["dm"].warning is None


def test_healthy_weights_carry_no_warning() -> None:
    data = simulate(seed=6, n=500)
    results = ope.estimate(data.reward, data.logging_p, data.target_p, n_boot=200)
    assert results["ips"].warning is None
    assert results["ips"].ess > 100


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"target_p": [1.0, 0.0]}, "target_p"),
        ({"reward": [1.0, np.nan, 2.0, 1.0, 3.0]}, "reward"),
        ({"q_logged": [0.5, np.inf, 1.5, 1.0, 2.0]}, "q_logged"),
        ({"logging_p": [0.0, 0.25, 0.5, 1.0, 0.2]}, "logging_p"),
        ({"logging_p": [1.2, 0.25, 0.5, 1.0, 0.2]}, "logging_p"),
        ({"target_p": [1.0, -0.1, 1.0, 0.5, 0.0]}, "target_p"),
        ({"target_p": [1.0, 1.5, 1.0, 0.5, 0.0]}, "target_p"),
        ({"reward": [], "logging_p": [], "target_p": []}, "reward"),
        ({"n_boot": 50}, "n_boot"),
        ({"q_target": None}, "q_target"),
    ],
)
def test_bad_input_raises_naming_the_argument(changes: dict[str, object], named: str) -> None:
    arguments: dict[str, object] = {
        "reward": REWARD,
        "logging_p": LOGGING_P,
        "target_p": TARGET_P,
        "q_logged": Q_LOGGED,
        "q_target": Q_TARGET,
        "n_boot": 200,
    }
    arguments |= changes
    with pytest.raises(ValueError, match=named):
        ope.estimate(**arguments)  # type: ignore[arg-type]


# --- carry-over: whole trajectories ---------------------------------------------------------


def test_trajectory_ips_matches_hand_computation() -> None:
    reward = [3.0, 1.0, 2.0]
    logging_p = [[0.5, 0.5], [0.5, 0.25], [1.0, 0.5]]
    target_p = [[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]]  # products of ratios: 4, 0, 2
    results = ope.trajectory_ips(reward, logging_p, target_p, n_boot=200)
    assert results["trajectory_ips"].value == pytest.approx((4 * 3 + 0 + 2 * 2) / 3)
    assert results["trajectory_wis"].value == pytest.approx((4 * 3 + 2 * 2) / 6)
    assert results["trajectory_ips"].ess == pytest.approx(36 / 20)
    assert results["trajectory_ips"].warning is not None  # three trajectories are too few


def test_trajectory_weights_stay_unbiased_under_carry_over() -> None:
    """Two decisions; the first keeps acting on the second's reward. Logging flips fair coins,
    the target always takes action 1: its trajectory earns 1 + (1 + 1) = 3, but per-decision
    IPS credits the second decision with the logging policy's first action and finds 2.5."""
    rng = np.random.default_rng(7)
    trajectories = 40_000
    actions = rng.integers(0, 2, size=(trajectories, 2)).astype(float)
    first_reward = actions[:, 0]
    second_reward = actions[:, 1] + actions[:, 0]
    logging_p = np.full((trajectories, 2), 0.5)
    target_p = actions  # the target takes action 1 with probability 1

    per_decision = ope.ips(first_reward, logging_p[:, 0], target_p[:, 0]) + ope.ips(
        second_reward, logging_p[:, 1], target_p[:, 1]
    )
    results = ope.trajectory_ips(first_reward + second_reward, logging_p, target_p, n_boot=200)
    assert per_decision == pytest.approx(2.5, abs=0.05)
    assert results["trajectory_ips"].value == pytest.approx(3.0, abs=0.1)
    assert results["trajectory_wis"].value == pytest.approx(3.0)  # every weighted one earns 3
    assert results["trajectory_ips"].ci_low <= 3.0 <= results["trajectory_ips"].ci_high


def test_trajectory_ips_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="logging_p_matrix"):
        ope.trajectory_ips([1.0, 2.0], [[0.5, 0.5]], [[1.0, 1.0]], n_boot=200)
    with pytest.raises(ValueError, match="target_p_matrix"):
        ope.trajectory_ips([1.0], [[0.5, 0.5]], [[1.0]], n_boot=200)


# --- reward model ---------------------------------------------------------------------------


def knob_data(seed: int, n: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Two context features and two knobs, each asked for half the time (NaN otherwise)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 2))
    knobs = rng.uniform(size=(n, 2))
    knobs[rng.uniform(size=(n, 2)) < 0.5] = np.nan
    asked = np.nan_to_num(knobs)
    reward = features[:, 0] + 2 * asked[:, 0] - asked[:, 1] + rng.normal(scale=0.1, size=n)
    return features, knobs, reward


def test_reward_model_learns_through_missing_knobs() -> None:
    features, knobs, reward = knob_data(seed=0, n=2000)
    model = ope.fit_reward_model(features[:1500], knobs[:1500], reward[:1500])
    predicted = model.predict(features[1500:], knobs[1500:])
    residual = np.sum((reward[1500:] - predicted) ** 2)
    total = np.sum((reward[1500:] - reward[1500:].mean()) ** 2)
    assert 1 - residual / total > 0.9


def test_cross_fitted_predictions_never_see_their_own_row() -> None:
    features, knobs, reward = knob_data(seed=1, n=400)
    target = np.full_like(knobs, 0.5)
    q_logged, q_target = ope.cross_fitted_predictions(features, knobs, reward, target, folds=2)
    shifted = reward.copy()
    shifted[0] += 100.0
    q_logged_shifted, q_target_shifted = ope.cross_fitted_predictions(
        features, knobs, shifted, target, folds=2
    )
    assert q_logged_shifted[0] == q_logged[0]
    assert q_target_shifted[0] == q_target[0]
    assert not np.array_equal(q_logged_shifted, q_logged)  # the other fold's model saw it


def test_dr_with_a_cross_fitted_model_finds_the_target_value() -> None:
    data = simulate(seed=8, n=2000)
    one_hot = np.eye(3)
    q_logged, q_target = ope.cross_fitted_predictions(
        data.x, one_hot[data.action], data.reward, one_hot[target_action(data.x)], folds=2
    )
    results = ope.estimate(data.reward, data.logging_p, data.target_p, q_logged, q_target)
    assert results["dr"].value == pytest.approx(TRUE_TARGET_VALUE, abs=0.1)  # ~4 standard errors
    assert (
        results["dr"].ci_high - results["dr"].ci_low
        < results["ips"].ci_high - results["ips"].ci_low
    )


def test_reward_model_rejects_bad_shapes() -> None:
    features, knobs, reward = knob_data(seed=2, n=50)
    with pytest.raises(ValueError, match="actions"):
        ope.fit_reward_model(features, knobs[:40], reward)
    with pytest.raises(ValueError, match="target_actions"):
        ope.cross_fitted_predictions(features, knobs, reward, knobs[:, :1])
    with pytest.raises(ValueError, match="folds"):
        ope.cross_fitted_predictions(features, knobs, reward, knobs, folds=1)
