"""Statistics over seeds for the benchmark report: 95% intervals, env steps to a return, sample-efficiency ratios.

A learning curve here is {env_steps: eval return} for one seed; ``seeds`` maps seed -> curve.

- ``interval95``: mean and the half-width of the Student-t 95% interval of the mean (n - 1 degrees of freedom), the
  honest interval for the 3 to 10 seeds RL papers run (a normal interval would be 2.2x too narrow at 3 seeds).
- ``steps_to_return``: per seed, the first evaluation at which the return reaches the target. A seed that never
  does is censored at its budget: the agent's figure is then a lower bound (">").
- ``efficiency_ratio``: baseline steps / agent steps at the same target ("the model-based agent needs R times fewer
  env steps than SAC"); a censored side turns the ratio into a bound, and both censored gives no number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131)
"""Two-sided 95% quantiles of Student's t for 1..15 degrees of freedom (16..29: interpolated to 2.042 at 30;
from 30: 1.96 + 2.4 / dof, within 0.002 of the exact value)."""


def t_quantile(dof: int) -> float:
    if dof < 1:
        raise ValueError(f"a t interval needs at least 2 values (1 degree of freedom), got {dof + 1}")
    if dof <= len(T_975):
        return T_975[dof - 1]
    if dof >= 30:
        return 1.96 + 2.4 / dof  # within 0.002 of the exact quantile from 30 on
    return T_975[-1] + (dof - 15) / 15 * (2.042 - T_975[-1])  # linear between 15 (2.131) and 30 (2.042)


def interval95(values) -> tuple[float, float]:
    """values [n] -> (mean, half-width of the 95% t interval of the mean); the half-width is NaN for one value."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()), math.nan
    return float(x.mean()), t_quantile(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))


def format_interval(values, digits: int = 0) -> str:
    """'-150 ± 64' (mean ± 95% half-width), or '-150' for a single seed."""
    mean, half = interval95(values)
    return f"{mean:.{digits}f}" if math.isnan(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def first_reach(curve: dict[int, float], target: float) -> int | None:
    """The first env-step count whose eval return is at least ``target`` (None: never)."""
    return next((steps for steps in sorted(curve) if curve[steps] >= target), None)


@dataclass(frozen=True)
class StepsToReturn:
    mean: float
    """Mean over seeds of the first evaluation reaching the target; a seed that never does counts its budget."""
    reached: int
    """Seeds that reached the target."""
    seeds: int

    @property
    def censored(self) -> bool:
        return self.reached < self.seeds

    def __str__(self) -> str:
        bound = ">" if self.censored else ""
        return f"{bound}{self.mean:,.0f} ({self.reached}/{self.seeds})"


def steps_to_return(seeds: dict[int, dict[int, float]], target: float) -> StepsToReturn:
    firsts = [first_reach(curve, target) for curve in seeds.values()]
    budgets = [max(curve) for curve in seeds.values()]
    steps = [b if f is None else f for f, b in zip(firsts, budgets, strict=True)]
    return StepsToReturn(float(np.mean(steps)), sum(f is not None for f in firsts), len(firsts))


def efficiency_ratio(baseline: StepsToReturn, agent: StepsToReturn) -> str:
    """How many times fewer env steps the agent needs than the baseline to reach the target: '4.0x', '>4.0x' when
    only the baseline is censored (its true figure is larger), '<0.5x' when only the agent is, '-' when both are."""
    if (baseline.censored and agent.censored) or agent.mean <= 0:  # a target met at step 0 has no ratio
        return "-"
    ratio = baseline.mean / agent.mean
    bound = ">" if baseline.censored else "<" if agent.censored else ""
    return f"{bound}{ratio:.1f}x"
