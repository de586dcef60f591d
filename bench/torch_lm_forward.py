#!/usr/bin/python3
"""PyTorch peer of the LM forward benchmark: the eager reference
(tools/starcoder2_ref.py) in float32, attention probabilities of every head
returned, as the extraction step needs them.

    /usr/bin/python3 bench/torch_lm_forward.py --model DIR --tokens 256 --iters 5 --threads 2

Prints one JSON line: {"impl": "torch-eager", "tokens_per_s", "seconds"
(best of --iters, after one warm-up), "threads", "torch", ...}.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def set_thread_env(n):
    """Must run before torch (and the OpenBLAS it links) is loaded. Debian's
    torch does its matrix products in OpenBLAS (pthreads build), which starts
    its own thread pool sized to all cores, and its elementwise ops in
    OpenMP. Measured on 2 cores: with the defaults, 2 torch threads ran 5x
    slower than 1 (libgomp's spin-waiting threads fight OpenBLAS's), while
    OMP_WAIT_POLICY=PASSIVE with both pools at n threads was the fastest
    setting for every n. So --threads N means N threads in both pools."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main():
    ap = argparse.ArgumentParser(description="Time the eager PyTorch StarCoder2 forward pass.")
    ap.add_argument("--model", required=True, help="checkpoint directory (config.json + safetensors)")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--last-only", action="store_true", help="logits at the last position only")
    a = ap.parse_args()
    if a.tokens < 1 or a.iters < 1 or a.threads < 1:
        sys.exit("torch_lm_forward: --tokens, --iters and --threads must be >= 1")

    set_thread_env(a.threads)
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    from starcoder2_ref import StarCoder2

    torch.set_num_threads(a.threads)
    model = StarCoder2.load(a.model)
    ids = np.random.default_rng(a.seed).integers(0, model.cfg.vocab_size, a.tokens, dtype=np.int64)

    best = float("inf")
    with torch.inference_mode():
        model.forward(ids, attentions=True, last_only=a.last_only)  # warm-up
        for _ in range(a.iters):
            t0 = time.perf_counter()
            logits, attn = model.forward(ids, attentions=True, last_only=a.last_only)
            best = min(best, time.perf_counter() - t0)
    print(json.dumps({"impl": "torch-eager", "tokens_per_s": a.tokens / best, "seconds": best,
                      "tokens": a.tokens, "threads": a.threads, "last_only": a.last_only,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
