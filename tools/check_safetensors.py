#!/usr/bin/python3
"""Load a .safetensors file with a hand-written header parser and torch, and
print each tensor's name, dtype, shape and a few values. Used to check that
files written by apmae (ap_st_write) read back outside apmae; the
`safetensors` package is not needed. Run with Debian's python (it has torch):

    /usr/bin/python3 tools/check_safetensors.py FILE.safetensors
"""
import json
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}


def load(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))  # strict JSON, padding spaces allowed
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        shape = info["shape"]
        numel = int(np.prod(shape, dtype=np.int64))
        if end - begin != numel * torch.empty((), dtype=dtype).element_size() or end > len(data):
            raise ValueError(f"{path}: tensor {name!r}: bad data_offsets {info['data_offsets']}")
        raw = bytearray(data[begin:end])
        tensors[name] = torch.frombuffer(raw, dtype=dtype).reshape(shape) if numel else torch.empty(shape, dtype=dtype)
    return tensors, meta, header


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_safetensors.py FILE.safetensors")
    tensors, meta, header = load(sys.argv[1])
    print(f"metadata: {meta}")
    for name, t in tensors.items():
        first = t.flatten()[:4].tolist()
        print(f"{name}: {str(t.dtype).replace('torch.', '')} {list(t.shape)} first={first}")
    # The reference loader requires tensors to tile the data buffer without
    # gaps; apmae pads only where a tensor would start misaligned for its dtype.
    spans = sorted(tuple(i["data_offsets"]) for i in header.values())
    gaps = sum(1 for a, b in zip(spans, spans[1:]) if b[0] != a[1])
    print(f"{len(tensors)} tensors, {gaps} alignment gaps between them")


if __name__ == "__main__":
    main()
