import torch

from worldmodels.models.linear_gaussian import LinearGaussianModel


def fit_scalar(s, a, A, B):
    s, a = torch.tensor(s, dtype=torch.float64)[:, None], torch.tensor(a, dtype=torch.float64)[:, None]
    model = LinearGaussianModel(bias=False)
    xtx, xty = model.normal_equations(s, a, A * s + B * a)
    model.fit(s, a, A * s + B * a)
    return model, xtx, xty


def test_worked_example_five_noise_free_samples():
    # A = 0.5, B = 1.0; sum s^2 = 6.25, sum s a = -2.5, sum a^2 = 3.25
    model, xtx, xty = fit_scalar([2.0, 1.5, 0.0, 0.0, 0.0], [-0.5, -1.0, 1.0, 1.0, 0.0], 0.5, 1.0)
    torch.testing.assert_close(xtx, torch.tensor([[6.25, -2.5], [-2.5, 3.25]], dtype=torch.float64))
    assert torch.linalg.det(xtx).item() == 14.0625
    torch.testing.assert_close(xty.reshape(-1), torch.tensor([0.625, 2.0], dtype=torch.float64))
    torch.testing.assert_close(torch.cat([model.A, model.B], 1), torch.tensor([[0.5, 1.0]], dtype=torch.float64))


def test_worked_example_four_samples():
    # A = 0.4, B = 0.8; X^T X = [[3, -1], [-1, 6]] (det 17), X^T Y = [0.4, 4.4]
    model, xtx, xty = fit_scalar([1.0, -1.0, 1.0, 0.0], [1.0, 2.0, 0.0, 1.0], 0.4, 0.8)
    torch.testing.assert_close(xtx, torch.tensor([[3.0, -1.0], [-1.0, 6.0]], dtype=torch.float64))
    assert round(torch.linalg.det(xtx).item(), 9) == 17.0
    torch.testing.assert_close(xty.reshape(-1), torch.tensor([0.4, 4.4], dtype=torch.float64))
    torch.testing.assert_close(torch.cat([model.A, model.B], 1), torch.tensor([[0.4, 0.8]], dtype=torch.float64))


def test_noisy_fit_is_unbiased_and_recovers_the_noise_covariance():
    g = torch.Generator().manual_seed(0)
    A = torch.tensor([[0.9, 0.1], [-0.2, 0.8]], dtype=torch.float64)
    B = torch.tensor([[0.5], [1.0]], dtype=torch.float64)
    c = torch.tensor([0.1, -0.3], dtype=torch.float64)
    estimates = []
    for _ in range(200):  # many small datasets: the mean estimate converges on the truth
        s = torch.randn(30, 2, generator=g, dtype=torch.float64)
        a = torch.randn(30, 1, generator=g, dtype=torch.float64)
        nxt = s @ A.T + a @ B.T + c + 0.1 * torch.randn(30, 2, generator=g, dtype=torch.float64)
        model = LinearGaussianModel().fit(s, a, nxt)
        estimates.append(torch.cat([model.A, model.B, model.c[:, None]], 1))
    mean = torch.stack(estimates).mean(0)
    torch.testing.assert_close(mean, torch.cat([A, B, c[:, None]], 1), atol=0.01, rtol=0)
    torch.testing.assert_close(model.covariance, 0.01 * torch.eye(2, dtype=torch.float64), atol=0.006, rtol=0)


def test_rollout_matches_repeated_prediction():
    model = LinearGaussianModel(bias=False)
    model.A, model.B, model.c = torch.tensor([[1.1]]), torch.tensor([[1.0]]), torch.zeros(1)
    states = model.rollout(torch.ones(1, 1), torch.zeros(1, 3, 1))
    torch.testing.assert_close(states.reshape(-1), torch.tensor([1.1, 1.21, 1.331]))
