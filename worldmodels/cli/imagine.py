"""Write what a saved agent's model predicts against its replayed episodes (the agent's own report)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from worldmodels.cli.errors import UsageError, run_command

EPILOG = """examples:
  python scripts/imagine.py --checkpoint checkpoints/<run>
  python scripts/imagine.py --checkpoint checkpoints/<run> --sequences 6 --context 10 --length 50 --out imagine/

What each model shows (sequences come from the run's saved replay episodes):
  dreamer  openloop.gif (rows: truth / imagination / error; green border = observed, red = imagined) and
           openloop_errors.png (k-step image error, predicted vs real reward)
  muzero, tdmpc
           unroll.png: rewards and values predicted along an open-loop unroll vs the replayed truth
  pets, mbpo, mbac, mpc_value
           kstep.png: the ensemble's k-step state predictions vs the truth, with epistemic and aleatoric bands
Also <out>/report.json (the report's scalars) and a TensorBoard event file (tensorboard --logdir <out>).
sac (model-free) and dyna_q (a lookup-table model) have no report.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="imagine",
        description="Show what a saved world model predicts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="a run directory, e.g. checkpoints/<run>")
    p.add_argument("--out", type=Path, help="output folder (default: <run>/imagine)")
    p.add_argument("--sequences", type=int, default=4, help="replayed sequences shown (default 4)")
    p.add_argument("--context", type=int, default=5, help="steps observed before predicting open-loop (default 5)")
    p.add_argument("--length", type=int, help="steps per sequence, context included (default: the model's choice)")
    p.add_argument("--seed", type=int, default=0, help="which sequences are drawn (default 0)")
    p.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_command(lambda: imagine_command(args))


def imagine_command(args) -> int:
    from worldmodels.agents import has_report
    from worldmodels.replay import ReplayStore
    from worldmodels.run.loop import load_agent

    if args.sequences < 1:
        raise UsageError("--sequences must be at least 1")
    if args.length is not None and not 0 < args.context < args.length:
        raise UsageError("--context must be at least 1 and less than --length")
    agent, cfg = load_agent(args.checkpoint, args.device)
    if not has_report(agent):
        print(
            f"{args.checkpoint} holds a '{cfg.agent.name}' agent, which has no model report (sac is model-free, "
            "dyna_q's model is a lookup table)"
        )
        return 0
    replay = ReplayStore(cfg.replay.capacity, args.checkpoint / "replay", seed=args.seed)
    if replay.load() == 0:
        raise UsageError(f"{args.checkpoint / 'replay'} holds no episodes to compare the model against")
    try:
        report = agent.report(replay, sequences=args.sequences, length=args.length, context=args.context)
    except ValueError as err:  # the request does not fit the replay (too long, too much context)
        raise UsageError(f"{args.checkpoint}: {err}") from err
    if report is None:
        raise UsageError(
            f"{args.checkpoint}: the '{cfg.agent.name}' agent made no report: its model has not been fitted yet, it "
            "has no pixel decoder to imagine with (dreamer from state), or the replay's episodes are shorter than "
            "the report needs (lower --length)"
        )
    out = args.out or args.checkpoint / "imagine"
    written = write_report(report, out)
    summary = {"run": str(args.checkpoint), "agent": cfg.agent.name, **report.get("scalars", {})}
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"wrote {', '.join(str(p) for p in written)}, report.json and a TensorBoard event file in {out}")
    return 0


def write_report(report: dict, out: Path) -> list[Path]:
    """Each video as a GIF, each image as a PNG (named after the tag's last part), and everything to TensorBoard."""
    from PIL import Image

    from worldmodels.run.logger import Logger
    from worldmodels.run.video import write_gif

    out.mkdir(parents=True, exist_ok=True)
    logger, written = Logger(out, total_steps=0, progress=False), []
    for tag, frames in report.get("videos", {}).items():
        written.append(out / f"{tag.split('/')[-1]}.gif")
        write_gif(frames, written[-1])
        logger.video(tag, frames, 0)
    for tag, image in report.get("images", {}).items():
        written.append(out / f"{tag.split('/')[-1]}.png")
        Image.fromarray(image.transpose(1, 2, 0)).save(written[-1])
        logger.image(tag, image, 0)
    if report.get("scalars"):
        logger.scalars(0, report["scalars"])
    logger.close()
    return written


if __name__ == "__main__":
    sys.exit(main())
