"""mbrl-lib's PETS planning cost at its cartpole settings: milliseconds per action.

Run with mbrl-lib's own venv, never the project's (see benchmarks/README.md); --results appends an anchor row:
    anchors/mbrl/bin/python benchmarks/anchors/mbrl_lib_pets_speed.py --threads 2 --results benchmarks/speed/speed.jsonl
That venv on Python 3.11 (mbrl 0.2.0 pins hydra-core 1.0.3, which fails to import on 3.11; 1.3.2 works, and pip's
dependency-conflict warning about it is expected):
    python3 -m venv anchors/mbrl
    anchors/mbrl/bin/pip install torch==2.13.0
    anchors/mbrl/bin/pip install --no-deps mbrl==0.2.0
    anchors/mbrl/bin/pip install hydra-core==1.3.2 omegaconf==2.3.0 gymnasium==0.26.3 numpy==1.26.4 termcolor tqdm
Settings from mbrl-lib's PETS cartpole example: ensemble of 5 Gaussian MLPs (3 layers of 200, LeakyReLU),
TS-infinity ("fixed_model") with 20 particles, CEM with population 500, 5 iterations, elite ratio 0.1,
alpha 0.1, horizon 15, replanning every step. The model is untrained: planning cost does not depend on it.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import omegaconf
import torch

import mbrl.env.cartpole_continuous as cartpole_env
import mbrl.env.reward_fns as reward_fns
import mbrl.env.termination_fns as termination_fns
import mbrl.models as models
import mbrl.planning as planning

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for the row format only
from worldmodels.analysis.benchmark import append_rows  # noqa: E402
from worldmodels.analysis.speed_rows import anchor_row  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--results", type=Path, help="append the figure as an anchor row to this JSONL")
    parser.add_argument("--label", default="pets-mbrl-cartpole", help="the row's comparison label")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = cartpole_env.CartPoleEnv()
    obs, _ = env.reset(seed=0)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    generator = torch.Generator().manual_seed(0)
    member = models.GaussianMLP(obs_dim + act_dim, obs_dim, "cpu", num_layers=3, ensemble_size=5, hid_size=200,
                                deterministic=False, propagation_method="fixed_model",
                                activation_fn_cfg={"_target_": "torch.nn.LeakyReLU", "negative_slope": 0.01})
    dynamics = models.OneDTransitionRewardModel(member, target_is_delta=True, normalize=True, learned_rewards=False)
    model_env = models.ModelEnv(env, dynamics, termination_fns.cartpole, reward_fns.cartpole, generator=generator)
    agent_cfg = omegaconf.OmegaConf.create({
        "_target_": "mbrl.planning.TrajectoryOptimizerAgent", "planning_horizon": 15, "replan_freq": 1,
        "_recursive_": False,  # hydra >= 1.1 would build the optimizer early; mbrl-lib builds it itself
        "verbose": False, "action_lb": env.action_space.low.tolist(), "action_ub": env.action_space.high.tolist(),
        "optimizer_cfg": {"_target_": "mbrl.planning.CEMOptimizer", "num_iterations": 5, "elite_ratio": 0.1,
                          "population_size": 500, "alpha": 0.1, "device": "cpu",
                          # set here: mbrl-lib fills "???" bounds itself only under omegaconf 2.0
                          "lower_bound": [env.action_space.low.tolist()] * 15,
                          "upper_bound": [env.action_space.high.tolist()] * 15,
                          "return_mean_elites": True, "clipped_normal": False},
    })
    agent = planning.create_trajectory_optim_agent_for_model(model_env, agent_cfg, num_particles=20)
    agent.act(obs)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        agent.act(obs)
        times.append(time.perf_counter() - start)
    print(f"mbrl-lib PETS: {1000 * float(np.median(times)):.0f} ms per action (median of {args.repeats}, "
          f"min {1000 * min(times):.0f}), {torch.get_num_threads()} threads")
    if args.results:
        setting = "5 x 200x3 LeakyReLU, TS-inf 20 particles, CEM 500 x 5, elites 10%, horizon 15"
        row = anchor_row(
            "mbrl-lib 0.2.0", "decision", times, agent="pets", task="mbrl:cartpole_continuous", obs="state",
            setting=setting, precision="float32", threads=torch.get_num_threads(), batch=1, label=args.label,
        )
        append_rows(args.results, [row])
        print(f"-> {args.results}")


if __name__ == "__main__":
    main()
