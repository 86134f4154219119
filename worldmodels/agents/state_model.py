"""The probabilistic ensemble on states as the state-based agents share it (PETS, MBPO, the model-based
actor-critic): its config fields, the checks of the task's spaces, the refit on all real data and the
termination rule of imagined transitions.

Dimension letters: N transitions, S state dims, A action dims.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.config import AgentConfig
from worldmodels.envs import is_discrete
from worldmodels.envs.terminations import termination_rule
from worldmodels.models.ensemble import Ensemble, fit_ensemble
from worldmodels.models.model_check import OpenLoop, ensemble_open_loop
from worldmodels.models.termination import TerminationClassifier
from worldmodels.reports.kstep import kstep_figure, kstep_report

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh}


@dataclass
class StateModelConfig(AgentConfig):
    """The ensemble's fields, shared by every agent that learns one (PETS, MBPO, mbac, mpc_value)."""

    members: int = 5
    """Ensemble members."""
    hidden: tuple[int, ...] = (200, 200, 200)
    """Hidden layers of each member."""
    activation: str = "silu"
    """Member activation: silu, relu, leaky_relu or tanh."""
    probabilistic: bool = True
    """Gaussian members (mean and log-variance) instead of deterministic ones."""
    lr: float = 1e-3
    """Model learning rate."""
    weight_decay: float = 5e-5
    """Adam weight decay of the model."""
    fit_epochs: int = 50
    """Most epochs per refit (early stopping on the holdout usually ends sooner)."""
    fit_batch: int = 256
    """Minibatch per member during a refit."""
    holdout_ratio: float = 0.1
    """Share of the data held out for early stopping."""
    patience: int = 5
    """Epochs in a row without a ``min_improvement`` of any member's holdout MSE before a refit stops."""
    min_improvement: float = 0.01
    """Relative drop of a member's holdout MSE that counts as an improvement: MBPO's and mbrl-lib's 1% (0.0001
    before commit 73229bc: rows made earlier used that)."""
    termination: str = "none"
    """Termination rule of imagined transitions: none, a task's known rule (inverted_pendulum, cartpole:
    envs/terminations.py) or learned (a classifier on next states, refitted with the model)."""


def check_state_task(agent: str, obs_space, action_space, alternatives: str) -> None:
    """A ValueError (the registry makes it a ConfigError) unless the task has state observations and a Box action
    space; ``alternatives`` names the agents that handle what this one cannot."""
    if is_discrete(action_space) or "state" not in obs_space.spaces:
        raise ValueError(
            f"{agent} learns a model of continuous actions on state observations: use env.obs=state and a task with "
            f"a Box action space ({alternatives})"
        )


def refit_generator(seed: int, data_size: int) -> torch.Generator:
    """A refit's generator: fresh per (run seed, data size), so it needs no checkpointing (seed 0: data size)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + data_size) % 2**63)


class StateModel:
    """The ensemble, its optional termination classifier and the done rule imagined transitions obey."""

    def __init__(self, cfg: StateModelConfig, state_dim: int, action_dim: int, device: torch.device):
        if cfg.activation not in ACTIVATIONS:
            raise ValueError(f"agent.activation must be one of {sorted(ACTIVATIONS)}, got {cfg.activation!r}")
        if not 0.0 <= cfg.min_improvement < 1.0:
            raise ValueError(
                f"agent.min_improvement must be in [0, 1) (a relative improvement), got {cfg.min_improvement}"
            )
        self.cfg, self.device = cfg, device
        self.ensemble = Ensemble(
            state_dim,
            action_dim,
            cfg.members,
            cfg.hidden,
            cfg.probabilistic,
            learn_reward=True,
            activation=ACTIVATIONS[cfg.activation],
        ).to(device)
        learned = cfg.termination == "learned"
        self.terminator = TerminationClassifier(state_dim).to(device) if learned else None
        self.done_fn = self.terminator or termination_rule(cfg.termination)

    def fit(self, batch: dict, seed: int) -> dict[str, float]:
        """Refit on replayed transitions (numpy, the replay's layout) -> metrics; per-member holdout MSEs in
        ``self.holdout_members`` [K]. The model and the termination classifier each draw from
        ``refit_generator(seed, data size)``, so a refit's randomness needs no checkpoint."""
        f32 = lambda x: torch.as_tensor(x, dtype=torch.float32, device=self.device)  # noqa: E731
        s, a, r = f32(batch["obs"]["state"]), f32(batch["action"]), f32(batch["reward"])  # [N, S], [N, A], [N]
        s2 = f32(batch["next_obs"]["state"])  # [N, S]
        cfg = self.cfg
        stats = fit_ensemble(
            self.ensemble,
            torch.cat([s, a], -1),
            self.ensemble.targets(s, a, s2, r),
            epochs=cfg.fit_epochs,
            batch_size=cfg.fit_batch,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            holdout_ratio=cfg.holdout_ratio,
            patience=cfg.patience,
            min_improvement=cfg.min_improvement,
            generator=refit_generator(seed, len(s)),
        )
        self.holdout_members = torch.tensor(stats["holdout_mse_members"])  # [K]
        metrics = {
            "loss/model_train": stats["train_loss"],
            "loss/model_holdout_mse": stats["holdout_mse"],
            "train/model_data": float(len(s)),
            "train/model_epochs": float(stats["epochs"]),
        }
        if self.terminator is not None:
            done = torch.as_tensor(batch["terminated"], device=self.device)
            metrics["loss/termination"] = self.terminator.fit(s2, done, generator=refit_generator(seed, len(s)))
        return metrics

    def open_loop(self, episode: dict, horizon: int) -> OpenLoop:
        """models/model_check.ensemble_open_loop on this model: the members' mean rolled open loop through the executed
        actions (rewards after a predicted termination count 0); model_error is the one-step relative state
        error ||s' - s'_true|| / ||s'_true|| of the members' mean over all the episode's transitions."""
        return ensemble_open_loop(self.ensemble, episode, horizon, self.done_fn, self.device)

    @torch.no_grad()
    def report(self, replay, sequences: int, length: int | None, context: int) -> dict:
        """The agents' ``report``: the ensemble's k-step state predictions against replayed sequences
        (reports/kstep.py). ``length`` None: min(50, longest episode), the context shortened to fit."""
        if length is None:
            length = min(50, replay.longest_episode)
            context = min(context, length - 1)
        if length > replay.longest_episode:
            raise ValueError(
                f"the k-step report needs an episode of {length} steps; the longest stored episode has "
                f"{replay.longest_episode}"
            )
        data = replay.sample_sequences(sequences, length)  # [B, T, ...] inside one episode each
        f32 = lambda x: torch.as_tensor(x, dtype=torch.float32, device=self.device)  # noqa: E731
        report = kstep_report(self.ensemble, f32(data["state"]), f32(data["action"]), context, f32(data["reward"]))
        return {"images": {"report/kstep": kstep_figure(report)}, "scalars": report.scalars()}

    def state_dict(self) -> dict:
        out = {"model": self.ensemble.state_dict()}
        if self.terminator is not None:
            out["terminator"] = self.terminator.state_dict()
        return out

    def load_state_dict(self, state: dict) -> None:
        self.ensemble.load_state_dict(state["model"])
        if self.terminator is not None:
            self.terminator.load_state_dict(state["terminator"])
