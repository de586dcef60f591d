"""UMAP benchmark peer (bench/cluster_bench.sh): apmae's UMAP (through
build/tests/umap_tool) against umap-learn on the same points, runs
alternating, same thread count; wall time and trustworthiness of both.
With --apmae, also HDBSCAN and the per-head UMAP + HDBSCAN against R's
dbscan (bench/cluster_peer.py).

Data: n points in d dimensions drawn around `clusters` random centres on the
unit sphere (Gaussian noise of sd `noise` per coordinate, then renormalised),
seeded; the cosine metric.

Run with Debian's python3 (/usr/bin/python3), OMP_NUM_THREADS and
NUMBA_NUM_THREADS set by the caller before numpy is imported.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_io  # noqa: E402
from cluster_peer import hdbscan_rows  # noqa: E402


def sphere_blobs(n, d, clusters, noise, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, clusters, n)
    x = centres[labels] + rng.normal(size=(n, d)) * noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels.astype(np.int32)


def run_apmae(tool, x_path, out_path, p):
    cmd = [tool, x_path, out_path, "--metric", "cosine", "--neighbors", str(p["n_neighbors"]),
           "--components", str(p["n_components"]), "--min-dist", str(p["min_dist"]), "--seed", str(p["seed"])]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    inner = json.loads(res.stdout)["seconds"]
    emb = safetensors_io.load(out_path)[0]["embedding"][1]
    return wall, inner, emb


def run_umap_learn(x, p):
    import umap  # imported late: after the thread settings are in the environment

    t0 = time.perf_counter()
    emb = umap.UMAP(n_components=p["n_components"], n_neighbors=p["n_neighbors"], min_dist=p["min_dist"],
                    metric="cosine", random_state=p["seed"]).fit_transform(x)
    return time.perf_counter() - t0, emb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True, help="path of build/tests/umap_tool")
    ap.add_argument("--apmae", help="path of build/bin/apmae: also the HDBSCAN rows (bench/cluster_peer.py)")
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=10)
    ap.add_argument("--noise", type=float, default=0.03)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    from sklearn.manifold import trustworthiness

    p = {"n_components": 8, "n_neighbors": 20, "min_dist": 0.05, "seed": args.seed}
    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()
    # umap-learn's first call compiles its numba kernels: warm them up on other data.
    warm, _ = sphere_blobs(300, args.d, args.clusters, args.noise, args.seed + 1000)
    run_umap_learn(warm, p)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            x, labels = sphere_blobs(n, args.d, args.clusters, args.noise, args.seed)
            x_path, out_path = os.path.join(tmp, f"x{n}.safetensors"), os.path.join(tmp, f"y{n}.safetensors")
            safetensors_io.save(x_path, {"x": ("F32", x)})
            c_times, py_times = [], []
            for _ in range(args.reps):  # alternating, so both see the same machine load
                wall, _, c_emb = run_apmae(args.tool, x_path, out_path, p)
                c_times.append(wall)
                secs, py_emb = run_umap_learn(x, p)
                py_times.append(secs)
            c_s, py_s = float(np.median(c_times)), float(np.median(py_times))
            c_tw = trustworthiness(x, c_emb, n_neighbors=10, metric="cosine")
            py_tw = trustworthiness(x, py_emb, n_neighbors=10, metric="cosine")
            row = {"bench": "umap", "n": n, "d": args.d, "threads": threads, "reps": args.reps,
                   "apmae_s": round(c_s, 3), "umap_learn_s": round(py_s, 3), "speedup": round(py_s / c_s, 2),
                   "apmae_trust": round(float(c_tw), 4), "umap_learn_trust": round(float(py_tw), 4)}
            print(json.dumps(row), flush=True)
            print(f"| UMAP n={n}, d={args.d}, cosine | {threads} | {c_s:.2f} s | {py_s:.2f} s | {py_s / c_s:.1f}x "
                  f"| {c_tw:.4f} | {py_tw:.4f} |", flush=True)
            if args.apmae:
                hdbscan_rows(args.apmae, x, labels, py_emb, p, args.reps, tmp, run_umap_learn)


if __name__ == "__main__":
    main()
