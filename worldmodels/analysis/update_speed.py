"""Seconds per training update of an agent, on a synthetic batch shaped like the replay's."""

from __future__ import annotations

import time

import numpy as np
import torch

from worldmodels.agents import build_agent
from worldmodels.config import Config
from worldmodels.envs import is_discrete, make_env


def synthetic_batch(spec, obs_space, action_space, rng: np.random.Generator, extras: dict | None = None) -> dict:
    """Random data shaped like the replay's batch for ``spec``; ``extras`` ({name: (shape, dtype)}, the agent's
    replay_extras) are filled with uniform values that sum to 1 along their last axis (search policies)."""
    if spec.kind == "sequences":
        lead = (spec.batch_size, spec.seq_len)
    elif spec.kind == "unrolls":
        lead = (spec.batch_size, spec.history + spec.seq_len)
    else:
        lead = (spec.batch_size,)

    def obs():
        out = {}
        if "pixels" in obs_space.spaces:
            out["pixels"] = rng.integers(0, 255, lead + obs_space["pixels"].shape, dtype=np.uint8)
        if "state" in obs_space.spaces:
            out["state"] = rng.normal(size=lead + obs_space["state"].shape).astype(np.float32)
        return out

    if is_discrete(action_space):
        action = rng.integers(0, action_space.n, lead)
    else:
        action = rng.uniform(-1, 1, lead + action_space.shape).astype(np.float32)
    reward = rng.normal(size=lead).astype(np.float32)
    if spec.kind == "transitions":
        return {"obs": obs(), "next_obs": obs(), "action": action, "reward": reward, "terminated": np.zeros(lead, bool)}
    first = np.zeros(lead, bool)
    first[:, 0] = True
    batch = {
        **obs(),
        "action": action,
        "reward": reward,
        "is_first": first,
        "is_last": np.zeros(lead, bool),
        "is_terminal": np.zeros(lead, bool),
        "valid": np.ones(lead, bool),
    }
    for name, (shape, dtype) in (extras or {}).items():
        batch[name] = np.full(lead + shape, 1.0 / shape[-1] if shape else 0.0, dtype)
    return batch


def agent_batch(agent, rng: np.random.Generator) -> dict:
    """A synthetic batch of the shape the agent's first batch stream consumes (its spec and replay extras)."""
    return synthetic_batch(agent.streams()[0].spec, agent.obs_space, agent.action_space, rng, agent.replay_extras())


def probe_agent(cfg: Config):
    """An untrained agent for the config (torch threads set as training would) and the env's first observation."""
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    env = make_env(cfg.env.spec, obs=cfg.env.obs, size=cfg.env.size, seed=0)
    agent = build_agent(
        cfg.agent, env.observation_space, env.action_space, "cpu" if cfg.train.device == "auto" else cfg.train.device
    )
    first, _ = env.reset(seed=0)
    env.close()
    return agent, first


def update_seconds(cfg: Config, repeats: int = 5, warmup: int = 2) -> dict:
    """Median seconds per update of the agent's first batch stream over ``repeats`` timed calls, and the
    parameter count."""
    agent, _ = probe_agent(cfg)
    batch = agent_batch(agent, np.random.default_rng(0))
    update = agent.streams()[0].update
    for _ in range(warmup):
        update(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        update(batch)
        times.append(time.perf_counter() - start)
    modules = [m for m in vars(agent).values() if isinstance(m, torch.nn.Module)]
    params = sum(p.numel() for m in modules for p in m.parameters())
    return {
        "median_s": float(np.median(times)),
        "min_s": float(np.min(times)),
        "times": times,
        "parameters": params,
        "threads": torch.get_num_threads(),
    }


def act_seconds(cfg: Config, repeats: int = 5, batch: int = 1) -> dict:
    """Median seconds per agent.act decision for ``batch`` envs (planning agents plan on an untrained model)."""
    agent, first = probe_agent(cfg)
    agent.ready_to_plan()  # time the planner, not the random actions before a first refit
    obs = {k: np.repeat(v[None], batch, 0) for k, v in first.items()}
    obs["is_first"] = np.ones(batch, bool)
    _, state, _ = agent.act(obs, None, explore=True)
    obs["is_first"] = np.zeros(batch, bool)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, state, _ = agent.act(obs, state, explore=True)
        times.append(time.perf_counter() - start)
    return {
        "median_s": float(np.median(times)),
        "min_s": float(np.min(times)),
        "times": times,
        "threads": torch.get_num_threads(),
    }
