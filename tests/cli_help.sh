#!/usr/bin/env bash
# Every verb and subcommand (found from `apmae --help` and the verbs' own
# lists, so new ones are covered) prints its help on --help with exit 0:
# a usage line, its flags, and a docs page that exists. The help comes from
# the verb's flag table, so this also checks every table (src/cli/cli.h).
set -u
B=$APMAE_BIN; T=$APMAE_TMP; R=$APMAE_ROOT
mkdir -p "$T"
. ./testlib.sh

# check_help WORDS...: apmae WORDS --help
check_help() {
  expect_ok "$B" "$@" --help
  grep -q "^usage: " "$T/out" || fail "apmae $* --help: no usage line"
  local docs
  docs=$(sed -n 's/^docs: //p' "$T/out")
  [ -n "$docs" ] || fail "apmae $* --help names no docs page"
  for page in ${docs//,/ }; do
    [ -f "$R/$page" ] || fail "apmae $* --help names $page, which does not exist"
  done
}

verbs=$("$B" --help | sed -n '/^verbs:/,/^$/s/^  \([a-z-]*\) .*/\1/p')
[ -n "$verbs" ] || fail "apmae --help lists no verbs"
n=0
for verb in $verbs; do
  "$B" "$verb" --help >"$T/group" 2>&1 || fail "apmae $verb --help exits non-zero"
  if head -1 "$T/group" | grep -q SUBCOMMAND; then
    subs=$(sed -n '2,/^docs:/s/^  \([a-z-]*\) .*/\1/p' "$T/group")
    [ -n "$subs" ] || fail "apmae $verb --help lists no subcommands"
    check_help "$verb" # the group's own page list
    for sub in $subs; do check_help "$verb" "$sub"; n=$((n + 1)); done
  else
    check_help "$verb"; n=$((n + 1))
  fi
done
echo "cli_help: $n verbs and subcommands"
# a usage error exits 2 and names the flag
"$B" mine --corpus x --tokenizer y --out z --per-task 0 >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q -- "--per-task: must be at least 1, got 0" "$T/err" || fail "usage error: rc $rc, $(cat "$T/err")"
finish cli_help
