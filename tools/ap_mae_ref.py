"""An independent PyTorch implementation of AP-MAE, written from docs/mae.md only:
the oracle the C model is checked against (tests/fixtures/mae, tools/
check_mae_checkpoint.py) and the peer of the training benchmark.

Module names follow the released checkpoints' tensor names, so
`state_dict()` keys are exactly those of docs/mae.md and a checkpoint directory
written by `apmae mae` loads with load_state_dict(strict=True).

    model = APMAE(config_dict)
    scaled = scale(patterns, config)                   # [B, N, N]
    loss, pred = model(scaled, masked)                 # [B], [B, M, p*p]
    cls, mean = model.encode(scaled)                   # [B, D_enc] each
Passing compat="reference" reproduces the published code's two quirks.
"""

import json
import math
import os

import torch
from torch import nn

import safetensors_io


def load_config(path):
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    if cfg.get("max_length", 0) % cfg.get("patch_size", 1):
        raise ValueError(f"{path}: max_length is not divisible by patch_size")
    return cfg


def scale(patterns, cfg):
    """The scaler of docs/mae.md over [B, N, N] probabilities (any float dtype)."""
    kind = cfg.get("attention_scaler") or "log_normalize"
    P = patterns
    if kind == "none":
        return P.clone()
    x = torch.log(P)
    if kind == "log":
        fill = 1.0 / math.log(cfg["max_length"])
        return torch.where(torch.isfinite(x), x, torch.full_like(x, fill))
    assert kind == "log_normalize", kind
    counted = torch.where(torch.isneginf(x), torch.zeros_like(x), x)
    m = counted.flatten(1).min(dim=1).values.view(-1, 1, 1)
    # m = 0 (every non-zero entry is 1): those entries map to 1.
    safe_m = torch.where(m < 0, m, -torch.ones_like(m))
    out = torch.where(m < 0, (x - m) / (-safe_m), torch.ones_like(x))
    return torch.where(P > 0, out, torch.zeros_like(x))


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head, eps, qkv_bias):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.to_out = nn.Sequential(nn.Linear(inner, dim))

    def forward(self, x):
        B, S, _ = x.shape
        q, k, v = self.to_qkv(self.norm(x)).chunk(3, dim=-1)
        # rows are q | k | v, each head-major "(h d)"
        q, k, v = (t.view(B, S, self.heads, self.dim_head).transpose(1, 2) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) * self.dim_head ** -0.5, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, S, self.heads * self.dim_head)
        return self.to_out(y)


class FeedForward(nn.Module):
    def __init__(self, dim, mlp, eps):
        super().__init__()
        # indices 0, 1, 4 carry the released names; 2 is GELU, 3 a no-op
        self.net = nn.Sequential(nn.LayerNorm(dim, eps=eps), nn.Linear(dim, mlp), nn.GELU(), nn.Identity(),
                                 nn.Linear(mlp, dim))

    def forward(self, x):
        return self.net(x)


class Transformer(nn.Module):
    def __init__(self, dim, layers, heads, dim_head, mlp, eps, qkv_bias):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads, dim_head, eps, qkv_bias), FeedForward(dim, mlp, eps)])
            for _ in range(layers))
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x):
        for attn, ff in self.layers:
            x = x + attn(x)
            x = x + ff(x)
        return self.norm(x)


