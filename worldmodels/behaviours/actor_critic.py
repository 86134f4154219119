"""The imagined actor-critic (DreamerV3's behaviour), for any differentiable model.

Dimension letters: N imagination starts, H horizon, A action dims, F features.

The model contract (duck-typed, an nn.Module):
    imagine(start, policy, horizon) -> features [H+1, N, F]   start's features first; ``policy(features [N, F])
                                                              -> action [N, A]`` is called once per step
    reward(features [..., F]) -> [...]                        predicted reward of reaching that state
    continue_prob(features [..., F]) -> [...]                 probability that the episode goes on there
    policy_features(features [..., F]) -> [..., F']           optional: the part the actor and critic see (a state
                                                              model's features also carry the predicted reward)

From every start, imagine H steps with the actor; the critic regresses lambda-returns (and a slow EMA copy of
itself); the actor maximises returns normalised by their 5-95 percentile range, by backpropagating through
the model's dynamics (continuous actions) or by REINFORCE (discrete), plus an entropy bonus. The model's
parameters are frozen during imagination, so actor and critic losses never change the model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.behaviours.returns import lambda_returns
from worldmodels.nets.distributions import TwoHot, straight_through_onehot, unimix_logits
from worldmodels.nets.ema import ema_update
from worldmodels.nets.freeze import frozen
from worldmodels.nets.guarded_step import guarded_step
from worldmodels.nets.mlp import layernorm_mlp
from worldmodels.nets.optim import adam
from worldmodels.nets.precision import autocast


@dataclass(frozen=True)
class ActorCriticSettings:
    """The behaviour's settings (an agent config fills them: ``config.settings_from``)."""

    hidden: int = 256
    layers: int = 2
    horizon: int = 15
    gamma: float = 0.99
    lam: float = 0.95
    entropy: float = 3e-4
    actor_lr: float = 8e-5
    critic_lr: float = 8e-5
    grad_clip: float = 100.0
    slow_critic_decay: float = 0.98
    return_norm_decay: float = 0.99
    unimix: float = 0.01


class Actor(nn.Module):
    """Continuous: Normal with tanh mean and std in [0.1, 1], clipped to [-1, 1]. Discrete: categorical."""

    def __init__(self, feat_dim: int, actions: int, discrete: bool, settings: ActorCriticSettings):
        super().__init__()
        self.discrete, self.unimix = discrete, settings.unimix
        out = actions if discrete else 2 * actions
        self.net = layernorm_mlp(feat_dim, settings.hidden, settings.layers, out)

    def forward(self, feat: torch.Tensor, explore: bool = True):
        """-> (action [N, A] (one-hot when discrete), log-probability [N], entropy [N])."""
        out = self.net(feat)
        if self.discrete:
            logits = unimix_logits(out, self.unimix)
            if explore:
                action = straight_through_onehot(logits)
            else:
                action = F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
            logp = (action.detach() * logits.log_softmax(-1)).sum(-1)
            entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)
            return action, logp, entropy
        mean, std = out.chunk(2, -1)
        mean, std = torch.tanh(mean), 0.9 * torch.sigmoid(std + 2.0) + 0.1
        dist = torch.distributions.Normal(mean, std)
        sample = dist.rsample() if explore else mean
        action = sample + (sample.clamp(-1, 1) - sample).detach()  # clip forward, keep the gradient
        return action, dist.log_prob(sample.detach()).sum(-1), dist.entropy().sum(-1)


