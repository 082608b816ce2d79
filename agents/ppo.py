"""``ppo``: a small actor-critic policy trained with PPO in the simulator.

The policy is trained offline by ``scripts/train_ppo.py`` (CleanRL's ppo_continuous_action on
:func:`arena_rl.gym_env`) and shipped as ``agents/checkpoints/ppo_default.pt``. This module
holds everything training and acting must agree on: the features (:func:`policy_features`), the
network (:class:`ActorCritic`), how a policy action becomes the environment's Box action
(:func:`env_action`) and the checkpoint format. The agent then converts that Box action into a
ConfigUpdate exactly as the environment does (:func:`arena_rl.envs.parallel.action_to_update`).

Gamification only (``PPOAgent.scenarios``): the shipped policy was trained on gamification
signals and economies, and its features and actions are that scenario's metrics and knobs.
Another scenario needs its own features and a policy trained on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import ndtr
from torch import nn
from torch.distributions.normal import Normal

from agents.common import BaseAgent, Count, hyperparameters
from arena_rl.agent import VariantInfo
from arena_rl.core.guardrails import ConfigUpdate
from arena_rl.core.signals import Signals
from arena_rl.envs.parallel import action_to_update
from arena_rl.scenarios.gamification.economy import DEFAULT_ECONOMY, ECONOMY_KEYS, INTEGER_KEYS

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "ppo_default.pt"

METRIC_SCALES: Mapping[str, float] = {
    "SCAN_FREQUENCY": 5.0,  # scans per active user per day
    "XP_VELOCITY": 100.0,  # XP per enrolled user per day: the cost side of the objective
    "RETENTION_RATE": 1.0,
    "MISSION_COMPLETION": 1.0,
    "STREAK_LENGTH": 10.0,  # days
    "FEEDBACK_QUALITY": 1.0,
}
"""Divisors that bring each metric to order one (shares stay as they are)."""
FEATURE_NAMES: tuple[str, ...] = (
    "day_share",
    "active_today_share",
    "active_7d_share",
    *(f"{m}/{s:g}" for m, s in METRIC_SCALES.items()),
    *(f"{k}/default" for k in ECONOMY_KEYS),
)
FEATURE_SIZE = len(FEATURE_NAMES)
FEATURE_CLIP = 10.0
"""Features are clipped to [0, FEATURE_CLIP] so absurd signals cannot blow up the network."""

_SCALES = np.asarray(list(METRIC_SCALES.values()), dtype=np.float32)
_DEFAULTS = np.asarray([DEFAULT_ECONOMY[k] for k in ECONOMY_KEYS], dtype=np.float32)


def policy_features(signals: Signals, config: Mapping[str, float], days: int) -> np.ndarray:
    """The policy's input, shared by training and acting: shape (FEATURE_SIZE,), float32.

    Day as a share of the horizon; active today / 7 days as shares of the enrolled; each metric
    divided by its scale, 0 while its confidence is low (nothing trustworthy yet); each economy
    key as a multiple of its global default. Every raw value is cast to float32 before any
    arithmetic, so signals that went through the environment's float32 observation give
    bit-identical features.
    """
    enrolled = np.float32(max(signals.enrolled, 1))
    counts = np.asarray([signals.active_today, signals.active_7d], dtype=np.float32) / enrolled
    raw = [
        0.0 if signals.metrics[m].confidence == "low" else signals.metrics[m].value
        for m in METRIC_SCALES
    ]
    metrics = np.asarray(raw, dtype=np.float32) / _SCALES
    economy = np.asarray([config[k] for k in ECONOMY_KEYS], dtype=np.float32) / _DEFAULTS
    day = np.float32(signals.experiment_days) / np.float32(max(days, 1))
    features = np.concatenate([[day], counts, metrics, economy]).astype(np.float32)
    return np.clip(np.nan_to_num(features, posinf=FEATURE_CLIP), 0.0, FEATURE_CLIP)


def env_action(
    policy_action: np.ndarray, keys: Sequence[str], step_pct: float, delta_limit_pct: float
) -> np.ndarray:
    """The environment's Box action (10,) for a policy action in [-1, 1]^len(keys).

    The policy moves only ``keys``, each by at most ``step_pct`` % a day; the environment reads
    its action as a share of ``delta_limit_pct``, hence the rescaling.
    """
    moves = np.clip(np.nan_to_num(np.asarray(policy_action, dtype=np.float64)), -1.0, 1.0)
    action = np.zeros(len(ECONOMY_KEYS))
    index = [ECONOMY_KEYS.index(k) for k in keys]
    action[index] = moves * min(step_pct / delta_limit_pct, 1.0)
    return action


def _layer(layer: nn.Linear, std: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Linear:
    """CleanRL's orthogonal initialisation."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class ActorCritic(nn.Module):
    """CleanRL's continuous-action agent: separate tanh MLPs for value and Gaussian mean, and a
    state-independent log standard deviation."""

    def __init__(self, n_features: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            _layer(nn.Linear(n_features, hidden)),
            nn.Tanh(),
            _layer(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            _layer(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor_mean = nn.Sequential(
            _layer(nn.Linear(n_features, hidden)),
            nn.Tanh(),
            _layer(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            _layer(nn.Linear(hidden, n_actions), std=0.01),
        )
        self.actor_logstd = nn.Parameter(torch.zeros(1, n_actions))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def get_action_and_value(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log-prob, entropy, value); samples from the global torch RNG (training)."""
        mean = self.actor_mean(x)
        probs = Normal(mean, self.actor_logstd.expand_as(mean).exp())
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action).sum(1), probs.entropy().sum(1), self.critic(x)


def save_checkpoint(path: str | Path, model: ActorCritic, meta: Mapping[str, Any]) -> None:
    """Weights plus what acting needs to know (keys moved, step size, network size)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "meta": dict(meta)}, path)


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[ActorCritic, dict[str, Any]]:
    """The policy (eval mode, on ``device``) and its metadata; plain tensors only."""
    blob = torch.load(path, map_location=device, weights_only=True)
    meta = blob["meta"]
    if meta["features"] != list(FEATURE_NAMES):
        raise ValueError(f"{path}: trained on other features than this module builds")
    model = ActorCritic(len(FEATURE_NAMES), len(meta["keys"]), meta["hidden"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), meta


class PPOAgent(BaseAgent):
    """Acts with a PPO policy trained in the simulator: each day it moves a few economy keys by
    up to the trained step, as the policy's mean (or a sample) says.

    Args:
        checkpoint: path of a ``scripts/train_ppo.py`` checkpoint; None = the shipped one.
        device: torch device; ``"auto"`` picks CUDA when available, else CPU.
        deterministic: act with the policy mean (True) or sample from it (False).
        hold_days: days between decisions (1 = every day, as trained).

    Acting with the mean is deterministic: :meth:`action_probability` is 1.0. Sampling draws
    ``z ~ N(mean, std²)`` per policy key; the key moves to ``current · (1 + clip(z, ±1) · s)``
    (``s``: the trained step as a fraction), caps rounded. :meth:`action_probability` is then
    the probability of the discrete part of the answer, the product over the policy's keys of:
    for a cap, P(the whole number it was set to, or kept), a bound's atom included; for any
    other key, P(z ≤ -1), P(z ≥ 1) or P(-1 < z < 1), whichever holds (the clip puts an atom at
    each bound); a key at 0 stays, P = 1. Inside the bounds a non-cap key's value is
    continuous: ``z = (new / current - 1) / s`` has the policy's normal density there (not
    included). ``torch_rng_`` draws exactly as before: the probability is computed, not sampled.
    """

    scenarios = ("gamification",)
    """The policy's features and actions are gamification's (see the module docstring)."""

    @hyperparameters
    def __init__(
        self,
        checkpoint: str | None = None,
        device: str = "auto",
        deterministic: bool = True,
        hold_days: Count = 1,
    ) -> None:
        self.checkpoint = checkpoint
        self.device = device
        self.deterministic = deterministic
        self.hold_days = hold_days

    def reset(self, info: VariantInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        if not hasattr(self, "policy_"):  # loaded once; the weights never change while acting
            device = self.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            self.device_ = torch.device(device)
            self.policy_, self.meta_ = load_checkpoint(
                self.checkpoint or DEFAULT_CHECKPOINT, device
            )
        self.torch_rng_ = torch.Generator(self.device_)
        self.torch_rng_.manual_seed(int(rng.integers(2**63)))
        self.probability_ = 1.0

    def decide(self, signals: Signals, current_config: Mapping[str, float]) -> ConfigUpdate | None:
        self.probability_ = 1.0
        if signals.experiment_days % self.hold_days or not self.may_update(signals):
            return None
        features = policy_features(signals, current_config, self.info_.days)
        x = torch.as_tensor(features, device=self.device_).unsqueeze(0)
        with torch.no_grad():
            mean = self.policy_.actor_mean(x)
            if not self.deterministic:
                std = self.policy_.actor_logstd.exp().expand_as(mean)
                centre = mean
                mean = torch.normal(mean, std, generator=self.torch_rng_)
        keys, step = self.meta_["keys"], self.meta_["step_pct"]
        action = env_action(mean[0].cpu().numpy(), keys, step, self.info_.delta_limit_pct)
        update = action_to_update(
            action, current_config, self.info_.delta_limit_pct, self.info_.knobs
        )
        if not self.deterministic:
            self.probability_ = self._chance_of(
                update,
                mean[0].cpu().numpy(),
                centre[0].cpu().numpy(),
                std[0].cpu().numpy(),
                current_config,
            )
        if update is None:
            return None
        moves = ", ".join(
            f"{k} {100 * (v / current_config[k] - 1):+.1f} %"
            for k, v in update.overrides.items()
            if current_config[k] > 0
        )
        return ConfigUpdate(update.overrides, f"PPO policy, day {signals.experiment_days}: {moves}")

    def action_probability(self) -> float:
        """1.0 when acting with the mean; the discrete part's probability when sampling (see
        the class docstring)."""
        return self.probability_

    def _chance_of(
        self,
        update: ConfigUpdate | None,
        drawn: np.ndarray,
        centre: np.ndarray,
        spread: np.ndarray,
        current: Mapping[str, float],
    ) -> float:
        """P(discrete part of ``update``) for policy draws ``drawn`` ~ N(centre, spread²)."""
        delta = self.info_.delta_limit_pct
        share = min(self.meta_["step_pct"] / delta, 1.0)  # env_action's factor
        scale = share * delta / 100.0  # fractional move per unit of clipped draw
        moved = {} if update is None else update.overrides
        chance = 1.0
        for key, z, mu_, sd_ in zip(self.meta_["keys"], drawn, centre, spread, strict=True):
            now = current[key]
            if now <= 0.0:
                continue  # 0 times any step is 0: certain
            mu, sigma = float(mu_), float(sd_)
            lower_tail = float(ndtr((-1.0 - mu) / sigma))  # P(z <= -1): the lower bound's atom
            upper_tail = float(ndtr((mu - 1.0) / sigma))
            if key not in INTEGER_KEYS:
                if z >= 1.0:
                    chance *= upper_tail
                elif z <= -1.0:
                    chance *= lower_tail
                else:
                    chance *= 1.0 - lower_tail - upper_tail
                continue
            # a cap: the draws that round to the whole number it was set to (or kept)
            value = moved.get(key, now)
            low = max(((value - 0.5) / now - 1.0) / scale, -1.0)
            high = min(((value + 0.5) / now - 1.0) / scale, 1.0)
            mass = 0.0
            if high > low:  # strictly inside the bounds
                mass = float(ndtr((high - mu) / sigma) - ndtr((low - mu) / sigma))
            for sign, tail in ((-1.0, lower_tail), (1.0, upper_tail)):
                # each bound's atom, rounded as action_to_update rounds it (it may sit on a .5)
                if float(round(now * (1.0 + sign * share * delta / 100.0))) == value:
                    mass += tail
            chance *= mass
        return chance
