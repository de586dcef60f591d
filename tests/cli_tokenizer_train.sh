#!/usr/bin/env bash
# apmae tokenizer train: a BPE tokenizer learned from part of the JDK sources
# (java/util of java.base, 9 MB) must load in apmae and in the Hugging Face
# oracle (npm @huggingface/tokenizers via tools/tokenizer_oracle.js) and
# encode other Java files (java/io, not trained on) and the hostile strings
# of fixtures/text identically; it must have StarCoder2's special tokens at
# ids 0-37, the 256 bytes next, exactly --vocab-size ids, and be the same
# file whatever the thread count. Bad arguments fail with a message.
set -u
B=$APMAE_BIN; T=$APMAE_TMP/run.$$; R=$APMAE_ROOT  # per run: parallel suites do not collide
PY=/usr/bin/python3; ZIP=/usr/lib/jvm/openjdk-17/lib/src.zip
mkdir -p "$T"
. ./testlib.sh
[ -f "$ZIP" ] && [ -d "$R/third_party/node_modules/@huggingface/tokenizers" ] \
  || { echo "FAIL: $ZIP or the oracle packages are missing: run scripts/setup.sh"; exit 1; }

V=3000
OMP_NUM_THREADS=2 "$B" --quiet tokenizer train --corpus "$ZIP" --include 'java.base/java/util/**' \
  --vocab-size $V --out "$T/tok.json" >"$T/summary.json" 2>"$T/err" || fail "train: $(cat "$T/err")"
OMP_NUM_THREADS=1 "$B" --quiet tokenizer train --corpus "$ZIP" --include 'java.base/java/util/**' \
  --vocab-size $V --out "$T/tok1.json" >/dev/null 2>&1 || fail "train with one thread"
cmp -s "$T/tok.json" "$T/tok1.json" || fail "1 and 2 threads give different tokenizers"
cat "$T/summary.json"

# Texts to compare: 40 java/io files (not trained on) and the hostile strings.
"$PY" - "$ZIP" "$T/java.jsonl" <<'EOF' || fail "cannot read the JDK sources"
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = sorted(n for n in z.namelist() if n.startswith("java.base/java/io/") and n.endswith(".java"))[:40]
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for n in names:
        out.write(json.dumps(z.read(n).decode("utf-8")) + "\n")
EOF
cat "$T/java.jsonl" fixtures/text/hostile.jsonl >"$T/all.jsonl"
node "$R/tools/tokenizer_oracle.js" "$T/tok.json" --jsonl "$T/all.jsonl" --rust-compat >"$T/expect.txt" \
  || fail "the oracle cannot load or run the trained tokenizer"
"$B" --quiet tokenize --tokenizer "$T/tok.json" --jsonl "$T/all.jsonl" >"$T/got.txt" 2>"$T/err" \
  || fail "apmae tokenize: $(cat "$T/err")"

"$PY" - "$T" $V <<'EOF' || fails=$((fails+1))
import json, sys
t, V = sys.argv[1], int(sys.argv[2])
ok = True
def bad(msg):
    global ok
    print("FAIL: " + msg); ok = False
expect = open(f"{t}/expect.txt").read().split("\n")[:-1]
got = open(f"{t}/got.txt").read().split("\n")[:-1]
same = sum(e == g for e, g in zip(expect, got))
ntok = sum(len(json.loads(g)) for g in got)
print(f"oracle agreement: {same}/{len(expect)} texts, {ntok} tokens")
if len(expect) != len(got) or same != len(expect) or len(expect) < 40:
    bad("apmae and the oracle disagree on the trained tokenizer")
tok = json.load(open(f"{t}/tok.json"))
vocab = tok["model"]["vocab"]
specials = ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<repo_name>", "<file_sep>"]
if [a["content"] for a in tok["added_tokens"]][:7] != specials or len(tok["added_tokens"]) != 38:
    bad("added tokens are not StarCoder2's 38 in order")
if any(vocab[a["content"]] != a["id"] or a["id"] != i for i, a in enumerate(tok["added_tokens"])):
    bad("special token ids are not 0..37 in the vocabulary")
if len(vocab) != V or sorted(vocab.values()) != list(range(V)):
    bad(f"vocabulary has {len(vocab)} entries, ids not 0..{V - 1}")
# ByteLevel: byte b is id 38 + b, a one-character token
singles = sorted(i for s, i in vocab.items() if len(s) == 1)
if singles[:256] != list(range(38, 294)):
    bad("the 256 byte symbols are not ids 38..293")
merges = tok["model"]["merges"]
if len(merges) < V - 294:
    bad(f"{len(merges)} merges for {V - 294} merged tokens")
# every merge's parts are tokens and its result is one
for m in merges[:2000]:
    a, b = m.split(" ")
    if a not in vocab or b not in vocab or a + b not in vocab:
        bad(f"merge {m!r} is not closed over the vocabulary"); break
pre = [p["type"] for p in tok["pre_tokenizer"]["pretokenizers"]]
if pre != ["Digits", "ByteLevel"] or not tok["pre_tokenizer"]["pretokenizers"][0]["individual_digits"]:
    bad(f"pre-tokenizer {pre} is not Digits(individual) + ByteLevel")
# Java is learned: common keywords are single tokens
for w in ["public", "Ġreturn", "Ġstatic", "Ġnull"]:
    if w not in vocab:
        bad(f"{w!r} was not learned")
sys.exit(0 if ok else 1)
EOF

# Errors: too small a vocabulary, no files, missing corpus.
expect_fail "--vocab-size 200" \
  "$B" tokenizer train --corpus "$ZIP" --include 'java.base/java/util/**' --vocab-size 200 --out "$T/x.json"
expect_fail "no Java files" "$B" tokenizer train --corpus "$ZIP" --include 'nothing/**' --vocab-size 1000 --out "$T/x.json"
expect_fail "$T/missing" "$B" tokenizer train --corpus "$T/missing" --vocab-size 1000 --out "$T/x.json"

[ $fails -eq 0 ] && rm -rf "$T"
finish cli_tokenizer_train
