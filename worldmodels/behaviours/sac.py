"""SAC's learner, for transition batches from any source (the replay, a model's rollouts, or a mix).

Twin Q (one batched ensemble), target networks, automatic entropy tuning, tanh-squashed Gaussian policy.
Pixels go through a conv encoder trained by the critic (DrQ); state goes straight to the MLPs.

Dimension letters: B batch, A action dims, F features, Q=2 critics.

A transition batch is a dict of tensors: obs and next_obs (dicts: pixels [B, C, H, W] uint8 and/or state
[B, D]), action [B, A], reward [B], terminated [B].
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.nets.actor import TanhGaussianActor
from worldmodels.nets.conv import ConvEncoder
from worldmodels.nets.ema import ema_update
from worldmodels.nets.freeze import frozen
from worldmodels.nets.guarded_step import guarded_step
from worldmodels.nets.mlp import EnsembleMLP
from worldmodels.nets.optim import adam


@dataclass(frozen=True)
class SACSettings:
    """The learner's settings (an agent config fills them: ``config.settings_from``)."""

    hidden: tuple[int, ...] = (256, 256)
    gamma: float = 0.99
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    init_alpha: float = 0.1
    target_entropy: float | None = None
    log_std_bounds: tuple[float, ...] = (-5.0, 2.0)
    encoder_channels: tuple[int, ...] = (32, 64, 128, 256)
    feature_dim: int = 50


class Encoder(nn.Module):
    """Observation dict -> features [B, F]: conv + LayerNorm projection for pixels, identity for state."""

    def __init__(self, obs_space, settings: SACSettings):
        super().__init__()
        self.conv = None
        self.out_dim = 0
        if "pixels" in obs_space.spaces:
            conv = ConvEncoder(obs_space["pixels"].shape[-1], settings.encoder_channels)
            width = settings.feature_dim
            self.conv = nn.Sequential(conv, nn.Linear(conv.out_dim, width), nn.LayerNorm(width), nn.Tanh())
            self.out_dim += width
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
    def __init__(self, obs_space, action_dim: int, settings: SACSettings):
        super().__init__()
        self.encoder = Encoder(obs_space, settings)
        self.q = EnsembleMLP(2, self.encoder.out_dim + action_dim, settings.hidden, 1)

    def values(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.q(torch.cat([features, action], dim=-1)).squeeze(-1)  # [Q, B]


class SACLearner(nn.Module):
    """Critic (with its encoder), target critic, actor, temperature and their optimizers."""

    def __init__(self, obs_space, action_dim: int, settings: SACSettings, device: torch.device):
        super().__init__()
        self.settings = settings
        self.critic = Critic(obs_space, action_dim, settings).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor = TanhGaussianActor(
            self.critic.encoder.out_dim, action_dim, settings.hidden, settings.log_std_bounds
        ).to(device)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(settings.init_alpha), device=device))
        entropy = settings.target_entropy
        self.target_entropy = -float(action_dim) if entropy is None else entropy
        self.critic_opt = adam(self.critic.parameters(), lr=settings.critic_lr)
        self.actor_opt = adam(self.actor.parameters(), lr=settings.actor_lr)
        self.alpha_opt = adam([self.log_alpha], lr=settings.alpha_lr)

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        """obs dict of [N, ...] tensors -> actions [N, A] in (-1, 1)."""
        return self.actor(self.critic.encoder(obs), deterministic=deterministic)[0]

    def update(self, batch: dict) -> dict[str, float]:
        """One critic, actor and temperature step on a transition batch (see the module docstring)."""
        cfg = self.settings
        obs, next_obs, action = batch["obs"], batch["next_obs"], batch["action"]
        not_done = 1.0 - batch["terminated"].float()  # [B]
        alpha = self.log_alpha.exp().detach()

        # Critic: soft Bellman target from the target critic and the current policy.
        with torch.no_grad():
            next_action, next_logp = self.actor(self.critic.encoder(next_obs))
            next_q = self.critic_target.values(self.critic_target.encoder(next_obs), next_action).min(0).values
            target = batch["reward"] + cfg.gamma * not_done * (next_q - alpha * next_logp)  # [B]
        features = self.critic.encoder(obs)  # [B, F]
        q = self.critic.values(features, action)  # [Q, B]
        critic_loss = F.mse_loss(q, target.expand_as(q)) * q.shape[0]
        guarded_step(self.critic_opt, critic_loss, self.critic.parameters(), "critic")

        # Actor: maximise min-Q plus entropy, on features the actor cannot change; the critic's weights take no
        # gradient (none is computed for them).
        features = features.detach()
        new_action, logp = self.actor(features)
        with frozen(self.critic.q):
            actor_q = self.critic.values(features, new_action).min(0).values
        actor_loss = (alpha * logp - actor_q).mean()
        guarded_step(self.actor_opt, actor_loss, self.actor.parameters(), "actor")

        # Temperature: keep the policy's entropy near the target.
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        guarded_step(self.alpha_opt, alpha_loss, [self.log_alpha], "temperature (alpha)")

        ema_update(self.critic_target, self.critic, cfg.tau)
        return {
            "loss/critic": critic_loss.item(),
            "loss/actor": actor_loss.item(),
            "loss/alpha": alpha_loss.item(),
            "train/alpha": alpha.item(),
            "train/q_mean": q.mean().item(),
            "train/entropy": -logp.mean().item(),
        }

    def training_state(self) -> dict:
        """Networks, temperature and optimizers, for checkpoints."""
        return {
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor": self.actor.state_dict(),
            "log_alpha": self.log_alpha.detach().cpu(),
            "critic_opt": self.critic_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
        }

    def load_training_state(self, state: dict) -> None:
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor.load_state_dict(state["actor"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
