#!/usr/bin/env bash
# `make demo`: the whole study on the built-in defaults (docs/study.md), into
# out/demo/: the shipped model models/java-small on fill-in-the-middle
# scenarios mined from the JDK modules held out from its training, every
# task; extraction of every head's attention into the pattern store; AP-MAE
# trained briefly and evaluated; the patterns encoded; and report.html.
# Run again, it skips what is done; killed, it continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
APMAE=${1:-build/bin/apmae}
OUT=out/demo
# idle OpenMP threads wait without spinning: kinder to a shared machine, same results
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
"$APMAE" study --out "$OUT"
printf '\nThe report: %s/%s/report.html (open it in a browser)\n' "$(pwd)" "$OUT" >&2
