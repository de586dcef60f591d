"""Independent PyTorch reference of the StarCoder2 language model (docs/lm.md),
written from that page alone: plain eager PyTorch, no `transformers`.

    model = StarCoder2.load("path/to/checkpoint")      # config.json + safetensors
    logits, attn = model.forward(ids, ablate={(0, 1)})  # [T, V], [L, H, T, T]

Weights stored as F32, F16 or BF16 are widened to float32 and all arithmetic
is float32. `attn` holds every head's softmax probabilities, exactly 0 where
the causal mask or the sliding window hides a key. Ablating head (l, h) zeroes
that head's P·v before o_proj.
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


class Config:
    """The Starcoder2Config fields the forward pass uses."""

    def __init__(self, d):
        self.vocab_size = int(d["vocab_size"])
        self.hidden_size = int(d["hidden_size"])
        self.intermediate_size = int(d["intermediate_size"])
        self.num_layers = int(d["num_hidden_layers"])
        self.num_heads = int(d["num_attention_heads"])
        self.num_kv_heads = int(d.get("num_key_value_heads") or self.num_heads)
        self.rope_theta = float(d.get("rope_theta", 10000.0))
        self.norm_epsilon = float(d.get("norm_epsilon", 1e-5))
        sw = d.get("sliding_window")
        self.sliding_window = int(sw) if sw is not None else None
        self.use_bias = bool(d.get("use_bias", True))
        self.tie_word_embeddings = bool(d.get("tie_word_embeddings", True))
        act = d.get("hidden_act", "gelu_pytorch_tanh")
        if act not in ("gelu_pytorch_tanh", "gelu_tanh"):
            raise ValueError(f"hidden_act {act!r} is not the tanh GELU")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size must divide into heads and heads into KV groups")
        self.head_dim = self.hidden_size // self.num_heads
        if self.head_dim % 2:
            raise ValueError("RoPE needs an even head_dim")


def read_checkpoint(model_dir):
    """All tensors of a checkpoint directory (single file or sharded index)
    as float32 torch tensors, by name."""
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        files = [single]
    else:
        with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
            index = json.load(f)
        files = [os.path.join(model_dir, s) for s in sorted(set(index["weight_map"].values()))]
    weights = {}
    for path in files:
        tensors, _ = safetensors_io.load(path, copy=False)
        for name, (dtype, arr) in tensors.items():
            weights[name] = torch.from_numpy(safetensors_io.to_float32(dtype, arr))  # a fresh copy
    return weights


class StarCoder2:
    def __init__(self, cfg, weights):
        self.cfg = cfg
        self.w = weights
        c = cfg
        D, hd = c.hidden_size, c.head_dim
        expect = {"model.embed_tokens.weight": (c.vocab_size, D),
                  "model.norm.weight": (D,), "model.norm.bias": (D,)}
        for i in range(c.num_layers):
            p = f"model.layers.{i}."
            shapes = {"input_layernorm.weight": (D,), "input_layernorm.bias": (D,),
                      "self_attn.q_proj.weight": (c.num_heads * hd, D),
                      "self_attn.k_proj.weight": (c.num_kv_heads * hd, D),
                      "self_attn.v_proj.weight": (c.num_kv_heads * hd, D),
                      "self_attn.o_proj.weight": (D, c.num_heads * hd),
                      "post_attention_layernorm.weight": (D,), "post_attention_layernorm.bias": (D,),
                      "mlp.c_fc.weight": (c.intermediate_size, D),
                      "mlp.c_proj.weight": (D, c.intermediate_size)}
            if c.use_bias:
                shapes.update({"self_attn.q_proj.bias": (c.num_heads * hd,),
                               "self_attn.k_proj.bias": (c.num_kv_heads * hd,),
                               "self_attn.v_proj.bias": (c.num_kv_heads * hd,),
                               "self_attn.o_proj.bias": (D,),
                               "mlp.c_fc.bias": (c.intermediate_size,), "mlp.c_proj.bias": (D,)})
            expect.update({p + k: v for k, v in shapes.items()})
        if not c.tie_word_embeddings:
            expect["lm_head.weight"] = (c.vocab_size, D)
        for name, shape in expect.items():
            if name not in weights:
                raise ValueError(f"missing tensor {name}")
            if tuple(weights[name].shape) != shape:
                raise ValueError(f"{name}: shape {list(weights[name].shape)}, expected {list(shape)}")
        self.lm_head = weights["model.embed_tokens.weight" if c.tie_word_embeddings else "lm_head.weight"]
        self._rope_cache = {}

    @classmethod
    def load(cls, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = Config(json.load(f))
        return cls(cfg, read_checkpoint(model_dir))

    def _bias(self, name):
        return self.w[name] if self.cfg.use_bias else None

    def rope(self, T):
        """cos, sin tables [T, head_dim]: angle p * theta^(-2d/head_dim) for
        d < head_dim/2, repeated for the second half (rotate_half pairing)."""
        if T not in self._rope_cache:
            hd = self.cfg.head_dim
            # Angles in float64 then rounded: the tables are exact to float32.
            d = torch.arange(hd // 2, dtype=torch.float64)
            inv_freq = self.cfg.rope_theta ** (-2.0 * d / hd)
            angle = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
            angle = torch.cat([angle, angle], dim=1)
            self._rope_cache[T] = (angle.cos().float(), angle.sin().float())
        return self._rope_cache[T]

    def mask(self, T):
        """[T, T] bool, True where query i may attend key j."""
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        allowed = j <= i
        if self.cfg.sliding_window is not None:
            allowed &= (i - j) < self.cfg.sliding_window
        return allowed

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], dim=-1)

    def attention(self, layer, a, cos, sin, allowed, ablate_heads):
        """One self-attention block on the normed input a [T, D]: returns the
        o_proj output [T, D] and the probabilities [H, T, T]."""
        c = self.cfg
        T = a.shape[0]
        H, KV, hd = c.num_heads, c.num_kv_heads, c.head_dim
        p = f"model.layers.{layer}.self_attn."
        q = F.linear(a, self.w[p + "q_proj.weight"], self._bias(p + "q_proj.bias"))
        k = F.linear(a, self.w[p + "k_proj.weight"], self._bias(p + "k_proj.bias"))
        v = F.linear(a, self.w[p + "v_proj.weight"], self._bias(p + "v_proj.bias"))
        q = q.view(T, H, hd).transpose(0, 1)   # [H, T, hd]
        k = k.view(T, KV, hd).transpose(0, 1)  # [KV, T, hd]
        v = v.view(T, KV, hd).transpose(0, 1)
        q = q * cos + self.rotate_half(q) * sin
        k = k * cos + self.rotate_half(k) * sin
        # GQA: query head j reads KV head j // (H / KV). The heads sharing a KV
        # head are adjacent, so [H, T, hd] regroups as [KV, group*T, hd] and
        # one batched product per KV head serves its whole group.
        group = H // KV
        s = torch.bmm(q.reshape(KV, group * T, hd), k.transpose(1, 2)).view(H, T, T) / math.sqrt(hd)
        s = s.masked_fill(~allowed, float("-inf"))
        P = F.softmax(s, dim=-1, dtype=torch.float32)  # masked entries become exactly 0
        o = torch.bmm(P.view(KV, group * T, T), v).view(H, T, hd)
        if ablate_heads:
            o[list(ablate_heads)] = 0.0
        o = o.transpose(0, 1).reshape(T, H * hd)
        out = F.linear(o, self.w[p + "o_proj.weight"], self._bias(p + "o_proj.bias"))
        return out, P

    def mlp(self, layer, m):
        p = f"model.layers.{layer}.mlp."
        x = F.linear(m, self.w[p + "c_fc.weight"], self._bias(p + "c_fc.bias"))
        x = F.gelu(x, approximate="tanh")
        return F.linear(x, self.w[p + "c_proj.weight"], self._bias(p + "c_proj.bias"))

    def layer_norm(self, x, prefix):
        return F.layer_norm(x, (x.shape[-1],), self.w[prefix + ".weight"], self.w[prefix + ".bias"],
                            eps=self.cfg.norm_epsilon)

    @torch.no_grad()
    def forward(self, ids, ablate=(), attentions=True, last_only=False):
        """ids: sequence of token ids (length T). ablate: iterable of
        (layer, head) pairs. Returns (logits [T, V] or [1, V] with last_only,
        attentions [L, H, T, T] or None)."""
        c = self.cfg
        ids = torch.from_numpy(np.array(ids, dtype=np.int64))
        if ids.ndim != 1 or ids.numel() == 0:
            raise ValueError("ids must be a non-empty 1-D sequence")
        if int(ids.min()) < 0 or int(ids.max()) >= c.vocab_size:
            raise ValueError("token id outside the vocabulary")
        T = ids.numel()
        by_layer = {}
        for layer, head in ablate:
            if not (0 <= layer < c.num_layers and 0 <= head < c.num_heads):
                raise ValueError(f"ablated head ({layer}, {head}) out of range")
            by_layer.setdefault(layer, set()).add(head)
        cos, sin = self.rope(T)
        allowed = self.mask(T)
        attn = torch.zeros(c.num_layers, c.num_heads, T, T) if attentions else None

        h = self.w["model.embed_tokens.weight"][ids]
        for i in range(c.num_layers):
            p = f"model.layers.{i}."
            a = self.layer_norm(h, p + "input_layernorm")
            o, P = self.attention(i, a, cos, sin, allowed, sorted(by_layer.get(i, ())))
            if attn is not None:
                attn[i] = P
            h = h + o
            m = self.layer_norm(h, p + "post_attention_layernorm")
            h = h + self.mlp(i, m)
        if last_only:
            h = h[-1:]
        logits = F.linear(self.layer_norm(h, "model.norm"), self.lm_head)
        return logits, attn
