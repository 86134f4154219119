"""Dreamer: the RSSM world model plus an actor-critic trained on imagined latent rollouts (DreamerV3 style).

Dimension letters: B batch, T time, N = B * T imagination starts, H horizon, A action dims, F features.

Behaviour: from every posterior state of the replayed batch, imagine H steps with the actor; rewards and
continues come from the world model's heads, values from the critic (two-hot symlog). The critic regresses
lambda-returns (and a slow EMA copy of itself); the actor maximises returns normalised by their 5-95
percentile range, by backpropagating through the dynamics (continuous actions) or by REINFORCE (discrete),
plus an entropy bonus. World-model parameters are frozen during imagination, so actor and critic losses
never change the world model.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.agents.base import Agent, BatchSpec, obs_to_torch, register
from worldmodels.config import AgentConfig
from worldmodels.envs import action_dim, is_discrete
from worldmodels.models.rssm import RSSMState, WorldModel, head
from worldmodels.nets.distributions import TwoHot, straight_through_onehot, unimix_logits
from worldmodels.nets.precision import autocast, use_bf16


@dataclass
class DreamerConfig(AgentConfig):
    name: str = "dreamer"
    batch_size: int = 16
    """Sequences per update."""
    seq_len: int = 64
    """Steps per sequence."""
    depth: int = 16
    """Conv channels multiplier (encoder d, 2d, 4d, 8d)."""
    deter: int = 256
    """GRU state size."""
    stoch: int = 16
    """Discrete latent variables."""
    classes: int = 16
    """Classes per latent variable."""
    hidden: int = 256
    """Width of MLP layers (RSSM, heads, actor, critic)."""
    head_layers: int = 2
    """Hidden layers of the reward, continue, actor and critic MLPs."""
    free_nats: float = 1.0
    """Free bits: KL terms below this many nats are not penalised."""
    model_lr: float = 3e-4
    """World model learning rate."""
    actor_lr: float = 8e-5
    """Actor learning rate."""
    critic_lr: float = 8e-5
    """Critic learning rate."""
    grad_clip: float = 100.0
    """Gradient norm clip for every optimizer."""
    horizon: int = 15
    """Imagination horizon."""
    gamma: float = 0.99
    """Discount per agent step."""
    lam: float = 0.95
    """Lambda of the lambda-returns."""
    entropy: float = 3e-4
    """Actor entropy bonus (on normalised returns)."""
    slow_critic_decay: float = 0.98
    """EMA decay of the slow critic."""
    return_norm_decay: float = 0.99
    """EMA decay of the return percentile range."""
    imagine_starts: int = 0
    """Imagination starts per update (0: every posterior state of the batch, B * T)."""
    unimix: float = 0.01
    """Uniform mix of latent and discrete-action categoricals."""
    bf16: bool | str = "auto"
    """bfloat16 autocast for world-model and imagination compute (fp32 parameters): true, false or auto (where
    the device computes bfloat16 natively: CUDA, CPUs with AMX or AVX512-BF16; 1.7x faster updates with AMX)."""


class Actor(nn.Module):
    """Continuous: Normal with tanh mean and std in [0.1, 1], clipped to [-1, 1]. Discrete: categorical."""

    def __init__(self, feat_dim: int, actions: int, discrete: bool, cfg: DreamerConfig):
        super().__init__()
        self.discrete, self.unimix = discrete, cfg.unimix
        self.net = head(feat_dim, cfg.hidden, cfg.head_layers, actions if discrete else 2 * actions)

    def forward(self, feat: torch.Tensor, explore: bool = True):
        """-> (action [N, A] (one-hot when discrete), log-probability [N], entropy [N])."""
        out = self.net(feat)
        if self.discrete:
            logits = unimix_logits(out, self.unimix)
            action = straight_through_onehot(logits) if explore else F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
            logp = (action.detach() * logits.log_softmax(-1)).sum(-1)
            entropy = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)
            return action, logp, entropy
        mean, std = out.chunk(2, -1)
        mean, std = torch.tanh(mean), 0.9 * torch.sigmoid(std + 2.0) + 0.1
        dist = torch.distributions.Normal(mean, std)
        sample = dist.rsample() if explore else mean
        action = sample + (sample.clamp(-1, 1) - sample).detach()  # clip forward, keep the gradient
        return action, dist.log_prob(sample.detach()).sum(-1), dist.entropy().sum(-1)


def lambda_returns(reward: torch.Tensor, discount: torch.Tensor, value: torch.Tensor, lam: float) -> torch.Tensor:
    """R_k = r_{k+1} + d_{k+1} ((1 - lam) v_{k+1} + lam R_{k+1}), R_H = v_H.

    reward, discount: [H, N] for steps 1..H; value: [H + 1, N] for steps 0..H. -> returns [H, N] for 0..H-1.
    """
    returns, last = [], value[-1]
    for k in reversed(range(reward.shape[0])):
        last = reward[k] + discount[k] * ((1 - lam) * value[k + 1] + lam * last)
        returns.append(last)
    return torch.stack(returns[::-1])


@contextmanager
def frozen(module: nn.Module):
    """Parameters take no gradient inside the block (activations still pass gradients through)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


