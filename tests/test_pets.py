import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from worldmodels.agents.pets import PETSAgent, PETSConfig
from worldmodels.config import load_config
from worldmodels.envs.spaces import observation_space
from worldmodels.run.loop import train

ROOT = Path(__file__).resolve().parents[1]


def point_mass_batch(n=2000, seed=0):
    """s' = s + 0.2 a (1-D), reward = -|s'|: the best action pushes the point towards 0."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(-2, 2, (n, 1)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    s2 = s + 0.2 * a
    return {"obs": {"state": s}, "action": a, "reward": -np.abs(s2[:, 0]), "next_obs": {"state": s2}, "terminated": np.zeros(n, bool)}


def small_agent(**kw):
    cfg = PETSConfig(**{"members": 5, "hidden": (64, 64), "horizon": 5, "population": 100, "iterations": 3,
                        "particles": 5, "fit_epochs": 40, **kw})
    return PETSAgent(cfg, observation_space("state", 64, 1), spaces.Box(-1, 1, (1,), np.float32), "cpu")


@pytest.mark.parametrize("planner", ["cem", "mppi", "random"])
def test_pets_plans_towards_reward_on_a_learned_model(planner):
    torch.manual_seed(0)
    agent = small_agent(planner=planner)
    metrics = agent.update(point_mass_batch())
    assert metrics["loss/model_holdout_mse"] < 0.05
    obs = {"state": np.array([[1.5], [-1.5], [0.8]], np.float32), "is_first": np.ones(3, bool)}
    action, plan = agent.act(obs, None, explore=False)
    assert action.shape == (3, 1) and plan.shape == (3, 5, 1)
    assert action[0, 0] < -0.3 and action[1, 0] > 0.3 and action[2, 0] < 0  # towards 0, for every start at once


def test_warm_start_is_kept_within_an_episode_and_reset_on_a_new_one():
    agent = small_agent()
    agent.update(point_mass_batch(500))
    obs = {"state": np.array([[1.0], [1.0]], np.float32), "is_first": np.array([False, True])}
    previous = torch.full((2, 5, 1), -0.9)
    calls = []
    agent.plan = lambda states, warm: calls.append(warm) or warm
    agent.act(obs, previous, explore=True)
    torch.testing.assert_close(calls[0][0, :4], previous[0, 1:])
    torch.testing.assert_close(calls[0][1], torch.zeros(5, 1))


def test_pets_rejects_pixels_and_discrete_actions():
    with pytest.raises(ValueError, match="state observations"):
        PETSAgent(PETSConfig(), observation_space("pixels", 64, 0), spaces.Box(-1, 1, (1,), np.float32), "cpu")
    with pytest.raises(ValueError, match="Box action space"):
        PETSAgent(PETSConfig(), observation_space("state", 64, 3), spaces.Discrete(2), "cpu")


@pytest.mark.slow
def test_pets_swings_pendulum_up_within_five_episodes(tmp_path):
    cfg = load_config([ROOT / "configs/pets/pendulum.yaml"], ["train.env_steps=1000", "run.progress=false", f"run.root={tmp_path}", "run.name=pets"])
    run_dir = train(cfg)
    assert json.loads((run_dir / "evals.jsonl").read_text().splitlines()[-1])["mean"] > -300


def test_learned_termination_keeps_the_planner_away_from_the_edge():
    """Reward 1 per step alive; the episode ends when |s'| > 1.8. Only the learned termination tells the
    planner that drifting outward loses the reward."""
    torch.manual_seed(0)
    batch = point_mass_batch(4000)
    s2 = batch["next_obs"]["state"][:, 0]
    batch["reward"], batch["terminated"] = np.ones_like(s2), np.abs(s2) > 1.8
    agent = small_agent(termination="learned")
    metrics = agent.update(batch)
    assert np.isfinite(metrics["loss/termination"])
    probe = torch.linspace(-2, 2, 81)[:, None]
    predicted = agent.terminator(probe)
    assert (predicted == (probe[:, 0].abs() > 1.8)).float().mean() > 0.95
    obs = {"state": np.array([[1.7], [-1.7]], np.float32), "is_first": np.ones(2, bool)}
    action, _ = agent.act(obs, None, explore=False)
    assert action[0, 0] < 0 and action[1, 0] > 0  # inward, away from the end
    restored = small_agent(termination="learned")
    restored.load_state_dict(agent.state_dict())
    assert torch.equal(restored.terminator(probe), predicted)


def test_a_termination_classifier_that_saw_no_ending_never_ends_episodes():
    from worldmodels.models.termination import TerminationClassifier

    classifier = TerminationClassifier(2)
    assert np.isnan(classifier.fit(torch.randn(50, 2), torch.zeros(50, dtype=torch.bool)))
    assert not classifier(torch.randn(10, 2)).any()
