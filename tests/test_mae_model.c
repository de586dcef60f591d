/* AP-MAE pieces around the network (src/mae): configs, scaler, masks,
 * initialisation, the training step (AdamW, learning rates), encodings. */
#include "testutil.h"

#include "apmae/mae.h"
#include "mae/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_builtin_configs(void **state) {
    (void)state;
    ap_mae_config c;
    const char *names[] = {"tiny", "paper", "small"};
    for (int i = 0; i < 3; i++) {
        TU_OK(ap_mae_config_builtin(names[i], &c, tu_err()));
        TU_OK(ap_mae_config_validate(&c, names[i], tu_err()));
    }
    TU_OK(ap_mae_config_builtin("paper", &c, tu_err()));
    assert_int_equal(c.max_length, 256);
    assert_int_equal(c.patch_size, 32);
    assert_int_equal(c.encoder_layers, 24);
    assert_int_equal(c.encoder_heads, 16);
    assert_int_equal(c.decoder_layers, 8);
    assert_int_equal(c.encoder_dim_head, 64);
    assert_int_equal(ap_mae_grid(&c), 8);
    assert_int_equal(ap_mae_num_tril(&c), 36);
    assert_int_equal(ap_mae_num_masked(&c), 27); /* floor(0.75 * 36) */
    TU_OK(ap_mae_config_builtin("tiny", &c, tu_err()));
    assert_int_equal(c.max_length, 64);
    assert_int_equal(c.patch_size, 16);
    assert_int_equal(c.encoder_layers, 12);
    ap_error err = {0};
    assert_int_equal(ap_mae_config_builtin("huge", &c, &err), AP_ERR_ARG);
    assert_non_null(strstr(err.msg, "huge"));
}

static void test_config_file(void **state) {
    (void)state;
    ap_mae_config c, back;
    TU_OK(ap_mae_config_builtin("small", &c, tu_err()));
    c.scaler = AP_MAE_SCALER_LOG;
    c.qkv_bias = 1;
    char *path = tu_tmp_path("cfg.json");
    TU_OK(ap_mae_config_save(path, &c, tu_err()));
    TU_OK(ap_mae_config_load(path, &back, tu_err()));
    assert_memory_equal(&c, &back, sizeof c);
    /* N not divisible by p: an error naming the file and both numbers. */
    const char *bad = "{\"model_type\":\"ap_mae\",\"max_length\":100,\"patch_size\":32,\"mask_ratio\":0.75,"
                      "\"encoder_dim\":8,\"encoder_layers\":1,\"encoder_heads\":1,\"encoder_dim_head\":8,"
                      "\"encoder_mlp_dim\":8,\"decoder_dim\":8,\"decoder_layers\":1,\"decoder_heads\":1,"
                      "\"decoder_dim_head\":8,\"decoder_mlp_dim\":8}";
    tu_write_file(path, bad, strlen(bad));
    ap_error err = {0};
    assert_int_equal(ap_mae_config_load(path, &back, &err), AP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "max_length 100 is not divisible by patch_size 32"));
    assert_non_null(strstr(err.msg, path));
    /* A field missing, and an unsupported activation. */
    const char *missing = "{\"max_length\":64,\"patch_size\":16}";
    tu_write_file(path, missing, strlen(missing));
    assert_int_equal(ap_mae_config_load(path, &back, &err), AP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "mask_ratio") ? strstr(err.msg, "mask_ratio") : strstr(err.msg, "encoder_dim"));
    c.mask_ratio = 0.01;
    assert_int_equal(ap_mae_config_validate(&c, "x", &err), AP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "mask_ratio"));
    free(path);
}

static void test_scaler(void **state) {
    (void)state;
    ap_mae_config c;
    TU_OK(ap_mae_config_builtin("tiny", &c, tu_err()));
    c.max_length = 2; /* a 2x2 pattern */
    const float P[4] = {1.0f, 0.0f, 0.25f, 0.75f};
    float out[4];
    TU_OK(ap_mae_scale(&c, P, 1, out, tu_err()));
    /* m = log 0.25; pixel = (log P - m) / -m; the zero stays 0. */
    const double m = log(0.25);
    assert_true(fabs(out[0] - 1.0) < 1e-6);
    assert_true(out[1] == 0.0f);
    assert_true(fabs(out[2] - 0.0) < 1e-6);
    assert_true(fabs(out[3] - (log(0.75) - m) / -m) < 1e-6);
    /* Degenerate: every non-zero entry is 1 (m = 0) -> those pixels are 1. */
    const float one_hot[4] = {1.0f, 0.0f, 1.0f, 0.0f};
    TU_OK(ap_mae_scale(&c, one_hot, 1, out, tu_err()));
    assert_true(out[0] == 1.0f && out[1] == 0.0f && out[2] == 1.0f && isfinite(out[3]) && out[3] == 0.0f);
    c.scaler = AP_MAE_SCALER_LOG;
    TU_OK(ap_mae_scale(&c, P, 1, out, tu_err()));
    assert_true(fabs(out[1] - 1.0 / log(2.0)) < 1e-6 && fabs(out[2] - log(0.25)) < 1e-6);
    const float neg[4] = {0.5f, -0.1f, 0.0f, 0.0f};
    ap_error err = {0};
    assert_int_equal(ap_mae_scale(&c, neg, 1, out, &err), AP_ERR_RANGE);
    assert_non_null(strstr(err.msg, "entry (0, 1)"));
}

