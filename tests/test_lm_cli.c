/* `apmae lm forward` end to end: its output file equals the PyTorch
 * reference's for the ablation fixture (ids and --ablate given on the
 * command line). */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "apmae/io.h"

static const char *k_case = "fixtures/lm/f32_ablate";

static void test_forward_matches_reference(void **state) {
    (void)state;
    ap_safetensors *want;
    TU_OK(ap_st_open("fixtures/lm/f32_ablate/expected.safetensors", &want, tu_err()));
    const ap_tensor *ids = ap_st_find(want, "input_ids"), *ab = ap_st_find(want, "ablate");
    assert_non_null(ids);
    assert_non_null(ab);
    assert_true(ab->shape[0] > 0);
    ap_buf ids_arg = {0}, ablate_arg = {0};
    for (int64_t i = 0; i < ids->shape[0]; i++)
        ap_buf_printf(&ids_arg, NULL, "%s%lld", i ? "," : "", (long long)((const int64_t *)ids->data)[i]);
    for (int64_t k = 0; k < ab->shape[0]; k++) {
        const int64_t *r = (const int64_t *)ab->data + 2 * k;
        ap_buf_printf(&ablate_arg, NULL, "%s%lld:%lld", k ? "," : "", (long long)r[0], (long long)r[1]);
    }
    char *out = tu_tmp_path("forward.safetensors");
    int rc = tu_run(NULL, "%s lm forward --model %s --ids %s --ablate %s --out %s", tu_apmae_bin(), k_case,
                    ids_arg.data, ablate_arg.data, out);
    assert_int_equal(rc, 0);
    ap_safetensors *got;
    TU_OK(ap_st_open(out, &got, tu_err()));
    const char *names[] = {"logits", "attentions"};
    for (int i = 0; i < 2; i++) {
        const ap_tensor *g = ap_st_find(got, names[i]), *w = ap_st_find(want, names[i]);
        assert_non_null(g);
        assert_int_equal(g->dtype, AP_F32);
        assert_int_equal(g->ndim, w->ndim);
        assert_memory_equal(g->shape, w->shape, sizeof(int64_t) * (size_t)w->ndim);
        double err = i == 0 ? tu_max_rel_err(g->data, w->data, g->numel, 1.0) : tu_max_abs_err(g->data, w->data, g->numel);
        assert_true(err < (i == 0 ? 1e-4 : 1e-5));
    }
    const ap_tensor *gid = ap_st_find(got, "input_ids");
    assert_int_equal(gid->dtype, AP_I64);
    assert_memory_equal(gid->data, ids->data, ids->nbytes);
    /* Without --ablate the logits differ: the flag really reached the model. */
    rc = tu_run(NULL, "%s lm forward --model %s --ids %s --out %s", tu_apmae_bin(), k_case, ids_arg.data, out);
    assert_int_equal(rc, 0);
    ap_safetensors *plain;
    TU_OK(ap_st_open(out, &plain, tu_err()));
    const ap_tensor *pl = ap_st_find(plain, "logits"), *wl = ap_st_find(want, "logits");
    assert_true(tu_max_abs_err(pl->data, wl->data, wl->numel) > 1e-3);
    ap_st_close(plain);
    ap_st_close(got);
    ap_st_close(want);
    ap_buf_free(&ids_arg);
    ap_buf_free(&ablate_arg);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_forward_matches_reference)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
