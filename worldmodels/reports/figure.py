"""Matplotlib figures as RGB arrays (for TensorBoard images and PNG files)."""

from __future__ import annotations

import numpy as np


def pyplot():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_to_rgb(fig) -> np.ndarray:
    """A drawn matplotlib figure -> RGB image [3, H, W] uint8; closes the figure."""
    plt = pyplot()
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].transpose(2, 0, 1).copy()
    plt.close(fig)
    return image
