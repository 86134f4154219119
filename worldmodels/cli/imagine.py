"""Write the imagination report of a saved Dreamer agent: observe k frames, imagine the rest open-loop."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EPILOG = """examples:
  python scripts/imagine.py --checkpoint checkpoints/<run>
  python scripts/imagine.py --checkpoint checkpoints/<run> --sequences 6 --context 10 --length 50 --out imagine/

Writes <out>/openloop.gif (rows: truth / imagination / error; green border = observed, red = imagined),
<out>/openloop_errors.png (k-step image error, predicted vs real reward), <out>/report.json, and a TensorBoard
event file in <out> (tensorboard --logdir <out>). Sequences come from the run's saved replay episodes.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imagine", description="Show what a saved world model imagines.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="a run directory, e.g. checkpoints/<run>")
    p.add_argument("--out", type=Path, help="output folder (default: <run>/imagine)")
    p.add_argument("--sequences", type=int, default=4, help="replayed sequences shown side by side (default 4)")
    p.add_argument("--context", type=int, default=5, help="frames observed before imagining (default 5)")
    p.add_argument("--length", type=int, default=50, help="frames per sequence, context included (default 50)")
    p.add_argument("--seed", type=int, default=0, help="which sequences are drawn (default 0)")
    p.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import worldmodels  # noqa: F401
    from worldmodels.replay import ReplayStore
    from worldmodels.run.checkpoint import CheckpointError
    from worldmodels.run.logger import Logger
    from worldmodels.run.loop import load_agent
    from worldmodels.run.report import imagination_report, report_figure
    from worldmodels.run.video import write_gif

    try:
        agent, cfg = load_agent(args.checkpoint, args.device)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not hasattr(agent, "wm") or not agent.wm.has_pixels:
        print(f"error: {args.checkpoint} holds a '{cfg.agent.name}' agent without a pixel world model; nothing to imagine", file=sys.stderr)
        return 2
    replay = ReplayStore(cfg.replay.capacity, args.checkpoint / "replay", seed=args.seed)
    if replay.load() == 0 or replay.longest_episode < args.length:
        print(f"error: {args.checkpoint}/replay holds no episode of {args.length} steps; lower --length", file=sys.stderr)
        return 2
    if not 0 < args.context < args.length:
        print("error: --context must be at least 1 and less than --length", file=sys.stderr)
        return 2
    batch = agent._to_torch(replay.sample_sequences(args.sequences, args.length))
    report = imagination_report(agent.wm, batch["obs"], batch["action"], batch["reward"], batch["is_first"], args.context)
    out = args.out or args.checkpoint / "imagine"
    out.mkdir(parents=True, exist_ok=True)
    write_gif(report.video, out / "openloop.gif")
    figure = report_figure(report)
    from PIL import Image

    Image.fromarray(figure.transpose(1, 2, 0)).save(out / "openloop_errors.png")
    logger = Logger(out, total_steps=0, progress=False)
    logger.video("report/openloop", report.video, 0)
    logger.image("report/openloop_errors", figure, 0)
    logger.scalars(0, report.scalars())
    logger.close()
    summary = {"run": str(args.checkpoint), **report.scalars(), "image_mse_per_step": report.image_mse.round(5).tolist()}
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"wrote {out / 'openloop.gif'}, {out / 'openloop_errors.png'} and a TensorBoard event file in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
