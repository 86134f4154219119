import numpy as np
import pytest
import torch

from worldmodels.models.ensemble import Ensemble, fit_ensemble
from worldmodels.reports.kstep import kstep_figure, kstep_report, member_rollout

A = torch.tensor([[1.0, 0.1], [-0.1, 0.95]])  # a damped rotation
B = torch.tensor([[0.0], [0.1]])
NOISE = 0.02


def linear_step(s, a, g):
    return s @ A.T + a @ B.T + NOISE * torch.randn(s.shape, generator=g)


def linear_episodes(n, steps, g):
    """states [n, T, 2], actions [n, T, 1] in the replay's layout (action t led to state t; action 0 unused)."""
    actions = torch.rand(n, steps, 1, generator=g) * 2 - 1
    states = [torch.rand(n, 2, generator=g) * 2 - 1]
    for t in range(1, steps):
        states.append(linear_step(states[-1], actions[:, t], g))
    return torch.stack(states, 1), actions


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    s = torch.rand(3000, 2, generator=g) * 4 - 2
    a = torch.rand(3000, 1, generator=g) * 2 - 1
    s2 = linear_step(s, a, g)
    model = Ensemble(2, 1, members=5, hidden=(64, 64))
    fit_ensemble(
        model, torch.cat([s, a], -1), model.targets(s, a, s2), epochs=40, generator=torch.Generator().manual_seed(1)
    )
    return model


def test_member_rollout_lets_every_member_follow_its_own_states():
    torch.manual_seed(0)
    model = Ensemble(2, 1, members=3, hidden=(16,), learn_reward=True)  # untrained: members disagree a lot
    start, actions = torch.randn(4, 2), torch.randn(4, 6, 1)
    states, std, rewards = member_rollout(model, start, actions)
    assert states.shape == std.shape == (3, 4, 6, 2) and rewards.shape == (3, 4, 6)
    for k in range(3):  # the reference: member k alone, step by step
        state = start
        for h in range(6):
            mean, var = model.predict(state, actions[:, h])
            torch.testing.assert_close(rewards[k, :, h], mean[k, :, -1])
            torch.testing.assert_close(std[k, :, h], var[k, :, :2].sqrt())
            state = state + mean[k, :, :2]
            torch.testing.assert_close(states[k, :, h], state)


def test_a_fitted_ensemble_predicts_a_linear_system_k_steps_ahead(fitted):
    states, actions = linear_episodes(8, 25, torch.Generator().manual_seed(2))
    report = kstep_report(fitted, states, actions, context=5)
    assert report.mean.shape == report.epistemic.shape == report.aleatoric.shape == (8, 20, 2)
    assert report.mse.shape == (20,) and report.reward_error is None
    assert (report.epistemic >= 0).all() and (report.aleatoric >= 0).all()
    oracle, state = [], states[:, 4]  # the true noise-free dynamics from the same start
    for h in range(5, 25):
        state = state @ A.T + actions[:, h] @ B.T
        oracle.append(state)
    oracle_mse = (torch.stack(oracle, 1) - states[:, 5:]).pow(2).mean().item()  # the truth's own noise, accumulated
    assert report.mse[0] < 3 * NOISE**2 and report.mse.mean() < 1.5 * oracle_mse  # shifted actions: 2.3x
    assert 0.5 * NOISE < report.aleatoric.mean() < 2.5 * NOISE  # the learned one-step noise (1.6x here)
    assert report.epistemic[:, -1].mean() > report.epistemic[:, 0].mean()  # open loop, the members drift apart
    scalars = report.scalars()
    assert scalars["report/kstep_state_mse"] == pytest.approx(float(report.mse.mean()))
    image = kstep_figure(report)
    assert image.dtype == np.uint8 and image.shape[0] == 3


def test_identical_members_have_no_epistemic_spread(fitted):
    states, actions = linear_episodes(4, 12, torch.Generator().manual_seed(3))
    model = Ensemble(2, 1, members=5, hidden=(64, 64))
    model.load_state_dict(fitted.state_dict())
    with torch.no_grad():
        for p in model.net.parameters():  # member axis first: every member becomes member 0
            p.copy_(p[:1].expand_as(p))
    report = kstep_report(model, states, actions, context=3)
    np.testing.assert_allclose(report.epistemic, 0.0, atol=1e-6)
    assert (report.aleatoric > 0).all()


def test_context_must_leave_steps_to_predict():
    model = Ensemble(2, 1, members=2, hidden=(8,))
    states, actions = torch.zeros(1, 5, 2), torch.zeros(1, 5, 1)
    for context in (0, 5):
        with pytest.raises(ValueError, match="context must be between 1 and 4"):
            kstep_report(model, states, actions, context)
