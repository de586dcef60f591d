#!/usr/bin/python3
"""Write tests/fixtures/io/half_ref.txt: float32 values and what torch makes
of them as float16 and bfloat16, for test_io to compare ap_f32_to_f16 and
ap_f32_to_bf16 against. Run with Debian's python (it has torch):

    /usr/bin/python3 tools/make_half_fixture.py > tests/fixtures/io/half_ref.txt

Each data line is three hex bit patterns: f32 f16 bf16."""
import struct

import numpy as np
import torch


def f32_from_bits(u):
    return struct.unpack("<f", struct.pack("<I", u))[0]


def chosen():
    p = lambda e: 2.0 ** e
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 3.140625, -7.25, 0.1, -0.3, 1e-3, 1e3, 12345.678,
            float("inf"), float("-inf")]
    # float16 ties and near-ties (spacing 2^-10 at 1, 2 at 2048).
    vals += [1 + p(-11), 1 + 3 * p(-11), 1 + p(-11) + p(-20), 1 + p(-11) - p(-20), -(1 + 3 * p(-11)),
             2049.0, 2051.0, 2049.0001, 1024.5, 1025.5]
    # float16 overflow: 65504 is the largest finite, 65520 the tie to Inf.
    vals += [65504.0, 65519.0, f32_from_bits(0x477FEFFF), 65520.0, -65520.0, 65536.0, 1e5, 3.4e38]
    # float16 subnormals (2^-24 is the smallest, 2^-14 the smallest normal).
    vals += [p(-24), -p(-24), p(-25), p(-25) + p(-40), 3 * p(-25), 5 * p(-25), 7 * p(-25), p(-26),
             p(-14), p(-14) - p(-25), p(-14) - p(-24), p(-15), 1e-8, 6e-8, 1e-7, 1e-5, 6.1e-5, 1e-40]
    # bfloat16 ties (spacing 2^-7 at 1, 2 at 256).
    vals += [1 + p(-8), 1 + 3 * p(-8), 1 + p(-8) + p(-23), 257.0, 259.0, -259.0, 1 + p(-8) - p(-23)]
    # bfloat16 overflow and float32 subnormals (bfloat16 keeps those).
    vals += [f32_from_bits(b) for b in (0x7F7FFFFF, 0x7F7F7FFF, 0x7F7F8000, 0x7F7E8000, 0xFF7FFFFF,
                                        0x00000001, 0x00008000, 0x00018000, 0x007FFFFF, 0x00800000,
                                        0x80008001)]
    return vals


def main():
    vals = np.array(chosen(), dtype=np.float32)
    rng = np.random.default_rng(20240611)
    scaled = (rng.standard_normal(80) * np.exp2(rng.integers(-30, 20, 80))).astype(np.float32)
    raw = rng.integers(0, 2 ** 32, 40, dtype=np.uint64).astype(np.uint32).view(np.float32)
    raw = raw[np.isfinite(raw)]  # NaN payload handling is covered by the C test instead
    nan = np.array([np.nan], dtype=np.float32)
    vals = np.concatenate([vals, scaled, raw, nan])
    t = torch.from_numpy(vals)
    f16 = t.to(torch.float16).view(torch.int16).numpy().astype(np.uint16)
    bf16 = t.to(torch.bfloat16).view(torch.int16).numpy().astype(np.uint16)
    print(f"# f32 f16 bf16 bit patterns from torch {torch.__version__} (tools/make_half_fixture.py)")
    for f, h, b in zip(vals.view(np.uint32), f16, bf16):
        print(f"{f:08x} {h:04x} {b:04x}")


if __name__ == "__main__":
    main()
