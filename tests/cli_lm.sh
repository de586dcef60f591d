#!/usr/bin/env bash
# `apmae lm`: bad input gets a clear message and a non-zero exit, never a crash.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; M=fixtures/lm/f32_gqa_untied
mkdir -p "$T"
. ./testlib.sh
expect_ok "$B" lm forward --model $M --ids 5,6,7 --out "$T/f.safetensors"
[ -s "$T/f.safetensors" ] || fail "no output"
expect_ok "$B" lm --help
expect_ok "$B" lm forward --help
grep -q -- "--ablate" "$T/out" || fail "forward --help lacks --ablate"
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
grep -q '"tokens_per_s"' "$T/out" || fail "bench prints no tokens_per_s"
finish cli_lm
