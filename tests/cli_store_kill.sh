#!/usr/bin/env bash
# Kill-and-resume from outside: kill -9 a store writer at random moments of
# a run, resume it each time, and check that every sample reported done
# survived, in order, with the right content, and that the finished store has
# no duplicate and no gap (see cli_store_crash.sh for injected crashes).
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

TOTAL=40
reported=0
for round in 1 2 3; do
  "$TOOL" write "$S" --total $TOTAL --every 1 --dtype bf16 --n 48 --layers 2 --heads 4 >"$T/out" 2>/dev/null &
  pid=$!
  want=$(( reported + 1 + RANDOM % 4 ))
  for _ in $(seq 1 400); do # until enough "done" lines (or the run ended)
    [ "$(last_done "$T/out")" -ge "$want" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
  done
  sleep "0.0$(( RANDOM % 10 ))"
  kill -9 $pid 2>/dev/null || true
  { wait $pid; } 2>/dev/null || true
  d=$(last_done "$T/out"); [ "$d" -gt "$reported" ] && reported=$d
  "$TOOL" verify "$S" --min "$reported" >/dev/null 2>"$T/verify.err" ||
    { cat "$T/verify.err" >&2; fail "round $round: killed after done $reported"; }
done
"$TOOL" write "$S" --total $TOTAL --every 1 --verify >/dev/null 2>"$T/verify.err" ||
  { cat "$T/verify.err" >&2; fail "final resume"; }
echo "cli_store_kill: ok (3 kills, ${SECONDS}s)"
