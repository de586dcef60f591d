# Shared helpers of the CLI tests (tests/cli_*.sh source this file after
# setting T, their scratch directory). Each check counts a failure and goes
# on, so one run reports every broken case; `finish NAME` sets the exit code.
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
# expect_fail EXPECTED_TEXT CMD...: non-zero exit (not a signal) and the text on stderr
expect_fail() {
  local want=$1; shift
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ] || ! grep -qF -- "$want" "$T/err"; then
    fail "(rc=$rc) $* -> $(cat "$T/err")"
  fi
}
# expect_ok CMD...: exit 0 (stdout in $T/out, stderr in $T/err)
expect_ok() {
  "$@" >"$T/out" 2>"$T/err" || fail "$* -> $(cat "$T/err")"
}
# require_mpirun NAME: a test of mpirun is skipped (CTest's code 77, with a
# message) on a machine without it
require_mpirun() {
  command -v mpirun >/dev/null 2>&1 && return 0
  echo "$1: mpirun not found: skipped"
  exit 77
}
finish() {
  echo "$1: $fails failure(s)"
  [ $fails -eq 0 ]
}
