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
