"""MBPO (Janner et al. 2019): SAC trained mostly on short branched rollouts of a probabilistic ensemble.

Two batch streams:
    model   every ``model_every`` env steps: refit the ensemble on all real transitions (holdout early stopping),
            rank the members by holdout error (the best ``elites`` are used), then roll the current policy k steps
            from ``rollout_batch`` real states through the elites (a random elite per transition) into the model
            buffer, which keeps the rollouts of the last ``retain_epochs`` epochs
    policy  G = train.replay_ratio SAC updates per agent step, each on a batch whose ``real_ratio`` share is real
            replayed transitions and the rest model-buffer transitions

Rollout length k: ``rollout_schedule`` (MBPO's linear schedule over epochs of ``epoch_length`` env steps counted from
the end of warm-up), or ``rollout_mode=adaptive``: after each refit, the longest k up to the schedule's maximum
whose measured k-step error (the elites' open-loop mean against replayed windows, in units of the states'
variance) stays under ``adaptive_error``. The rule in force is logged (train/rollout_length).

Dimension letters: B batch, M rollout starts, K members, E elites, S state dims, A action dims.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldmodels.agents.base import Agent, BatchSpec, Stream, register
from worldmodels.agents.sac import SACFields
from worldmodels.agents.state_model import StateModel, StateModelConfig, check_state_task, refit_generator
from worldmodels.behaviours.sac import SACLearner, SACSettings
from worldmodels.config import settings_from
from worldmodels.models.branched import (
    adaptive_length,
    branched_rollout,
    chained_windows,
    kstep_error,
    scheduled_length,
)
from worldmodels.models.model_check import OpenLoop, check_metrics
from worldmodels.replay.model_buffer import TransitionBuffer

ROLLOUT_MODES = ("schedule", "adaptive")


@dataclass
class MBPOConfig(StateModelConfig, SACFields):
    name: str = "mbpo"
    members: int = 7
    """Ensemble members."""
    hidden: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden layers of each member."""
    holdout_ratio: float = 0.2
    """Share of the data held out for early stopping and for ranking the elites."""
    elites: int = 5
    """Members with the lowest holdout error that make the rollouts."""
    model_every: int = 250
    """Refit the model and make new rollouts every this many env steps."""
    rollout_batch: int = 100_000
    """Real start states per rollout round (M)."""
    rollout_schedule: tuple[int, ...] = (20, 100, 1, 1)
    """(epoch_a, epoch_b, k_a, k_b): rollout length k_a until epoch_a, k_b from epoch_b, linear in between."""
    epoch_length: int = 1000
    """Env steps per epoch of the rollout schedule and of the model buffer's retention."""
    rollout_mode: str = "schedule"
    """schedule (MBPO's linear schedule) or adaptive (shorten k while the measured k-step error is large)."""
    adaptive_error: float = 0.05
    """adaptive: largest k-step error (MSE / state variance) a rollout length may have."""
    adaptive_windows: int = 256
    """adaptive: replayed windows the k-step error is measured on."""
    retain_epochs: int = 1
    """Epochs of rollouts the model buffer keeps (sized, as in MBPO, for the rollout length in force: when k grows,
    older short rollouts are not read)."""
    real_ratio: float = 0.05
    """Share of each policy batch taken from real transitions (the rest from the model buffer)."""
    policy_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of SAC's actor and of each critic."""


