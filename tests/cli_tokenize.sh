#!/usr/bin/env bash
# `apmae tokenize`: the CLI forms on the small fixture tokenizer, exact output,
# and clear errors with a non-zero exit (never a crash) on bad input.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; TOK=fixtures/text/tiny/tokenizer.json
mkdir -p "$T"
. ./testlib.sh
# expect_out EXPECTED CMD...: exit 0 and stdout exactly EXPECTED plus a newline
expect_out() {
  local want=$1; shift
  "$@" >"$T/out" 2>"$T/err" || { fail "$* -> $(cat "$T/err")"; return; }
  printf '%s\n' "$want" | cmp -s - "$T/out" || fail "$* printed '$(cat "$T/out")', expected '$want'"
}

# Encoding: a = 2 + 'a' = 99, "bc" = 261 (merge 3), <fim_prefix> = 1, "Ġthe" = 260.
expect_out "[99,261]" "$B" tokenize --tokenizer $TOK --text abc
expect_out "[99,1,260]" "$B" tokenize --tokenizer $TOK --text "a<fim_prefix> the"
expect_out "[]" "$B" tokenize --tokenizer $TOK --text ""
expect_out "[99,261]" "$B" tokenize --tokenizer fixtures/text/tiny --text abc   # a model directory
expect_out "[99,261]" "$B" tokenize --tokenizer=$TOK --text=abc
printf 'abc' >"$T/abc.txt"
expect_out "[99,261]" "$B" tokenize --tokenizer $TOK --file "$T/abc.txt"
: >"$T/empty.txt"
expect_out "[]" "$B" tokenize --tokenizer $TOK --file "$T/empty.txt"
# Invalid UTF-8 in a file is encoded as its lossy form (U+FFFD = EF BF BD).
printf 'a\xffb' >"$T/bad.txt"
"$B" tokenize --tokenizer $TOK --text "$(printf 'a\xef\xbf\xbdb')" >"$T/lossy" 2>/dev/null
expect_out "$(cat "$T/lossy")" "$B" tokenize --tokenizer $TOK --file "$T/bad.txt"
[ "$(cat "$T/lossy")" = "[99,241,193,191,100]" ] || fail "lossy encoding is $(cat "$T/lossy")"

# Decoding prints the text and one newline.
expect_out "abc" "$B" tokenize --tokenizer $TOK --decode --ids 99,261
expect_out "a<fim_prefix> the" "$B" tokenize --tokenizer $TOK --decode --ids 99,1,260
"$B" tokenize --tokenizer $TOK --decode --ids 2,12,13 >"$T/ctl" 2>/dev/null   # bytes 0, 10, 11
printf '\x00\n\x0b\n' | cmp -s - "$T/ctl" || fail "decode of control bytes: $(od -c "$T/ctl")"

# Batch mode: one line per input line, both ways; decode gives JSON strings.
printf '%s\n' '"abc"' '""' '"it'"'"'s \u00e9\n"' >"$T/in.jsonl"
"$B" tokenize --tokenizer $TOK --jsonl "$T/in.jsonl" >"$T/ids.jsonl" 2>"$T/err" || fail "jsonl encode: $(cat "$T/err")"
[ "$(sed -n 1p "$T/ids.jsonl")" = "[99,261]" ] && [ "$(sed -n 2p "$T/ids.jsonl")" = "[]" ] \
  && [ "$(wc -l <"$T/ids.jsonl")" -eq 3 ] || fail "jsonl encode printed $(cat "$T/ids.jsonl")"
grep -q "MB/s" "$T/err" || fail "jsonl encode reports no throughput"
"$B" tokenize --tokenizer $TOK --decode --jsonl "$T/ids.jsonl" >"$T/back.jsonl" 2>/dev/null
printf '%s\n' '"abc"' '""' '"it'"'"'s é\n"' | cmp -s - "$T/back.jsonl" \
  || fail "jsonl decode printed $(cat "$T/back.jsonl")"

"$B" tokenize --help >"$T/out" 2>&1 || fail "--help exits non-zero"
grep -q -- "--jsonl" "$T/out" && grep -q "newline" "$T/out" || fail "--help lacks --jsonl or the output format"

# Errors.
expect_fail "missing required flag --tokenizer" "$B" tokenize --text abc
expect_fail "exactly one of --text, --file and --jsonl" \
  "$B" tokenize --tokenizer $TOK --text a --file "$T/abc.txt"
expect_fail "exactly one of --text, --file and --jsonl" "$B" tokenize --tokenizer $TOK
expect_fail "--ids is for --decode" "$B" tokenize --tokenizer $TOK --ids 1,2
expect_fail "not --text or --file" "$B" tokenize --tokenizer $TOK --decode --text abc
expect_fail "--decode needs exactly one of --ids and --jsonl" "$B" tokenize --tokenizer $TOK --decode
expect_fail "--ids: empty list" "$B" tokenize --tokenizer $TOK --decode --ids ""
expect_fail "--ids" "$B" tokenize --tokenizer $TOK --decode --ids 1,x
expect_fail "--ids" "$B" tokenize --tokenizer $TOK --decode --ids 1,,2
expect_fail "token id 277 (position 1) is not in the vocabulary" "$B" tokenize --tokenizer $TOK --decode --ids 5,277
expect_fail "token id -1" "$B" tokenize --tokenizer $TOK --decode --ids -1
expect_fail "out of range" "$B" tokenize --tokenizer $TOK --decode --ids 99999999999
expect_fail "$T/missing.txt: cannot open" "$B" tokenize --tokenizer $TOK --file "$T/missing.txt"
expect_fail "$T/none.json: cannot open" "$B" tokenize --tokenizer "$T/none.json" --text a
expect_fail "$T/nodir/: cannot open" "$B" tokenize --tokenizer "$T/nodir/" --text a
sed 's/"BPE"/"WordPiece"/' $TOK >"$T/wordpiece.json"
expect_fail "$T/wordpiece.json: unsupported tokenizer: model type 'WordPiece'" \
  "$B" tokenize --tokenizer "$T/wordpiece.json" --text a
printf '%s\n' '"ok"' '[1,2]' >"$T/mixed.jsonl"
expect_fail "$T/mixed.jsonl:2: expected a JSON string" "$B" tokenize --tokenizer $TOK --jsonl "$T/mixed.jsonl"
printf '%s\n' '[1,2]' '[1,"x"]' >"$T/badids.jsonl"
expect_fail "$T/badids.jsonl:2" "$B" tokenize --tokenizer $TOK --decode --jsonl "$T/badids.jsonl"
printf '%s\n' '[1,2]' '[1,500]' >"$T/rangeids.jsonl"
expect_fail "$T/rangeids.jsonl:2: token id 500" "$B" tokenize --tokenizer $TOK --decode --jsonl "$T/rangeids.jsonl"
expect_fail "unexpected argument 'extra'" "$B" tokenize --tokenizer $TOK --text a extra

finish cli_tokenize
