"""MuZero's open-loop report (reports/unroll.py): shapes for state and pixel agents, and a model that knows the
episode scoring zero error while an off-by-one reward head does not."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from worldmodels.agents.muzero import MuZeroAgent, MuZeroConfig
from worldmodels.analysis.muzero_fit import discounted_returns
from worldmodels.envs.spaces import observation_space
from worldmodels.replay import ReplayStore
from worldmodels.reports.unroll import window_returns


def episode(length: int, rng, pixels: bool = False, terminal: bool = True) -> dict:
    """An episode whose state is the step index, with random rewards and actions."""
    t = np.arange(length)
    out = {
        "action": rng.integers(0, 2, length),
        "reward": rng.normal(size=length).astype(np.float32),
        "is_first": t == 0,
        "is_last": t == length - 1,
        "is_terminal": (t == length - 1) & terminal,
    }
    out["reward"][0] = 0
    if pixels:
        out["pixels"] = rng.integers(0, 255, (length, 3, 16, 16), dtype=np.uint8)
    else:
        out["state"] = np.repeat(t[:, None].astype(np.float32), 3, 1)
    return out


def filled_replay(episodes: list[dict]) -> ReplayStore:
    replay = ReplayStore(10_000, seed=0)
    for e in episodes:
        replay.add_episode(e)
    return replay


@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_report_has_an_image_and_finite_errors(obs):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = MuZeroConfig(latent=16, hidden=16, depth=4, unroll=3, td_steps=4, frame_stack=3)
    agent = MuZeroAgent(cfg, observation_space(obs, 16, 3), spaces.Discrete(2), "cpu")
    episodes = [episode(n, rng, pixels=obs == "pixels") for n in (6, 20, 9)]  # some end inside windows
    replay = filled_replay(episodes)
    report = agent.report(replay, sequences=3)
    image = report["images"]["report/unroll"]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[0] == 3
    assert set(report["scalars"]) == {"report/unroll_reward_abs_error", "report/unroll_value_abs_error"}
    assert all(np.isfinite(v) for v in report["scalars"].values())
    # A context past the window is clamped to its last step (length - 1): the same report, on the same windows.
    clamped = agent.report(filled_replay(episodes), sequences=2, length=4, context=99)["scalars"]
    assert clamped == agent.report(filled_replay(episodes), sequences=2, length=4, context=3)["scalars"]
    assert clamped != agent.report(filled_replay(episodes), sequences=2, length=4, context=2)["scalars"]


def test_window_returns_match_a_worked_example():
    # discount 0.5, rewards [0, 1, 2, 3], bootstrap value 4 after the last step: G = [3.25, 4.5, 5, 4]
    reward = torch.tensor([[0.0, 1, 2, 3], [0, 1, 2, 3]], dtype=torch.float64)
    valid = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)  # window 1 ends at step 2...
    terminal = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)  # ...by a termination: nothing follows
    G = window_returns(reward, valid, terminal, torch.tensor([4.0, 4.0], dtype=torch.float64), 0.5)
    torch.testing.assert_close(G[0], torch.tensor([3.25, 4.5, 5.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(G[1, :3], torch.tensor([2.0, 2.0, 0.0], dtype=torch.float64))


class TruthNet(torch.nn.Module):
    """Knows the one episode: the latent is the step index, the dynamics add one, the heads decode the true reward
    for reaching the step and the true discounted return from it."""

    has_pixels = False

    def __init__(self, rewards, returns):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.table = torch.stack([torch.as_tensor(rewards), torch.as_tensor(returns)], -1).double()  # [L, 2]

    def represent(self, obs):
        return obs["state"][:, :1].round()  # [B, 1] the step index

    def dynamics(self, s, action):
        return s + 1

    def decode_scalars(self, s):
        return self.table[s[:, 0].long().clamp(max=len(self.table) - 1)], None


@pytest.mark.parametrize("terminal", [True, False])
def test_a_model_that_knows_the_episode_scores_zero_error(terminal):
    rng = np.random.default_rng(1)
    discount = 0.9
    e = episode(40, rng, terminal=terminal)
    agent = MuZeroAgent(
        MuZeroConfig(latent=16, hidden=16, discount=discount),
        observation_space("state", 16, 3),
        spaces.Discrete(2),
        "cpu",
    )
    agent.net = TruthNet(e["reward"], discounted_returns(e["reward"], discount))
    replay = filled_replay([e])
    scalars = agent.report(replay, sequences=16, length=12, context=3)["scalars"]
    assert scalars["report/unroll_reward_abs_error"] < 1e-6
    assert scalars["report/unroll_value_abs_error"] < 1e-5
    # rewards predicted for the step before (the usual off-by-one): independent rewards, a large error
    agent.net.table[:, 0] = torch.roll(agent.net.table[:, 0], 1)
    assert agent.report(replay, sequences=16, length=12, context=3)["scalars"]["report/unroll_reward_abs_error"] > 0.5
