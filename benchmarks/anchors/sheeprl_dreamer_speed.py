"""sheeprl 0.8.4's DreamerV3 training speed on CPU: seconds per update (world model, actor and critic).

One update is one call of sheeprl's own `train()` (sheeprl.algos.dreamer_v3.dreamer_v3), preceded by the soft copy
of the critic into the target critic that its main loop makes before every gradient step. The configuration is
sheeprl's own, composed with hydra as its CLI would compose `exp=dreamer_v3_dmc_cartpole_swingup_sparse` (dm_control
cartpole swingup from 64x64 RGB pixels, one continuous action), with the algo preset of --size (dreamer_v3_S by
default), a batch of --batch sequences of --seq steps, Fabric on one CPU at --precision ("32-true", fp32, or
"bf16-mixed", its bfloat16 autocast: the setting that matches ours with agent.bf16 on a CPU with AMX), eager mode
(sheeprl's default: algo.compile.enabled False) and no metrics or logger. The batch is random, in the layout train()
reads from sheeprl's replay buffer: float tensors [T, B, ...] (rgb in 0..255, actions, rewards, terminated, truncated,
is_first).
The models are untrained: the cost of an update does not depend on their weights.

Install sheeprl in its own venv, never the project's (from the repository root):
    python3.11 -m venv anchors/sheeprl
    anchors/sheeprl/bin/pip install "sheeprl[dmc]==0.8.4" torch==2.13.0 mujoco==3.17.0
Run:
    anchors/sheeprl/bin/python benchmarks/anchors/sheeprl_dreamer_speed.py --size S --threads 2 --precision bf16-mixed \
        --results benchmarks/speed/speed.jsonl
--results appends the figure as an anchor row (worldmodels.analysis.speed_rows) that `benchmark.py report` tabulates
beside ours.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import hydra
import numpy as np
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch.distributions import Distribution

import sheeprl
from sheeprl.algos.dreamer_v3.agent import build_agent
from sheeprl.algos.dreamer_v3.dreamer_v3 import train
from sheeprl.algos.dreamer_v3.utils import Moments
from sheeprl.utils.metric import MetricAggregator
from sheeprl.utils.timer import timer
from sheeprl.utils.utils import dotdict


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for the row format only
from worldmodels.analysis.benchmark import append_rows  # noqa: E402
from worldmodels.analysis.speed_rows import anchor_row  # noqa: E402


def compose_config(size: str, batch: int, seq: int, threads: int, precision: str) -> dotdict:
    overrides = [
        "exp=dreamer_v3_dmc_cartpole_swingup_sparse",
        "env.wrapper.task_name=swingup",  # the dense-reward task; the reward does not change the cost of an update
        f"algo=dreamer_v3_{size}",
        f"algo.per_rank_batch_size={batch}",
        f"algo.per_rank_sequence_length={seq}",
        "algo.cnn_keys.encoder=[rgb]",
        "algo.cnn_keys.decoder=[rgb]",
        "algo.mlp_keys.encoder=[]",
        "algo.mlp_keys.decoder=[]",
        "fabric.accelerator=cpu",
        "fabric.devices=1",
        f"fabric.precision={precision}",
        "metric.log_level=0",  # no metrics, no timers, no logger
        "model_manager.disabled=True",
        f"num_threads={threads}",
    ]
    with initialize_config_module(config_module="sheeprl.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    # As sheeprl's CLI does: plain containers, every interpolation resolved
    return dotdict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))


def random_batch(seq: int, batch: int, obs_shape, actions_dim: int, generator: torch.Generator) -> dict:
    """A batch as sheeprl's `sample_batches` gives it to train(): every key as float, [T, B, ...]."""
    return {
        "rgb": torch.randint(0, 256, (seq, batch, *obs_shape), generator=generator, dtype=torch.uint8).float(),
        "actions": torch.rand((seq, batch, actions_dim), generator=generator) * 2 - 1,
        "rewards": torch.rand((seq, batch, 1), generator=generator),
        "terminated": torch.zeros((seq, batch, 1)),
        "truncated": torch.zeros((seq, batch, 1)),
        "is_first": torch.zeros((seq, batch, 1)),  # train() sets the first step of every sequence to 1
    }


