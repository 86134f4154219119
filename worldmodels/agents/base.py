"""The agent contract and the registry that the training loop builds agents from.

An agent composes a world model (or none) with a behaviour. It never owns a training loop:
    act(obs, state, explore) -> (action, state, extras)   obs: dict of batched numpy arrays [N, ...] plus
                                                          is_first [N]; extras: {name: [N, ...]} per-step
                                                          outputs kept in the replay (see replay_extras)
    replay_extras() -> {name: (shape, dtype)}             what act() returns in extras (usually nothing)
    streams() -> [Stream]                                 batch streams: sampler, schedule, update function
    report(replay, ...) -> videos / images / scalars      optional: what the model predicts against the replay
    state_dict() / load_state_dict()                      networks, optimizers, random generators
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch

from worldmodels.config import AGENT_CONFIGS, AgentConfig, ConfigError


@dataclass(frozen=True)
class BatchSpec:
    """What one update consumes: kind 'transitions' (B), 'sequences' (B, T), 'unrolls' (B, T windows from any
    step, padded past the episode's end with a ``valid`` mask: MuZero), 'all' (every stored transition, for
    models refitted on all data; the replay ratio then sets how often, e.g. 1 / episode length) or 'latest'
    (online learners such as tabular Q-learning: the N transitions of the vector step just taken, one per env,
    in the layout of 'transitions', next_obs being the true last observation of an episode that just ended;
    ``batch_size`` is ignored; one update pays for the N agent steps, so ratio 1 hands over every transition
    exactly once, in order; the replay only holds finished episodes, so this batch does not come from it).
    ``history``: unrolls only, steps before each window's start put in front of it (frame stacking)."""

    kind: str
    batch_size: int
    seq_len: int = 0
    cross_episodes: bool = False
    history: int = 0


@dataclass(frozen=True)
class Stream:
    """One batch stream: what the replay hands to ``update`` and how often the loop calls it.

    Schedule: ``ratio`` updates per agent step (None: the run's train.replay_ratio), or, when
    ``every_env_steps`` > 0, one update each time that many env steps have passed. Both start after warm-up
    and are paid exactly (fractions carry over, across resumes). ``update`` returns its metrics, or None when it had
    nothing to learn from yet (e.g. no model fitted): that call is not counted as an update."""

    name: str
    spec: BatchSpec
    update: Callable[[dict], dict[str, float] | None]
    ratio: float | None = None
    every_env_steps: int = 0


class Agent:
    """Base class; subclasses implement act, streams and state_dict / load_state_dict."""

    def __init__(self, cfg: AgentConfig, obs_space: gymnasium.spaces.Dict, action_space: gymnasium.Space, device):
        self.cfg = cfg
        self.obs_space = obs_space
        self.action_space = action_space
        self.device = torch.device(device)

    def streams(self) -> list[Stream]:
        """The batch streams the loop pays, in order (most agents have one)."""
        raise NotImplementedError

    def act(
        self, obs: dict[str, np.ndarray], state: Any, explore: bool
    ) -> tuple[np.ndarray, Any, dict[str, np.ndarray]]:
        raise NotImplementedError

    def replay_extras(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Per-step arrays the agent wants stored beside each action: name -> (shape, dtype). act() returns
        their values for the N envs as extras ({name: [N, ...]}); random warm-up steps and first steps get
        zeros. MuZero stores its search policy and root value this way."""
        return {}

    def report(self, replay, sequences: int = 4, length: int | None = None, context: int = 5) -> dict | None:
        """What the agent's model predicts against replayed episodes, or None for an agent without a model:
        {"videos": {tag: [T, 3, H, W] uint8}, "images": {tag: [3, H, W] uint8}, "scalars": {tag: float}}.
        ``sequences`` replayed sequences of ``length`` steps (None: the agent's own choice), the model
        observing the first ``context`` steps and predicting the rest open-loop from the replayed actions."""
        return None

    def model_check(self, episode: dict) -> dict[str, float] | None:
        """Failure-mode metrics (models/model_check.py) on an episode just collected, in the replay's layout:
        what the model predicted for the agent's own actions against what happened, and the model's error; None
        for an agent without a model, or before its model has learned anything."""
        return None

    def ready_to_plan(self) -> None:
        """Act from now on as after a first model fit (a planning agent acts at random before it). Timings call it
        to measure the planner on an untrained model; the default is for agents that never act at random."""

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


def has_report(agent: Agent) -> bool:
    """Whether the agent has a model whose predictions ``report()`` can show (model-free agents do not)."""
    return type(agent).report is not Agent.report


AGENTS: dict[str, type[Agent]] = {}


def register(name: str, config_class: type[AgentConfig]):
    """Class decorator: make an agent buildable by name (``agent.name=<name>`` in a config)."""

    def decorate(agent_class: type[Agent]) -> type[Agent]:
        AGENTS[name] = agent_class
        AGENT_CONFIGS[name] = config_class
        return agent_class

    return decorate


def build_agent(cfg: AgentConfig, obs_space, action_space, device) -> Agent:
    """The registered agent for ``cfg.name``; settings that do not fit the task are a ConfigError."""
    try:
        return AGENTS[cfg.name](cfg, obs_space, action_space, device)
    except ConfigError:
        raise
    except ValueError as err:  # agents check their settings against the task's spaces with clear messages
        raise ConfigError(f"agent '{cfg.name}' cannot be built for this task: {err}") from err


def obs_to_torch(obs: dict[str, np.ndarray], device) -> dict[str, torch.Tensor]:
    """uint8 pixels stay uint8 on the way (the network scales them); state becomes float32."""
    out = {}
    if "pixels" in obs:
        out["pixels"] = torch.as_tensor(obs["pixels"], device=device)
    if "state" in obs:
        out["state"] = torch.as_tensor(obs["state"], dtype=torch.float32, device=device)
    return out
