"""Every observation an env returns is checked against the space it declared, so that a broken env fails with one
error that names the env, the step and both shapes, not later as a numpy error deep in the vector env."""

from __future__ import annotations

import gymnasium
import numpy as np


class EnvStepError(RuntimeError):
    """An env returned an observation that does not fit its declared observation space."""


class CheckedObservations(gymnasium.Wrapper):
    """Wraps a dict-observation env; reset() and step() raise EnvStepError on an observation whose keys, shape or
    dtype differ from the declared space, or whose state is not finite."""

    def __init__(self, env: gymnasium.Env, spec: str):
        super().__init__(env)
        self.spec_name = spec
        self._episode, self._step = 0, 0
        self._declared = {key: (space.shape, np.dtype(space.dtype)) for key, space in env.observation_space.items()}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._episode += 1
        self._step = 0
        self._check(obs, "reset")
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._step += 1
        self._check(obs, f"step {self._step}")
        return obs, reward, terminated, truncated, info

    def _check(self, obs: dict, when: str) -> None:
        where = f"{self.spec_name} at {when} of its episode {self._episode}"
        if not isinstance(obs, dict) or set(obs) != set(self._declared):
            got = sorted(obs) if isinstance(obs, dict) else type(obs).__name__
            raise EnvStepError(f"{where} returned observation keys {got}; its space declares {sorted(self._declared)}")
        for key, (shape, dtype) in self._declared.items():
            value = obs[key]
            if getattr(value, "shape", None) != shape or getattr(value, "dtype", None) != dtype:
                got = f"{getattr(value, 'shape', '?')} {getattr(value, 'dtype', type(value).__name__)}"
                raise EnvStepError(
                    f"{where} returned a '{key}' observation of shape {got}; its observation space declares "
                    f"{shape} {dtype}. An env must keep one observation shape for a whole run."
                )
            if key == "state" and not np.isfinite(value).all():
                raise EnvStepError(f"{where} returned a non-finite state observation: {value}")