static void test_random_masks(void **state) {
    (void)state;
    ap_mae_config c;
    TU_OK(ap_mae_config_builtin("small", &c, tu_err()));
    const int g = ap_mae_grid(&c), M = ap_mae_num_masked(&c), B = 400;
    int64_t *m = malloc((size_t)B * M * sizeof *m), *m2 = malloc((size_t)B * M * sizeof *m);
    ap_rng r;
    ap_rng_seed(&r, 9);
    ap_mae_random_masks(&c, &r, B, m);
    TU_OK(ap_mae_check_masks(&c, m, B, M, tu_err())); /* distinct, lower triangle */
    int counts[64] = {0}, first[64] = {0};
    for (int i = 0; i < B * M; i++) counts[m[i]]++;
    for (int b = 0; b < B; b++) first[m[(size_t)b * M]]++;
    /* Every lower-triangle patch is masked about M/T of the time, none above. */
    for (int k = 0; k < g * g; k++) {
        if (k / g < k % g) {
            assert_int_equal(counts[k], 0);
            continue;
        }
        double expect = (double)B * M / ap_mae_num_tril(&c);
        assert_true(fabs(counts[k] - expect) < 0.15 * expect);
        assert_true(first[k] > 0); /* the order is random too */
    }
    ap_rng_seed(&r, 9);
    ap_mae_random_masks(&c, &r, B, m2);
    assert_memory_equal(m, m2, (size_t)B * M * sizeof *m);
    ap_error err = {0};
    int64_t bad[3] = {0, 1, 8}; /* patch 1 = row 0, col 1: above the diagonal */
    assert_int_equal(ap_mae_check_masks(&c, bad, 1, 3, &err), AP_ERR_RANGE);
    int64_t dup[3] = {0, 8, 0};
    assert_int_equal(ap_mae_check_masks(&c, dup, 1, 3, &err), AP_ERR_RANGE);
    assert_non_null(strstr(err.msg, "twice"));
    free(m), free(m2);
}

static void test_rng(void **state) {
    (void)state;
    ap_rng r;
    ap_rng_seed(&r, 1);
    double s = 0, s2 = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        double x = ap_rng_normal(&r);
        s += x;
        s2 += x * x;
    }
    assert_true(fabs(s / n) < 0.02 && fabs(s2 / n - 1) < 0.02);
    ap_rng a, b;
    ap_rng_seed(&a, 5);
    ap_rng_seed(&b, 5);
    for (int i = 0; i < 10; i++) assert_true(ap_rng_next(&a) == ap_rng_next(&b));
}

