#!/usr/bin/python3
"""PyTorch peer of the LM training benchmark: the StarCoder2 architecture
(docs/lm.md) as an eager torch.nn model, trained in float32 on random tokens
with what `apmae lm train` does per step: forward, cross-entropy, backward,
gradient clipping at 1.0 and AdamW (betas 0.9/0.95, weight decay on
matrices). Same shapes as `apmae lm train-bench`.

    /usr/bin/python3 bench/torch_lm_train.py --hidden 256 --layers 6 --heads 8 --kv-heads 2 \
        --intermediate 1024 --vocab 8192 --batch 16 --seq-len 256 --steps 3 --threads 2

Prints one JSON line: {"impl": "torch-eager", "tokens_per_s", "seconds" (best
step after one warm-up step), "threads", "torch", ...}.
"""

import argparse
import json
import math
import os
import sys
import time


def set_thread_env(n):
    """Before torch loads: both of its pools (OpenBLAS for matrix products,
    OpenMP for the rest) at n threads, OpenMP threads sleeping when idle
    (bench/torch_lm_forward.py explains why this is torch's fastest setting
    here)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build_model(torch, a):
    nn, F = torch.nn, torch.nn.functional
    D, H, KV, I, V = a.hidden, a.heads, a.kv_heads, a.intermediate, a.vocab
    hd = D // H

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = nn.LayerNorm(D, eps=1e-5)
            self.q_proj, self.k_proj = nn.Linear(D, D), nn.Linear(D, KV * hd)
            self.v_proj, self.o_proj = nn.Linear(D, KV * hd), nn.Linear(D, D)
            self.post_attention_layernorm = nn.LayerNorm(D, eps=1e-5)
            self.c_fc, self.c_proj = nn.Linear(D, I), nn.Linear(I, D)

        def forward(self, h, cos, sin, mask):
            B, T, _ = h.shape
            a = self.input_layernorm(h)
            q = self.q_proj(a).view(B, T, H, hd).transpose(1, 2)
            k = self.k_proj(a).view(B, T, KV, hd).transpose(1, 2)
            v = self.v_proj(a).view(B, T, KV, hd).transpose(1, 2)

            def rope(x):
                x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
                return x * cos + torch.cat([-x2, x1], dim=-1) * sin

            q, k = rope(q), rope(k)
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            p = F.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
            o = (p @ v).transpose(1, 2).reshape(B, T, D)
            h = h + self.o_proj(o)
            m = self.post_attention_layernorm(h)
            return h + self.c_proj(F.gelu(self.c_fc(m), approximate="tanh"))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(V, D)
            self.layers = nn.ModuleList([Block() for _ in range(a.layers)])
            self.norm = nn.LayerNorm(D, eps=1e-5)
            for p in self.parameters():
                if p.dim() == 2:
                    nn.init.normal_(p, std=0.02)

        def forward(self, ids, targets, cos, sin, mask):
            h = self.embed_tokens(ids)
            for layer in self.layers:
                h = layer(h, cos, sin, mask)
            logits = F.linear(self.norm(h), self.embed_tokens.weight)  # tied head
            return F.cross_entropy(logits.view(-1, V), targets.view(-1))

    return Model()


def main():
    ap = argparse.ArgumentParser(description="Time eager PyTorch training steps of a StarCoder2-architecture model.")
    for name, default in (("hidden", 256), ("layers", 6), ("heads", 8), ("kv-heads", 2), ("intermediate", 1024),
                          ("vocab", 8192), ("batch", 16), ("seq-len", 256), ("steps", 3), ("threads", 1)):
        ap.add_argument("--" + name, type=int, default=default)
    a = ap.parse_args()
    if min(a.hidden, a.layers, a.heads, a.kv_heads, a.intermediate, a.vocab, a.batch, a.seq_len, a.steps,
           a.threads) < 1:
        sys.exit("torch_lm_train: every size must be >= 1")
    set_thread_env(a.threads)
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = build_model(torch, a)
    decay = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    hd, T = a.hidden // a.heads, a.seq_len
    inv = 10000.0 ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2 / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=1)
    cos, sin = ang.cos().float(), ang.sin().float()
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    ids = torch.randint(0, a.vocab, (a.batch, T))
    targets = torch.roll(ids, -1, dims=1)
    best = float("inf")
    for step in range(a.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(ids, targets, cos, sin, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if step > 0:
            best = min(best, dt)
    n = a.batch * T
    print(json.dumps({"impl": "torch-eager", "tokens_per_s": n / best, "seconds": best, "batch": a.batch,
                      "seq_len": T, "threads": a.threads, "loss": float(loss), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
