"""Benchmark suites: a YAML file of tasks x agents x seeds with one evaluation protocol per task.

    seeds: [0, 1, 2]
    tasks:                                   # the protocol, per task, shared by every agent
      dmc:cartpole-swingup:
        env_steps: 100000                    # budget, in env steps (after action repeat)
        eval_every: 10000
        eval_episodes: 10
        time_limit: null                     # null: the task's own limit
        fast_render: true
        action_repeat: 2
    agents:                                  # label -> preset(s) and overrides (paths relative to this file)
      sac:
        config: ../sac/cartpole_swingup.yaml
        overrides: {train.checkpoint_every: 5000}
      dreamer:
        config: ../dreamer/cartpole_swingup.yaml
        obs: pixels                          # observation kind: free per agent, recorded per row
        tasks:                               # per (agent, task): another preset, overrides, and the one
          dmc:cartpole-swingup:              # departure a suite may allow, action_repeat
            action_repeat: 4

Optional: ``name`` (default: the file's name), ``description``, ``root`` (default: results/suites/<name>) and
``rows`` (default: <root>/rows.jsonl), relative to the current directory; ``targets`` (task -> return): the
return the report counts env steps to, recorded in each row as ``target_return``.

A cell (task, agent, seed) is an ordinary run directory ``<root>/<agent>-<task>-s<seed>`` trained by
``load_config(presets, overrides)`` with the protocol applied last, so no preset can change it. Overrides may not
set the protocol's keys, nor those the runner owns (env.spec, env.obs, train.seed, train.threads, run.*).
Unknown keys are errors that name the key and the nearest valid spelling, as in ``worldmodels.config``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from worldmodels.config import Config, ConfigError, build_dataclass, load_config, suggest_key

PROTOCOL_OVERRIDES = {
    "env_steps": "train.env_steps",
    "eval_every": "train.eval_every",
    "eval_episodes": "train.eval_episodes",
    "time_limit": "env.time_limit",
    "fast_render": "env.fast_render",
    "action_repeat": "env.action_repeat",
}
RUNNER_KEYS = ("env.spec", "env.obs", "train.seed", "train.threads", "run.")


@dataclass
class Protocol:
    """How every agent on a task is trained and evaluated."""

    env_steps: int
    """Env-step budget (after action repeat)."""
    eval_every: int
    """Evaluate every this many env steps (and at the end)."""
    eval_episodes: int
    """Episodes per evaluation (deterministic policy)."""
    action_repeat: int
    """Simulator steps per decision, for every agent unless a pairing allows another."""
    time_limit: int | None = None
    """Episode length limit in env steps; null keeps the task's own limit."""
    fast_render: bool = False
    """dm_control pixels without shadows, reflections or anti-aliasing."""


@dataclass
class Pairing:
    """What one agent does differently on one task (agents.<label>.tasks.<task>)."""

    config: str | list[str] | None = None
    """Preset(s) for this task, replacing the agent's own."""
    overrides: Any = None
    """More overrides for this task, after the agent's."""
    action_repeat: int | None = None
    """An action repeat other than the protocol's: allowed here only, and shown beside the return."""
    obs: str | None = None
    """Observation kind on this task: 'pixels', 'state' or 'both'."""


@dataclass
class AgentEntry:
    """A suite's agent: a preset and overrides (``agent.name`` in them picks the registered agent)."""

    config: str | list[str]
    """Preset file(s), relative to the suite file."""
    overrides: Any = None
    """Dotted overrides: a mapping {train.warmup_steps: 1000} or a list ['train.warmup_steps=1000']."""
    obs: str | None = None
    """Observation kind on every task (default: the preset's)."""
    tasks: dict = field(default_factory=dict)
    """Task -> Pairing: per-task presets, overrides, action repeat or observation kind."""