/* Tensor names and shapes of docs/mae.md; initial values as docs/mae.md says. */
static void test_layout_and_init(void **state) {
    (void)state;
    ap_mae_config c = {32, 8, 0.5, 24, 2, 2, 8, 32, 16, 1, 2, 8, 32, 1e-12, 0, AP_MAE_SCALER_LOG_NORMALIZE};
    ap_mae_model *m;
    TU_OK(ap_mae_new(&c, 3, &m, tu_err()));
    /* 8 patch embedding, 11 per block (no qkv bias) + 2 final norm per stack,
     * 2 enc_to_dec, mask token, decoder pos table, 2 to_pixels. */
    assert_int_equal(ap_mae_tensor_count(m), 8 + 11 * 2 + 2 + 2 + 1 + 1 + 11 * 1 + 2 + 2);
    const ap_mae_tensor_info *t = ap_mae_tensor_find(m, "encoder.pos_embedding");
    assert_non_null(t);
    assert_true(t->ndim == 3 && t->shape[0] == 1 && t->shape[1] == 17 && t->shape[2] == 24);
    t = ap_mae_tensor_find(m, "encoder.transformer.layers.1.0.to_qkv.weight");
    assert_true(t && t->shape[0] == 3 * 2 * 8 && t->shape[1] == 24);
    assert_null(ap_mae_tensor_find(m, "encoder.transformer.layers.1.0.to_qkv.bias"));
    t = ap_mae_tensor_find(m, "decoder.enc_to_dec.weight");
    assert_true(t && t->shape[0] == 16 && t->shape[1] == 24);
    t = ap_mae_tensor_find(m, "decoder.transformer.layers.0.1.net.4.weight");
    assert_true(t && t->shape[0] == 16 && t->shape[1] == 32);
    t = ap_mae_tensor_find(m, "decoder.mask_token");
    assert_true(t && t->ndim == 1 && t->shape[0] == 16);
    assert_non_null(ap_mae_tensor_find(m, "decoder.to_pixels.bias"));
    assert_non_null(ap_mae_tensor_find(m, "encoder.transformer.norm.weight"));
    const float *p = m->params;
    t = ap_mae_tensor_find(m, "encoder.cls_token");
    for (size_t i = 0; i < t->numel; i++) assert_true(p[t->offset + i] == 0.0f);
    t = ap_mae_tensor_find(m, "decoder.to_pixels.bias");
    for (size_t i = 0; i < t->numel; i++) assert_true(p[t->offset + i] == 0.01f);
    t = ap_mae_tensor_find(m, "encoder.patches_to_embedding.0.weight");
    for (size_t i = 0; i < t->numel; i++) assert_true(p[t->offset + i] == 1.0f);
    t = ap_mae_tensor_find(m, "encoder.transformer.layers.0.1.net.1.weight"); /* [32, 24] */
    double bound = sqrt(6.0 / (32 + 24)), mx = 0;
    for (size_t i = 0; i < t->numel; i++) mx = fmax(mx, fabs(p[t->offset + i]));
    assert_true(mx <= bound && mx > 0.9 * bound);
    /* With equal widths there is no enc_to_dec. */
    c.decoder_dim = 24;
    ap_mae_model *m2;
    TU_OK(ap_mae_new(&c, 3, &m2, tu_err()));
    assert_null(ap_mae_tensor_find(m2, "decoder.enc_to_dec.weight"));
    ap_mae_free(m);
    ap_mae_free(m2);
}

static void test_lr(void **state) {
    (void)state;
    assert_true(fabs(ap_mae_base_lr(60) - 1.8e-4) < 1e-12);
    assert_true(fabs(ap_mae_cosine_lr(1.0, 0, 100) - 1.0) < 1e-12);
    assert_true(fabs(ap_mae_cosine_lr(1.0, 50, 100) - 0.5) < 1e-12);
    assert_true(ap_mae_cosine_lr(1.0, 99, 100) < 1e-3);
    assert_true(fabs(ap_mae_cosine_lr(1.0, 100, 100) - 1.0) < 1e-12); /* restarts each cycle */
}

static void causal_patterns(float *P, int B, int N, ap_rng *r) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++) {
            float *row = P + ((size_t)b * N + i) * N;
            double s = 0;
            for (int j = 0; j < N; j++) s += row[j] = j <= i ? (float)exp(3 * ap_rng_uniform(r)) : 0.0f;
            for (int j = 0; j <= i; j++) row[j] = (float)(row[j] / s);
        }
}

/* One AdamW step from zero moments moves every parameter by about
 * -lr·sign(g) after the decay; training on one batch lowers its loss. */
static void test_train_step(void **state) {
    (void)state;
    ap_mae_config c = {16, 4, 0.5, 16, 1, 2, 8, 32, 12, 1, 2, 6, 24, 1e-12, 0, AP_MAE_SCALER_LOG_NORMALIZE};
    for (int compat = 0; compat <= 1; compat++) {
        ap_mae_model *m;
        TU_OK(ap_mae_new(&c, 1, &m, tu_err()));
        m->compat_reference = compat;
        const int B = 4, N = c.max_length;
        float *P = malloc((size_t)B * N * N * sizeof *P), *before = malloc(m->nparams * sizeof *before);
        ap_rng r;
        ap_rng_seed(&r, 2);
        causal_patterns(P, B, N, &r);
        int64_t masked[4 * 5];
        ap_mae_random_masks(&c, &r, B, masked);
        memcpy(before, m->params, m->nparams * sizeof *before);
        const double lr = 1e-3;
        float loss0, loss;
        TU_OK(ap_mae_train_step(m, P, B, masked, 5, &r, lr, &loss0, tu_err()));
        size_t moved = 0;
        for (size_t i = 0; i < m->nparams; i++) {
            double g = m->grads[i];
            double want = before[i] * (1 - lr * 0.05) - lr * g / (fabs(g) + 1e-8);
            assert_true(fabs(m->params[i] - want) < 1e-6);
            moved += m->params[i] != before[i];
        }
        assert_true(moved > m->nparams * 9 / 10);
        for (int s = 0; s < 60; s++) TU_OK(ap_mae_train_step(m, P, B, masked, 5, &r, lr, &loss, tu_err()));
        print_message("  %s: loss %.4f -> %.4f after 60 steps on one batch\n", compat ? "reference" : "default",
                      loss0, loss);
        assert_true(loss < 0.5 * loss0);
        /* Random masks from the stream work as well. */
        TU_OK(ap_mae_train_step(m, P, B, NULL, 0, &r, lr, &loss, tu_err()));
        assert_true(isfinite(loss));
        free(P), free(before);
        ap_mae_free(m);
    }
}

