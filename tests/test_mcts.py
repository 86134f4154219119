"""Batched MCTS against numbers worked out by hand on a toy model, plus batching and speed invariants.

Toy model: 3 actions; from the root they pay rewards [0, 1, 0.5]; every deeper edge pays 0; every value is 0
and every prior uniform. Discount 1. The embedding holds the node's depth, so the toy knows where it is.
"""

import time

import numpy as np
import torch

from worldmodels.planning.mcts import Inference, MCTSConfig, considered_visit_sequence, search, softmax

ROOT_REWARDS = np.array([0.0, 1.0, 0.5])


def toy_root(roots: int = 1) -> Inference:
    return Inference(np.zeros(roots), np.zeros(roots), np.zeros((roots, 3)), torch.zeros(roots, 1))


def toy_recurrent(embedding: torch.Tensor, action: np.ndarray) -> Inference:
    depth = embedding[:, 0].numpy()
    reward = np.where(depth == 0, ROOT_REWARDS[action], 0.0)
    r = len(action)
    return Inference(reward, np.zeros(r), np.zeros((r, 3)), embedding + 1)


def test_puct_matches_hand_computation():
    # c = 1.25 + log((N + 19653) / 19652) ~ 1.25; the root starts with 1 visit (its own value, 0).
    # sim 1: all scores c/3 -> action 0 (first of the ties); Q(0) = 0.
    # sim 2: N=2: a0 = c/3*sqrt2/2, a1 = a2 = c/3*sqrt2 -> action 1; Q(1) = 1, tree bounds [0, 1].
    # sim 3: N=3: a0 = 0.2887c, a1 = 1 + 0.2887c, a2 = 0.577c -> action 1, expands below it (reward 0).
    # sim 4: N=4: a0 = c/3, a1 = 1 + c/3*2/3, a2 = 2c/3 -> action 1 again.
    # Visits [1, 3, 0]; Q [0, 1, 0]; root value (0 + 0 + 1 + 1 + 1) / 5 = 0.6.
    cfg = MCTSConfig(num_simulations=4, discount=1.0, method="puct")
    out = search(toy_root(), toy_recurrent, cfg, np.random.default_rng(0), explore=False)
    np.testing.assert_array_equal(out.visits[0], [1, 3, 0])
    np.testing.assert_allclose(out.qvalues[0], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(out.value[0], 0.6)
    assert out.action[0] == 1
    np.testing.assert_allclose(out.policy[0], [0.25, 0.75, 0.0])


def test_gumbel_matches_hand_computation():
    # m = 3 considered actions, 4 simulations: schedule [0, 0, 0, 1] (each action once, then the best).
    # sims 1-3 visit actions 0, 1, 2 (sigma = 0 while unvisited; ties -> lowest index).
    # sim 4: completed Q = [0, 1, 0.5], scaled [0, 1, 0.5], sigma = (50 + 1) * 0.1 * q -> action 1.
    # Final: visits [1, 2, 1], Q [0, 1, 0.5], sigma = (50 + 2) * 0.1 * [0, 1, 0.5] = [0, 5.2, 2.6],
    # policy = softmax(0 + sigma), action 1 (the most visited), root value (0 + 0 + 1 + 0.5 + 1) / 5 = 0.5.
    assert considered_visit_sequence(3, 4).tolist() == [0, 0, 0, 1]
    cfg = MCTSConfig(num_simulations=4, discount=1.0, method="gumbel")
    out = search(toy_root(), toy_recurrent, cfg, np.random.default_rng(0), explore=False)
    np.testing.assert_array_equal(out.visits[0], [1, 2, 1])
    np.testing.assert_allclose(out.qvalues[0], [0.0, 1.0, 0.5])
    np.testing.assert_allclose(out.policy[0], softmax(np.array([0.0, 5.2, 2.6])))
    np.testing.assert_allclose(out.value[0], 0.5)
    assert out.action[0] == 1


def test_sequential_halving_schedule():
    assert considered_visit_sequence(4, 8).tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    # m=16, 50 simulations, 4 phases: 16 actions once, the best 8 once more, the best 4 three times, then 2.
    expected = [0] * 16 + [1] * 8 + [2] * 4 + [3] * 4 + [4] * 4 + [v for v in range(5, 12) for _ in range(2)]
    assert considered_visit_sequence(16, 50).tolist() == expected


def test_batched_roots_search_independently():
    """R trees in one search give the same result as R separate searches (no cross-talk between roots)."""
    cfg = MCTSConfig(num_simulations=12, discount=0.9, method="puct")
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 3))
    root = Inference(np.zeros(5), rng.normal(size=5), logits, torch.zeros(5, 1))
    batched = search(root, toy_recurrent, cfg, np.random.default_rng(0), explore=False)
    for r in range(5):
        single = Inference(np.zeros(1), root.value[r : r + 1], logits[r : r + 1], torch.zeros(1, 1))
        alone = search(single, toy_recurrent, cfg, np.random.default_rng(0), explore=False)
        np.testing.assert_array_equal(batched.visits[r], alone.visits[0])
        np.testing.assert_allclose(batched.value[r], alone.value[0])


def test_search_finds_the_best_action_with_noise_and_more_simulations():
    for method in ("puct", "gumbel"):
        cfg = MCTSConfig(num_simulations=32, discount=0.99, method=method)
        out = search(toy_root(64), toy_recurrent, cfg, np.random.default_rng(0), explore=False)
        assert (out.action == 1).all(), method
        assert (out.visits.sum(-1) == 32).all()


def test_visit_temperature_samples_in_proportion():
    cfg = MCTSConfig(num_simulations=4, discount=1.0, method="puct", dirichlet_fraction=0.0)
    out = search(toy_root(4000), toy_recurrent, cfg, np.random.default_rng(0), explore=True, temperature=1.0)
    share = np.bincount(out.action, minlength=3) / 4000
    np.testing.assert_allclose(share, [0.25, 0.75, 0.0], atol=0.03)


def test_search_speed_with_a_small_network():
    """50 simulations over 16 roots with a small MLP model. The measured rate is about 10x muzero-general's
    pure-Python tree (~3,450 simulations/s here, one tree at a time); the bound is a regression guard that
    holds on a loaded machine: a Python loop over roots or nodes would fall far below it."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Linear(64 + 2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64 + 2 + 2))

    @torch.no_grad()
    def recurrent(s, action):
        out = net(torch.cat([s, torch.nn.functional.one_hot(torch.as_tensor(action), 2).float()], -1))
        return Inference(out[:, 0].numpy(), out[:, 1].numpy(), out[:, 2:4].double().numpy(), out[:, 4:])

    root = Inference(np.zeros(16), np.zeros(16), np.zeros((16, 2)), torch.zeros(16, 64))
    cfg = MCTSConfig(num_simulations=50, method="gumbel")
    search(root, recurrent, cfg, np.random.default_rng(0))
    start = time.perf_counter()
    for _ in range(3):
        search(root, recurrent, cfg, np.random.default_rng(0))
    rate = 3 * 16 * 50 / (time.perf_counter() - start)
    assert rate > 2 * 3450, f"{rate:.0f} simulations/s"


def test_bad_method_is_named():
    try:
        search(toy_root(), toy_recurrent, MCTSConfig(method="uct"), np.random.default_rng(0))
    except ValueError as err:
        assert "gumbel" in str(err) and "uct" in str(err)
    else:
        raise AssertionError("no error")
