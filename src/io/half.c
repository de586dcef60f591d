/* Half-precision (IEEE binary16 and bfloat16) <-> float conversions.
 *
 * Narrowing rounds to nearest, ties to even, overflows to infinity, keeps
 * the sign of zeros and NaNs, and turns every NaN into a quiet NaN (a NaN
 * whose surviving payload bits are all zero would otherwise become Inf).
 * Widening is exact. ap_to_f32 is on the LM's hot path (weights are widened
 * a row block at a time), so its loops are written to vectorise. */
#include "apmae/io.h"

#include <string.h>

#ifdef __F16C__
#include <immintrin.h>
#endif

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float ap_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t ap_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u);
    /* Adding 0x7FFF plus the lowest kept bit carries into the kept part
     * exactly when the dropped half is above one half, or equal to it with
     * an odd kept part. A carry out of the largest finite value gives Inf. */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Branch-free so that the array loop vectorises: the 15 magnitude bits are
 * moved into float position and rebased from exponent bias 15 to 127; Inf
 * and NaN get the rest of the exponent range, and subnormals are normalised
 * by letting the FPU subtract the implicit one that the rebase added. */
static inline float f16_to_f32_inline(uint16_t h) {
    uint32_t mag = (uint32_t)(h & 0x7FFFu) << 13;
    uint32_t exp = mag & 0x0F800000u;
    uint32_t u = mag + ((127u - 15u) << 23);
    float r;
    if (exp == 0x0F800000u) {
        r = bits_f32(u + ((128u - 16u) << 23));
    } else if (exp == 0) {
        r = bits_f32(u + (1u << 23)) - bits_f32(113u << 23);
    } else {
        r = bits_f32(u);
    }
    return bits_f32(f32_bits(r) | ((uint32_t)(h & 0x8000u) << 16));
}

float ap_f16_to_f32(uint16_t h) { return f16_to_f32_inline(h); }

/* Round m >> shift to nearest even (shift in 1..31). */
static inline uint32_t shift_round_even(uint32_t m, unsigned shift) {
    uint32_t kept = m >> shift;
    uint32_t rest = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1u))) kept++;
    return kept;
}

uint16_t ap_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t mag = u & 0x7FFFFFFFu;
    if (mag >= 0x7F800000u) { /* Inf stays Inf; NaN keeps its top payload bits, quietened */
        if (mag == 0x7F800000u) return sign | 0x7C00u;
        return (uint16_t)(sign | 0x7E00u | ((mag >> 13) & 0x03FFu));
    }
    int e = (int)(mag >> 23) - 127; /* unbiased exponent of a normal float */
    if (e >= -14) {
        /* Normal in binary16 range (or overflowing): rebias the exponent and
         * round the 23-bit mantissa to 10 bits; a mantissa carry bumps the
         * exponent, and a carry past 30 lands exactly on Inf (0x7C00). */
        if (e > 15) return sign | 0x7C00u;
        uint32_t h = ((uint32_t)(e + 15) << 10) | ((mag >> 13) & 0x03FFu);
        uint32_t rest = mag & 0x1FFFu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    /* Subnormal result: value = m * 2^-24 with m = M * 2^(e+1), where M is
     * the 24-bit significand. Below 2^-25 everything rounds to zero. */
    if (e < -25) return sign;
    uint32_t m = (mag & 0x007FFFFFu) | 0x00800000u;
    return (uint16_t)(sign | shift_round_even(m, (unsigned)(-e - 1)));
}

static void bf16_to_f32_array(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = ap_bf16_to_f32(src[i]);
}

static void f16_to_f32_array(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
#ifdef __F16C__
    /* vcvtph2ps is exact for every input, subnormals included. */
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
#endif
    for (; i < n; i++) dst[i] = f16_to_f32_inline(src[i]);
}

void ap_to_f32(ap_dtype dt, const void *src, float *dst, size_t n) {
    switch (dt) {
    case AP_F32: memmove(dst, src, n * sizeof(float)); break;
    case AP_BF16: bf16_to_f32_array(src, dst, n); break;
    case AP_F16: f16_to_f32_array(src, dst, n); break;
    default: break; /* integer dtypes are not float tensors; callers check with ap_st_expect */
    }
}

void ap_from_f32(ap_dtype dt, const float *src, void *dst, size_t n) {
    uint16_t *out = dst;
    switch (dt) {
    case AP_F32: memmove(dst, src, n * sizeof(float)); break;
    case AP_BF16:
        for (size_t i = 0; i < n; i++) out[i] = ap_f32_to_bf16(src[i]);
        break;
    case AP_F16:
        for (size_t i = 0; i < n; i++) out[i] = ap_f32_to_f16(src[i]);
        break;
    default: break;
    }
}
