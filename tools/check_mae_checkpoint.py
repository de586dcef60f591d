"""Checks that a checkpoint written by `apmae mae init` loads into the PyTorch
AP-MAE of tools/ap_mae_ref.py with load_state_dict(strict=True), that its
initialisation is the one of docs/mae.md, and that `apmae mae forward` agrees
with PyTorch (float64) on scaled, loss, pred, cls and mean in both modes.

    /usr/bin/python3 tools/check_mae_checkpoint.py --apmae build/bin/apmae --workdir DIR [--config FILE]

Without --config a small config with encoder and decoder of different widths
is used. Prints one line per check; exits non-zero on any failure.
"""

import argparse
import json
import math
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ap_mae_ref  # noqa: E402
import safetensors_io  # noqa: E402

SMALL = dict(model_type="ap_mae", max_length=32, patch_size=8, mask_ratio=0.75, encoder_dim=48, encoder_layers=2,
             encoder_heads=2, encoder_dim_head=16, encoder_mlp_dim=96, decoder_dim=32, decoder_layers=1,
             decoder_heads=2, decoder_dim_head=16, decoder_mlp_dim=64, hidden_act="gelu", layer_norm_eps=1e-12,
             qkv_bias=False)
TOL = 1e-4


def fail(msg):
    print(f"check_mae_checkpoint: FAIL: {msg}")
    sys.exit(1)


def check_init(model):
    """docs/mae.md: Linear Xavier-uniform / 0.01, LayerNorm 1/0, pos and mask N(0,1), cls 0."""
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            fan_out, fan_in = mod.weight.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            w = mod.weight.detach()
            if w.abs().max() > bound or abs(w.std().item() / (bound / math.sqrt(3)) - 1) > 0.1:
                fail(f"{name}.weight is not Xavier-uniform (bound {bound:.4f})")
            if mod.bias is not None and not torch.all(mod.bias == 0.01):
                fail(f"{name}.bias is not 0.01")
        elif isinstance(mod, torch.nn.LayerNorm):
            if not (torch.all(mod.weight == 1) and torch.all(mod.bias == 0)):
                fail(f"{name} is not LayerNorm 1/0")
    if not torch.all(model.encoder.cls_token == 0):
        fail("encoder.cls_token is not 0")
    normals = [model.encoder.pos_embedding, model.decoder.pos_embedding, model.decoder.mask_token]
    allv = torch.cat([t.detach().flatten() for t in normals])
    if abs(allv.mean().item()) > 0.1 or abs(allv.std().item() - 1) > 0.1:
        fail(f"pos tables / mask token are not N(0,1): mean {allv.mean():.3f} std {allv.std():.3f}")
    print("check_mae_checkpoint: init as docs/mae.md (Xavier-uniform, 0.01, LayerNorm 1/0, N(0,1), cls 0): ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--apmae", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--config")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.workdir, exist_ok=True)
    cfg_path = args.config
    if not cfg_path:
        cfg_path = os.path.join(args.workdir, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(SMALL, f)
    ckpt = os.path.join(args.workdir, "ckpt")
    subprocess.run([args.apmae, "--quiet", "mae", "init", "--config", cfg_path, "--seed", "11", "--out", ckpt],
                   check=True)
    model = ap_mae_ref.load_checkpoint(ckpt)  # strict=True inside
    print(f"check_mae_checkpoint: {ckpt}: {len(model.state_dict())} tensors load with strict=True: ok")
    check_init(model)
    model = model.to(torch.float64)  # the stored float32 values, computed in float64

    cfg = model.cfg
    gen = torch.Generator().manual_seed(3)
    B, N = 4, cfg["max_length"]
    logits = torch.randn(B, N, N, generator=gen, dtype=torch.float64) * 2
    logits = logits.masked_fill(~torch.ones(N, N, dtype=torch.bool).tril(), float("-inf"))
    patterns = torch.softmax(logits, dim=-1).to(torch.float32)
    tril = torch.tensor(model.tril)
    M = int(cfg["mask_ratio"] * len(model.tril))
    masked = torch.stack([tril[torch.randperm(len(tril), generator=gen)[:M]] for _ in range(B)])
    inp = os.path.join(args.workdir, "in.safetensors")
    safetensors_io.save(inp, {"patterns": ("F32", patterns.numpy()), "masked_indices": ("I64", masked.numpy())})
    scaled = ap_mae_ref.scale(patterns.to(torch.float64), cfg)
    worst = 0.0
    for compat in ("default", "reference"):
        out = os.path.join(args.workdir, f"out_{compat}.safetensors")
        subprocess.run([args.apmae, "--quiet", "mae", "forward", "--model", ckpt, "--in", inp, "--out", out,
                        "--compat", compat], check=True)
        got, _ = safetensors_io.load(out)
        with torch.no_grad():
            loss, pred = model(scaled, masked, compat=compat)
            cls, mean = model.encode(scaled, compat=compat)
        for name, want in (("scaled", scaled), ("loss", loss), ("pred", pred), ("cls", cls), ("mean", mean)):
            g = torch.from_numpy(got[name][1].astype("float64"))
            if g.shape != want.shape:
                fail(f"{compat}: {name} has shape {list(g.shape)}, PyTorch {list(want.shape)}")
            err = (g - want).abs().max().item()
            worst = max(worst, err)
            if not err <= TOL:
                fail(f"{compat}: {name} differs from PyTorch by {err:.3e}")
    print(f"check_mae_checkpoint: apmae mae forward vs PyTorch, both modes: max abs err {worst:.2e}: ok")


if __name__ == "__main__":
    main()
