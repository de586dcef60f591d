#!/usr/bin/python3
"""Build tests/fixtures/lm/<case>/: a small random StarCoder2 checkpoint
(config.json, model.safetensors) and expected.safetensors holding the
reference forward pass of tools/starcoder2_ref.py:

    input_ids  I64 [T]
    logits     F32 [T, V]
    attentions F32 [L, H, T, T]
    ablate     I64 [K, 2]  (layer, head) pairs ablated in this case; [0, 2] if none

    /usr/bin/python3 tools/make_lm_fixtures.py [--out tests/fixtures/lm]

Deterministic: rerunning writes identical bytes.

The weight matrices use std 0.25 rather than make_random_lm's default 0.02:
with 0.02 the attention scores are ~1e-2, every pattern is nearly uniform over
the allowed keys, and a wrong RoPE angle or a wrong GQA head mapping would move
the probabilities by less than the test tolerance would notice comfortably.
With 0.25 the scores have a spread of order 1, so patterns are peaked and such
bugs change them by 1e-2 or more.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_random_lm  # noqa: E402
import safetensors_io  # noqa: E402
from starcoder2_ref import StarCoder2  # noqa: E402

FIXTURE_STD = 0.25

# Odd sizes (vocab, intermediate, T) so blocked/tiled loops meet ragged edges.
CASES = [
    dict(name="f32_gqa_untied", hidden=32, layers=2, heads=4, kv_heads=2, intermediate=80, vocab=101,
         dtype="f32", tie=False, sliding_window=None, rope_theta=10000.0, T=17, seed=1, ablate=[]),
    dict(name="bf16_mha_tied", hidden=48, layers=3, heads=4, kv_heads=4, intermediate=72, vocab=97,
         dtype="bf16", tie=True, sliding_window=None, rope_theta=10000.0, T=15, seed=2, ablate=[]),
    dict(name="f16_gqa_window", hidden=40, layers=2, heads=4, kv_heads=2, intermediate=72, vocab=103,
         dtype="f16", tie=False, sliding_window=5, rope_theta=10000.0, T=19, seed=3, ablate=[]),
    dict(name="f32_ablate", hidden=32, layers=3, heads=4, kv_heads=2, intermediate=64, vocab=100,
         dtype="f32", tie=True, sliding_window=None, rope_theta=10000.0, T=14, seed=4,
         ablate=[(0, 1), (2, 0), (2, 3)]),
    dict(name="bf16_gqa_theta", hidden=64, layers=2, heads=8, kv_heads=2, intermediate=64, vocab=100,
         dtype="bf16", tie=False, sliding_window=None, rope_theta=100000.0, T=13, seed=5, ablate=[]),
]


def build_case(root, case):
    d = os.path.join(root, case["name"])
    make_random_lm.make_checkpoint(
        d, case["hidden"], case["layers"], case["heads"], case["kv_heads"], case["intermediate"],
        case["vocab"], sliding_window=case["sliding_window"], tie=case["tie"], dtype=case["dtype"],
        seed=case["seed"], rope_theta=case["rope_theta"], max_positions=64, std=FIXTURE_STD)
    rng = np.random.default_rng(1000 + case["seed"])
    ids = rng.integers(0, case["vocab"], case["T"], dtype=np.int64)
    model = StarCoder2.load(d)
    logits, attn = model.forward(ids, ablate=case["ablate"])
    ablate = np.array(case["ablate"], dtype=np.int64).reshape(-1, 2)
    safetensors_io.save(os.path.join(d, "expected.safetensors"), {
        "input_ids": ("I64", ids),
        "logits": ("F32", logits.numpy()),
        "attentions": ("F32", attn.numpy()),
        "ablate": ("I64", ablate),
    })
    return d


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="Regenerate the LM reference fixtures.")
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "lm"))
    a = ap.parse_args()
    for case in CASES:
        d = build_case(a.out, case)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{case['name']}: {size} bytes")


if __name__ == "__main__":
    main()
