/* AP-MAE forward against the independent PyTorch implementation
 * (tools/ap_mae_ref.py; fixtures written by tools/make_mae_fixtures.py in
 * float64 from the float32 weights stored in each fixture's checkpoint):
 * scaler, loss, predictions, cls and mean encodings, default and
 * --compat reference, two configs with enc_to_dec (one with qkv biases). */
#include "testutil.h"

#include "apmae/io.h"
#include "apmae/mae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4

typedef struct fixture {
    ap_mae_model *m;
    ap_safetensors *io;
    int B, N, M;
    float *patterns, *scaled;
    int64_t *masked;
} fixture;

static const ap_tensor *io_tensor(const fixture *f, const char *name) {
    const ap_tensor *t = ap_st_find(f->io, name);
    if (!t) fail_msg("io.safetensors: no tensor %s", name);
    return t;
}

static float *io_floats(const fixture *f, const char *name, size_t expect) {
    const ap_tensor *t = io_tensor(f, name);
    assert_int_equal(t->dtype, AP_F32);
    assert_int_equal(t->numel, expect);
    return (float *)t->data;
}

static void fixture_open(fixture *f, const char *dir) {
    memset(f, 0, sizeof *f);
    TU_OK(ap_mae_load(dir, &f->m, tu_err()));
    char path[256];
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    TU_OK(ap_st_open(path, &f->io, tu_err()));
    const ap_tensor *p = io_tensor(f, "patterns"), *mi = io_tensor(f, "masked_indices");
    f->B = (int)p->shape[0];
    f->N = (int)p->shape[1];
    f->M = (int)mi->shape[1];
    assert_int_equal(f->N, f->m->cfg.max_length);
    assert_int_equal(mi->dtype, AP_I64);
    f->patterns = (float *)p->data;
    f->masked = malloc(mi->nbytes);
    memcpy(f->masked, mi->data, mi->nbytes); /* the map may be unaligned for int64 */
    f->scaled = malloc((size_t)f->B * f->N * f->N * sizeof(float));
}

static void fixture_close(fixture *f) {
    ap_mae_free(f->m);
    ap_st_close(f->io);
    free(f->masked);
    free(f->scaled);
}

static double g_worst = 0;
static void expect_close(const char *dir, const char *what, const float *got, const float *want, size_t n) {
    double e = tu_max_abs_err(got, want, n);
    print_message("  %s %-10s max abs err %.2e\n", dir, what, e);
    if (e > g_worst) g_worst = e;
    if (!(e <= TOL)) fail_msg("%s: %s differs from PyTorch by %.3e", dir, what, e);
}

static void check_fixture(const char *dir) {
    fixture f;
    fixture_open(&f, dir);
    const size_t img = (size_t)f.N * f.N, P2 = (size_t)f.m->cfg.patch_size * f.m->cfg.patch_size;
    const size_t D = (size_t)f.m->cfg.encoder_dim;
    assert_int_equal(f.M, ap_mae_num_masked(&f.m->cfg));

    f.m->cfg.scaler = AP_MAE_SCALER_LOG;
    TU_OK(ap_mae_scale(&f.m->cfg, f.patterns, f.B, f.scaled, tu_err()));
    expect_close(dir, "scaled_log", f.scaled, io_floats(&f, "scaled_log", f.B * img), f.B * img);
    f.m->cfg.scaler = AP_MAE_SCALER_LOG_NORMALIZE;
    TU_OK(ap_mae_scale(&f.m->cfg, f.patterns, f.B, f.scaled, tu_err()));
    expect_close(dir, "scaled", f.scaled, io_floats(&f, "scaled", f.B * img), f.B * img);

    float *loss = malloc(f.B * sizeof(float)), *pred = malloc((size_t)f.B * f.M * P2 * sizeof(float));
    float *cls = malloc(f.B * D * sizeof(float)), *mean = malloc(f.B * D * sizeof(float));
    for (int compat = 0; compat <= 1; compat++) {
        char name[32];
        const char *pre = compat ? "ref_" : "";
        f.m->compat_reference = compat;
        TU_OK(ap_mae_forward(f.m, f.scaled, f.B, f.masked, f.M, loss, pred, tu_err()));
        snprintf(name, sizeof name, "%sloss", pre);
        expect_close(dir, name, loss, io_floats(&f, name, f.B), f.B);
        snprintf(name, sizeof name, "%spred", pre);
        expect_close(dir, name, pred, io_floats(&f, name, f.B * f.M * P2), f.B * f.M * P2);
        TU_OK(ap_mae_encode(f.m, f.scaled, f.B, cls, mean, tu_err()));
        snprintf(name, sizeof name, "%scls", pre);
        expect_close(dir, name, cls, io_floats(&f, name, f.B * D), f.B * D);
        snprintf(name, sizeof name, "%smean", pre);
        expect_close(dir, name, mean, io_floats(&f, name, f.B * D), f.B * D);
    }
    /* The two modes really differ (else the reference fixtures prove nothing). */
    assert_true(fabs(io_floats(&f, "loss", f.B)[0] - io_floats(&f, "ref_loss", f.B)[0]) > 1e-3);
    assert_true(fabs(io_floats(&f, "mean", f.B * D)[0] - io_floats(&f, "ref_mean", f.B * D)[0]) > 1e-4);
    free(loss), free(pred), free(cls), free(mean);
    fixture_close(&f);
}

static void test_n32p8(void **state) {
    (void)state;
    check_fixture("fixtures/mae/n32p8");
}

static void test_n32p4_qkv_bias(void **state) {
    (void)state;
    check_fixture("fixtures/mae/n32p4");
}

/* Saving and reloading a checkpoint keeps every parameter and the config. */
static void test_save_roundtrip(void **state) {
    (void)state;
    ap_mae_model *a, *b;
    TU_OK(ap_mae_load("fixtures/mae/n32p4", &a, tu_err()));
    char *dir = tu_tmp_path("roundtrip");
    TU_OK(ap_mae_save(a, dir, tu_err()));
    TU_OK(ap_mae_load(dir, &b, tu_err()));
    assert_memory_equal(&a->cfg, &b->cfg, sizeof a->cfg);
    assert_int_equal(a->nparams, b->nparams);
    assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
    ap_mae_free(a);
    ap_mae_free(b);
    free(dir);
}

static int report(void **state) {
    (void)state;
    print_message("  worst abs err vs PyTorch: %.2e (tolerance %.0e)\n", g_worst, TOL);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_n32p8),
        cmocka_unit_test(test_n32p4_qkv_bias),
        cmocka_unit_test(test_save_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, report);
}
