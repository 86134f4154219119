"""mbrl-lib 0.2.0's MBPO training speed on InvertedPendulum-v4 (CPU): env steps per minute of its training loop.

Runs mbrl-lib's own `mbrl.algorithms.mbpo.train` unchanged, on the configuration its example CLI composes for
`algorithm=mbpo overrides=mbpo_inv_pendulum` (mbrl/examples/conf, shipped in the package; device cpu), with
`overrides.num_steps` set to --env-steps and the real replay buffer's capacity kept at the 20000 of mbrl-lib's
example run (it would otherwise be num_steps). The clock starts when the initial exploration (5000 env steps with
the untrained SAC policy, mbrl-lib's default) has filled the replay buffer and stops when train() returns, so it
covers mbrl-lib's whole loop: env steps, model training every freq_train_model steps (until the validation score
has not improved for `patience` epochs, then saving the model and the replay buffer to a temporary work dir, as
mbrl-lib does), the model rollouts into the SAC buffer, the SAC updates, and one evaluation episode every epoch.
The loop runs whole epochs (250 env steps), so --env-steps is rounded up to a multiple of 250. The JSON line printed
on stdout gives env steps per minute with and without the evaluation episodes, the seconds spent in each part (by
wrapping the functions train() calls), and the settings; mbrl-lib's own log and hydra's warnings go to stderr.
Model training time grows with the real buffer (5000 + steps so far, up to 20000), so the rate depends on
--env-steps: compare runs of the same length. SAC updates start only once the first model rollouts have filled the
SAC buffer (at the 250th env step), so the first epoch is cheap and short runs overstate the steady rate;
--skip-steps 250 starts the clock (and the parts' timers) after that first epoch instead, so that the window makes
num_sac_updates_per_step updates at every env step, as ours does from its first.

mbrl-lib's settings (mbrl/examples/conf at tag v0.2.0: algorithm/mbpo.yaml, overrides/mbpo_inv_pendulum.yaml,
dynamics_model/gaussian_mlp_ensemble.yaml), the defaults here:
    model: ensemble of 7 Gaussian MLPs (GaussianMLP, num_layers 4 = four hidden layers of 200, SiLU, learned
        rewards, targets are deltas, normalised inputs in double precision, propagation random_model), 5 elites;
        Adam lr 1e-3, weight decay 1e-5, batch 256, validation ratio 0.2, trained every 250 env steps until
        5 epochs without improvement (num_epochs_train_model unset)
    rollouts: 400 effective model rollouts per env step (100,000 start states every 250 steps), rollout_schedule
        [1, 15, 1, 1] (length 1 throughout), SAC buffer keeps 1 epoch of rollouts, real_data_ratio 0.0,
        term_fn inverted_pendulum
    SAC (mbrl.third_party.pytorch_sac_pranz24): 10 updates every env step (sac_updates_every_steps 1), batch 256,
        hidden 256, lr 3e-4, gamma 0.99, tau 0.005, Gaussian policy, alpha 0.2 with automatic entropy tuning
        (target entropy -1), target update interval 1
    loop: epoch length 250, initial exploration 5000 steps with the SAC agent (random_initial_explore false),
        1 evaluation episode per epoch, num_steps 20000 in mbrl-lib's example
The options below change those that may need equalising with our MBPO.

Install mbrl-lib in its own venv, never the project's (from the repository root; Python 3.11). mbrl 0.2.0 pins
hydra-core 1.0.3 and omegaconf 2.0, which fail to import on 3.11; hydra-core 1.3.2 and omegaconf 2.3.0 work, and
pip's dependency-conflict warning about them is expected. gymnasium 0.26.3's MuJoCo envs need mujoco 2.3.3 (a
cp311 wheel exists) and imageio (gymnasium.envs.mujoco imports it):
    python3 -m venv anchors/mbrl
    anchors/mbrl/bin/pip install torch==2.13.0
    anchors/mbrl/bin/pip install --no-deps mbrl==0.2.0
    anchors/mbrl/bin/pip install hydra-core==1.3.2 omegaconf==2.3.0 gymnasium==0.26.3 numpy==1.26.4 termcolor tqdm
    anchors/mbrl/bin/pip install mujoco==2.3.3 imageio
Nothing in the venv is patched. What hydra 1.3 / omegaconf 2.3 need is done here, in the composition, without
changing any of mbrl-lib's values: version_base "1.1" (so the configs' hydra-1.0 "# @package _group_" headers
still work); an empty stand-in for action_optimizer/cem (named in main.yaml's defaults, unused by MBPO, and missing
from the wheel); `_recursive_: false` on the SAC agent and the dynamics model (hydra 1.0 passed nested `_target_`
configs on as configs: SAC reads action_space's low/high/shape, GaussianMLP builds its activation itself); and
the agent's "???" fields (num_inputs, action_space low/high/shape) filled from the env, as
mbrl.planning.complete_agent_cfg does only under omegaconf 2.0.
Run:
    anchors/mbrl/bin/python benchmarks/anchors/mbrl_lib_mbpo_speed.py --threads 2 --env-steps 2000
"""

