"""Frames -> animated GIF bytes (Pillow), for TensorBoard videos and files on disk.

TensorBoard shows an image summary whose encoded string is a GIF as an animation; encoding with Pillow
avoids torch's add_video dependency on moviepy.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def gif_bytes(frames: np.ndarray, fps: int = 15) -> bytes:
    """frames: [T, 3, H, W] uint8 -> GIF file contents (looping)."""
    images = [Image.fromarray(np.ascontiguousarray(f.transpose(1, 2, 0))) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return buffer.getvalue()


def write_gif(frames, path: str | Path, fps: int = 15) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gif_bytes(np.asarray(frames), fps))
    return path
