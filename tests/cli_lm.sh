#!/usr/bin/env bash
# `apmae lm`: bad input gets a clear message and a non-zero exit, never a crash.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; M=fixtures/lm/f32_gqa_untied
mkdir -p "$T"
fails=0
# expect_fail EXPECTED_TEXT CMD...: non-zero exit (not a signal) and the text on stderr
expect_fail() {
  local want=$1; shift
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ] || ! grep -qF -- "$want" "$T/err"; then
    echo "FAIL (rc=$rc): $* -> $(cat "$T/err")"; fails=$((fails+1))
  fi
}
expect_ok() {
  "$@" >"$T/out" 2>"$T/err" || { echo "FAIL: $* -> $(cat "$T/err")"; fails=$((fails+1)); }
}
expect_ok "$B" lm forward --model $M --ids 5,6,7 --out "$T/f.safetensors"
[ -s "$T/f.safetensors" ] || { echo "FAIL: no output"; fails=$((fails+1)); }
expect_ok "$B" lm --help
expect_ok "$B" lm forward --help
grep -q -- "--ablate" "$T/out" || { echo "FAIL: forward --help lacks --ablate"; fails=$((fails+1)); }
expect_fail "outside the vocabulary" "$B" lm forward --model $M --ids 5,101 --out "$T/x.safetensors"
expect_fail "--ids" "$B" lm forward --model $M --ids "" --out "$T/x.safetensors"
expect_fail "--ids" "$B" lm forward --model $M --ids 1,,2 --out "$T/x.safetensors"
expect_fail "exactly one of --ids and --text" "$B" lm forward --model $M --out "$T/x.safetensors"
expect_fail "missing required flag --out" "$B" lm forward --model $M --ids 1
expect_fail "does not exist" "$B" lm forward --model $M --ids 1 --ablate 2:0 --out "$T/x.safetensors"
expect_fail "expected L:H" "$B" lm forward --model $M --ids 1 --ablate 1 --out "$T/x.safetensors"
expect_fail "not a model directory" "$B" lm forward --model "$T/none" --ids 1 --out "$T/x.safetensors"
expect_fail "tokenizer" "$B" lm forward --model $M --text "int x;" --out "$T/x.safetensors"
expect_fail "unknown flag" "$B" lm forward --model $M --ids 1 --out "$T/x.safetensors" --bogus
expect_fail "unknown 'lm' subcommand" "$B" lm frobnicate
expect_fail "cannot create" "$B" lm forward --model $M --ids 1 --out "$T/no/such/dir/x.safetensors"
expect_fail "--tokens" "$B" lm bench --model $M --tokens 0
# A model whose weights file was cut short
mkdir -p "$T/trunc" && cp $M/config.json "$T/trunc/" && head -c 3000 $M/model.safetensors > "$T/trunc/model.safetensors"
expect_fail "model.safetensors" "$B" lm forward --model "$T/trunc" --ids 1 --out "$T/x.safetensors"
expect_ok "$B" lm bench --model $M --tokens 8 --iters 1
grep -q '"tokens_per_s"' "$T/out" || { echo "FAIL: bench prints no tokens_per_s"; fails=$((fails+1)); }
echo "cli_lm: $fails failure(s)"
[ $fails -eq 0 ]
