"""Pure batched planners; the model comes in as a callable."""

from worldmodels.planning.shooting import (
    Rollout,
    cem,
    cem_update,
    mppi,
    random_shooting,
    select_best,
    sequence_returns,
    shift_plan,
)

__all__ = ["Rollout", "cem", "cem_update", "mppi", "random_shooting", "select_best", "sequence_returns", "shift_plan"]