def policy_features(model: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    """What the actor and critic see of the model's features (all of them unless the model says otherwise)."""
    view = getattr(model, "policy_features", None)
    return feats if view is None else view(feats)


class ImaginedActorCritic(nn.Module):
    """Actor, critic (two-hot symlog), slow critic, their optimizers and the return scale."""

    def __init__(
        self,
        feat_dim: int,
        actions: int,
        discrete: bool,
        settings: ActorCriticSettings,
        device: torch.device,
        bf16: bool = False,
    ):
        super().__init__()
        self.settings, self.discrete, self.device, self.bf16 = settings, discrete, device, bf16
        self.actor = Actor(feat_dim, actions, discrete, settings).to(device)
        self.critic = layernorm_mlp(feat_dim, settings.hidden, settings.layers, 255, zero_init=True).to(device)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.twohot = TwoHot(device=device)
        self.actor_opt = adam(self.actor.parameters(), lr=settings.actor_lr, eps=1e-5)
        self.critic_opt = adam(self.critic.parameters(), lr=settings.critic_lr, eps=1e-5)
        self.register_buffer("return_range", torch.ones((), device=device))  # EMA of P95 - P5 of returns

    def value(self, model: nn.Module, feats: torch.Tensor) -> torch.Tensor:
        """The critic's value of the model's features [..., F] -> [...]."""
        return self.twohot.decode(self.critic(policy_features(model, feats))).float()

    def imagine(self, model: nn.Module, starts):
        """Roll the actor through the model -> features [H+1, N, F], log-probabilities and entropies [H, N]."""
        logps, entropies = [], []

        def policy(feat: torch.Tensor) -> torch.Tensor:
            feat = policy_features(model, feat)
            action, logp, entropy = self.actor(feat.detach() if self.discrete else feat)
            logps.append(logp)
            entropies.append(entropy)
            return action

        feats = model.imagine(starts, policy, self.settings.horizon)
        return feats, torch.stack(logps), torch.stack(entropies)

    def update(self, model: nn.Module, starts, start_continue: torch.Tensor) -> dict[str, float]:
        """One actor and one critic step on H-step imaginations from ``starts`` (N states of the model);
        start_continue [N]: 0 where a start is itself terminal."""
        cfg = self.settings
        with frozen(model), frozen(self.critic):
            with autocast(self.bf16, self.device):
                feats, logp, entropy = self.imagine(model, starts)  # [H+1, N, F], [H, N], [H, N]
                reward = model.reward(feats[1:]).float()  # [H, N]
                discount = cfg.gamma * model.continue_prob(feats[1:]).float()  # [H, N] for steps 1..H
                value = self.twohot.decode(self.critic(policy_features(model, feats))).float()  # [H+1, N]
            feats, logp, entropy = feats.float(), logp.float(), entropy.float()
            returns = lambda_returns(reward, discount, value, cfg.lam)  # [H, N]
            # Weight of step k: probability that the imagined episode is still running there.
            alive = torch.cat([start_continue[None], discount[:-1] / cfg.gamma])
            weight = torch.cumprod(alive, 0).detach()  # [H, N]

            # -- actor: maximise normalised returns (+ entropy) ------------------------------------------------
            quantiles = torch.tensor([0.05, 0.95], device=self.device)
            low, high = torch.quantile(returns.detach().flatten(), quantiles)
            decay = cfg.return_norm_decay
            return_range = self.return_range * decay + (1 - decay) * (high - low)
            scale = torch.clamp(return_range, min=1.0)
            if self.discrete:
                advantage = ((returns - value[:-1]) / scale).detach()
                objective = logp * advantage
            else:
                objective = returns / scale  # gradients flow back through the model's dynamics
            actor_loss = -(weight * (objective + cfg.entropy * entropy)).mean()
        actor_norm = guarded_step(self.actor_opt, actor_loss, self.actor.parameters(), "actor", cfg.grad_clip)
        self.return_range.copy_(return_range)  # kept only once the actor step was taken

        # -- critic: lambda-returns, regularised towards the slow critic -------------------------------------------
        seen = policy_features(model, feats[:-1].detach())
        with autocast(self.bf16, self.device):
            logits = self.critic(seen).float()  # [H, N, bins]
            slow_value = self.twohot.decode(self.slow_critic(seen)).float()
        targets = self.twohot.loss(logits, returns.detach()) + self.twohot.loss(logits, slow_value)
        critic_loss = (weight * targets).mean()
        critic_norm = guarded_step(self.critic_opt, critic_loss, self.critic.parameters(), "critic", cfg.grad_clip)
        ema_update(self.slow_critic, self.critic, 1 - cfg.slow_critic_decay)
        return {
            "loss/actor": actor_loss.item(),
            "loss/critic": critic_loss.item(),
            "train/imagined_return": returns.mean().item(),
            "train/imagined_reward": reward.mean().item(),
            "train/return_range": self.return_range.item(),
            "train/actor_entropy": entropy.mean().item(),
            "train/actor_grad_norm": actor_norm.item(),
            "train/critic_grad_norm": critic_norm.item(),
        }

    def training_state(self) -> dict:
        """Networks, return scale and optimizers, for checkpoints."""
        return {
            "nets": self.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
        }

    def load_training_state(self, state: dict) -> None:
        self.load_state_dict(state["nets"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