@dataclass
class SuiteFile:
    seeds: list[int]
    """Seeds every (task, agent) runs with."""
    tasks: dict
    """Env spec -> its Protocol."""
    agents: dict
    """Agent label -> AgentEntry; the label names rows and run directories."""
    name: str = ""
    """Suite name (default: the file's name)."""
    description: str = ""
    """Free text."""
    root: str = ""
    """Folder of the cells' run directories (default: results/suites/<name>)."""
    rows: str = ""
    """Rows file (default: <root>/rows.jsonl)."""
    targets: dict = field(default_factory=dict)
    """Task -> the return the report counts env steps to (and compares sample efficiency at); not protocol."""


@dataclass(frozen=True)
class Cell:
    task: str
    agent: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.agent}-{self.task.replace(':', '-').replace('/', '-')}-s{self.seed}"


@dataclass
class Suite:
    path: Path
    name: str
    seeds: list[int]
    tasks: dict[str, Protocol]
    agents: dict[str, AgentEntry]
    root: Path
    rows: Path
    targets: dict[str, float] = field(default_factory=dict)

    def cells(self) -> list[Cell]:
        """Seed-major, so an interrupted suite has whole seeds of every (task, agent), not all seeds of a few."""
        return [Cell(t, a, s) for s in self.seeds for t in self.tasks for a in self.agents]

    def select(self, agents: list[str] | None = None, tasks: list[str] | None = None, seeds: list[int] | None = None):
        """The same suite (root, rows, protocols) restricted to some agents, tasks or seeds: the cells to run now;
        the others are left as they are. An unknown name is a ConfigError that lists the suite's."""
        picked = {"agents": agents, "tasks": tasks, "seeds": seeds}
        for what, names in picked.items():
            known = getattr(self, what)
            for name in names or []:
                if name not in known:
                    raise ConfigError(
                        f"--{what} {name}: not in {self.path.name} (its {what}: {', '.join(map(str, known))})"
                    )
        return dataclasses.replace(
            self,
            agents={a: e for a, e in self.agents.items() if not agents or a in agents},
            tasks={t: p for t, p in self.tasks.items() if not tasks or t in tasks},
            seeds=[s for s in self.seeds if not seeds or s in seeds],
        )

    def protocol(self, task: str) -> dict:
        """The protocol rows record: the task and its fields (the task's action repeat, not a pairing's)."""
        return {"task": task, **dataclasses.asdict(self.tasks[task])}

    def protocol_id(self, task: str) -> str:
        text = json.dumps(self.protocol(task), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def row_fields(self, task: str) -> dict:
        """What the suite adds to each row of a task: its name, the protocol, the protocol's hash and the target
        return, when the suite states one."""
        fields = {"suite": self.name, "protocol": self.protocol(task), "protocol_id": self.protocol_id(task)}
        return fields | ({"target_return": self.targets[task]} if task in self.targets else {})

    def run_dir(self, cell: Cell) -> Path:
        return self.root / cell.name

    def presets(self, cell: Cell) -> list[Path]:
        pairing = self.agents[cell.agent].tasks.get(cell.task)
        files = pairing.config if pairing and pairing.config else self.agents[cell.agent].config
        return [(self.path.parent / f).resolve() for f in ([files] if isinstance(files, str) else files)]

    def overrides(self, cell: Cell, threads: int) -> list[str]:
        """The agent's and pairing's overrides, then the protocol and the runner's settings (last, so they win)."""
        entry, protocol = self.agents[cell.agent], self.tasks[cell.task]
        pairing = entry.tasks.get(cell.task) or Pairing()
        out = _override_list(entry.overrides) + _override_list(pairing.overrides)
        settings = dataclasses.asdict(protocol)
        if pairing.action_repeat is not None:
            settings["action_repeat"] = pairing.action_repeat
        out += [f"{PROTOCOL_OVERRIDES[k]}={json.dumps(v)}" for k, v in settings.items()]
        obs = pairing.obs or entry.obs
        out += [f"env.obs={obs}"] if obs else []
        out += [f"env.spec={json.dumps(cell.task)}", f"train.seed={cell.seed}", f"train.threads={threads}"]
        return out + [f"run.root={json.dumps(str(self.root))}", f"run.name={cell.name}", "run.progress=false"]

    def config(self, cell: Cell, threads: int = 1) -> Config:
        try:
            return load_config(self.presets(cell), self.overrides(cell, threads))
        except ConfigError as err:
            raise ConfigError(f"{self.path}: agent '{cell.agent}' on {cell.task}: {err}") from None


def _override_list(overrides: Any) -> list[str]:
    if not overrides:
        return []
    if isinstance(overrides, dict):  # JSON is YAML, so parse_override reads every value back exactly
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    return list(overrides)


# ---------------------------------------------------------------------------------------------------------
# Reading a suite file.


def _checked(cls: type, data: Any, where: str) -> Any:
    """``cls`` from a mapping, with the config module's checks (unknown keys, types) plus missing required keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where.rstrip('.') or 'suite'}: expected a mapping of keys, got {data!r}")
    fields = dataclasses.fields(cls)
    for key in data:  # unknown keys first: a misspelt key is also a missing one
        if key not in [f.name for f in fields]:
            raise ConfigError(f"Unknown config key '{where}{key}'.{suggest_key(str(key), [f.name for f in fields])}")
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for name in required:
        if name not in data:
            raise ConfigError(f"{where}{name}: missing (required here: {', '.join(required)})")
    return build_dataclass(cls, data, where)


def _check_overrides(overrides: Any, where: str) -> None:
    """Overrides are a mapping or a list of 'key=value' strings, and may not set the protocol or runner keys."""
    if overrides is None:
        return
    if isinstance(overrides, dict):
        keys = [str(k) for k in overrides]
    elif isinstance(overrides, list) and all(isinstance(o, str) for o in overrides):
        keys = [o.split("=", 1)[0].strip() for o in overrides]
    else:
        raise ConfigError(f"{where}: expected a mapping {{train.warmup_steps: 1000}} or a list of 'key=value'")
    for key in keys:
        if key in PROTOCOL_OVERRIDES.values():
            field_name = next(k for k, v in PROTOCOL_OVERRIDES.items() if v == key)
            allowed = " (a pairing may set action_repeat: agents.<label>.tasks.<task>.action_repeat)"
            raise ConfigError(
                f"{where}: '{key}' is the task's protocol, set by tasks.<task>.{field_name} for every agent"
                + (allowed if field_name == "action_repeat" else "")
            )
        if key == "env.obs":
            raise ConfigError(f"{where}: set the observation kind with 'obs:' beside the overrides, not env.obs")
        if any(key == k or (k.endswith(".") and key.startswith(k)) for k in RUNNER_KEYS):
            raise ConfigError(f"{where}: '{key}' is set by the suite runner (task, seed, --threads-per-cell, root)")


def _check_obs(obs: str | None, where: str) -> None:
    if obs is not None and obs not in ("pixels", "state", "both"):
        raise ConfigError(f"{where}: expected 'pixels', 'state' or 'both', got {obs!r}")


def _agent_entry(label: str, data: Any, tasks: dict[str, Protocol]) -> AgentEntry:
    where = f"agents.{label}."
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", label):
        raise ConfigError(f"agents.{label}: a label names run directories: letters, digits, '_', '.', '-' only")
    pairings = {}
    if isinstance(data, dict):
        data = dict(data)
        pairings = data.pop("tasks", None) or {}
    entry = _checked(AgentEntry, data, where)
    _check_overrides(entry.overrides, f"{where}overrides")
    _check_obs(entry.obs, f"{where}obs")
    if not isinstance(pairings, dict):
        raise ConfigError(f"{where}tasks: expected a mapping of task -> settings, got {pairings!r}")
    for task, settings in pairings.items():
        if task not in tasks:
            hint = suggest_key(task, list(tasks))
            raise ConfigError(f"{where}tasks: '{task}' is not one of the suite's tasks.{hint}")
        pairing = _checked(Pairing, settings or {}, f"{where}tasks.{task}.")
        _check_overrides(pairing.overrides, f"{where}tasks.{task}.overrides")
        _check_obs(pairing.obs, f"{where}tasks.{task}.obs")
        if pairing.action_repeat is not None and pairing.action_repeat < 1:
            raise ConfigError(f"{where}tasks.{task}.action_repeat: must be at least 1, got {pairing.action_repeat}")
        entry.tasks[task] = pairing
    return entry


def _check_protocol(task: str, p: Protocol) -> None:
    for key in ("env_steps", "eval_episodes", "action_repeat"):
        if getattr(p, key) < 1:
            raise ConfigError(f"tasks.{task}.{key}: must be at least 1, got {getattr(p, key)}")
    if p.eval_every < 0 or (p.time_limit is not None and p.time_limit < 1):
        raise ConfigError(f"tasks.{task}: eval_every must not be negative and time_limit must be at least 1")


def load_suite(path: str | Path, root: str | Path | None = None, rows: str | Path | None = None) -> Suite:
    """A suite file, checked; ``root`` and ``rows`` replace the file's (the command line's --root, --rows)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Suite file {path} does not exist (suites live in configs/suites/, e.g. smoke.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"Suite file {path} is not valid YAML: {err}") from None
    try:
        raw = _checked(SuiteFile, data, "")
        seeds = raw.seeds
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds: expected a list of distinct integers, got {seeds!r}")
        for key in ("tasks", "agents"):
            if not isinstance(getattr(raw, key), dict) or not getattr(raw, key):
                raise ConfigError(f"{key}: expected a non-empty mapping, got {getattr(raw, key)!r}")
        tasks = {str(t): _checked(Protocol, p, f"tasks.{t}.") for t, p in raw.tasks.items()}
        for task, protocol in tasks.items():
            _check_protocol(task, protocol)
        agents = {str(a): _agent_entry(str(a), e, tasks) for a, e in raw.agents.items()}
        targets = _targets(raw.targets, tasks)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    name = raw.name or path.stem
    root_dir = Path(root or raw.root or f"results/suites/{name}").resolve()
    rows_file = Path(rows or (raw.rows if not root else "") or root_dir / "rows.jsonl").resolve()
    return Suite(path.resolve(), name, seeds, tasks, agents, root_dir, rows_file, targets)


