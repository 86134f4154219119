"""TensorBoard event files plus a JSONL of the same scalars, and a progress bar on the terminal.

Scalars are logged against env_steps. Namespaces: train/ eval/ loss/ fps/ report/.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from worldmodels.run.video import gif_bytes


class MeanTracker:
    """Averages metrics between two log points."""

    def __init__(self):
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def add(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._sums[key] += float(value)
            self._counts[key] += 1

    def pop(self) -> dict[str, float]:
        means = {k: self._sums[k] / self._counts[k] for k in self._sums}
        self._sums.clear()
        self._counts.clear()
        return means


class ProgressFigures:
    """What the progress bar shows beside the step count: updates/s with one decimal over the last few
    seconds, the last evaluation, and an eta whose rate is measured after the random warm-up (warm-up steps
    are many times faster than training ones, so a rate that includes them promises too early an end)."""

    def __init__(self, total: int, warmup: int, env_steps: int, grad_steps: int, every_s=2.0):
        self.total, self.warmup, self.every_s = total, warmup, every_s
        self._tick = (time.time(), env_steps, grad_steps)  # last refresh of updates/s
        self._since = None if env_steps < warmup else self._tick[:2]  # (time, env steps) the eta rate starts at

    def figures(
        self, env_steps: int, grad_steps: int, last_eval: float, now: float | None = None
    ) -> dict[str, str] | None:
        """The bar's postfix when ``every_s`` seconds passed since the last one, else None."""
        now = time.time() if now is None else now
        if self._since is None and env_steps >= self.warmup:
            self._since = (now, env_steps)
        last_time, _, last_grad = self._tick
        if now - last_time < self.every_s:
            return None
        self._tick = (now, env_steps, grad_steps)
        out = {"ups": f"{(grad_steps - last_grad) / (now - last_time):.1f}/s", "eval": f"{last_eval:.1f}"}
        out["eta"] = self.eta(env_steps, now)
        return out

    def eta(self, env_steps: int, now: float) -> str:
        if self._since is None:
            return "after warm-up"
        start_time, start_steps = self._since
        if env_steps <= start_steps or now - start_time < 1.0:
            return "?"
        seconds = (self.total - env_steps) * (now - start_time) / (env_steps - start_steps)
        return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86_400 else f"{seconds / 86_400:.1f} d"


class Logger:
    def __init__(self, run_dir: Path, total_steps: int, start_step: int = 0, progress: bool = True):
        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(log_dir=str(self.run_dir))
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a")
        self._start = time.time()
        self._bar = tqdm(
            total=total_steps,
            initial=start_step,
            unit="step",
            dynamic_ncols=True,
            disable=not progress,
            desc="env steps",
            # tqdm's own time-left assumes one rate throughout; the loop's eta (ProgressFigures) knows the
            # warm-up runs faster than training.
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]",
        )
        self._postfix: dict[str, str] = {}

    def scalars(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        row = {"env_steps": step, "wall_s": round(time.time() - self._start, 3)}
        row.update({k: float(v) for k, v in metrics.items()})
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()

    def text(self, tag: str, markdown: str) -> None:
        self.writer.add_text(tag, markdown, 0)

    def hyperparameters(self, items: list[tuple[str, object]]) -> None:
        table = "| key | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in items)
        self.text("hyperparameters", table)

    def video(self, tag: str, frames: np.ndarray, step: int, fps: int = 15) -> None:
        """frames: [T, 3, H, W] uint8, written as an animated GIF image summary."""
        _, _, height, width = frames.shape
        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """image: [3, H, W] uint8."""
        self.writer.add_image(tag, image, step)

    def progress(self, step: int, **postfix: str) -> None:
        self._bar.update(step - self._bar.n)
        if postfix:
            self._postfix.update(postfix)
            self._bar.set_postfix(self._postfix, refresh=False)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self._bar.close()
        self.writer.close()
        self._jsonl.close()
