#!/usr/bin/env bash
# `apmae mine`: clear errors for bad input, counted skips for bad JSONL rows,
# byte-identical output for the same arguments, stats beside the output.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; TOK=fixtures/mine/tokenizer.json
mkdir -p "$T"
. ./testlib.sh

# A corpus: the fixtures and 20 generated classes.
C="$T/corpus"; rm -rf "$C"; mkdir -p "$C/gen"; cp fixtures/mine/*.java "$C/"
for i in $(seq 10 29); do
  printf 'package gen;\n\nclass C%s {\n    int f(int a) {\n        if (a != %s) { a += 1; }\n        return g(a * 2, "s%s", true) + 1.5;\n    }\n}\n' $i $i $i > "$C/gen/C$i.java"
done
MINE=("$B" mine --corpus "$C" --tokenizer $TOK --per-task 4 --max-length 24 --seed 9)

expect_ok "$B" mine --help
grep -qF -- "--per-task" "$T/out" || fail "mine --help lacks --per-task"
expect_ok "${MINE[@]}" --out "$T/a.jsonl"
grep -qF "identifiers" "$T/err" || fail "no per-task summary on stderr"
[ -s "$T/a.stats.json" ] || fail "no stats file beside the output"
expect_ok env OMP_NUM_THREADS=1 "${MINE[@]}" --out "$T/b.jsonl"
expect_ok env OMP_NUM_THREADS=2 "${MINE[@]}" --out "$T/c.jsonl"
cmp -s "$T/a.jsonl" "$T/b.jsonl" || fail "two runs differ"
cmp -s "$T/a.jsonl" "$T/c.jsonl" || fail "1 and 2 threads differ"
cmp -s "$T/a.stats.json" "$T/b.stats.json" || fail "stats of two runs differ"
# 15 tasks x 4 scenarios, each with 24 input ids; the stats say every quota is met.
/usr/bin/python3 - "$T/a.jsonl" "$T/a.stats.json" <<'PY' || fail "output or stats malformed"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 60, len(rows)
for r in rows:  # <fim_prefix> P <fim_suffix> S <fim_middle> (ids 1, 3, 2), and no other FIM token
    ids, p = r["input_ids"], r["prefix_tokens"]
    assert len(ids) == 24 and p + r["suffix_tokens"] == 21, r
    assert [i for i, x in enumerate(ids) if x in (1, 2, 3)] == [0, 1 + p, 23] and ids[1 + p] == 3, r
assert {r["task"] for r in rows} == {"identifiers", "string_literals", "boolean_literals", "numeric_literals",
    "function_call", "function_name", "closing_bracket", "eol", "keywords", "mathematical_operators",
    "boolean_operators", "assignment_operators", "stop", "random", "noise"}
assert rows[0]["id"] == "identifiers-000000" and rows[3]["id"] == "identifiers-000003"
for r in rows:
    if r["task"] == "noise":
        assert r["label_id"] is None and r["source"] is None
    else:
        src = open(sys.argv[1].rsplit("/", 1)[0] + "/corpus/" + r["source"], "rb").read()
        assert src[r["start"]:r["end"]].decode() == r["target"], r
st = json.load(open(sys.argv[2]))
assert all(t["quota_met"] and t["scenarios"] == 4 for t in st["tasks"].values()), st["tasks"]
assert st["files"]["read"] == 23, st["files"]
PY
expect_ok "${MINE[@]}" --seed 10 --out "$T/d.jsonl"
cmp -s "$T/a.jsonl" "$T/d.jsonl" && fail "another seed gives the same output"
# Selection by glob; reference mode changes the keywords.
expect_ok "${MINE[@]}" --tasks keywords --include 'Uni*' --out "$T/e.jsonl" --compat reference
grep -q '"source":"Unicode.java"' "$T/e.jsonl" || fail "--include Uni* did not read Unicode.java"
grep -v -q '"source":"Unicode.java"' "$T/e.jsonl" && fail "--include Uni* read other files"
expect_ok "${MINE[@]}" --tasks eol --exclude 'gen/**' --out "$T/f.jsonl"
[ "$(wc -l < "$T/f.jsonl")" -eq 2 ] || fail "--exclude gen/** should leave the 2 fixture files with ;\\n"

# JSONL corpus with bad rows: counted skips with the line number, not fatal.
printf '%s\n' '{"content": "class A { int x = 1; int y = 2; int z = 3; }"}' 'not json' '{"code": "x"}' > "$T/rows.jsonl"
expect_ok "$B" mine --corpus "$T/rows.jsonl" --tokenizer $TOK --tasks identifiers --per-task 1 --max-length 16 --out "$T/g.jsonl"
grep -qF "rows.jsonl:2: not valid JSON" "$T/err" || fail "no warning naming line 2"
grep -qF "rows.jsonl:3: no string field \"content\"" "$T/err" || fail "no warning naming line 3"
grep -q '"unreadable": 2' "$T/g.stats.json" || fail "bad rows not counted"
grep -q '"source":"line:1"' "$T/g.jsonl" || fail "no scenario from line 1"

# Errors.
expect_fail "does not exist" "$B" mine --corpus "$T/none.zip" --tokenizer $TOK --out "$T/x.jsonl"
printf 'plain text, not an archive\n' > "$T/bogus.zip"
expect_fail "not a readable archive" "$B" mine --corpus "$T/bogus.zip" --tokenizer $TOK --out "$T/x.jsonl"
expect_fail "unknown task 'idents'; valid tasks: all, identifiers" "${MINE[@]}" --tasks idents --out "$T/x.jsonl"
expect_fail "--max-length: must be at least 16" "${MINE[@]}" --max-length 15 --out "$T/x.jsonl"
expect_fail "--per-task: must be at least 1" "${MINE[@]}" --per-task 0 --out "$T/x.jsonl"
expect_fail "--compat" "${MINE[@]}" --compat quirky --out "$T/x.jsonl"
expect_fail "missing required flag --tokenizer" "$B" mine --corpus "$C" --out "$T/x.jsonl"
sed 's/<fim_prefix>/<fim_start>/g' $TOK > "$T/no_fim.json"
expect_fail "no <fim_prefix> token" "$B" mine --corpus "$C" --tokenizer "$T/no_fim.json" --out "$T/x.jsonl"
expect_fail "cannot create" "${MINE[@]}" --out "$T/no/such/dir/x.jsonl"
finish cli_mine
