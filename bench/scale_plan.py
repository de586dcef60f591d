#!/usr/bin/python3
"""The tables of docs/scale.md from bench/scale.sh's measurements.

    /usr/bin/python3 bench/scale_plan.py build/bench-scale.jsonl \
        [--bytes-per-pattern 42194] [--quiet-sgemm 190]

Prints, in markdown:
  * the strong-scaling table of `mae train` (median and range over the rounds);
  * the paper-scale plan: StarCoder2-3B/7B/15B x 11 tasks x 1,000 samples at
    N = 256 (extraction FLOPs from the published shapes, hours on one node
    like the measured one, storage with patterns and embeddings-only), and
    AP-MAE's 150,000 batches of 60 at the paper config, each line with its
    arithmetic.

FLOPs are counted as apmae's `lm bench` counts them (ap_lm_forward_flops:
the six weight products per layer, causal attention over the visible keys,
the output head; extraction needs the last position's logits only) and, for
AP-MAE, the linear layers and attention of the masked forward (training = 3x
forward) and of the encoding. Rates come from the measurements: the LM's
achieved GFLOP/s at each model's widths, AP-MAE's training images/s and
encoding patterns/s. --quiet-sgemm gives the machine's sgemm rate when it is
not shared (docs/performance.md), for a second column that scales each
measured rate by quiet sgemm / measured sgemm.
"""

import argparse
import json
import statistics

N = 256  # pattern side (tokens per scenario)
SAMPLES = 11 * 1000
LMS = {  # name: layers, hidden, heads, kv heads, intermediate (docs/lm.md)
    "3b": (30, 3072, 24, 2, 12288),
    "7b": (32, 4608, 36, 4, 18432),
    "15b": (40, 6144, 48, 4, 24576),
}
VOCAB = 49152
# AP-MAE paper config (docs/mae.md): N 256, p 32 -> g 8, 36 lower patches, 27 masked
MAE = dict(g=8, tril=36, masked=27, p2=32 * 32, enc=(512, 24, 16 * 64, 2048), dec=(512, 8, 8 * 64, 2048))
MAE_BATCHES, MAE_BATCH = 150_000, 60


def lm_flops(layers, D, H, KV, I, T=N, last_only=True):
    hd = D // H
    per_token_layer = 2.0 * (2 * D * D + 2 * D * KV * hd + 2 * D * I)
    attn = 4.0 * hd * H * T * (T + 1) / 2
    return layers * (per_token_layer * T + attn) + 2.0 * D * VOCAB * (1 if last_only else T)


def block_flops(tokens, D, layers, C, mlp):
    """Transformer blocks over `tokens` tokens: qkv, out, MLP products and attention."""
    linear = 2.0 * tokens * (D * 3 * C + C * D + 2 * D * mlp)
    attn = 4.0 * tokens * tokens * C
    return layers * (linear + attn)


def mae_forward_flops():
    m = MAE
    visible = m["tril"] - m["masked"]
    De, Le, Ce, Fe = m["enc"]
    Dd, Ld, Cd, Fd = m["dec"]
    patch = 2.0 * visible * m["p2"] * De
    enc = block_flops(1 + visible, De, Le, Ce, Fe)
    dec = block_flops(m["g"] ** 2 + 1, Dd, Ld, Cd, Fd)
    pixels = 2.0 * m["masked"] * Dd * m["p2"]
    return patch + enc + dec + pixels


def mae_encode_flops():
    m = MAE
    De, Le, Ce, Fe = m["enc"]
    return 2.0 * m["tril"] * m["p2"] * De + block_flops(1 + m["tril"], De, Le, Ce, Fe)


def med_range(xs):
    return statistics.median(xs), min(xs), max(xs)


def scaling_table(rows):
    print("| ranks x threads | images/s, median (range) | vs 1 x 1 | CPU ms per image, median (range) | runs |")
    print("|---|---|---|---|---|")
    groups = {}
    for r in rows:
        groups.setdefault((r["ranks"], r["threads"]), []).append(r)
    base = statistics.median(r["images_per_s"] for r in groups[(1, 1)])
    for (R, T), rs in sorted(groups.items()):
        ips = med_range([r["images_per_s"] for r in rs])
        cpu = med_range([r["cpu_ms_per_image"] for r in rs])
        over = " (4 threads on 2 cores)" if R * T > 2 else ""
        print(f"| {R} x {T}{over} | {ips[0]:.1f} ({ips[1]:.1f}-{ips[2]:.1f}) | {ips[0] / base:.2f} | "
              f"{cpu[0]:.1f} ({cpu[1]:.1f}-{cpu[2]:.1f}) | {len(rs)} |")


def gb(x):
    return x / 1e9


def lm_params(layers, D, H, KV, I):
    """Weights of the published shapes (tied embeddings; biases left out)."""
    hd = D // H
    return VOCAB * D + layers * (2 * D * D + 2 * D * KV * hd + 2 * D * I)