import argparse
import contextlib
import functools
import json
import math
import pathlib
import sys
import tempfile
import time

import hydra
import mbrl
import mbrl.algorithms.mbpo as mbpo
import mbrl.third_party.pytorch_sac_pranz24.sac as pranz24_sac
import mbrl.util.common
import mbrl.util.env
import numpy as np
import torch
from hydra.core.config_store import ConfigStore

CONF_DIR = pathlib.Path(mbrl.__file__).parent / "examples" / "conf"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--env-steps", type=int, default=2000, help="env steps after the initial exploration (--skip-steps included)"
    )
    parser.add_argument(
        "--skip-steps",
        type=int,
        default=0,
        help="loop env steps before the clock starts (250: skip the first epoch, which updates SAC only at its end)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--initial-exploration-steps", type=int, default=5000)
    parser.add_argument(
        "--dataset-size",
        type=int,
        default=20000,
        help="real replay buffer capacity (mbrl-lib: overrides.num_steps, 20000 in its example)",
    )
    parser.add_argument("--rollout-batch", type=int, default=400, help="effective model rollouts per env step")
    parser.add_argument("--rollout-length", type=int, default=1, help="fixed rollout length (schedule [1,15,L,L])")
    parser.add_argument("--sac-updates-per-step", type=int, default=10)
    parser.add_argument("--ensemble-size", type=int, default=7)
    parser.add_argument("--elites", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=200, help="model width")
    parser.add_argument("--layers", type=int, default=4, help="model hidden layers (GaussianMLP num_layers)")
    parser.add_argument("--model-train-freq", type=int, default=250, help="env steps between model trainings")
    return parser.parse_args()


def compose_config(args: argparse.Namespace):
    overrides = [
        "algorithm=mbpo",
        "overrides=mbpo_inv_pendulum",
        "device=cpu",
        # hydra >= 1.1 instantiates nested _target_ configs; mbrl-lib was written for hydra 1.0, which passed them on
        # as configs: SAC reads action_space's low/high/shape, GaussianMLP builds its activation itself
        "+algorithm.agent._recursive_=false",
        "+dynamics_model._recursive_=false",
        f"seed={args.seed}",
        f"overrides.num_steps={args.env_steps}",
        f"algorithm.initial_exploration_steps={args.initial_exploration_steps}",
        # without it the real buffer's capacity would be --env-steps, not that of mbrl-lib's 20000-step run
        f"+algorithm.dataset_size={args.dataset_size}",
        f"overrides.effective_model_rollouts_per_step={args.rollout_batch}",
        f"overrides.rollout_schedule=[1,15,{args.rollout_length},{args.rollout_length}]",
        f"overrides.num_sac_updates_per_step={args.sac_updates_per_step}",
        f"dynamics_model.ensemble_size={args.ensemble_size}",
        f"overrides.num_elites={args.elites}",
        f"dynamics_model.hid_size={args.hidden}",
        f"dynamics_model.num_layers={args.layers}",
        f"overrides.freq_train_model={args.model_train_freq}",  # algorithm.freq_train_model interpolates it
    ]
    # main.yaml's defaults name action_optimizer/cem (PETS' planner, never read by MBPO), whose folder the mbrl 0.2.0
    # wheel does not ship: an empty stand-in lets hydra compose, and a "~action_optimizer" override does not help
    ConfigStore.instance().store(group="action_optimizer", name="cem", node={})
    # version_base 1.1: mbrl's configs use hydra 1.0's "# @package _group_" headers, which hydra 1.3's own defaults
    # (version_base None) do not honour, so the groups' keys would not land under algorithm/overrides/...
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.1"):
        return hydra.compose(config_name="main", overrides=overrides)


