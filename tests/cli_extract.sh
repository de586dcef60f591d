#!/usr/bin/env bash
# `apmae extract`: a run, its rerun (nothing to do), export of a stored
# pattern, and bad input with clear messages.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; M=fixtures/lm/f32_gqa_untied
rm -rf "$T" && mkdir -p "$T"
. ./testlib.sh
for i in 0 1 2 3 4 5; do
  printf '{"id":"t-%d","task":"identifiers","source":"A.java","start":1,"end":2,"label_id":%d,"seed":1,"input_ids":[3,%d,7,9,11,13,2]}\n' $i $((i+5)) $((i+20))
done > "$T/sc.jsonl"
"$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/s.h5" 2>"$T/err" || fail "extract: $(cat "$T/err")"
"$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/s.h5" 2>"$T/err" || fail "rerun"
grep -q "already complete" "$T/err" || fail "rerun did not say it was complete: $(cat "$T/err")"
"$B" store info "$T/s.h5" --json > "$T/info.json" || fail "store info"
grep -qE '"samples":[[:space:]]*6,' "$T/info.json" || fail "info: $(cat "$T/info.json")"
"$B" store export "$T/s.h5" --scenario t-3 --layer 1 --head 2 --out "$T/p.png" 2>"$T/err" && [ -s "$T/p.png" ] \
  || fail "export: $(cat "$T/err")"
expect_fail "cannot open scenarios" "$B" extract --model $M --scenarios "$T/none.jsonl" --out "$T/x.h5"
expect_fail "per-task:K" "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/x.h5" --balance 10
expect_fail "exclude each other" "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/x.h5" --balance per-task:4 --correct-only
expect_fail "--dtype" "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/x.h5" --dtype f64
expect_fail "another run" "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/s.h5" --correct-only
expect_fail "not a model directory" "$B" extract --model "$T/nomodel" --scenarios "$T/sc.jsonl" --out "$T/x.h5"
echo "garbage" > "$T/bad.jsonl"
expect_fail "bad.jsonl:1" "$B" extract --model $M --scenarios "$T/bad.jsonl" --out "$T/y.h5"
echo "not hdf5" > "$T/foreign.h5"
expect_fail "foreign.h5" "$B" extract --model $M --scenarios "$T/sc.jsonl" --out "$T/foreign.h5"
finish cli_extract