def plan(m, bytes_per_pattern, quiet_sgemm):
    lm = {r["model"]: r for r in m if r["bench"] == "lm"}
    mae = next(r for r in m if r["bench"] == "mae")
    emb = next(r for r in m if r["bench"] == "embed")
    enc = mae_encode_flops()
    mae_quiet = quiet_sgemm / mae["sgemm_gflops"]  # AP-MAE's rates (training, encoding) on a quiet node
    print("\nExtraction, per model: 11 tasks x 1,000 kept samples of N = 256 tokens\n")
    print("| model | bf16 weights, GB | patterns per sample (L x H) | TFLOP per sample | GFLOP/s measured (sgemm) | "
          "s per sample | node-hours, measured | node-hours, quiet | patterns, GB | embeddings-only, GB | "
          "streaming encode, node-hours measured / quiet |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, (L, D, H, KV, I) in LMS.items():
        r = lm[name]
        f = lm_flops(L, D, H, KV, I)
        per_sample = f / (r["gflops"] * 1e9)
        quiet = quiet_sgemm / r["sgemm_gflops"]
        pats = L * H
        enc_hours = SAMPLES * pats / emb["patterns_per_s"] / 3600
        print(f"| StarCoder2-{name.upper()} | {2 * lm_params(L, D, H, KV, I) / 1e9:.1f} | {L} x {H} = {pats} | "
              f"{f / 1e12:.3f} | {r['gflops']:.1f} ({r['sgemm_gflops']:.1f}) | {per_sample:.1f} | "
              f"{SAMPLES * per_sample / 3600:.0f} | {SAMPLES * per_sample / quiet / 3600:.0f} | "
              f"{gb(SAMPLES * pats * bytes_per_pattern):.0f} | "
              f"{gb(SAMPLES * pats * emb['embedding_bytes_per_pattern']):.1f} | "
              f"{enc_hours:.1f} / {enc_hours / mae_quiet:.1f} |")
    print("\nArithmetic (FLOP per sample: layers x (weight products x tokens + causal attention) + the last "
          "position's logits; hours: x 11,000 samples / 3600; quiet: x measured sgemm / quiet sgemm):\n")
    for name, (L, D, H, KV, I) in LMS.items():
        hd = D // H
        r = lm[name]
        f = lm_flops(L, D, H, KV, I)
        print(f"* {name}: {L} x (2 x (2 x {D}^2 + 2 x {D} x {KV * hd} + 2 x {D} x {I}) x {N} + "
              f"4 x {hd} x {H} x {N * (N + 1) // 2}) + 2 x {D} x {VOCAB} = {f:.4g} FLOP; "
              f"/ {r['gflops']:.1f} GFLOP/s = {f / r['gflops'] / 1e9:.1f} s per sample; "
              f"quiet x {r['sgemm_gflops']:.1f} / {quiet_sgemm:g}; weights {lm_params(L, D, H, KV, I) / 1e9:.2f} G x 2 bytes")
    print(f"* patterns: 11,000 x L x H x {bytes_per_pattern:,.0f} bytes; embeddings-only: "
          f"{emb['embedding_bytes_per_pattern']:.0f} bytes per pattern (cls and mean, D = {emb['dim']}, as stored)")
    print(f"* streaming encode: {enc / 1e9:.3f} GFLOP per pattern (the encoder over cls + 36 patches); measured "
          f"{emb['patterns_per_s']:.1f} patterns/s ({emb['patterns_per_s'] * enc / 1e9:.1f} GFLOP/s); "
          f"11,000 x L x H / that / 3600; quiet x {mae['sgemm_gflops']:.1f} / {quiet_sgemm:g}")
    f_img = 3 * mae_forward_flops()
    images = MAE_BATCHES * MAE_BATCH
    ips = mae["train_images_per_s"]
    print(f"\nAP-MAE, paper config: {MAE_BATCHES:,} batches x {MAE_BATCH} = {images:,} images; "
          f"3 x {mae_forward_flops() / 1e9:.3f} GFLOP (masked forward) = {f_img / 1e9:.2f} GFLOP per training image, "
          f"{f_img * images / 1e15:.1f} PFLOP in all\n")
    print(f"* measured {ips:.2f} images/s ({ips * f_img / 1e9:.1f} GFLOP/s; sgemm {mae['sgemm_gflops']:.1f} in the "
          f"same process): {images:,} / {ips:.2f} / 3600 = {images / ips / 3600:.0f} node-hours; "
          f"quiet (x {quiet_sgemm:g} / {mae['sgemm_gflops']:.1f}): {images / ips / mae_quiet / 3600:.0f} node-hours")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("measurements")
    ap.add_argument("--bytes-per-pattern", type=float, default=42194,
                    help="stored bytes per N = 256 pattern (default: the shipped model's real store, "
                         "docs/performance.md)")
    ap.add_argument("--quiet-sgemm", type=float, default=190, help="the machine's sgemm GFLOP/s when not shared")
    a = ap.parse_args()
    m = [json.loads(line) for line in open(a.measurements) if line.strip()]
    scaling_table([r for r in m if r["bench"] == "train"])
    plan(m, a.bytes_per_pattern, a.quiet_sgemm)


if __name__ == "__main__":
    main()