@register("dreamer", DreamerConfig)
class DreamerAgent(Agent):
    def __init__(self, cfg: DreamerConfig, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        self.discrete = is_discrete(action_space)
        self.actions = action_dim(action_space)
        self.wm = WorldModel(obs_space, self.actions, cfg.depth, cfg.deter, cfg.stoch, cfg.classes, cfg.hidden,
                             cfg.head_layers, cfg.unimix, cfg.free_nats).to(self.device)
        self.actor = Actor(self.wm.feat_dim, self.actions, self.discrete, cfg).to(self.device)
        self.critic = head(self.wm.feat_dim, cfg.hidden, cfg.head_layers, 255, zero_init=True).to(self.device)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.twohot = TwoHot(device=self.device)
        self.wm_opt = torch.optim.Adam(self.wm.parameters(), lr=cfg.model_lr, eps=1e-8)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, eps=1e-5)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, eps=1e-5)
        self.bf16 = use_bf16(cfg.bf16, self.device)
        self.return_range = torch.ones((), device=self.device)  # EMA of P95 - P5 of imagined returns

    def batch_spec(self) -> BatchSpec:
        return BatchSpec("sequences", self.cfg.batch_size, self.cfg.seq_len, cross_episodes=True)

    # -- acting ---------------------------------------------------------------------------------------------
    def _action_input(self, action: torch.Tensor) -> torch.Tensor:
        """Replay/env actions -> what the RSSM consumes: one-hot for discrete, as-is for continuous."""
        return F.one_hot(action.long(), self.actions).float() if self.discrete else action.float()

    @torch.no_grad()
    def act(self, obs, state, explore):
        tensors = obs_to_torch(obs, self.device)
        is_first = torch.as_tensor(obs["is_first"], device=self.device)
        n = is_first.shape[0]
        if state is None:
            state = (self.wm.initial(n), torch.zeros(n, self.actions, device=self.device))
        latent, prev_action = state
        embed = self.wm.post_e(self.wm.embed(tensors))
        latent, _ = self.wm.obs_step(latent, prev_action, embed, is_first)
        action, _, _ = self.actor(latent.features(), explore=explore)  # [N, A]
        out = action.argmax(-1).cpu().numpy() if self.discrete else action.cpu().numpy()
        return out, (latent, action)

    # -- learning -------------------------------------------------------------------------------------------
    def _to_torch(self, batch: dict) -> dict:
        out = {"obs": obs_to_torch(batch, self.device)}
        out["action"] = self._action_input(torch.as_tensor(batch["action"], device=self.device))  # [B, T, A]
        for key in ("reward", "is_first", "is_terminal"):
            out[key] = torch.as_tensor(batch[key], device=self.device)
        out["reward"] = out["reward"].float()
        return out

    def _autocast(self):
        return autocast(self.bf16, self.device)

    def update(self, batch: dict) -> dict[str, float]:
        data = self._to_torch(batch)
        with self._autocast():
            wm_loss, states, metrics = self.wm.loss(data["obs"], data["action"], data["reward"], data["is_first"], data["is_terminal"])
        self.wm_opt.zero_grad(set_to_none=True)
        wm_loss.backward()
        metrics["train/wm_grad_norm"] = nn.utils.clip_grad_norm_(self.wm.parameters(), self.cfg.grad_clip).item()
        self.wm_opt.step()
        starts = states.map(lambda x: x.detach().float().flatten(0, 1))  # [N, ...]
        continues = 1.0 - data["is_terminal"].float().flatten()  # [N]
        if self.cfg.imagine_starts and self.cfg.imagine_starts < continues.shape[0]:
            pick = torch.randperm(continues.shape[0], device=self.device)[: self.cfg.imagine_starts]
            starts, continues = starts.map(lambda x: x[pick]), continues[pick]
        metrics.update(self.behave(starts, continues))
        return metrics

    def imagine(self, starts: RSSMState):
        """Roll the actor through the frozen world model: -> feats [H+1, N, F], logp, entropy [H, N]."""
        feats, logps, entropies, state = [starts.features()], [], [], starts
        for _ in range(self.cfg.horizon):
            action, logp, entropy = self.actor(feats[-1].detach() if self.discrete else feats[-1])
            state, _ = self.wm.img_step(state, action)
            feats.append(state.features())
            logps.append(logp)
            entropies.append(entropy)
        return torch.stack(feats), torch.stack(logps), torch.stack(entropies)

    def behave(self, starts: RSSMState, start_continue: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        with frozen(self.wm), frozen(self.critic):
            with self._autocast():
                feats, logp, entropy = self.imagine(starts)  # [H+1, N, F], [H, N], [H, N]
                reward = self.wm.reward(feats[1:]).float()  # [H, N]
                discount = cfg.gamma * self.wm.continue_prob(feats[1:]).float()  # [H, N] for steps 1..H
                value = self.twohot.decode(self.critic(feats)).float()  # [H+1, N]
            feats, logp, entropy = feats.float(), logp.float(), entropy.float()
            returns = lambda_returns(reward, discount, value, cfg.lam)  # [H, N]
            # Weight of step k: probability that the imagined episode is still running there.
            weight = torch.cumprod(torch.cat([start_continue[None], discount[:-1] / cfg.gamma]), 0).detach()  # [H, N]

            # -- actor: maximise normalised returns (+ entropy) ------------------------------------------------
            low, high = torch.quantile(returns.detach().flatten(), torch.tensor([0.05, 0.95], device=self.device))
            self.return_range.mul_(cfg.return_norm_decay).add_((1 - cfg.return_norm_decay) * (high - low))
            scale = torch.clamp(self.return_range, min=1.0)
            if self.discrete:
                advantage = ((returns - value[:-1]) / scale).detach()
                objective = logp * advantage
            else:
                objective = returns / scale  # gradients flow back through the world model's dynamics
            actor_loss = -(weight * (objective + cfg.entropy * entropy)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        actor_norm = nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.grad_clip)
        self.actor_opt.step()

        # -- critic: lambda-returns, regularised towards the slow critic -------------------------------------------
        with self._autocast():
            logits = self.critic(feats[:-1].detach()).float()  # [H, N, bins]
            slow_value = self.twohot.decode(self.slow_critic(feats[:-1].detach())).float()
        critic_loss = (weight * (self.twohot.loss(logits, returns.detach()) + self.twohot.loss(logits, slow_value))).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_norm = nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
        self.critic_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(self.slow_critic.parameters()), list(self.critic.parameters()), 1 - cfg.slow_critic_decay)
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

    @torch.no_grad()
    def report(self, batch: dict) -> dict | None:
        if not self.wm.has_pixels:
            return None
        from worldmodels.run.report import imagination_report, report_figure

        data = self._to_torch(batch)
        report = imagination_report(self.wm, data["obs"], data["action"], data["reward"], data["is_first"], context=min(5, data["reward"].shape[1] - 1))
        return {"videos": {"report/openloop": report.video}, "images": {"report/openloop_errors": report_figure(report)}, "scalars": report.scalars()}

    # -- checkpointing --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "wm": self.wm.state_dict(), "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "slow_critic": self.slow_critic.state_dict(), "wm_opt": self.wm_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "return_range": self.return_range.cpu(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("wm", "actor", "critic", "slow_critic", "wm_opt", "actor_opt", "critic_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.return_range.copy_(state["return_range"])
