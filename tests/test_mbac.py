"""The model-based actor-critic: imagination through the state ensemble, gradient isolation, the loop."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from worldmodels.agents.mbac import MBACAgent, MBACConfig
from worldmodels.config import load_config
from worldmodels.envs.spaces import observation_space
from worldmodels.models.ensemble import Ensemble
from worldmodels.models.state_imagination import StateImagination
from worldmodels.run.loop import train

ROOT = Path(__file__).resolve().parents[1]


def small_agent(**kw):
    cfg = MBACConfig(**{"members": 3, "hidden": (32, 32), "ac_hidden": 32, "horizon": 5, "batch_size": 64} | kw)
    return MBACAgent(cfg, observation_space("state", 64, 1), spaces.Box(-1, 1, (1,), np.float32), "cpu")


def test_imagination_features_carry_state_reward_and_continuation():
    torch.manual_seed(0)
    model = Ensemble(2, 1, members=3, hidden=(8,), learn_reward=True)
    imagination = StateImagination(model, done_fn=lambda s: s[:, 0] > 0, generator=torch.Generator())
    starts = imagination.features(torch.randn(16, 2))
    feats = imagination.imagine(starts, lambda f: torch.zeros(len(f), 1), horizon=6)
    assert feats.shape == (7, 16, 4)
    states = imagination.policy_features(feats)  # [H + 1, N, S]
    assert torch.equal(states, feats[..., :2])
    assert torch.all(imagination.reward(feats[0]) == 0) and torch.all(imagination.continue_prob(feats[0]) == 1)
    # After the start, a step goes on exactly where the done rule does not hold for the state it reached.
    going_on = imagination.continue_prob(feats[1:])  # [H, N]
    torch.testing.assert_close(going_on, (states[1:, :, 0] <= 0).float())
    assert 0 < going_on.mean() < 1  # both cases occur


def test_actor_and_critic_losses_never_update_the_model_but_the_actor_learns_through_it(point_mass):
    torch.manual_seed(0)
    agent = small_agent()
    agent.update_model(point_mass())
    model_before = {k: v.clone() for k, v in agent.state_model.ensemble.state_dict().items()}
    actor_before = [p.clone() for p in agent.behaviour.actor.parameters()]
    for p in agent.state_model.ensemble.parameters():
        p.grad = None
    for _ in range(3):
        metrics = agent.update_behaviour(point_mass(64, seed=1))
    assert np.isfinite(metrics["loss/actor"]) and metrics["train/actor_grad_norm"] > 0
    after = agent.state_model.ensemble.state_dict()
    assert all(torch.equal(model_before[k], after[k]) for k in model_before)
    # The model's optimiser is not the actor's, so unchanged weights alone would not show it: no gradient reached it.
    assert all(p.grad is None for p in agent.state_model.ensemble.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.behaviour.actor.parameters(), strict=True))
    assert all(p.requires_grad for p in agent.state_model.ensemble.parameters())  # unfrozen again afterwards


def test_no_behaviour_update_before_the_first_model_fit(point_mass):
    assert small_agent().update_behaviour(point_mass(64)) is None


def test_mbac_pushes_the_point_towards_the_reward_through_the_learned_model(point_mass):
    torch.manual_seed(0)
    agent = small_agent(actor_lr=1e-3, critic_lr=1e-3, horizon=8)
    agent.update_model(point_mass(3000))
    for i in range(250):  # 10 torch seeds: the weaker side's action at least 0.63 (at 150 updates, one seed 0.36)
        agent.update_behaviour(point_mass(128, seed=i))
    obs = {"state": np.array([[1.5], [-1.5]], np.float32), "is_first": np.ones(2, bool)}
    action, _, _ = agent.act(obs, None, explore=False)
    assert action[0, 0] < -0.5 and action[1, 0] > 0.5  # towards 0 from both sides


def test_mbac_rejects_pixels_and_discrete_actions():
    with pytest.raises(ValueError, match="dyna_q act discretely"):
        MBACAgent(MBACConfig(), observation_space("state", 64, 3), spaces.Discrete(2), "cpu")
    with pytest.raises(ValueError, match="dreamer learns from pixels"):
        MBACAgent(MBACConfig(), observation_space("pixels", 64, 0), spaces.Box(-1, 1, (1,), np.float32), "cpu")


def test_mbac_runs_through_the_loop_and_counts_no_update_before_the_first_fit(tmp_path):
    overrides = [
        "train.env_steps=600",
        "train.warmup_steps=200",
        "train.eval_every=600",
        "train.replay_ratio=1",
        "train.eval_episodes=1",
        "agent.model_every=200",
        "agent.batch_size=32",
        "agent.hidden=[32,32]",
        "agent.ac_hidden=32",
        "run.progress=false",
        f"run.root={tmp_path}",
        "run.name=mbac",
    ]
    cfg = load_config([ROOT / "configs/mbac/pendulum.yaml"], overrides)
    run_dir = train(cfg)
    evals = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    updates = torch.load(run_dir / "checkpoint.pt", weights_only=False)["counters"]["stream_updates"]
    assert evals[-1]["env_steps"] == 600
    assert updates["model"] == 2  # after 200 and 400 env steps past warm-up (streams start paying at step 200)
    # behaviour updates only from the first fit (env step 399) on, one per agent step: steps 399..600
    assert updates["behaviour"] == 202
