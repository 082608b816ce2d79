"""A Gymnasium single-agent view of the arena: one agent against control.

Optional fixed opponents fill further treatment arms; each is a policy mapping its own
observation to an action (a Box vector, a ConfigUpdate or None for "keep the defaults").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from arena_rl.envs.parallel import Action, ArenaParallelEnv

Opponent = Callable[[np.ndarray], Action]


class ArenaGymEnv(gym.Env):
    """The arena's first variant as a Gymnasium environment.

    Args:
        opponents: fixed policies for extra treatment arms (default: none, just control).
        **env_kwargs: passed to :class:`ArenaParallelEnv` (population, scenario, n_users, ...).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 - Gymnasium's convention

    def __init__(
        self,
        opponents: Sequence[Opponent | None] = (),
        render_mode: str | None = None,
        **env_kwargs: Any,
    ) -> None:
        self.opponents = list(opponents)
        self.arena = ArenaParallelEnv(
            n_agents=1 + len(self.opponents), render_mode=render_mode, **env_kwargs
        )
        self.render_mode = render_mode
        self.agent = self.arena.possible_agents[0]
        self.observation_space = self.arena.observation_space(self.agent)
        self.action_space = self.arena.action_space(self.agent)
        self._others: dict[str, np.ndarray] = {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None:  # draw the arena's seed from our generator: reproducible per seed
            seed = int(self.np_random.integers(2**31))
        obs, infos = self.arena.reset(seed=seed, options=options)
        self._others = obs
        return obs[self.agent], infos[self.agent]

    def step(self, action: Action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        actions: dict[str, Action] = {self.agent: action}
        for name, policy in zip(self.arena.possible_agents[1:], self.opponents, strict=True):
            actions[name] = policy(self._others[name]) if policy else None
        obs, rewards, terms, truncs, infos = self.arena.step(actions)
        self._others = obs
        a = self.agent
        return obs[a], rewards[a], terms[a], truncs[a], infos[a]

    def render(self) -> str | None:
        return self.arena.render()


GYM_ID = "arena_rl/Arena-v0"
gym.register(id=GYM_ID, entry_point="arena_rl.envs.gym:ArenaGymEnv")


def gym_env(**kwargs: Any) -> ArenaGymEnv:
    """Factory mirroring :func:`arena_rl.parallel_env`; arguments as :class:`ArenaGymEnv`.

    The env carries its registered spec, so ``gymnasium.make(GYM_ID)`` builds the same thing.
    """
    env = ArenaGymEnv(**kwargs)
    env.spec = gym.spec(GYM_ID)
    return env
