#!/usr/bin/python3
"""Independent check of an AP-MAE checkpoint's head-mean table
(DIR/head_mean.safetensors, docs/mae.md) on real data, with h5py and numpy:
recompute the training split from DIR/train_args.json (FNV-1a of the scenario
id mixed with the seed by splitmix64, as docs/mae.md describes), scale every
training pattern of the chosen heads with the PyTorch reference scaler
(tools/ap_mae_ref.py) and average them in float64; print the largest
difference to the cached float16 table.

usage: check_head_mean.py DIR [--store S] [--heads 0:0,3:5]
"""

import argparse
import json
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
from ap_mae_ref import scale  # noqa: E402

M64 = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def hash_mix(a, b):
    return splitmix64(a ^ ((b * 0xD6E8FEB86659FD93) & M64))


def fnv1a(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & M64
    return h


def training_samples(ids, tasks, args):
    """Indices of the split's training samples among the first store_samples."""
    rate, seed = args["holdout"], int(args["seed"])
    wanted = set(args["split_tasks"]) if args.get("split_tasks") else None
    hashes = {}
    held = set()
    for i, (sid, task) in enumerate(zip(ids, tasks)):
        if wanted is not None and task not in wanted:
            continue
        h = hash_mix(fnv1a(sid.encode()), seed)
        hashes[i] = h
        if (h >> 11) * 2.0**-53 < rate:
            held.add(i)
    if rate > 0 and not held and hashes:  # at least one held out
        held.add(min(hashes, key=hashes.get))
    count = args.get("store_samples", -1)
    count = len(ids) if count is None or count < 0 else count
    return [i for i in sorted(hashes) if i not in held and i < count]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--store", help="the training store (default: as train_args.json records)")
    ap.add_argument("--heads", default="0:0,3:5")
    opt = ap.parse_args()
    args = json.load(open(os.path.join(opt.model, "train_args.json")))
    cfg = json.load(open(os.path.join(opt.model, "config.json")))
    tensors, _ = safetensors_io.load(os.path.join(opt.model, "head_mean.safetensors"))
    cached = tensors["head_mean"][1].astype(np.float64)
    f = h5py.File(opt.store or args["store"], "r")
    N = int(f.attrs["n_tokens"])
    ids = f["samples/id"].asstr()[:]
    tasks = f["samples/task"].asstr()[:]
    train = training_samples(ids, tasks, args)
    rows, cols = np.tril_indices(N)
    worst = 0.0
    for spec in opt.heads.split(","):
        layer, head = map(int, spec.split(":"))
        total = np.zeros(N * (N + 1) // 2)
        for i in train:
            P = np.zeros((1, N, N), np.float32)
            P[0, rows, cols] = f["patterns"][i, layer, head]
            total += scale(torch.from_numpy(P), cfg)[0].double().numpy()[rows, cols]
        diff = np.abs(total / len(train) - cached[layer, head]).max()
        worst = max(worst, diff)
        print(f"layer {layer} head {head}: {len(train)} training samples, max |numpy mean - cached| = {diff:.3g}")
    print(f"worst {worst:.3g} (float16 rounding of values in [0, 1] is at most {2.0**-12:.3g})")
    return 0 if worst <= 2.0**-12 + 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
