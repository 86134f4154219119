"""The compounding-error study on a real task: fit a linear-Gaussian model and a probabilistic ensemble on
random-action episodes, then measure both models' open-loop k-step errors on held-out episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodels.analysis.compounding import CompoundingCurve, compounding_table, k_step_errors, plot_compounding
from worldmodels.envs import make_env
from worldmodels.models.ensemble import Ensemble, fit_ensemble
from worldmodels.models.linear_gaussian import LinearGaussianModel


def random_episodes(spec: str, episodes: int, action_repeat: int, seed: int = 0):
    """-> states [E, T + 1, S], actions [E, T, A], rewards [E, T] from uniformly random actions."""
    env = make_env(spec, obs="state", action_repeat=action_repeat, seed=seed)
    rng = np.random.default_rng(seed)
    all_states, all_actions, all_rewards = [], [], []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        states, actions, rewards, done = [obs["state"]], [], [], False
        while not done:
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            states.append(obs["state"])
            actions.append(action)
            rewards.append(reward)
            done = terminated or truncated
        all_states.append(np.stack(states))
        all_actions.append(np.stack(actions))
        all_rewards.append(np.array(rewards, np.float32))
    env.close()
    length = min(len(a) for a in all_actions)  # equal lengths for batching
    f = lambda xs, n: torch.as_tensor(np.stack([x[:n] for x in xs]))  # noqa: E731
    return f(all_states, length + 1), f(all_actions, length), f(all_rewards, length)


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