def _grid(cfg):
    g = cfg["max_length"] // cfg["patch_size"]
    return g, [k for k in range(g * g) if k // g >= k % g]


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        p2, D, eps = cfg["patch_size"] ** 2, cfg["encoder_dim"], cfg.get("layer_norm_eps", 1e-12)
        g, _ = _grid(cfg)
        self.pos_embedding = nn.Parameter(torch.randn(1, g * g + 1, D))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.patches_to_embedding = nn.Sequential(nn.LayerNorm(p2, eps=eps), nn.Linear(p2, D),
                                                  nn.LayerNorm(D, eps=eps))
        self.transformer = Transformer(D, cfg["encoder_layers"], cfg["encoder_heads"], cfg["encoder_dim_head"],
                                       cfg["encoder_mlp_dim"], eps, cfg.get("qkv_bias", False))

    def forward(self, patches, ids):
        """patches [B, g², p²]; ids [B, V] patch ids to encode -> [B, 1+V, D]."""
        B = patches.shape[0]
        sel = torch.gather(patches, 1, ids.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
        tok = self.patches_to_embedding(sel) + self.pos_embedding[0][1 + ids]
        cls = (self.cls_token + self.pos_embedding[:, :1]).expand(B, -1, -1)
        return self.transformer(torch.cat([cls, tok], dim=1))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        De, Dd, eps = cfg["encoder_dim"], cfg["decoder_dim"], cfg.get("layer_norm_eps", 1e-12)
        g, _ = _grid(cfg)
        if De != Dd:
            self.enc_to_dec = nn.Linear(De, Dd)
        self.mask_token = nn.Parameter(torch.randn(Dd))
        self.pos_embedding = nn.Parameter(torch.randn(1, g * g + 1, Dd))
        self.transformer = Transformer(Dd, cfg["decoder_layers"], cfg["decoder_heads"], cfg["decoder_dim_head"],
                                       cfg["decoder_mlp_dim"], eps, cfg.get("qkv_bias", False))
        self.to_pixels = nn.Linear(Dd, cfg["patch_size"] ** 2)


class APMAE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.g, self.tril = _grid(cfg)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.reset_parameters()

    def reset_parameters(self):
        """docs/mae.md: Linear Xavier-uniform / bias 0.01, LayerNorm 1/0, pos N(0,1),
        cls 0, mask token N(0,1)."""
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                if mod.bias is not None:
                    nn.init.constant_(mod.bias, 0.01)
            elif isinstance(mod, nn.LayerNorm):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
        for pos in (self.encoder.pos_embedding, self.decoder.pos_embedding, self.decoder.mask_token):
            nn.init.normal_(pos)
        nn.init.zeros_(self.encoder.cls_token)

    def patches(self, scaled):
        B, N, _ = scaled.shape
        p, g = self.cfg["patch_size"], self.g
        return scaled.reshape(B, g, p, g, p).permute(0, 1, 3, 2, 4).reshape(B, g * g, p * p)

    def visible(self, masked):
        """[B, T-M]: the lower-triangle patch ids not in masked, ascending."""
        B = masked.shape[0]
        tril = torch.tensor(self.tril, device=masked.device)
        hit = torch.zeros(B, self.g * self.g, dtype=torch.bool, device=masked.device)
        hit.scatter_(1, masked, True)
        keep = ~hit[:, tril]
        return tril.expand(B, -1)[keep].view(B, -1)

    def forward(self, scaled, masked, compat="default"):
        """Masked forward -> (loss [B], pred [B, M, p²]) in the order of masked."""
        patches = self.patches(scaled)
        B, M = masked.shape
        vis = self.visible(masked)
        enc = self.encoder(patches, vis)
        dec = self.decoder
        h = dec.enc_to_dec(enc) if hasattr(dec, "enc_to_dec") else enc
        Dd = h.shape[-1]
        slots = torch.zeros(B, self.g * self.g + 1, Dd, dtype=h.dtype, device=h.device)
        slots[:, 0] = h[:, 0]
        rows = torch.arange(B, device=h.device).unsqueeze(1)
        if compat == "reference":  # mask token in the visible slots, masked slots left at 0
            slots[rows, 1 + vis] = dec.mask_token.expand(B, vis.shape[1], Dd)
        else:
            slots[rows, 1 + vis] = h[:, 1:]
            slots[rows, 1 + masked] = dec.mask_token.expand(B, M, Dd)
        out = dec.transformer(slots + dec.pos_embedding)
        pred = dec.to_pixels(out[rows, 1 + masked])
        target = patches[rows, masked]
        loss = ((pred - target) ** 2).flatten(1).mean(dim=1)
        return loss, pred

    def encode(self, scaled, compat="default"):
        """-> (cls [B, D], mean [B, D]) of docs/mae.md's encoding."""
        patches = self.patches(scaled)
        B = patches.shape[0]
        ids = list(range(self.g * self.g)) if compat == "reference" else self.tril
        ids = torch.tensor(ids, dtype=torch.long, device=scaled.device).expand(B, -1)
        out = self.encoder(patches, ids)
        if compat == "reference":  # mean over slot 0 and the lower-triangle slots
            keep = torch.tensor([0] + [1 + k for k in self.tril], device=scaled.device)
            return out[:, 0], out[:, keep].mean(dim=1)
        return out[:, 0], out.mean(dim=1)


def load_checkpoint(directory, dtype=torch.float32):
    """An AP-MAE checkpoint directory -> APMAE with a strict state-dict match."""
    cfg = load_config(directory)
    model = APMAE(cfg)
    tensors, _ = safetensors_io.load(os.path.join(directory, "model.safetensors"))
    state = {k: torch.from_numpy(safetensors_io.to_float32(dt, a).copy()) for k, (dt, a) in tensors.items()}
    model.load_state_dict(state, strict=True)
    return model.to(dtype)


def save_checkpoint(model, directory):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(dict(model.cfg, model_type="ap_mae"), f, indent=2)
        f.write("\n")
    tensors = {k: ("F32", v.detach().to(torch.float32).cpu().numpy()) for k, v in model.state_dict().items()}
    safetensors_io.save(os.path.join(directory, "model.safetensors"), tensors, {"format": "pt"})
