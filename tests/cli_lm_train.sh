#!/usr/bin/env bash
# apmae lm train / eval on a tiny model and a small corpus (java/util of the
# JDK sources, with a tokenizer trained on it by apmae tokenizer train):
#   * the loss goes down clearly in a few hundred steps (train and held-out);
#   * a run stopped half-way and resumed ends with the same bytes (training
#     state and model) as the run that went straight through;
#   * the checkpoint loads in apmae lm forward, and the independent PyTorch
#     reference (tools/starcoder2_ref.py) gives the same logits;
#   * apmae lm eval's per-task accuracy equals the reference's argmax on the
#     scenarios, and its corpus loss is in line with the training log;
#   * --resume with other options, and --out over a run without --resume, fail.
set -u
# A fresh directory per run (kept on failure), so runs of the suite in
# parallel do not share one.
B=$APMAE_BIN; T=$APMAE_TMP/run.$$; R=$APMAE_ROOT
PY=/usr/bin/python3; ZIP=/usr/lib/jvm/openjdk-17/lib/src.zip
rm -rf "$T"; mkdir -p "$T"
. ./testlib.sh
[ -f "$ZIP" ] || { echo "FAIL: $ZIP is missing: run scripts/setup.sh"; exit 1; }
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
CORPUS=(--corpus "$ZIP" --include 'java.base/java/util/*.java')

"$B" --quiet tokenizer train "${CORPUS[@]}" --vocab-size 1024 --out "$T/tok.json" >/dev/null 2>"$T/err" \
  || { echo "FAIL: tokenizer: $(cat "$T/err")"; exit 1; }

# 300 steps of 8 x 64 tokens on the tiny architecture.
COMMON=("${CORPUS[@]}" --tokenizer "$T/tok.json" --config tiny --seq-len 64 --batch 8 --lr 1e-2 --holdout 0.05
        --seed 3 --eval-every 50 --eval-batches 2)
t0=$(date +%s.%N)
"$B" --quiet lm train "${COMMON[@]}" --tokens 153600 --out "$T/run" >"$T/run.json" 2>"$T/err" \
  || fail "train: $(cat "$T/err")"
t1=$(date +%s.%N)
cat "$T/run.json"
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "300 steps in %.1f s\n", b - a }'
"$PY" - "$T/run/train_log.jsonl" "$T/run.json" <<'EOF' || fails=$((fails+1))
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
summary = json.loads(open(sys.argv[2]).read())
first, last = log[0], log[-1]
print(f"loss at step {first['step']}: {first['loss']:.3f} (eval {first['eval_loss']:.3f}); "
      f"at step {last['step']}: {last['loss']:.3f} (eval {last['eval_loss']:.3f}); ln(V) = 6.93")
ok = last["step"] == 300 and summary["step"] == 300
# clearly down: from ln(1024) = 6.9 at the start to well under the data's unigram
# entropy (5.8 nats with this tokenizer), on the training and the held-out files
ok &= first["loss"] > 5.5 and last["loss"] < 5.0 and last["eval_loss"] < 5.0
ok &= last["eval_loss"] < first["eval_loss"] - 1.0
if not ok: print("FAIL: the loss did not go down as expected")
sys.exit(0 if ok else 1)
EOF

# Resume: 40 steps straight vs 20 + resume + 20 (checkpoints every 7 steps too;
# model.safetensors in bf16, which lm forward must load as well; boundary FIM splits;
# --fim-middle-weight too, so the weighted rows go through resume as well)
RES=("${COMMON[@]}" --tokens 20480 --checkpoint-every 7 --dtype bf16 --fim-split boundary --fim-middle-weight 4)
"$B" --quiet lm train "${RES[@]}" --out "$T/straight" >/dev/null 2>"$T/err" || fail "straight: $(cat "$T/err")"
"$B" --quiet lm train "${RES[@]}" --out "$T/resumed" --stop-after 20 >"$T/half.json" 2>"$T/err" \
  || fail "first half: $(cat "$T/err")"
grep -q '"step":20,' "$T/half.json" || fail "--stop-after 20 did not stop at step 20: $(cat "$T/half.json")"
# the weight changes the training: without it, step 20 ends elsewhere
"$B" --quiet lm train "${RES[@]}" --fim-middle-weight 1 --out "$T/unweighted" --stop-after 20 >/dev/null 2>"$T/err" \
  || fail "unweighted: $(cat "$T/err")"
