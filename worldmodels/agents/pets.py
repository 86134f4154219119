"""PETS: a probabilistic ensemble on states + CEM (or MPPI / random shooting) over particle rollouts, replanning
every step (MPC), the model refitted on all data (one ``BatchSpec('all')`` stream; the replay ratio sets how
often, 1 / episode length in decisions = once an episode).

Dimension letters: B envs acting at once, N candidates, H horizon, A action dims, S state dims.

Randomness follows the run seed (the loop seeds torch before building the agent): the planner's torch generator
and the numpy generator of the random actions before the first fit start from ``torch.initial_seed()`` and are
checkpointed; every refit draws from a generator seeded by (run seed, data size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldmodels.agents.base import Agent, BatchSpec, Stream, register
from worldmodels.agents.state_model import StateModel, StateModelConfig, check_state_task
from worldmodels.models.ensemble import particle_rollout
from worldmodels.nets.precision import autocast, use_bf16
from worldmodels.planning import cem, mppi, random_shooting, shift_plan
from worldmodels.reports.kstep import kstep_figure, kstep_report


@dataclass
class PETSConfig(StateModelConfig):
    name: str = "pets"
    planner: str = "cem"
    """cem, mppi or random (random shooting)."""
    horizon: int = 15
    """Planning horizon in decisions."""
    population: int = 500
    """Candidate sequences per planner iteration."""
    iterations: int = 5
    """CEM / MPPI iterations per decision."""
    elite_ratio: float = 0.1
    """Share of candidates kept as CEM elites."""
    smoothing: float = 0.1
    """Share of the old CEM mean and std kept each iteration."""
    init_std: float = 0.5
    """Initial CEM / MPPI sampling std (actions are in [-1, 1])."""
    temperature: float = 1.0
    """MPPI temperature."""
    particles: int = 20
    """Particles per candidate (a multiple of members for ts_inf / ts1)."""
    propagation: str = "ts_inf"
    """ts_inf, ts1 or expectation."""
    pessimism: float = 0.0
    """Return penalty per unit of particle reward std (r - lambda * sigma)."""
    bf16: bool | str = "auto"
    """Plan with bfloat16 matmuls (states accumulate in fp32): true, false or auto (where the device computes
    bfloat16 natively: CUDA, CPUs with AMX or AVX512-BF16; 3.5x faster decisions with AMX, 25x slower without)."""


@register("pets", PETSConfig)
class PETSAgent(Agent):
    def __init__(self, cfg: PETSConfig, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        check_state_task(
            "pets",
            obs_space,
            action_space,
            "sac, dreamer or muzero learn from pixels; muzero and dyna_q act discretely",
        )
        self.state_dim, self.action_dim = obs_space["state"].shape[0], action_space.shape[0]
        self.state_model = StateModel(cfg, self.state_dim, self.action_dim, self.device)
        self.model, self.terminator = self.state_model.ensemble, self.state_model.terminator
        self.done_fn = self.state_model.done_fn
        self.fitted = False
        self.seed = torch.initial_seed()  # the loop seeds torch with train.seed before building the agent
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)  # planning
        self.rng = np.random.default_rng(self.seed)  # random actions before the first fit
        self.bf16 = use_bf16(cfg.bf16, self.device)

    def streams(self) -> list[Stream]:
        return [Stream("model", BatchSpec("all", batch_size=0), self.update)]

    def as_f32(self, x) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    def fit_generator(self, data_size: int) -> torch.Generator:
        """A refit's generator: fresh per (run seed, data size), so it needs no checkpointing (seed 0: data size)."""
        return torch.Generator().manual_seed((self.seed * 1_000_003 + data_size) % 2**63)

    def update(self, batch) -> dict[str, float]:
        metrics = self.state_model.fit(batch, self.fit_generator)
        self.fitted = True
        return metrics

    @torch.no_grad()
    def plan(self, states: torch.Tensor, warm_start: torch.Tensor | None) -> torch.Tensor:
        """states [B, S] -> plan [B, H, A] (the first action is executed, the rest warm-starts the next step)."""
        cfg = self.cfg
        batch = states.shape[0]

        def rollout(actions):  # [B, N, H, A]
            return particle_rollout(
                self.model,
                states,
                actions,
                cfg.particles,
                cfg.propagation,
                done_fn=self.done_fn,
                generator=self.generator,
            )

        with autocast(self.bf16, self.device):
            return self._plan(rollout, batch, warm_start)

    def _plan(self, rollout, batch: int, warm_start: torch.Tensor | None) -> torch.Tensor:
        cfg = self.cfg
        kwargs = {"pessimism": cfg.pessimism}
        mean = warm_start
        if mean is None:
            mean = torch.zeros(batch, cfg.horizon, self.action_dim, device=self.device)  # [B, H, A]
        if cfg.planner == "cem":
            return cem(
                rollout,
                mean,
                cfg.init_std,
                cfg.population,
                cfg.elite_ratio,
                cfg.iterations,
                cfg.smoothing,
                generator=self.generator,
                **kwargs,
            )
        if cfg.planner == "mppi":
            return mppi(
                rollout,
                mean,
                cfg.init_std,
                cfg.population,
                cfg.iterations,
                cfg.temperature,
                generator=self.generator,
                **kwargs,
            )
        if cfg.planner == "random":
            return random_shooting(
                rollout,
                batch,
                cfg.horizon,
                self.action_dim,
                cfg.population,
                generator=self.generator,
                device=self.device,
                **kwargs,
            )[0]
        raise ValueError(f"agent.planner must be cem, mppi or random, got {cfg.planner!r}")

    def act(self, obs, state, explore):
        states = torch.as_tensor(obs["state"], dtype=torch.float32, device=self.device)  # [B, S]
        if not self.fitted:  # nothing learned yet: act uniformly at random
            return self.rng.uniform(-1, 1, (states.shape[0], self.action_dim)).astype(np.float32), None, {}
        warm = None
        if state is not None and state.shape[0] == states.shape[0]:
            warm = shift_plan(state)
            warm[torch.as_tensor(obs["is_first"], device=self.device)] = 0.0  # a new episode plans from scratch
        plan = self.plan(states, warm)
        return plan[:, 0].cpu().numpy(), plan, {}

    @torch.no_grad()
    def report(self, replay, sequences: int = 4, length: int | None = None, context: int = 5) -> dict | None:
        """k-step state prediction of the ensemble against replayed sequences (reports/kstep.py); None before the
        first fit. ``length`` None: min(50, longest episode), the context shortened to fit."""
        if not self.fitted:
            return None
        if length is None:
            length = min(50, replay.longest_episode)
            context = min(context, length - 1)
        if length > replay.longest_episode:
            raise ValueError(
                f"the k-step report needs an episode of {length} steps; the longest stored episode has "
                f"{replay.longest_episode}"
            )
        data = replay.sample_sequences(sequences, length)  # [B, T, ...] inside one episode each
        f32 = self.as_f32
        report = kstep_report(self.model, f32(data["state"]), f32(data["action"]), context, f32(data["reward"]))
        return {"images": {"report/kstep": kstep_figure(report)}, "scalars": report.scalars()}

    def state_dict(self) -> dict:
        return {
            **self.state_model.state_dict(),
            "fitted": self.fitted,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            "generator_device": self.device.type,
        }

    def load_state_dict(self, state: dict) -> None:
        """Checkpoints from before the generators were saved keep the freshly seeded ones."""
        self.state_model.load_state_dict(state)
        self.fitted = state["fitted"]
        self.seed = state.get("seed", self.seed)
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
        if state.get("generator_device") == self.device.type:  # a CUDA generator's state does not fit a CPU one
            self.generator.set_state(state["generator"])
