"""TD-MPC's world model (TD-MPC2 style): no decoder, only what control needs.

Dimension letters: B batch, H horizon, M any flattened batch, L latent size, A action dims, K Q heads,
C support bins, F stacked frames.

    z_t      = h(o_t)                 encoder (conv on F stacked frames, or an MLP on state), SimNorm latent
    z_{t+1}  = d(z_t, a_{t+1})        latent dynamics, SimNorm latent
    r_{t+1} ~ R(z_t, a_{t+1})         reward, two-hot over symlog bins
    Q_k(z_t, a_{t+1}), k = 1..K       an ensemble of action values (two-hot), and an EMA copy as target
    a ~ pi(z)                         policy prior: tanh-squashed Gaussian (SAC's actor), trained apart

Latents are simplicially normalised (SimNorm): a softmax over each group of ``simnorm_group`` entries, so every
group is a point of a simplex. That bounds the latent (no drift or collapse of its scale under the consistency
loss) and biases it towards sparse, nearly one-hot groups. Actions follow the replay layout: a_{t+1} is the
action taken in o_t (it "led into" o_{t+1}).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from worldmodels.nets.actor import TanhGaussianActor
from worldmodels.nets.conv import ConvEncoder
from worldmodels.nets.distributions import TwoHot
from worldmodels.nets.ema import ema_update
from worldmodels.nets.freeze import frozen
from worldmodels.nets.mlp import EnsembleMLP, mlp

ACTIVATIONS = {"mish": nn.Mish, "silu": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU}


def simnorm(x: torch.Tensor, group: int) -> torch.Tensor:
    """Softmax over consecutive groups of ``group`` entries of the last axis: [..., L] -> [..., L].
    Written out: torch's softmax over a last axis of 8 is about 6x slower on a CPU (one thread, 1536 x 128)."""
    assert x.shape[-1] % group == 0, (x.shape, group)
    groups = x.unflatten(-1, (-1, group))  # [..., L / group, group]
    e = (groups - groups.amax(-1, keepdim=True)).exp()
    return (e / e.sum(-1, keepdim=True)).flatten(-2)


class SimNorm(nn.Module):
    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return simnorm(x, self.group)


def normed_mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int | None, activation=nn.Mish) -> nn.Sequential:
    """TD-MPC2's MLP: Linear -> LayerNorm -> activation per hidden layer, then a linear output (None: none)."""
    return mlp(in_dim, hidden, out_dim, activation=activation, layer_norm=True)


def latent_head(in_dim: int, latent: int, group: int) -> nn.Sequential:
    """Features -> SimNorm latent: Linear -> LayerNorm -> SimNorm."""
    return nn.Sequential(nn.Linear(in_dim, latent), nn.LayerNorm(latent), SimNorm(group))


