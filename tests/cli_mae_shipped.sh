#!/usr/bin/env bash
# The shipped AP-MAE, models/java-small-apmae: on the shipped LM's patterns of
# three scenarios of the held-out JDK modules (one of each) (fixtures/mae/), which it never
# saw, it reconstructs far better than the mean-patch baseline, reports the
# head-mean baseline from its cached table alone (no training store here),
# and encodes a store.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; R=$APMAE_ROOT; PY=/usr/bin/python3
MAE=$R/models/java-small-apmae
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
rm -rf "$T" && mkdir -p "$T"
. ./testlib.sh

for f in config.json model.safetensors head_mean.safetensors train_args.json README.md; do
  [ -s "$MAE/$f" ] || fail "$MAE/$f is missing"
done
expect_ok "$B" extract --model "$R/models/java-small" --scenarios fixtures/mae/heldout_modules3.jsonl \
  --out "$T/s.h5"
"$B" mae eval --model "$MAE" --store "$T/s.h5" --by layer --json >"$T/eval.json" 2>"$T/err" \
  || fail "mae eval: $(cat "$T/err")"
grep -q "head-mean baseline left out" "$T/err" && fail "the cached head-mean table was not used: $(cat "$T/err")"
$PY - "$T/eval.json" "$MAE/train_args.json" <<'EOF' || fail "eval.json: $(cat "$T/eval.json")"
import json, sys
e, args = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert e["split"] == "all" and e["samples"] == 3 and e["patterns"] == 3 * 6 * 8, e
# the table of the training split: every sample of the training store but the held-out ones
train = e["head_mean"]["training_samples"]
assert 0.9 * args["store_samples"] < train < args["store_samples"], (train, args["store_samples"])
# a trained model: far below the mean-patch baseline (an untrained one is above it)
assert e["mse"] < 0.5 * e["baseline_mse"], e
assert abs(e["head_mean_ratio"] - e["mse"] / e["head_mean_mse"]) < 1e-9
for layer in map(str, range(6)):
    assert e["by_layer"][layer]["head_mean_mse"] > 0, layer
EOF

expect_ok "$B" store embed "$T/s.h5" --model "$MAE"
"$B" store info "$T/s.h5" >"$T/info" 2>&1 || fail "store info: $(cat "$T/info")"
grep -q "^embeddings: none" "$T/info" && fail "no embeddings after store embed: $(cat "$T/info")"
finish cli_mae_shipped
