"""Typed configs: one dataclass per component, YAML presets, dotted command-line overrides.

    cfg = load_config(["configs/sac/pendulum.yaml"], ["train.env_steps=20000", "env.spec=gym:Pendulum-v1"])

Unknown keys and ill-typed values raise ``ConfigError`` naming the key and the nearest valid spelling.
The agent section's type is chosen by ``agent.name`` from the agent registry (``worldmodels.agents``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config key or value that cannot be used; the message says how to fix it."""


@dataclass
class EnvConfig:
    spec: str = "dmc:cartpole-swingup"
    """Environment spec: 'dmc:<domain>-<task>' or 'gym:<registered id>'."""
    obs: str = "state"
    """Observation kind: 'pixels', 'state' or 'both'."""
    size: int = 64
    """Side of the square pixel observation."""
    action_repeat: int = 1
    """Simulator steps per agent decision (env_steps count simulator steps)."""
    time_limit: int | None = None
    """Episode length limit in env steps; None keeps the task's own limit."""
    num_envs: int = 1
    """Parallel environments used for collection (subprocesses when more than one)."""
    fast_render: bool = False
    """dm_control only: no shadows, reflections or anti-aliasing (collection about 12x faster here; not the standard
    pixels)."""


@dataclass
class ReplayConfig:
    capacity: int = 1_000_000
    """Steps kept in memory; the oldest whole episodes are evicted first."""
    save_episodes: bool = True
    """Write each finished episode to <run>/replay/ so that a resumed run reloads it."""


@dataclass
class TrainConfig:
    env_steps: int = 100_000
    """Total environment steps (after action repeat) to train for."""
    warmup_steps: int = 5_000
    """Env steps of uniformly random actions before the agent acts and learns."""
    replay_ratio: float = 1.0
    """Gradient updates per agent step (per decision of one env), after warm-up, for each per-decision batch stream
    (PETS's refits among them); streams on an env-step schedule (MBPO's and mbac's refits, agent.model_every) ignore
    it."""
    warmup_updates: int = 0
    """Updates each per-decision batch stream makes at once when warm-up ends, before the agent's first decision
    (TD-MPC2 makes one per warm-up decision, so the first plans use a trained model); 0: none."""
    eval_every: int = 10_000
    """Evaluate every this many env steps (0: only at the end). Evaluations, reports and model checks leave the
    run's random streams as they were: training is the same whatever their settings."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    checkpoint_every: int = 10_000
    """Save a checkpoint every this many env steps (and always at the end; 0: only at the end)."""
    log_every: int = 1_000
    """Write train/ and fps/ scalars every this many env steps."""
    report_every: int = 0
    """Write the agent's report (Dreamer: imagined rollouts) every this many env steps; 0: never."""
    seed: int = 0
    """Seed for torch, numpy and the environments."""
    device: str = "auto"
    """'cpu', 'cuda', 'cuda:1' or 'auto' (cuda when available)."""
    threads: int = 0
    """Torch intra-op threads; 0 uses every core."""
    max_nonfinite_updates: int = 20
    """Stop the run after this many non-finite updates in a row (each is skipped, weights unchanged); 0: never."""
    model_check: bool = True
    """Score the agent's model on every new training episode (failure modes: models/model_check.py)."""


@dataclass
class RunConfig:
    name: str = ""
    """Run directory name under root; empty: <agent>-<task>-s<seed>-<time>-p<pid>."""
    root: str = "checkpoints"
    """Folder that holds run directories."""
    progress: bool = True
    """Show a progress bar on the terminal."""


@dataclass
class AgentConfig:
    """Base of every agent's config; ``name`` picks the agent from the registry."""

    name: str = "sac"
    """Agent name: one of the registered agents (see worldmodels.agents.AGENTS)."""


def settings_from(cls: type, cfg: Any, **renamed: str) -> Any:
    """A component's settings dataclass ``cls`` filled from the same-named fields of an agent config
    (``renamed``: setting -> the config's field name where they differ); settings the config has no field for
    keep their defaults (a state-only agent has no pixel-encoder fields)."""
    names = {f.name: renamed.get(f.name, f.name) for f in dataclasses.fields(cls)}
    return cls(**{name: getattr(cfg, field) for name, field in names.items() if hasattr(cfg, field)})


# Filled by worldmodels.agents at import: agent name -> its AgentConfig subclass.
AGENT_CONFIGS: dict[str, type[AgentConfig]] = {}


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)


# ---------------------------------------------------------------------------------------------------------
# Building configs from nested dicts, with checked keys and types.


def suggest_key(key: str, valid: list[str]) -> str:
    """' Did you mean ...? Valid keys: ...': the end of an unknown-key error (suite files use it too)."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{hint} Valid keys: {', '.join(sorted(valid))}."


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a field annotation; ints widen to float, tuples/lists accepted for tuples."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: cannot be None")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list such as [256, 256], got {value!r}")
        (item_type, *_rest) = typing.get_args(annotation) or (Any,)
        return origin(_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if annotation is Any:
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML 1.1 reads '1e-3' (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if annotation is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if annotation in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{key}: expected {annotation.__name__}, got a boolean {value!r}")
    if annotation in (int, float, str, bool) and not isinstance(value, annotation):
        raise ConfigError(f"{key}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
    return value


def build_dataclass(cls: type, data: dict[str, Any], prefix: str) -> Any:
    """A config dataclass from a mapping, recursively, with values coerced to the field types; unknown keys and
    bad values are ConfigErrors naming ``prefix`` + key (suite files are built the same way)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"Unknown config key '{path}'.{suggest_key(key, names)}")
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            kwargs[key] = build_dataclass(annotation, value, f"{path}.")
        else:
            kwargs[key] = _coerce(value, annotation, path)
    return cls(**kwargs)


