"""Minimal safetensors reader/writer on numpy (the `safetensors` package is not
installed where the tools run).

Format: 8-byte little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
then the raw little-endian tensor bytes; offsets are relative to the end of the
header.

bfloat16 has no numpy dtype, so BF16 tensors travel as uint16 arrays holding
the raw bits; `to_float32` widens them, `bf16_bits` narrows float32 to them.
"""

import json
import mmap
import os
import struct

import numpy as np

_NP_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,  # raw bits
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def bf16_bits(x):
    """float32 array -> uint16 bfloat16 bits, rounded to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = 0x7FFF + ((u >> 16) & 1)
    bits = ((u + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    bits[nan] = 0x7FC0
    return bits


def bf16_to_float32(bits):
    """uint16 bfloat16 bits -> float32 array."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def to_float32(dtype, arr):
    """Widen a float tensor as returned by `load` (dtype name, array) to float32."""
    if dtype == "BF16":
        return bf16_to_float32(arr)
    if dtype in ("F32", "F16", "F64"):
        return np.asarray(arr).astype(np.float32)
    raise ValueError(f"not a float tensor dtype: {dtype}")


def load(path, copy=True):
    """Read a .safetensors file -> (tensors, metadata) where tensors is an
    ordered dict name -> (dtype name, numpy array). With copy=False the arrays
    are read-only views of a memory map (for large checkpoints)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: too short for a safetensors header")
        (n,) = struct.unpack("<Q", head)
        size = os.fstat(f.fileno()).st_size
        if n > size - 8:
            raise ValueError(f"{path}: header length {n} beyond the file size {size}")
        header = json.loads(f.read(n).decode("utf-8"))
        if copy:
            buf = f.read()
        else:
            buf = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))[8 + n :]
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, info in header.items():
        dtype = info["dtype"]
        if dtype not in _NP_DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        shape = tuple(int(s) for s in info["shape"])
        begin, end = info["data_offsets"]
        np_dtype = np.dtype(_NP_DTYPES[dtype]).newbyteorder("<")
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * np_dtype.itemsize or end > len(buf) or begin < 0:
            raise ValueError(f"{path}: tensor {name}: data_offsets {begin}..{end} do not fit shape {list(shape)}")
        arr = np.frombuffer(buf, dtype=np_dtype, count=count, offset=begin).reshape(shape)
        tensors[name] = (dtype, arr)
    return tensors, metadata


def save(path, tensors, metadata=None):
    """Write tensors (a mapping name -> (dtype name, array)). As the reference
    library does, tensors are laid out contiguously (no gaps: its validator
    rejects them) ordered by element size, largest first, then in the given
    order; with the header padded with spaces to a multiple of 8 every tensor
    starts aligned to its element size. The bytes depend only on the inputs."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    items = []
    for name, (dtype, arr) in tensors.items():
        np_dtype = np.dtype(_NP_DTYPES[dtype]).newbyteorder("<")
        items.append((name, dtype, np.shape(arr), np.ascontiguousarray(arr, dtype=np_dtype).tobytes(),
                      np_dtype.itemsize))
    items.sort(key=lambda it: -it[4])  # stable: keeps the given order within a size
    offset = 0
    for name, dtype, shape, data, _ in items:
        header[name] = {"dtype": dtype, "shape": [int(s) for s in shape],
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-len(text)) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for it in items:
            f.write(it[3])
    os.replace(tmp, path)
