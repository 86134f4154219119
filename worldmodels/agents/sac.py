"""SAC, the model-free baseline: no model, SAC's learner (behaviours/sac.py) on replayed transitions, with
DrQ's random-shift augmentation of pixels.

Dimension letters: N envs acting at once, B batch, A action dims.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldmodels.agents.base import Agent, BatchSpec, Stream, obs_to_torch, register
from worldmodels.behaviours.sac import SACLearner, SACSettings
from worldmodels.config import AgentConfig, settings_from
from worldmodels.envs import is_discrete
from worldmodels.nets.conv import random_shift


@dataclass
class SACFields(AgentConfig):
    """SAC's learner settings, shared by every agent that trains one (sac, mbpo, mpc_value); the network widths are
    the agent's own field (``hidden`` for sac, ``policy_hidden`` for mbpo and mpc_value, whose ``hidden`` is the
    model's). The defaults are the learner's own (SACSettings), so they have one source."""

    batch_size: int = 256
    """Transitions per update."""
    gamma: float = SACSettings.gamma
    """Discount per agent step."""
    tau: float = SACSettings.tau
    """Target network soft-update rate."""
    actor_lr: float = SACSettings.actor_lr
    """Actor learning rate."""
    critic_lr: float = SACSettings.critic_lr
    """Critic (and pixel encoder) learning rate."""
    alpha_lr: float = SACSettings.alpha_lr
    """Entropy temperature learning rate."""
    init_alpha: float = SACSettings.init_alpha
    """Initial entropy temperature."""
    target_entropy: float | None = SACSettings.target_entropy
    """Entropy target; None: minus the number of action dimensions."""
    log_std_bounds: tuple[float, ...] = SACSettings.log_std_bounds
    """Bounds of the policy's log standard deviation."""


@dataclass
class SACConfig(SACFields):
    name: str = "sac"
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor and of each critic."""
    encoder_channels: tuple[int, ...] = (32, 64, 128, 256)
    """Conv encoder channels (pixel observations only)."""
    feature_dim: int = 50
    """Width of the encoder's projection (pixel observations only)."""
    augment_pad: int = 4
    """Random-shift padding in pixels for augmentation (0: none)."""


@register("sac", SACConfig)
class SACAgent(Agent):
    def __init__(self, cfg: SACConfig, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        if is_discrete(action_space):
            raise ValueError("sac needs a continuous (Box) action space; for discrete actions use muzero or dyna_q")
        self.learner = SACLearner(obs_space, action_space.shape[0], settings_from(SACSettings, cfg), self.device)

    def streams(self) -> list[Stream]:
        return [Stream("train", BatchSpec("transitions", self.cfg.batch_size), self.update)]

    def _prepare(self, obs: dict[str, np.ndarray], augment: bool) -> dict[str, torch.Tensor]:
        obs = obs_to_torch(obs, self.device)
        if "pixels" in obs and augment:
            obs["pixels"] = random_shift(obs["pixels"], self.cfg.augment_pad)
        return obs

    def act(self, obs, state, explore):
        action = self.learner.act(self._prepare(obs, augment=False), deterministic=not explore)
        return action.cpu().numpy(), state, {}  # [N, A]

    def update(self, batch) -> dict[str, float]:
        """Replayed transitions (numpy) -> tensors, pixels randomly shifted -> one learner step."""
        as_float = lambda x: torch.as_tensor(x, dtype=torch.float32, device=self.device)  # noqa: E731
        return self.learner.update(
            {
                "obs": self._prepare(batch["obs"], augment=True),
                "next_obs": self._prepare(batch["next_obs"], augment=True),
                "action": as_float(batch["action"]),  # [B, A]
                "reward": as_float(batch["reward"]),  # [B]
                "terminated": torch.as_tensor(batch["terminated"], device=self.device),  # [B]
            }
        )

    def state_dict(self) -> dict:
        return self.learner.training_state()

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_training_state(state)
