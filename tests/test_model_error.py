"""Model error on held-out episodes (analysis/model_error.py): the k-step curves on worked examples, the linear
model on a linear system, and a trained run measured end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodels.analysis.model_error import (
    ErrorCurve,
    error_curve,
    linear_gaussian_open_loop,
    model_error_table,
    run_model_error,
)
from worldmodels.config import load_config
from worldmodels.models.model_check import OpenLoop, executed_windows
from worldmodels.run.loop import train

ROOT = Path(__file__).resolve().parents[1]


def linear_episode(T=30, seed=0):
    """s' = A s + B a, reward = s[0], from a random start and random actions."""
    rng = np.random.default_rng(seed)
    A, B = np.array([[0.9, 0.1], [0.0, 0.95]]), np.array([[0.0], [0.5]])
    states, actions = [rng.normal(size=2)], [np.zeros(1)]
    for _ in range(T):
        actions.append(rng.uniform(-1, 1, 1))
        states.append(A @ states[-1] + B @ actions[-1])
    states = np.array(states, np.float32)
    reward = np.concatenate([[0.0], states[1:, 0]]).astype(np.float32)
    return {"state": states, "action": np.array(actions, np.float32), "reward": reward}


def truth_open_loop(bias=0.0):
    def open_loop(episode, horizon):
        _, _, rewards = executed_windows(episode, horizon)
        states = torch.as_tensor(episode["state"])[1:].unfold(0, horizon, 1).transpose(1, 2)  # [N, H, S]
        return OpenLoop(rewards + bias, 0.0, states)

    return open_loop


def test_a_perfect_model_has_no_error_and_a_reward_bias_shows_at_every_k():
    episodes = [linear_episode(seed=s) for s in range(2)]
    exact = error_curve(truth_open_loop(), episodes, horizon=5)
    assert exact.reward_error.tolist() == [0.0] * 5 and exact.state_error.tolist() == [0.0] * 5
    biased = error_curve(truth_open_loop(bias=0.5), episodes, horizon=5)
    np.testing.assert_allclose(biased.reward_error, 0.5, atol=1e-6)


def test_the_linear_gaussian_model_is_exact_on_a_linear_system():
    curve = error_curve(
        linear_gaussian_open_loop([linear_episode(seed=s) for s in range(3)]), [linear_episode(seed=9)], 8
    )
    assert curve.state_error.max() < 1e-4 and np.isnan(curve.reward_error).all()  # it predicts no reward


def test_table_fits_the_state_curve_or_else_the_reward_curve():
    growing = np.array([0.01 * (1.2**k - 1) / 0.2 for k in range(1, 6)])  # eps = 0.01, L = 1.2 exactly
    table = model_error_table(
        {"state model": ErrorCurve(np.full(5, np.nan), growing), "latent": ErrorCurve(growing * 10, None)}, ks=(1, 5)
    )
    assert "| state model | 0.01 | 0.0744 | - | - | state | 0.01 | 1.200 | 0.0744 | 0.0744 |" in table
    assert "| latent | - | - | 0.1 | 0.744 | reward | 0.1 | 1.200 | 0.744 | 0.744 |" in table


def test_a_trained_run_and_the_linear_model_are_measured_on_the_same_episodes(tmp_path):
    run_dir = train(load_config([ROOT / "configs/tdmpc/tiny.yaml"], [f"run.root={tmp_path}", "run.name=tdmpc"]))
    table, rows = run_model_error(
        [run_dir], episodes=2, train_episodes=3, horizon=5, seed=7, out=tmp_path / "out", value_episodes=1,
        value_starts=4, value_tol=0.5,
    )  # fmt: skip
    assert [r["model"] for r in rows] == ["linear-Gaussian (3 random episodes)", "tdmpc s0 (tdmpc)"]
    linear, tdmpc = rows
    assert linear["fitted_to"] == "state" and linear["reward_error"] == [None] * 5 and len(linear["state_error"]) == 5
    assert tdmpc["fitted_to"] == "reward" and tdmpc["state_error"] is None
    assert all(x >= 0 for x in tdmpc["reward_error"]) and tdmpc["epsilon"] == tdmpc["reward_error"][0]
    # values on its own greedy episode: k = 0..5, 4 scored starts; the linear model has no value function
    assert len(tdmpc["value_error"]) == 6 and tdmpc["value_windows"] == 4 and "value_error" not in linear
    assert "abs k=0" in table and "own greedy policy" in (tmp_path / "out/model_error-gym_Pendulum-v1.md").read_text()
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == [
        "model_error-gym_Pendulum-v1.jsonl",
        "model_error-gym_Pendulum-v1.md",
        "model_error-gym_Pendulum-v1.png",
    ]
    saved = [json.loads(line) for line in (tmp_path / "out/model_error-gym_Pendulum-v1.jsonl").read_text().splitlines()]
    assert saved == rows and saved[0]["commit"]
    with pytest.raises(ValueError, match="longer than the shortest held-out episode"):
        run_model_error([run_dir], episodes=1, train_episodes=1, horizon=60, seed=7, out=tmp_path / "out")


def test_a_pixel_dreamer_run_is_scored_on_rendered_held_out_episodes_images_included(tmp_path):
    run_dir = train(load_config([ROOT / "configs/dreamer/tiny.yaml"], [f"run.root={tmp_path}", "run.name=dreamer"]))
    table, rows = run_model_error(
        [run_dir], episodes=1, train_episodes=2, horizon=4, seed=3, out=tmp_path / "out", value_episodes=0
    )
    dreamer = rows[1]
    assert dreamer["fitted_to"] == "reward" and dreamer["state_error"] is None and len(dreamer["image_error"]) == 4
    assert all(0 < x < 1 for x in dreamer["image_error"]) and rows[0]["image_error"] is None
    assert "image k=1" in table
