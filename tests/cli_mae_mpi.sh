#!/usr/bin/env bash
# Data-parallel AP-MAE training under mpirun (docs/scale.md):
#  * 2 ranks (batch 12: 6 patterns each) and 3 ranks (batch 7: shares 2, 2, 3)
#    against one process at the same global batch: every step's loss within
#    1e-5, the final parameters within 1e-6 (they moved ~1e-3 from their
#    initial values), the same held-out split and log;
#  * a 2-rank run killed with SIGKILL (mpirun and its ranks) after a committed
#    checkpoint, then resumed under mpirun: the same bytes (model, training
#    state) and log as an uninterrupted 2-rank run to the same step; resumed
#    by one process instead, the same parameters within 1e-6;
#  * refusals: a batch smaller than the rank count; a run into a DIR that
#    holds one, refused by rank 0 alone, stops every rank (no hang).
# Skipped (exit 77), with a message, when mpirun is absent.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; PY=/usr/bin/python3; BOUND=120
TOOL=$(dirname "$B")/../tests/store_writer_tool
rm -rf "$T" && mkdir -p "$T"
. ./testlib.sh
require_mpirun cli_mae_mpi
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# Open MPI's own allocations outlive MPI_Finalize: no leak check under mpirun.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
mpi() { local n=$1; shift; mpirun --allow-run-as-root --oversubscribe -n "$n" "$@"; }

"$TOOL" write "$T/s.h5" --total 30 --n 16 --layers 2 --heads 3 --dtype bf16 >/dev/null || fail "store_writer_tool"
"$B" --quiet mae init --config fixtures/store/mae_n16.json --seed 0 --out "$T/init" || fail "mae init"
TRAIN=(--quiet mae train --store "$T/s.h5" --config fixtures/store/mae_n16.json --eval-every 5)

# same_run A B LOSS_TOL PARAM_TOL [INIT]: the logs agree (the loss and
# held-out loss of every step within LOSS_TOL, the rest equal but images/s)
# and the parameters are within PARAM_TOL; with INIT, they moved from it by
# more than 100 x PARAM_TOL.
same_run() {
  $PY - "$@" <<'PY'
import json, struct, sys
import numpy as np
a, b, loss_tol, tol = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], np.float32)
            for k, v in head.items() if k != "__metadata__"}
def log(d):
    return [json.loads(l) for l in open(d + "/train_log.jsonl")]
la, lb = log(a), log(b)
assert len(la) == len(lb) > 1, (len(la), len(lb))
for x, y in zip(la, lb):
    assert x.keys() == y.keys(), (x, y)
    for k in x:
        if k in ("loss", "heldout_loss"):
            assert abs(x[k] - y[k]) <= loss_tol, (x, y)
        elif k != "images_per_s":
            assert x[k] == y[k], (x, y)
pa, pb = tensors(a + "/model.safetensors"), tensors(b + "/model.safetensors")
worst = max(float(np.abs(pa[k] - pb[k]).max()) for k in pa)
assert worst <= tol, f"parameters {worst:g} apart"
if len(sys.argv) > 5:
    p0 = tensors(sys.argv[5] + "/model.safetensors")
    moved = max(float(np.abs(pa[k] - p0[k]).max()) for k in pa)
    assert moved > 100 * tol, f"the parameters moved only {moved:g}"
print(f"{len(la) - 1} steps, parameters {worst:g} apart")
PY
}

# --- 1 process vs 2 and 3 ranks at the same global batch ----------------------------------
for run in "2 12" "3 7"; do
  set -- $run
  expect_ok "$B" "${TRAIN[@]}" --steps 50 --batch "$2" --out "$T/alone$2"
  mpi "$1" "$B" "${TRAIN[@]}" --steps 50 --batch "$2" --out "$T/ranks$2" >"$T/mpi.out" 2>"$T/mpi.err" \
    || fail "mpirun -n $1 mae train: $(cat "$T/mpi.err")"
  [ "$(grep -c '"step":50' "$T/mpi.out")" = 1 ] || fail "-n $1: not one summary on stdout: $(cat "$T/mpi.out")"
  same_run "$T/alone$2" "$T/ranks$2" 1e-5 1e-6 "$T/init" || fail "-n $1, batch $2: 1 process and $1 ranks differ"
  cmp -s "$T/alone$2/train_args.json" "$T/ranks$2/train_args.json" || fail "-n $1: train_args.json differs"
