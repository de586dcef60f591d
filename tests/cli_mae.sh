#!/usr/bin/env bash
# `apmae mae init | forward | bench`: outputs agree with the PyTorch fixtures
# and the PyTorch model (tools/check_mae_checkpoint.py); bad input gets a
# clear message and a non-zero exit, never a crash.
set -u
B=$APMAE_BIN; T=$APMAE_TMP; F=fixtures/mae/n32p8; PY=/usr/bin/python3
TOOLS=$APMAE_ROOT/tools
mkdir -p "$T"
. ./testlib.sh
# py SCRIPT: run python with tools/ on the path (safetensors_io)
py() { PYTHONPATH=$TOOLS $PY -c "$1" || fail "python check: $1"; }

# Every input the checks below need, made in one python call.
mkdir -p "$T/missing" "$T/shape" && cp $F/config.json "$T/missing/" && cp $F/config.json "$T/shape/"
py "
import numpy as np, safetensors_io as st
t, _ = st.load('$F/io.safetensors')
st.save('$T/in_nomask.safetensors', {'patterns': t['patterns']})
w, _ = st.load('$F/model.safetensors')
st.save('$T/missing/model.safetensors', {k: v for k, v in w.items() if k != 'decoder.mask_token'})
w['decoder.to_pixels.bias'] = ('F32', np.zeros(63, np.float32))
st.save('$T/shape/model.safetensors', w)
st.save('$T/in_n16.safetensors', {'patterns': ('F32', np.full((2, 16, 16), 1 / 16, np.float32))})
m = t['masked_indices'][1].copy(); m[1, 0] = 1  # patch 1 is above the diagonal
st.save('$T/in_upper.safetensors', {'patterns': t['patterns'], 'masked_indices': ('I64', m)})
m = t['masked_indices'][1].copy(); m[0, 1] = m[0, 0]
st.save('$T/in_dup.safetensors', {'patterns': t['patterns'], 'masked_indices': ('I64', m)})
p = t['patterns'][1].copy(); p[2, 3, 1] = -0.5
st.save('$T/in_neg.safetensors', {'patterns': ('F32', p)})
st.save('$T/in_none.safetensors', {'other': ('F32', p)})
"

# forward on the fixture's inputs reproduces the PyTorch outputs, both modes.
expect_ok "$B" mae forward --model $F --in $F/io.safetensors --out "$T/def.safetensors"
expect_ok "$B" mae forward --model $F --in $F/io.safetensors --out "$T/ref.safetensors" --compat reference
# Without masked_indices the masks are random: M = floor(mask_ratio * T) per image.
expect_ok "$B" mae forward --model $F --in "$T/in_nomask.safetensors" --out "$T/rand.safetensors" --seed 4
py "
import numpy as np, safetensors_io as st
want, _ = st.load('$F/io.safetensors')
for out, pre in (('$T/def.safetensors', ''), ('$T/ref.safetensors', 'ref_')):
    got, _ = st.load(out)
    assert sorted(got) == ['cls', 'loss', 'mean', 'pred', 'scaled'], sorted(got)
    for k in ('loss', 'pred', 'cls', 'mean'):
        err = np.abs(got[k][1] - want[pre + k][1]).max()
        assert err < 1e-4, (out, k, err)
    assert np.abs(got['scaled'][1] - want['scaled'][1]).max() < 1e-5
g, _ = st.load('$T/rand.safetensors')
assert g['pred'][1].shape == (3, 5, 64), g['pred'][1].shape
assert g['cls'][1].shape == (3, 48) and g['mean'][1].shape == (3, 48)
"

# init writes a loadable checkpoint of a built-in config; bench prints its JSON line.
expect_ok "$B" mae init --config tiny --seed 2 --out "$T/tiny"
[ -s "$T/tiny/model.safetensors" ] && grep -q '"model_type":.*"ap_mae"' "$T/tiny/config.json" \
  || fail "init wrote no checkpoint"
expect_ok "$B" mae bench --config $F/config.json --batch 4 --steps 1
grep -q '"train_images_per_s":[0-9]' "$T/out" && grep -q '"forward_images_per_s":[0-9]' "$T/out" \
  || fail "bench output: $(cat "$T/out")"

# A checkpoint written by apmae loads in PyTorch (strict) and agrees with it.
expect_ok $PY "$TOOLS/check_mae_checkpoint.py" --apmae "$B" --workdir "$T/torchcheck"

# ---- bad input
sed 's/"patch_size": 8/"patch_size": 6/' $F/config.json > "$T/bad_p.json"
expect_fail "max_length 32 is not divisible by patch_size 6" "$B" mae init --config "$T/bad_p.json" --out "$T/x"
expect_fail "not divisible by patch_size" "$B" mae bench --config "$T/bad_p.json"
expect_fail "neither a built-in" "$B" mae init --config nonesuch --out "$T/x"
mkdir -p "$T/badp_ckpt" && cp "$T/bad_p.json" "$T/badp_ckpt/config.json" && cp $F/model.safetensors "$T/badp_ckpt/"
expect_fail "not divisible by patch_size" "$B" mae forward --model "$T/badp_ckpt" --in $F/io.safetensors --out "$T/x.st"
# a checkpoint missing a tensor, and one with a wrong shape
expect_fail "$T/missing/model.safetensors: missing tensor 'decoder.mask_token'" \
  "$B" mae forward --model "$T/missing" --in $F/io.safetensors --out "$T/x.st"
expect_fail "tensor 'decoder.to_pixels.bias' has shape [63]" \
  "$B" mae forward --model "$T/shape" --in $F/io.safetensors --out "$T/x.st"
# inputs that do not fit the model
expect_fail "patterns are 16x16 but the model's max_length N is 32" \
  "$B" mae forward --model $F --in "$T/in_n16.safetensors" --out "$T/x.st"
expect_fail "masked_indices[1][0] = 1 is not a patch on or below the diagonal" \
  "$B" mae forward --model $F --in "$T/in_upper.safetensors" --out "$T/x.st"
expect_fail "is masked twice" "$B" mae forward --model $F --in "$T/in_dup.safetensors" --out "$T/x.st"
expect_fail "pattern 2: entry (3, 1) = -0.5 is not a probability" \
  "$B" mae forward --model $F --in "$T/in_neg.safetensors" --out "$T/x.st"
expect_fail "no tensor 'patterns'" "$B" mae forward --model $F --in "$T/in_none.safetensors" --out "$T/x.st"
expect_fail "--compat" "$B" mae forward --model $F --in $F/io.safetensors --out "$T/x.st" --compat bogus
expect_fail "missing required flag --in" "$B" mae forward --model $F --out "$T/x.st"
expect_fail "unknown 'mae' subcommand" "$B" mae frobnicate
expect_fail "--batch" "$B" mae bench --config tiny --batch 0

finish cli_mae