def agent_config_class(name: str) -> type[AgentConfig]:
    import worldmodels.agents  # noqa: F401  (fills AGENT_CONFIGS)

    if name not in AGENT_CONFIGS:
        raise ConfigError(f"Unknown agent '{name}'.{suggest_key(name, list(AGENT_CONFIGS))}")
    return AGENT_CONFIGS[name]


def config_from_dict(data: dict[str, Any]) -> Config:
    data = dict(data)
    agent_data = dict(data.pop("agent", None) or {})
    cfg = build_dataclass(Config, data, "")
    agent_data.setdefault("name", AgentConfig.name)
    cfg.agent = build_dataclass(agent_config_class(agent_data["name"]), agent_data, "agent.")
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Cross-field checks that a single field's type cannot express."""
    if cfg.env.obs not in ("pixels", "state", "both"):
        raise ConfigError(f"env.obs: expected 'pixels', 'state' or 'both', got {cfg.env.obs!r}")
    positive = {
        "env.size": cfg.env.size,
        "env.action_repeat": cfg.env.action_repeat,
        "env.num_envs": cfg.env.num_envs,
        "replay.capacity": cfg.replay.capacity,
        "train.eval_episodes": cfg.train.eval_episodes,
        "train.log_every": cfg.train.log_every,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key}: must be at least 1, got {value}")
    keys = ("env_steps", "warmup_steps", "warmup_updates", "eval_every", "checkpoint_every", "report_every", "threads")
    for key in keys + ("max_nonfinite_updates",):
        if getattr(cfg.train, key) < 0:
            raise ConfigError(f"train.{key}: must not be negative, got {getattr(cfg.train, key)}")
    if cfg.train.replay_ratio < 0:
        raise ConfigError(f"train.replay_ratio: must not be negative, got {cfg.train.replay_ratio}")
    validate_rates_and_batches(cfg.agent)
    bf16 = getattr(cfg.agent, "bf16", "auto")
    if not isinstance(bf16, bool) and bf16 != "auto":
        raise ConfigError(f"agent.bf16: expected true, false or auto, got {bf16!r}")


def validate_rates_and_batches(agent: AgentConfig) -> None:
    """Settings that make every update non-finite or empty: a batch size below 1 (``batch_size``, ``*_batch``)
    and a learning rate that is not a positive number (``lr``, ``*_lr``)."""
    for f in dataclasses.fields(agent):
        value = getattr(agent, f.name)
        if (f.name == "batch_size" or f.name.endswith("_batch")) and isinstance(value, int) and value < 1:
            raise ConfigError(f"agent.{f.name}: must be at least 1, got {value} (an empty batch has no loss)")
        if (f.name == "lr" or f.name.endswith("_lr")) and isinstance(value, float) and not 0 < value < float("inf"):
            raise ConfigError(f"agent.{f.name}: a learning rate must be a positive number, got {value}")


# ---------------------------------------------------------------------------------------------------------
# Presets and overrides.


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """'train.env_steps=20000' -> {'train': {'env_steps': 20000}} (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"Override '{text}' is not of the form section.key=value, e.g. train.env_steps=20000")
    dotted, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"Override '{text}': the value is not valid YAML ({err})") from None
    if raw.strip() == "None":  # Python spelling of YAML's null
        value = None
    nested: dict[str, Any] = value
    for part in reversed(dotted.strip().split(".")):
        if not part:
            raise ConfigError(f"Override '{text}' has an empty key part")
        nested = {part: nested}
    return nested


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A preset as a dict. ``include: other.yaml`` (or a list; paths relative to this file) merges those
    presets first, then this file's own keys on top."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist (presets live in configs/, e.g. configs/default.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"Config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of sections, got {type(data).__name__}")
    includes = data.pop("include", [])
    merged: dict[str, Any] = {}
    for name in [includes] if isinstance(includes, str) else includes:
        included = (path.parent / name).resolve()
        if included in _seen + (path.resolve(),):
            raise ConfigError(f"Config file {path} includes {name}, which includes it again")
        merged = _merge(merged, read_yaml(included, _seen + (path.resolve(),)))
    return _merge(merged, data)


def load_config(files: list[str | Path] = (), overrides: list[str] = ()) -> Config:
    """Defaults, then each YAML preset in order, then each dotted override."""
    data: dict[str, Any] = {}
    for path in files:
        data = _merge(data, read_yaml(path))
    for text in overrides:
        data = _merge(data, parse_override(text))
    return config_from_dict(data)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def flat_items(cfg: Config) -> list[tuple[str, Any]]:
    """[('env.spec', 'dmc:cartpole-swingup'), ...] for the hyperparameter table."""
    items = []

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                items.append((f"{prefix}{key}", value))

    walk(config_to_dict(cfg), "")
    return items
