"""Value error on the agents' own episodes (analysis/value_error.py): discounted returns and the tail cut on worked
examples, the curve of a fake agent whose values are exact or off by one, episodes run past the task's time
limit, and every agent with a value function giving values of the real and predicted states."""

from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodels.analysis.update_speed import probe_agent
from worldmodels.analysis.value_error import (
    discounted_returns,
    policy_episodes,
    tail_decisions,
    value_curve,
    value_table,
)
from worldmodels.config import load_config
from worldmodels.models.model_check import OpenLoop

ROOT = Path(__file__).resolve().parents[1]


def test_discounted_returns_on_a_worked_example():
    # rewards[j] leads into step j: G_2 = 3, G_1 = 2 + 0.5 * 3, G_0 = 1 + 0.5 * 3.5, G_3 = 0
    assert discounted_returns(np.array([0.0, 1.0, 2.0, 3.0]), 0.5).tolist() == [2.75, 3.5, 3.0, 0.0]


def test_the_tail_cut_leaves_at_most_tol_of_the_discounted_weight():
    n = tail_decisions(0.99, 0.01)
    assert n == 459 and 0.99**n <= 0.01 < 0.99 ** (n - 1)
    with pytest.raises(ValueError, match="0 < tol < 1"):
        tail_decisions(0.99, 1.0)


class FakeAgent:
    """Values = the true discounted return + offset, from every start and after every k."""

    def __init__(self, offset: float, discount: float = 0.5):
        self.offset, self.discount = offset, discount

    def open_loop(self, episode, horizon, values=False):
        returns = torch.as_tensor(discounted_returns(episode["reward"], self.discount), dtype=torch.float32)
        n = len(episode["reward"]) - horizon  # windows of executed_windows
        truth = returns[torch.arange(n)[:, None] + torch.arange(horizon + 1)]  # [N, H + 1]
        return OpenLoop(torch.zeros(n, horizon), 0.0, values=truth + self.offset, discount=self.discount)


def test_exact_values_score_zero_and_an_offset_shows_as_error_and_bias_at_every_k():
    episode = {"reward": np.random.default_rng(0).normal(size=41).astype(np.float32)}  # 40 decisions
    exact = value_curve(FakeAgent(0.0), [episode], horizon=3, tol=0.01)
    assert np.allclose(exact.error, 0, atol=1e-6) and exact.error.shape == (4,)
    # tail_decisions(0.5, 0.01) = 7: starts t = 0 .. 40 - 3 - 7 are scored
    assert exact.starts == 31 and exact.discount == 0.5
    off = value_curve(FakeAgent(1.0), [episode, episode], horizon=3, tol=0.01)
    assert np.allclose(off.error, 1.0) and np.allclose(off.bias, 1.0) and off.starts == 62
    assert "| fake | 1 | 1 |" in value_table({"fake": off}, ks=(0, 3))
    with pytest.warns(UserWarning, match="too short"), pytest.raises(ValueError, match="every episode is too short"):
        value_curve(FakeAgent(0.0), [episode], horizon=3, tol=1e-12)  # a 40-decision tail
    ended = episode | {"is_terminal": np.arange(41) == 40}  # a terminal state: nothing past it, every start scored
    assert value_curve(FakeAgent(0.0), [ended], horizon=3, tol=1e-12).starts == 38


def test_an_agent_without_a_value_function_has_no_value_curve():
    class NoValue:
        def open_loop(self, episode, horizon, values=False):
            return OpenLoop(torch.zeros(1, horizon), 0.0)

    assert value_curve(NoValue(), [{"reward": np.zeros(10, np.float32)}], horizon=2, tol=0.5) is None


def test_policy_episodes_run_past_the_tasks_time_limit_with_the_agents_greedy_actions():
    cfg = load_config([ROOT / "configs/tiny.yaml"])  # SAC on gym:Pendulum-v1 (200 steps an episode)
    agent, _ = probe_agent(cfg)
    (episode,) = policy_episodes(agent, cfg, episodes=1, seed=3, decisions=250)
    assert len(episode["reward"]) == 251 and episode["is_first"][0] and episode["is_last"][-1]
    assert episode["state"].shape == (251, 3) and not episode["is_terminal"].any()
    obs = {"state": episode["state"][:1], "is_first": np.array([True])}
    greedy, _, _ = agent.act(obs, None, explore=False)
    assert np.allclose(episode["action"][1], greedy[0])  # the first decision is the agent's greedy action


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("tdmpc/tiny.yaml", []),
        ("dreamer/tiny.yaml", []),
        ("muzero/pendulum.yaml", ["agent.latent=16", "agent.hidden=16"]),
        ("mbpo/pendulum.yaml", []),
        ("mbac/pendulum.yaml", []),
    ],
)
def test_every_agent_with_a_value_function_values_the_real_and_the_predicted_states(preset, overrides):
    cfg = load_config([ROOT / "configs" / preset], ["train.threads=1", *overrides])
    agent, _ = probe_agent(cfg)
    agent.ready_to_plan()
    (episode,) = policy_episodes(agent, cfg, episodes=1, seed=0, decisions=12)
    out = agent.open_loop(episode, 4, values=True)
    assert out.values.shape == (12 - 4 + 1, 5) and torch.isfinite(out.values).all()
    assert 0 < out.discount < 1
    assert agent.open_loop(episode, 4).values is None  # only when asked: training's checks do not pay for it


def test_a_value_k_steps_ahead_on_a_perfect_model_is_the_value_of_the_real_state_k_steps_later():
    """With the model's open-loop states replaced by the true ones, values[t, k] must equal values[t + k, 0]: the
    value of step k of window t is aligned with the real state t + k."""
    cfg = load_config([ROOT / "configs/mbac/pendulum.yaml"], ["train.threads=1"])
    agent, _ = probe_agent(cfg)
    (episode,) = policy_episodes(agent, cfg, episodes=1, seed=0, decisions=12)
    states = torch.as_tensor(episode["state"], dtype=torch.float32)
    horizon, n = 4, 12 - 4 + 1
    truth = torch.stack([states[1 + k : 1 + k + n] for k in range(horizon)], 1)  # [N, H, S]: s_{t+1..t+H}
    agent.state_model.open_loop = lambda ep, h: OpenLoop(torch.zeros(n, h), 0.0, truth)
    values = agent.open_loop(episode, horizon, values=True).values  # [N, H + 1]
    for k in range(1, horizon + 1):  # k = 0 would compare a column with itself
        torch.testing.assert_close(values[: n - k, k], values[k:, 0])


def test_mpc_with_a_terminal_value_gives_no_values_its_planner_does_not_follow():
    cfg = load_config([ROOT / "configs/mpc_value/pendulum.yaml"], ["train.threads=1"])
    agent, _ = probe_agent(cfg)
    agent.ready_to_plan()
    (episode,) = policy_episodes(agent, cfg, episodes=1, seed=0, decisions=6)
    assert agent.open_loop(episode, 2, values=True).values is None
