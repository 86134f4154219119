"""Soft actor-critic: twin Q (one batched ensemble), target networks, automatic entropy tuning,
tanh-squashed Gaussian policy. Pixels go through a conv encoder trained by the critic, with DrQ's
random-shift augmentation; state goes straight to the MLPs.

Dimension letters: B batch, A action dims, F features, Q=2 critics.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.agents.base import Agent, BatchSpec, obs_to_torch, register
from worldmodels.config import AgentConfig
from worldmodels.envs import is_discrete
from worldmodels.nets.conv import ConvEncoder, random_shift
from worldmodels.nets.mlp import EnsembleMLP, mlp


@dataclass
class SACConfig(AgentConfig):
    name: str = "sac"
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor and of each critic."""
    batch_size: int = 256
    """Transitions per update."""
    gamma: float = 0.99
    """Discount per agent step."""
    tau: float = 0.005
    """Target network soft-update rate."""
    actor_lr: float = 3e-4
    """Actor learning rate."""
    critic_lr: float = 3e-4
    """Critic (and pixel encoder) learning rate."""
    alpha_lr: float = 3e-4
    """Entropy temperature learning rate."""
    init_alpha: float = 0.1
    """Initial entropy temperature."""
    target_entropy: float | None = None
    """Entropy target; None: minus the number of action dimensions."""
    log_std_bounds: tuple[float, ...] = (-5.0, 2.0)
    """Bounds of the policy's log standard deviation."""
    encoder_channels: tuple[int, ...] = (32, 64, 128, 256)
    """Conv encoder channels (pixel observations only)."""
    feature_dim: int = 50
    """Width of the encoder's projection (pixel observations only)."""
    augment_pad: int = 4
    """Random-shift padding in pixels for augmentation (0: none)."""


class Encoder(nn.Module):
    """Observation dict -> features [B, F]: conv + LayerNorm projection for pixels, identity for state."""

    def __init__(self, obs_space, cfg: SACConfig):
        super().__init__()
        self.conv = None
        self.out_dim = 0
        if "pixels" in obs_space.spaces:
            conv = ConvEncoder(obs_space["pixels"].shape[-1], cfg.encoder_channels)
            self.conv = nn.Sequential(conv, nn.Linear(conv.out_dim, cfg.feature_dim), nn.LayerNorm(cfg.feature_dim), nn.Tanh())
            self.out_dim += cfg.feature_dim
        if "state" in obs_space.spaces:
            self.out_dim += obs_space["state"].shape[0]

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if self.conv is not None:
            parts.append(self.conv(obs["pixels"]))
        if "state" in obs:
            parts.append(obs["state"])
        return torch.cat(parts, dim=-1)  # [B, F]


class Critic(nn.Module):
    def __init__(self, obs_space, action_dim: int, cfg: SACConfig):
        super().__init__()
        self.encoder = Encoder(obs_space, cfg)
        self.q = EnsembleMLP(2, self.encoder.out_dim + action_dim, cfg.hidden, 1)

    def values(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.q(torch.cat([features, action], dim=-1)).squeeze(-1)  # [Q, B]


class TanhGaussianActor(nn.Module):
    def __init__(self, in_dim: int, action_dim: int, cfg: SACConfig):
        super().__init__()
        self.net = mlp(in_dim, cfg.hidden, 2 * action_dim)
        self.log_std_min, self.log_std_max = cfg.log_std_bounds

    def forward(self, features: torch.Tensor, deterministic: bool = False):
        """-> action [B, A] in (-1, 1), log-probability [B]."""
        mean, log_std = self.net(features).chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(log_std) + 1)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[0], device=mean.device)
        std = log_std.exp()
        pre_tanh = mean + std * torch.randn_like(mean)
        gaussian_logp = (-0.5 * ((pre_tanh - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log |d tanh(u) / du| = 2 (log 2 - u - softplus(-2u)), the numerically stable form.
        squash = (2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(-1)
        return torch.tanh(pre_tanh), gaussian_logp - squash


@register("sac", SACConfig)
class SACAgent(Agent):
    def __init__(self, cfg: SACConfig, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        if is_discrete(action_space):
            raise ValueError("sac needs a continuous (Box) action space; for discrete actions use muzero or dyna_q")
        action_dim = action_space.shape[0]
        self.critic = Critic(obs_space, action_dim, cfg).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor = TanhGaussianActor(self.critic.encoder.out_dim, action_dim, cfg).to(self.device)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=self.device, requires_grad=True)
        self.target_entropy = -float(action_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)

    def batch_spec(self) -> BatchSpec:
        return BatchSpec("transitions", self.cfg.batch_size)

    def _prepare(self, obs: dict[str, np.ndarray], augment: bool) -> dict[str, torch.Tensor]:
        obs = obs_to_torch(obs, self.device)
        if "pixels" in obs and augment:
            obs["pixels"] = random_shift(obs["pixels"], self.cfg.augment_pad)
        return obs

    @torch.no_grad()
    def act(self, obs, state, explore):
        features = self.critic.encoder(self._prepare(obs, augment=False))
        action, _ = self.actor(features, deterministic=not explore)
        return action.cpu().numpy(), state  # [N, A]

    def update(self, batch) -> dict[str, float]:
        obs = self._prepare(batch["obs"], augment=True)
        next_obs = self._prepare(batch["next_obs"], augment=True)
        action = torch.as_tensor(batch["action"], dtype=torch.float32, device=self.device)  # [B, A]
        reward = torch.as_tensor(batch["reward"], dtype=torch.float32, device=self.device)  # [B]
        not_done = 1.0 - torch.as_tensor(batch["terminated"], dtype=torch.float32, device=self.device)  # [B]
        alpha = self.log_alpha.exp().detach()

        # Critic: soft Bellman target from the target critic and the current policy.
        with torch.no_grad():
            next_action, next_logp = self.actor(self.critic.encoder(next_obs))
            next_q = self.critic_target.values(self.critic_target.encoder(next_obs), next_action).min(0).values
            target = reward + self.cfg.gamma * not_done * (next_q - alpha * next_logp)  # [B]
        features = self.critic.encoder(obs)  # [B, F]
        q = self.critic.values(features, action)  # [Q, B]
        critic_loss = F.mse_loss(q, target.expand_as(q)) * q.shape[0]
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        # Actor: maximise min-Q plus entropy, on features the actor cannot change.
        features = features.detach()
        new_action, logp = self.actor(features)
        actor_q = self.critic.values(features, new_action).min(0).values
        actor_loss = (alpha * logp - actor_q).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        # Temperature: keep the policy's entropy near the target.
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()

        with torch.no_grad():
            online, target_params = list(self.critic.parameters()), list(self.critic_target.parameters())
            torch._foreach_lerp_(target_params, online, self.cfg.tau)
        return {
            "loss/critic": critic_loss.item(),
            "loss/actor": actor_loss.item(),
            "loss/alpha": alpha_loss.item(),
            "train/alpha": alpha.item(),
            "train/q_mean": q.mean().item(),
            "train/entropy": -logp.mean().item(),
        }

    def state_dict(self) -> dict:
        return {
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor": self.actor.state_dict(),
            "log_alpha": self.log_alpha.detach().cpu(),
            "critic_opt": self.critic_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor.load_state_dict(state["actor"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
