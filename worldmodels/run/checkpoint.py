"""Atomic checkpoints: the new file replaces the old only once it is complete on disk.

<run>/checkpoint.pt is the latest; the one before it is kept as checkpoint.prev.pt.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit the agent; the message says what to do."""


def save_checkpoint(run_dir: Path, payload: dict) -> Path:
    run_dir = Path(run_dir)
    path, previous = run_dir / CHECKPOINT, run_dir / PREVIOUS
    fd, tmp = tempfile.mkstemp(dir=run_dir, suffix=".pt.tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"format_version": FORMAT_VERSION, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    if not path.exists():
        hint = (
            f" A previous one exists: rename {run_dir / PREVIOUS} to {path} to resume from it."
            if (run_dir / PREVIOUS).exists()
            else ""
        )
        raise CheckpointError(f"No checkpoint at {path}.{hint} Resume takes a run directory such as checkpoints/<run>.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(
            f"Checkpoint {path} is corrupted or unreadable ({type(err).__name__}: {err}). It was left untouched; "
            f"the previous checkpoint is {run_dir / PREVIOUS}: copy it over {path} to resume from there."
        ) from err
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint {path} has format {payload.get('format_version') if isinstance(payload, dict) else '?'}, "
            f"this worldmodels reads format {FORMAT_VERSION}."
        )
    return payload
