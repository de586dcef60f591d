#!/usr/bin/env bash
# Kill-and-resume from outside: kill -9 a store writer at random points of
# a run, resume it each time, and check that every sample reported done
# survived, in order, with the right content, and that the finished store has
# no duplicate and no gap (see cli_store_crash.sh for injected crashes).
# The kills follow the writer's own progress, never the clock: each round
# waits (polling, at most $BOUND seconds) until the writer has printed
# "done <count>" (after a commit) for a random count short of the end, then
# kills it wherever it is; a loaded machine only makes the rounds wait longer.
set -euo pipefail
BIN=${APMAE_BIN:?}
TOOL=$(dirname "$BIN")/../tests/store_writer_tool
T=${APMAE_TMP:?}
rm -rf "$T" && mkdir -p "$T"
fail() { echo "FAIL: $*" >&2; exit 1; }
seed=${APMAE_TEST_SEED:-$RANDOM}
RANDOM=$seed
echo "cli_store_kill: seed $seed (APMAE_TEST_SEED reproduces it)"
S=$T/c.h5
last_done() { awk '/^done/{d=$2} END{print d+0}' "$1"; }

TOTAL=40 BOUND=120
reported=0 kills=0
for round in 1 2 3 4 5 6; do
  "$TOOL" write "$S" --total $TOTAL --every 1 --dtype bf16 --n 48 --layers 2 --heads 4 >"$T/out" 2>"$T/err" &
  pid=$!
  want=$(( reported + 1 + RANDOM % 4 ))
  deadline=$(( SECONDS + BOUND ))
  until [ "$(last_done "$T/out")" -ge "$want" ]; do
    kill -0 $pid 2>/dev/null || break # it ended (finished, or failed: see below)
    if [ $SECONDS -ge $deadline ]; then
      kill -9 $pid 2>/dev/null || true
      fail "round $round: the writer reported $(last_done "$T/out") samples done within ${BOUND}s, waiting for $want"
    fi
    sleep 0.01
  done
  kill -9 $pid 2>/dev/null || true
  rc=0; { wait $pid; } 2>/dev/null || rc=$?
  d=$(last_done "$T/out"); [ "$d" -gt "$reported" ] && reported=$d
  "$TOOL" verify "$S" --min "$reported" >/dev/null 2>"$T/verify.err" ||
    { cat "$T/verify.err" >&2; fail "round $round: killed after done $reported"; }
  case $rc in
    137) kills=$((kills + 1)); [ $kills = 3 ] && break ;;
    0) rm -f "$S" "$S-journal"; reported=0 ;; # it finished before its kill: start over
    *) cat "$T/err" >&2; fail "round $round: the writer failed (exit $rc)" ;;
  esac
done
[ $kills = 3 ] || fail "only $kills of 6 rounds killed the writer before it finished"
"$TOOL" write "$S" --total $TOTAL --every 1 --verify >/dev/null 2>"$T/verify.err" ||
  { cat "$T/verify.err" >&2; fail "final resume"; }
echo "cli_store_kill: ok ($kills kills, ${SECONDS}s)"
