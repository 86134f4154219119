"""Dreamer (DreamerV3 style): the RSSM world model (models/rssm.py) composed with the imagined actor-critic
(behaviours/actor_critic.py), which imagines from every posterior state of the replayed batch.

Dimension letters: B batch, T time, N = B * T imagination starts, A action dims.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from worldmodels.agents.actor_critic_fields import ActorCriticFields
from worldmodels.agents.base import Agent, BatchSpec, Stream, obs_to_torch, register
from worldmodels.behaviours.actor_critic import ActorCriticSettings, ImaginedActorCritic
from worldmodels.config import settings_from
from worldmodels.envs import action_dim, is_discrete
from worldmodels.models.model_check import OpenLoop, check_metrics, executed_windows
from worldmodels.models.rssm import WorldModel
from worldmodels.nets.guarded_step import guarded_step
from worldmodels.nets.optim import adam
from worldmodels.nets.precision import autocast, use_bf16
from worldmodels.reports.openloop import imagination_report, report_figure


@dataclass
class DreamerConfig(ActorCriticFields):
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
    imagine_starts: int = 0
    """Imagination starts per update (0: every posterior state of the batch, B * T)."""
    unimix: float = 0.01
    """Uniform mix of latent and discrete-action categoricals."""
    bf16: bool | str = "auto"
    """bfloat16 autocast for world-model and imagination compute (fp32 parameters): true, false or auto (where
    the device computes bfloat16 natively: CUDA, CPUs with AMX or AVX512-BF16; 1.7x faster updates with AMX)."""


@register("dreamer", DreamerConfig)
class DreamerAgent(Agent):
    def __init__(self, cfg: DreamerConfig, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        self.discrete = is_discrete(action_space)
        self.actions = action_dim(action_space)
        self.wm = WorldModel(
            obs_space,
            self.actions,
            cfg.depth,
            cfg.deter,
            cfg.stoch,
            cfg.classes,
            cfg.hidden,
            cfg.head_layers,
            cfg.unimix,
            cfg.free_nats,
        ).to(self.device)
        self.bf16 = use_bf16(cfg.bf16, self.device)
        settings = settings_from(ActorCriticSettings, cfg, layers="head_layers")
        self.behaviour = ImaginedActorCritic(
            self.wm.feat_dim, self.actions, self.discrete, settings, self.device, self.bf16
        )
        self.wm_opt = adam(self.wm.parameters(), lr=cfg.model_lr, eps=1e-8)

    def streams(self) -> list[Stream]:
        return [
            Stream(
                "train", BatchSpec("sequences", self.cfg.batch_size, self.cfg.seq_len, cross_episodes=True), self.update
            )
        ]

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
        action, _, _ = self.behaviour.actor(latent.features(), explore=explore)  # [N, A]
        out = action.argmax(-1).cpu().numpy() if self.discrete else action.cpu().numpy()
        return out, (latent, action), {}

    # -- learning -------------------------------------------------------------------------------------------
    def to_torch(self, batch: dict) -> dict:
        """A replayed sequence batch [B, T, ...] as tensors: obs dict, actions in the RSSM's format, rewards,
        is_first, is_terminal."""
        out = {"obs": obs_to_torch(batch, self.device)}
        out["action"] = self._action_input(torch.as_tensor(batch["action"], device=self.device))  # [B, T, A]
        for key in ("reward", "is_first", "is_terminal"):
            out[key] = torch.as_tensor(batch[key], device=self.device)
        out["reward"] = out["reward"].float()
        return out

    def update(self, batch: dict) -> dict[str, float]:
        data = self.to_torch(batch)
        with autocast(self.bf16, self.device):
            wm_loss, states, metrics = self.wm.loss(
                data["obs"], data["action"], data["reward"], data["is_first"], data["is_terminal"]
            )
        wm_norm = guarded_step(self.wm_opt, wm_loss, self.wm.parameters(), "world model", self.cfg.grad_clip)
        metrics["train/wm_grad_norm"] = wm_norm.item()
        starts = states.map(lambda x: x.detach().float().flatten(0, 1))  # [N, ...]
        continues = 1.0 - data["is_terminal"].float().flatten()  # [N]
        if self.cfg.imagine_starts and self.cfg.imagine_starts < continues.shape[0]:
            pick = torch.randperm(continues.shape[0], device=self.device)[: self.cfg.imagine_starts]
            starts, continues = starts.map(lambda x: x[pick]), continues[pick]
        metrics.update(self.behaviour.update(self.wm, starts, continues))
        return metrics

    @torch.no_grad()
    def report(self, replay, sequences: int = 4, length: int | None = None, context: int = 5) -> dict | None:
        """The open-loop video (truth / imagination / error) and k-step image error of replayed sequences."""
        length = length or self.cfg.seq_len
        if not self.wm.has_pixels or replay.num_steps < length:
            return None
        # Open-loop pictures are only meaningful inside one episode: cross only when no episode is long enough.
        data = self.to_torch(replay.sample_sequences(sequences, length, replay.longest_episode < length))
        report = imagination_report(
            self.wm, data["obs"], data["action"], data["reward"], data["is_first"], context=min(context, length - 1)
        )
        images = {"report/openloop_errors": report_figure(report)}
        return {"videos": {"report/openloop": report.video}, "images": images, "scalars": report.scalars()}

    def model_check(self, episode: dict) -> dict[str, float]:
        """Failure modes over the imagination horizon (models/model_check.py)."""
        return check_metrics(self.open_loop(episode, self.cfg.horizon), episode)

    @torch.no_grad()
    def open_loop(self, episode: dict, horizon: int, values: bool = False) -> OpenLoop:
        """From the posterior of every step of the episode, the rewards the RSSM's prior predicts for the executed
        actions; model_error is the world-model loss (its training objective) on the episode. Values: the
        critic's."""
        data = self.to_torch({key: value[None] for key, value in episode.items()})  # [1, T + 1, ...]
        with autocast(self.bf16, self.device):
            loss, states, _ = self.wm.loss(
                data["obs"], data["action"], data["reward"], data["is_first"], data["is_terminal"]
            )
            windows = {"action": data["action"][0].float().cpu().numpy(), "reward": episode["reward"]}
            starts, actions, _ = executed_windows(windows, horizon, self.device)
            starts = torch.as_tensor(starts, device=self.device)
            start = states.map(lambda x: x[0, starts].float())  # [N, ...]
            unrolled, predicted, _ = self.wm.rollout(start, actions)  # [N, H, ...], [N, H]
            out = OpenLoop(predicted.float(), loss.item())
            if values:
                path = torch.cat([start.features()[:, None], unrolled.features()], 1)  # [N, H + 1, F]
                out = out._replace(values=self.behaviour.value(self.wm, path), discount=self.cfg.gamma)
        return out

    @torch.no_grad()
    def image_errors(self, episode: dict, horizon: int, chunk: int = 64) -> torch.Tensor | None:
        """Mean squared pixel error (pixels in [0, 1]) of the images the prior's states decode to after k = 1..H
        open-loop steps from every posterior of the episode [H] (one sample of the stochastic latents, as the
        imagination report shows them); None without a pixel decoder or pixels."""
        if not self.wm.has_pixels or "pixels" not in episode:
            return None
        data = self.to_torch({key: value[None] for key, value in episode.items()})  # [1, T + 1, ...]
        with autocast(self.bf16, self.device):
            states, _, _ = self.wm.observe(self.wm.embed(data["obs"]), data["action"], data["is_first"])
        windows = {"action": data["action"][0].float().cpu().numpy(), "reward": episode["reward"]}
        starts, actions, _ = executed_windows(windows, horizon, self.device)
        horizon = actions.shape[1]
        truth = data["obs"]["pixels"][0, 1:].float() / 255.0  # [T, 3, H, W]
        total = torch.zeros(horizon, device=self.device)
        for lo in range(0, len(starts), chunk):  # decoding N x H images at once would not fit a laptop
            pick = torch.as_tensor(starts[lo : lo + chunk], device=self.device)
            start = states.map(lambda x, pick=pick: x[0, pick].float())  # [n, ...]
            with autocast(self.bf16, self.device):
                predicted = self.wm.unroll(start, actions[lo : lo + chunk])
                images = (self.wm.decode_pixels(predicted.features()).float() + 0.5).clamp(0, 1)  # [n, H, 3, h, w]
            target = truth[pick[:, None] + torch.arange(horizon, device=self.device)]  # [n, H, 3, h, w]
            total += (images - target).pow(2).mean((2, 3, 4)).sum(0)
        return total / len(starts)

    # -- checkpointing --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "wm": self.wm.state_dict(),
            "wm_opt": self.wm_opt.state_dict(),
            "behaviour": self.behaviour.training_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.wm.load_state_dict(state["wm"])
        self.wm_opt.load_state_dict(state["wm_opt"])
        self.behaviour.load_training_state(state["behaviour"])