done

# --- killed under mpirun, resumed -----------------------------------------------------------
# --steps is far beyond what the test runs, so the kill always lands mid-run;
# both runs stop with --stop-after at the same step K after the kill point.
LONG=("${TRAIN[@]}" --steps 100000 --batch 12 --checkpoint-every 1)
# mpirun itself in the background (not through a function, whose subshell
# would be the job), so that its ranks are its children
mpirun --allow-run-as-root --oversubscribe -n 2 "$B" "${LONG[@]}" --out "$T/killed" >"$T/killed.log" 2>&1 &
mpirun_pid=$!
# wait_for_gone PID...: each process ended (or a zombie), within the bound
wait_for_gone() {
  local p
  for p in "$@"; do
    for _ in $(seq $((BOUND * 10))); do
      { [ -d /proc/$p ] && [ "$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null)" != Z ]; } || continue 2
      sleep 0.1
    done
    fail "process $p still runs ${BOUND}s after SIGKILL"
  done
}
for _ in $(seq $((BOUND * 10))); do
  [ -f "$T/killed/train_state.safetensors" ] && break
  kill -0 $mpirun_pid 2>/dev/null || break
  sleep 0.1
done
ranks=$(pgrep -P $mpirun_pid | tr '\n' ' ')
kill -KILL $mpirun_pid $ranks 2>/dev/null
{ wait $mpirun_pid; } 2>/dev/null
wait_for_gone $mpirun_pid $ranks
[ -f "$T/killed/train_state.safetensors" ] || fail "no checkpoint within ${BOUND}s: $(cat "$T/killed.log")"
k=$($PY -c '
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
head = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
print(json.loads(head["__metadata__"]["apmae_mae_train_state"])["step"])' "$T/killed/train_state.safetensors")
echo "cli_mae_mpi: killed at checkpoint step $k (ranks: $ranks)"
K=$((k + 10))
cp -r "$T/killed" "$T/killed_alone"
mpi 2 "$B" "${LONG[@]}" --out "$T/killed" --resume --stop-after $K >"$T/mpi.out" 2>"$T/mpi.err" \
  || fail "mpirun resume: $(cat "$T/mpi.err")"
mpi 2 "$B" "${LONG[@]}" --out "$T/straight" --stop-after $K >"$T/mpi.out" 2>"$T/mpi.err" \
  || fail "mpirun straight: $(cat "$T/mpi.err")"
for f in model.safetensors train_state.safetensors config.json train_args.json; do
  cmp -s "$T/killed/$f" "$T/straight/$f" || fail "killed + resumed under mpirun: $f differs from the straight run's"
done
same_run "$T/straight" "$T/killed" 0 0 || fail "killed + resumed under mpirun: the log differs"
expect_ok "$B" "${LONG[@]}" --out "$T/killed_alone" --resume --stop-after $K
same_run "$T/straight" "$T/killed_alone" 1e-5 1e-6 || fail "a 2-rank run resumed by one process differs"

# --- refusals -------------------------------------------------------------------------------
mpi 2 "$B" "${TRAIN[@]}" --steps 5 --batch 1 --out "$T/bad" >"$T/mpi.out" 2>"$T/mpi.err" && fail "batch 1 on 2 ranks ran"
grep -q "batch 1 is smaller than the 2 ranks" "$T/mpi.err" || fail "batch < ranks: $(cat "$T/mpi.err")"
[ -e "$T/bad" ] && fail "a refused run left $T/bad"
mpi 2 "$B" "${TRAIN[@]}" --steps 50 --batch 12 --out "$T/ranks12" >"$T/mpi.out" 2>"$T/mpi.err" \
  && fail "a second run into a DIR was accepted"
grep -q "rank 0 of 2: .*already holds a training run" "$T/mpi.err" && grep -q "rank 1 of 2: rank 0 of 2 failed" "$T/mpi.err" \
  || fail "rank 0's refusal did not stop both ranks: $(cat "$T/mpi.err")"
finish cli_mae_mpi
