#!/usr/bin/env bash
# Clustering benchmark (issue 11): per-head UMAP of n = 1000 and 4000 cosine
# points in d = 512 (Gaussian blobs on the sphere, seeded), apmae against
# umap-learn (warmed up first); HDBSCAN on umap-learn's embedding, apmae
# against R's dbscan; the whole per-head UMAP + HDBSCAN, apmae against
# umap-learn + R's dbscan (bench/cluster_peer.py); runs alternating, same
# thread count. Prints JSON lines and markdown table rows for
# docs/performance.md.
#   bench/cluster_bench.sh [build dir]     (THREADS=2 REPS=3 N="1000 4000")
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
N=${N:-1000 4000}
[ -x "$BUILD/tests/umap_tool" ] || cmake --build "$BUILD" --target umap_tool >/dev/null
[ -x "$BUILD/bin/apmae" ] || cmake --build "$BUILD" --target apmae_cli >/dev/null
# Both sides: the same threads for OpenMP, OpenBLAS and numba; idle threads sleep.
export OMP_NUM_THREADS=$THREADS NUMBA_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS OMP_WAIT_POLICY=PASSIVE
# shellcheck disable=SC2086
/usr/bin/python3 bench/umap_peer.py --tool "$BUILD/tests/umap_tool" --apmae "$BUILD/bin/apmae" --n $N --reps "$REPS" 2>/dev/null
