/* The LM's own float32 inference kernels against straightforward
 * double-precision versions (the shared ones: test_nn_kernels.c). */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

#include "apmae/io.h"
#include "lm/kernels.h"

static float frand(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((*s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* bf16 weights widened in row blocks (a scratch smaller than the matrix)
 * give the same product as widening the whole matrix at once. */
static void test_linear_blocks(void **state) {
    (void)state;
    enum { T = 5, IN = 24, OUT = 50 };
    uint16_t W[OUT * IN];
    float x[T * IN], bias[OUT], Wf[OUT * IN], y_block[T * OUT], y_ref[T * OUT], scratch[IN * 7];
    uint64_t s = 11;
    for (int i = 0; i < OUT * IN; i++) W[i] = ap_f32_to_bf16(frand(&s)), Wf[i] = ap_bf16_to_f32(W[i]);
    for (int i = 0; i < T * IN; i++) x[i] = frand(&s);
    for (int i = 0; i < OUT; i++) bias[i] = frand(&s);
    lm_linear(y_block, x, T, IN, OUT, W, AP_BF16, bias, scratch, IN * 7); /* blocks of 7 rows */
    /* two input rows take the matrix-vector path (scratch: one row per thread) */
    float y_few[2 * OUT], *row_scratch = malloc(sizeof(float) * IN * 64);
    lm_linear(y_few, x, 2, IN, OUT, W, AP_BF16, bias, row_scratch, IN * 64);
    free(row_scratch);
    lm_linear(y_ref, x, T, IN, OUT, Wf, AP_F32, bias, NULL, 0);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OUT; o++) {
            double want = bias[o];
            for (int i = 0; i < IN; i++) want += (double)x[t * IN + i] * Wf[o * IN + i];
            assert_true(fabs(y_ref[t * OUT + o] - want) < 1e-5);
            assert_true(fabs(y_block[t * OUT + o] - y_ref[t * OUT + o]) < 1e-6);
            if (t < 2) assert_true(fabs(y_few[t * OUT + o] - y_ref[t * OUT + o]) < 1e-5);
        }
}

/* Windowed causal attention: rows sum to 1 over exactly the window; an
 * ablated head outputs zeros but still reports its pattern. */
static void test_attention_window(void **state) {
    (void)state;
    enum { T = 9, H = 4, KV = 2, HD = 6, W = 3 };
    float q[T * H * HD], k[T * KV * HD], v[T * KV * HD], out[T * H * HD], P[H * T * T];
    float scratch[64 * T];
    uint64_t s = 3;
    for (int i = 0; i < T * H * HD; i++) q[i] = frand(&s);
    for (int i = 0; i < T * KV * HD; i++) k[i] = frand(&s), v[i] = frand(&s);
    uint8_t ablate[H] = {0, 0, 1, 0};
    lm_attention(out, P, q, k, v, T, H, KV, HD, W, ablate, scratch);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < T; i++) {
            double sum = 0;
            for (int j = 0; j < T; j++) {
                float p = P[(h * T + i) * T + j];
                int visible = j <= i && i - j < W;
                if (!visible) assert_true(p == 0.0f);
                else assert_true(p > 0.0f);
                sum += p;
            }
            assert_true(fabs(sum - 1.0) < 1e-6);
            /* head h uses kv head h / (H/KV) */
            for (int d = 0; d < HD; d++) {
                double want = 0;
                for (int j = 0; j < T; j++) want += P[(h * T + i) * T + j] * v[j * KV * HD + (h / 2) * HD + d];
                float got = out[i * H * HD + h * HD + d];
                assert_true(fabs(got - (h == 2 ? 0.0 : want)) < 1e-6);
            }
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_blocks),
        cmocka_unit_test(test_attention_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
