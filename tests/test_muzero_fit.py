import numpy as np
import pytest
import torch
from gymnasium import spaces

from worldmodels.agents.muzero import MuZeroAgent, MuZeroConfig
from worldmodels.analysis.muzero_fit import discounted_returns, episode_observations, prediction_fit, unscored_tail
from worldmodels.envs.spaces import observation_space
from worldmodels.models.muzero import stack_frames


def test_discounted_returns_match_a_worked_example():
    # r_t is the reward for reaching step t: G_0 = 1 + 0.5 * 2 + 0.25 * 3, G_1 = 2 + 0.5 * 3, G_2 = 3, G_3 = 0
    np.testing.assert_allclose(discounted_returns(np.array([0.0, 1.0, 2.0, 3.0]), 0.5), [2.75, 3.5, 3.0, 0.0])
    assert unscored_tail(0.96) == 74 and 0.96**74 < 0.05 < 0.96**73 and unscored_tail(1.0) == 0


def test_episode_frame_stacks_are_what_acting_builds():
    agent = MuZeroAgent(
        MuZeroConfig(latent=16, hidden=16, depth=4, simulations=2, frame_stack=3),
        observation_space("pixels", 16, 5),
        spaces.Discrete(2),
        "cpu",
    )
    pixels = np.random.default_rng(0).integers(0, 255, (7, 3, 16, 16), dtype=np.uint8)  # [T, C, H, W]
    stacks, state = episode_observations(agent, {"pixels": pixels, "reward": np.zeros(7)})["pixels"].numpy(), None
    assert stacks.shape == (7, 9, 16, 16)
    for t in range(7):
        _, state, _ = agent.act({"pixels": pixels[t : t + 1], "is_first": np.array([t == 0])}, state, explore=False)
        np.testing.assert_array_equal(stacks[t], stack_frames(torch.as_tensor(state))[0].numpy())


class TruthNet(torch.nn.Module):
    """A 'model' that knows the episode: the latent is the step index, the dynamics add one, and the heads
    decode the true reward for reaching that step and the true return from it."""

    has_pixels = False

    def __init__(self, rewards, returns):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.table = torch.stack([torch.as_tensor(rewards), torch.as_tensor(returns)], -1).float()  # [T, 2]

    def represent(self, obs):
        return obs["state"][:, :1].round()  # [T, 1] the step index

    def dynamics(self, s, action):
        return s + 1

    def decode_scalars(self, s):
        return self.table[s[:, 0].long()], None


def test_prediction_fit_scores_a_perfect_model_as_perfect_and_drops_the_truncated_tail():
    rng = np.random.default_rng(0)
    T, discount = 100, 0.9
    rewards = rng.normal(size=T).astype(np.float32)
    episode = {
        "state": np.repeat(np.arange(T, dtype=np.float32)[:, None], 3, 1),
        "action": rng.integers(0, 2, T),
        "reward": rewards,
        "is_terminal": np.zeros(T, bool),
    }
    agent = MuZeroAgent(
        MuZeroConfig(latent=16, hidden=16, simulations=2, discount=discount),
        observation_space("state", 64, 3),
        spaces.Discrete(2),
        "cpu",
    )
    agent.net = TruthNet(rewards, discounted_returns(rewards, discount))
    fit = prediction_fit(agent, [episode, episode])
    assert fit.reward_corr == pytest.approx(1.0) and fit.value_corr == pytest.approx(1.0)
    assert fit.value_rmse == pytest.approx(0.0, abs=1e-5) and fit.steps == 2 * (T - unscored_tail(discount))
    terminal = {**episode, "is_terminal": np.arange(T) == T - 1}  # a terminal episode's returns are complete
    assert prediction_fit(agent, [terminal]).steps == T
    # rewards predicted for the step before (the usual off-by-one) do not fit: the rewards are independent
    agent.net.table[:, 0] = torch.roll(agent.net.table[:, 0], 1)
    assert abs(prediction_fit(agent, [episode]).reward_corr) < 0.3
