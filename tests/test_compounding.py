"""Compounding error: k-step errors of a scalar linear model on worked examples (through model_error's curve), the
bound and its fitted growth, and the compounding-error study as `model-error --task --fresh-ensemble`."""

import numpy as np
import pytest
import torch

from worldmodels.analysis.compounding import error_bound, fit_growth
from worldmodels.analysis.model_error import error_curve, linear_open_loop, run_model_error
from worldmodels.models.linear_gaussian import LinearGaussianModel


def scalar_model(a: float) -> LinearGaussianModel:
    model = LinearGaussianModel(bias=False)
    model.A, model.B, model.c = (
        torch.tensor([[a]], dtype=torch.float64),
        torch.zeros(1, 1, dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
    )
    return model


def true_episode(a: float, steps: int) -> dict:
    """s_t = a^t from s_0 = 1, zero actions, in the replay's layout."""
    states = (a ** np.arange(steps + 1)).reshape(-1, 1).astype(np.float32)
    return {"state": states, "action": np.zeros((steps + 1, 1), np.float32), "reward": np.zeros(steps + 1, np.float32)}


def test_worked_example_fitted_1_10_on_true_1_05():
    curve = error_curve(linear_open_loop(scalar_model(1.10)), [true_episode(1.05, 10)], horizon=10)
    assert round(curve.state_error[0], 2) == 0.05
    assert round(curve.state_error[4], 2) == 0.26
    assert round(curve.state_error[9], 2) == 0.59
    np.testing.assert_allclose(curve.state_error, (1.10 / 1.05) ** np.arange(1, 11) - 1, rtol=1e-5)


def test_worked_example_fitted_1_05_on_true_1_10():
    curve = error_curve(linear_open_loop(scalar_model(1.05)), [true_episode(1.10, 10)], horizon=10)
    np.testing.assert_allclose(curve.state_error, 1 - (1.05 / 1.10) ** np.arange(1, 11), rtol=1e-5)
    assert round(curve.state_error[4], 2) == 0.21 and round(curve.state_error[9], 2) == 0.37


def test_an_exact_model_has_no_error_over_every_window_of_every_episode():
    curve = error_curve(linear_open_loop(scalar_model(1.05)), [true_episode(1.05, 12)] * 3, horizon=4)
    np.testing.assert_allclose(curve.state_error, 0, atol=1e-6)


def test_bound_and_growth_fit_recover_a_geometric_curve():
    ks = np.arange(1, 16)
    eps, growth = fit_growth(error_bound(0.02, 1.3, ks))
    assert eps == pytest.approx(0.02) and growth == pytest.approx(1.3, abs=1e-3)
    assert error_bound(0.1, 1.0, 5) == pytest.approx(0.5)
    np.testing.assert_allclose(error_bound(0.05, 2.0, np.array([1, 2, 3])), [0.05, 0.15, 0.35])


def test_the_compounding_study_is_model_error_on_a_task_with_a_fresh_ensemble(tmp_path):
    table, rows = run_model_error(
        [], episodes=1, train_episodes=2, horizon=5, seed=0, out=tmp_path, task=("gym:Pendulum-v1", 4),
        fresh_ensemble=True,
    )  # fmt: skip
    linear, ensemble = rows
    assert linear["model"].startswith("linear-Gaussian") and ensemble["model"].startswith("ensemble 5 x 200x3")
    assert len(ensemble["state_error"]) == 5 and all(x >= 0 for x in ensemble["reward_error"])
    assert (ensemble["task"], ensemble["action_repeat"]) == ("gym:Pendulum-v1", 4)
    assert (tmp_path / "model_error-gym_Pendulum-v1.png").exists() and "ensemble 5 x 200x3" in table
