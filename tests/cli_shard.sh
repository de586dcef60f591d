#!/usr/bin/env bash
# Sharded extraction from the command line (docs/store.md): --shard 0/2 and 1/2
# merged with `store merge`, and `mpirun -n 2 apmae extract`, each compared
# dataset by dataset (h5py) with the single-process store; merge refusals.
# The mpirun part is skipped, with a message, when mpirun is absent.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; M=fixtures/lm/f32_gqa_untied; PY=/usr/bin/python3
rm -rf "$T" && mkdir -p "$T"
. ./testlib.sh
export OMP_NUM_THREADS=1
for i in $(seq 0 12); do
  task=identifiers; [ $((i % 3)) = 1 ] && task=eol
  printf '{"id":"t-%d","task":"%s","source":"A.java","start":1,"end":2,"label_id":%d,"seed":1,"input_ids":[3,%d,7,9,11,13,2,5,6,%d,8,9,10,11,12,2]}\n' \
    $i $task $((i % 7 + 3)) $((i + 20)) $((i * 3 % 50))
done > "$T/sc.jsonl"
"$B" --quiet mae init --config fixtures/store/mae_n16.json --seed 1 --out "$T/mae" || fail "mae init"
X=(extract --model $M --scenarios "$T/sc.jsonl" --embed-with "$T/mae")

# same_store A B: every dataset equal and every root attribute but the creation time
same_store() {
  $PY - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
def _walk(f):
    out = []
    f.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Dataset) else None)
    return out
da, db = _walk(a), _walk(b)
assert da == db, (da, db)
assert "patterns" in da and "embeddings/cls" in da and "samples/index" in da, da
for n in da:
    x, y = a[n][()], b[n][()]
    assert x.shape == y.shape and x.dtype == y.dtype, n
    assert (x == y).all() or (x.dtype.kind == "f" and np.array_equal(x, y, equal_nan=True)), n
for k in a.attrs:
    if k != "created":
        assert str(a.attrs[k]) == str(b.attrs[k]), (k, a.attrs[k], b.attrs[k])
assert int(a.attrs["shard_count"]) == 1
PY
}

expect_ok "$B" "${X[@]}" --out "$T/single.h5"
expect_ok "$B" "${X[@]}" --out "$T/s0.h5" --shard 0/2
expect_ok "$B" "${X[@]}" --out "$T/s1.h5" --shard 1/2
expect_ok "$B" store info "$T/s1.h5"
grep -q "shard:    1 of 2" "$T/out" || fail "info of a shard: $(cat "$T/out")"
expect_ok "$B" store merge --out "$T/merged.h5" "$T/s1.h5" "$T/s0.h5"
same_store "$T/single.h5" "$T/merged.h5" || fail "merged shards differ from the single-process store"
expect_fail "but 1 shards were given" "$B" store merge --out "$T/m2.h5" "$T/s0.h5"
expect_fail "$T/s0.h5 is also shard 0" "$B" store merge --out "$T/m2.h5" "$T/s0.h5" "$T/s0.h5"
expect_fail "already exists" "$B" store merge --out "$T/merged.h5" "$T/s0.h5" "$T/s1.h5"
expect_fail "needs the shards" "$B" store merge --out "$T/m2.h5"
expect_fail "--shard 2/2: need 0 <= K < R" "$B" "${X[@]}" --out "$T/bad.h5" --shard 2/2
expect_fail "this run is shard 1/2" "$B" "${X[@]}" --out "$T/s0.h5" --shard 1/2
[ ! -e "$T/m2.h5" ] || fail "a refused merge left $T/m2.h5"

if ! command -v mpirun >/dev/null 2>&1; then
  echo "cli_shard: mpirun not found: skipping the mpirun part"
  finish cli_shard
  exit $?
fi
# Open MPI's own allocations outlive MPI_Finalize: no leak check under mpirun
# (the rest of this test, and the merge's unit tests, run with it).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
MPI=(mpirun --allow-run-as-root --oversubscribe -n 2)
"${MPI[@]}" "$B" "${X[@]}" --out "$T/mpi.h5" >"$T/mpi.log" 2>&1 || fail "mpirun extract: $(cat "$T/mpi.log")"
grep -q "merged 2 shards" "$T/mpi.log" || fail "no merge reported: $(cat "$T/mpi.log")"
same_store "$T/single.h5" "$T/mpi.h5" || fail "the mpirun store differs from the single-process store"
ls "$T"/mpi.h5.* >/dev/null 2>&1 && fail "shards left behind: $(ls "$T"/mpi.h5.*)"
"${MPI[@]}" "$B" "${X[@]}" --out "$T/mpi.h5" >"$T/mpi.log" 2>&1 || fail "mpirun rerun: $(cat "$T/mpi.log")"
grep -q "already complete" "$T/mpi.log" || fail "mpirun rerun did not say complete: $(cat "$T/mpi.log")"
"${MPI[@]}" "$B" "${X[@]}" --out "$T/mpi2.h5" --shard 0/2 >"$T/mpi.log" 2>&1 && fail "mpirun with --shard was accepted"
grep -q "exclude each other" "$T/mpi.log" || fail "mpirun --shard: $(cat "$T/mpi.log")"
finish cli_shard
