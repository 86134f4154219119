"""Side work (evaluations, reports, model checks) draws random numbers (a planner's samples, replayed windows, a
posterior's noise) without moving the run's random streams, so that training follows the same trajectory whatever
``eval_every``, ``report_every`` or ``model_check`` is.

The streams put back afterwards: torch's, numpy's and Python's global ones, and every torch or numpy generator held
as an attribute of the given owners (the agent, the replay store). A generator kept elsewhere is not covered; agents
keep theirs as attributes (``self.generator``, ``self.rng``).
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def _generators(owner) -> list[tuple[object, object]]:
    """(generator, saved state) for each torch.Generator or numpy Generator among ``owner``'s attributes."""
    saved = []
    for value in vars(owner).values():
        if isinstance(value, torch.Generator):
            saved.append((value, value.get_state()))
        elif isinstance(value, np.random.Generator):
            saved.append((value, value.bit_generator.state))
    return saved


@contextlib.contextmanager
def isolated_randomness(*owners, devices: list | tuple = ()):
    """Run the body, then put every random stream back where it was (see the module docstring). ``devices``: the
    CUDA devices whose generators torch should fork too."""
    saved = [entry for owner in owners for entry in _generators(owner)]
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=list(devices)):
            yield
    finally:
        for generator, state in saved:
            if isinstance(generator, torch.Generator):
                generator.set_state(state)
            else:
                generator.bit_generator.state = state
        np.random.set_state(numpy_state)
        random.setstate(python_state)
