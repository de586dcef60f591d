#!/usr/bin/env bash
# apmae store info / export on a small synthetic store, the layout as h5py
# sees it (docs/store.md), and the errors for bad stores and flags.
set -euo pipefail
BIN=${APMAE_BIN:?}
TOOL=$(dirname "$BIN")/../tests/store_writer_tool
T=${APMAE_TMP:?}
PY=/usr/bin/python3
rm -rf "$T" && mkdir -p "$T"
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect CODE NEEDLE cmd...: the command exits with CODE and says NEEDLE on stderr
expect() {
  local code=$1 needle=$2; shift 2
  local rc=0; "$@" >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code: $(cat "$T/err")"
  grep -q -- "$needle" "$T/err" || fail "'$*' said '$(cat "$T/err")', expected '$needle'"
}

S=$T/s.h5
"$TOOL" write "$S" --total 7 --every 7 --dtype bf16 --n 32 --layers 2 --heads 4 >/dev/null 2>&1

# info, text and JSON
"$BIN" store info "$S" >"$T/info.txt"
grep -q "7 samples" "$T/info.txt" || fail "info: $(cat "$T/info.txt")"
grep -q "bf16 (3 mantissa bits below" "$T/info.txt" || fail "info dtype: $(cat "$T/info.txt")"
grep -Eq "^identifiers +3 +" "$T/info.txt" || fail "info per task: $(cat "$T/info.txt")"
"$BIN" store info "$S" --json >"$T/info.json"
$PY - "$T/info.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
# synthetic sample i: task i % 3, correct (i // 3) % 2 -> identifiers 0,3,6: 0 correct of 3 but sample 3
assert d["samples"] == 7, d
assert d["per_task"]["identifiers"] == {"samples": 3, "correct": 1, "incorrect": 2}, d["per_task"]
assert d["per_task"]["noise"]["samples"] == 2, d["per_task"]
assert d["correct"] + d["incorrect"] == 7
assert d["dtype"] == "bf16" and d["small_bits"] == 3 and d["n_tokens"] == 32, d
assert 0 < d["bytes_per_pattern"] < 32 * 32 * 4, d
assert d["patterns"] == 7 * 2 * 4 and d["tasks"] == ["identifiers", "eol", "noise"], d
PY

# export: PNG by index, safetensors by scenario id
"$BIN" --quiet store export "$S" --sample 4 --layer 1 --head 2 --out "$T/p.png"
$PY - "$T/p.png" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n"
w, h = struct.unpack(">II", b[16:24])
assert (w, h) == (512, 512), (w, h)  # 32 entries x zoom 16
PY
"$BIN" --quiet store export "$S" --scenario s000004 --layer 1 --head 2 --out "$T/p.safetensors"
# The exported tensors, and the store read with h5py as docs/store.md says.
$PY - "$T/p.safetensors" "$S" <<'PY'
import json, struct, sys
import numpy as np, h5py
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
hdr = json.loads(b[8:8 + n]); data = b[8 + n:]
assert hdr["pattern"]["dtype"] == "F32" and hdr["pattern"]["shape"] == [32, 32], hdr
assert hdr["input_ids"]["dtype"] == "I64" and hdr["input_ids"]["shape"] == [32], hdr
assert hdr["__metadata__"]["scenario"] == "s000004" and hdr["__metadata__"]["sample"] == "4", hdr
o = hdr["pattern"]["data_offsets"]; P = np.frombuffer(data[o[0]:o[1]], "<f4").reshape(32, 32)
o = hdr["input_ids"]["data_offsets"]; ids = np.frombuffer(data[o[0]:o[1]], "<i8")
assert (ids == (4 * 31 + np.arange(32) * 7) % 49152).all(), ids
assert (np.triu(P, 1) == 0).all() and abs(P.sum(1) - 1).max() < 0.02, P.sum(1)
with h5py.File(sys.argv[2], "r") as f:
    assert f.attrs["dtype"] == "bf16" and f.attrs["n_tokens"] == 32
    pat = f["patterns"]
    assert pat.shape == (7, 2, 4, 32 * 33 // 2) and pat.dtype == np.float32, (pat.shape, pat.dtype)
    i = list(f["samples/id"].asstr()[:]).index("s000004")
    full = np.zeros((32, 32), np.float32)
    full[np.tril_indices(32)] = pat[i, 1, 2]
    assert (full == P).all()
    assert f["samples/correct"].dtype == bool and f["samples/task"].asstr()[i] == "eol"
    assert (f["input_ids"][i] == ids).all()
PY

# a writer killed with uncommitted samples: info reads the last commit, repair
# rolls the file back for h5py and removes the journal
K=$T/k.h5
rc=0; "$TOOL" write "$K" --total 9 --every 3 --kill-after 5 --dtype f16 >/dev/null 2>&1 || rc=$?
[ "$rc" = 137 ] || fail "the killed writer exited $rc"
[ -s "$K-journal" ] || fail "no pending journal after the kill"
"$BIN" store info "$K" --json 2>"$T/err" | $PY -c 'import json,sys; d=json.load(sys.stdin); assert d["samples"] == 3, d'
grep -q "without committing" "$T/err" || fail "info did not warn about the interrupted write: $(cat "$T/err")"
"$BIN" store repair "$K" | grep -q "consistent, 3 samples" || fail "repair"
[ ! -e "$K-journal" ] || fail "repair left the journal"
$PY -c 'import h5py,sys; f=h5py.File(sys.argv[1],"r"); assert f["patterns"].shape[0] == 3 and f["samples/id"].shape == (3,)' "$K"

# errors
printf 'not hdf5\n' >"$T/notes.h5"
expect 1 "no such store" "$BIN" store info "$T/missing.h5"
expect 1 "not an HDF5 file" "$BIN" store info "$T/notes.h5"
expect 1 "out of range" "$BIN" store export "$S" --sample 99 --layer 0 --head 0 --out "$T/x.png"
expect 1 "layer 5 is out of range" "$BIN" store export "$S" --sample 0 --layer 5 --head 0 --out "$T/x.png"
expect 2 "no scenario 'nope'" "$BIN" store export "$S" --scenario nope --layer 0 --head 0 --out "$T/x.png"
expect 2 "exactly one of --sample" "$BIN" store export "$S" --sample 1 --scenario s000001 --layer 0 --head 0 --out "$T/x.png"
expect 2 ".png or .safetensors" "$BIN" store export "$S" --sample 1 --layer 0 --head 0 --out "$T/x.jpg"
expect 2 "missing required flag --head" "$BIN" store export "$S" --sample 1 --layer 0 --out "$T/x.png"
expect 2 "exactly one STORE" "$BIN" store info
expect 2 "usage: apmae store" "$BIN" store
[ ! -e "$T/x.png" ] || fail "a failed export left $T/x.png"
echo "cli_store: ok"
