"""TD-MPC (TD-MPC2 style): a decoder-free latent model (models/tdmpc.py) planned with MPPI and a terminal Q.

Dimension letters: N envs acting at once, B batch, T sequence steps (F - 1 + H + 1), H horizon, A action dims,
L latent size, P policy-prior sequences, F stacked frames.

Learning: sequences of H + 1 steps (plus F - 1 steps of frame history in front, from pixels) from the shared
replay; chunks may run into the next episode, and nothing is learned across that boundary (``valid``). One
update is one step of the model optimizer (consistency, reward and TD-value losses, rho-weighted over the
horizon) and one of the policy optimizer (Q plus entropy on the rolled-out latents, the model frozen), then an
EMA step of the target Q heads.

Acting: encode the observation (pixels: the last F frames, kept in the agent state), then MPPI in latent
space (planning/shooting.py ``mppi_search``) over ``population`` Gaussian sequences plus ``policy_samples``
sequences of the policy prior, each scored by its predicted rewards and the terminal value; the top ``elites``
set the next mean and std. The plan's mean warm-starts the next decision (shifted by one). The executed action
is the first action of an elite drawn by its weight, plus the planner's std as noise when exploring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldmodels.agents.base import Agent, BatchSpec, Stream, obs_to_torch, register
from worldmodels.config import AgentConfig
from worldmodels.envs import is_discrete
from worldmodels.models.model_check import (
    OpenLoop,
    actions_of_episode,
    check_metrics,
    episode_observations,
    executed_windows,
)
from worldmodels.models.muzero import stack_frames
from worldmodels.models.tdmpc import TDMPCModel, frame_reads
from worldmodels.nets.conv import random_shift
from worldmodels.nets.guarded_step import guarded_step
from worldmodels.nets.optim import adam
from worldmodels.nets.precision import autocast, use_bf16
from worldmodels.planning import MPPIResult, Rollout, mppi_search, shift_plan
from worldmodels.reports.unroll import Unroll, unroll_report, window_returns


@dataclass
class TDMPCConfig(AgentConfig):
    name: str = "tdmpc"
    batch_size: int = 256
    """Sequences per update."""
    horizon: int = 3
    """H: steps of the model loss and of planning."""
    latent: int = 512
    """Latent size (a multiple of simnorm_group)."""
    hidden: int = 512
    """Width of the dynamics, reward, Q and policy-prior MLPs (two hidden layers each)."""
    encoder_hidden: int = 256
    """Width of the state encoder's hidden layer."""
    simnorm_group: int = 8
    """Latent entries per SimNorm softmax group."""
    activation: str = "mish"
    """Activation of the dynamics, reward and Q MLPs (LayerNorm before it): mish (TD-MPC2's), silu, elu or relu (by
    far the cheapest on a CPU). The policy prior is SAC's actor MLP: ReLU, no LayerNorm (TD-MPC2 gives it the same
    LayerNorm and Mish as the rest)."""
    depth: int = 16
    """Pixels: conv channels multiplier (d, 2d, 4d, 8d)."""
    frame_stack: int = 3
    """Pixels: frames the encoder sees (the current one and the ones before it)."""
    augment_pad: int = 4
    """Pixels: random-shift padding of training observations (0: none)."""
    bins: int = 101
    """Two-hot support bins of reward and Q (symlog space -10..10)."""
    q_heads: int = 5
    """Q ensemble size; targets take the minimum of two random heads."""
    lr: float = 3e-4
    """Adam learning rate of the model and the policy."""
    encoder_lr_scale: float = 0.3
    """The encoder learns at lr times this."""
    grad_clip: float = 20.0
    """Gradient norm clip of both optimizers."""
    consistency_coef: float = 20.0
    """Weight of the latent consistency loss."""
    reward_coef: float = 0.1
    """Weight of the reward loss."""
    value_coef: float = 0.1
    """Weight of the TD value loss."""
    entropy_coef: float = 1e-4
    """Weight of the policy's entropy (its tanh-squashed log-probability; TD-MPC2 weighs the Gaussian's before the
    squash, times the action dims) against its (scaled) Q."""
    rho: float = 0.5
    """Loss weight decay per horizon step (rho^t)."""
    tau: float = 0.01
    """EMA rate of the target Q heads and of the Q scale."""
    discount: float = 0.99
    """Discount per decision (TD-MPC2's heuristic: (L/5 - 1) / (L/5) for L decisions an episode, in
    [0.95, 0.995])."""
    log_std_bounds: tuple[float, ...] = (-10.0, 2.0)
    """Bounds of the policy prior's log standard deviation."""
    mpc: bool = True
    """Plan with MPPI; false: act with the policy prior alone (its mean when not exploring)."""
    iterations: int = 6
    """MPPI iterations per decision."""
    population: int = 488
    """Gaussian sequences per MPPI iteration."""
    policy_samples: int = 24
    """Policy-prior sequences added to every iteration's population."""
    elites: int = 64
    """Top sequences whose weights set the next mean and std."""
    min_std: float = 0.05
    """Lower bound of the MPPI std."""
    max_std: float = 2.0
    """Upper bound and initial value of the MPPI std."""
    temperature: float = 2.0
    """MPPI weights are softmax(return / temperature) over the elites (TD-MPC2's 0.5 multiplies: 1 / 0.5)."""
    bf16: bool | str = False
    """bfloat16 autocast for updates and planning (fp32 parameters): true, false or auto (where native)."""


