"""MuZero's three functions: representation h(obs) -> s, dynamics g(s, a) -> (s', r), prediction f(s) -> (pi, v).

The reward of g and the policy and value of f share one head MLP on the latent (``heads``), so that a search
step is one dynamics call and one head call.

Dimension letters: B batch, L latent size, A actions, K support bins, F stacked frames.

From pixels the representation sees the last F frames stacked on the channel axis (``stack_frames``: the one
routine acting, training windows and analysis all use).

Hidden states are min-max scaled to [0, 1] per sample (MuZero appendix G), so the dynamics always sees the
same range. Reward and value heads output logits over a two-hot symlog support (decoded to scalars inside the
batched call, so the search sees plain numbers).

For EfficientZero's self-supervised consistency loss, ``project`` maps a latent to a projection and
``predict_projection`` predicts, from the projection of a latent the dynamics imagined, the projection of the
latent the representation makes from the real observation there (SimSiam: the target side gets no gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.nets.conv import ConvEncoder
from worldmodels.nets.distributions import TwoHot
from worldmodels.nets.mlp import mlp


def scale_hidden(s: torch.Tensor) -> torch.Tensor:
    """Min-max scale each latent [B, L] to [0, 1]."""
    low = s.min(-1, keepdim=True).values
    high = s.max(-1, keepdim=True).values
    return (s - low) / (high - low + 1e-5)


def stack_frames(frames: torch.Tensor) -> torch.Tensor:
    """Frames [..., F, C, H, W], oldest first -> the representation's input [..., F x C, H, W], stored
    channels-last (the layout the conv encoder reads)."""
    stack = frames.movedim(-3, -1).movedim(-4, -2)  # [..., H, W, F, C]
    return stack.contiguous().flatten(-2).movedim(-1, -3)  # [..., F x C, H, W], HWC in memory


def block(in_dim: int, hidden: int, out_dim: int, layers: int) -> nn.Sequential:
    """MLP with ``layers`` hidden layers of Linear + LayerNorm + ELU."""
    return mlp(in_dim, (hidden,) * layers, out_dim, activation=nn.ELU, layer_norm=True)


class MuZeroNet(nn.Module):
    def __init__(
        self,
        obs_space,
        actions: int,
        latent: int = 64,
        hidden: int = 128,
        bins: int = 101,
        depth: int = 16,
        layers: int = 2,
        frames: int = 1,
    ):
        """``frames``: pixel frames stacked on the channel axis of the representation's input."""
        super().__init__()
        self.actions = actions
        self.has_pixels = "pixels" in obs_space.spaces
        if self.has_pixels:
            channels, size = obs_space["pixels"].shape[0] * frames, obs_space["pixels"].shape[-1]
            self.conv = ConvEncoder(size, (depth, 2 * depth, 4 * depth, 8 * depth), in_channels=channels)
            self.represent_net = block(self.conv.out_dim, hidden, latent, 1)
        else:
            self.represent_net = block(obs_space["state"].shape[0], hidden, latent, layers)
        self.dynamics_net = block(latent + actions, hidden, latent, layers)
        # One head MLP for reward, value and policy (one small batched call per search step, not three).
        self.bins = bins
        self.heads_net = block(latent, hidden, 2 * bins + actions, 1)
        nn.init.zeros_(self.heads_net[-1].weight)  # start at r = v = 0 and a uniform policy
        nn.init.zeros_(self.heads_net[-1].bias)
        self.support = TwoHot(bins, -10.0, 10.0)
        # BatchNorm as in EfficientZero's heads: it removes the component every projection shares, which
        # otherwise makes any two projections nearly parallel (cosine 0.94 for random pairs of observations
        # with LayerNorm heads) and leaves the consistency loss little to pull on. Training only: search never
        # projects, so acting never sees batch statistics.
        self.project = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
        )
        self.predict_projection = nn.Sequential(
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, hidden)
        )

    def to(self, *args, **kwargs):
        out = super().to(*args, **kwargs)
        self.support = self.support.to(next(self.parameters()).device)
        return out

    def represent(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """obs dict of [B, ...] tensors (pixels [B, 3 x frames, H, W]) -> scaled latent [B, L]."""
        x = self.conv(obs["pixels"]) if self.has_pixels else obs["state"].float()
        return scale_hidden(self.represent_net(x))

    def dynamics(self, s: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """s [B, L], action [B] int64 -> next latent [B, L] (residual in latent space, then rescaled)."""
        x = torch.cat([s, F.one_hot(action, self.actions).to(s.dtype)], -1)
        return scale_hidden(s + self.dynamics_net(x))

    def heads(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """s [B, L] -> (reward logits [B, K] for the step into s, value logits [B, K], policy logits [B, A])."""
        out = self.heads_net(s)
        return out[:, : self.bins], out[:, self.bins : 2 * self.bins], out[:, 2 * self.bins :]

    def decode_scalars(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For search: s [B, L] -> (decoded reward and value [B, 2], policy logits [B, A]), one head call."""
        out = self.heads_net(s)
        both = out[:, : 2 * self.bins].view(-1, 2, self.bins)
        return self.support.decode(both), out[:, 2 * self.bins :]
