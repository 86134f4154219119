"""Failure-mode metrics (models/model_check.py): windows of executed actions, the metrics on worked examples, and
the state ensemble's check on a model biased on purpose."""

import math

import numpy as np
import pytest
import torch

from worldmodels.agents.state_model import StateModel, StateModelConfig
from worldmodels.models.model_check import check_metrics, executed_windows, failure_metrics


def episode(T=6, S=3, A=2, seed=0):
    rng = np.random.default_rng(seed)
    action = rng.uniform(-1, 1, (T + 1, A)).astype(np.float32)
    action[0] = 0.0  # the reset step's placeholder
    reward = np.arange(T + 1, dtype=np.float32)  # reward t = t (entry 0: the reset, never scored)
    return {"state": rng.normal(size=(T + 1, S)).astype(np.float32), "action": action, "reward": reward}


def test_executed_windows_pair_each_state_with_the_actions_and_rewards_that_followed_it():
    ep = episode(T=4)
    starts, actions, rewards = executed_windows(ep, horizon=2)
    assert starts.tolist() == [0, 1, 2]  # N = T - H + 1
    np.testing.assert_array_equal(actions[1].numpy(), ep["action"][2:4])  # from s_1: a_2, a_3
    np.testing.assert_array_equal(rewards.numpy(), [[1, 2], [2, 3], [3, 4]])
    short_starts, _, short = executed_windows(ep, horizon=10)  # cut to the episode
    assert short_starts.tolist() == [0] and short.shape == (1, 4)


def test_failure_metrics_on_a_worked_example():
    predicted = torch.tensor([[1.0, 1.0], [2.0, 0.0]])  # H-step returns 2 and 2
    achieved = torch.tensor([[0.0, 1.0], [1.0, -1.0]])  # 1 and 0
    metrics = failure_metrics(predicted, achieved, model_error=0.25)
    assert metrics == {
        "failure/predicted_return": 2.0,
        "failure/achieved_return": 0.5,
        "failure/exploitation": 1.5,
        "failure/exploitation_per_step": 0.75,
        "failure/model_error": 0.25,
        "failure/horizon": 2.0,
    }


def test_an_ensemble_that_overrates_every_reward_by_one_shows_exploitation_of_exactly_the_horizon():
    torch.manual_seed(0)
    cfg = StateModelConfig(members=3, hidden=(16,), probabilistic=False)
    model = StateModel(cfg, state_dim=3, action_dim=2, device=torch.device("cpu"))
    ep = episode(T=20)
    before = check_metrics(model.open_loop(ep, 5), ep)
    model.ensemble.out_mean[-1] += 1.0  # the reward output only: states are predicted as before
    after = check_metrics(model.open_loop(ep, 5), ep)
    assert after["failure/exploitation"] - before["failure/exploitation"] == pytest.approx(5.0, abs=1e-4)
    assert after["failure/achieved_return"] == before["failure/achieved_return"]
    assert after["failure/model_error"] == before["failure/model_error"] and math.isfinite(after["failure/model_error"])


def test_model_error_is_the_one_step_relative_state_error():
    torch.manual_seed(0)
    cfg = StateModelConfig(members=2, hidden=(8,), probabilistic=False)
    model = StateModel(cfg, state_dim=3, action_dim=2, device=torch.device("cpu"))
    ep = episode(T=10)
    for p in model.ensemble.net.parameters():  # every member predicts a change of exactly 0: s' = s
        torch.nn.init.zeros_(p)
    model.ensemble.out_mean.zero_()
    s = torch.as_tensor(ep["state"])
    expected = ((s[:-1] - s[1:]).norm(dim=-1) / s[1:].norm(dim=-1)).mean().item()
    assert model.open_loop(ep, 3).model_error == pytest.approx(expected, rel=1e-5)


def failure_row(agent, seed, steps, ret, error, predicted, achieved, horizon=5):
    failure = {"model_error": error, "predicted_return": predicted, "achieved_return": achieved, "horizon": horizon}
    failure |= {"exploitation": predicted - achieved, "exploitation_per_step": (predicted - achieved) / horizon}
    return {"task": "T", "agent": agent, "obs": "state", "seed": seed, "env_steps": steps, "return_mean": ret,
            "wall_clock_s": 1.0, "updates_per_s": 1.0, "failure": failure}  # fmt: skip


def test_report_shows_failure_modes_at_each_agents_last_evaluation(tmp_path):
    from worldmodels.analysis.benchmark import plot_curves, table

    rows = [
        failure_row("pets", 0, 1000, -900.0, 0.2, -50.0, -80.0),
        failure_row("pets", 0, 2000, -200.0, 0.1, -40, -50),
    ]
    rows += [failure_row("pets", 1, 2000, -300.0, 0.3, -30.0, -60.0)]
    rows += [{**failure_row("sac", 0, 2000, -1000.0, 0, 0, 0), "failure": None}]  # model-free: no failure metrics
    markdown = table(rows)
    # at the last evals: seed 0 (0.1, -40, -50, 10), seed 1 (0.3, -30, -60, 30) -> means 0.2, -35, -55, 20; H 5
    assert (
        "| state | pets | 2 | 0.2 | 5 | -35 | -55 | 20 | 4 |" in markdown
        and "| state | sac |" not in markdown.split("Failure modes")[1]
    )
    assert "gym" not in markdown and (tmp_path / "T-failure.png") in plot_curves(rows, tmp_path)


def test_the_ensembles_open_loop_follows_the_executed_actions_from_each_real_state():
    """Window t, step k: the members' mean stepped by hand from s_t through a_{t+1} .. a_{t+k}."""
    torch.manual_seed(0)
    model = StateModel(StateModelConfig(members=3, hidden=(16,)), state_dim=3, action_dim=2, device=torch.device("cpu"))
    ep = episode(T=12)
    out = model.open_loop(ep, 4)
    assert out.rewards.shape == (9, 4) and out.states.shape == (9, 4, 3)
    s = torch.as_tensor(ep["state"][5])[None]  # window t = 5
    for k in range(1, 4):
        mean = model.ensemble.predict(s, torch.as_tensor(ep["action"][5 + k])[None])[0].mean(0)  # [1, O]
        s = s + mean[:, :3]
        torch.testing.assert_close(out.states[5, k - 1], s[0])
        torch.testing.assert_close(out.rewards[5, k - 1], mean[0, -1])