class Timers:
    """Wall-clock seconds and call counts of the parts of mbrl-lib's loop, by wrapping the functions it calls."""

    def __init__(self, skip_steps: int = 0) -> None:
        self.skip_steps = skip_steps
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.loop_start: float | None = None
        self.loop_env_steps = 0

    def wrap(self, owner, name: str, key: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start
                self.calls[key] = self.calls.get(key, 0) + 1

        setattr(owner, name, timed)

    def install(self) -> None:
        # mbpo.train looks all of these up at call time: module attributes, mbpo's globals, SAC's class
        explore = mbrl.util.common.rollout_agent_trajectories

        def explore_then_start_clock(*args, **kwargs):
            result = explore(*args, **kwargs)
            self.loop_start = time.perf_counter()
            return result

        mbrl.util.common.rollout_agent_trajectories = explore_then_start_clock
        step = mbrl.util.common.step_env_and_add_to_buffer

        def counted_step(*args, **kwargs):
            if self.loop_start is not None:
                if self.loop_env_steps == self.skip_steps > 0:  # the skipped steps are done: restart every clock
                    self.loop_start = time.perf_counter()
                    self.seconds, self.calls = {}, {}
                self.loop_env_steps += 1
            return step(*args, **kwargs)

        mbrl.util.common.step_env_and_add_to_buffer = counted_step
        self.wrap(mbrl.util.common, "train_model_and_save_model_and_data", "model_train")
        self.wrap(mbpo, "rollout_model_and_populate_sac_buffer", "model_rollout")
        self.wrap(pranz24_sac.SAC, "update_parameters", "sac_update")
        self.wrap(mbpo, "evaluate", "eval")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    cfg = compose_config(args)
    env, term_fn, _ = mbrl.util.env.EnvHandler.make_env(cfg)
    test_env, *_ = mbrl.util.env.EnvHandler.make_env(cfg)
    agent_cfg = cfg.algorithm.agent
    agent_cfg.num_inputs = env.observation_space.shape[0]
    agent_cfg.action_space.low = env.action_space.low.tolist()
    agent_cfg.action_space.high = env.action_space.high.tolist()
    agent_cfg.action_space.shape = list(env.action_space.shape)
    np.random.seed(cfg.seed)  # as mbrl/examples/main.py does
    torch.manual_seed(cfg.seed)
    timers = Timers(args.skip_steps)
    timers.install()
    with tempfile.TemporaryDirectory() as work_dir, contextlib.redirect_stdout(sys.stderr):
        best_eval = mbpo.train(env, test_env, term_fn, cfg, silent=False, work_dir=work_dir)
        end = time.perf_counter()
    assert timers.loop_start is not None
    loop_s = end - timers.loop_start
    eval_s = timers.seconds.get("eval", 0.0)
    steps = timers.loop_env_steps - args.skip_steps
    o = cfg.overrides
    result = {
        "anchor": "mbrl-lib 0.2.0 MBPO",
        "env": o.env,
        "env_steps": steps,
        "skip_steps": args.skip_steps,
        "env_steps_per_min": round(60 * steps / loop_s, 1),
        "env_steps_per_min_without_eval": round(60 * steps / (loop_s - eval_s), 1),
        "loop_s": round(loop_s, 2),
        "seconds": {k: round(v, 2) for k, v in timers.seconds.items()},
        "calls": timers.calls,
        "best_eval_return": float(best_eval),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "settings": {
            "initial_exploration_steps": cfg.algorithm.initial_exploration_steps,
            "dataset_size": cfg.algorithm.dataset_size,
            "ensemble_size": cfg.dynamics_model.ensemble_size,
            "elites": o.num_elites,
            "layers": cfg.dynamics_model.num_layers,
            "hidden": cfg.dynamics_model.hid_size,
            "activation": cfg.dynamics_model.activation_fn_cfg._target_,
            "model_lr": o.model_lr,
            "model_wd": o.model_wd,
            "model_batch_size": o.model_batch_size,
            "validation_ratio": o.validation_ratio,
            "patience": o.patience,
            "freq_train_model": o.freq_train_model,
            "effective_model_rollouts_per_step": o.effective_model_rollouts_per_step,
            "rollout_batch_per_training": o.effective_model_rollouts_per_step * o.freq_train_model,
            "rollout_schedule": list(o.rollout_schedule),
            "num_sac_updates_per_step": o.num_sac_updates_per_step,
            "sac_updates_every_steps": o.sac_updates_every_steps,
            "num_epochs_to_retain_sac_buffer": o.num_epochs_to_retain_sac_buffer,
            "real_data_ratio": cfg.algorithm.real_data_ratio,
            "sac_hidden_size": o.sac_hidden_size,
            "sac_batch_size": o.sac_batch_size,
            "sac_lr": o.sac_lr,
            "sac_alpha": o.sac_alpha,
            "sac_automatic_entropy_tuning": o.sac_automatic_entropy_tuning,
            "sac_target_entropy": o.sac_target_entropy,
            "sac_target_update_interval": o.sac_target_update_interval,
            "epoch_length": o.epoch_length,
            "epochs": math.ceil(args.env_steps / o.epoch_length),
            "num_eval_episodes": cfg.algorithm.num_eval_episodes,
            "term_fn": o.term_fn,
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
