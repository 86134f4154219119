"""Evaluate a saved agent: checkpoint -> returns (JSON), and optionally a GIF of the first episode."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from worldmodels.cli.errors import UsageError, run_command

EPILOG = """examples:
  python scripts/evaluate.py checkpoints/<run>                       # 10 episodes, deterministic policy
  python scripts/evaluate.py checkpoints/<run> --episodes 20 --seed 3 --video eval.gif
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evaluate",
        description="Evaluate the latest checkpoint of a run with the shared evaluate().",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", type=Path, help="a run directory, e.g. checkpoints/<run>")
    p.add_argument("--episodes", type=int, help="episodes to play (default: the run's train.eval_episodes)")
    p.add_argument(
        "--seed",
        type=int,
        help="env k is seeded seed + k (default: the run's own evaluation seeds, train.seed + 10000; with them, on "
        "the device it trained on, the agent repeats the returns of its run's last logged evaluation)",
    )
    p.add_argument("--video", type=Path, help="write the first episode as a GIF here")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_command(lambda: evaluate_command(args))


def evaluate_command(args) -> int:
    from worldmodels.run.evaluation import evaluate
    from worldmodels.run.loop import env_kwargs, eval_seed, load_agent
    from worldmodels.run.video import write_gif

    if args.episodes is not None and args.episodes < 1:
        raise UsageError("--episodes must be at least 1")
    agent, cfg = load_agent(args.run_dir, args.device, restore_rng=True)
    seed = eval_seed(cfg) if args.seed is None else args.seed
    episodes = cfg.train.eval_episodes if args.episodes is None else args.episodes
    result = evaluate(agent, cfg.env.spec, episodes, seed, env_kwargs(cfg), record_video=args.video is not None)
    if args.video is not None:
        write_gif(result.frames, args.video, fps=25)
    print(json.dumps({"run": str(args.run_dir), "task": cfg.env.spec, "seed": seed, **result.summary()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