class TDMPCModel(nn.Module):
    def __init__(
        self,
        obs_space,
        action_dim: int,
        latent: int = 512,
        hidden: int = 512,
        encoder_hidden: int = 256,
        simnorm_group: int = 8,
        depth: int = 16,
        frames: int = 1,
        bins: int = 101,
        q_heads: int = 5,
        log_std_bounds: tuple[float, float] = (-10.0, 2.0),
        activation: str = "mish",
    ):
        """``activation``: of the hidden layers (mish, silu, elu or relu); Mish is TD-MPC2's, and the slowest on
        a CPU (about 40% of a small model's planning time on one thread, against a few % for ReLU)."""
        super().__init__()
        if latent % simnorm_group:
            raise ValueError(f"agent.latent ({latent}) must be a multiple of agent.simnorm_group ({simnorm_group})")
        if activation not in ACTIVATIONS:
            raise ValueError(f"agent.activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        act = ACTIVATIONS[activation]
        self.action_dim, self.latent_dim, self.group, self.q_heads = action_dim, latent, simnorm_group, q_heads
        self.has_pixels = "pixels" in obs_space.spaces
        self.state_dim = obs_space["state"].shape[0] if "state" in obs_space.spaces else 0
        features = 0
        if self.has_pixels:
            channels, size = obs_space["pixels"].shape[0] * frames, obs_space["pixels"].shape[-1]
            self.conv = ConvEncoder(size, (depth, 2 * depth, 4 * depth, 8 * depth), in_channels=channels)
            features += self.conv.out_dim
        if self.state_dim:
            self.state_net = normed_mlp(self.state_dim, (encoder_hidden,), None, act)
            features += encoder_hidden
        self.encoder_head = latent_head(features, latent, simnorm_group)
        self.dynamics = nn.Sequential(normed_mlp(latent + action_dim, (hidden, hidden), None, act))
        self.dynamics.append(latent_head(hidden, latent, simnorm_group))
        self.reward_net = normed_mlp(latent + action_dim, (hidden, hidden), bins, act)
        self.qs = EnsembleMLP(q_heads, latent + action_dim, (hidden, hidden), bins, act, layer_norm=True)
        for layer in (self.reward_net[-1], self.qs.out):  # rewards and values start at 0
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.target_qs = copy.deepcopy(self.qs).requires_grad_(False)
        self.policy = TanhGaussianActor(latent, action_dim, (hidden, hidden), tuple(log_std_bounds))
        self.register_buffer("q_scale", torch.ones(()))  # running 5-95 percentile range of Q (>= 1)
        self.support = TwoHot(bins, -10.0, 10.0)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.support.to(self.q_scale.device)
        return out

    def world_parameters(self) -> list[nn.Parameter]:
        """Everything the model loss trains: encoder, dynamics, reward and Q heads (not the policy, not targets)."""
        skip = {id(p) for p in self.policy.parameters()} | {id(p) for p in self.target_qs.parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    def encoder_parameters(self) -> list[nn.Parameter]:
        modules = [self.encoder_head] + [getattr(self, n) for n in ("conv", "state_net") if hasattr(self, n)]
        return [p for m in modules for p in m.parameters()]

    # -- the model's functions ------------------------------------------------------------------------------
    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """obs dict of [M, ...] tensors (pixels [M, F x 3, H, W] uint8, state [M, S]) -> latents [M, L]."""
        parts = []
        if self.has_pixels:
            parts.append(self.conv(obs["pixels"]))
        if self.state_dim:
            parts.append(self.state_net(obs["state"].float()))
        return self.encoder_head(torch.cat(parts, -1))

    def next(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """z [..., L], action [..., A] -> next latent [..., L]."""
        return self.dynamics(torch.cat([z, action], -1))

    def reward_logits(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.reward_net(torch.cat([z, action], -1))  # [..., C]

    def q_logits(self, z: torch.Tensor, action: torch.Tensor, members=None, target: bool = False) -> torch.Tensor:
        """z [..., L], action [..., A] -> logits [K, ..., C] of every head (or of ``members`` [E]: [E, ..., C])."""
        x = torch.cat([z, action], -1)
        net = self.target_qs if target else self.qs
        return net(x.reshape(-1, x.shape[-1]), members).unflatten(1, x.shape[:-1])

    def q_value(self, z, action, reduce: str = "min", target: bool = False, generator=None) -> torch.Tensor:
        """Two heads drawn at random, decoded and reduced ('min': TD targets; 'avg': policy, planning) -> [...]."""
        members = torch.randperm(self.q_heads, generator=generator, device=generator.device if generator else None)
        values = self.support.decode(self.q_logits(z, action, members[:2].to(z.device), target))  # [2, ...]
        return values.min(0).values if reduce == "min" else values.mean(0)

    def rollout(self, start: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The planners' contract: start [N, L], actions [N, H, A] -> (latents [N, H, L], rewards [N, H])."""
        latents, rewards, z = [], [], start
        for k in range(actions.shape[1]):  # sequential by nature; batched over N
            rewards.append(self.support.decode(self.reward_logits(z, actions[:, k])))
            z = self.next(z, actions[:, k])
            latents.append(z)
        return torch.stack(latents, 1), torch.stack(rewards, 1)

    def value(self, z: torch.Tensor, generator=None, deterministic: bool = False) -> torch.Tensor:
        """Planning's terminal value: the mean of two random Q heads at a policy sample, z [..., L] -> [...];
        ``deterministic`` (reports): the mean of every head at the policy's mean action."""
        action, _ = self.policy(z.reshape(-1, z.shape[-1]), deterministic=deterministic)
        action = action.view(*z.shape[:-1], -1)
        if deterministic:
            return self.support.decode(self.q_logits(z, action)).mean(0)
        return self.q_value(z, action, "avg", generator=generator)

    def policy_sequences(self, z: torch.Tensor, samples: int, horizon: int) -> torch.Tensor:
        """Sequences of the policy prior rolled through the dynamics: z [B, L] -> actions [B, P, H, A]."""
        state = z.repeat_interleave(samples, 0)  # [B * P, L]
        actions = []
        for k in range(horizon):
            action, _ = self.policy(state)
            actions.append(action)
            if k < horizon - 1:
                state = self.next(state, action)
        return torch.stack(actions, 1).view(z.shape[0], samples, horizon, -1)

    def update_targets(self, tau: float) -> None:
        ema_update(self.target_qs, self.qs, tau)

    # -- losses ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def td_targets(self, next_z, reward, terminal, discount: float, generator=None) -> torch.Tensor:
        """r + discount * (1 - terminal) * min of two random target Qs at a policy action in the next latent.
        next_z [B, H, L], reward and terminal [B, H] -> [B, H]."""
        action, _ = self.policy(next_z.reshape(-1, next_z.shape[-1]))
        action = action.view(*next_z.shape[:-1], -1)
        bootstrap = self.q_value(next_z, action, "min", target=True, generator=generator)
        return reward + discount * (1.0 - terminal.float()) * bootstrap

    def loss(self, z0, next_z, actions, rewards, td_targets, valid, rho: float, coefs: dict[str, float]):
        """The model loss over H replayed steps, each weighted by rho^t.

        z0 [B, L] (encoded with gradient), next_z [B, H, L] (encoded without: the consistency targets),
        actions [B, H, A] (a_{t+1}), rewards and td_targets [B, H], valid [B, H] (transition t stays in one
        episode). -> (scalar loss, latents [B, H + 1, L] the rollout went through, metrics)."""
        B, H = rewards.shape
        assert z0.shape[0] == B and next_z.shape[:2] == (B, H) and actions.shape[:2] == (B, H), (z0.shape, next_z.shape)
        weight = rho ** torch.arange(H, device=z0.device, dtype=z0.dtype) * valid.float() / (B * H)  # [B, H]

        # Latent rollout from the first observation with the replayed actions.
        latents = [z0]
        for t in range(H):
            latents.append(self.next(latents[-1], actions[:, t]))
        zs = torch.stack(latents, 1)  # [B, H + 1, L]
        inputs = zs[:, :-1]  # [B, H, L] the latents the actions were taken in

        # Consistency: each predicted latent against the encoded real one (stop-gradient on the target).
        consistency = (zs[:, 1:] - next_z.detach()).square().mean(-1)  # [B, H]
        # Reward: two-hot cross-entropy of R(z_t, a_{t+1}) against r_{t+1}.
        reward_ce = self.support.loss(self.reward_logits(inputs, actions), rewards)  # [B, H]
        # Value: every Q head against the TD target, averaged over heads.
        value_ce = self.support.loss(self.q_logits(inputs, actions), td_targets).mean(0)  # [B, H]

        losses = {
            "consistency": (weight * consistency).sum(),
            "reward": (weight * reward_ce).sum(),
            "value": (weight * value_ce).sum(),
        }
        total = sum(coefs[name] * value for name, value in losses.items())
        metrics = {f"loss/{name}": value.item() for name, value in losses.items()}
        return total, zs, metrics

    def policy_loss(self, zs, valid, rho: float, entropy_coef: float, scale_rate: float, generator=None):
        """Policy prior: maximise Q (mean of two random heads, scaled by its running percentile range) plus
        entropy on latents the model loss rolled through, zs [B, T, L] (detached here), valid [B, T] ->
        (scalar loss, metrics). The Q heads are frozen: this loss reaches only the policy."""
        B, T = valid.shape
        zs = zs.detach()
        action, logp = self.policy(zs.reshape(B * T, -1))
        with frozen(self.qs):
            q = self.q_value(zs, action.view(B, T, -1), "avg", generator=generator)  # [B, T]
        self.update_scale(q[:, 0].detach(), scale_rate)
        weight = rho ** torch.arange(T, device=zs.device, dtype=zs.dtype) * valid.float() / (B * T)  # [B, T]
        objective = q / self.q_scale - entropy_coef * logp.view(B, T)
        loss = -(weight * objective).sum()
        entropy = -logp.mean().item()
        return loss, {"loss/policy": loss.item(), "train/entropy": entropy, "train/q_scale": self.q_scale.item()}

    @torch.no_grad()
    def update_scale(self, q: torch.Tensor, rate: float) -> None:
        """q_scale <- EMA of max(1, 95th - 5th percentile of q [B])."""
        spread = torch.quantile(q.float(), torch.tensor([0.05, 0.95], device=q.device))
        self.q_scale.lerp_((spread[1] - spread[0]).clamp(min=1.0), rate)


def frame_reads(is_first: torch.Tensor, frames: int) -> torch.Tensor:
    """Which sequence steps each step's frame stack reads, oldest first, never reaching before the latest
    episode start: is_first [B, T] -> indices [B, T, F] (a step whose episode began fewer than F - 1 steps ago
    repeats that episode's first frame; the sequence's first steps repeat step 0)."""
    T = is_first.shape[1]
    steps = torch.arange(T, device=is_first.device)
    start = torch.where(is_first.bool(), steps, 0).cummax(1).values  # [B, T] latest episode start at or before t
    reads = steps[:, None] - (frames - 1) + torch.arange(frames, device=is_first.device)  # [T, F]
    return torch.maximum(reads[None], start[:, :, None])  # [B, T, F]
