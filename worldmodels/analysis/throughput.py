"""Collection throughput: env steps/s of a vector env driven by random actions (no agent, no learning)."""

from __future__ import annotations

import time

import numpy as np

from worldmodels.envs import make_vector_env


def collection_throughput(
    spec: str, num_envs: int, env_steps: int, seed: int = 0, warmup_steps: int = 50, **env_kwargs
) -> float:
    """Env steps (after action repeat) per second, with subprocess startup and a short warm-up excluded."""
    repeat = env_kwargs.get("action_repeat", 1)
    envs = make_vector_env(spec, num_envs, seed=seed, **env_kwargs)
    rng = np.random.default_rng(seed)
    try:
        envs.reset(seed=seed)
        shape = (num_envs,) + envs.single_action_space.shape

        def step():
            envs.step(rng.uniform(-1, 1, shape).astype(np.float32))

        for _ in range(warmup_steps):
            step()
        decisions = max(1, env_steps // (num_envs * repeat))
        start = time.perf_counter()
        for _ in range(decisions):
            step()
        return decisions * num_envs * repeat / (time.perf_counter() - start)
    finally:
        envs.close()
