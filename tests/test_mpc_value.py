"""MPC with a learned terminal value: the value closes each candidate's return, so a short horizon sees past it."""

import json
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

from worldmodels.agents.mpc_value import MPCValueAgent, MPCValueConfig
from worldmodels.config import load_config
from worldmodels.envs.spaces import observation_space
from worldmodels.run.loop import train

ROOT = Path(__file__).resolve().parents[1]


def drift_batch(n=1500, seed=0):
    """s' = s + 0.2 a (1-D) and no reward anywhere: only a terminal value can prefer one direction."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(-2, 2, (n, 1)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    return {
        "obs": {"state": s},
        "action": a,
        "reward": np.zeros(n, np.float32),
        "next_obs": {"state": s + 0.2 * a},
        "terminated": np.zeros(n, bool),
    }


def small_agent(**kw):
    cfg = MPCValueConfig(
        **{
            "members": 3,
            "elites": 3,
            "hidden": (32, 32),
            "policy_hidden": (32,),
            "horizon": 3,
            "population": 200,
            "particles": 3,
            "rollout_batch": 64,
        }
        | kw
    )
    return MPCValueAgent(cfg, observation_space("state", 64, 1), spaces.Box(-1, 1, (1,), np.float32), "cpu")


def test_the_terminal_value_steers_a_short_horizon_plan():
    obs = {"state": np.array([[0.0], [1.0], [-1.0]], np.float32), "is_first": np.ones(3, bool)}
    actions = {}
    for weight in (1.0, 0.0):
        torch.manual_seed(0)
        agent = small_agent(value_weight=weight)
        agent.update_model(drift_batch())
        agent.terminal_value = lambda s: 10.0 * s[..., 0]  # a critic that values large states
        actions[weight], plan, _ = agent.act(obs, None, explore=False)
        assert plan.shape == (3, 3, 1)
    assert np.all(actions[1.0] > 0.5)  # push up: the value of where the plan ends
    assert np.all(np.abs(actions[0.0]) < 0.5)  # no reward, no value: no preference


def test_terminal_value_is_the_twin_critics_minimum_at_the_mean_action():
    torch.manual_seed(0)
    agent = small_agent(value_weight=2.0)
    states = torch.randn(4, 5, 1)
    value = agent.terminal_value(states)
    features = states.reshape(-1, 1)
    action = torch.tanh(agent.learner.actor.net(features).chunk(2, -1)[0])
    expected = agent.learner.critic.values(features, action).min(0).values.reshape(4, 5)
    assert value.shape == (4, 5) and torch.allclose(value, 2.0 * expected, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as inside a bfloat16 plan: the value stays float32
        planned = agent.terminal_value(states)
    assert planned.dtype == torch.float32 and torch.equal(planned, value)


def test_mpc_value_runs_through_the_loop(tmp_path):
    overrides = [
        "train.env_steps=400",
        "train.warmup_steps=200",
        "train.eval_every=400",
        "train.eval_episodes=1",
        "agent.model_every=200",
        "agent.rollout_batch=500",
        "agent.particles=7",
        "agent.population=50",
        "agent.iterations=2",
        "agent.hidden=[32,32]",
        "run.progress=false",
        f"run.root={tmp_path}",
        "run.name=mpcv",
    ]
    run_dir = train(load_config([ROOT / "configs/mpc_value/pendulum.yaml"], overrides))
    evals = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    assert evals[-1]["env_steps"] == 400 and np.isfinite(evals[-1]["mean"])
    updates = torch.load(run_dir / "checkpoint.pt", weights_only=False)["counters"]["stream_updates"]
    assert updates["model"] == 1  # at the end of warm-up (env step 200); the next is due at 400, the run's end
    assert updates["policy"] == 5 * 201  # the preset's 5 SAC updates an agent step, steps 200..400
    assert evals[-1]["failure"]["horizon"] == 10  # the model check scores the planner's horizon


def test_planner_settings_that_cannot_work_are_rejected_when_built():
    import pytest

    with pytest.raises(ValueError, match="multiple of agent.members"):
        small_agent(members=7, elites=5, particles=10)
