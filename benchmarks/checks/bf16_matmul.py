"""Does this CPU compute bfloat16 natively? One [2000, 200] x [200, 200] matmul (a PETS ensemble member's layer over a
population) in fp32 and in bfloat16, one thread, GFLOP/s each, with the CPU's name and its bf16 feature flags: "AMD
EPYC" covers both an AVX2-only CPU (oneDNN emulates bfloat16, about 50x slower than fp32) and one with AVX512-BF16
(faster than fp32), and `agent.bf16=auto` follows the flags (worldmodels/nets/precision.py). Run from the root:

    .venv/bin/python benchmarks/checks/bf16_matmul.py >> benchmarks/checks/bf16_matmul.jsonl
"""

import json
import time
from pathlib import Path

import torch

from worldmodels.analysis.benchmark import provenance

ROWS, WIDTH, REPEATS = 2000, 200, 200


def gflops(dtype: torch.dtype) -> float:
    """GFLOP/s over REPEATS matmuls after 5 warm-up ones."""
    a = torch.randn(ROWS, WIDTH).to(dtype)  # [2000, 200]
    b = torch.randn(WIDTH, WIDTH).to(dtype)  # [200, 200]
    for _ in range(5):
        a @ b
    start = time.perf_counter()
    for _ in range(REPEATS):
        a @ b
    seconds = (time.perf_counter() - start) / REPEATS
    return 2 * ROWS * WIDTH * WIDTH / seconds / 1e9


def main() -> None:
    torch.set_num_threads(1)
    flags = Path("/proc/cpuinfo").read_text().split()
    features = sorted({f for f in flags if f in ("amx_bf16", "amx_tile", "avx512_bf16", "avx2")})
    row = {
        "kind": "matmul",
        "shape": f"[{ROWS}, {WIDTH}] x [{WIDTH}, {WIDTH}]",
        "threads": 1,
        "fp32_gflops": round(gflops(torch.float32), 1),
        "bf16_gflops": round(gflops(torch.bfloat16), 1),
        "cpu_flags": features,
        **provenance(),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
