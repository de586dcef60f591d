#!/usr/bin/env bash
# `make demo`: the study's pipeline end to end on the defaults, into out/demo/:
#   1. fill-in-the-middle scenarios mined from the JDK sources' java.xml module
#      (held out from the shipped model's training), every task;
#   2. the shipped model models/java-small (a StarCoder2-architecture model
#      trained by apmae itself): accuracy per task, one forward pass with
#      every head's attention captured, and again with two heads ablated;
#   3. extraction of every scenario into the HDF5 pattern store (resumable),
#      its summary, and one pattern as an image;
#   4. a fresh AP-MAE (`small` config) trained briefly on those patterns to
#      show training, evaluated against the mean-patch and head-mean
#      baselines with reconstruction figures;
#   5. the shipped AP-MAE models/java-small-apmae (trained on patterns of other
#      JDK modules) evaluated on every pattern of the store, and the store's
#      patterns encoded with it into embeddings.
set -euo pipefail
cd "$(dirname "$0")/.."
APMAE=${1:-build/bin/apmae}
OUT=out/demo
MODEL=models/java-small
MAE=models/java-small-apmae
CORPUS=/usr/lib/jvm/openjdk-17/lib/src.zip
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*" >&2; }

step "tokenizer of $MODEL"
"$APMAE" tokenize --tokenizer "$MODEL/tokenizer.json" --text 'for (int i = 0; i < 10; i++) { sum += a[i]; }'

step "mine: 20 scenarios per task from $CORPUS (java.xml module), N = 256"
"$APMAE" mine --corpus "$CORPUS" --tokenizer "$MODEL/tokenizer.json" --tasks all --per-task 20 \
  --max-length 256 --seed 1 --include 'java.xml/**' --out "$OUT/scenarios.jsonl"
head -c 400 "$OUT/scenarios.jsonl"; echo

step "lm eval: first-token accuracy of $MODEL per task"
"$APMAE" lm eval --model "$MODEL" --scenarios "$OUT/scenarios.jsonl" > "$OUT/lm_eval.json"
/usr/bin/python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["scenarios"]
print("overall %.1f%% of %d" % (100*s["overall"]["accuracy"], s["overall"]["n"]))
for t,v in s["tasks"].items(): print("  %-24s %5.1f%% of %d" % (t, 100*v["accuracy"], v["n"]))' "$OUT/lm_eval.json"

step "lm forward on the first scenario: logits and all attention patterns, then with two heads ablated"
ids=$(head -n 1 "$OUT/scenarios.jsonl" | /usr/bin/python3 -c 'import json,sys; print(",".join(map(str, json.load(sys.stdin)["input_ids"])))')
"$APMAE" lm forward --model "$MODEL" --ids "$ids" --out "$OUT/forward.safetensors"
"$APMAE" lm forward --model "$MODEL" --ids "$ids" --ablate 0:0,1:3 --out "$OUT/forward_ablated.safetensors"
/usr/bin/python3 tools/check_safetensors.py "$OUT/forward.safetensors"

step "extract: every scenario through the model, patterns into $OUT/store.h5 (resumable)"
"$APMAE" extract --model "$MODEL" --scenarios "$OUT/scenarios.jsonl" --out "$OUT/store.h5"
"$APMAE" store info "$OUT/store.h5"
"$APMAE" store export "$OUT/store.h5" --sample 0 --layer 3 --head 0 --out "$OUT/pattern_s0_l3_h0.png"

step "mae train: a fresh AP-MAE (small config) on the store's patterns, 300 steps, to show training (resumable)"
if [ -f "$OUT/mae/train_state.safetensors" ]; then resume=--resume; else resume=; fi
"$APMAE" mae train --store "$OUT/store.h5" --config small --steps 300 --batch 60 --out "$OUT/mae" $resume

step "mae eval: the fresh AP-MAE on its held-out samples, against the mean-patch and head-mean baselines"
"$APMAE" mae eval --model "$OUT/mae" --store "$OUT/store.h5" --by task --figures 2 --out "$OUT/mae_eval"

step "mae eval: the shipped AP-MAE $MAE on every sample of the store (modules it never saw)"
"$APMAE" mae eval --model "$MAE" --store "$OUT/store.h5" --by layer --figures 2 --out "$OUT/mae_shipped_eval"

step "store embed: cls and mean encodings of every pattern into the store, by the shipped AP-MAE"
"$APMAE" store embed "$OUT/store.h5" --model "$MAE"
"$APMAE" store info "$OUT/store.h5"

printf '\ndemo outputs are in %s (pattern image: pattern_s0_l3_h0.png, AP-MAE figures: mae_eval/, mae_shipped_eval/)\n' \
  "$OUT" >&2