cmp -s "$T/unweighted/model.safetensors" "$T/resumed/model.safetensors" && fail "--fim-middle-weight 4 changed nothing"
"$B" --quiet lm train "${RES[@]}" --out "$T/resumed" --resume >/dev/null 2>"$T/err" || fail "resume: $(cat "$T/err")"
for f in train_state.safetensors model.safetensors config.json tokenizer.json; do
  cmp -s "$T/straight/$f" "$T/resumed/$f" && echo "resume: $f identical" || fail "resume: $f differs"
done
# a changed option is refused, and so is a second run into the same directory
expect_fail "'lr' differs" "$B" --quiet lm train "${RES[@]}" --lr 5e-3 --out "$T/resumed" --resume
expect_fail "pass --resume" "$B" --quiet lm train "${RES[@]}" --out "$T/resumed"
expect_fail "--fim-split: 'words'" "$B" --quiet lm train "${RES[@]}" --fim-split words --out "$T/x"
expect_fail "'fim_middle_weight' differs" "$B" --quiet lm train "${RES[@]}" --fim-middle-weight 2 --out "$T/resumed" --resume
expect_fail "--fim-middle-weight: must be in (0, 1000], got 0" "$B" --quiet lm train "${RES[@]}" --fim-middle-weight 0 --out "$T/x"

# --init-from: a new run from the trained weights starts where that run ended
# (its first held-out loss near the end of the 300-step run, far below a
# fresh start's), and a checkpoint of another architecture or tokenizer is refused.
"$B" --quiet lm train "${COMMON[@]}" --tokens 5120 --lr 1e-3 --eval-every 1 --init-from "$T/run" --out "$T/cont" \
  >/dev/null 2>"$T/err" || fail "--init-from: $(cat "$T/err")"
"$PY" - "$T/run/train_log.jsonl" "$T/cont/train_log.jsonl" <<'EOF' || fails=$((fails+1))
import json, sys
run, cont = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
print(f"--init-from: first held-out loss {cont[0]['eval_loss']:.3f}; the run it starts from: "
      f"first {run[0]['eval_loss']:.3f}, last {run[-1]['eval_loss']:.3f}")
ok = cont[0]["eval_loss"] < run[-1]["eval_loss"] + 0.3 and cont[0]["eval_loss"] < run[0]["eval_loss"] - 1.0
if not ok: print("FAIL: --init-from did not start from the trained weights")
sys.exit(0 if ok else 1)
EOF
"$B" --quiet tokenizer train "${CORPUS[@]}" --vocab-size 1000 --out "$T/tok1000.json" >/dev/null 2>&1
expect_fail "architecture" "$B" --quiet lm train "${CORPUS[@]}" --tokenizer "$T/tok1000.json" --config tiny --seq-len 64 \
  --tokens 512 --init-from "$T/run" --out "$T/x1"
cp "$T/tok.json" "$T/tok_other.json" && echo >> "$T/tok_other.json"
expect_fail "is not the tokenizer" "$B" --quiet lm train "${COMMON[@]}" --tokenizer "$T/tok_other.json" --tokens 512 \
  --init-from "$T/run" --out "$T/x2"

# The checkpoints in apmae lm forward (f32 and bf16).
"$B" --quiet lm forward --model "$T/run" --text 'public int size() { return count; }' --out "$T/fwd.safetensors" \
  2>"$T/err" || fail "lm forward: $(cat "$T/err")"
"$B" --quiet lm forward --model "$T/resumed" --ids 1,2,3,40,50 --out "$T/fwd16.safetensors" 2>"$T/err" \
  || fail "lm forward on bf16: $(cat "$T/err")"

# Scenarios from a real file's tokens: plain windows labelled with the next
# token, FIM inputs labelled with the middle's first token, and unlabeled ones.
"$PY" -c 'import sys, zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]).decode())' \
  "$ZIP" java.base/java/util/ArrayList.java >"$T/src.java" || fail "cannot extract a Java file"
