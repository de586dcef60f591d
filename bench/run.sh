#!/usr/bin/env bash
# All benchmarks (`make bench`). Each prints JSON lines and a markdown table row
# for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
APMAE=${1:-build/bin/apmae}
bash bench/lm_forward.sh "$APMAE"
bash bench/mine_bench.sh "$APMAE"
bash bench/lm_train.sh "$APMAE"
bash bench/extract.sh "$APMAE"
bash bench/report.sh "$APMAE"
bash bench/cluster_bench.sh "$(dirname "$(dirname "$APMAE")")"
bash bench/intervene.sh "$APMAE"
