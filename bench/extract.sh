#!/usr/bin/env bash
# Extraction benchmark (issue 5): samples/s of `apmae extract` (forward pass,
# last-position statistics, every head's pattern into the store with the
# default bf16 encoding) and the share of the wall time spent outside the
# forward pass, for
#   * the shipped model models/java-small (6 layers x 8 heads) on scenarios
#     mined with its own tokenizer, and
#   * a random-weight model of hidden 1024 x 8 layers x 16 heads (as in
#     bench/lm_forward.sh) on scenarios mined with the GPT-2-based
#     StarCoder2-style tokenizer (bench/mine_bench.sh makes both),
# N = 256, from the held-out modules of the JDK source archive.
#   bench/extract.sh [path/to/apmae]     (THREADS=2 SAMPLES=120)
set -euo pipefail
cd "$(dirname "$0")/.."
APMAE=${1:-build/bin/apmae}
THREADS=${THREADS:-2}
SAMPLES=${SAMPLES:-120}
CACHE=${BENCH_CACHE:-build/bench-models}
ZIP=/usr/lib/jvm/openjdk-17/lib/src.zip
PY=/usr/bin/python3
mkdir -p "$CACHE"

# bench/lm_forward.sh's model with a vocabulary that covers the tokenizer's 50,295 ids
big=$CACHE/lm1024-v50304-bf16
[ -f "$big/model.safetensors" ] || $PY tools/make_random_lm.py --hidden 1024 --layers 8 --heads 16 \
    --kv-heads 4 --intermediate 4096 --vocab 50304 --tie --dtype bf16 --seed 1 --out "$big" >/dev/null
gpt2=$CACHE/sc2_gpt2_tokenizer.json
[ -f "$gpt2" ] || node tools/make_sc2_style_tokenizer.js "$gpt2" >/dev/null

echo "| model | layers x heads | threads | samples | samples/s | patterns/s | outside forward | bytes/pattern |"
echo "|---|---|---|---|---|---|---|---|"
run() { # name model tokenizer
  local name=$1 model=$2 tok=$3 sc=$CACHE/extract_$1.jsonl store=$CACHE/extract_$1.h5
  "$APMAE" --quiet mine --corpus "$ZIP" --include 'java.xml/**' --tokenizer "$tok" --tasks all \
      --per-task $(( (SAMPLES + 14) / 15 )) --max-length 256 --seed 3 --out "$sc" 2>/dev/null
  head -n "$SAMPLES" "$sc" > "$sc.head"
  rm -f "$store" "$store-journal"
  OMP_NUM_THREADS=$THREADS "$APMAE" extract --model "$model" --scenarios "$sc.head" --out "$store" \
      --threads "$THREADS" 2> "$store.log" >/dev/null
  local info
  info=$("$APMAE" store info "$store" --json)
  $PY - "$name" "$THREADS" "$store.log" "$info" <<'PYEOF'
import json, re, sys
name, threads, log, info = sys.argv[1], sys.argv[2], open(sys.argv[3]).read(), json.loads(sys.argv[4])
m = re.search(r"stored (\d+) samples this run .*?; ([0-9.]+) s, ([0-9.]+)% of it outside the forward pass", log)
n, secs, outside = int(m.group(1)), float(m.group(2)), float(m.group(3))
L, H = info["num_layers"], info["num_heads"]
print(f"| {name} | {L} x {H} | {threads} | {n} | {n / secs:.2f} | {n * L * H / secs:.0f} | {outside:.1f}% | "
      f"{info['bytes_per_pattern']:.0f} |")
PYEOF
}
run java-small models/java-small models/java-small/tokenizer.json
run lm1024 "$big" "$gpt2"
