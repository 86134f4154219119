"""The one training loop: collect with the agent, fill the replay, update on a stated replay ratio,
evaluate, log and checkpoint. Agent-agnostic: the agent is built by name from the registry.

Counters (exact, and saved in every checkpoint):
    env_steps    simulator steps, after action repeat (what results are reported against)
    agent_steps  decisions, summed over parallel envs
    grad_steps   updates, summed over the agent's batch streams
Replay ratio = gradient updates per agent step, after warm-up (per stream: see agents.Stream).

Dimension letters: N parallel envs, A action dims.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from worldmodels.agents import Agent, BatchSpec, Stream, build_agent
from worldmodels.config import Config, config_to_dict, flat_items, load_config, save_config
from worldmodels.envs import EnvStepError, is_discrete, make_env, make_vector_env
from worldmodels.nets.guarded_step import NonFiniteUpdate
from worldmodels.replay import ReplayStore
from worldmodels.run.checkpoint import CHECKPOINT, CheckpointError, has_checkpoint, load_checkpoint, save_checkpoint
from worldmodels.run.collect import EpisodeBuilder, latest_transitions, split_final_obs
from worldmodels.run.evaluation import evaluate
from worldmodels.run.interrupts import NonFiniteTraining, sigterm_as_interrupt
from worldmodels.run.logger import Logger, MeanTracker, ProgressFigures
from worldmodels.run.randomness import isolated_randomness
from worldmodels.run.resume import last_eval, move_rows_past


@dataclass
class Counters:
    env_steps: int = 0
    agent_steps: int = 0
    grad_steps: int = 0
    episodes: int = 0
    wall_s: float = 0.0
    """Seconds spent in the training loop, summed over resumes."""
    stream_credit: dict[str, float] = field(default_factory=dict)
    """Per batch stream: schedule credit not yet spent on updates (updates owed for a ratio, env steps for
    an every-E schedule; fractions carry over)."""
    stream_updates: dict[str, int] = field(default_factory=dict)
    """Per batch stream: updates done."""
    next_eval: int = 0
    next_checkpoint: int = 0
    next_log: int = 0
    next_report: int = 0
    nonfinite_updates: int = 0
    """Updates skipped because a loss or gradient was not finite (not counted in grad_steps)."""
    nonfinite_streak: int = 0
    """Of those, how many in a row up to now."""
    time_s: dict[str, float] = field(default_factory=dict)
    """Seconds spent, summed over resumes, in: warmup (random actions before train.warmup_steps), decide
    (agent.act), env (stepping the simulator and rendering), update:<stream> (each batch stream's updates),
    model_check (failure modes) and eval."""
    warmup_burst_done: bool = False
    """Whether the train.warmup_updates burst at the end of warm-up has been paid (every stream at once)."""
    time_n: dict[str, int] = field(default_factory=dict)
    """What each part of time_s counted: decisions (warmup, decide: one per env), env steps (env), updates
    (update:<stream>), episodes (model_check) and evaluations (eval)."""


def env_kwargs(cfg: Config) -> dict:
    e = cfg.env
    return dict(
        obs=e.obs, size=e.size, action_repeat=e.action_repeat, time_limit=e.time_limit, fast_render=e.fast_render
    )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"train.device={name} but this torch has no CUDA; use train.device=cpu or install a CUDA build"
        )
    return device


def setup_torch(cfg: Config) -> torch.device:
    """Threads first (before any torch work), then seeds."""
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    random.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    torch.manual_seed(cfg.train.seed)
    return resolve_device(cfg.train.device)


def default_run_name(cfg: Config) -> str:
    task = cfg.env.spec.replace(":", "-").replace("/", "-")
    # the process id keeps two runs started in the same second (a grid launched in parallel) apart
    return f"{cfg.agent.name}-{task}-s{cfg.train.seed}-{time.strftime('%Y%m%d-%H%M%S')}-p{os.getpid()}"


def can_sample(replay: ReplayStore, spec: BatchSpec, latest: dict | None = None) -> bool:
    """``latest``: the transitions of the vector step just taken (for 'latest' streams), None before the first."""
    if spec.kind == "latest":
        return latest is not None
    if spec.kind in ("transitions", "all", "unrolls"):
        return replay.num_transitions > 0
    if spec.cross_episodes:
        return replay.num_steps >= spec.seq_len
    return replay.longest_episode >= spec.seq_len


def sample_batch(replay: ReplayStore, spec: BatchSpec, latest: dict | None = None) -> dict:
    if spec.kind == "latest":
        return latest
    if spec.kind == "all":
        return replay.all_transitions()
    if spec.kind == "transitions":
        return replay.sample_transitions(spec.batch_size)
    if spec.kind == "unrolls":
        return replay.sample_unrolls(spec.batch_size, spec.seq_len, spec.history)
    return replay.sample_sequences(spec.batch_size, spec.seq_len, spec.cross_episodes)


def random_actions(rng: np.random.Generator, action_space, n: int) -> np.ndarray:
    if is_discrete(action_space):
        return rng.integers(0, action_space.n, size=n)  # [N]
    return rng.uniform(-1.0, 1.0, size=(n,) + action_space.shape).astype(np.float32)  # [N, A]


class Trainer:
    """Holds the pieces of one run; ``run()`` trains until cfg.train.env_steps. Building one writes nothing:
    a fresh run's directory is created by ``run()``, once the env and the agent exist."""

    def __init__(self, cfg: Config, run_dir: Path, resume: bool):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.device = setup_torch(cfg)
        self.agent = agent_for(cfg, self.device)
        self.obs_space, self.action_space = self.agent.obs_space, self.agent.action_space
        self.replay = ReplayStore(cfg.replay.capacity, run_dir / "replay", seed=cfg.train.seed)
        t = cfg.train
        self.counters = Counters(next_eval=t.eval_every, next_checkpoint=t.checkpoint_every, next_report=t.report_every)
        self.rng = np.random.default_rng(cfg.train.seed)
        self.last_eval, self.last_eval_step = float("nan"), -1
        self.failure_since_eval: list[dict[str, float]] = []  # model_check metrics of the episodes since an eval
        if resume:
            self._restore()
        self.metrics = MeanTracker()

    # -- checkpoints ----------------------------------------------------------------------------------------
    def _payload(self) -> dict:
        return {
            "agent_name": self.cfg.agent.name,
            "agent": self.agent.state_dict(),
            "counters": asdict(self.counters),
            "replay": self.replay.state_dict(),
            "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state(), "python": random.getstate()},
            "config": config_to_dict(self.cfg),
        }

    def save(self) -> None:
        save_checkpoint(self.run_dir, self._payload())

    def _restore(self) -> None:
        if not has_checkpoint(self.run_dir):
            # Stopped before its first checkpoint: start over, setting aside every episode and row it wrote.
            warnings.warn(f"{self.run_dir} has no checkpoint yet; training from the start", stacklevel=2)
            self.replay.load(up_to=0)
            for name in ("evals.jsonl", "metrics.jsonl"):
                move_rows_past(self.run_dir / name, -1)
            return
        payload = load_checkpoint(self.run_dir, set_aside_corrupt=True)
        if payload["agent_name"] != self.cfg.agent.name:
            raise CheckpointError(
                f"{self.run_dir} holds a '{payload['agent_name']}' agent, the config asks for '{self.cfg.agent.name}'"
            )
        load_agent_weights(
            self.agent,
            payload,
            self.run_dir,
            "Resume with the run's own config.yaml and without overrides that change network shapes.",
        )
        self.counters = restore_counters(payload["counters"], [s.name for s in self.agent.streams()])
        self.rng.bit_generator.state = payload["rng"]["numpy"]
        torch.set_rng_state(payload["rng"]["torch"])
        random.setstate(payload["rng"]["python"])
        self.replay.load_state_dict(payload["replay"])
        self.replay.load(up_to=payload["replay"]["episodes_added"])
        for name in ("evals.jsonl", "metrics.jsonl"):  # rows written after this checkpoint are set aside
            move_rows_past(self.run_dir / name, self.counters.env_steps)
        self.last_eval_step, self.last_eval = last_eval(self.run_dir / "evals.jsonl")

    # -- the loop -------------------------------------------------------------------------------------------
    def run(self) -> Path:
        cfg, c = self.cfg, self.counters
        n = cfg.env.num_envs
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = Logger(self.run_dir, cfg.train.env_steps, c.env_steps, cfg.run.progress)
        self.progress = ProgressFigures(cfg.train.env_steps, cfg.train.warmup_steps, c.env_steps, c.grad_steps)
        print(f"run directory: {self.run_dir}", file=sys.stderr, flush=True)
        envs = make_vector_env(cfg.env.spec, n, seed=cfg.train.seed + 100 * c.episodes, **env_kwargs(cfg))
        try:
            with sigterm_as_interrupt():
                self._collect_and_learn(envs)
                if self.last_eval_step != c.env_steps:
                    self._evaluate()
                self.save()
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (interrupts.Terminated)
            self.save()
            what = "Interrupted" if type(stop) is KeyboardInterrupt else "Terminated (SIGTERM)"
            print(f"\n{what}: checkpoint saved; continue with --resume {self.run_dir}", file=sys.stderr)
            raise
        except EnvStepError:
            self.save()  # the env broke, not the agent: keep what it learned
            raise
        finally:
            self.logger.close()
            envs.close()
        return self.run_dir

    def _collect_and_learn(self, envs) -> None:
        cfg, c = self.cfg, self.counters
        n, repeat = cfg.env.num_envs, cfg.env.action_repeat
        builder = EpisodeBuilder(n, self.action_space, self.agent.replay_extras())
        obs, _ = envs.reset(seed=cfg.train.seed + 100 * c.episodes)
        builder.start_all(obs)
        is_first, agent_state = np.ones(n, bool), None
        streams = self.agent.streams()
        self.latest = None  # the last vector step's transitions, for 'latest' streams (online learners)
        wants_latest = any(stream.spec.kind == "latest" for stream in streams)
        self.logger.hyperparameters(flat_items(cfg))
        tick = (time.time(), c.env_steps, c.grad_steps)
        self._clock = time.time()
        while c.env_steps < cfg.train.env_steps:
            extras = None
            if c.env_steps < cfg.train.warmup_steps:
                with self._timed("warmup", n):
                    action = random_actions(self.rng, self.action_space, n)
            else:
                with self._timed("decide", n):
                    action, agent_state, extras = self.agent.act({**obs, "is_first": is_first}, agent_state, True)
            before = obs
            with self._timed("env", n * repeat):
                obs, reward, terminated, truncated, infos = envs.step(action)
            c.env_steps += n * repeat
            c.agent_steps += n
            lasts = []
            for i in range(n):  # bookkeeping per env (N is small); no tensor work here
                last = split_final_obs(obs, infos, i)
                lasts.append(last)
                mine = None if not extras else {k: v[i] for k, v in extras.items()}
                episode = builder.add(i, action[i], reward[i], last, terminated[i], truncated[i], mine)
                if episode is not None:
                    self._finish_episode(episode, builder, obs, i)
            if wants_latest:
                self.latest = latest_transitions(before, action, reward, lasts, terminated, self.action_space)
            is_first = terminated | truncated
            self._update(streams, n)
            tick = self._periodic(tick)

    @contextlib.contextmanager
    def _timed(self, part: str, count: int = 1):
        """Add the seconds the block takes to counters.time_s[part] and ``count`` to counters.time_n[part] (on
        CUDA after the queued work is done, so it is charged to the part that queued it)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            c = self.counters
            c.time_s[part] = c.time_s.get(part, 0.0) + time.perf_counter() - start
            c.time_n[part] = c.time_n.get(part, 0) + count

    def _side_work(self):
        """Evaluations, reports and model checks leave the run's random streams where they were (run/randomness.py)."""
        devices = [self.device] if self.device.type == "cuda" else []
        return isolated_randomness(self.agent, self.replay, devices=devices)

    def _finish_episode(self, episode: dict, builder: EpisodeBuilder, obs: dict, i: int) -> None:
        if self.cfg.train.model_check and self.counters.grad_steps > 0:  # the model has learned: score it
            # on the fresh episode, with its own random streams, so that checking leaves training unchanged
            with self._timed("model_check"), self._side_work():
                failure = self.agent.model_check(episode)
            if failure:
                self.metrics.add(failure)
                self.failure_since_eval.append(failure)
        self.replay.add_episode(episode, save=self.cfg.replay.save_episodes)
        self.counters.episodes += 1
        builder.start(i, {k: v[i] for k, v in obs.items()})
        steps = (len(episode["reward"]) - 1) * self.cfg.env.action_repeat
        self.metrics.add({"train/episode_return": float(episode["reward"].sum()), "train/episode_length": steps})

    def _update(self, streams: list[Stream], n: int) -> None:
        """Pay every stream's schedule for the last n agent steps (n x action_repeat env steps)."""
        c = self.counters
        if c.env_steps < self.cfg.train.warmup_steps:
            return
        burst = 0 if c.warmup_burst_done else self.cfg.train.warmup_updates  # paid once, when warm-up ends
        c.warmup_burst_done = True
        for stream in streams:
            if not can_sample(self.replay, stream.spec, self.latest):
                continue
            if stream.every_env_steps > 0:
                gain, cost = n * self.cfg.env.action_repeat, stream.every_env_steps
            else:
                ratio = self.cfg.train.replay_ratio if stream.ratio is None else stream.ratio
                # a 'latest' batch holds the n agent steps just taken, so one update pays for all n of them
                cost = float(n) if stream.spec.kind == "latest" else 1.0
                gain = ratio * n + burst * cost
            credit = c.stream_credit.get(stream.name, 0.0) + gain
            while credit >= cost:
                credit -= cost
                c.stream_credit[stream.name] = credit
                try:
                    with self._timed(f"update:{stream.name}"):
                        metrics = stream.update(sample_batch(self.replay, stream.spec, self.latest))
                except NonFiniteUpdate as err:
                    self._skip_nonfinite(stream.name, err)
                    continue
                if metrics is None:  # the agent had nothing to learn from yet (no model fitted): not an update
                    continue
                self.metrics.add(metrics)
                c.nonfinite_streak = 0
                c.grad_steps += 1
                c.stream_updates[stream.name] = c.stream_updates.get(stream.name, 0) + 1
            c.stream_credit[stream.name] = credit

    def _skip_nonfinite(self, stream: str, err: NonFiniteUpdate) -> None:
        """Count a skipped update; stop the run (without saving over the last good checkpoint) after
        train.max_nonfinite_updates of them in a row."""
        c, limit = self.counters, self.cfg.train.max_nonfinite_updates
        c.nonfinite_updates += 1
        c.nonfinite_streak += 1
        if limit and c.nonfinite_streak >= limit:
            self.logger.scalars(c.env_steps, {**self.metrics.pop(), "train/nonfinite_updates": c.nonfinite_updates})
            saved = self.run_dir / CHECKPOINT
            kept = f"the last good checkpoint, {saved}, was kept" if saved.exists() else "no checkpoint was written"
            raise NonFiniteTraining(
                f"training stopped at env step {c.env_steps}: {c.nonfinite_streak} updates in a row were non-finite "
                f"(stream '{stream}': {err}); each was skipped, weights unchanged. Look at the learning rates "
                "(agent.*lr), agent.grad_clip, agent.batch_size and the task's rewards and observations; "
                f"{kept}. train.max_nonfinite_updates sets how many in a row stop a run."
            ) from err

    def _periodic(self, tick: tuple[float, int, int]) -> tuple[float, int, int]:
        cfg, c = self.cfg.train, self.counters
        now = time.time()
        c.wall_s += now - self._clock
        self._clock = now
        if c.env_steps >= c.next_log:
            c.next_log = (c.env_steps // cfg.log_every + 1) * cfg.log_every
            seconds = max(time.time() - tick[0], 1e-9)
            scalars = self.metrics.pop()
            scalars.update(
                {
                    "fps/env_steps_per_s": (c.env_steps - tick[1]) / seconds,
                    "fps/updates_per_s": (c.grad_steps - tick[2]) / seconds,
                    "train/grad_steps": c.grad_steps,
                    "train/agent_steps": c.agent_steps,
                    "train/episodes": c.episodes,
                    "train/replay_steps": self.replay.num_steps,
                    "train/replay_ratio": self.cfg.train.replay_ratio,
                    "train/nonfinite_updates": c.nonfinite_updates,
                }
            )
            self.logger.scalars(c.env_steps, scalars)
            tick = (time.time(), c.env_steps, c.grad_steps)
        figures = self.progress.figures(c.env_steps, c.grad_steps, self.last_eval)
        self.logger.progress(c.env_steps, **(figures or {}))
        if cfg.eval_every and c.env_steps >= c.next_eval:
            self._evaluate()
            c.next_eval = (c.env_steps // cfg.eval_every + 1) * cfg.eval_every
        if cfg.report_every and c.env_steps >= c.next_report:
            self._report()
            c.next_report = (c.env_steps // cfg.report_every + 1) * cfg.report_every
        if cfg.checkpoint_every and c.env_steps >= c.next_checkpoint:
            c.next_checkpoint = (c.env_steps // cfg.checkpoint_every + 1) * cfg.checkpoint_every  # saved with it
            self.save()
        return tick

    def _report(self) -> None:
        if self.replay.num_transitions == 0:
            return
        with self._side_work():
            report = self.agent.report(self.replay)
        if report is None:
            return
        step = self.counters.env_steps
        for tag, frames in report.get("videos", {}).items():
            self.logger.video(tag, frames, step)
        for tag, image in report.get("images", {}).items():
            self.logger.image(tag, image, step)
        if report.get("scalars"):
            self.logger.scalars(step, report["scalars"])

    def _evaluate(self) -> None:
        cfg, c = self.cfg, self.counters
        start = time.time()
        with self._timed("eval"), self._side_work():
            result = evaluate(
                self.agent,
                cfg.env.spec,
                cfg.train.eval_episodes,
                seed=eval_seed(cfg),
                env_kwargs=env_kwargs(cfg),
            )
        self.last_eval, self.last_eval_step = result.mean, c.env_steps
        self.logger.scalars(
            c.env_steps,
            {
                "eval/return_mean": result.mean,
                "eval/return_std": result.std,
                "eval/length_mean": float(np.mean(result.lengths)),
            },
        )
        now = time.time()  # the row's wall clock includes the evaluation just run, as its time_s does
        c.wall_s += now - self._clock
        self._clock = now
        row = {
            "env_steps": c.env_steps,
            "agent_steps": c.agent_steps,
            "grad_steps": c.grad_steps,
            "action_repeat": cfg.env.action_repeat,
            "wall_s": round(c.wall_s, 2),
            "eval_s": round(time.time() - start, 2),
            "time_n": dict(c.time_n),
            "time_s": {part: round(seconds, 3) for part, seconds in c.time_s.items()},
            **result.summary(),
        }
        # the agent's model_check metrics, mean over the episodes since the last eval (in memory only: after a
        # resume the first row averages the episodes since the resume)
        if self.failure_since_eval:
            keys = self.failure_since_eval[0]
            row["failure"] = {k.split("/")[-1]: float(np.mean([m[k] for m in self.failure_since_eval])) for k in keys}
            self.failure_since_eval = []
        with open(self.run_dir / "evals.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")
        self.logger.progress(c.env_steps, eval=f"{result.mean:.1f}")


def agent_for(cfg: Config, device: torch.device) -> Agent:
    """The configured agent for the configured env's spaces (an env is built to read them, then closed); settings
    that do not fit the task raise ConfigError."""
    probe = make_env(cfg.env.spec, seed=cfg.train.seed, **env_kwargs(cfg))
    try:
        return build_agent(cfg.agent, probe.observation_space, probe.action_space, device)
    finally:
        probe.close()


def eval_seed(cfg: Config) -> int:
    """The first env seed of a run's evaluations (env k: + k); training envs start from train.seed + 100 x the
    episodes done, so the two meet only after 100 training episodes."""
    return cfg.train.seed + 10_000


def check_buildable(cfg: Config) -> None:
    """Build the env and the agent of ``cfg`` and drop them: a setting that does not fit the task is a ConfigError
    now, not hours into a grid. Writes nothing."""
    agent_for(cfg, torch.device("cpu"))


def restore_counters(saved: dict, stream_names: list[str]) -> Counters:
    """Counters from a checkpoint; one written before batch streams existed (a single ``update_debt``) gives
    its debt to the agent's first stream."""
    saved = dict(saved)
    debt = saved.pop("update_debt", None)
    if debt is not None and stream_names:
        saved["stream_credit"] = {stream_names[0]: debt}
        saved["stream_updates"] = {stream_names[0]: saved.get("grad_steps", 0)}
    return Counters(**saved)


def train(cfg: Config, resume: str | Path | None = None) -> Path:
    """Train the configured agent; return the run directory. With ``resume``, continue that run."""
    if resume is not None:
        run_dir = Path(resume)
    else:
        run_dir = Path(cfg.run.root) / (cfg.run.name or default_run_name(cfg))
        if (run_dir / "checkpoint.pt").exists():
            raise FileExistsError(
                f"{run_dir} already holds a run; continue it with --resume {run_dir} or pick another run.name"
            )
    if cfg.train.warmup_steps >= cfg.train.env_steps > 0:
        warnings.warn(
            f"train.warmup_steps={cfg.train.warmup_steps} >= train.env_steps={cfg.train.env_steps}: "
            "every step is a random warm-up action and the agent never learns",
            stacklevel=2,
        )
    trainer = Trainer(cfg, run_dir, resume=resume is not None)  # env and agent built: the config works
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    return trainer.run()


def load_agent(run_dir: str | Path, device: str = "cpu", restore_rng: bool = False):
    """(agent, config) from a run directory's config.yaml and latest checkpoint. ``restore_rng``: also set torch's
    global random stream to the checkpoint's (the agents' own generators come back with their state), so that an
    evaluation with the run's seeds repeats the run's last one."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise CheckpointError(f"{run_dir} has no config.yaml; pass a run directory such as checkpoints/<run>")
    if not has_checkpoint(run_dir):
        raise CheckpointError(
            f"{run_dir} has no checkpoint: its run stopped before the first save, so there is no trained agent "
            "to load (train.checkpoint_every sets how often a run saves)"
        )
    cfg = load_config([run_dir / "config.yaml"])
    agent = agent_for(cfg, resolve_device(device))
    payload = load_checkpoint(run_dir)
    load_agent_weights(
        agent,
        payload,
        run_dir,
        "The networks of this worldmodels differ from those that wrote it: load it with the "
        "version that trained it, or train a new run.",
    )
    if restore_rng:
        torch.set_rng_state(payload["rng"]["torch"])
    return agent, cfg


def load_agent_weights(agent, payload: dict, run_dir: Path, fix: str) -> None:
    """The checkpoint's agent state into `agent`; a CheckpointError naming `fix` when the shapes or keys differ."""
    try:
        agent.load_state_dict(payload["agent"])
    except (RuntimeError, KeyError, ValueError) as err:
        detail = " ".join(str(err).split())  # torch lists every missing key: keep the start
        detail = detail if len(detail) <= 300 else detail[:300] + " ..."
        raise CheckpointError(
            f"The checkpoint in {run_dir} does not fit the agent built from its config ({detail}). {fix}"
        ) from err
