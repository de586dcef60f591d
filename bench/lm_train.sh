#!/usr/bin/env bash
# LM training benchmark (issue 4): training steps (forward, backward, gradient
# clipping, AdamW; float32) of the `small` architecture — hidden 256, 6 layers,
# 8 heads with 2 KV heads, intermediate 1024 — on batches of 16 x 256 random
# tokens, vocabularies of 8192 and 16384. apmae (`lm train-bench`: best step
# after a warm-up, GFLOP/s and the sgemm rate on the MLP's product shape
# measured in the same run) against PyTorch eager (bench/torch_lm_train.py)
# on the same threads.
#   bench/lm_train.sh [path/to/apmae]     (THREADS=2 BATCH=16 SEQ=256 STEPS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
APMAE=${1:-build/bin/apmae}
THREADS=${THREADS:-2}
BATCH=${BATCH:-16}
SEQ=${SEQ:-256}
STEPS=${STEPS:-3}
PY=/usr/bin/python3
echo "| vocab | threads | apmae tokens/s | GFLOP/s | sgemm GFLOP/s | share of sgemm | torch tokens/s | ratio |"
for vocab in 8192 16384; do
  ours=$(OMP_NUM_THREADS=$THREADS "$APMAE" lm train-bench --config small --vocab $vocab --batch $BATCH \
      --seq-len $SEQ --steps $STEPS)
  torch=$(OMP_NUM_THREADS=$THREADS $PY bench/torch_lm_train.py --hidden 256 --layers 6 --heads 8 --kv-heads 2 \
      --intermediate 1024 --vocab $vocab --batch $BATCH --seq-len $SEQ --steps $STEPS --threads $THREADS)
  echo "$ours" >&2
  echo "$torch" >&2
  $PY - "$ours" "$torch" <<'PYEOF'
import json, sys
a, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"| {a['vocab']} | {a['threads']} | {a['tokens_per_s']:.0f} | {a['gflops']:.1f} | {a['sgemm_gflops']:.1f} | "
      f"{100 * a['sgemm_share']:.0f}% | {t['tokens_per_s']:.0f} | {a['tokens_per_s'] / t['tokens_per_s']:.2f}x |")
PYEOF
done
