"""Compounding model error: if the one-step error is epsilon and errors grow by a factor L per step, the error after
H steps is bounded by epsilon (L^H - 1) / (L - 1). ``fit_growth`` fits epsilon and L to a measured k-step curve
(analysis/model_error.py measures them); ``error_bound`` gives the bound.
"""

from __future__ import annotations

import numpy as np


def error_bound(epsilon: float, growth: float, horizon: int | np.ndarray) -> np.ndarray:
    """epsilon (L^H - 1) / (L - 1), which is epsilon * H when L = 1."""
    horizon = np.asarray(horizon, dtype=np.float64)
    if abs(growth - 1.0) < 1e-9:
        return epsilon * horizon
    return epsilon * (growth**horizon - 1.0) / (growth - 1.0)


def fit_growth(errors: np.ndarray) -> tuple[float, float]:
    """(epsilon, L): epsilon is the 1-step error; L minimises the squared error of the bound's shape to the curve."""
    errors = np.asarray(errors, dtype=np.float64)
    epsilon = float(errors[0])
    ks = np.arange(1, len(errors) + 1)
    growths = np.linspace(0.5, 3.0, 5001)  # [G]
    shapes = np.stack([error_bound(epsilon, g, ks) for g in growths])  # [G, H]
    best = np.argmin(((shapes - errors) ** 2).sum(-1))
    return epsilon, float(growths[best])