@register("tdmpc", TDMPCConfig)
class TDMPCAgent(Agent):
    def __init__(self, cfg: TDMPCConfig, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        if is_discrete(action_space):
            raise ValueError(
                "tdmpc needs a continuous (Box) action space; for discrete actions use muzero, dyna_q or dreamer"
            )
        if cfg.frame_stack < 1 or cfg.horizon < 1:
            raise ValueError(
                f"agent.frame_stack and agent.horizon must be at least 1, got {cfg.frame_stack} and {cfg.horizon}"
            )
        if not 0 < cfg.elites <= cfg.population + cfg.policy_samples:
            raise ValueError(f"agent.elites ({cfg.elites}) must be in 1..population + policy_samples")
        self.action_dim = action_space.shape[0]
        self.frames = cfg.frame_stack if "pixels" in obs_space.spaces else 1
        self.model = TDMPCModel(
            obs_space,
            self.action_dim,
            cfg.latent,
            cfg.hidden,
            cfg.encoder_hidden,
            cfg.simnorm_group,
            cfg.depth,
            self.frames,
            cfg.bins,
            cfg.q_heads,
            tuple(cfg.log_std_bounds),
            cfg.activation,
        ).to(self.device)
        encoder = {id(p) for p in self.model.encoder_parameters()}
        groups = [
            {"params": self.model.encoder_parameters(), "lr": cfg.lr * cfg.encoder_lr_scale},
            {"params": [p for p in self.model.world_parameters() if id(p) not in encoder]},
        ]
        self.opt = adam(groups, lr=cfg.lr)
        self.pi_opt = adam(self.model.policy.parameters(), lr=cfg.lr, eps=1e-5)
        self.coefs = {"consistency": cfg.consistency_coef, "reward": cfg.reward_coef, "value": cfg.value_coef}
        self.generator = torch.Generator(device=self.device).manual_seed(torch.initial_seed())  # the loop seeds torch
        self.bf16 = use_bf16(cfg.bf16, self.device)
        self.updates = 0

    def streams(self) -> list[Stream]:
        length = self.frames - 1 + self.cfg.horizon + 1
        return [Stream("train", BatchSpec("sequences", self.cfg.batch_size, length, cross_episodes=True), self.update)]

    # -- acting ---------------------------------------------------------------------------------------------
    def frame_history(self, obs: dict, previous: np.ndarray | None) -> np.ndarray:
        """Acting's last F frames [N, F, C, H, W], oldest first; a first step (or none before) repeats its frame."""
        frame = obs["pixels"][:, None]  # [N, 1, C, H, W]
        repeated = np.repeat(frame, self.frames, 1)  # [N, F, C, H, W]
        if previous is None or previous.shape != repeated.shape:
            return repeated
        frames = np.concatenate([previous[:, 1:], frame], 1)
        frames[obs["is_first"]] = repeated[obs["is_first"]]
        return frames

    @torch.no_grad()
    def plan(self, z: torch.Tensor, warm_start: torch.Tensor) -> MPPIResult:
        """MPPI from latents z [N, L], warm-started at the mean [N, H, A], with policy-prior sequences."""
        cfg = self.cfg
        N, H = z.shape[0], cfg.horizon
        prior = self.model.policy_sequences(z, cfg.policy_samples, H) if cfg.policy_samples else None  # [N, P, H, A]

        def rollout(actions: torch.Tensor) -> Rollout:  # [N, M, H, A]
            M = actions.shape[1]
            latents, rewards = self.model.rollout(z.repeat_interleave(M, 0), actions.flatten(0, 1))
            return Rollout(rewards=rewards.view(N, M, H), final_states=latents[:, -1].view(N, M, -1))

        return mppi_search(
            rollout,
            warm_start,
            cfg.max_std,
            cfg.population,
            cfg.iterations,
            cfg.temperature,
            generator=self.generator,
            prior=prior,
            elites=cfg.elites,
            adapt_std=True,
            min_std=cfg.min_std,
            max_std=cfg.max_std,
            terminal_value=lambda final: self.model.value(final, self.generator),
            discount=cfg.discount,
        )

    def choose(self, result: MPPIResult, explore: bool) -> torch.Tensor:
        """The first action of an elite drawn by its weight, plus the final std as noise when exploring: [N, A]."""
        pick = torch.multinomial(result.weights.float(), 1, generator=self.generator)  # [N, 1]
        rows = torch.arange(len(pick), device=pick.device)
        action = result.elites[rows, pick[:, 0], 0]  # [N, A]
        if explore:
            noise = torch.randn(action.shape, generator=self.generator, device=action.device)
            action = action + result.std[:, 0] * noise
        return action.clamp(-1.0, 1.0)

    @torch.no_grad()
    def act(self, obs, state, explore):
        frames, previous = state if state is not None else (None, None)
        if self.frames > 1:
            frames = self.frame_history(obs, frames)
            obs = {**obs, "pixels": stack_frames(torch.from_numpy(frames))}  # [N, F x C, H, W]
        with autocast(self.bf16, self.device):
            z = self.model.encode(obs_to_torch(obs, self.device))  # [N, L]
            if not self.cfg.mpc:
                action, _ = self.model.policy(z, deterministic=not explore)
                return action.float().cpu().numpy(), (frames, None), {}
            warm = torch.zeros(z.shape[0], self.cfg.horizon, self.action_dim, device=self.device)
            if previous is not None and previous.shape == warm.shape:
                warm = shift_plan(previous)
                warm[torch.as_tensor(obs["is_first"], device=self.device)] = 0.0  # a new episode plans afresh
            result = self.plan(z, warm)
        return self.choose(result, explore).float().cpu().numpy(), (frames, result.mean.float()), {}

    # -- learning -------------------------------------------------------------------------------------------
    def prepare(self, batch: dict) -> dict:
        """Replayed sequences [B, F - 1 + H + 1, ...] -> observations [B, H + 1, ...] (pixels: frame stacks,
        randomly shifted), actions a_{t+1} [B, H, A], rewards, terminal flags and ``valid`` [B, H] (transition
        t -> t + 1 stays inside one episode: no is_first at or before t + 1)."""
        F, dev = self.frames, self.device
        is_first = torch.as_tensor(batch["is_first"])  # [B, T]
        obs = {}
        if "state" in batch:
            obs["state"] = torch.as_tensor(batch["state"][:, F - 1 :], dtype=torch.float32, device=dev)  # [B, H+1, S]
        if "pixels" in batch:
            frames = torch.as_tensor(batch["pixels"])  # [B, T, C, H, W] uint8
            reads = frame_reads(is_first, F)[:, F - 1 :]  # [B, H+1, F]
            stack = stack_frames(frames[torch.arange(len(frames))[:, None, None], reads])  # [B, H+1, F x C, H, W]
            if self.cfg.augment_pad:
                stack = random_shift(stack.flatten(0, 1), self.cfg.augment_pad).view(stack.shape)
            obs["pixels"] = stack.to(dev)
        valid = torch.cumprod((~is_first[:, F:]).to(torch.float32), 1)  # [B, H]
        return {
            "obs": obs,
            "action": torch.as_tensor(batch["action"][:, F:], dtype=torch.float32, device=dev),  # [B, H, A]
            "reward": torch.as_tensor(batch["reward"][:, F:], dtype=torch.float32, device=dev),  # [B, H]
            "terminal": torch.as_tensor(batch["is_terminal"][:, F:], device=dev),  # [B, H]
            "valid": valid.to(dev),
        }

    def encode_steps(self, obs: dict, steps: slice) -> torch.Tensor:
        """The latents of observation steps ``steps`` of obs [B, H + 1, ...] -> [B, S, L]."""
        picked = {key: value[:, steps] for key, value in obs.items()}
        B, S = next(iter(picked.values())).shape[:2]
        return self.model.encode({key: value.flatten(0, 1) for key, value in picked.items()}).view(B, S, -1)

    def model_step(self, data: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """One step of the model optimizer on prepared sequences -> (latents [B, H + 1, L] the rollout went
        through, metrics). The policy is only read (no gradient) for the TD targets."""
        cfg, model = self.cfg, self.model
        with autocast(self.bf16, self.device):
            with torch.no_grad():
                next_z = self.encode_steps(data["obs"], slice(1, None))  # [B, H, L] consistency targets
                td = model.td_targets(next_z, data["reward"], data["terminal"], cfg.discount, self.generator)
            z0 = self.encode_steps(data["obs"], slice(0, 1))[:, 0]  # [B, L]
            loss, zs, metrics = model.loss(
                z0, next_z, data["action"], data["reward"], td, data["valid"], cfg.rho, self.coefs
            )
        norm = guarded_step(self.opt, loss, model.world_parameters(), "tdmpc model", cfg.grad_clip)
        metrics.update({"loss/total": loss.item(), "train/grad_norm": norm.item(), "train/td_target": td.mean().item()})
        return zs, metrics

    def policy_step(self, zs: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
        """One step of the policy optimizer on the latents zs [B, H + 1, L] (detached; the Q heads frozen),
        valid [B, H] for the transitions into latents 1..H."""
        cfg = self.cfg
        valid_z = torch.cat([torch.ones_like(valid[:, :1]), valid], 1)  # [B, H + 1]
        with autocast(self.bf16, self.device):
            loss, metrics = self.model.policy_loss(zs, valid_z, cfg.rho, cfg.entropy_coef, cfg.tau, self.generator)
        norm = guarded_step(self.pi_opt, loss, self.model.policy.parameters(), "tdmpc policy", cfg.grad_clip)
        return {**metrics, "train/policy_grad_norm": norm.item()}

    def update(self, batch: dict) -> dict[str, float]:
        """Model step, policy step, then the target Q heads' EMA step."""
        data = self.prepare(batch)
        zs, metrics = self.model_step(data)
        metrics.update(self.policy_step(zs, data["valid"]))
        self.model.update_targets(self.cfg.tau)
        self.updates += 1
        return {**metrics, "train/valid_steps": data["valid"].mean().item()}

    # -- reporting ------------------------------------------------------------------------------------------
    def window_obs(self, batch: dict, steps: np.ndarray) -> dict[str, torch.Tensor]:
        """Observations at window steps [B] of unroll windows [B, F - 1 + T, ...] (frame history in front)."""
        rows, F, obs = np.arange(len(steps)), self.frames, {}
        if "state" in batch:
            obs["state"] = torch.as_tensor(batch["state"][rows, steps + F - 1], device=self.device)
        if "pixels" in batch:
            frames = batch["pixels"][rows[:, None], steps[:, None] + np.arange(F)]  # [B, F, C, H, W]
            obs["pixels"] = stack_frames(torch.as_tensor(frames)).to(self.device)
        return obs

    @torch.no_grad()
    def report(self, replay, sequences: int = 4, length: int | None = None, context: int = 5) -> dict:
        """Open-loop unroll from the real observation at window step ``context`` - 1 with the replayed actions:
        predicted rewards R(z, a) and values (every Q head at the policy's mean action) against the replayed
        rewards and discounted returns (reports/unroll.py). Default length: 16 steps."""
        length = max(2, length or 16)
        batch = replay.sample_unrolls(sequences, length, history=self.frames - 1)  # [B, F - 1 + T, ...]
        cut = self.frames - 1
        actions = torch.as_tensor(batch["action"][:, cut:], dtype=torch.float32, device=self.device)  # [B, T, A]
        reward, valid, terminal = batch["reward"][:, cut:], batch["valid"][:, cut:], batch["is_terminal"][:, cut:]
        B, start = len(reward), min(max(context, 1), length - 1) - 1
        z = self.model.encode(self.window_obs(batch, np.full(B, start)))  # [B, L]
        rewards, values = [torch.zeros(B, device=self.device)], [self.model.value(z, deterministic=True)]
        for t in range(start + 1, length):
            rewards.append(self.model.support.decode(self.model.reward_logits(z, actions[:, t])))
            z = self.model.next(z, actions[:, t])
            values.append(self.model.value(z, deterministic=True))
        last = valid.sum(-1) - 1  # [B] each window's last step inside its episode
        boot = self.model.value(self.model.encode(self.window_obs(batch, last)), deterministic=True)
        returns = window_returns(
            torch.as_tensor(reward, dtype=torch.float64),
            torch.as_tensor(valid),
            torch.as_tensor(terminal),
            boot.double().cpu(),
            self.cfg.discount,
        )  # [B, T]
        predicted_reward = torch.stack(rewards, 1).double().cpu().numpy()  # [B, H + 1]
        predicted_value = torch.stack(values, 1).double().cpu().numpy()
        unroll = Unroll(
            start,
            reward[:, start:].astype(np.float64),
            predicted_reward,
            returns[:, start:].numpy(),
            predicted_value,
            valid[:, start:].copy(),
        )
        return unroll_report(unroll)

    # -- checkpointing --------------------------------------------------------------------------------------
    def model_check(self, episode: dict) -> dict[str, float]:
        """Failure modes over the planning horizon (models/model_check.py)."""
        return check_metrics(self.open_loop(episode, self.cfg.horizon), episode)

    @torch.no_grad()
    def open_loop(self, episode: dict, horizon: int, values: bool = False) -> OpenLoop:
        """From the latent of every step of the episode, the rewards the latent dynamics predict for the executed
        actions; model_error is the one-step latent consistency error ||d(z_t, a) - enc(o_t+1)||^2 (per latent
        dim), its dynamics objective. Values: Q at the policy's mean action, averaged over the Q heads."""
        obs = episode_observations(episode, self.frames, self.device)  # [T + 1, ...]
        with autocast(self.bf16, self.device):
            z = self.model.encode(obs).float()  # [T + 1, L]
            starts, actions, _ = executed_windows(episode, horizon, self.device)
            latents, predicted = self.model.rollout(z[starts], actions)  # [N, H, L], [N, H]
            one_step = self.model.next(z[:-1], actions_of_episode(episode, self.device)).float()  # [T, L]
            out = OpenLoop(predicted.float(), (one_step - z[1:]).pow(2).mean().item())
            if values:
                path = torch.cat([z[starts][:, None], latents.float()], 1)  # [N, H + 1, L]
                value = self.model.value(path, deterministic=True).float()  # [N, H + 1]
                out = out._replace(values=value, discount=self.cfg.discount)
        return out

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "pi_opt": self.pi_opt.state_dict(),
            "updates": self.updates,
            "generator": self.generator.get_state(),
            "generator_device": self.device.type,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.pi_opt.load_state_dict(state["pi_opt"])
        self.updates = state["updates"]
        if state.get("generator_device") == self.device.type:  # a CUDA generator's state does not fit a CPU one
            self.generator.set_state(state["generator"])
