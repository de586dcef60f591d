"""HDBSCAN and per-head UMAP + HDBSCAN rows of the clustering benchmark
(bench/cluster_bench.sh, called from bench/umap_peer.py on its points):
`apmae cluster --in` against umap-learn and R's dbscan::hdbscan
(bench/hdbscan_peer.R), runs alternating, same thread count; time and
adjusted Rand index against the points' true clusters.

  HDBSCAN alone: both on umap-learn's embedding of the points (8-D),
    min_samples = min_cluster_size = 20 (R's minPts), no single cluster
    (R has none): the same definitions, so the same partition is expected.
  Per head: apmae's UMAP + HDBSCAN with the project's defaults (min_samples
    20, min_cluster_size 25) against umap-learn (warm, after its JIT
    compile) followed by R's hdbscan (minPts 25).

Times: apmae's clustering as it reports it (inside the process, like
umap-learn's and R's, whose start-up and reading of the points are
excluded), and in brackets the wall time of the whole apmae command
(process start, reading and writing files included).
"""

import json
import os
import subprocess
import time

import numpy as np

import safetensors_io

HERE = os.path.dirname(os.path.abspath(__file__))


def run_apmae(apmae, x_path, labels_path, extra):
    """(seconds inside, wall seconds, labels)"""
    cmd = [apmae, "--quiet", "cluster", "--in", x_path, "--out", labels_path] + extra
    t0 = time.perf_counter()
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    with open(labels_path) as f:
        return json.loads(res.stdout)["seconds"], wall, np.array(json.load(f)["labels"])


def run_r(emb, min_pts, tmp):
    raw, out = os.path.join(tmp, "emb.f32"), os.path.join(tmp, "r_labels.txt")
    np.ascontiguousarray(emb, dtype="<f4").tofile(raw)
    res = subprocess.run(["Rscript", os.path.join(HERE, "hdbscan_peer.R"), raw, str(emb.shape[0]), str(emb.shape[1]),
                          str(min_pts), out], check=True, capture_output=True, text=True)
    return json.loads(res.stdout)["seconds"], np.loadtxt(out, dtype=np.int64)


def hdbscan_rows(apmae, x, truth, emb, p, reps, tmp, run_umap_learn):
    """Print the two rows for points x (true clusters truth) and umap-learn's
    embedding emb of them, with UMAP parameters p."""
    from sklearn.metrics import adjusted_rand_score as ari

    n, d = x.shape
    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()
    x_path, e_path = os.path.join(tmp, "x.safetensors"), os.path.join(tmp, "e.safetensors")
    labels_path = os.path.join(tmp, "labels.json")
    safetensors_io.save(x_path, {"x": ("F32", x)})
    safetensors_io.save(e_path, {"x": ("F32", np.asarray(emb, dtype=np.float32))})
    hd = ["--no-umap", "--min-samples", "20", "--min-cluster-size", "20", "--no-single-cluster"]
    head = ["--seed", str(p["seed"])]
    t = {"hd_apmae": [], "hd_wall": [], "hd_r": [], "head_apmae": [], "head_wall": [], "head_peer": []}
    for _ in range(reps):  # alternating, so both sides see the same machine load
        secs, wall, hd_apmae = run_apmae(apmae, e_path, labels_path, hd)
        t["hd_apmae"].append(secs)
        t["hd_wall"].append(wall)
        secs, hd_r = run_r(emb, 20, tmp)
        t["hd_r"].append(secs)
        secs, wall, head_apmae = run_apmae(apmae, x_path, labels_path, head)
        t["head_apmae"].append(secs)
        t["head_wall"].append(wall)
        u_secs, peer_emb = run_umap_learn(x, p)
        r_secs, head_peer = run_r(peer_emb, 25, tmp)
        t["head_peer"].append(u_secs + r_secs)
    m = {k: float(np.median(v)) for k, v in t.items()}
    r0 = {"bench": "hdbscan", "n": n, "d": emb.shape[1], "threads": threads, "reps": reps,
          "apmae_s": round(m["hd_apmae"], 4), "apmae_wall_s": round(m["hd_wall"], 3), "r_dbscan_s": round(m["hd_r"], 4),
          "speedup": round(m["hd_r"] / m["hd_apmae"], 2), "apmae_ari": round(ari(truth, hd_apmae), 4),
          "r_ari": round(ari(truth, hd_r), 4), "same_partition": bool(ari(hd_apmae, hd_r) == 1.0)}
    r1 = {"bench": "umap+hdbscan", "n": n, "d": d, "threads": threads, "reps": reps,
          "apmae_s": round(m["head_apmae"], 3), "apmae_wall_s": round(m["head_wall"], 3),
          "umap_learn_r_s": round(m["head_peer"], 3), "speedup": round(m["head_peer"] / m["head_apmae"], 2),
          "apmae_ari": round(ari(truth, head_apmae), 4), "peer_ari": round(ari(truth, head_peer), 4),
          "apmae_clusters": int(head_apmae.max() + 1), "peer_clusters": int(head_peer.max() + 1)}
    for row in (r0, r1):
        print(json.dumps(row), flush=True)
    print(f"| HDBSCAN n={n}, 8-D (umap-learn's embedding) | {threads} | {r0['apmae_s']:.4f} s "
          f"({r0['apmae_wall_s']:.3f} s) | R dbscan {r0['r_dbscan_s']:.4f} s | {r0['speedup']:.1f}x "
          f"| {r0['apmae_ari']:.4f} | {r0['r_ari']:.4f} |", flush=True)
    print(f"| UMAP + HDBSCAN per head, n={n}, d={d}, cosine | {threads} | {r1['apmae_s']:.2f} s "
          f"({r1['apmae_wall_s']:.2f} s) | umap-learn + R {r1['umap_learn_r_s']:.2f} s | {r1['speedup']:.1f}x "
          f"| {r1['apmae_ari']:.4f} | {r1['peer_ari']:.4f} |", flush=True)
