"""Registered gymnasium envs (classic control, MuJoCo, ...) behind the same dict-observation contract.

A Discrete observation space (FrozenLake, the Dyna Maze) becomes a float32 one-hot ``state`` of its n values."""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces
from PIL import Image

from worldmodels.envs.spaces import normalized_box, observation_space, sanitize_state, unnormalize


class GymEnv(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        env_id: str,
        obs: str = "state",
        size: int = 64,
        action_repeat: int = 1,
        seed: int | None = None,
        time_limit: int | None = None,
    ):
        kwargs = {"render_mode": "rgb_array"}  # renderers start lazily: state-only runs pay nothing
        if time_limit is not None:
            kwargs["max_episode_steps"] = time_limit
        self._env = gymnasium.make(env_id, **kwargs)
        self._obs_kind, self._size, self._repeat = obs, size, action_repeat
        inner_obs = self._env.observation_space
        self._one_hot = isinstance(inner_obs, spaces.Discrete)  # a cell index becomes a one-hot state [n]
        if obs in ("state", "both") and not isinstance(inner_obs, (spaces.Box, spaces.Discrete)):
            raise ValueError(
                f"gym:{env_id} has {type(inner_obs).__name__} observations; state observations need a Box or a "
                "Discrete space. Use obs=pixels for this env."
            )
        if self._one_hot:
            state_dim, self._obs_start = int(inner_obs.n), int(inner_obs.start)
        else:
            state_dim = int(np.prod(inner_obs.shape)) if isinstance(inner_obs, spaces.Box) else 0
        self.observation_space = observation_space(obs, size, state_dim, one_hot=self._one_hot)
        inner_act = self._env.action_space
        if isinstance(inner_act, spaces.Discrete):
            self.action_space = spaces.Discrete(int(inner_act.n))
            self._continuous = False
        elif (
            isinstance(inner_act, spaces.Box)
            and np.all(np.isfinite(inner_act.low))
            and np.all(np.isfinite(inner_act.high))
        ):
            self.action_space = normalized_box(int(np.prod(inner_act.shape)))
            self._low = inner_act.low.astype(np.float64).reshape(-1)
            self._high = inner_act.high.astype(np.float64).reshape(-1)
            self._inner_shape = inner_act.shape
            self._continuous = True
        else:
            raise ValueError(f"gym:{env_id}: action space {inner_act} is neither Discrete nor a bounded Box")
        self._discrete_start = int(getattr(inner_act, "start", 0))
        self.render_mode = "rgb_array"
        self._seed = seed

    def _pixels(self) -> np.ndarray:
        frame = self._env.render()  # [H0, W0, 3] at the env's own resolution
        image = Image.fromarray(frame).resize((self._size, self._size), Image.BILINEAR)
        return np.ascontiguousarray(np.asarray(image, np.uint8).transpose(2, 0, 1))  # [3, H, W]

    def render(self) -> np.ndarray:
        return self._pixels().transpose(1, 2, 0)

    def _observe(self, inner_obs) -> tuple[dict, bool]:
        out, diverged = {}, False
        if self._obs_kind in ("state", "both") and self._one_hot:
            out["state"] = np.zeros(self.observation_space["state"].shape, np.float32)  # [n]
            out["state"][int(inner_obs) - self._obs_start] = 1.0
        elif self._obs_kind in ("state", "both"):
            out["state"], diverged = sanitize_state(np.asarray(inner_obs).reshape(-1))
        if self._obs_kind in ("pixels", "both"):
            out["pixels"] = self._pixels()
        return out, diverged

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None  # the constructor's seed applies to the first episode
        inner_obs, info = self._env.reset(seed=seed, options=options)
        obs, _ = self._observe(inner_obs)
        return obs, {}

    def step(self, action):
        if self._continuous:
            inner_action = unnormalize(action, self._low, self._high).reshape(self._inner_shape)
            inner_action = inner_action.astype(self._env.action_space.dtype)
        else:
            inner_action = int(np.asarray(action).reshape(())) + self._discrete_start
        reward, terminated, truncated, info = 0.0, False, False, {}
        for _ in range(self._repeat):
            inner_obs, r, terminated, truncated, _ = self._env.step(inner_action)
            reward += float(r)
            if terminated or truncated:
                break
        obs, diverged = self._observe(inner_obs)
        if diverged or not np.isfinite(reward):
            info["physics_error"] = "non-finite state or reward"
            reward = 0.0 if not np.isfinite(reward) else reward
            truncated = not terminated
        return obs, reward, bool(terminated), bool(truncated), info

    def close(self):
        self._env.close()
