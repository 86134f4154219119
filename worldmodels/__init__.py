"""worldmodels: model-based reinforcement learning from pixels, on one loop.

The public API is small: ``make_env``, ``train``, ``evaluate``, ``load_agent`` and the config types.
"""

import os

# Headless rendering must be configured before dm_control or mujoco is imported anywhere.
# EGL works with Mesa's software renderer on a machine without a display; a user's choice wins.
os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

# Classic-control pixels render through pygame; without a display it needs SDL's dummy video driver.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

__all__ = ["make_env", "train", "evaluate", "load_agent", "Config", "load_config"]


def __getattr__(name):
    # Imported lazily so that env worker subprocesses do not pay for torch and the agents.
    if name == "make_env":
        from worldmodels.envs import make_env

        return make_env
    if name in ("train", "load_agent"):
        from worldmodels.run import loop

        return getattr(loop, name)
    if name == "evaluate":
        from worldmodels.run.evaluation import evaluate

        return evaluate
    if name in ("Config", "load_config"):
        from worldmodels import config

        return getattr(config, name)
    raise AttributeError(f"module 'worldmodels' has no attribute {name!r}")