@register("mbpo", MBPOConfig)
class MBPOAgent(Agent):
    def __init__(self, cfg: MBPOConfig, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        check_state_task(cfg.name, obs_space, action_space, "sac learns from pixels; muzero and dyna_q act discretely")
        if not 0 < cfg.elites <= cfg.members:
            raise ValueError(f"agent.elites must be in 1..agent.members ({cfg.members}), got {cfg.elites}")
        if cfg.rollout_mode not in ROLLOUT_MODES:
            raise ValueError(f"agent.rollout_mode must be one of {ROLLOUT_MODES}, got {cfg.rollout_mode!r}")
        if len(cfg.rollout_schedule) != 4 or min(cfg.rollout_schedule[2:]) < 1:
            raise ValueError(
                f"agent.rollout_schedule is (epoch_a, epoch_b, k_a, k_b) with k >= 1, got {cfg.rollout_schedule}"
            )
        if not 0.0 <= cfg.real_ratio <= 1.0:
            raise ValueError(f"agent.real_ratio must be in [0, 1], got {cfg.real_ratio}")
        self.state_dim, self.action_dim = obs_space["state"].shape[0], action_space.shape[0]
        self.state_model = StateModel(cfg, self.state_dim, self.action_dim, self.device)
        self.model = self.state_model.ensemble
        settings = settings_from(SACSettings, cfg, hidden="policy_hidden")
        self.learner = SACLearner(obs_space, self.action_dim, settings, self.device)
        self.rounds_kept = max(1, cfg.epoch_length // cfg.model_every) * cfg.retain_epochs  # rollout rounds
        k_max = max(cfg.rollout_schedule[2:])
        capacity = cfg.rollout_batch * k_max * self.rounds_kept
        self.buffer = TransitionBuffer(capacity, self.state_dim, self.action_dim, self.device)
        self.elites = torch.arange(cfg.elites, device=self.device)
        self.seed = torch.initial_seed()  # the loop seeds torch with train.seed before building the agent
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.fits = 0  # model refits so far: fits x model_every env steps have passed since warm-up
        self.rollout_length = cfg.rollout_schedule[2]

    def streams(self) -> list[Stream]:
        cfg = self.cfg
        return [
            Stream("model", BatchSpec("all", batch_size=0), self.update_model, every_env_steps=cfg.model_every),
            Stream("policy", BatchSpec("transitions", cfg.batch_size), self.update_policy),
        ]

    # -- model: refit, elites, rollout length, branched rollouts ----------------------------------------------
    def update_model(self, batch: dict) -> dict[str, float]:
        cfg = self.cfg
        metrics = self.state_model.fit(batch, self.seed)
        self.fits += 1
        ranked = torch.argsort(self.state_model.holdout_members.nan_to_num(float("inf")))
        self.elites = ranked[: cfg.elites].to(self.device)
        self.rollout_length, extra = self.next_rollout_length(batch)
        metrics.update(extra)
        starts = torch.randint(
            len(batch["reward"]), (cfg.rollout_batch,), generator=refit_generator(self.seed, self.fits)
        )
        states = torch.as_tensor(batch["obs"]["state"][starts.numpy()], dtype=torch.float32, device=self.device)
        rollouts = branched_rollout(
            self.model,
            self.elites,
            lambda s: self.learner.act({"state": s}, deterministic=False),
            states,
            self.rollout_length,
            done_fn=self.state_model.done_fn,
            generator=self.generator,
        )
        self.buffer.add(rollouts)
        metrics.update(
            {
                "train/rollout_length": float(self.rollout_length),
                "train/rollout_transitions": float(len(rollouts["reward"])),
                "train/model_buffer": float(min(len(self.buffer), self.pool_size())),  # what policy batches read
                "train/rollout_reward": rollouts["reward"].mean().item(),
                "loss/model_elite_holdout_mse": self.state_model.holdout_members[self.elites.cpu()].mean().item(),
            }
        )
        return metrics

    def pool_size(self) -> int:
        """MBPO's model pool: the transitions of ``retain_epochs`` epochs of rollout rounds at the k in force."""
        return self.cfg.rollout_batch * self.rollout_length * self.rounds_kept

    def next_rollout_length(self, batch: dict) -> tuple[int, dict[str, float]]:
        """The schedule's k for the current epoch, or with rollout_mode=adaptive the longest k up to the schedule's
        maximum whose k-step error stays under adaptive_error (measured on replayed windows)."""
        cfg = self.cfg
        epoch = self.fits * cfg.model_every / cfg.epoch_length
        if cfg.rollout_mode == "schedule":
            return scheduled_length(epoch, cfg.rollout_schedule), {}
        k_max = max(cfg.rollout_schedule[2:])
        for k in range(k_max, 0, -1):  # the longest windows the replay holds, at most k_max steps
            windows = chained_windows(batch, k, cfg.adaptive_windows, refit_generator(self.seed, self.fits))
            if windows is not None:
                break
        if windows is None:
            return 1, {}
        states, actions = (x.to(self.device) for x in windows)
        errors = kstep_error(self.model, self.elites, states, actions)  # [k]
        return adaptive_length(errors, cfg.adaptive_error), {
            "train/kstep_error_1": errors[0].item(),
            "train/kstep_error_last": errors[-1].item(),
        }

    # -- policy: SAC on mixed real and imagined batches -------------------------------------------------------
    def update_policy(self, batch: dict) -> dict[str, float]:
        """batch: cfg.batch_size real transitions (numpy); the first real_ratio share of them is kept and the rest
        comes from the model buffer (all real until the first rollout)."""
        f32 = lambda x: torch.as_tensor(x, dtype=torch.float32, device=self.device)  # noqa: E731
        real = {
            "state": f32(batch["obs"]["state"]),  # [B, S]
            "action": f32(batch["action"]),  # [B, A]
            "reward": f32(batch["reward"]),  # [B]
            "next_state": f32(batch["next_obs"]["state"]),
            "terminated": torch.as_tensor(batch["terminated"], device=self.device),
        }
        size = len(real["reward"])
        n_real = size if len(self.buffer) == 0 else round(size * self.cfg.real_ratio)
        mixed = real
        if n_real < size:
            imagined = self.buffer.sample(size - n_real, self.generator, newest=self.pool_size())
            mixed = {key: torch.cat([real[key][:n_real], imagined[key]]) for key in real}
        metrics = self.learner.update(
            {
                "obs": {"state": mixed["state"]},
                "next_obs": {"state": mixed["next_state"]},
                "action": mixed["action"],
                "reward": mixed["reward"],
                "terminated": mixed["terminated"],
            }
        )
        metrics["train/real_share"] = n_real / size
        return metrics

    def act(self, obs, state, explore):
        states = torch.as_tensor(obs["state"], dtype=torch.float32, device=self.device)  # [N, S]
        return self.learner.act({"state": states}, deterministic=not explore).cpu().numpy(), state, {}

    @torch.no_grad()
    def open_loop(self, episode: dict, horizon: int, values: bool = False) -> OpenLoop:
        """The ensemble's open-loop prediction along an episode (agents/state_model.py). Values: SAC's soft Q (the
        minimum of its two heads) at the policy's mean action."""
        out = self.state_model.open_loop(episode, horizon)
        if not values:
            return out
        start = torch.as_tensor(episode["state"], dtype=torch.float32, device=self.device)[: len(out.states)]
        path = torch.cat([start[:, None], out.states], 1)  # [N, H + 1, S]
        features = self.learner.critic.encoder({"state": path.reshape(-1, path.shape[-1])})
        action = self.learner.actor(features, deterministic=True)[0]
        value = self.learner.critic.values(features, action).min(0).values.view(path.shape[:2])  # [N, H + 1]
        return out._replace(values=value, discount=self.learner.settings.gamma)

    def report(self, replay, sequences: int = 4, length: int | None = None, context: int = 5) -> dict | None:
        """k-step state predictions of the ensemble against replayed sequences (StateModel.report); None before
        the first refit."""
        return self.state_model.report(replay, sequences, length, context) if self.fits else None

    def ready_to_plan(self) -> None:
        self.fits = max(self.fits, 1)

    def model_check(self, episode: dict) -> dict[str, float] | None:
        """Failure modes over the rollout length in force (models/model_check.py); None before the first refit."""
        return check_metrics(self.open_loop(episode, self.rollout_length), episode) if self.fits else None

    def state_dict(self) -> dict:
        return {
            **self.state_model.state_dict(),
            "learner": self.learner.training_state(),
            "buffer": self.buffer.state_dict(),
            "elites": self.elites.cpu(),
            "fits": self.fits,
            "rollout_length": self.rollout_length,
            "seed": self.seed,
            "generator": self.generator.get_state(),
            "generator_device": self.device.type,
        }

    def load_state_dict(self, state: dict) -> None:
        self.state_model.load_state_dict(state)
        self.learner.load_training_state(state["learner"])
        self.buffer.load_state_dict(state["buffer"])
        self.elites = state["elites"].to(self.device)
        self.fits, self.rollout_length, self.seed = state["fits"], state["rollout_length"], state["seed"]
        if state.get("generator_device") == self.device.type:
            self.generator.set_state(state["generator"])
