#!/usr/bin/env bash
# AP-MAE embeddings from the command line: `store embed` (progress, rerun,
# refusals), streaming extraction (--embed-with, --embeddings-only), what
# `store info` says about them, the layout as h5py reads it (docs/store.md),
# and the clear error of exporting a pattern from an embeddings-only store.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; M=fixtures/lm/f32_gqa_untied; PY=/usr/bin/python3
rm -rf "$T" && mkdir -p "$T"
. ./testlib.sh
export OMP_NUM_THREADS=1
"$B" --quiet mae init --config fixtures/store/mae_n16.json --seed 1 --out "$T/mae" || fail "mae init"
"$B" --quiet mae init --config fixtures/store/mae_n16.json --seed 2 --out "$T/mae_other" || fail "mae init other"
"$B" --quiet mae init --config fixtures/store/mae_n32.json --seed 1 --out "$T/mae32" || fail "mae init 32"
for i in 0 1 2 3 4 5 6; do
  printf '{"id":"t-%d","task":"identifiers","source":"A.java","start":1,"end":2,"label_id":%d,"seed":1,"input_ids":[3,%d,7,9,11,13,2,5,6,7,8,9,10,11,12,2]}\n' \
    $i $((i+5)) $((i+20))
done > "$T/sc.jsonl"

# store embed on an extracted store, then again: nothing to do
expect_ok "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/s.h5"
expect_ok "$B" store embed "$T/s.h5" --model "$T/mae" --batch 3
grep -q "embed: 100% 7/7" "$T/err" || fail "no progress bar: $(cat "$T/err")"
expect_ok "$B" store embed "$T/s.h5" --model "$T/mae"
grep -q "already complete" "$T/err" || fail "rerun did not say it was complete: $(cat "$T/err")"
expect_ok "$B" store info "$T/s.h5"
grep -q "embeddings: 7 of 7 samples, AP-MAE $T/mae (D = 16" "$T/out" || fail "info: $(cat "$T/out")"
expect_fail "already holds embeddings from another model" "$B" store embed "$T/s.h5" --model "$T/mae_other"
expect_fail "max_length 32), but $T/s.h5 has N = 16" "$B" store embed "$T/s.h5" --model "$T/mae32"
expect_fail "not 'default' or 'reference'" "$B" store embed "$T/s.h5" --model "$T/mae" --compat other
expect_fail "missing required flag --model" "$B" store embed "$T/s.h5"
$PY - "$T/s.h5" "$T/mae" <<'PY' || fail "h5py view of /embeddings"
import json, sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
e = f["embeddings"]
assert e["cls"].shape == (7, 2, 4, 16) and e["mean"].shape == (7, 2, 4, 16), e["cls"].shape
assert e["cls"].dtype == np.float32
assert e.attrs["model_id"] == sys.argv[2] and e.attrs["dim"] == 16 and e.attrs["compat"] == "default"
assert len(e.attrs["model_hash"]) == 16 and json.loads(e.attrs["model_config"])["max_length"] == 16
assert f.attrs["patterns"] == 1 and f["patterns"].shape[0] == 7 and list(f["samples/index"][:]) == list(range(7))
assert np.isfinite(e["cls"][:]).all() and np.abs(e["cls"][:] - e["mean"][:]).max() > 1e-3
PY

# streaming: embeddings only
expect_ok "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/e.h5" --embed-with "$T/mae" --embeddings-only
expect_ok "$B" store info "$T/e.h5" --json
$PY - "$T/out" <<'PY' || fail "info --json of an embeddings-only store: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["has_patterns"] is False and d["samples"] == 7 and d["patterns"] == 0, d
assert d["embeddings"]["samples"] == 7 and d["embeddings"]["dim"] == 16 and d["embeddings"]["compat"] == "default", d
PY
expect_ok "$B" store info "$T/e.h5"
grep -q "patterns: none" "$T/out" || fail "info does not say the patterns are absent: $(cat "$T/out")"
expect_fail "keeps no attention patterns, only their AP-MAE embeddings" \
  "$B" store export "$T/e.h5" --sample 0 --layer 0 --head 0 --out "$T/x.png"
[ ! -e "$T/x.png" ] || fail "a failed export left a file"
$PY -c 'import h5py,sys; f=h5py.File(sys.argv[1],"r"); assert "patterns" not in f and f["embeddings/cls"].shape == (7,2,4,16)' \
  "$T/e.h5" || fail "h5py: an embeddings-only store has /patterns or lacks /embeddings"
expect_ok "$B" store embed "$T/e.h5" --model "$T/mae"
grep -q "already complete" "$T/err" || fail "store embed on a streamed store: $(cat "$T/err")"
expect_fail "keeps no patterns" "$B" store embed "$T/e.h5" --model "$T/mae_other"
expect_ok "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/e.h5" --embed-with "$T/mae" --embeddings-only
grep -q "already complete" "$T/err" || fail "rerun of streaming extraction: $(cat "$T/err")"
expect_fail "another model" "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/e.h5" \
  --embed-with "$T/mae_other" --embeddings-only
expect_fail "another run" "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/e.h5"

# streaming, keeping the patterns too
expect_ok "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/b.h5" --embed-with "$T/mae" --embed-batch 5
expect_ok "$B" store info "$T/b.h5" --json
grep -q '"has_patterns":[[:space:]]*true' "$T/out" && grep -q '"dim":[[:space:]]*16' "$T/out" || fail "info: $(cat "$T/out")"
expect_ok "$B" store export "$T/b.h5" --sample 1 --layer 1 --head 3 --out "$T/b.png"

# flag errors
expect_fail "--embeddings-only needs --embed-with" "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/z.h5" --embeddings-only
expect_fail "go with --embed-with" "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/z.h5" --compat reference
expect_fail "max_length 32" "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/z.h5" --embed-with "$T/mae32"
[ ! -e "$T/z.h5" ] || fail "a refused streaming extraction created its store"
finish cli_embed
