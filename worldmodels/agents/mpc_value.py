"""MPC with a learned terminal value: PETS's planner over particle rollouts of the ensemble, each candidate's return
closed by a critic's value of where it ends, so that a short horizon can plan for the long run.

The critic is MBPO's (agents/mbpo.py, inherited whole): SAC trained on real transitions and on the ensemble's
branched rollouts (the model stream refits the ensemble and rolls SAC's policy through it; the policy stream makes
train.replay_ratio SAC updates per agent step). Acting plans instead of using SAC's actor:
    return(candidate) = sum_k gamma^k r_k + gamma^H V(s_H),   V(s) = min over the twin critics of Q(s, pi(s))
with pi SAC's deterministic (mean) action, s_H the mean final state of the particles whose episode has not ended
(V weighted by their share) and gamma SAC's discount. The critic runs in float32 even where planning is bfloat16:
bfloat16 keeps 3 significant digits, so a value near 100 would move in steps of 0.5.
``agent.value_weight=0`` plans without the value (discounted PETS, the comparison point for the horizon study).

Dimension letters: B envs acting at once, N candidates, S state dims, H horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldmodels.agents.base import register
from worldmodels.agents.mbpo import MBPOAgent, MBPOConfig
from worldmodels.agents.pets import PlannerFields, check_planner, plan_with_ensemble, receding_horizon_act
from worldmodels.models.model_check import OpenLoop, check_metrics
from worldmodels.nets.precision import use_bf16


@dataclass
class MPCValueConfig(PlannerFields, MBPOConfig):
    name: str = "mpc_value"
    horizon: int = 10
    """Planning horizon in decisions."""
    value_weight: float = 1.0
    """Weight of the terminal value in a candidate's return (0: plan on rewards alone)."""


@register("mpc_value", MPCValueConfig)
class MPCValueAgent(MBPOAgent):
    def __init__(self, cfg: MPCValueConfig, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        check_planner(cfg, cfg.members)
        self.bf16 = use_bf16(cfg.bf16, self.device)
        self.rng = np.random.default_rng(self.seed)  # random actions before the first fit

    @torch.no_grad()
    def terminal_value(self, states: torch.Tensor) -> torch.Tensor:
        """states [..., S] -> V [...] = min_Q Q(s, pi_mean(s)), times value_weight."""
        flat = states.reshape(-1, states.shape[-1]).float()  # [M, S]
        critic = self.learner.critic
        with torch.autocast(states.device.type, enabled=False):  # float32 inside a bfloat16 plan
            features = critic.encoder({"state": flat})
            action, _ = self.learner.actor(features, deterministic=True)
            value = critic.values(features, action).min(0).values  # [M]
        return self.cfg.value_weight * value.reshape(states.shape[:-1])

    def plan(self, states: torch.Tensor, warm_start: torch.Tensor | None) -> torch.Tensor:
        """states [B, S] -> plan [B, H, A], returns discounted by SAC's gamma and closed by the terminal value."""
        extra = {"discount": self.cfg.gamma}
        if self.cfg.value_weight:
            extra["terminal_value"] = self.terminal_value
        done_fn = self.state_model.done_fn
        return plan_with_ensemble(self.cfg, self.model, done_fn, states, warm_start, self.generator, self.bf16, **extra)

    def act(self, obs, state, explore):
        if self.fits == 0:  # nothing learned yet: act uniformly at random
            return self.rng.uniform(-1, 1, (len(obs["state"]), self.action_dim)).astype(np.float32), None, {}
        return receding_horizon_act(obs, state, self.plan, self.device)

    def open_loop(self, episode: dict, horizon: int, values: bool = False) -> OpenLoop:
        """The ensemble's prediction, without values: the critic values SAC's policy, while this agent's episodes
        are played by the planner, so scoring it on them would score it against another policy."""
        return super().open_loop(episode, horizon)

    def model_check(self, episode: dict) -> dict[str, float] | None:
        """Failure modes over the planning horizon (models/model_check.py); None before the first refit."""
        return check_metrics(self.open_loop(episode, self.cfg.horizon), episode) if self.fits else None

    def state_dict(self) -> dict:
        return {**super().state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.rng.bit_generator.state = state["rng"]
