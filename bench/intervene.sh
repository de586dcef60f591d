#!/usr/bin/env bash
# Intervention benchmark (issue 13): ablated forward passes per second of
# `apmae intervene` reusing the unablated pass up to each set's first ablated
# layer (the default) against running every pass from the embedding
# (--no-reuse), the two alternating ROUNDS times on the same scenarios,
# head sets and threads, for
#   * the shipped model models/java-small (6 layers x 8 heads), and
#   * the random-weight model of bench/lm_forward.sh (hidden 1024, 8 layers x
#     16 heads, 4 KV heads, intermediate 4096, vocabulary 49152, bf16).
# Each gets 256-token random-id inputs whose labels are planted (the model's
# own prediction for half of them, so K are correct and K incorrect) and a
# synthetic SHAP ranking (random figures, a third of the heads at zero):
# what the passes cost depends on where the chosen heads sit, not on what
# the ranking means. With STORE=S.h5 SHAP=DIR/results.json TASK=T, the
# shipped model runs on that study store's task and ranking instead.
#   bench/intervene.sh [path/to/apmae]   (THREADS=2 ROUNDS=2 K=10 K_BIG=1)
set -euo pipefail
cd "$(dirname "$0")/.."
APMAE=${1:-build/bin/apmae}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
K=${K:-10}
K_BIG=${K_BIG:-1}
CACHE=${BENCH_CACHE:-build/bench-models}
PY=/usr/bin/python3
export OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=PASSIVE
mkdir -p "$CACHE"
big=$CACHE/lm1024-bf16
[ -f "$big/model.safetensors" ] || $PY tools/make_random_lm.py --hidden 1024 --layers 8 --heads 16 \
    --kv-heads 4 --intermediate 4096 --vocab 49152 --tie --dtype bf16 --seed 1 --out "$big" >/dev/null

# plant NAME MODEL COUNT: a store of COUNT random-id inputs, half labelled
# with the model's own prediction, and a synthetic results.json.
plant() {
  local name=$1 model=$2 count=$3 dir=$CACHE/intervene_$1_$3
  mkdir -p "$dir"
  [ -f "$dir/store.h5" ] && [ -f "$dir/results.json" ] && return
  $PY - "$model" "$count" "$dir/raw.jsonl" <<'PYEOF'
import json, random, sys
cfg = json.load(open(sys.argv[1] + "/config.json"))
random.seed(5)
with open(sys.argv[3], "w") as f:
    for i in range(int(sys.argv[2])):
        ids = [random.randrange(cfg["vocab_size"]) for _ in range(256)]
        f.write(json.dumps({"id": "b%04d" % i, "task": "bench", "label_id": 0, "input_ids": ids}) + "\n")
PYEOF
  rm -f "$dir/raw.h5" "$dir/store.h5"
  "$APMAE" --quiet extract --model "$model" --scenarios "$dir/raw.jsonl" --out "$dir/raw.h5" >/dev/null
  $PY - "$dir" "$model" <<'PYEOF'
import h5py, json, random, sys
d, model = sys.argv[1], sys.argv[2]
cfg = json.load(open(model + "/config.json"))
pred = h5py.File(d + "/raw.h5", "r")["samples/pred_id"][:]
with open(d + "/raw.jsonl") as f, open(d + "/planted.jsonl", "w") as g:
    for i, line in enumerate(f):
        s = json.loads(line)
        s["label_id"] = int(pred[i]) if i % 2 == 0 else (int(pred[i]) + 1) % cfg["vocab_size"]
        g.write(json.dumps(s) + "\n")
L, H = cfg["num_hidden_layers"], cfg["num_attention_heads"]
random.seed(6)
heads = []
for l in range(L):
    for h in range(H):
        p, n = (0.0, 0.0) if random.random() < 1 / 3 else (random.uniform(0, 0.1), -random.uniform(0, 0.1))
        heads.append({"layer": l, "head": h, "mean_pos": p, "mean_neg": n, "mean_total": p + n, "mean_abs": p - n})
json.dump({"num_layers": L, "num_heads": H, "synthetic": True,
           "tasks": {"bench": {"skipped": None, "heads": heads}}}, open(d + "/results.json", "w"))
PYEOF
  "$APMAE" --quiet extract --model "$model" --scenarios "$dir/planted.jsonl" --out "$dir/store.h5" >/dev/null
}

# time NAME MODEL STORE SHAP TASK TARGET NLIST: ROUNDS alternating runs with and without reuse.
time_runs() {
  local name=$1 model=$2 store=$3 shap=$4 task=$5 target=$6 nlist=$7 out=$CACHE/intervene_$1_runs/out
  mkdir -p "$CACHE/intervene_$1_runs"
  for ((r = 0; r < ROUNDS; r++)); do
    for mode in reuse no-reuse; do
      rm -rf "$out-$mode-$r"
      "$APMAE" --quiet intervene --model "$model" --store "$store" --shap "$shap" --task "$task" --target "$target" \
          --n "$nlist" --out "$out-$mode-$r" $([ $mode = no-reuse ] && echo --no-reuse) >/dev/null
    done
  done
  $PY - "$name" "$out" "$ROUNDS" <<'PYEOF'
import json, sys
name, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def costs(mode):
    return [json.load(open(f"{out}-{mode}-{r}/intervene.json"))["cost"] for r in range(rounds)]
a, b = costs("reuse"), costs("no-reuse")
rate = lambda cs: sum(c["ablated_passes"] for c in cs) / sum(c["ablated_seconds"] for c in cs)
j = json.load(open(f"{out}-reuse-0/intervene.json"))
ra, rb = rate(a), rate(b)
print(f"| {name} | {j['num_layers']} x {j['num_heads']} | {a[0]['threads']} | {j['baseline']['scenarios']} | "
      f"{a[0]['head_sets']} | {a[0]['ablated_passes']} | {100 * a[0]['layers_run_fraction']:.0f}% | "
      f"{ra:.2f} | {rb:.2f} | {ra / rb:.2f}x |")
PYEOF
}

echo "| model | layers x heads | threads | scenarios | head sets | ablated passes | layers run with reuse | passes/s, reuse | passes/s, no reuse | ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|"
if [ -n "${STORE:-}" ]; then
  time_runs java-small-study models/java-small "$STORE" "$SHAP" "$TASK" "$K" 1,2,5,10,20,50,100,200,400,600,800
else
  plant java-small models/java-small $((2 * K + 2))
  d=$CACHE/intervene_java-small_$((2 * K + 2))
  time_runs java-small models/java-small "$d/store.h5" "$d/results.json" bench "$K" 1,2,5,10,20,50,100,200,400,600,800
fi
plant lm1024 "$big" $((2 * K_BIG + 2))
d=$CACHE/intervene_lm1024_$((2 * K_BIG + 2))
time_runs lm1024 "$big" "$d/store.h5" "$d/results.json" bench "$K_BIG" 1,2,5,10,20,50,100,200,400,600,800
