"""dm_control suite tasks as gymnasium envs: dict observations, action repeat, headless pixels.

With action repeat, pixels are rendered once after the last repeated physics step, with one camera
reused across renders (building a camera per frame costs about 3 ms here).
"""

from __future__ import annotations

import gymnasium
import mujoco
import numpy as np
from dm_control import suite
from dm_control.mujoco import Camera
from dm_control.rl.control import PhysicsError

from worldmodels.envs.spaces import normalized_box, observation_space, sanitize_state, unnormalize

# Dreamer's convention: quadruped is filmed by its third camera, everything else by the first.
CAMERA_BY_DOMAIN = {"quadruped": 2}


class DMCEnv(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        domain: str,
        task: str,
        obs: str = "pixels",
        size: int = 64,
        action_repeat: int = 1,
        seed: int | None = None,
        time_limit: int | None = None,
        fast_render: bool = False,
    ):
        # With a time limit of ours, dm_control's own (1,000 steps on most tasks) is lifted, so it may be longer too
        task_kwargs = {"random": seed} | ({"time_limit": float("inf")} if time_limit is not None else {})
        self._env = suite.load(domain, task, task_kwargs=task_kwargs)
        self._obs_kind = obs
        self._size = size
        self._repeat = action_repeat
        self._time_limit = time_limit
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        state_dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
        self.observation_space = observation_space(obs, size, state_dim)
        self.action_space = normalized_box(spec.shape[0])
        self.render_mode = "rgb_array"
        self._camera = None
        self._camera_id = CAMERA_BY_DOMAIN.get(domain, 0)
        self._fast_render = fast_render
        if fast_render:
            self._env.physics.model.vis.quality.offsamples = 0
        self._steps = 0

    # -- rendering ------------------------------------------------------------------------------------------
    def _render_pixels(self) -> np.ndarray:
        if self._camera is None:
            self._camera = Camera(self._env.physics, self._size, self._size, self._camera_id)
            if self._fast_render:
                self._camera._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
                self._camera._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return np.ascontiguousarray(self._camera.render().transpose(2, 0, 1))  # [3, H, W] uint8

    def render(self) -> np.ndarray:
        return self._render_pixels().transpose(1, 2, 0)  # [H, W, 3]

    def _observe(self, time_step) -> tuple[dict, bool]:
        out, diverged = {}, False
        if self._obs_kind in ("state", "both"):
            flat = [np.asarray(v, np.float64).reshape(-1) for v in time_step.observation.values()]
            out["state"], diverged = sanitize_state(np.concatenate(flat))
        if self._obs_kind in ("pixels", "both"):
            out["pixels"] = self._render_pixels()
        return out, diverged

    # -- gymnasium API --------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
        self._steps = 0
        obs, _ = self._observe(self._env.reset())
        return obs, {}

    def step(self, action):
        physical = unnormalize(action, self._low, self._high)
        reward, terminated, truncated, info = 0.0, False, False, {}
        for _ in range(self._repeat):
            try:
                time_step = self._env.step(physical)
            except PhysicsError as err:  # diverged simulation: end the episode, keep training
                info["physics_error"] = str(err)
                truncated = True
                break
            self._steps += 1
            reward += time_step.reward or 0.0
            if time_step.last():
                # dm_control marks a terminal state with discount 0 and a time limit with discount 1.
                terminated = time_step.discount == 0.0
                truncated = not terminated
                break
        if self._time_limit is not None and self._steps >= self._time_limit:
            truncated = not terminated
        if "physics_error" in info:
            obs = {k: np.zeros(s.shape, s.dtype) for k, s in self.observation_space.items()}
        else:
            obs, diverged = self._observe(time_step)
            if diverged:
                info["physics_error"] = "non-finite state"
                truncated = not terminated
        return obs, float(reward), terminated, truncated, info

    def close(self):
        self._camera = None
        self._env.close()


def dmc_task_names() -> list[str]:
    return sorted(f"{domain}-{task}" for domain, task in suite.ALL_TASKS)