"$B" --quiet tokenize --tokenizer "$T/tok.json" --file "$T/src.java" >"$T/src_ids.json" || fail "tokenize"
"$PY" - "$T" <<'EOF' || fails=$((fails+1))
import json, random, sys
t = sys.argv[1]
ids = json.load(open(f"{t}/src_ids.json"))
rnd = random.Random(5)
with open(f"{t}/scen.jsonl", "w") as out:
    for k in range(48):
        s = rnd.randrange(0, len(ids) - 64)
        if k % 6 == 5:
            row = {"task": "noise", "input_ids": ids[s:s + 31], "label_id": -1}
        elif k % 2:
            fim = [1] + ids[s:s + 14] + [3] + ids[s + 20:s + 34] + [2]
            row = {"task": "fim", "input_ids": fim, "label_id": ids[s + 14]}
        else:
            row = {"task": "plain", "input_ids": ids[s:s + 31], "label_id": ids[s + 31]}
        out.write(json.dumps(row) + "\n")
EOF
"$B" --quiet lm eval --model "$T/run" --scenarios "$T/scen.jsonl" --batch 4 "${CORPUS[@]}" --max-tokens 20000 \
  >"$T/eval.json" 2>"$T/err" || fail "lm eval: $(cat "$T/err")"

# The PyTorch reference: the logits of lm forward, the argmax behind lm eval.
"$PY" - "$T" <<'EOF' || fails=$((fails+1))
import json, os, sys
sys.path.insert(0, os.path.join(os.environ["APMAE_ROOT"], "tools"))
import numpy as np
import safetensors_io
from starcoder2_ref import StarCoder2
t = sys.argv[1]
ok = True
def bad(msg):
    global ok
    print("FAIL: " + msg); ok = False
m = StarCoder2.load(f"{t}/run")
cfg = json.load(open(f"{t}/run/config.json"))
if cfg["model_type"] != "starcoder2" or cfg["tie_word_embeddings"] is not True:
    bad("config.json is not a tied starcoder2 config")
tensors, _ = safetensors_io.load(f"{t}/run/model.safetensors")
if "lm_head.weight" in tensors or "model.layers.1.mlp.c_proj.bias" not in tensors:
    bad("tensor names are not docs/lm.md's (tied: no lm_head.weight)")
for name, model in (("fwd", m), ("fwd16", StarCoder2.load(f"{t}/resumed"))):
    out, _ = safetensors_io.load(f"{t}/{name}.safetensors")
    ids = out["input_ids"][1]
    ref, _ = model.forward(list(ids))
    err = float(np.abs(ref.numpy() - out["logits"][1]).max())
    print(f"apmae lm forward vs PyTorch reference ({name}): max |logit diff| {err:.2e} over {len(ids)} tokens")
    if not err < 1e-4: bad("logits differ")
expect = {}
for line in open(f"{t}/scen.jsonl"):
    s = json.loads(line)
    if s["label_id"] < 0:
        continue
    logits, _ = m.forward(s["input_ids"], last_only=True, attentions=False)
    n, c = expect.get(s["task"], (0, 0))
    expect[s["task"]] = [n + 1, c + int(int(logits[-1].argmax()) == s["label_id"])]
ev = json.load(open(f"{t}/eval.json"))
got = {k: [v["n"], v["correct"]] for k, v in ev["scenarios"]["tasks"].items()}
print(f"lm eval per task {got}, reference {expect}; corpus loss {ev['heldout']['loss']:.3f} "
      f"over {ev['heldout']['tokens']} tokens")
if got != expect or ev["scenarios"]["unlabeled_skipped"] != 8 or not 0 < sum(v[1] for v in got.values()) < 40:
    bad("lm eval's accuracy disagrees with the reference")
if ev["scenarios"]["overall"]["n"] != sum(v[0] for v in expect.values()):
    bad("overall count")
log = [json.loads(l) for l in open(f"{t}/run/train_log.jsonl")]
# evaluated on the training files themselves: near the final training loss
if not (abs(ev["heldout"]["loss"] - log[-1]["loss"]) < 1.0 and ev["heldout"]["tokens"] >= 19000):
    bad("lm eval's corpus loss is off the training log")
sys.exit(0 if ok else 1)
EOF

[ $fails -eq 0 ] && rm -rf "$T"
finish cli_lm_train
