"""Does torch.compile speed up SAC's update on this CPU? Eager against compiled networks (critic, target critic,
actor MLPs), InvertedPendulum's sizes (4 state dims, 1 action, 2 x 256 layers, batch 256), one thread, alternating.

    .venv/bin/python benchmarks/checks/sac_update_compile.py >> benchmarks/checks/sac_update_compile.jsonl
"""

import json
import platform
import subprocess
import time

import numpy as np
import torch
from gymnasium import spaces

from worldmodels.behaviours.sac import SACLearner, SACSettings

torch.set_num_threads(1)
OBS = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (4,))})
BATCHES = [
    {
        "obs": {"state": torch.randn(256, 4)},
        "next_obs": {"state": torch.randn(256, 4)},
        "action": torch.rand(256, 1) * 2 - 1,
        "reward": torch.randn(256),
        "terminated": torch.zeros(256, dtype=torch.bool),
    }
    for _ in range(10)
]


def ms_per_update(learner: SACLearner, updates: int = 200) -> float:
    for i in range(30):  # warm-up (and, compiled, the compilation)
        learner.update(BATCHES[i % 10])
    start = time.perf_counter()
    for i in range(updates):
        learner.update(BATCHES[i % 10])
    return (time.perf_counter() - start) / updates * 1e3


def learner(compiled: bool) -> SACLearner:
    torch.manual_seed(0)
    out = SACLearner(OBS, 1, SACSettings(), torch.device("cpu"))
    if compiled:
        out.critic.q, out.critic_target.q = torch.compile(out.critic.q), torch.compile(out.critic_target.q)
        out.actor.net = torch.compile(out.actor.net)
    return out


eager, compiled = learner(False), learner(True)
rounds = [
    {"eager_ms": round(ms_per_update(eager), 2), "compiled_ms": round(ms_per_update(compiled), 2)} for _ in range(2)
]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(json.dumps({"check": "sac_update_compile", "rounds": rounds, "torch": torch.__version__, "threads": 1,
                  "commit": commit, "cpu": platform.processor() or platform.machine()}))  # fmt: skip
