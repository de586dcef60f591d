#!/usr/bin/env bash
# Before/after benchmark of a change to the shared kernels (src/nn): builds a
# base revision (default main) in a scratch git worktree under build/nn-base/
# and this checkout in build/, then alternates the same three benchmarks
# between the two binaries, ROUNDS times (base first in odd rounds, this
# checkout first in even ones, so a drifting machine load hits both alike):
#   lm bench        256-token forward with attention capture, the hidden-1024
#                   bf16 model of bench/lm_forward.sh (tokens/s)
#   lm train-bench  the `small` architecture, vocabulary 8192, batch 16 x 256
#                   (bench/lm_train.sh's first row; tokens/s)
#   mae bench       --config small --batch 60 (training and forward images/s)
# Prints every run as a JSON line, then per benchmark the median and range of
# each binary's rate and the ratio of the medians (this checkout / base), and
# the same for the CPU seconds each run took (user + system): on a machine
# shared with other jobs the rates swing with the load, the CPU time of the
# same work much less.
#   bench/nn_before_after.sh [BASE_REV]     (ROUNDS=5 THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_REV=${1:-main}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-2}
PY=/usr/bin/python3
SCRATCH=build/nn-base
CACHE=${BENCH_CACHE:-build/bench-models}
export OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=PASSIVE

# The base revision in its own worktree (git-ignored build/), sharing third_party/.
if [ ! -d "$SCRATCH/src" ]; then
  git worktree add --detach "$SCRATCH/src" "$BASE_REV" >/dev/null
  ln -s "$(readlink -f third_party)" "$SCRATCH/src/third_party"
else
  git -C "$SCRATCH/src" checkout --quiet --detach "$BASE_REV"
fi
echo "base: $BASE_REV = $(git -C "$SCRATCH/src" rev-parse --short HEAD); this checkout: $(git rev-parse --short HEAD)" >&2
for pair in "$SCRATCH/src $SCRATCH/build" ". build"; do
  set -- $pair
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$2" -j "$THREADS" --target apmae_cli >/dev/null
done
BASE=$SCRATCH/build/bin/apmae
THIS=build/bin/apmae

MODEL=$CACHE/lm1024-bf16
mkdir -p "$CACHE"
[ -f "$MODEL/model.safetensors" ] || $PY tools/make_random_lm.py --hidden 1024 --layers 8 --heads 16 --kv-heads 4 \
    --intermediate 4096 --vocab 49152 --tie --dtype bf16 --seed 1 --out "$MODEL" >/dev/null

# One run of one benchmark: a JSON line tagged with the binary's role, with
# the run's CPU seconds.
run() { # role binary bench
  local out
  case $3 in
    lm) set -- "$1" "$3" "$2" lm bench --model "$MODEL" --tokens 256 --iters 5 ;;
    lm_train) set -- "$1" "$3" "$2" lm train-bench --config small --vocab 8192 --batch 16 --seq-len 256 --steps 3 ;;
    mae) set -- "$1" "$3" "$2" mae bench --config small --batch 60 ;;
  esac
  out=$(/usr/bin/time -f "%U %S" -o "$CPU" "${@:3}")
  echo "{\"role\":\"$1\",\"bench\":\"$2\",\"cpu_s\":$(awk '{print $1 + $2}' "$CPU"),\"result\":$out}"
}

LOG=$(mktemp)
CPU=$(mktemp)
trap 'rm -f "$LOG" "$CPU"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for bench in lm lm_train mae; do
    if [ $((round % 2)) = 1 ]; then order="base this"; else order="this base"; fi
    for role in $order; do
      bin=$BASE; [ "$role" = this ] && bin=$THIS
      run "$role" "$bin" "$bench" | tee -a "$LOG"
    done
  done
done

$PY - "$LOG" "$ROUNDS" "$THREADS" <<'PYEOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
rates = {"lm": ["tokens_per_s"], "lm_train": ["tokens_per_s"], "mae": ["train_images_per_s", "forward_images_per_s"]}
names = {"lm": "lm bench (bf16 hidden 1024, T 256)", "lm_train": "lm train-bench (small, vocab 8192)", "mae": "mae bench (small, batch 60)"}
print(f"\n{sys.argv[2]} alternating rounds, {sys.argv[3]} threads: median (min-max)\n")
print("| benchmark | measure | base | this checkout | this / base |")
print("|---|---|---|---|---|")
def row(bench, label, get):
    v = {role: [get(r) for r in runs if r["bench"] == bench and r["role"] == role] for role in ("base", "this")}
    med = {role: statistics.median(x) for role, x in v.items()}
    cell = {role: f"{med[role]:.1f} ({min(x):.1f}-{max(x):.1f})" for role, x in v.items()}
    print(f"| {names[bench]} | {label} | {cell['base']} | {cell['this']} | {med['this'] / med['base']:.3f} |")
for bench, keys in rates.items():
    for key in keys:
        row(bench, key, lambda r: r["result"][key])
    row(bench, "CPU seconds per run", lambda r: r["cpu_s"])
PYEOF
