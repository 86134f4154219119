"""MuZero: a latent model trained only to predict rewards, values and search policies, planned with batched MCTS.

Dimension letters: N envs acting at once, B batch, T window (K + n + 1 steps), K unroll steps, A actions,
F stacked frames.

Acting: one initial inference for the N envs, then a batched search over N trees (planning/mcts.py); the
search policy and root value go to the replay beside the chosen action (act's extras, see ``replay_extras``).
Learning: windows of K + n + 1 steps from the shared replay ('unrolls'). From the first observation the model
unrolls K steps with the replayed actions and is trained on, at every unroll step k,
  reward   r_{t+k}                                     (steps 1..K)
  value    n-step return z_{t+k} bootstrapped with the target network's value n steps later
           (or at the episode's end: 0 after a termination, the last state's value after a truncation)
  policy   the stored search policy at t+k (or, for a share ``reanalyse`` of the windows, a fresh search's)
as two-hot / categorical cross-entropies; gradients into the dynamics are halved at every step.
Continuous action spaces are discretised: ``action_bins`` values per dimension, every combination one action
(planning/action_grid.py).

From pixels (EfficientZero's additions): the representation sees the last ``frame_stack`` frames (one frame
holds no velocities; acting keeps the last F frames in the agent state, the replay hands F - 1 steps of
history in front of each window, both stacked by models/muzero.py's ``stack_frames``), training observations
are randomly shifted, and an optional self-supervised consistency loss pulls each imagined latent towards the
latent of the real observation there.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from worldmodels.agents.base import Agent, BatchSpec, Stream, obs_to_torch, register
from worldmodels.config import AgentConfig
from worldmodels.models.model_check import OpenLoop, check_metrics, episode_observations, executed_windows
from worldmodels.models.muzero import MuZeroNet, stack_frames
from worldmodels.nets.conv import random_shift
from worldmodels.nets.guarded_step import guarded_step
from worldmodels.nets.optim import adamw
from worldmodels.nets.search_copy import CpuCopy, torch_threads
from worldmodels.planning.action_grid import ActionGrid
from worldmodels.planning.mcts import Inference, MCTSConfig, search
from worldmodels.replay.step_cache import StepCache
from worldmodels.reports.unroll import open_loop_unroll, unroll_report


@dataclass
class MuZeroConfig(AgentConfig):
    name: str = "muzero"
    batch_size: int = 256
    """Windows per update."""
    unroll: int = 5
    """K: dynamics steps unrolled per window."""
    td_steps: int = 10
    """n: rewards summed before bootstrapping the value target."""
    discount: float = 0.997
    """Discount per decision."""
    latent: int = 64
    """Latent state size."""
    hidden: int = 128
    """Width of the MLPs."""
    layers: int = 2
    """Hidden layers of the representation and dynamics MLPs."""
    depth: int = 16
    """Conv channel multiplier for pixels."""
    bins: int = 101
    """Two-hot support bins of reward and value (symlog space -10..10)."""
    lr: float = 3e-3
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """Adam weight decay (decoupled)."""
    grad_clip: float = 10.0
    """Gradient norm clip."""
    value_weight: float = 0.25
    """Weight of the value loss."""
    target_every: int = 100
    """Updates between copies of the network into the target network."""
    simulations: int = 50
    """MCTS simulations per decision."""
    search: str = "gumbel"
    """'gumbel' (sequential halving; strong with few simulations) or 'puct'."""
    max_considered: int = 16
    """Gumbel: root actions sampled."""
    temperature: float = 1.0
    """pUCT: visit-count temperature when exploring."""
    action_bins: int = 5
    """Continuous actions: values per action dimension (every combination is one discrete action)."""
    search_threads: int = 1
    """Torch threads during search (small batched calls: more threads only add overhead)."""
    frame_stack: int = 3
    """Pixels: frames the representation sees (the current one and the ones before it)."""
    augment_pad: int = 4
    """Pixels: random-shift padding of training observations (0: none)."""
    consistency_weight: float = 0.0
    """Weight of EfficientZero's consistency loss between imagined and real latents (0: off)."""
    consistency_steps: int = 0
    """Unroll steps per window, drawn at random, that get the consistency loss (0: all K). Each costs a
    representation call per window, the largest part of a pixel update; fewer steps estimate the same loss."""
    reanalyse: float = 0.0
    """Share of replayed windows whose policy targets a fresh search with the latest network recomputes
    (MuZero Reanalyze; 0: the search policies stored when acting). Costs one search of B x share x (K+1) roots."""


