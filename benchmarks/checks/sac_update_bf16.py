"""Does bfloat16 move MBPO's speed ratio to mbrl-lib? One SAC update at InvertedPendulum's sizes (4 state dims,
1 action, 2 x 256 layers, batch 256), ours (`SACLearner`) and mbrl-lib 0.2.0's (`pytorch_sac_pranz24.SAC`, the
SAC its MBPO trains), each in fp32 and under bfloat16 autocast (fp32 parameters, as our agents' bf16 setting
does), one thread, alternating. SAC updates are about 80% of our MBPO's time in the side-by-side window
(benchmarks/README), so their ratio bounds the whole loop's. Run from the repository root; the script runs its
mbrl-lib half in the anchor venv (benchmarks/anchors/mbrl_lib_mbpo_speed.py says how to make it):

    .venv/bin/python benchmarks/checks/sac_update_bf16.py >> benchmarks/checks/sac_update_bf16.jsonl
"""

import json
import os
import platform
import subprocess
import sys
import time
import types

import numpy as np
import torch

BATCH, STATE, ROUNDS = 256, 4, 3
UPDATES = int(os.environ.get("UPDATES", 300))


def batches(n: int = 10) -> list[tuple[np.ndarray, ...]]:
    """(state, action, next_state, reward, mask, truncated) arrays, mbrl-lib's sample order."""
    rng = np.random.default_rng(0)
    f = np.float32
    return [
        (
            rng.standard_normal((BATCH, STATE)).astype(f),
            rng.uniform(-1, 1, (BATCH, 1)).astype(f),
            rng.standard_normal((BATCH, STATE)).astype(f),
            rng.standard_normal(BATCH).astype(f),
            np.zeros(BATCH, f),
            np.zeros(BATCH, bool),
        )
        for _ in range(n)
    ]


def ours_update():
    """A function making one update of our SAC learner on the next batch."""
    from gymnasium import spaces

    from worldmodels.behaviours.sac import SACLearner, SACSettings

    obs = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (STATE,))})
    learner = SACLearner(obs, 1, SACSettings(init_alpha=0.2, target_entropy=-1.0), torch.device("cpu"))
    data = [
        {
            "obs": {"state": torch.from_numpy(s)},
            "next_obs": {"state": torch.from_numpy(s2)},
            "action": torch.from_numpy(a),
            "reward": torch.from_numpy(r),
            "terminated": torch.from_numpy(d).bool(),
        }
        for s, a, s2, r, d, _ in batches()
    ]
    count = iter(range(10**9))
    return lambda: learner.update(data[next(count) % len(data)])


def mbrl_update():
    """A function making one update of mbrl-lib's SAC (its MBPO settings) on the next batch."""
    import gymnasium as gym
    from mbrl.third_party.pytorch_sac_pranz24.sac import SAC

    args = types.SimpleNamespace(
        gamma=0.99, tau=0.005, alpha=0.2, policy="Gaussian", target_update_interval=1,
        automatic_entropy_tuning=True, target_entropy=-1, hidden_size=256, lr=3e-4, device="cpu",
    )  # fmt: skip
    agent = SAC(STATE, gym.spaces.Box(-3, 3, (1,), dtype=np.float32), args)
    data = batches()
    count = iter(range(10**9))

    class Memory:
        def sample(self, _size):
            t = data[next(count) % len(data)]
            return types.SimpleNamespace(astuple=lambda: t)

    memory, step = Memory(), iter(range(10**9))
    return lambda: agent.update_parameters(memory, BATCH, next(step))


def ms_per_update(update, bf16: bool) -> float:
    def timed(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                update()
        return time.perf_counter() - start

    timed(30)  # warm-up
    return round(timed(UPDATES) / UPDATES * 1e3, 2)


def bmm_gflops(dtype: torch.dtype, reps: int = 2000) -> float:
    """Throughput of the twin critic's hidden layer: [2, 256, 256] @ [2, 256, 256] (Q, batch, width)."""
    x, w = torch.randn(2, BATCH, 256, dtype=dtype), torch.randn(2, 256, 256, dtype=dtype)
    for _ in range(50):
        torch.bmm(x, w)
    start = time.perf_counter()
    for _ in range(reps):
        torch.bmm(x, w)
    return round(2 * 2 * BATCH * 256 * 256 * reps / (time.perf_counter() - start) / 1e9, 1)


def measure(who: str) -> dict:
    """A half's rounds (ms an update, fp32 and bf16) and, as the bound's evidence, the critic layer's GFLOP/s."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    update = ours_update() if who == "ours" else mbrl_update()
    rounds = [{"fp32_ms": ms_per_update(update, False), "bf16_ms": ms_per_update(update, True)} for _ in range(ROUNDS)]
    return {"rounds": rounds, "bmm_gflops": {"fp32": bmm_gflops(torch.float32), "bf16": bmm_gflops(torch.bfloat16)}}


if __name__ == "__main__":
    if len(sys.argv) > 1:  # a half, run in its own venv: print its measurements
        print(json.dumps(measure(sys.argv[1])))
        sys.exit()
    sys.path.insert(0, ".")
    halves = {}
    for who, python in (("ours", ".venv/bin/python"), ("mbrl", "anchors/mbrl/bin/python")):
        done = subprocess.run(
            [python, __file__, who], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": "."}
        )
        halves[who] = json.loads(done.stdout.strip().splitlines()[-1])
    median = {
        who: {k: float(np.median([r[k] for r in half["rounds"]])) for k in ("fp32_ms", "bf16_ms")}
        for who, half in halves.items()
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "")
    print(json.dumps({
        "check": "sac_update_bf16", "halves": halves, "median_ms": median,
        "ratio_mbrl_over_ours": {k: round(median["mbrl"][k] / median["ours"][k], 2) for k in ("fp32_ms", "bf16_ms")},
        "torch": torch.__version__, "threads": 1, "batch": BATCH, "hidden": [256, 256], "commit": commit,
        "cpu": model or platform.machine(), "amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()),
    }))  # fmt: skip
