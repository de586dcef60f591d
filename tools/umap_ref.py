"""Reference figures for apmae's UMAP (tests/test_umap.c), from umap-learn and
scikit-learn (Debian packages; run with /usr/bin/python3):

  /usr/bin/python3 tools/umap_ref.py [tests/fixtures/cluster]

writes
  digits.safetensors  scikit-learn's 8x8 digits: x U8 [1797, 64] (pixel values
                      0..16), labels U8 [1797], and umap_learn_embedding
                      F32 [1797, 8], umap-learn's embedding with the project's
                      defaults but 200 epochs (cosine, seed 42)
  umap_ref.json       umap-learn's a, b for several (min_dist, spread); on the
                      digits, umap-learn's trustworthiness for both metrics
                      over several seeds (scikit-learn's definition, the same
                      metric in the input space as UMAP's), and the adjusted
                      Rand index of R dbscan's hdbscan on umap-learn's
                      embedding against the digit labels.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

# The project's defaults but 200 epochs (umap-learn's rule gives 500 here) to keep the C test short.
PARAMS = {"n_components": 8, "n_neighbors": 20, "min_dist": 0.05, "spread": 1.0, "n_epochs": 200}
TRUST_K = 10
SEEDS = [42, 43, 44]
AB_CASES = [(0.05, 1.0), (0.1, 1.0), (0.001, 1.0), (0.5, 1.0), (0.1, 2.0), (1.0, 1.5)]
HDBSCAN_MIN_PTS = [20, 25]


def umap_learn(x, metric, seed):
    import umap

    return umap.UMAP(n_components=PARAMS["n_components"], n_neighbors=PARAMS["n_neighbors"],
                     min_dist=PARAMS["min_dist"], spread=PARAMS["spread"], n_epochs=PARAMS["n_epochs"],
                     metric=metric, random_state=seed).fit_transform(x)


def r_hdbscan_ari(emb, labels, min_pts):
    """ARI of R dbscan::hdbscan(emb, minPts) against labels (noise counted as
    one more label, as adjusted_rand_score sees it)."""
    from sklearn.metrics import adjusted_rand_score

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "emb.csv"), os.path.join(tmp, "labels.txt")
        np.savetxt(src, emb, delimiter=",", fmt="%.9g")
        script = (f"library(dbscan); x <- as.matrix(read.csv('{src}', header = FALSE)); "
                  f"writeLines(as.character(hdbscan(x, minPts = {min_pts})$cluster), '{dst}')")
        subprocess.run(["Rscript", "-e", script], check=True, capture_output=True)
        found = np.loadtxt(dst, dtype=int)
    return float(adjusted_rand_score(labels, found)), int(found.max()), float(np.mean(found == 0))


def main():
    from sklearn.datasets import load_digits
    from sklearn.manifold import trustworthiness
    from umap.umap_ import find_ab_params

    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "fixtures", "cluster")
    os.makedirs(out_dir, exist_ok=True)
    digits = load_digits()
    pixels = digits.data.astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    x = pixels.astype(np.float32)

    ref = {"params": PARAMS, "trust_k": TRUST_K, "ab": [], "digits": {}}
    for min_dist, spread in AB_CASES:
        a, b = find_ab_params(spread, min_dist)
        ref["ab"].append({"min_dist": min_dist, "spread": spread, "a": float(a), "b": float(b)})

    fixture_emb = None
    for metric in ("cosine", "euclidean"):
        trust = []
        for seed in SEEDS:
            emb = umap_learn(x, metric, seed)
            trust.append(float(trustworthiness(x, emb, n_neighbors=TRUST_K, metric=metric)))
            if metric == "cosine" and seed == SEEDS[0]:
                fixture_emb = emb.astype(np.float32)
        ref["digits"][metric] = {"seeds": SEEDS, "umap_learn_trust": trust}
        print(metric, "trustworthiness", trust, flush=True)

    # the C trustworthiness is checked on this very embedding
    ref["digits"]["fixture_embedding"] = {
        "metric": "cosine", "seed": SEEDS[0],
        "trust": float(trustworthiness(x, fixture_emb, n_neighbors=TRUST_K, metric="cosine")),
        "r_hdbscan": []}
    for min_pts in HDBSCAN_MIN_PTS:
        ari, nclusters, noise = r_hdbscan_ari(fixture_emb, labels, min_pts)
        ref["digits"]["fixture_embedding"]["r_hdbscan"].append(
            {"minPts": min_pts, "ari": ari, "clusters": nclusters, "noise_fraction": noise})
        print("R hdbscan minPts", min_pts, "ARI", ari, "clusters", nclusters, "noise", noise, flush=True)

    safetensors_io.save(os.path.join(out_dir, "digits.safetensors"),
                        {"x": ("U8", pixels), "labels": ("U8", labels),
                         "umap_learn_embedding": ("F32", fixture_emb)},
                        {"source": "sklearn.datasets.load_digits; embedding: tools/umap_ref.py"})
    with open(os.path.join(out_dir, "umap_ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
