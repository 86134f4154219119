import pytest
import torch

from worldmodels.envs.terminations import inverted_pendulum, termination_rule
from worldmodels.models.ensemble import Ensemble, _members_step, fit_ensemble, particle_rollout
from worldmodels.nets.mlp import EnsembleMLP


def test_ensemble_mlp_equals_separate_members():
    torch.manual_seed(0)
    net = EnsembleMLP(3, 4, (8, 8), 2)
    x = torch.randn(3, 5, 4)
    out = net(x)  # [K, N, O], one batched call
    for k in range(3):  # the reference: member k as a plain MLP
        h = x[k]
        for layer in net.hidden:
            h = torch.relu(h @ layer.weight[k] + layer.bias[k])
        torch.testing.assert_close(out[k], h @ net.out.weight[k] + net.out.bias[k])


@pytest.mark.parametrize("activation", [torch.nn.SiLU, torch.nn.Tanh])  # Tanh has no in-place form
def test_ensemble_mlp_without_autograd_computes_what_it_does_with_it(activation):
    torch.manual_seed(0)
    net = EnsembleMLP(3, 4, (8, 8), 2, activation, layer_norm=True)
    x = torch.randn(3, 5, 4)
    x_before = x.clone()
    with torch.no_grad():
        planned = net(x)  # activations overwrite the layers' outputs here, never the caller's input
    assert torch.equal(x, x_before)
    trained = net(x)
    torch.testing.assert_close(planned, trained, rtol=0, atol=0)
    trained.sum().backward()  # the autograd path keeps the tensors its gradient needs
    assert all(p.grad is not None for p in net.parameters())
    assert net.activation_in_place.inplace if activation is torch.nn.SiLU else net.activation_in_place is net.activation


def line_data(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(n, 2, generator=g)
    actions = torch.rand(n, 1, generator=g) * 2 - 1
    next_states = states + torch.cat([0.1 * actions, 0.05 * states[:, :1]], -1) + 0.01 * torch.randn(n, 2, generator=g)
    rewards = -(next_states**2).sum(-1)
    return states, actions, next_states, rewards


def test_fit_learns_dynamics_and_reward_with_holdout_early_stopping():
    torch.manual_seed(0)
    s, a, s2, r = line_data()
    model = Ensemble(2, 1, members=3, hidden=(64, 64), learn_reward=True)
    stats = fit_ensemble(
        model, torch.cat([s, a], -1), model.targets(s, a, s2, r), epochs=60, generator=torch.Generator().manual_seed(1)
    )
    assert stats["holdout_mse"] < 0.1  # normalised units: far below the 1.0 of predicting the mean
    mean, var = model.predict(s[:50], a[:50])
    assert mean.shape == var.shape == (3, 50, 3)
    torch.testing.assert_close(mean.mean(0)[:, :2], (s2 - s)[:50], atol=0.03, rtol=0)
    epistemic, aleatoric = model.uncertainty(s[:50], a[:50])
    torch.testing.assert_close(epistemic, mean.var(0, unbiased=False))
    torch.testing.assert_close(aleatoric, var.mean(0))
    far = model.uncertainty(10 * s[:50], a[:50])[0]  # far from the data, members disagree more
    assert far.mean() > 10 * epistemic.mean()


def test_early_stopping_needs_a_relative_improvement_of_min_improvement():
    """An improvement smaller than min_improvement of the best holdout MSE does not reset the patience: a bar no
    epoch can clear (100%) stops after the first epoch plus ``patience``; the default 1% bar trains longer."""
    s, a, s2, r = line_data()
    inputs = torch.cat([s, a], -1)

    def epochs(min_improvement):
        torch.manual_seed(0)
        model = Ensemble(2, 1, members=2, hidden=(32,), learn_reward=True)
        targets = model.targets(s, a, s2, r)
        generator = torch.Generator().manual_seed(1)
        return fit_ensemble(
            model, inputs, targets, epochs=40, patience=3, min_improvement=min_improvement, generator=generator
        )["epochs"]

    assert epochs(1.0) == 1 + 3
    assert epochs(0.01) > 1 + 3


def test_members_step_routes_particle_p_to_member_p_mod_k():
    torch.manual_seed(0)
    model = Ensemble(2, 1, members=2, hidden=(8,), probabilistic=False)
    state = torch.randn(3, 4, 6, 2)  # [B, N, P, S]
    act = torch.randn(3, 4, 6, 1)
    nxt, _ = _members_step(model, state, act, None)
    inputs = torch.cat([state, act], -1).reshape(-1, 3)
    per_member, _ = model(inputs)  # every member on every particle: [K, M, O]
    # Direct check: particle p's change equals member (p mod 2)'s prediction for it.
    for p in range(6):
        torch.testing.assert_close(nxt[:, :, p], state[:, :, p] + per_member[p % 2].reshape(3, 4, 6, 2)[:, :, p])


@pytest.mark.parametrize("propagation", ["ts_inf", "ts1", "expectation"])
def test_particle_rollout_shapes_and_known_reward(propagation):
    model = Ensemble(2, 1, members=5, hidden=(16,))
    actions = torch.zeros(2, 7, 4, 1)
    out = particle_rollout(
        model,
        torch.zeros(2, 2),
        actions,
        particles=10,
        propagation=propagation,
        reward_fn=lambda s, a, s2: -s2.pow(2).sum(-1),
    )
    assert out.rewards.shape == out.reward_std.shape == (2, 7, 4) and out.final_states.shape == (2, 7, 2)
    if propagation == "expectation":  # every particle follows the mean: the last reward is -|final state|^2
        torch.testing.assert_close(out.reward_std, torch.zeros(2, 7, 4))
        torch.testing.assert_close(out.rewards[..., -1], -out.final_states.pow(2).sum(-1))
    with pytest.raises(ValueError, match="multiple of the ensemble size"):
        particle_rollout(
            model, torch.zeros(1, 2), actions[:1], particles=7, propagation="ts_inf", reward_fn=lambda *x: x[0][:, 0]
        )
    with pytest.raises(ValueError, match="learns no reward"):
        particle_rollout(model, torch.zeros(1, 2), actions[:1], particles=10)


def test_a_known_termination_stops_the_rewards_after_the_step_that_ends_the_episode():
    model = Ensemble(2, 1, members=2, hidden=(8,), probabilistic=False)
    with torch.no_grad():  # every member moves the pole angle (state 1) by +0.1 per step
        model.net.out.weight.zero_()
        model.net.out.bias.zero_()
        model.out_mean.copy_(torch.tensor([0.0, 0.1]))
    actions = torch.zeros(1, 3, 5, 1)
    out = particle_rollout(
        model,
        torch.zeros(1, 2),
        actions,
        particles=4,
        reward_fn=lambda s, a, s2: torch.ones(len(s)),
        done_fn=inverted_pendulum,
    )
    # angles after each step: 0.1, 0.2, 0.3 (> 0.2: ends, its reward still counts), 0.4, 0.5
    torch.testing.assert_close(out.rewards, torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]).expand(1, 3, 5))
    ends = inverted_pendulum(torch.tensor([[0.0, float("nan")], [0.0, -0.25], [9.0, 0.19]]))
    assert ends.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="agent.termination must be .learned. or one of"):
        termination_rule("hopper")


