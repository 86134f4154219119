"""Planners against the 1-D worked examples: s' = s + a, start 3, target 7, reward -|s - 7| at each state
where an action is taken (so a sequence's return counts the start state and the states before the last action)."""

import pytest
import torch

from worldmodels.planning import (
    Rollout,
    cem,
    cem_update,
    mppi,
    random_shooting,
    select_best,
    sequence_returns,
    shift_plan,
)
from worldmodels.planning.shooting import top_candidates


def line_rollout(start: float = 3.0, target: float = 7.0, noise_std: float = 0.0):
    def rollout(actions):  # [B, N, H, 1]
        visited = start + torch.cumsum(actions[..., 0], -1)  # states after each action [B, N, H]
        before = torch.cat([torch.full_like(visited[..., :1], start), visited[..., :-1]], -1)
        std = torch.full_like(before, noise_std) if noise_std else None
        return Rollout(rewards=-(before - target).abs(), reward_std=std, final_states=visited[..., -1])

    return rollout


def test_random_shooting_worked_example_picks_one_one_one():
    candidates = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-1.0, 0.0, 1.0], [0.5, 0.5, 0.5]])[None, :, :, None]
    returns = sequence_returns(line_rollout(), candidates)
    torch.testing.assert_close(returns, torch.tensor([[-12.0, -9.0, -14.0, -10.5]]))
    best, value = select_best(returns, candidates)
    torch.testing.assert_close(best.reshape(-1), torch.tensor([1.0, 1.0, 1.0]))
    assert value.item() == -9.0


def test_cem_step_worked_example_keeps_two_elites_and_moves_the_mean():
    candidates = torch.tensor([[1.2, 0.9], [0.9, 1.1], [0.5, 1.0], [0.8, 0.2], [0.0, 2.0], [-0.5, 0.5]])[
        None, :, :, None
    ]
    # H = 2: return = -|3 - 7| - |3 + a1 - 7|, so a larger first action is better here.
    returns = sequence_returns(line_rollout(), candidates)
    mean, std, elites = cem_update(returns, candidates, torch.zeros(1, 2, 1), torch.ones(1, 2, 1), elites=2)
    assert sorted(elites[0].tolist()) == [0, 1]
    torch.testing.assert_close(mean.reshape(-1), torch.tensor([1.05, 1.0]))
    torch.testing.assert_close(std.reshape(-1), torch.tensor([0.15, 0.1]))


def test_top_candidates_gathers_each_batch_entrys_own_best():
    returns = torch.tensor([[1.0, 5.0, 3.0], [4.0, 0.0, 2.0]])  # [B=2, N=3]
    candidates = torch.arange(6.0).view(2, 3, 1, 1)  # [B, N, H=1, A=1]: candidate value = 3 b + n
    top, best = top_candidates(returns, candidates, k=2)
    assert top.indices.tolist() == [[1, 2], [0, 2]]
    assert top.values.tolist() == [[5.0, 3.0], [4.0, 2.0]]
    assert best.reshape(2, 2).tolist() == [[1.0, 2.0], [3.0, 5.0]]


def test_terminal_value_and_pessimism_enter_the_return():
    actions = torch.ones(1, 1, 2, 1)
    plain = sequence_returns(line_rollout(), actions)
    assert plain.item() == -4.0 - 3.0
    valued = sequence_returns(line_rollout(), actions, terminal_value=lambda final: -(final - 7).abs(), discount=0.5)
    assert valued.item() == -4.0 + 0.5 * -3.0 + 0.25 * -2.0
    pessimistic = sequence_returns(line_rollout(noise_std=1.0), actions, pessimism=2.0)
    assert pessimistic.item() == plain.item() - 2.0 * 2

    def half_ended(actions):  # half of the particles' episodes ended before the horizon: half the value
        out = line_rollout()(actions)
        return Rollout(out.rewards, final_states=out.final_states, final_alive=torch.full((1, 1), 0.5))

    valued = sequence_returns(half_ended, actions, terminal_value=lambda final: -(final - 7).abs(), discount=0.5)
    assert valued.item() == -4.0 + 0.5 * -3.0 + 0.25 * -2.0 * 0.5


def test_planners_find_the_target_and_batch_over_starts():
    g = torch.Generator().manual_seed(0)
    rollout = line_rollout()
    plan, _ = random_shooting(rollout, batch=2, horizon=4, action_dim=1, candidates=2000, generator=g)
    assert plan.shape == (2, 4, 1) and plan[:, 0, 0].min() > 0.5
    cem_plan = cem(rollout, torch.zeros(3, 4, 1), population=200, iterations=5, generator=g)
    assert cem_plan.shape == (3, 4, 1) and torch.all(cem_plan[:, :3, 0] > 0.8)  # push right as hard as allowed
    mppi_plan = mppi(rollout, torch.zeros(1, 4, 1), population=500, temperature=0.5, generator=g)
    assert mppi_plan[0, 0, 0] > 0.5


def test_shift_plan_warm_starts():
    plan = torch.arange(6.0).reshape(1, 3, 2)
    torch.testing.assert_close(shift_plan(plan), torch.tensor([[[2.0, 3.0], [4.0, 5.0], [0.0, 0.0]]]))


def test_gaussian_candidates_follow_the_mean_and_std_and_stay_in_bounds():
    from worldmodels.planning.shooting import gaussian_candidates

    mean = torch.tensor([[[0.0], [0.9]]])  # [B=1, H=2, A=1]
    std = torch.tensor([[[0.1], [0.5]]])
    draws = gaussian_candidates(mean, std, 20_000, -1.0, 1.0, torch.Generator().manual_seed(0))
    assert draws.shape == (1, 20_000, 2, 1)
    assert draws.min() >= -1.0 and draws.max() <= 1.0
    first, second = draws[0, :, 0, 0], draws[0, :, 1, 0]
    assert abs(first.mean()) < 0.01 and abs(first.std() - 0.1) < 0.01  # far from the bounds: N(0, 0.1)
    assert (second == 1.0).float().mean().item() == pytest.approx(0.42, abs=0.02)  # P(N(0.9, 0.5) > 1) = 0.42
    same = gaussian_candidates(mean, std, 20_000, -1.0, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(draws, same)