def _targets(targets: Any, tasks: dict[str, Protocol]) -> dict[str, float]:
    if not isinstance(targets, dict):
        raise ConfigError(f"targets: expected a mapping task -> return, got {targets!r}")
    for task, value in targets.items():
        if task not in tasks:
            raise ConfigError(f"targets.{task}: not a task of this suite (its tasks: {', '.join(tasks)})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"targets.{task}: expected a number (a return), got {value!r}")
    return {str(t): float(v) for t, v in targets.items()}


def protocol_differences(saved: dict, cfg: Config) -> list[str]:
    """What a run directory's config.yaml (``saved``, a dict) and a cell's config disagree on, besides the
    budget (a run may be extended): the fields a resumed run must keep, the protocol's and the agent's (every agent
    field the saved config has: one added to the code since keeps its default)."""
    now = json.loads(json.dumps(dataclasses.asdict(cfg)))
    keys = [("env", k) for k in ("spec", "obs", "action_repeat", "time_limit", "fast_render", "size")]
    keys += [("train", k) for k in ("eval_every", "eval_episodes", "seed", "warmup_steps", "replay_ratio")]
    keys += [("agent", k) for k in now["agent"] if k in saved.get("agent", {}) or k == "name"]
    return [
        f"{a}.{b} {saved.get(a, {}).get(b)!r} vs {now[a][b]!r}" for a, b in keys if saved.get(a, {}).get(b) != now[a][b]
    ]
