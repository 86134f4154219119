"""Tabular Dyna-Q (Sutton & Barto 2018, section 8.2): per real transition, one Q-learning update, the update of a
deterministic tabular model (s, a) -> (r, s', terminated), then K planning updates, each a Q-learning update with
the model's answer in place of the env's, on a pair drawn as Figure 8.1 draws it: a state uniformly from those the
model has seen, then an action uniformly from those the model holds for that state.

Dimension letters: N envs acting at once, S states, A actions.

Observations are one-hot states [N, S] (the gym wrapper turns a Discrete observation into one); actions are
discrete. The one batch stream is 'latest' at ratio 1, so every real transition is learned from once, as it
happens (the replay only holds finished episodes). With N envs the N real updates of a step are applied at once
(``np.add.at``: two envs on the same pair both count), then the N x K planning updates one after another (each
reads what the last wrote: that is the algorithm).

Randomness follows the run seed (the loop seeds torch before building the agent): three numpy generators, for
acting while exploring, for the planning draws and for breaking ties of the greedy (evaluation) policy, start
from ``torch.initial_seed()`` and are checkpointed. So evaluating does not change what training draws, and runs
of one seed with different K act alike until their values differ: the first episode, before any reward, is the
same walk for every K (as in Sutton & Barto's Figure 8.2). The pairs a partial model may store
(``model_coverage`` < 1) are drawn once from the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldmodels.agents.base import Agent, BatchSpec, Stream, register
from worldmodels.config import AgentConfig
from worldmodels.envs import is_discrete
from worldmodels.envs.spaces import is_one_hot_state

NEEDS = (
    "dyna_q is tabular: it needs discrete observations, given as one-hot states (env.obs=state on a Discrete "
    "observation space, e.g. gym:worldmodels/DynaMaze-v0 or gym:worldmodels/FrozenLakeDeterministic-v0), and "
    "discrete actions. For continuous actions use sac, pets or mbpo; for continuous observations with discrete "
    "actions use muzero or dreamer"
)


@dataclass
class DynaQConfig(AgentConfig):
    name: str = "dyna_q"
    alpha: float = 0.1
    """Step size of every Q update, real and planned."""
    gamma: float = 0.95
    """Discount per agent step."""
    epsilon: float = 0.1
    """Probability of a uniformly random action while exploring (evaluation is greedy)."""
    planning_steps: int = 5
    """K: planning updates per real transition, each on a random seen state and a random action taken there (0:
    plain Q-learning)."""
    model_coverage: float = 1.0
    """Share of all S x A state-action pairs the model may store (1.0: all); the subset is drawn from the seed."""
    q_history_every: int = 0
    """Keep a copy of the Q table every this many real transitions, in the checkpoint (0: none; for studies)."""


def check_spaces(obs_space, action_space) -> None:
    """A ValueError naming the agents that fit when the task is not tabular."""
    if not is_discrete(action_space):
        raise ValueError(f"the action space is {action_space}, not Discrete. {NEEDS}")
    if "state" not in obs_space.spaces or not is_one_hot_state(obs_space):
        raise ValueError(f"the observations are {obs_space}, not one-hot states. {NEEDS}")


def check_settings(cfg: DynaQConfig) -> None:
    ranges = {"alpha": (cfg.alpha, 0.0, 1.0), "gamma": (cfg.gamma, 0.0, 1.0), "epsilon": (cfg.epsilon, 0.0, 1.0)}
    ranges["model_coverage"] = (cfg.model_coverage, 0.0, 1.0)
    for key, (value, low, high) in ranges.items():
        if not low <= value <= high:
            raise ValueError(f"agent.{key} must be in [{low}, {high}], got {value}")
    if cfg.alpha == 0:
        raise ValueError("agent.alpha must be positive (0 learns nothing)")
    if cfg.planning_steps < 0 or cfg.q_history_every < 0:
        raise ValueError("agent.planning_steps and agent.q_history_every must not be negative")


@register("dyna_q", DynaQConfig)
class DynaQAgent(Agent):
    def __init__(self, cfg: DynaQConfig, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        check_spaces(obs_space, action_space)
        check_settings(cfg)
        states, actions = obs_space["state"].shape[0], int(action_space.n)
        self.seed = torch.initial_seed()  # the loop seeds torch with train.seed before building the agent
        self.rng = np.random.default_rng(self.seed)  # acting while exploring
        self.greedy_rng = np.random.default_rng([self.seed, 1])  # ties of the greedy policy
        self.planning_rng = np.random.default_rng([self.seed, 3])  # the pairs planning updates
        self.q = np.zeros((states, actions))  # [S, A]
        self.model_next = np.zeros((states, actions), np.int64)  # [S, A] next state
        self.model_reward = np.zeros((states, actions))  # [S, A]
        self.model_terminal = np.zeros((states, actions), bool)  # [S, A]
        self.model_seen = np.zeros((states, actions), bool)  # [S, A] pairs the model holds
        count = round(cfg.model_coverage * states * actions)
        chosen = np.random.default_rng([self.seed, 2]).permutation(states * actions)[:count]
        self.storable = np.zeros(states * actions, bool)
        self.storable[chosen] = True
        self.storable = self.storable.reshape(states, actions)  # [S, A] pairs the model may store
        self.transitions = 0
        self.q_history: list[np.ndarray] = []  # [S, A] float32 copies, every q_history_every transitions
        self.q_history_steps: list[int] = []

    def streams(self) -> list[Stream]:
        return [Stream("td", BatchSpec("latest", batch_size=0), self.update, ratio=1.0)]

    def states(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One-hot states [N, S] -> indices [N]."""
        one_hot = np.asarray(obs["state"])  # [N, S]
        index = one_hot.argmax(-1)  # [N]
        if not (np.all(one_hot.sum(-1) == 1) and np.all(one_hot[np.arange(len(index)), index] == 1)):
            raise ValueError(f"dyna_q reads one-hot states; got rows such as {one_hot[0]}")
        return index

    def act(self, obs, state, explore):
        s = self.states(obs)  # [N]
        q = self.q[s]  # [N, A]
        rng = self.rng if explore else self.greedy_rng
        best = q == q.max(-1, keepdims=True)  # [N, A]
        action = np.where(best, rng.random(q.shape), -1.0).argmax(-1)  # greedy, ties broken at random
        if explore:
            uniform = rng.random(len(s)) < self.cfg.epsilon  # [N]
            action = np.where(uniform, rng.integers(q.shape[1], size=len(s)), action)
        return action.astype(np.int64), state, {}

    def update(self, batch) -> dict[str, float]:
        """The N real transitions of the last vector step: Q-learning, the model, then N x K planning updates."""
        s, s2 = self.states(batch["obs"]), self.states(batch["next_obs"])  # [N], [N]
        a = np.asarray(batch["action"], np.int64).reshape(-1)  # [N]
        r = np.asarray(batch["reward"], np.float64)  # [N]
        done = np.asarray(batch["terminated"], bool)  # [N]
        target = r + self.cfg.gamma * np.where(done, 0.0, self.q[s2].max(-1))  # [N]
        td = target - self.q[s, a]  # [N]
        np.add.at(self.q, (s, a), self.cfg.alpha * td)
        self.remember(s, a, r, s2, done)
        self.plan(len(s) * self.cfg.planning_steps)
        self.record_q(len(s))
        return {"loss/td_error": float(np.abs(td).mean()), "train/model_pairs": float(self.model_seen.sum())}

    def remember(self, s: np.ndarray, a: np.ndarray, r: np.ndarray, s2: np.ndarray, done: np.ndarray) -> None:
        """Store what each pair led to (a deterministic model: the latest answer wins), where coverage allows."""
        keep = self.storable[s, a]  # [N]
        s, a = s[keep], a[keep]
        self.model_next[s, a], self.model_reward[s, a], self.model_terminal[s, a] = s2[keep], r[keep], done[keep]
        self.model_seen[s, a] = True

    def plan(self, updates: int) -> None:
        """``updates`` Q-learning updates on stored pairs (``draw_pairs``), one after another."""
        pairs = self.draw_pairs(updates)  # [K] flat pairs
        if len(pairs) == 0:
            return
        flat_q = self.q.reshape(-1)  # a view: writing it writes self.q
        nexts, rewards = self.model_next.reshape(-1)[pairs], self.model_reward.reshape(-1)[pairs]
        terminals = self.model_terminal.reshape(-1)[pairs]
        alpha, gamma, q = self.cfg.alpha, self.cfg.gamma, self.q
        for pair, s2, r, done in zip(pairs.tolist(), nexts.tolist(), rewards.tolist(), terminals.tolist(), strict=True):
            target = r if done else r + gamma * q[s2].max()
            flat_q[pair] += alpha * (target - flat_q[pair])

    def draw_pairs(self, updates: int) -> np.ndarray:
        """[K] flat pairs s * A + a: a state drawn uniformly from those the model has seen, then an action drawn
        uniformly from those it holds there (Figure 8.1; empty while the model holds nothing)."""
        seen_states = np.flatnonzero(self.model_seen.any(-1))  # [V]
        if updates == 0 or len(seen_states) == 0:
            return np.zeros(0, np.int64)
        rng, actions = self.planning_rng, self.q.shape[1]
        s = seen_states[rng.integers(len(seen_states), size=updates)]  # [K]
        a = np.where(self.model_seen[s], rng.random((updates, actions)), -1.0).argmax(-1)  # [K] a held action
        return s * actions + a

    def record_q(self, new_transitions: int) -> None:
        every, before = self.cfg.q_history_every, self.transitions
        self.transitions += new_transitions
        if every and self.transitions // every > before // every:
            self.q_history.append(self.q.astype(np.float32))
            self.q_history_steps.append(self.transitions)

    def state_dict(self) -> dict:
        return {
            "q": self.q.copy(),
            "model_next": self.model_next.copy(),
            "model_reward": self.model_reward.copy(),
            "model_terminal": self.model_terminal.copy(),
            "model_seen": self.model_seen.copy(),
            "storable": self.storable.copy(),
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "greedy_rng": self.greedy_rng.bit_generator.state,
            "planning_rng": self.planning_rng.bit_generator.state,
            "transitions": self.transitions,
            "q_history": np.stack(self.q_history) if self.q_history else np.zeros((0,) + self.q.shape, np.float32),
            "q_history_steps": np.asarray(self.q_history_steps, np.int64),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["q"].shape != self.q.shape:
            raise ValueError(f"the checkpoint's Q table is {state['q'].shape}, this task's is {self.q.shape}")
        self.q[:] = state["q"]
        self.model_next[:], self.model_reward[:] = state["model_next"], state["model_reward"]
        self.model_terminal[:], self.storable[:] = state["model_terminal"], state["storable"]
        self.model_seen[:] = state["model_seen"]
        self.seed = state["seed"]
        self.rng.bit_generator.state = state["rng"]
        self.greedy_rng.bit_generator.state = state["greedy_rng"]
        self.planning_rng.bit_generator.state = state["planning_rng"]
        self.transitions = state["transitions"]
        self.q_history = list(state["q_history"])
        self.q_history_steps = [int(step) for step in state["q_history_steps"]]
