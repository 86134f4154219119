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
from worldmodels.config import AgentConfig
from worldmodels.models.ensemble import PROPAGATIONS, particle_rollout
from worldmodels.models.model_check import OpenLoop, check_metrics
from worldmodels.nets.precision import autocast, use_bf16
from worldmodels.planning import cem, mppi, random_shooting, shift_plan

CPU_ROLLOUT_ROWS = 16384  # agent.rollout_rows=0 on a CPU: a pass that stays in cache


@dataclass
class PlannerFields(AgentConfig):
    """The shooting planner's settings over particle rollouts of the ensemble (pets, mpc_value)."""

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
    rollout_rows: int = 0
    """Most model rows (envs x candidates x particles) in one rollout pass; more are cut into passes. 0 = auto:
    16384 on a CPU, where five evaluation envs' 40,000 rows in one pass ran slower than cache-sized passes
    (benchmarks/checks/pets_rollout_rows.jsonl), one pass on CUDA."""
    bf16: bool | str = "auto"
    """Plan with bfloat16 matmuls (states accumulate in fp32): true, false or auto (where the device computes
    bfloat16 natively: CUDA, CPUs with AMX or AVX512-BF16; 3.5x faster decisions with AMX, 25x slower without)."""


@dataclass
class PETSConfig(PlannerFields, StateModelConfig):
    name: str = "pets"


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
        check_planner(cfg, cfg.members)
        self.model, self.terminator = self.state_model.ensemble, self.state_model.terminator
        self.done_fn = self.state_model.done_fn
        self.fitted = False
        self.seed = torch.initial_seed()  # the loop seeds torch with train.seed before building the agent
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)  # planning
        self.rng = np.random.default_rng(self.seed)  # random actions before the first fit
        self.bf16 = use_bf16(cfg.bf16, self.device)

    def streams(self) -> list[Stream]:
        return [Stream("model", BatchSpec("all", batch_size=0), self.update)]

    def update(self, batch) -> dict[str, float]:
        metrics = self.state_model.fit(batch, self.seed)
        self.fitted = True
        return metrics

    def plan(self, states: torch.Tensor, warm_start: torch.Tensor | None) -> torch.Tensor:
        """states [B, S] -> plan [B, H, A] (the first action is executed, the rest warm-starts the next step)."""
        return plan_with_ensemble(self.cfg, self.model, self.done_fn, states, warm_start, self.generator, self.bf16)

    def act(self, obs, state, explore):
        states = torch.as_tensor(obs["state"], dtype=torch.float32, device=self.device)  # [B, S]
        if not self.fitted:  # nothing learned yet: act uniformly at random
            return self.rng.uniform(-1, 1, (states.shape[0], self.action_dim)).astype(np.float32), None, {}
        return receding_horizon_act(obs, state, self.plan, self.device)

    def report(self, replay, sequences: int = 4, length: int | None = None, context: int = 5) -> dict | None:
        """k-step state predictions of the ensemble against replayed sequences (StateModel.report); None before
        the first fit."""
        return self.state_model.report(replay, sequences, length, context) if self.fitted else None

    def open_loop(self, episode: dict, horizon: int, values: bool = False) -> OpenLoop:
        """The ensemble's open-loop prediction along an episode (agents/state_model.py); PETS has no value
        function, so ``values`` asks for nothing."""
        return self.state_model.open_loop(episode, horizon)

    def ready_to_plan(self) -> None:
        self.fitted = True

    def model_check(self, episode: dict) -> dict[str, float] | None:
        """Failure modes over the planning horizon (models/model_check.py); None before the first refit."""
        return check_metrics(self.open_loop(episode, self.cfg.horizon), episode) if self.fitted else None

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


def check_planner(cfg: PlannerFields, members: int) -> None:
    """Planner settings that cannot work with this ensemble are a ValueError now, not at the first decision."""
    if cfg.rollout_rows < 0:
        raise ValueError(f"agent.rollout_rows must be 0 (auto) or a positive row count, got {cfg.rollout_rows}")
    if cfg.planner not in ("cem", "mppi", "random"):
        raise ValueError(f"agent.planner must be cem, mppi or random, got {cfg.planner!r}")
    if cfg.propagation not in PROPAGATIONS:
        raise ValueError(f"agent.propagation must be one of {PROPAGATIONS}, got {cfg.propagation!r}")
    if cfg.propagation != "expectation" and cfg.particles % members:
        raise ValueError(
            f"agent.particles ({cfg.particles}) must be a multiple of agent.members ({members}) for {cfg.propagation}"
        )


def receding_horizon_act(obs: dict, previous_plan: torch.Tensor | None, plan_fn, device) -> tuple:
    """MPC: plan from every env's state, warm-started by the last plan shifted one step (from scratch where an
    episode begins), execute the first action -> (actions [B, A], the plan [B, H, A] as agent state, {})."""
    states = torch.as_tensor(obs["state"], dtype=torch.float32, device=device)  # [B, S]
    warm = None
    if previous_plan is not None and previous_plan.shape[0] == states.shape[0]:
        warm = shift_plan(previous_plan)
        warm[torch.as_tensor(obs["is_first"], device=device)] = 0.0  # a new episode plans from scratch
    plan = plan_fn(states, warm)  # [B, H, A]
    return plan[:, 0].cpu().numpy(), plan, {}


@torch.no_grad()
def plan_with_ensemble(
    cfg: PlannerFields, model, done_fn, states: torch.Tensor, warm_start, generator, bf16: bool, **return_kwargs
) -> torch.Tensor:
    """The configured planner over particle rollouts of the ensemble from states [B, S] -> plan [B, H, A]."""

    max_rows = cfg.rollout_rows or (CPU_ROLLOUT_ROWS if states.device.type == "cpu" else None)

    def rollout(actions):  # [B, N, H, A]
        return particle_rollout(
            model,
            states,
            actions,
            cfg.particles,
            cfg.propagation,
            done_fn=done_fn,
            generator=generator,
            max_rows=max_rows,
        )

    with autocast(bf16, states.device):
        return shoot(cfg, rollout, states.shape[0], model.action_dim, warm_start, generator, **return_kwargs)


def shoot(
    cfg: PlannerFields,
    rollout,
    batch: int,
    action_dim: int,
    warm_start: torch.Tensor | None,
    generator: torch.Generator,
    **return_kwargs,
) -> torch.Tensor:
    """The configured planner over ``rollout`` -> plan [B, H, A]; return_kwargs go to ``sequence_returns``
    (terminal_value, discount)."""
    kwargs = {"pessimism": cfg.pessimism, **return_kwargs}
    mean = warm_start
    device = generator.device
    if mean is None:
        mean = torch.zeros(batch, cfg.horizon, action_dim, device=device)  # [B, H, A]
    if cfg.planner == "cem":
        return cem(
            rollout,
            mean,
            cfg.init_std,
            cfg.population,
            cfg.elite_ratio,
            cfg.iterations,
            cfg.smoothing,
            generator=generator,
            **kwargs,
        )
    if cfg.planner == "mppi":
        return mppi(
            rollout, mean, cfg.init_std, cfg.population, cfg.iterations, cfg.temperature, generator=generator, **kwargs
        )
    if cfg.planner == "random":
        return random_shooting(
            rollout,
            batch,
            cfg.horizon,
            action_dim,
            cfg.population,
            generator=generator,
            device=device,
            **kwargs,
        )[0]
    raise ValueError(f"agent.planner must be cem, mppi or random, got {cfg.planner!r}")
