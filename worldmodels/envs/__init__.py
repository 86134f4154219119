"""Environments behind one spec string: ``dmc:<domain>-<task>`` or ``gym:<registered id>``.

env = make_env("dmc:cartpole-swingup", obs="pixels", size=64, action_repeat=2, seed=0)
envs = make_vector_env("dmc:cartpole-swingup", num_envs=2, obs="pixels", seed=0)
"""

from __future__ import annotations

import difflib
import functools

import gymnasium

from worldmodels.envs.checks import CheckedObservations, EnvStepError
from worldmodels.envs.spaces import OBS_KINDS

__all__ = ["make_env", "make_vector_env", "EnvSpecError", "EnvStepError", "is_discrete", "action_dim"]

SPEC_HELP = (
    "Name envs as 'dmc:<domain>-<task>' for the dm_control suite (e.g. dmc:cartpole-swingup, dmc:walker-walk) "
    "or 'gym:<id>' for any registered gymnasium env (e.g. gym:Pendulum-v1, gym:CartPole-v1, gym:HalfCheetah-v5)."
)


gymnasium.register(  # the task of mbrl-lib's PETS example (envs/cartpole_continuous.py)
    id="worldmodels/CartPoleContinuous-v0",
    entry_point="worldmodels.envs.cartpole_continuous:ContinuousCartPole",
    max_episode_steps=200,
)
gymnasium.register(  # Sutton & Barto's Figure 8.2 maze for tabular Dyna-Q (envs/dyna_maze.py)
    id="worldmodels/DynaMaze-v0",
    entry_point="worldmodels.envs.dyna_maze:DynaMaze",
    max_episode_steps=100_000,
)
gymnasium.register(  # FrozenLake-v1's 4x4 map without slipping: every move goes where it points
    id="worldmodels/FrozenLakeDeterministic-v0",
    entry_point="gymnasium.envs.toy_text.frozen_lake:FrozenLakeEnv",
    kwargs={"map_name": "4x4", "is_slippery": False},
    max_episode_steps=100,
)


class EnvSpecError(ValueError):
    """An env spec that names no known environment."""


def _dmc_env(name: str, **kwargs):
    from worldmodels.envs.dmc import DMCEnv, dmc_task_names

    tasks = dmc_task_names()
    if name not in tasks:
        close = difflib.get_close_matches(name, tasks, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join('dmc:' + c for c in close)}?" if close else ""
        raise EnvSpecError(f"Unknown dm_control task 'dmc:{name}'.{hint} Tasks: {', '.join(tasks)}. {SPEC_HELP}")
    domain, task = name.split("-", 1)
    return DMCEnv(domain, task, **kwargs)


def _gym_env(env_id: str, fast_render: bool = False, **kwargs):
    from worldmodels.envs.gym_env import GymEnv

    if env_id not in gymnasium.registry:
        close = difflib.get_close_matches(env_id, list(gymnasium.registry), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join('gym:' + c for c in close)}?" if close else ""
        raise EnvSpecError(f"Unknown gymnasium id 'gym:{env_id}'.{hint} {SPEC_HELP}")
    return GymEnv(env_id, **kwargs)


def make_env(
    spec: str,
    obs: str = "pixels",
    size: int = 64,
    action_repeat: int = 1,
    seed: int | None = None,
    time_limit: int | None = None,
    fast_render: bool = False,
) -> gymnasium.Env:
    """One environment with dict observations (see worldmodels.envs.spaces for the contract), each checked
    against the declared space (envs/checks.py).

    time_limit counts env steps (simulator steps, after action repeat); None keeps the task's own limit, a number
    replaces it (shorter or longer: dm_control's own limit is lifted, gymnasium's max_episode_steps set).
    """
    if obs not in OBS_KINDS:
        raise ValueError(f"obs must be one of {OBS_KINDS}, got {obs!r}")
    if action_repeat < 1 or size < 1:
        raise ValueError(f"action_repeat and size must be positive, got {action_repeat} and {size}")
    suite, sep, name = spec.partition(":")
    kwargs = dict(obs=obs, size=size, action_repeat=action_repeat, seed=seed, time_limit=time_limit)
    if not sep or not name:
        raise EnvSpecError(f"Env spec '{spec}' has no suite prefix. {SPEC_HELP}")
    if suite == "dmc":
        return CheckedObservations(_dmc_env(name, fast_render=fast_render, **kwargs), spec)
    if suite == "gym":
        return CheckedObservations(_gym_env(name, **kwargs), spec)
    raise EnvSpecError(f"Unknown env suite '{suite}' in '{spec}'. {SPEC_HELP}")


def make_vector_env(spec: str, num_envs: int, seed: int = 0, **kwargs) -> gymnasium.vector.VectorEnv:
    """N copies of ``make_env(spec, ...)``; subprocesses when N > 1.

    Autoreset happens in the same step: the returned observation of a finished env is the first of its next
    episode, and the last observation of the finished one is in ``infos["final_obs"]``.
    Subprocesses are started with 'spawn': 'fork' hangs once the parent process has rendered.
    """
    factories = [functools.partial(make_env, spec, seed=seed + i, **kwargs) for i in range(num_envs)]
    mode = gymnasium.vector.AutoresetMode.SAME_STEP
    if num_envs == 1:
        return gymnasium.vector.SyncVectorEnv(factories, autoreset_mode=mode)
    return gymnasium.vector.AsyncVectorEnv(factories, context="spawn", autoreset_mode=mode)


def is_discrete(space: gymnasium.Space) -> bool:
    return isinstance(space, gymnasium.spaces.Discrete)


def action_dim(space: gymnasium.Space) -> int:
    """Number of discrete actions, or the size of a continuous action vector."""
    return int(space.n) if is_discrete(space) else int(space.shape[0])
