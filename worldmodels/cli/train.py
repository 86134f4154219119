"""Train an agent: presets + dotted overrides -> the shared training loop."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worldmodels.cli.errors import run_command

EPILOG = """examples:
  python scripts/train.py                                   # configs/default.yaml
  python scripts/train.py --config configs/sac/pendulum.yaml train.seed=1
  python scripts/train.py --config configs/sac/cartpole_swingup.yaml train.env_steps=20000 env.spec=dmc:walker-walk
  python scripts/train.py --resume checkpoints/<run>          # continue after a crash or Ctrl-C
  python scripts/train.py --resume checkpoints/<run> train.env_steps=200000   # and train longer

Overrides are section.key=value (sections: env, replay, train, run, agent); values are YAML.
Runs write to checkpoints/<run>/: config.yaml, checkpoint.pt, replay/, metrics.jsonl, evals.jsonl and
TensorBoard events (tensorboard --logdir checkpoints).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train",
        description="Train a worldmodels agent (dreamer, sac, ...) on a dm_control or gymnasium task.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. train.env_steps=20000")
    p.add_argument(
        "--config",
        action="append",
        default=None,
        help="YAML preset(s), applied in order (default: configs/default.yaml)",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in this directory from its last checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_command(lambda: train_command(args))


def train_command(args) -> int:
    from worldmodels.config import ConfigError, config_to_dict, load_config
    from worldmodels.run.checkpoint import CheckpointError

    if args.resume:
        if args.config:
            raise ConfigError("--resume reads the run's own config.yaml; give changes as overrides, not --config")
        files = [Path(args.resume) / "config.yaml"]
        if not files[0].exists():
            raise CheckpointError(
                f"{args.resume} has no config.yaml; --resume takes a run directory such as checkpoints/<run>"
            )
    else:
        files = args.config or [default_config()]
    cfg = load_config(files, args.overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        return 0
    from worldmodels.run.loop import train

    run_dir = train(cfg, resume=args.resume)
    print(f"done: {run_dir}")
    return 0


def default_config() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / "configs" / "default.yaml").exists():
            return base / "configs" / "default.yaml"
    raise FileNotFoundError("configs/default.yaml not found; pass --config <preset.yaml>")


if __name__ == "__main__":
    sys.exit(main())
