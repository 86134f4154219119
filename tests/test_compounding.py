import numpy as np
import pytest
import torch

from worldmodels.analysis.compounding import compounding_table, error_bound, fit_growth, k_step_errors, plot_compounding
from worldmodels.models.linear_gaussian import LinearGaussianModel


def scalar_model(a: float) -> LinearGaussianModel:
    model = LinearGaussianModel(bias=False)
    model.A, model.B, model.c = (
        torch.tensor([[a]], dtype=torch.float64),
        torch.zeros(1, 1, dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
    )
    return model


def true_episode(a: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    states = a ** torch.arange(steps + 1, dtype=torch.float64)  # s0 = 1
    return states.reshape(1, -1, 1), torch.zeros(1, steps, 1, dtype=torch.float64)


def test_worked_example_fitted_1_10_on_true_1_05():
    states, actions = true_episode(1.05, 10)
    curve = k_step_errors(scalar_model(1.10).rollout, states, actions, horizon=10)
    assert round(curve.state_error[0], 2) == 0.05
    assert round(curve.state_error[4], 2) == 0.26
    assert round(curve.state_error[9], 2) == 0.59
    np.testing.assert_allclose(curve.state_error, (1.10 / 1.05) ** np.arange(1, 11) - 1)


def test_worked_example_fitted_1_05_on_true_1_10():
    states, actions = true_episode(1.10, 10)
    curve = k_step_errors(scalar_model(1.05).rollout, states, actions, horizon=10)
    np.testing.assert_allclose(curve.state_error, 1 - (1.05 / 1.10) ** np.arange(1, 11))
    assert round(curve.state_error[4], 2) == 0.21 and round(curve.state_error[9], 2) == 0.37


def test_windows_cover_every_start_of_every_episode():
    states, actions = true_episode(1.05, 12)
    states, actions = states.repeat(3, 1, 1), actions.repeat(3, 1, 1)
    calls = []

    def rollout(start, acts):
        calls.append((start.shape, acts.shape))
        return scalar_model(1.05).rollout(start, acts)

    curve = k_step_errors(rollout, states, actions, horizon=4)
    assert calls == [((27, 1), (27, 4, 1))]  # 3 episodes x (12 - 4 + 1) windows, one batched call
    np.testing.assert_allclose(curve.state_error, 0, atol=1e-12)
    with pytest.raises(ValueError, match="longer than"):
        k_step_errors(rollout, states, actions, horizon=13)


def test_bound_and_growth_fit_recover_a_geometric_curve(tmp_path):
    ks = np.arange(1, 16)
    errors = error_bound(0.02, 1.3, ks)
    eps, growth = fit_growth(errors)
    assert eps == pytest.approx(0.02) and growth == pytest.approx(1.3, abs=1e-3)
    assert error_bound(0.1, 1.0, 5) == pytest.approx(0.5)
    np.testing.assert_allclose(error_bound(0.05, 2.0, np.array([1, 2, 3])), [0.05, 0.15, 0.35])
    from worldmodels.analysis.compounding import CompoundingCurve

    curves = {"geometric": CompoundingCurve(errors, None)}
    assert "| geometric | 0.020 |" in compounding_table(curves)
    assert plot_compounding(curves, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_compounding_study_writes_table_and_plot(tmp_path):
    from worldmodels.analysis.compounding_study import run_study

    table = run_study("gym:Pendulum-v1", 2, 1, horizon=5, action_repeat=4, out=tmp_path, epochs=3, hidden=(16,))
    assert "linear-Gaussian" in table and "PETS ensemble (5 x 16)" in table
    assert (tmp_path / "compounding-gym_Pendulum-v1.png").exists()
    assert "action repeat 4" in (tmp_path / "compounding-gym_Pendulum-v1.md").read_text()
