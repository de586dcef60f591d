#!/usr/bin/env bash
# Mining benchmark (issue 3): every task, 200 scenarios each, N = 256, from the
# JDK source archive of Debian's openjdk-17-source, with a StarCoder2-style
# tokenizer built from GPT-2's vocabulary (tools/make_sc2_style_tokenizer.js).
# Prints a JSON line and a markdown table row for docs/performance.md, and
# fails when a task misses its quota.
#   bench/mine_bench.sh [path/to/apmae]     (THREADS=2 PER_TASK=200 MAX_LENGTH=256 SEED=1)
set -euo pipefail
cd "$(dirname "$0")/.."
APMAE=${1:-build/bin/apmae}
THREADS=${THREADS:-2}
PER_TASK=${PER_TASK:-200}
MAX_LENGTH=${MAX_LENGTH:-256}
SEED=${SEED:-1}
CORPUS=${CORPUS:-/usr/lib/jvm/openjdk-17/lib/src.zip}
CACHE=${BENCH_CACHE:-build/bench-models}
PY=/usr/bin/python3
mkdir -p "$CACHE"
TOK=$CACHE/sc2_gpt2_tokenizer.json
[ -f "$TOK" ] || node tools/make_sc2_style_tokenizer.js "$TOK"
OUT=$CACHE/jdk_scenarios.jsonl
t0=$(date +%s.%N)
OMP_NUM_THREADS=$THREADS "$APMAE" --quiet mine --corpus "$CORPUS" --tokenizer "$TOK" --tasks all \
    --per-task "$PER_TASK" --max-length "$MAX_LENGTH" --seed "$SEED" --out "$OUT"
t1=$(date +%s.%N)
$PY - "${OUT%.jsonl}.stats.json" "$t0" "$t1" "$THREADS" <<'PYEOF'
import json, sys
st, t0, t1, threads = json.load(open(sys.argv[1])), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
secs = t1 - t0
files, mb = st["files"]["read"], st["files"]["bytes"] / 1e6
scen = sum(t["scenarios"] for t in st["tasks"].values())
short = [k for k, t in st["tasks"].items() if not t["quota_met"]]
print(json.dumps({"bench": "mine", "threads": threads, "seconds": round(secs, 2), "files": files, "mb": round(mb, 1),
                  "scenarios": scen, "files_per_s": round(files / secs, 1), "mb_per_s": round(mb / secs, 2),
                  "scenarios_per_s": round(scen / secs, 1), "tasks_short_of_quota": short}))
print(f"| mine JDK src.zip, 15 tasks x {st['per_task']}, N={st['max_length']} | {threads} | {secs:.1f} s | "
      f"{files / secs:.0f} files/s ({mb / secs:.1f} MB/s) | {scen / secs:.0f} scenarios/s |")
sys.exit(1 if short else 0)
PYEOF
