"""Pure batched planners; the model comes in as a callable."""

from worldmodels.planning.shooting import (
    MPPIResult,
    Rollout,
    cem,
    cem_update,
    mppi,
    mppi_search,
    mppi_update,
    random_shooting,
    select_best,
    sequence_returns,
    shift_plan,
)

__all__ = [
    "MPPIResult",
    "Rollout",
    "cem",
    "cem_update",
    "mppi",
    "mppi_search",
    "mppi_update",
    "random_shooting",
    "select_best",
    "sequence_returns",
    "shift_plan",
]
