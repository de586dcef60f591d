#!/usr/bin/env bash
# Scale-out measurements for docs/scale.md, one JSON line each into OUT
# (default build/bench-scale.jsonl); bench/scale_plan.py turns them into the
# tables of docs/scale.md.
#
#  1. strong scaling of `apmae mae train` (config small, global batch 60,
#     N = 256, a synthetic store of 40 samples x 2 layers x 3 heads): ranks x
#     threads per rank in {1x1, 1x2, 2x1, 2x2}, ROUNDS rounds, the
#     configurations alternating within each round (the machine is shared);
#     images/s as the run reports it (rank 0's wall clock: pattern reads and
#     gradient sums included) and the job's CPU time per image;
#  2. the LM forward pass at the widths of StarCoder2-3B, 7B and 15B (one
#     layer of each, bf16 random weights, vocabulary 49,152; apmae lm bench,
#     256 tokens): achieved GFLOP/s beside the sgemm rate of the same process;
#  3. AP-MAE at the paper config: training images/s at batch 60 (apmae mae
#     bench) and encoding patterns/s (apmae store embed, the streaming mode's
#     extra work per pattern, on a synthetic N = 256 store).
#   bench/scale.sh [path/to/apmae]     (THREADS=2 ROUNDS=3 STEPS=20 OUT=...)
set -euo pipefail
cd "$(dirname "$0")/.."
APMAE=${1:-build/bin/apmae}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-20}
CACHE=${BENCH_CACHE:-build/bench-models}
OUT=${OUT:-build/bench-scale.jsonl}
TOOL=$(dirname "$APMAE")/../tests/store_writer_tool
PY=/usr/bin/python3
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$CACHE"
: > "$OUT"
S=$CACHE/scale.h5
[ -f "$S" ] || "$TOOL" write "$S" --total 40 --n 256 --layers 2 --heads 3 --dtype bf16 >/dev/null

# 1. strong scaling: ranks threads. CPU seconds (user + system of the whole
# job, mpirun's ranks included) beside the wall clock: on a shared machine a
# job with more threads also takes a larger share of the cores from the
# others, which the CPU time per image does not reward.
train() {
  local R=$1 T=$2 dir=$CACHE/scale_train
  rm -rf "$dir"
  local cmd=("$APMAE" --quiet mae train --store "$S" --config small --batch 60 --steps "$STEPS" --out "$dir"
             --threads "$T" --eval-every "$STEPS" --eval-patterns 12 --checkpoint-every "$STEPS")
  # --bind-to none: Open MPI would otherwise pin each of 2 ranks to one core, T threads and all
  [ "$R" = 1 ] || cmd=(mpirun --allow-run-as-root --oversubscribe --bind-to none -n "$R" "${cmd[@]}")
  /usr/bin/time -f "%e %U %S" -o "$CACHE/scale_time" "${cmd[@]}" > "$CACHE/scale_train.json"
  $PY - "$(cat "$CACHE/scale_train.json")" "$R" "$T" $(cat "$CACHE/scale_time") >>"$OUT" <<'PY'
import json, sys
j, (R, T), (wall, user, system) = json.loads(sys.argv[1]), map(int, sys.argv[2:4]), map(float, sys.argv[4:7])
images = j["step"] * 60
print(json.dumps({"bench": "train", "ranks": R, "threads": T, "steps": j["step"], "images_per_s": j["images_per_s"],
                  "wall_s": wall, "cpu_s": user + system, "cpu_ms_per_image": 1000 * (user + system) / images}))
PY
}
for round in $(seq "$ROUNDS"); do
  for rt in "1 1" "1 2" "2 1" "2 2"; do train $rt; tail -n1 "$OUT"; done
done

# 2. the LM forward pass at the published widths: name hidden heads kv intermediate
lm() {
  local dir=$CACHE/sc2-$1-1layer
  [ -f "$dir/model.safetensors" ] || $PY tools/make_random_lm.py --hidden "$2" --layers 1 --heads "$3" \
      --kv-heads "$4" --intermediate "$5" --vocab 49152 --tie --dtype bf16 --seed 1 --out "$dir" >/dev/null
  local json
  json=$(OMP_NUM_THREADS=$THREADS "$APMAE" lm bench --model "$dir" --tokens 256 --iters 3)
  $PY -c 'import json, sys; j = json.loads(sys.argv[1]); j.update(bench="lm", model=sys.argv[2]); print(json.dumps(j))' \
      "$json" "$1" | tee -a "$OUT"
}
lm 3b 3072 24 2 12288
lm 7b 4608 36 4 18432
lm 15b 6144 48 4 24576

# 3. AP-MAE, paper config: training, and encoding (streaming mode)
json=$(OMP_NUM_THREADS=$THREADS "$APMAE" mae bench --config paper --batch 60 --steps 3)
$PY -c 'import json, sys; j = json.loads(sys.argv[1]); j.update(bench="mae"); print(json.dumps(j))' "$json" | tee -a "$OUT"
E=$CACHE/scale_embed.h5
rm -f "$E" && cp "$S" "$E"
rm -rf "$CACHE/mae_paper" && "$APMAE" --quiet mae init --config paper --out "$CACHE/mae_paper"
t0=$(date +%s.%N)
OMP_NUM_THREADS=$THREADS "$APMAE" --quiet store embed "$E" --model "$CACHE/mae_paper" --batch 60
t1=$(date +%s.%N)
$PY - "$("$APMAE" store info "$E" --json)" "$t0" "$t1" "$THREADS" <<'PY' | tee -a "$OUT"
import json, sys
info, secs = json.loads(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2])
n = info["samples"] * info["num_layers"] * info["num_heads"]
print(json.dumps({"bench": "embed", "threads": int(sys.argv[4]), "patterns": n, "seconds": secs,
                  "patterns_per_s": n / secs,
                  "embedding_bytes_per_pattern": info["embeddings"]["bytes"] / n, "dim": info["embeddings"]["dim"]}))
PY
