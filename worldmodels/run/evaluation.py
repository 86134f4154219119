"""One evaluation protocol for every agent: deterministic policy, K seeded episodes, stepped together.

Dimension letters: K episodes (one env each), A action dims.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from worldmodels.envs import make_env


@dataclass
class EvalResult:
    mean: float
    std: float
    returns: list[float]
    lengths: list[int]
    """Episode lengths in env steps (after action repeat)."""
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    """[3, H, W] uint8 frames of the first episode when recorded."""

    def summary(self) -> dict:
        out = asdict(self)
        out.pop("frames")
        return out


def evaluate(
    agent,
    env_spec: str,
    episodes: int = 10,
    seed: int = 0,
    env_kwargs: dict | None = None,
    record_video: bool = False,
) -> EvalResult:
    """Play ``episodes`` episodes with the agent's deterministic policy; env k is seeded ``seed + k``.

    The K envs step together so the agent acts on one batch per step. With record_video, the first episode's
    frames are rendered at the env's pixel size (also for state observations).
    """
    env_kwargs = dict(env_kwargs or {})
    repeat = env_kwargs.get("action_repeat", 1)
    envs = [make_env(env_spec, seed=seed + k, **env_kwargs) for k in range(episodes)]
    try:
        first = [env.reset(seed=seed + k)[0] for k, env in enumerate(envs)]
        obs = {key: np.stack([o[key] for o in first]) for key in first[0]}  # [K, ...]
        returns, lengths = np.zeros(episodes), np.zeros(episodes, np.int64)
        running = np.ones(episodes, bool)
        is_first = np.ones(episodes, bool)
        state, frames = None, []
        if record_video:
            frames.append(envs[0].render().transpose(2, 0, 1))
        while running.any():
            action, state, _ = agent.act({**obs, "is_first": is_first}, state, explore=False)  # [K, ...]
            is_first = np.zeros(episodes, bool)
            for k in np.flatnonzero(running):
                step_obs, reward, terminated, truncated, _ = envs[k].step(action[k])
                returns[k] += reward
                lengths[k] += repeat
                for key in obs:
                    obs[key][k] = step_obs[key]
                if k == 0 and record_video:
                    frames.append(envs[0].render().transpose(2, 0, 1))
                running[k] = not (terminated or truncated)
        return EvalResult(float(returns.mean()), float(returns.std()), returns.tolist(), lengths.tolist(), frames)
    finally:
        for env in envs:
            env.close()
