"""Dreamer's world model: a recurrent state-space model (RSSM) with discrete latents, learned from pixels.

Dimension letters: B batch, T time, H imagination horizon, N imagined starts, D deter size,
S latent variables, C classes per variable, E embedding, A action dims, F features = D + S * C.

    h_t = GRU(h_{t-1}, z_{t-1}, a_t)       sequence model (a_t is the action that led into x_t)
    z_t ~ q(z_t | h_t, x_t)                posterior (observing)
    z_t ~ p(z_t | h_t)                     prior (imagining)
    x_t, r_t, c_t <- decoder, reward and continue heads on (h_t, z_t)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.nets.conv import ConvEncoder
from worldmodels.nets.distributions import TwoHot, categorical_kl, straight_through_onehot, symlog, unimix_logits
from worldmodels.nets.mlp import layernorm_mlp


@dataclass
class RSSMState:
    deter: torch.Tensor  # [..., D]
    stoch: torch.Tensor  # [..., S, C] one-hot samples

    def features(self) -> torch.Tensor:
        return torch.cat([self.deter, self.stoch.flatten(-2)], -1)  # [..., F]

    def map(self, fn) -> RSSMState:
        return RSSMState(fn(self.deter), fn(self.stoch))


class LayerNormGRUCell(nn.Module):
    """GRU cell with one fused, layer-normalised projection and the update gate biased towards keeping h."""

    def __init__(self, in_dim: int, deter: int):
        super().__init__()
        self.proj = nn.Linear(in_dim + deter, 3 * deter, bias=False)
        self.norm = nn.LayerNorm(3 * deter)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        reset, candidate, update = self.norm(self.proj(torch.cat([x, h], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        candidate = torch.tanh(reset * candidate)
        update = torch.sigmoid(update - 1.0)
        return update * candidate + (1 - update) * h  # [B, D]


class ImageDecoder(nn.Module):
    """Features [N, F] -> image means [N, 3, 64, 64] in [-0.5, 0.5] scale (mirror of the conv encoder)."""

    def __init__(self, feat_dim: int, depth: int, size: int = 64):
        super().__init__()
        self.channels = (8 * depth, 4 * depth, 2 * depth, depth)
        self.side = size // 16
        self.inp = nn.Linear(feat_dim, self.channels[0] * self.side**2)
        layers = []
        for a, b in zip(self.channels[:-1], self.channels[1:], strict=True):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.GroupNorm(1, b), nn.SiLU()]
        layers.append(nn.ConvTranspose2d(self.channels[-1], 3, 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)
        self.to(memory_format=torch.channels_last)  # NHWC, like the encoder

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        x = self.inp(feat).reshape(-1, self.channels[0], self.side, self.side)
        return self.net(x.contiguous(memory_format=torch.channels_last))  # [N, 3, H, W] (stored NHWC)


class WorldModel(nn.Module):
    def __init__(
        self,
        obs_space,
        action_dim: int,
        depth: int = 16,
        deter: int = 256,
        stoch: int = 16,
        classes: int = 16,
        hidden: int = 256,
        head_layers: int = 2,
        unimix: float = 0.01,
        free_nats: float = 1.0,
        dyn_scale: float = 0.5,
        rep_scale: float = 0.1,
    ):
        super().__init__()
        self.stoch, self.classes, self.deter_dim = stoch, classes, deter
        self.unimix, self.free_nats, self.dyn_scale, self.rep_scale = unimix, free_nats, dyn_scale, rep_scale
        self.action_dim = action_dim
        self.has_pixels = "pixels" in obs_space.spaces
        self.state_dim = obs_space["state"].shape[0] if "state" in obs_space.spaces else 0
        size = obs_space["pixels"].shape[-1] if self.has_pixels else 64
        if self.has_pixels and size != 64:
            raise ValueError(
                f"the RSSM's conv encoder and decoder expect 64x64 pixels, got {size}x{size}; set env.size=64"
            )
        embed = 0
        if self.has_pixels:
            self.conv = ConvEncoder(size, (depth, 2 * depth, 4 * depth, 8 * depth))
            embed += self.conv.out_dim
        if self.state_dim:
            self.state_encoder = layernorm_mlp(self.state_dim, hidden, head_layers, hidden)
            embed += hidden
        latent = stoch * classes
        self.feat_dim = deter + latent
        self.img_in = layernorm_mlp(latent + action_dim, hidden, 1, None)
        self.gru = LayerNormGRUCell(hidden, deter)
        self.prior_net = layernorm_mlp(deter, hidden, 1, latent)
        # The posterior's first layer on concat(h, e) is split as W_h h + W_e e, so W_e e runs once for all T.
        self.post_h = nn.Linear(deter, hidden, bias=False)
        self.post_e = nn.Linear(embed, hidden)
        self.post_out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, latent))
        if self.has_pixels:
            self.decoder = ImageDecoder(self.feat_dim, depth, size)
        if self.state_dim:
            self.state_decoder = layernorm_mlp(self.feat_dim, hidden, head_layers, self.state_dim)
        self.reward_head = layernorm_mlp(self.feat_dim, hidden, head_layers, 255, zero_init=True)
        self.continue_head = layernorm_mlp(self.feat_dim, hidden, head_layers, 1)
        self.twohot = TwoHot()

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.twohot.to(self.reward_head[-1].weight.device)
        return out

    # -- the recurrent core ---------------------------------------------------------------------------------
    def initial(self, batch: int) -> RSSMState:
        device = self.reward_head[-1].weight.device
        return RSSMState(
            torch.zeros(batch, self.deter_dim, device=device),
            torch.zeros(batch, self.stoch, self.classes, device=device),
        )

    def _logits(self, raw: torch.Tensor) -> torch.Tensor:
        return unimix_logits(raw.reshape(*raw.shape[:-1], self.stoch, self.classes), self.unimix)  # [..., S, C]

    def img_step(self, state: RSSMState, action: torch.Tensor) -> tuple[RSSMState, torch.Tensor]:
        """One imagined step from the prior: -> (next state, prior logits [B, S, C])."""
        x = self.img_in(torch.cat([state.stoch.flatten(-2), action], -1))
        deter = self.gru(x, state.deter)
        logits = self._logits(self.prior_net(deter))
        return RSSMState(deter, straight_through_onehot(logits)), logits

    def embed(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Observations [B, T, ...] (or [B, ...]) -> embeddings [B, T, E] (or [B, E])."""
        parts = []
        if self.has_pixels:
            pixels = obs["pixels"]
            lead = pixels.shape[:-3]
            parts.append(self.conv(pixels.reshape(-1, *pixels.shape[-3:])).reshape(*lead, -1))
        if self.state_dim:
            parts.append(self.state_encoder(symlog(obs["state"])))
        return torch.cat(parts, -1)

    def obs_step(self, state: RSSMState, action: torch.Tensor, embed_proj: torch.Tensor, is_first: torch.Tensor):
        """One observed step -> (posterior state, posterior logits [B, S, C]).

        embed_proj = post_e(embed) [B, hidden]; is_first [B] resets the state and the action. The prior of the
        step is not needed to go on, so observe() computes all priors after the loop in one batched call.
        """
        keep = (~is_first).float().unsqueeze(-1)  # [B, 1]
        x = self.img_in(torch.cat([state.stoch.flatten(-2) * keep, action * keep], -1))
        deter = self.gru(x, state.deter * keep)
        post_logits = self._logits(self.post_out(self.post_h(deter) + embed_proj))
        return RSSMState(deter, straight_through_onehot(post_logits)), post_logits

    def observe(
        self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor, state: RSSMState | None = None
    ):
        """Filter a sequence: embed [B, T, E], action [B, T, A], is_first [B, T] ->
        posterior states [B, T, ...], posterior and prior logits [B, T, S, C]."""
        batch, steps = embed.shape[:2]
        state = state or self.initial(batch)
        embed_proj = self.post_e(embed)  # [B, T, hidden], once for all steps
        deters, stochs, posts = [], [], []
        for t in range(steps):  # sequential by nature; everything inside is batched over B
            state, post = self.obs_step(state, action[:, t], embed_proj[:, t], is_first[:, t])
            deters.append(state.deter)
            stochs.append(state.stoch)
            posts.append(post)
        states = RSSMState(torch.stack(deters, 1), torch.stack(stochs, 1))
        priors = self._logits(self.prior_net(states.deter))  # [B, T, S, C], one batched call
        return states, torch.stack(posts, 1), priors

    def unroll(self, start: RSSMState, actions: torch.Tensor) -> RSSMState:
        """Open-loop rollout from the prior: start [N, ...], actions [N, H, A] -> states [N, H, ...]."""
        deters, stochs, state = [], [], start
        for k in range(actions.shape[1]):
            state, _ = self.img_step(state, actions[:, k])
            deters.append(state.deter)
            stochs.append(state.stoch)
        return RSSMState(torch.stack(deters, 1), torch.stack(stochs, 1))

    def imagine(self, start: RSSMState, policy, horizon: int) -> torch.Tensor:
        """The imagined actor-critic's contract: features [H+1, N, F] of start [N, ...] and the H states that
        ``policy(features [N, F]) -> action [N, A]`` leads to through the prior."""
        feats, state = [start.features()], start
        for _ in range(horizon):
            state, _ = self.img_step(state, policy(feats[-1]))
            feats.append(state.features())
        return torch.stack(feats)

    def rollout(self, start: RSSMState, actions: torch.Tensor):
        """The planners' contract: (next states [N, H, ...], rewards [N, H], continue probabilities [N, H])."""
        states = self.unroll(start, actions)
        feat = states.features()
        return states, self.reward(feat), self.continue_prob(feat)

    # -- heads ----------------------------------------------------------------------------------------------
    def reward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.twohot.decode(self.reward_head(feat))

    def continue_prob(self, feat: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.continue_head(feat).squeeze(-1))

    def decode_pixels(self, feat: torch.Tensor) -> torch.Tensor:
        """Features [..., F] -> images [..., 3, 64, 64] in [-0.5, 0.5]."""
        lead = feat.shape[:-1]
        return self.decoder(feat.reshape(-1, feat.shape[-1])).reshape(*lead, 3, 64, 64)

    # -- the loss -------------------------------------------------------------------------------------------
    def loss(
        self,
        obs: dict[str, torch.Tensor],
        action: torch.Tensor,
        reward: torch.Tensor,
        is_first: torch.Tensor,
        is_terminal: torch.Tensor,
    ):
        """All inputs batch-major [B, T, ...]. -> (scalar loss, posterior states [B, T, ...], metrics)."""
        states, post, prior = self.observe(self.embed(obs), action, is_first)
        feat = states.features()  # [B, T, F]
        losses = {}
        if self.has_pixels:
            target = obs["pixels"].float() / 255.0 - 0.5  # [B, T, 3, H, W]
            losses["image"] = (self.decode_pixels(feat) - target).pow(2).sum((-3, -2, -1)).mean()
        if self.state_dim:
            losses["state"] = (self.state_decoder(feat) - symlog(obs["state"])).pow(2).sum(-1).mean()
        losses["reward"] = self.twohot.loss(self.reward_head(feat), reward).mean()
        continues = 1.0 - is_terminal.float()
        losses["continue"] = F.binary_cross_entropy_with_logits(self.continue_head(feat).squeeze(-1), continues)
        # KL balancing with free bits: the prior moves towards the posterior (dyn) faster than the reverse (rep).
        dyn = categorical_kl(post.detach(), prior)  # [B, T]
        rep = categorical_kl(post, prior.detach())
        losses["dyn"] = torch.clamp(dyn, min=self.free_nats).mean()
        losses["rep"] = torch.clamp(rep, min=self.free_nats).mean()
        total = sum(v for k, v in losses.items() if k not in ("dyn", "rep"))
        total = total + self.dyn_scale * losses["dyn"] + self.rep_scale * losses["rep"]
        metrics = {f"loss/wm_{k}": v.item() for k, v in losses.items()}
        metrics["train/kl"] = dyn.mean().item()
        metrics["train/posterior_entropy"] = -(post.softmax(-1) * post.log_softmax(-1)).sum((-1, -2)).mean().item()
        return total, states, metrics
