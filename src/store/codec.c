/* Pattern encoding: lower triangle, dtype narrowing, HDF5 datatypes, and
 * chunk compression identical to HDF5's shuffle + deflate pipeline. */
#include "internal.h"

#include <math.h>
#include <string.h>
#include <zlib.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the store writes chunks in host byte order and declares them little-endian"
#endif

void ap_tri_from_full(const float *full, int N, float *tri) {
    for (int i = 0; i < N; i++) memcpy(tri + (size_t)i * (i + 1) / 2, full + (size_t)i * N, (size_t)(i + 1) * sizeof *tri);
}

void ap_tri_to_full(const float *tri, int N, float *full) {
    for (int i = 0; i < N; i++) {
        float *row = full + (size_t)i * N;
        memcpy(row, tri + (size_t)i * (i + 1) / 2, (size_t)(i + 1) * sizeof *row);
        memset(row + i + 1, 0, (size_t)(N - 1 - i) * sizeof *row);
    }
}

/* bf16 rounded (to nearest, ties to even) to k < 7 mantissa bits: the bits
 * below are zero, so the deflate stage finds them cheap. Only used for
 * small finite values, so the rounding cannot reach Inf. */
static uint16_t bf16_coarse(float f, int k) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    unsigned drop = 16u + (unsigned)(7 - k);
    u += ((1u << (drop - 1)) - 1u) + ((u >> drop) & 1u);
    return (uint16_t)((u >> drop) << (drop - 16));
}

void ap_store_encode(ap_dtype dt, int small_bits, const float *src, void *dst, size_t n) {
    if (dt != AP_BF16 || small_bits >= 7) {
        ap_from_f32(dt, src, dst, n);
        return;
    }
    uint16_t *out = dst;
    for (size_t i = 0; i < n; i++)
        out[i] = fabsf(src[i]) < AP_STORE_SMALL_BELOW ? bf16_coarse(src[i], small_bits) : ap_f32_to_bf16(src[i]);
}

/* A little-endian 2-byte float with the given field layout (h5py reads such
 * types as numbers: float16 for f16, float32 for the wider-range bf16). */
static hid_t small_float(size_t epos, size_t esize, size_t msize, size_t ebias) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, epos, esize, 0, msize) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, ebias) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

hid_t ap_store_h5type(ap_dtype dt) {
    switch (dt) {
    case AP_F32: return H5Tcopy(H5T_IEEE_F32LE);
    case AP_F16: return small_float(10, 5, 10, 15);
    case AP_BF16: return small_float(7, 8, 7, 127);
    default: return H5I_INVALID_HID;
    }
}

size_t ap_chunk_bound(size_t nbytes) { return (size_t)compressBound((uLong)nbytes); }

ap_status ap_chunk_compress(ap_chunk_coder *c, int level, const void *src, size_t nbytes, size_t elem, void *scratch,
                            void *out, size_t *out_len, ap_error *err) {
    /* Shuffle: byte b of every element, then byte b+1, ... (HDF5's filter). */
    const unsigned char *in = src;
    unsigned char *sh = scratch;
    size_t n = nbytes / elem;
    for (size_t b = 0; b < elem; b++)
        for (size_t i = 0; i < n; i++) sh[b * n + i] = in[i * elem + b];
    if (c->ready && c->level != level) ap_chunk_coder_free(c);
    int zs = Z_OK;
    if (!c->ready) {
        memset(&c->z, 0, sizeof c->z);
        /* At level 1, Huffman coding alone: on shuffled bf16 attention
         * patterns it compresses as well as run-length matching (1.57x on
         * the shipped model's patterns) and runs 30% faster. */
        zs = deflateInit2(&c->z, level, Z_DEFLATED, 15, 8, level == 1 ? Z_HUFFMAN_ONLY : Z_FILTERED);
        c->ready = zs == Z_OK;
        c->level = level;
    } else {
        zs = deflateReset(&c->z);
    }
    if (zs == Z_OK) {
        c->z.next_in = sh;
        c->z.avail_in = (uInt)nbytes;
        c->z.next_out = out;
        c->z.avail_out = (uInt)ap_chunk_bound(nbytes);
        zs = deflate(&c->z, Z_FINISH);
    }
    if (zs != Z_STREAM_END)
        return ap_fail(err, AP_ERR_INTERNAL, "deflate of a %zu-byte pattern chunk failed (zlib %d)", nbytes, zs);
    *out_len = (size_t)c->z.total_out;
    return AP_OK;
}

void ap_chunk_coder_free(ap_chunk_coder *c) {
    if (c->ready) deflateEnd(&c->z);
    c->ready = 0;
}
