"""PyTorch peer of `apmae mae bench`: training images/s of the same AP-MAE
(tools/ap_mae_ref.py, float32) for the same config and batch on the same
number of threads. One step = scale the raw patterns, draw random masks,
forward, mean loss, backward, AdamW (betas 0.9/0.95, weight decay 0.05).

    /usr/bin/python3 bench/torch_mae_train.py --config small --batch 60 [--steps 5] [--threads T]

Prints one JSON line like the C bench (images/s = batch / median step time
after one warm-up step). Threads default to OMP_NUM_THREADS.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ap_mae_ref  # noqa: E402

# The built-in configs of src/mae/config.c.
BUILTIN = {
    "tiny": (64, 16, 128, 12, 8, 64, 512, 128, 8, 8, 64, 512),
    "paper": (256, 32, 512, 24, 16, 64, 2048, 512, 8, 8, 64, 2048),
    "small": (256, 32, 128, 4, 4, 32, 512, 128, 2, 4, 32, 512),
}
KEYS = ("max_length", "patch_size", "encoder_dim", "encoder_layers", "encoder_heads", "encoder_dim_head",
        "encoder_mlp_dim", "decoder_dim", "decoder_layers", "decoder_heads", "decoder_dim_head", "decoder_mlp_dim")


def config(name):
    if name in BUILTIN:
        cfg = dict(zip(KEYS, BUILTIN[name]))
        cfg.update(mask_ratio=0.75, layer_norm_eps=1e-12, qkv_bias=False, hidden_act="gelu",
                   attention_scaler="log_normalize")
        return cfg
    return ap_mae_ref.load_config(name)


def random_patterns(B, N, gen):
    logits = torch.rand(B, N, N, generator=gen) * 4.0
    causal = torch.ones(N, N, dtype=torch.bool).tril()
    return torch.softmax(logits.masked_fill(~causal, float("-inf")), dim=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="small")
    ap.add_argument("--batch", type=int, default=60)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = config(args.config)
    model = ap_mae_ref.APMAE(cfg)
    B = args.batch
    opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4 * B / 50, betas=(0.9, 0.95), weight_decay=0.05)
    gen = torch.Generator().manual_seed(1)
    patterns = random_patterns(B, cfg["max_length"], gen)
    tril = torch.tensor(model.tril)
    M = int(cfg["mask_ratio"] * len(model.tril))

    def masks():
        return tril[torch.rand(B, len(model.tril), generator=gen).argsort(dim=-1)[:, :M]]

    def train_step():
        loss, _ = model(ap_mae_ref.scale(patterns, cfg), masks())
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    def forward_step():
        with torch.no_grad():
            return model(ap_mae_ref.scale(patterns, cfg), masks())[0].mean().item()

    result = {"impl": "torch", "config": args.config, "batch": B, "steps": args.steps, "threads": args.threads}
    for key, fn in (("train_images_per_s", train_step), ("forward_images_per_s", forward_step)):
        fn()  # warm-up
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            last = fn()
            times.append(time.perf_counter() - t0)
        result[key] = round(B / statistics.median(times), 2)  # as the C bench: batch / median step time
    result["last_loss"] = round(last, 6)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
