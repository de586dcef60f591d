#!/usr/bin/env bash
# LM forward benchmark (issue 2): a 256-token forward with attention capture
# on a StarCoder2-architecture model of hidden 1024, 8 layers, 16 heads (4 KV),
# intermediate 4096, vocabulary 49152, random weights, bf16 and f32 checkpoints.
# For each: apmae's tokens/s and GFLOP/s with the sgemm rate measured in the
# same process, and PyTorch eager (tools/starcoder2_ref.py, float32, attention
# probabilities returned) on the same checkpoint and thread count.
#   bench/lm_forward.sh [path/to/apmae]     (THREADS=2 TOKENS=256 ITERS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
APMAE=${1:-build/bin/apmae}
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-256}
ITERS=${ITERS:-5}
CACHE=${BENCH_CACHE:-build/bench-models}
PY=/usr/bin/python3
mkdir -p "$CACHE"
for dt in bf16 f32; do
  dir=$CACHE/lm1024-$dt
  [ -f "$dir/model.safetensors" ] || $PY tools/make_random_lm.py --hidden 1024 --layers 8 --heads 16 \
      --kv-heads 4 --intermediate 4096 --vocab 49152 --tie --dtype $dt --seed 1 --out "$dir" >/dev/null
  ours=$(OMP_NUM_THREADS=$THREADS "$APMAE" lm bench --model "$dir" --tokens $TOKENS --iters $ITERS)
  torch=$(OMP_NUM_THREADS=$THREADS $PY bench/torch_lm_forward.py --model "$dir" --tokens $TOKENS \
      --iters $ITERS --threads $THREADS)
  echo "$ours"
  echo "$torch"
  $PY - "$ours" "$torch" "$dt" "$(du -m "$dir/model.safetensors" | cut -f1)" <<'PYEOF'
import json, sys
a, t, dt, size = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"| {dt} | {a['threads']} | {a['tokens_per_s']:.1f} | {a['gflops']:.1f} | {a['sgemm_gflops']:.1f} | "
      f"{100*a['sgemm_share']:.0f}% | {t['tokens_per_s']:.1f} | {a['tokens_per_s']/t['tokens_per_s']:.2f}x | "
      f"{a['peak_rss_mb']:.0f} MB (file {size} MB) |")
PYEOF
done
