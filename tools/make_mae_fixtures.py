"""Writes the AP-MAE forward fixtures of tests/test_mae_reference.c from the
independent PyTorch implementation tools/ap_mae_ref.py. Deterministic:
rerunning rewrites the same files.

    /usr/bin/python3 tools/make_mae_fixtures.py [OUT_DIR]   (default tests/fixtures/mae)

Each fixture directory holds an AP-MAE checkpoint (config.json,
model.safetensors in the released naming, written here, read by the C code)
and io.safetensors: the inputs `patterns` F32 [B,N,N] and `masked_indices`
I64 [B,M], and the outputs computed in float64 from the stored float32
weights: `scaled`, `scaled_log` (the `log` scaler), `loss`, `pred`, `cls`,
`mean`, and `ref_loss`, `ref_pred`, `ref_cls`, `ref_mean` for
--compat reference. Both configs have encoder and decoder of different
widths (enc_to_dec exists); the second has to_qkv biases.
"""

import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ap_mae_ref  # noqa: E402
import safetensors_io  # noqa: E402

CONFIGS = {
    "n32p8": dict(max_length=32, patch_size=8, mask_ratio=0.5, encoder_dim=48, encoder_layers=2, encoder_heads=3,
                  encoder_dim_head=16, encoder_mlp_dim=96, decoder_dim=32, decoder_layers=2, decoder_heads=2,
                  decoder_dim_head=16, decoder_mlp_dim=64, hidden_act="gelu", layer_norm_eps=1e-12,
                  qkv_bias=False, attention_scaler="log_normalize"),
    "n32p4": dict(max_length=32, patch_size=4, mask_ratio=0.75, encoder_dim=32, encoder_layers=2, encoder_heads=2,
                  encoder_dim_head=16, encoder_mlp_dim=64, decoder_dim=24, decoder_layers=1, decoder_heads=3,
                  decoder_dim_head=8, decoder_mlp_dim=48, hidden_act="gelu", layer_norm_eps=1e-12,
                  qkv_bias=True, attention_scaler="log_normalize"),
}
BATCH = 3


def causal_patterns(gen, B, N):
    """Softmax rows of random logits under a causal mask, like an LM's heads."""
    logits = torch.randn(B, N, N, generator=gen, dtype=torch.float64) * 2.0
    causal = torch.ones(N, N, dtype=torch.bool).tril()
    logits = logits.masked_fill(~causal, float("-inf"))
    return torch.softmax(logits, dim=-1).to(torch.float32)


def random_masks(gen, model, B, M):
    tril = torch.tensor(model.tril)
    return torch.stack([tril[torch.randperm(len(model.tril), generator=gen)[:M]] for _ in range(B)])


def make(name, cfg, out_dir, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = ap_mae_ref.APMAE(cfg)
    # Move every parameter off its symmetric init (LayerNorm 1/0, biases
    # 0.01, cls 0) so the fixture exercises each of them.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    d = os.path.join(out_dir, name)
    ap_mae_ref.save_checkpoint(model, d)
    model = ap_mae_ref.load_checkpoint(d, dtype=torch.float64)  # the stored float32 values

    patterns = causal_patterns(gen, BATCH, cfg["max_length"])
    T = len(model.tril)
    masked = random_masks(gen, model, BATCH, math.floor(cfg["mask_ratio"] * T))
    p64 = patterns.to(torch.float64)
    scaled = ap_mae_ref.scale(p64, cfg)
    out = {"patterns": patterns, "masked_indices": masked, "scaled": scaled,
           "scaled_log": ap_mae_ref.scale(p64, dict(cfg, attention_scaler="log"))}
    with torch.no_grad():
        for prefix, compat in (("", "default"), ("ref_", "reference")):
            loss, pred = model(scaled, masked, compat=compat)
            cls, mean = model.encode(scaled, compat=compat)
            out.update({prefix + "loss": loss, prefix + "pred": pred, prefix + "cls": cls, prefix + "mean": mean})
    tensors = {k: ("I64", v.numpy()) if v.dtype == torch.int64 else ("F32", v.to(torch.float32).numpy())
               for k, v in out.items()}
    safetensors_io.save(os.path.join(d, "io.safetensors"), tensors)
    print(f"{d}: loss {out['loss'].tolist()} reference {out['ref_loss'].tolist()}")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests",
                                                                   "fixtures", "mae")
    torch.set_num_threads(1)
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        make(name, cfg, out_dir, seed=100 + i)


if __name__ == "__main__":
    main()
