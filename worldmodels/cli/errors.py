"""How every command-line entry point reports a user's mistake: one line on stderr and exit status 2, never a
traceback. Errors of the code itself still raise."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UsageError(Exception):
    """A bad argument or an input that cannot be used; the message says what to do instead."""


def user_errors() -> tuple[type[Exception], ...]:
    """The exception types that mean the input was wrong, not the program."""
    from worldmodels.config import ConfigError
    from worldmodels.envs import EnvSpecError
    from worldmodels.run.checkpoint import CheckpointError

    return ConfigError, EnvSpecError, CheckpointError, UsageError, FileExistsError, FileNotFoundError


def run_command(command: Callable[[], int]) -> int:
    """Run a command's body: a user error -> 'error: ...' and 2; Ctrl-C -> 130."""
    import worldmodels  # noqa: F401  (sets up headless rendering before anything imports dm_control)

    try:
        return command()
    except user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