/* A step in two halves, as a data-parallel trainer takes it (gradients, then
 * AdamW), is the same step: the same parameters to the bit. AdamW without
 * gradients is an error. */
static void test_grad_then_adamw(void **state) {
    (void)state;
    ap_mae_config c = {16, 4, 0.5, 16, 1, 2, 8, 32, 12, 1, 2, 6, 24, 1e-12, 0, AP_MAE_SCALER_LOG_NORMALIZE};
    ap_mae_model *whole, *halves;
    TU_OK(ap_mae_new(&c, 3, &whole, tu_err()));
    TU_OK(ap_mae_new(&c, 3, &halves, tu_err()));
    assert_int_equal(ap_mae_adamw_step(halves, 1e-3, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "ap_mae_grad"));
    const int B = 3, N = c.max_length;
    float *P = malloc((size_t)B * N * N * sizeof *P);
    ap_rng r, r_whole, r_halves;
    ap_rng_seed(&r, 4);
    causal_patterns(P, B, N, &r);
    r_whole = r_halves = r;
    for (int step = 1; step <= 3; step++) {
        float loss_whole, loss_halves;
        TU_OK(ap_mae_train_step(whole, P, B, NULL, 0, &r_whole, 1e-3 * step, &loss_whole, tu_err()));
        TU_OK(ap_mae_grad(halves, P, B, NULL, 0, &r_halves, &loss_halves, tu_err()));
        TU_OK(ap_mae_adamw_step(halves, 1e-3 * step, tu_err()));
        assert_true(loss_whole == loss_halves);
    }
    assert_int_equal(halves->adam_step, 3);
    assert_memory_equal(whole->params, halves->params, whole->nparams * sizeof(float));
    free(P);
    ap_mae_free(whole);
    ap_mae_free(halves);
}

/* Encoding: the mean is the mean of the encoder's outputs (default: all of
 * them); cls is slot 0; encodings do not depend on the batch they are in. */
static void test_encode(void **state) {
    (void)state;
    ap_mae_config c = {16, 4, 0.5, 16, 1, 2, 8, 32, 12, 1, 2, 6, 24, 1e-12, 0, AP_MAE_SCALER_LOG_NORMALIZE};
    ap_mae_model *m;
    TU_OK(ap_mae_new(&c, 4, &m, tu_err()));
    const int B = 3, N = 16, D = 16;
    float *P = malloc((size_t)B * N * N * sizeof *P), *S = malloc((size_t)B * N * N * sizeof *S);
    ap_rng r;
    ap_rng_seed(&r, 3);
    causal_patterns(P, B, N, &r);
    TU_OK(ap_mae_scale(&c, P, B, S, tu_err()));
    float cls[3 * 16], mean[3 * 16], cls1[16], mean1[16];
    for (int compat = 0; compat <= 1; compat++) {
        m->compat_reference = compat;
        TU_OK(ap_mae_encode(m, S, B, cls, mean, tu_err()));
        const mae_plan *pl = &m->work->plan;
        assert_int_equal(pl->Se, 1 + (compat ? 16 : 10));
        const float *out = m->work->acts + pl->enc.out + (size_t)2 * pl->Se * D; /* image 2 */
        for (int d = 0; d < D; d++) {
            double s = 0;
            int n = 0;
            for (int t = 0; t < pl->Se; t++) {
                int k = t - 1; /* reference: slot 1+k is patch k; only slot 0 and the lower triangle count */
                if (compat && t > 0 && k / 4 < k % 4) continue;
                s += out[(size_t)t * D + d];
                n++;
            }
            assert_int_equal(n, 11);
            assert_true(fabs(mean[2 * D + d] - s / n) < 1e-5);
            assert_true(cls[2 * D + d] == out[d]);
        }
        TU_OK(ap_mae_encode(m, S + (size_t)2 * N * N, 1, cls1, mean1, tu_err()));
        assert_true(tu_max_abs_err(cls1, cls + 2 * D, D) < 1e-6 && tu_max_abs_err(mean1, mean + 2 * D, D) < 1e-6);
    }
    free(P), free(S);
    ap_mae_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_configs), cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_scaler),          cmocka_unit_test(test_random_masks),
        cmocka_unit_test(test_rng),             cmocka_unit_test(test_layout_and_init),
        cmocka_unit_test(test_lr),              cmocka_unit_test(test_train_step),
        cmocka_unit_test(test_grad_then_adamw), cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
