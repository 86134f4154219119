"""The compounding-error study on a real task: fit a linear-Gaussian model and a probabilistic ensemble on
random-action episodes, then measure both models' open-loop k-step errors on held-out episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodels.analysis.compounding import CompoundingCurve, compounding_table, k_step_errors, plot_compounding
from worldmodels.analysis.model_error import held_out_episodes
from worldmodels.models.ensemble import Ensemble, fit_ensemble
from worldmodels.models.linear_gaussian import LinearGaussianModel


def random_episodes(spec: str, episodes: int, action_repeat: int, seed: int = 0):
    """-> states [E, T + 1, S], actions [E, T, A], rewards [E, T] from uniformly random actions, cut to the
    shortest episode (analysis/model_error.py's held-out episodes, stacked)."""
    out = held_out_episodes(spec, action_repeat, episodes, seed)
    length = min(len(e["reward"]) - 1 for e in out)  # equal lengths for batching
    f = lambda key, lo, hi: torch.as_tensor(np.stack([e[key][lo:hi] for e in out]))  # noqa: E731
    return f("state", 0, length + 1), f("action", 1, length + 1), f("reward", 1, length + 1)


def ensemble_mean_rollout(model: Ensemble):
    """Open-loop rollout with the mean of the members' mean predictions: -> (states [N, H, S], rewards [N, H])."""

    @torch.no_grad()
    def rollout(start, actions):
        states, rewards, state = [], [], start
        for k in range(actions.shape[1]):
            mean, _ = model.predict(state, actions[:, k])  # [K, N, O]
            mean = mean.mean(0)
            state = state + mean[:, : model.state_dim]
            states.append(state)
            rewards.append(mean[:, -1])
        return torch.stack(states, 1), torch.stack(rewards, 1)

    return rollout


def run_study(
    spec: str,
    train_episodes: int,
    test_episodes: int,
    horizon: int,
    action_repeat: int,
    out: Path,
    seed: int = 0,
    epochs: int = 100,
    hidden: tuple[int, ...] = (200, 200, 200),
) -> str:
    torch.manual_seed(seed)
    states, actions, rewards = random_episodes(spec, train_episodes + test_episodes, action_repeat, seed)
    train = slice(0, train_episodes)
    test = slice(train_episodes, None)
    s, a = states[train, :-1].flatten(0, 1), actions[train].flatten(0, 1)
    s2, r = states[train, 1:].flatten(0, 1), rewards[train].flatten(0, 1)
    linear = LinearGaussianModel().fit(s.double(), a.double(), s2.double())
    ensemble = Ensemble(s.shape[1], a.shape[1], members=5, hidden=hidden, learn_reward=True)
    fit_ensemble(
        ensemble,
        torch.cat([s, a], -1),
        ensemble.targets(s, a, s2, r),
        epochs=epochs,
        generator=torch.Generator().manual_seed(seed),
    )
    curves = {
        "linear-Gaussian": k_step_errors(
            lambda st, ac: linear.rollout(st.double(), ac.double()).float(), states[test], actions[test], horizon
        ),
        f"PETS ensemble (5 x {'x'.join(map(str, hidden))})": k_step_errors(
            ensemble_mean_rollout(ensemble), states[test], actions[test], horizon, rewards[test]
        ),
    }
    out.mkdir(parents=True, exist_ok=True)
    task = spec.replace(":", "_")
    plot_compounding(curves, out / f"compounding-{task}.png")
    table = compounding_table(curves)
    (out / f"compounding-{task}.md").write_text(
        f"{spec}, action repeat {action_repeat}, {train_episodes} random-action training "
        f"episodes, {test_episodes} held out, open-loop horizon {horizon}\n\n{table}"
    )
    return table


__all__ = ["run_study", "CompoundingCurve"]
