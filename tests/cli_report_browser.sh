#!/usr/bin/env bash
# report.html as a reader's browser shows it: a tiny study's report opened
# from disk in headless Chromium (tests/report_browser.py drives it over the
# DevTools protocol) has every section, every image decodes, it makes no
# request and logs no error; the screenshot stays in the scratch directory
# (report.png). `apmae report` renders the same study again, and says so
# clearly when there is no study. Skipped (exit 77) only when Chromium is
# not installed; scripts/setup.sh installs it.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; PY=/usr/bin/python3
rm -rf "$T" && mkdir -p "$T"
. ./testlib.sh
CHROMIUM=$(command -v chromium || true)
if [ -z "$CHROMIUM" ]; then
  echo "cli_report_browser: chromium is not installed (scripts/setup.sh installs it): skipped"
  exit 77
fi
SECTIONS=settings,lm-accuracy,patterns,mae,clusters,classify,shap,intervene

expect_ok "$B" --quiet study --config fixtures/study/tiny.json --out "$T/study"
grep -q "^report: $T/study/report.html" "$T/out" || fail "the study's summary names its report: $(cat "$T/out")"
"$PY" report_browser.py --chromium "$CHROMIUM" --report "$T/study/report.html" --sections "$SECTIONS" \
  --screenshot "$T/report.png" || fail "the study's report in the browser"

expect_ok "$B" report --study "$T/study" --out "$T/again.html"
[ -s "$T/again.html" ] || fail "apmae report wrote nothing"
expect_fail "no study here" "$B" report --study "$T/nothing" --out "$T/x.html"
[ -e "$T/x.html" ] && fail "a failed report left a file"

finish cli_report_browser