@register("muzero", MuZeroConfig)
class MuZeroAgent(Agent):
    def __init__(self, cfg: MuZeroConfig, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        self.action_grid = ActionGrid(action_space, cfg.action_bins)
        self.actions = self.action_grid.n
        if cfg.frame_stack < 1:
            raise ValueError(f"agent.frame_stack must be at least 1, got {cfg.frame_stack}")
        if not 0 <= cfg.consistency_steps <= cfg.unroll:
            raise ValueError(
                f"agent.consistency_steps must be in 0..agent.unroll ({cfg.unroll}; 0: all), "
                f"got {cfg.consistency_steps}"
            )
        self.frames = cfg.frame_stack if "pixels" in obs_space.spaces else 1
        self.net = MuZeroNet(
            obs_space, self.actions, cfg.latent, cfg.hidden, cfg.bins, cfg.depth, cfg.layers, frames=self.frames
        ).to(self.device)
        self.target = copy.deepcopy(self.net).requires_grad_(False)
        self.opt = adamw(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.mcts = MCTSConfig(
            num_simulations=cfg.simulations, discount=cfg.discount, method=cfg.search, max_considered=cfg.max_considered
        )
        self.rng = np.random.default_rng(torch.initial_seed() % 2**32)  # the loop seeds torch per run
        self.updates = 0
        self.value_cache = StepCache()  # target-network values per replay step (see bootstrap_values)
        self.metrics: dict[str, float] = {}  # extra scalars of the last update
        self.search_copy = CpuCopy()  # the network the search calls, refreshed after updates

    def streams(self) -> list[Stream]:
        cfg = self.cfg  # windows of T = K + n + 1 steps, F - 1 steps of frame history in front
        spec = BatchSpec("unrolls", cfg.batch_size, cfg.unroll + cfg.td_steps + 1, history=self.frames - 1)
        return [Stream("train", spec, self.update)]

    def replay_extras(self):
        return {"search_policy": ((self.actions,), np.float32), "search_value": ((), np.float32)}

    # -- acting ---------------------------------------------------------------------------------------------
    @staticmethod
    def _recurrent(net: MuZeroNet, s: torch.Tensor, action: np.ndarray) -> Inference:
        nxt = net.dynamics(s, torch.from_numpy(action))
        scalars, logits = net.decode_scalars(nxt)
        scalars = scalars.numpy()
        return Inference(scalars[:, 0], scalars[:, 1], logits.double().numpy(), nxt)

    def plan(self, obs: dict, explore: bool):
        """Batched search from N observations -> SearchResult (planning/mcts.py). Search runs on the CPU."""
        with torch_threads(self.cfg.search_threads), torch.inference_mode():
            net = self.search_copy(self.net, self.updates)
            s = net.represent(obs_to_torch(obs, "cpu"))  # [N, L]
            scalars, logits = net.decode_scalars(s)
            root = Inference(np.zeros(len(s)), scalars[:, 1].numpy(), logits.double().numpy(), s)
            recurrent = lambda s, action: self._recurrent(net, s, action)  # noqa: E731
            return search(root, recurrent, self.mcts, self.rng, explore=explore, temperature=self.cfg.temperature)

    def frame_history(self, obs: dict, previous: np.ndarray | None) -> np.ndarray:
        """Acting's last F frames [N, F, C, H, W], oldest first: the newest frame [N, C, H, W] behind the previous
        ones; a first step (or no previous frames) repeats its frame."""
        frame = obs["pixels"][:, None]  # [N, 1, C, H, W]
        repeated = np.repeat(frame, self.frames, 1)  # [N, F, C, H, W]
        if previous is None or previous.shape != repeated.shape:
            return repeated
        frames = np.concatenate([previous[:, 1:], frame], 1)
        frames[obs["is_first"]] = repeated[obs["is_first"]]
        return frames

    def act(self, obs, state, explore):
        frames = None  # the agent state: the last F frames (pixels with frame_stack > 1)
        if self.frames > 1:
            frames = self.frame_history(obs, state)
            obs = {**obs, "pixels": stack_frames(torch.from_numpy(frames))}  # [N, F x C, H, W]
        result = self.plan(obs, explore)
        extras = {"search_policy": result.policy.astype(np.float32), "search_value": result.value.astype(np.float32)}
        return self.action_grid.action(result.action), frames, extras

    # -- learning -------------------------------------------------------------------------------------------
    def windows(self, batch: dict) -> dict:
        """Replay windows [B, history + T, ...] -> [B, T, ...]. Pixels stay as they were replayed, under
        ``frames`` [B, history + T, C, H, W]: ``obs_at`` stacks only the steps an update reads."""
        history = self.frames - 1
        out = {key: value[:, history:] for key, value in batch.items() if key != "pixels"}
        if "pixels" in batch:
            out["frames"] = batch["pixels"]
        return out

    def obs_at(self, batch: dict, rows: np.ndarray, steps: np.ndarray) -> dict[str, torch.Tensor]:
        """Observations at window steps (rows, steps: int arrays of one shape [...]) -> {key: [..., obs shape]};
        pixels as frame stacks [..., frames x C, H, W] (oldest frame first) in channels-last memory."""
        obs = {}
        if "state" in batch:
            obs["state"] = torch.as_tensor(batch["state"][rows, steps], dtype=torch.float32, device=self.device)
        if "frames" in batch:
            frames = torch.as_tensor(batch["frames"])  # [B, history + T, C, H, W] uint8
            reads = torch.as_tensor(steps)[..., None] + torch.arange(self.frames)  # [..., F] the stack's frames
            stack = stack_frames(frames[torch.as_tensor(rows)[..., None], reads])  # [..., F x C, H, W]
            obs["pixels"] = stack.to(self.device)
        return obs

    def observations(self, batch: dict, rows: np.ndarray, steps: np.ndarray) -> dict[str, torch.Tensor]:
        """``obs_at`` with pixels randomly shifted (training inputs)."""
        obs = self.obs_at(batch, rows, steps)
        if "pixels" in obs and self.cfg.augment_pad:
            pixels = obs["pixels"]
            obs["pixels"] = random_shift(pixels.flatten(0, -4), self.cfg.augment_pad).view(pixels.shape)  # uint8
        return obs

    def targets(self, batch: dict) -> dict[str, torch.Tensor]:
        """Value, reward and policy targets [B, K + 1] (+ masks) for windows [B, T] from the replay."""
        cfg, dev = self.cfg, self.device
        K, n = cfg.unroll, cfg.td_steps
        valid = torch.as_tensor(batch["valid"], device=dev)  # [B, T]
        reward = torch.as_tensor(batch["reward"], device=dev).float() * valid  # [B, T]
        terminal = torch.as_tensor(batch["is_terminal"], device=dev) & valid  # [B, T]
        B, T = valid.shape
        last = valid.sum(-1) - 1  # [B] window index of the episode's last step (T - 1 if it goes on)
        k = torch.arange(K + 1, device=dev)  # [K+1]
        boot = torch.minimum(k[None] + n, last[:, None])  # [B, K+1] index bootstrapped from
        j = torch.arange(T, device=dev)
        # rewards r_{k+1} .. r_boot, discounted from step k
        inside = (j[None, None] > k[None, :, None]) & (j[None, None] <= boot[:, :, None])  # [B, K+1, T]
        power = (j[None, None] - k[None, :, None] - 1).clamp(min=0).float()
        summed = (inside * cfg.discount**power * reward[:, None]).sum(-1)  # [B, K+1]
        boot_value = self.bootstrap_values(batch, boot)  # [B, K+1]
        boot_alive = ~terminal.gather(1, boot)
        value = summed + cfg.discount ** (boot - k[None]).float() * boot_alive * boot_value
        value_mask = (k[None] <= last[:, None]).float()  # the observation exists
        policy = torch.as_tensor(batch["search_policy"], device=dev)[:, 1 : K + 2]  # [B, K+1, A] chose action t+k+1
        has_successor = k[None] < last[:, None]  # [B, K+1]
        policy_mask = has_successor & (policy.sum(-1) > 0.5)  # warm-up steps stored no search policy
        redo = self.rng.random(B) < cfg.reanalyse if cfg.reanalyse > 0 else np.zeros(B, bool)  # [B] windows to redo
        if redo.any():  # their policy targets come from a fresh search
            policy, rows = policy.clone(), torch.as_tensor(redo, device=dev)
            policy[rows] = self.reanalysed_policies(batch, redo)
            policy_mask = torch.where(rows[:, None], has_successor, policy_mask)
        policy_mask = policy_mask.float()
        return {
            "value": value,
            "value_mask": value_mask,
            "reward": reward[:, : K + 1],
            "reward_mask": value_mask,
            "policy": policy,
            "policy_mask": policy_mask,
        }

    def bootstrap_values(self, batch: dict, boot: torch.Tensor) -> torch.Tensor:
        """The target network's values at window steps boot [B, K+1] -> [B, K+1]. The target network changes
        only every target_every updates, so values are cached per replay step for its current generation and
        each step is evaluated once per generation (distinct steps only), not every time a window draws it."""
        generation = self.updates // self.cfg.target_every
        index = boot.cpu().numpy()
        rows = np.arange(len(index))[:, None]
        step_id = batch["step_id"][rows, index] if "step_id" in batch else np.full(index.shape, -1)  # [B, K+1]
        values, hit = self.value_cache.lookup(step_id, generation)
        values = values.copy()
        self.metrics["train/value_cache_hits"] = float(hit.mean())
        if not hit.all():
            b, j = np.nonzero(~hit)
            ids, first, inverse = np.unique(step_id[b, j], return_index=True, return_inverse=True)
            if ids[0] < 0:  # uncacheable steps (no step_id): evaluate each one
                first, inverse = np.arange(len(b)), np.arange(len(b))
            b, j = b[first], j[first]
            obs = self.obs_at(batch, b, index[b, j])
            with torch.no_grad():
                _, value_logits, _ = self.target.heads(self.target.represent(obs))
                fresh = self.net.support.decode(value_logits).float().cpu().numpy()  # [M]
            self.value_cache.store(step_id[b, j], generation, fresh)
            values[~hit] = fresh[inverse]
        return torch.as_tensor(values, device=self.device)

    def reanalysed_policies(self, batch: dict, rows: np.ndarray) -> torch.Tensor:
        """MuZero Reanalyze: a fresh search with the latest network from the observations 0..K of the chosen
        windows (rows: [B] bool) -> policy targets [R, K+1, A]."""
        K = self.cfg.unroll
        chosen = np.flatnonzero(rows)
        obs = self.obs_at(batch, np.repeat(chosen, K + 1), np.tile(np.arange(K + 1), len(chosen)))  # [R * (K+1), ...]
        policy = self.plan(obs, explore=False).policy  # [R * (K+1), A]
        return torch.as_tensor(policy, dtype=torch.float32, device=self.device).view(len(chosen), K + 1, -1)

    def consistency_targets(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """EfficientZero's consistency targets: projections of the latents of the real observations at
        ``consistency_steps`` unroll steps per window, drawn from 1..K -> (projections [B, K, F], zero at the
        steps not drawn; weights [B, K], 1 / consistency_steps at the drawn ones)."""
        K = self.cfg.unroll
        J = self.cfg.consistency_steps or K
        B = len(batch["action"])
        drawn = np.argsort(self.rng.random((B, K)), -1)[:, :J] + 1  # [B, J] unroll steps, distinct per window
        with torch.no_grad():
            obs = self.observations(batch, np.repeat(np.arange(B), J), drawn.ravel())  # [B * J, ...]
            real = self.net.project(self.net.represent(obs))
        out = real.new_zeros(B, K, real.shape[-1])
        rows = torch.arange(B, device=self.device)[:, None]
        steps = torch.as_tensor(drawn - 1, device=self.device)
        out[rows, steps] = real.view(B, J, -1)
        weight = torch.zeros(B, K, device=self.device)
        weight[rows, steps] = 1.0 / J
        return out, weight

    def update(self, batch: dict) -> dict[str, float]:
        cfg, dev = self.cfg, self.device
        K = cfg.unroll
        batch = self.windows(batch)
        tgt = self.targets(batch)
        actions = torch.as_tensor(self.action_grid.index(batch["action"]), device=dev)  # [B, T]
        B = actions.shape[0]
        support = self.net.support
        s = self.net.represent(self.observations(batch, np.arange(B), np.zeros(B, np.int64)))  # [B, L]
        losses = {"value": 0.0, "reward": 0.0, "policy": 0.0}
        if cfg.consistency_weight:
            real, picked = self.consistency_targets(batch)  # [B, K, F], [B, K]
            losses["consistency"] = 0.0
        for k in range(K + 1):
            if k > 0:
                s = self.net.dynamics(s, actions[:, k])  # action k leads into observation k
                if cfg.consistency_weight:
                    predicted = self.net.predict_projection(self.net.project(s))
                    similarity = F.cosine_similarity(predicted, real[:, k - 1], dim=-1)
                    weight = picked[:, k - 1] * tgt["value_mask"][:, k]
                    losses["consistency"] = losses["consistency"] - (similarity * weight).mean()
            reward_logits, value_logits, logits = self.net.heads(s)
            if k > 0:
                reward_ce = support.loss(reward_logits, tgt["reward"][:, k])
                losses["reward"] = losses["reward"] + (reward_ce * tgt["reward_mask"][:, k]).mean() / K
            scale = 1.0 if k == 0 else 1.0 / K
            value_ce = support.loss(value_logits, tgt["value"][:, k])
            losses["value"] = losses["value"] + scale * (value_ce * tgt["value_mask"][:, k]).mean()
            policy_ce = -(tgt["policy"][:, k] * F.log_softmax(logits, -1)).sum(-1)
            losses["policy"] = losses["policy"] + scale * (policy_ce * tgt["policy_mask"][:, k]).mean()
            s = 0.5 * s + 0.5 * s.detach()  # halve the gradient that later steps send back through the dynamics
        loss = cfg.value_weight * losses["value"] + losses["reward"] + losses["policy"]
        if cfg.consistency_weight:
            loss = loss + cfg.consistency_weight * losses["consistency"]
        grad_norm = guarded_step(self.opt, loss, self.net.parameters(), "muzero", cfg.grad_clip)
        self.updates += 1
        if self.updates % cfg.target_every == 0:
            self.target.load_state_dict(self.net.state_dict())
        return {
            "loss/total": loss.item(),
            **{f"loss/{name}": value.item() for name, value in losses.items()},
            "train/grad_norm": grad_norm.item(),
            "train/value_target": tgt["value"][:, 0].mean().item(),
            **self.metrics,
        }

    # -- reporting ------------------------------------------------------------------------------------------
    def model_check(self, episode: dict) -> dict[str, float]:
        """Failure modes over the unroll length K (models/model_check.py)."""
        return check_metrics(self.open_loop(episode, self.cfg.unroll), episode)

    @torch.no_grad()
    def open_loop(self, episode: dict, horizon: int, values: bool = False) -> OpenLoop:
        """From the representation of every step of the episode, the rewards the dynamics predict for the
        executed actions (each mapped to its nearest grid action); model_error is the one-step absolute reward
        error over all the episode's transitions. Values: the value head's."""
        obs = episode_observations(episode, self.frames, self.device)  # [T + 1, ...]
        actions = torch.as_tensor(self.action_grid.index(np.asarray(episode["action"])), device=self.device)
        starts, _, _ = executed_windows(episode, horizon, self.device)  # [N]
        horizon = min(horizon, len(actions) - 1)
        latents = self.net.represent(obs)  # [T + 1, L]
        s = latents[starts]
        rewards, value = [], [self.net.decode_scalars(s)[0][:, 1]]
        for k in range(1, horizon + 1):
            s = self.net.dynamics(s, actions[starts + k])  # action t + k leads into step t + k
            scalars = self.net.decode_scalars(s)[0]  # [N, 2]: reward, value
            rewards.append(scalars[:, 0])
            value.append(scalars[:, 1])
        one_step = self.net.decode_scalars(self.net.dynamics(latents[:-1], actions[1:]))[0][:, 0]  # [T]
        truth = torch.as_tensor(episode["reward"][1:], dtype=torch.float32, device=self.device)
        out = OpenLoop(torch.stack(rewards, 1).float(), (one_step.float() - truth).abs().mean().item())
        if values:
            out = out._replace(values=torch.stack(value, 1).float(), discount=self.cfg.discount)  # [N, H + 1]
        return out

    def report(self, replay, sequences: int = 4, length: int | None = None, context: int = 5) -> dict:
        """Open-loop unroll of rewards and values from the real observation at window step ``context`` - 1
        against the replayed truth (reports/unroll.py). Default length: a training window (K + n + 1)."""
        length = max(2, length or self.cfg.unroll + self.cfg.td_steps + 1)
        batch = self.windows(replay.sample_unrolls(sequences, length, history=self.frames - 1))  # [B, T, ...]
        rows, start = np.arange(len(batch["reward"])), min(max(context, 1), length - 1) - 1
        actions = torch.as_tensor(self.action_grid.index(batch["action"]), device=self.device)  # [B, T]
        with torch.inference_mode():
            unroll = open_loop_unroll(
                self.net,
                lambda steps: self.obs_at(batch, rows, steps),
                actions,
                batch["reward"],
                batch["valid"],
                batch["is_terminal"],
                start,
                self.cfg.discount,
            )
        return unroll_report(unroll)

    # -- checkpointing --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "net": self.net.state_dict(),
            "target": self.target.state_dict(),
            "opt": self.opt.state_dict(),
            "updates": self.updates,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.target.load_state_dict(state["target"])
        self.opt.load_state_dict(state["opt"])
        self.updates = state["updates"]
        self.value_cache.clear()  # its values came from the target network that was just replaced
        self.rng.bit_generator.state = state["rng"]
