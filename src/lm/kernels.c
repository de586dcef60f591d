/* Float32 kernels of the StarCoder2 forward pass: linear layers on
 * stored-dtype weights, RoPE and windowed causal attention. */
#include "kernels.h"

#include "apmae/nn.h"

/* Up to this many input rows, non-float32 weights take the matrix-vector path. */
#define LM_FEW_ROWS 4

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* Widen rows [r0, r0+nrows) of W [*, in] into dst, in parallel. */
static void widen_rows(float *dst, const void *W, ap_dtype wdt, size_t r0, int nrows, int in) {
    size_t esz = ap_dtype_size(wdt);
    const char *src = (const char *)W + r0 * (size_t)in * esz;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < nrows; r++)
        ap_to_f32(wdt, src + (size_t)r * in * esz, dst + (size_t)r * in, (size_t)in);
}

/* Few rows (e.g. logits of the last position only): a matrix-vector product
 * that widens each weight row once into a per-thread buffer, instead of
 * widening (and writing out) the whole matrix for a handful of dot products. */
static void linear_few_rows(float *y, const float *x, int T, int in, int out, const void *W, ap_dtype wdt,
                            float *scratch) {
    size_t esz = ap_dtype_size(wdt);
#pragma omp parallel
    {
        float *row = scratch + (size_t)omp_get_thread_num() * (size_t)in;
#pragma omp for schedule(static)
        for (int o = 0; o < out; o++) {
            ap_to_f32(wdt, (const char *)W + (size_t)o * in * esz, row, (size_t)in);
            for (int t = 0; t < T; t++) {
                const float *xr = x + (size_t)t * in;
                float dot = 0;
#pragma omp simd reduction(+ : dot)
                for (int i = 0; i < in; i++) dot += xr[i] * row[i];
                y[(size_t)t * out + o] = dot;
            }
        }
    }
}

void lm_linear(float *y, const float *x, int T, int in, int out, const void *W, ap_dtype wdt, const float *bias,
               float *scratch, size_t scratch_floats) {
    if (wdt == AP_F32 && ((uintptr_t)W % sizeof(float)) == 0) {
        ap_nn_linear_fwd_f(y, x, W, bias, T, in, out);
        return;
    }
    if (T <= LM_FEW_ROWS && (size_t)omp_get_max_threads() * (size_t)in <= scratch_floats) {
        linear_few_rows(y, x, T, in, out, W, wdt, scratch);
    } else {
        int block = (int)(scratch_floats / (size_t)in);
        if (block > out) block = out;
        for (int r0 = 0; r0 < out; r0 += block) {
            int nr = out - r0 < block ? out - r0 : block;
            widen_rows(scratch, W, wdt, (size_t)r0, nr, in);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, nr, in, 1.0f, x, in, scratch, in, 0.0f, y + r0,
                        out);
        }
    }
    if (bias) ap_nn_add_bias_f(y, bias, T, out);
}

void lm_rope_tables(float *cos_t, float *sin_t, int T, int hd, double theta) {
    int half = hd / 2;
    for (int d = 0; d < half; d++) {
        /* inv_freq = 1 / theta^(2d/hd), rounded to float as torch computes it */
        float inv_freq = (float)(1.0 / pow(theta, (double)(2 * d) / hd));
        for (int p = 0; p < T; p++) {
            float angle = (float)p * inv_freq;
            cos_t[(size_t)p * half + d] = (float)cos((double)angle);
            sin_t[(size_t)p * half + d] = (float)sin((double)angle);
        }
    }
}

void lm_rope(float *x, int ld, int T, int nheads, int hd, const float *cos_t, const float *sin_t) {
    int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        const float *c = cos_t + (size_t)t * half, *s = sin_t + (size_t)t * half;
        for (int h = 0; h < nheads; h++) {
            float *v = x + (size_t)t * ld + (size_t)h * hd;
#pragma omp simd
            for (int d = 0; d < half; d++) {
                float x1 = v[d], x2 = v[d + half];
                v[d] = x1 * c[d] - x2 * s[d];
                v[d + half] = x2 * c[d] + x1 * s[d];
            }
        }
    }
}

/* One query row of one head: probabilities into p[0..T) (zeros outside
 * [j0, i]) and the weighted sum of values into o[0..hd).
 * Training's ap_nn_attention_fwd_f (BLAS over blocks of queries) is not used
 * here: inference runs one query row at a time with head ablation and an
 * optional pattern, and these dot products sum in the order that produced the
 * shipped model's fixtures, stores and accuracies, which a BLAS product would
 * change in the last bits. The softmax of the row is the shared one. */
static void attend_row(float *o, float *p, const float *qi, const float *k, const float *v, int ldkv, int i, int j0,
                       int T, int hd, float scale, int write_zeros) {
    for (int j = j0; j <= i; j++) {
        const float *kj = k + (size_t)j * ldkv;
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int d = 0; d < hd; d++) dot += qi[d] * kj[d];
        p[j] = dot * scale;
    }
    ap_nn_softmax_row_f(p + j0, i - j0 + 1);
    if (write_zeros) {
        for (int j = 0; j < j0; j++) p[j] = 0;
        for (int j = i + 1; j < T; j++) p[j] = 0;
    }
    if (!o) return;
    for (int d = 0; d < hd; d++) o[d] = 0;
    for (int j = j0; j <= i; j++) {
        const float *vj = v + (size_t)j * ldkv;
        float pj = p[j];
#pragma omp simd
        for (int d = 0; d < hd; d++) o[d] += pj * vj[d];
    }
}

void lm_attention(float *out, float *P, const float *q, const float *k, const float *v, int T, int H, int KV,
                  int hd, int window, const uint8_t *ablate, float *scratch) {
    int group = H / KV;
    int ldq = H * hd, ldkv = KV * hd;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        float *row_scratch = scratch + (size_t)omp_get_thread_num() * T;
#pragma omp for schedule(dynamic, 8) collapse(2)
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < T; i++) {
                int kv = h / group;
                int j0 = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
                float *p = P ? P + ((size_t)h * T + i) * T : row_scratch;
                float *o = out + (size_t)i * ldq + (size_t)h * hd;
                int off = ablate && ablate[h];
                attend_row(off ? NULL : o, p, q + (size_t)i * ldq + (size_t)h * hd, k + (size_t)kv * hd,
                           v + (size_t)kv * hd, ldkv, i, j0, T, hd, scale, P != NULL);
                if (off) memset(o, 0, sizeof(float) * (size_t)hd);
            }
        }
    }
}
