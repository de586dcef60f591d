#!/usr/bin/env bash
# Kill-and-resume, injected: a store writer killed at any moment leaves a
# store that opens and holds every sample it reported done; rerunning
# continues with no duplicate and no gap. The writer is
# tests/store_writer_tool.c (synthetic deterministic samples, "done K" after
# each commit); "verify" checks order, count and every sample's content. The
# writer kills itself (SIGKILL, after a torn write) at chosen file
# modifications spread over a whole run; some resumed writers are killed
# again inside their rollback. cli_store_kill.sh kills from outside.
# APMAE_STORE_CRASH_POINTS=K sets how many crash points are tried (default 6,
# kept small for the suite's time); "all" tries every modification of a run.
set -euo pipefail
BIN=${APMAE_BIN:?}
TOOL=$(dirname "$BIN")/../tests/store_writer_tool
T=${APMAE_TMP:?}
rm -rf "$T" && mkdir -p "$T"
fail() { echo "FAIL: $*" >&2; exit 1; }
seed=${APMAE_TEST_SEED:-$RANDOM}
RANDOM=$seed
echo "cli_store_crash: seed $seed (APMAE_TEST_SEED reproduces it)"
S=$T/c.h5
GEOM=(--dtype bf16 --n 16 --layers 2 --heads 3)
last_done() { awk '/^done/{d=$2} END{print d+0}' "$1"; }
# run_writer OUT ARGS...: run the writer, stdout to OUT; sets rc (137 when
# it killed itself; the subshell keeps bash's "Killed" notice quiet)
run_writer() { local out=$1; shift; rc=$( ( "$TOOL" write "$@" >"$out" 2>/dev/null; echo $? ) 2>/dev/null ); }
# verify ARGS...: check the store, showing why on failure
verify() { "$TOOL" verify "$@" >/dev/null 2>"$T/verify.err" || { cat "$T/verify.err" >&2; return 1; }; }

# How many file modifications one whole run makes.
"$TOOL" write "$S" --total 8 --every 2 "${GEOM[@]}" >/dev/null 2>"$T/mods"
M=$(awk '/^modifications/{print $2}' "$T/mods")
[ "${M:-0}" -gt 50 ] || fail "no modification count: $(cat "$T/mods")"

want=${APMAE_STORE_CRASH_POINTS:-6}
points=()
if [ "$want" = all ]; then
  points=($(seq 1 "$M"))
else # evenly spread, plus a few at random
  spread=$(( want - want / 4 ))
  for k in $(seq 1 $spread); do points+=($(( (k * M) / (spread + 1) ))); done
  for k in $(seq 1 $(( want / 4 ))); do points+=($(( 1 + RANDOM % M ))); done
fi
n=0
for p in "${points[@]}"; do
  rm -f "$S" "$S-journal"
  run_writer "$T/out" "$S" --total 8 --every 2 --crash-at "$p" "${GEOM[@]}"
  [ "$rc" = 137 ] || fail "crash point $p: the writer exited $rc, not by SIGKILL"
  done_k=$(last_done "$T/out")
  if [ ! -e "$S" ]; then [ "$done_k" = 0 ] || fail "crash point $p: no store after $done_k done"; continue; fi
  verify "$S" --min "$done_k" >/dev/null || fail "crash point $p (after done $done_k)"
  if [ $((n % 3)) = 0 ]; then # kill the resuming writer too, early: inside its rollback
    q=$(( 1 + RANDOM % 12 ))
    run_writer "$T/out2" "$S" --total 8 --every 2 --crash-at "$q"
    [ "$rc" = 137 ] || [ "$rc" = 0 ] || fail "crash point $p then $q: exit $rc"
    d2=$(last_done "$T/out2"); [ "$d2" -gt "$done_k" ] && done_k=$d2
    verify "$S" --min "$done_k" >/dev/null || fail "crash point $p then $q (after done $done_k)"
  fi
  "$TOOL" write "$S" --total 8 --every 2 --verify >/dev/null 2>"$T/verify.err" ||
    { cat "$T/verify.err" >&2; fail "resume after crash point $p"; }
  [ ! -e "$S-journal" ] || fail "journal left after a clean run (crash point $p)"
  n=$((n + 1))
done

echo "cli_store_crash: ok ($n crash points of $M, ${SECONDS}s)"
