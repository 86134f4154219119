"""How every command-line entry point reports a user's mistake: one line on stderr and exit status 2, never a
traceback. Errors of the code itself still raise."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable


class UsageError(Exception):
    """A bad argument or an input that cannot be used; the message says what to do instead."""


def user_errors() -> tuple[type[Exception], ...]:
    """The exception types that mean the input (config, env, run directory) was wrong, not the program."""
    from worldmodels.config import ConfigError
    from worldmodels.envs import EnvSpecError, EnvStepError
    from worldmodels.run.checkpoint import CheckpointError
    from worldmodels.run.interrupts import NonFiniteTraining

    return (
        ConfigError,
        EnvSpecError,
        EnvStepError,
        CheckpointError,
        NonFiniteTraining,
        UsageError,
        FileExistsError,
        FileNotFoundError,
    )


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> str:
    prefix = "warning" if category is UserWarning else category.__name__
    return f"{prefix}: {message}\n"


def run_command(command: Callable[[], int]) -> int:
    """Run a command's body: a user error -> 'error: ...' and 2; Ctrl-C -> 130, SIGTERM -> 143."""
    import worldmodels  # noqa: F401  (sets up headless rendering before anything imports dm_control)
    from worldmodels.run.interrupts import Terminated

    warnings.formatwarning = _one_line_warning
    try:
        return command()
    except user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        return 128 + Terminated.signal_number
    except KeyboardInterrupt:
        return 130
