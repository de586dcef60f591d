#!/usr/bin/env bash
# `apmae intervene`: help, and bad input with clear messages and a non-zero
# exit (runs on a planted store are in tests/test_intervene.c).
set -u
B=$APMAE_BIN; T=$APMAE_TMP; M=fixtures/lm/f32_gqa_untied
rm -rf "$T" && mkdir -p "$T"
. ./testlib.sh
export OMP_NUM_THREADS=1
for i in 0 1 2 3 4 5; do
  task=alpha; label=$((i+5)); [ $i -ge 4 ] && task=noise && label=null
  printf '{"id":"t-%d","task":"%s","label_id":%s,"input_ids":[3,%d,7,9,11,13,2]}\n' $i $task $label $((i+20))
done > "$T/sc.jsonl"
"$B" --quiet extract --model $M --scenarios "$T/sc.jsonl" --out "$T/s.h5" 2>"$T/err" || fail "extract: $(cat "$T/err")"
# classify's results.json for 2 layers x 4 heads (the fixture's) and for 3 x 4
shap() {
  local L=$1 H=$2 heads="" l h
  for ((l = 0; l < L; l++)); do for ((h = 0; h < H; h++)); do
    heads+="${heads:+,}{\"layer\":$l,\"head\":$h,\"mean_pos\":0.$l$h,\"mean_neg\":-0.0$h,\"mean_total\":0.1,\"mean_abs\":0.2}"
  done; done
  printf '{"num_layers":%d,"num_heads":%d,"tasks":{"alpha":{"skipped":null,"heads":[%s]},"noise":{"heads":[%s]}}}\n' \
    $L $H "$heads" "$heads"
}
shap 2 4 > "$T/shap.json"
shap 3 4 > "$T/shap34.json"
run() { "$B" intervene --model $M --store "$T/s.h5" --shap "$T/shap.json" --task alpha --out "$T/out" "$@"; }
expect_ok "$B" intervene --help
grep -q -- "--settings" "$T/out" || fail "help lacks --settings"
expect_fail "missing required flag --target" run
expect_fail "--n: item 2: must be at least 1, got 0" run --target 1 --n 1,0,2
expect_fail "--n" run --target 1 --n 1,,2
expect_fail "--settings: 'bogus' is not" run --target 1 --settings pos_only,bogus
expect_fail "--shap-set" run --target 1 --shap-set train
expect_fail "--target: must be" run --target 0
expect_fail "0 correct and 4 incorrect samples, too few for --target 1" run --target 1
expect_fail "has no label" run --target 1 --task noise
expect_fail "no results for task 'beta'" run --target 1 --task beta
expect_fail "belongs to another model" "$B" intervene --model $M --store "$T/s.h5" --shap "$T/shap34.json" \
  --task alpha --target 1 --out "$T/out"
expect_fail "none.h5" "$B" intervene --model $M --store "$T/none.h5" --shap "$T/shap.json" --task alpha \
  --target 1 --out "$T/out"
expect_fail "none.json" "$B" intervene --model $M --store "$T/s.h5" --shap "$T/none.json" --task alpha \
  --target 1 --out "$T/out"
expect_fail "cannot open scenarios" run --target 1 --scenarios "$T/none.jsonl"
finish cli_intervene
