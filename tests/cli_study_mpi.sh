#!/usr/bin/env bash
# apmae study under mpirun (docs/study.md "Under mpirun"), on the tiny config
# of test_study:
#  * 2 ranks against one process: the same store samples (ids, tasks,
#    correctness, patterns), merged from 2 shards; the same LM accuracy;
#    AP-MAE losses of every step within 1e-5; one summary, from rank 0;
#  * a second run under mpirun skips every stage (the report is rendered
#    again, as always) and leaves their records alone;
#  * --from extract --only extract under mpirun drops the shards a killed
#    ranked extraction left and makes the same store again;
#  * a refusal by rank 0 alone (--only on a fresh directory) stops both ranks.
# Skipped (exit 77), with a message, when mpirun is absent.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; PY=/usr/bin/python3
CONFIG=fixtures/study/tiny.json
rm -rf "$T" && mkdir -p "$T"
. ./testlib.sh
require_mpirun cli_study_mpi
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# mpi [--quiet] study ...: apmae on 2 ranks. Open MPI's own allocations
# outlive MPI_Finalize: no leak check under mpirun.
mpi() {
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    mpirun --allow-run-as-root --oversubscribe -n 2 "$B" "$@" --config "$CONFIG"
}

# same_study A B: the stores hold the same samples and patterns, the LM's
# accuracy is the same, and the AP-MAE's logs agree (losses within 1e-5).
same_study() {
  $PY - "$1" "$2" <<'PY'
import json, sys
import h5py, numpy as np
a, b = sys.argv[1], sys.argv[2]
with h5py.File(a + "/store.h5", "r") as fa, h5py.File(b + "/store.h5", "r") as fb:
    for k in ("samples/id", "samples/task", "samples/correct", "samples/index", "input_ids", "patterns"):
        x, y = fa[k][:], fb[k][:]
        assert x.shape == y.shape and (x == y).all(), f"store {k} differs"
    n = len(fa["samples/id"])
    assert n > 0 and fa["samples/correct"][:].any(), "an empty or all-incorrect store proves little"
la = json.load(open(a + "/lm_eval.json"))["scenarios"]["overall"]
lb = json.load(open(b + "/lm_eval.json"))["scenarios"]["overall"]
assert la == lb, (la, lb)
log = lambda d: [json.loads(l) for l in open(d + "/mae/train_log.jsonl")]
xa, xb = log(a), log(b)
assert len(xa) == len(xb) > 1, (len(xa), len(xb))
worst = 0.0
for x, y in zip(xa, xb):
    assert x["step"] == y["step"], (x, y)
    for k in ("loss", "heldout_loss"):
        if k in x:
            worst = max(worst, abs(x[k] - y[k]))
assert worst <= 1e-5, f"AP-MAE losses {worst:g} apart"
print(f"{n} samples, {len(xa) - 1} steps, losses {worst:g} apart")
PY
}

# stage_records DIR: every stage's record but the report's, one line
stage_records() {
  $PY -c '
import json, sys
s = json.load(open(sys.argv[1] + "/study.json"))["stages"]
print(json.dumps({k: v for k, v in s.items() if k != "report"}, sort_keys=True))' "$1"
}

# --- 2 ranks against one process -------------------------------------------------------------
expect_ok "$B" --quiet study --out "$T/one" --config "$CONFIG"
mpi study --out "$T/two" >"$T/mpi.out" 2>"$T/mpi.err" || fail "mpirun study: $(cat "$T/mpi.err")"
[ "$(grep -c '^study ' "$T/mpi.out")" = 1 ] || fail "not one summary on stdout: $(cat "$T/mpi.out")"
grep -q "merged 2 shards into $T/two/store.h5: 120 samples" "$T/mpi.err" \
  || fail "the extraction was not shared over the ranks: $(cat "$T/mpi.err")"
for stage in mine extract mae-train mae-eval embed cluster classify intervene report; do
  grep -qE "^  $stage +ran " "$T/mpi.out" || fail "first run under mpirun: $stage did not run: $(cat "$T/mpi.out")"
done
same_study "$T/one" "$T/two" || fail "one process and 2 ranks differ"
[ -f "$T/two/report.html" ] || fail "no report under mpirun"

# --- a second run skips what is done --------------------------------------------------------
before=$(stage_records "$T/two")
mpi --quiet study --out "$T/two" >"$T/mpi.out" 2>"$T/mpi.err" || fail "second mpirun study: $(cat "$T/mpi.err")"
for stage in mine extract mae-train mae-eval embed cluster classify intervene; do
  grep -qE "^  $stage +skipped " "$T/mpi.out" || fail "second run under mpirun: $stage not skipped: $(cat "$T/mpi.out")"
done
[ "$(stage_records "$T/two")" = "$before" ] || fail "the second run changed the records of skipped stages"

# --- --from extract drops a killed ranked extraction's shards -------------------------------
: >"$T/two/store.h5.shard-1-of-3"
mpi --quiet study --out "$T/two" --from extract --only extract >"$T/mpi.out" 2>"$T/mpi.err" \
  || fail "mpirun --from extract --only extract: $(cat "$T/mpi.err")"
ls "$T/two" | grep -q 'shard' && fail "shards left in $T/two: $(ls "$T/two")"
grep -qE "^  extract +ran " "$T/mpi.out" && grep -qE "^  mae-train +not run " "$T/mpi.out" \
  || fail "--from extract --only extract: $(cat "$T/mpi.out")"
same_study "$T/one" "$T/two" || fail "--from extract under mpirun: differs from one process"

# --- rank 0's refusal stops both ranks ------------------------------------------------------
mpi --quiet study --out "$T/fresh" --only mae-eval >"$T/mpi.out" 2>"$T/mpi.err" && fail "--only on a fresh directory ran"
grep -q "rank 0 of 2: --only mae-eval: it reads from stage mine" "$T/mpi.err" \
  && grep -q "rank 1 of 2: rank 0 of 2 failed" "$T/mpi.err" || fail "rank 0's refusal: $(cat "$T/mpi.err")"
finish cli_study_mpi