@pytest.mark.parametrize("propagation", ["ts_inf", "ts1"])
def test_an_ended_episode_stays_with_its_particle_when_particles_change_members(propagation):
    model = Ensemble(1, 1, members=2, hidden=(4,), probabilistic=False)
    with torch.no_grad():  # member 0 steps s -> s + 1 (the episode ends at s >= 0.5), member 1 stays put
        model.net.out.weight.zero_()
        model.net.out.bias.copy_(torch.tensor([1.0, 0.0]).reshape(2, 1, 1))
    out = particle_rollout(
        model,
        torch.zeros(1, 1),
        torch.zeros(1, 1, 4, 1),
        particles=4000,
        propagation=propagation,
        reward_fn=lambda s, a, s2: torch.ones(len(s)),
        done_fn=lambda s: s[:, 0] >= 0.5,
        generator=torch.Generator().manual_seed(0),
    )
    # ts_inf: the member-0 half ends at step 1; ts1: a particle survives each step with probability 1/2
    alive_before, alive_after = (
        ([1.0, 0.5, 0.5, 0.5], 0.5) if propagation == "ts_inf" else ([1.0, 0.5, 0.25, 0.125], 0.0625)
    )
    torch.testing.assert_close(out.rewards[0, 0], torch.tensor(alive_before), atol=0.03, rtol=0)
    torch.testing.assert_close(out.final_alive[0, 0], torch.tensor(alive_after), atol=0.02, rtol=0)
    assert out.final_states[0, 0, 0] == 0.0  # the mean over the particles still alive, all at 0


def test_cartpole_termination_rule():
    states = torch.tensor([[0.0, 9.0, 0.0, 9.0], [2.5, 0.0, 0.0, 0.0], [0.0, 0.0, -0.21, 0.0], [-2.3, 0.0, 0.2, 0.0]])
    assert termination_rule("cartpole")(states).tolist() == [False, True, True, False]  # 12 degrees = 0.2094 rad


def test_deterministic_members_predict_no_variance():
    model = Ensemble(2, 1, members=3, hidden=(8,), probabilistic=False)
    mean, var = model.predict(torch.randn(4, 2), torch.randn(4, 1))
    assert mean.shape == var.shape == (3, 4, 2) and not var.any()
    assert not model.uncertainty(torch.randn(4, 2), torch.randn(4, 1))[1].any()


@pytest.mark.parametrize("propagation", ["ts_inf", "expectation"])
def test_a_rollout_cut_into_passes_equals_one_pass(propagation):
    torch.manual_seed(0)
    model = Ensemble(2, 1, members=2, hidden=(8,), probabilistic=False)  # deterministic: passes must agree exactly
    start, actions = torch.randn(3, 2), torch.rand(3, 5, 4, 1) * 2 - 1  # 3 starts x 5 candidates
    kwargs = dict(particles=4, propagation=propagation, reward_fn=lambda s, a, s2: -s2.pow(2).sum(-1) - a[:, 0])
    whole = particle_rollout(model, start, actions, **kwargs)
    for max_rows in (8, 12, 1):  # 2 candidates a pass; 3 (a short last pass); 1 (fewer rows than particles)
        cut = particle_rollout(model, start, actions, max_rows=max_rows, **kwargs)
        for field in ("rewards", "reward_std", "final_states"):
            torch.testing.assert_close(getattr(cut, field), getattr(whole, field))
