#!/usr/bin/env bash
# Every speed figure the READMEs quote, measured in one run on an idle machine and appended as rows to OUT; then
# `benchmark.py report` turns the rows into benchmarks/speed/table.md, with the ratio of each anchor to ours for rows
# of the same --label, precision, machine setting and commit. Ours and each anchor alternate (anchor, ours,
# anchor) so that a change of machine load shows up as a spread, not as a ratio.
#   bash benchmarks/speed/measure.sh [OUT=benchmarks/speed/speed.jsonl] [THREADS=2]
# Anchors run in their own venvs under anchors/ (git-ignored; recipes in their scripts' docstrings): sheeprl 0.8.4
# for DreamerV3 updates (fp32 and its bf16-mixed, the precision ours uses on a CPU with AMX), mbrl-lib 0.2.0 for PETS
# decisions (fp32 only: it has no bfloat16 setting, so ours is measured in fp32 beside it and in bfloat16 apart).
# A missing anchor venv skips that anchor and says so.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-benchmarks/speed/speed.jsonl} threads=${2:-2}
py=.venv/bin/python
if [[ -e "$out" ]]; then
  echo "$out exists: one file is one run (the ratios pool its rows); move it aside or name another OUT" >&2
  exit 2
fi
log="$(dirname "$out")/anchors.log"  # the anchors' own output, to read when one fails
: >"$log"
bench() { "$py" scripts/benchmark.py "$@" --results "$out"; }
dreamer_s=(--config configs/dreamer/cartpole_swingup.yaml --config configs/dreamer/size_S.yaml
  agent.batch_size=16 agent.seq_len=64 agent.imagine_starts=0 train.threads="$threads")
pets=(--config configs/pets/mbrl_lib_cartpole.yaml train.threads="$threads")

echo "== DreamerV3 S updates, 16 x 64, beside sheeprl 0.8.4 =="
sheeprl() {
  if [[ -x anchors/sheeprl/bin/python ]]; then
    anchors/sheeprl/bin/python benchmarks/anchors/sheeprl_dreamer_speed.py --size S --threads "$threads" \
      --precision "$1" --results "$out" 2>>"$log"
  else echo "anchors/sheeprl missing: sheeprl not measured (recipe: benchmarks/anchors/sheeprl_dreamer_speed.py)"; fi
}
sheeprl bf16-mixed
bench speed "${dreamer_s[@]}" agent.bf16=true --repeats 5 --label dreamer-S-16x64
sheeprl 32-true
bench speed "${dreamer_s[@]}" agent.bf16=false --repeats 5 --label dreamer-S-16x64
sheeprl bf16-mixed

echo "== PETS decisions at mbrl-lib's cartpole settings, beside mbrl-lib 0.2.0 =="
mbrl() {
  if [[ -x anchors/mbrl/bin/python ]]; then
    anchors/mbrl/bin/python benchmarks/anchors/mbrl_lib_pets_speed.py --threads "$threads" --results "$out" 2>>"$log"
  else echo "anchors/mbrl missing: mbrl-lib not measured (recipe: benchmarks/anchors/mbrl_lib_pets_speed.py)"; fi
}
mbrl
bench act-speed "${pets[@]}" agent.bf16=false --repeats 10 --label pets-mbrl-cartpole
mbrl
bench act-speed "${pets[@]}" agent.bf16=true --repeats 10 --label pets-mbrl-cartpole

echo "== MuZero's batched search: 16 roots x 50 simulations, pUCT and Gumbel, one thread =="
for search in puct gumbel; do
  bench act-speed --config configs/muzero/cartpole.yaml agent.simulations=50 agent.search="$search" train.threads=1 \
    --batch 16 --repeats 10
done

echo "== Dreamer's and TD-MPC's cartpole-swingup pixel presets: an update and a decision each =="
for agent in dreamer tdmpc; do
  bench speed --config configs/$agent/cartpole_swingup.yaml train.threads="$threads" --repeats 5
  bench act-speed --config configs/$agent/cartpole_swingup.yaml train.threads="$threads" --repeats 20
done

echo "== pixel collection =="
bench collect --task dmc:cartpole-swingup --obs pixels --action-repeat 2 --envs 1 2
bench collect --task dmc:cartpole-swingup --obs pixels --action-repeat 2 --envs 1 2 --fast-render

# MBPO's whole training loop beside mbrl-lib's is measured apart (anchors/mbpo_speed_side_by_side.sh, ~30 min); its
# committed rows join the table
"$py" scripts/benchmark.py report "$out" benchmarks/speed/mbpo_inverted_pendulum.jsonl --out "$(dirname "$out")" >/dev/null
echo "rows: $out; table: $(dirname "$out")/table.md"
