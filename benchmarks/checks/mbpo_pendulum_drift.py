"""Why MBPO's InvertedPendulum evaluations sometimes collapse (issue 18): play each run's last policy, watch the cart.

For every run directory given (the benchmark's MBPO runs, `configs/mbpo/inverted_pendulum.yaml`), this loads the last
checkpoint, plays EPISODES episodes with the deterministic policy (the evaluation's) and EPISODES with the
stochastic one (training's), and prints one JSON row per run and mode: episode lengths, the cart position at the end
and its largest |x|, the mean action. The rail ends at |x| = 1: a policy that only balances the pole, with nothing in
the reward for staying central, can drift there, and hitting the rail topples the pole.
    .venv/bin/python benchmarks/checks/mbpo_pendulum_drift.py checkpoints/benchmark/mbpo-gym-InvertedPendulum-v5-s*
"""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import worldmodels  # noqa: E402,F401  (registers the envs and agents)
from worldmodels.run.checkpoint import load_checkpoint  # noqa: E402
from worldmodels.run.loop import load_agent  # noqa: E402

EPISODES = 5


def episode(agent, env, seed: int, explore: bool) -> dict:
    obs, _ = env.reset(seed=seed)
    xs, actions = [], []
    for t in range(1000):
        action, _, _ = agent.act({"state": obs[None].astype(np.float32), "is_first": np.array([t == 0])}, None, explore)
        obs, _, terminated, truncated, _ = env.step(action[0] * env.action_space.high)
        xs.append(float(obs[0]))
        actions.append(float(action[0, 0]))
        if terminated or truncated:
            break
    mean_action = float(np.mean(actions))
    return {"length": len(xs), "final_x": xs[-1], "max_abs_x": max(map(abs, xs)), "mean_action": mean_action}


def main() -> None:
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    for run in map(Path, sys.argv[1:]):
        agent, cfg = load_agent(run, "cpu")
        torch.manual_seed(cfg.train.seed)  # the stochastic policy's draws
        steps = load_checkpoint(run)["counters"]["env_steps"]
        env = gym.make("InvertedPendulum-v5")
        for explore in (False, True):
            eps = [episode(agent, env, cfg.train.seed + 10_000 + i, explore) for i in range(EPISODES)]
            print(json.dumps({
                "check": "mbpo-pendulum-drift", "run": str(run), "seed": cfg.train.seed, "env_steps": steps,
                "policy": "stochastic" if explore else "deterministic", "episodes": EPISODES,
                "lengths": [e["length"] for e in eps], "final_x": [round(e["final_x"], 3) for e in eps],
                "max_abs_x": [round(e["max_abs_x"], 3) for e in eps],
                "mean_action": [round(e["mean_action"], 4) for e in eps], "check_commit": commit,
            }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
