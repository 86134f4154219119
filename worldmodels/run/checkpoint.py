"""Atomic checkpoints: the new file replaces the old only once it is complete on disk.

<run>/checkpoint.pt is the latest; the one before it is kept as checkpoint.prev.pt, and used when the latest
cannot be read.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
CORRUPT = "checkpoint.corrupt.pt"
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


def has_checkpoint(run_dir: Path) -> bool:
    """Whether the run saved at least once (the latest or the previous checkpoint is there)."""
    return (Path(run_dir) / CHECKPOINT).exists() or (Path(run_dir) / PREVIOUS).exists()


def load_checkpoint(run_dir: Path, set_aside_corrupt: bool = False) -> dict:
    """The latest checkpoint's payload; when it is unreadable and the previous one is readable, the previous one's
    (with a warning that names both). Raises CheckpointError when neither can be used.

    set_aside_corrupt (resume): an unreadable latest checkpoint is renamed checkpoint.corrupt.pt, so that the
    next save cannot rotate it over the good previous one."""
    run_dir = Path(run_dir)
    path, previous = run_dir / CHECKPOINT, run_dir / PREVIOUS
    if not path.exists():
        if not previous.exists():
            raise CheckpointError(f"No checkpoint at {path}.")
        # a kill between the two renames of save_checkpoint leaves only the previous one
        warnings.warn(f"No checkpoint at {path}; using the previous one, {previous}.", stacklevel=2)
        return _read(previous)
    try:
        return _read(path)
    except CheckpointError as latest:
        if not previous.exists():
            raise
        try:
            payload = _read(previous)
        except CheckpointError as also:
            raise CheckpointError(f"{latest} The previous one cannot be used either: {also}") from None
        note = ""
        if set_aside_corrupt:
            os.replace(path, run_dir / CORRUPT)
            note = f" The unreadable one was renamed {run_dir / CORRUPT}."
        warnings.warn(f"{latest} Using the previous checkpoint, {previous}, instead.{note}", stacklevel=2)
        return payload


def _read(path: Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(
            f"Checkpoint {path} is corrupted or unreadable ({type(err).__name__}: {err}). It was left untouched."
        ) from err
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint {path} has format {payload.get('format_version') if isinstance(payload, dict) else '?'}, "
            f"this worldmodels reads format {FORMAT_VERSION}."
        )
    return payload
