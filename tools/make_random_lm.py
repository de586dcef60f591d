#!/usr/bin/python3
"""Write a random StarCoder2 checkpoint directory (config.json in Hugging Face
Starcoder2Config form + model.safetensors) for tests and benchmarks.

    /usr/bin/python3 tools/make_random_lm.py --hidden 64 --layers 2 --heads 4 \
        --kv-heads 2 --intermediate 256 --vocab 1000 --dtype bf16 --out /tmp/lm

Weights: matrices N(0, std) (std 0.02 unless --std), biases small non-zero
N(0, 0.02), LayerNorm weights 1 + N(0, 0.1) and biases N(0, 0.1) — so a
forward pass that drops a bias or a LayerNorm affine term gives visibly
different numbers. Same arguments and seed -> identical bytes.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

_DTYPES = {"f32": ("F32", "float32"), "f16": ("F16", "float16"), "bf16": ("BF16", "bfloat16")}


def hf_config(hidden, layers, heads, kv_heads, intermediate, vocab, sliding_window, tie, dtype,
              rope_theta, max_positions):
    """config.json content as transformers' Starcoder2Config writes it."""
    return {
        "architectures": ["Starcoder2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "embedding_dropout": 0.0,
        "eos_token_id": 0,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": intermediate,
        "max_position_embeddings": max_positions,
        "model_type": "starcoder2",
        "norm_epsilon": 1e-5,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "residual_dropout": 0.0,
        "rope_theta": rope_theta,
        "sliding_window": sliding_window,
        "tie_word_embeddings": tie,
        "torch_dtype": _DTYPES[dtype][1],
        "use_bias": True,
        "use_cache": True,
        "vocab_size": vocab,
    }


def random_weights(cfg, seed, std):
    """Ordered dict name -> float32 array, in the HF tensor naming."""
    rng = np.random.default_rng(seed)
    D, V, I = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = D // H

    def mat(rows, cols):
        return rng.normal(0.0, std, (rows, cols)).astype(np.float32)

    def bias(n):
        return rng.normal(0.0, 0.02, n).astype(np.float32)

    def ln(prefix):
        return {prefix + ".weight": (1.0 + rng.normal(0.0, 0.1, D)).astype(np.float32),
                prefix + ".bias": rng.normal(0.0, 0.1, D).astype(np.float32)}

    w = {"model.embed_tokens.weight": mat(V, D)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w.update(ln(p + "input_layernorm"))
        for name, rows in (("q", H * hd), ("k", KV * hd), ("v", KV * hd), ("o", D)):
            w[f"{p}self_attn.{name}_proj.weight"] = mat(rows, H * hd if name == "o" else D)
            w[f"{p}self_attn.{name}_proj.bias"] = bias(rows)
        w.update(ln(p + "post_attention_layernorm"))
        w[p + "mlp.c_fc.weight"] = mat(I, D)
        w[p + "mlp.c_fc.bias"] = bias(I)
        w[p + "mlp.c_proj.weight"] = mat(D, I)
        w[p + "mlp.c_proj.bias"] = bias(D)
    w.update(ln("model.norm"))
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = mat(V, D)
    return w


def encode(arr, dtype):
    """float32 array -> (safetensors dtype name, array to store)."""
    if dtype == "f32":
        return "F32", arr
    if dtype == "f16":
        return "F16", arr.astype(np.float16)
    return "BF16", safetensors_io.bf16_bits(arr)


def make_checkpoint(out, hidden, layers, heads, kv_heads, intermediate, vocab, sliding_window=None,
                    tie=True, dtype="f32", seed=0, rope_theta=10000.0, max_positions=4096, std=0.02):
    if min(hidden, layers, heads, kv_heads, intermediate, vocab, max_positions) < 1:
        raise ValueError("sizes must be positive")
    if sliding_window is not None and sliding_window < 1:
        raise ValueError("--sliding-window must be positive")
    if hidden % heads or heads % kv_heads or (hidden // heads) % 2:
        raise ValueError("need hidden % heads == 0, heads % kv_heads == 0 and an even head_dim")
    cfg = hf_config(hidden, layers, heads, kv_heads, intermediate, vocab, sliding_window, tie, dtype,
                    rope_theta, max_positions)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    weights = random_weights(cfg, seed, std)
    safetensors_io.save(os.path.join(out, "model.safetensors"),
                        {name: encode(arr, dtype) for name, arr in weights.items()},
                        metadata={"format": "pt"})
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--kv-heads", type=int, required=True)
    ap.add_argument("--intermediate", type=int, required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--sliding-window", type=int, default=None, help="default: none (null)")
    ap.add_argument("--tie", dest="tie", action="store_true", default=True)
    ap.add_argument("--no-tie", dest="tie", action="store_false")
    ap.add_argument("--dtype", choices=sorted(_DTYPES), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--max-positions", type=int, default=4096)
    ap.add_argument("--std", type=float, default=0.02, help="std of the weight matrices")
    ap.add_argument("--out", required=True, help="output directory")
    a = ap.parse_args()
    try:
        make_checkpoint(a.out, a.hidden, a.layers, a.heads, a.kv_heads, a.intermediate, a.vocab,
                        a.sliding_window, a.tie, a.dtype, a.seed, a.rope_theta, a.max_positions, a.std)
    except ValueError as e:
        sys.exit(f"make_random_lm: {e}")


if __name__ == "__main__":
    main()
