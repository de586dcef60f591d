#!/usr/bin/env bash
# report.html at model sizes (issue 14): synthetic studies (tests/study_synth.h:
# patterns, a clustering run with kinds and exemplars, classification results)
# of the shipped model's shape (6 layers x 8 heads) and of the largest paper
# model (40 x 48, StarCoder2-15B), N = 256. For each: the time `apmae report`
# takes, the page's size, and how long headless Chromium takes to load it
# from disk (navigation start to the load event; tests/report_browser.py).
# The peer of the big page is the small one, loaded the same way in the same
# script.
#   bench/report.sh [path/to/apmae]
set -euo pipefail
cd "$(dirname "$0")/.."
APMAE=${1:-build/bin/apmae}
TOOL=$(dirname "$APMAE")/../tests/study_synth_tool
CACHE=${BENCH_CACHE:-build/bench-models}
mkdir -p "$CACHE"
CHROMIUM=$(command -v chromium)
echo "| layers x heads | apmae report (s) | page | Chromium load (ms) |"
echo "|---|---|---|---|"
for shape in 6x8 40x48; do
  L=${shape%x*}; H=${shape#*x}
  dir=$CACHE/study-synth-$shape
  [ -f "$dir/store.h5" ] || { rm -rf "$dir"; "$TOOL" "$dir" --layers "$L" --heads "$H" --n 256 --samples 10; }
  t0=$(date +%s.%N)
  "$APMAE" --quiet report --study "$dir" --out "$dir/report.html"
  t1=$(date +%s.%N)
  line=$(cd tests && /usr/bin/python3 report_browser.py --chromium "$CHROMIUM" --report "../$dir/report.html" \
         --sections settings,patterns,clusters,classify,shap --screenshot "../$dir/report.png")
  ms=$(sed -n 's/.*loaded in \([0-9]*\) ms.*/\1/p' <<<"$line")
  awk -v s="$shape" -v a="$t0" -v b="$t1" -v size="$(stat -c %s "$dir/report.html")" -v ms="$ms" \
    'BEGIN { printf "| %s | %.2f | %.1f MB | %s |\n", s, b - a, size / 1e6, ms }'
done
