"""The model-based actor-critic ("version 2.0"): the imagined actor-critic of Dreamer (behaviours/actor_critic.py) on
the probabilistic state ensemble of PETS and MBPO, so the policy's gradient flows back through the learned state
dynamics (models/state_imagination.py).

Two batch streams:
    model      every ``model_every`` env steps: refit the ensemble on all real transitions (holdout early stopping)
    behaviour  train.replay_ratio updates per agent step: ``batch_size`` replayed states start ``horizon``-step
               imaginations; the actor maximises their lambda-returns through the model, the critic regresses them;
               the model's parameters are frozen there, so neither loss changes it

Dimension letters: N envs or imagination starts, S state dims, A action dims.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldmodels.agents.actor_critic_fields import ActorCriticFields
from worldmodels.agents.base import Agent, BatchSpec, Stream, register
from worldmodels.agents.state_model import StateModel, StateModelConfig, check_state_task
from worldmodels.behaviours.actor_critic import ActorCriticSettings, ImaginedActorCritic
from worldmodels.config import settings_from
from worldmodels.models.model_check import OpenLoop, check_metrics
from worldmodels.models.state_imagination import StateImagination


@dataclass
class MBACConfig(StateModelConfig, ActorCriticFields):
    name: str = "mbac"
    model_every: int = 250
    """Refit the ensemble on all real data every this many env steps."""
    batch_size: int = 256
    """Replayed states that start imaginations, per update."""
    ac_hidden: int = 256
    """Width of the actor's and critic's layers."""
    ac_layers: int = 2
    """Hidden layers of actor and critic."""


@register("mbac", MBACConfig)
class MBACAgent(Agent):
    def __init__(self, cfg: MBACConfig, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        alternatives = "dreamer learns from pixels; muzero and dyna_q act discretely"
        check_state_task("mbac", obs_space, action_space, alternatives)
        self.state_dim, self.action_dim = obs_space["state"].shape[0], action_space.shape[0]
        self.state_model = StateModel(cfg, self.state_dim, self.action_dim, self.device)
        self.seed = torch.initial_seed()  # the loop seeds torch with train.seed before building the agent
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)  # imagination noise
        self.imagination = StateImagination(self.state_model.ensemble, self.state_model.done_fn, self.generator)
        settings = settings_from(ActorCriticSettings, cfg, hidden="ac_hidden", layers="ac_layers")
        self.behaviour = ImaginedActorCritic(self.state_dim, self.action_dim, False, settings, self.device)
        self.fitted = False

    def streams(self) -> list[Stream]:
        cfg = self.cfg
        return [
            Stream("model", BatchSpec("all", batch_size=0), self.update_model, every_env_steps=cfg.model_every),
            Stream("behaviour", BatchSpec("transitions", cfg.batch_size), self.update_behaviour),
        ]

    def update_model(self, batch: dict) -> dict[str, float]:
        metrics = self.state_model.fit(batch, self.seed)
        self.fitted = True
        return metrics

    def update_behaviour(self, batch: dict) -> dict[str, float] | None:
        """Imagine from the replayed states of ``batch`` (their next_obs and rewards are not used); None (not an
        update) before the first model fit."""
        if not self.fitted:
            return None
        states = torch.as_tensor(batch["obs"]["state"], dtype=torch.float32, device=self.device)  # [N, S]
        starts = self.imagination.features(states)
        return self.behaviour.update(self.imagination, starts, torch.ones(len(states), device=self.device))

    @torch.no_grad()
    def act(self, obs, state, explore):
        states = torch.as_tensor(obs["state"], dtype=torch.float32, device=self.device)  # [N, S]
        action, _, _ = self.behaviour.actor(states, explore=explore)
        return action.clamp(-1, 1).cpu().numpy(), state, {}  # [N, A]

    @torch.no_grad()
    def open_loop(self, episode: dict, horizon: int, values: bool = False) -> OpenLoop:
        """The ensemble's open-loop prediction along an episode (agents/state_model.py). Values: the critic's."""
        out = self.state_model.open_loop(episode, horizon)
        if not values:
            return out
        start = torch.as_tensor(episode["state"], dtype=torch.float32, device=self.device)[: len(out.states)]
        path = torch.cat([start[:, None], out.states], 1)  # [N, H + 1, S]
        value = self.behaviour.value(self.imagination, self.imagination.features(path))  # [N, H + 1]
        return out._replace(values=value, discount=self.cfg.gamma)

    def ready_to_plan(self) -> None:
        self.fitted = True

    def report(self, replay, sequences: int = 4, length: int | None = None, context: int = 5) -> dict | None:
        """k-step state predictions of the ensemble against replayed sequences (StateModel.report); None before
        the first fit."""
        return self.state_model.report(replay, sequences, length, context) if self.fitted else None

    def model_check(self, episode: dict) -> dict[str, float] | None:
        """Failure modes over the imagination horizon (models/model_check.py); None before the first refit."""
        return check_metrics(self.open_loop(episode, self.cfg.horizon), episode) if self.fitted else None

    def state_dict(self) -> dict:
        return {
            **self.state_model.state_dict(),
            "behaviour": self.behaviour.training_state(),
            "fitted": self.fitted,
            "seed": self.seed,
            "generator": self.generator.get_state(),
            "generator_device": self.device.type,
        }

    def load_state_dict(self, state: dict) -> None:
        self.state_model.load_state_dict(state)
        self.behaviour.load_training_state(state["behaviour"])
        self.fitted, self.seed = state["fitted"], state["seed"]
        if state.get("generator_device") == self.device.type:
            self.generator.set_state(state["generator"])