def n_params(*modules) -> int:
    params = {id(p): p for m in modules for p in m.parameters()}
    return sum(p.numel() for p in params.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="S", choices=["XS", "S", "M", "L", "XL"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"], help="Fabric's precision")
    parser.add_argument("--results", type=Path, help="append the figure as an anchor row to this JSONL")
    parser.add_argument("--label", help="the row's comparison label (default dreamer-<size>-<batch>x<seq>)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = compose_config(args.size, args.batch, args.seq, args.threads, args.precision)
    # The global settings of sheeprl's CLI (run_algorithm) that bear on an update
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    Distribution.set_default_validate_args(cfg.distribution.validate_args)
    MetricAggregator.disabled = True
    timer.disabled = True

    fabric = hydra.utils.instantiate(cfg.fabric, strategy="auto", _convert_="all")
    fabric.launch()
    fabric.seed_everything(cfg.seed)

    size = cfg.env.screen_size
    observation_space = gym.spaces.Dict({"rgb": gym.spaces.Box(0, 255, (3, size, size), np.uint8)})
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    is_continuous = True
    actions_dim = tuple(action_space.shape)

    # As sheeprl's dreamer_v3.main() builds the agent, its optimizers and the normalization of the returns
    world_model, actor, critic, target_critic, _player = build_agent(
        fabric, actions_dim, is_continuous, cfg, observation_space
    )
    world_optimizer = hydra.utils.instantiate(
        cfg.algo.world_model.optimizer, params=world_model.parameters(), _convert_="all"
    )
    actor_optimizer = hydra.utils.instantiate(cfg.algo.actor.optimizer, params=actor.parameters(), _convert_="all")
    critic_optimizer = hydra.utils.instantiate(cfg.algo.critic.optimizer, params=critic.parameters(), _convert_="all")
    world_optimizer, actor_optimizer, critic_optimizer = fabric.setup_optimizers(
        world_optimizer, actor_optimizer, critic_optimizer
    )
    moments = Moments(
        cfg.algo.actor.moments.decay,
        cfg.algo.actor.moments.max,
        cfg.algo.actor.moments.percentile.low,
        cfg.algo.actor.moments.percentile.high,
    )

    generator = torch.Generator().manual_seed(0)
    data = random_batch(args.seq, args.batch, observation_space["rgb"].shape, sum(actions_dim), generator)
    gradient_steps = 0

    def update() -> None:
        nonlocal gradient_steps
        # The main loop's update of the target critic, before every gradient step (tau 1 at the first one)
        if gradient_steps % cfg.algo.critic.per_rank_target_network_update_freq == 0:
            tau = 1 if gradient_steps == 0 else cfg.algo.critic.tau
            for cp, tcp in zip(critic.module.parameters(), target_critic.parameters()):
                tcp.data.copy_(tau * cp.data + (1 - tau) * tcp.data)
        train(
            fabric, world_model, actor, critic, target_critic, world_optimizer, actor_optimizer, critic_optimizer,
            data, None, cfg, is_continuous, actions_dim, moments,
        )
        gradient_steps += 1

    for _ in range(args.warmup):
        update()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        update()
        times.append(time.perf_counter() - start)

    trained = n_params(world_model, actor, critic)
    total = trained + n_params(target_critic)
    print(f"sheeprl {sheeprl.__version__} DreamerV3 {args.size}: {statistics.median(times):.3f} s per update "
          f"(median of {args.repeats}, min {min(times):.3f}), batch {args.batch} x {args.seq}, {args.precision}, "
          f"{torch.get_num_threads()} threads, {total / 1e6:.2f}M parameters "
          f"({trained / 1e6:.2f}M without the target critic)")
    if args.results:
        setting = f"DreamerV3 {args.size}, batch {args.batch} x {args.seq}, dmc cartpole-swingup 64x64 rgb, eager"
        precision = "bfloat16" if args.precision == "bf16-mixed" else "float32"
        row = anchor_row(
            f"sheeprl {sheeprl.__version__}", "update", times, agent="dreamer", task="dmc:cartpole-swingup",
            obs="pixels", setting=setting, precision=precision, threads=torch.get_num_threads(), parameters=total,
            label=args.label or f"dreamer-{args.size}-{args.batch}x{args.seq}",
        )
        append_rows(args.results, [row])
        print(f"-> {args.results}")


if __name__ == "__main__":
    main()
