/* Loading StarCoder2 checkpoints: every way a directory can be wrong gets an
 * error that names the file and the problem. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/lm.h"

static const char *k_src = "fixtures/lm/f32_gqa_untied";

/* A copy of the fixture checkpoint in a scratch dir, with config.json's text
 * passed through sed expression `sed_expr` (NULL: unchanged). */
static char *make_variant(const char *name, const char *sed_expr) {
    char *dir = tu_tmp_path(name);
    int rc = tu_run(NULL, "rm -rf '%s' && mkdir -p '%s' && cp %s/model.safetensors '%s'/ && sed -e '%s' %s/config.json > '%s/config.json'",
                    dir, dir, k_src, dir, sed_expr ? sed_expr : "", k_src, dir);
    assert_int_equal(rc, 0);
    return dir;
}

static void expect_load_error(const char *dir, ap_status code, const char *needle1, const char *needle2) {
    ap_lm *lm = NULL;
    ap_error err = {0};
    assert_int_equal(ap_lm_load(dir, &lm, &err), code);
    assert_null(lm);
    if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2)))
        fail_msg("message '%s' lacks '%s' / '%s'", err.msg, needle1, needle2 ? needle2 : "");
}

static void test_loads_and_reads_config(void **state) {
    (void)state;
    ap_lm *lm;
    TU_OK(ap_lm_load(k_src, &lm, tu_err()));
    assert_int_equal(lm->cfg.hidden_size, 32);
    assert_int_equal(lm->cfg.num_kv_heads, 2);
    assert_int_equal(lm->cfg.head_dim, 8);
    assert_int_equal(lm->cfg.sliding_window, 0); /* null = no window */
    assert_false(lm->cfg.tie_word_embeddings);
    assert_ptr_not_equal(lm->lm_head.data, lm->embed.data);
    ap_lm_free(lm);
}

static void test_config_disagrees_with_tensors(void **state) {
    (void)state;
    char *d = make_variant("bad_intermediate", "s/\"intermediate_size\": 80/\"intermediate_size\": 96/");
    expect_load_error(d, AP_ERR_FORMAT, "mlp.c_fc", "shape");
    free(d);
    d = make_variant("bad_kv", "s/\"num_key_value_heads\": 2/\"num_key_value_heads\": 4/");
    expect_load_error(d, AP_ERR_FORMAT, "k_proj", NULL);
    free(d);
    d = make_variant("bad_tie", "s/\"tie_word_embeddings\": false/\"tie_word_embeddings\": true/");
    ap_lm *lm; /* tied: lm_head.weight is then simply unused, which is valid */
    TU_OK(ap_lm_load(d, &lm, tu_err()));
    assert_ptr_equal(lm->lm_head.data, lm->embed.data);
    ap_lm_free(lm);
    free(d);
    d = make_variant("more_layers", "s/\"num_hidden_layers\": 2/\"num_hidden_layers\": 3/");
    expect_load_error(d, AP_ERR_FORMAT, "model.layers.2", NULL);
    free(d);
}

static void test_bad_config_values(void **state) {
    (void)state;
    char *d = make_variant("llama", "s/\"model_type\": \"starcoder2\"/\"model_type\": \"llama\"/");
    expect_load_error(d, AP_ERR_FORMAT, "config.json", "llama");
    free(d);
    d = make_variant("heads", "s/\"num_attention_heads\": 4/\"num_attention_heads\": 3/");
    expect_load_error(d, AP_ERR_FORMAT, "config.json", "divisible");
    free(d);
    d = make_variant("act", "s/gelu_pytorch_tanh/relu/");
    expect_load_error(d, AP_ERR_FORMAT, "hidden_act", NULL);
    free(d);
    d = make_variant("neg", "s/\"hidden_size\": 32/\"hidden_size\": -32/");
    expect_load_error(d, AP_ERR_FORMAT, "hidden_size", NULL);
    free(d);
    d = make_variant("notjson", "s/{/[/");
    expect_load_error(d, AP_ERR_FORMAT, "config.json", NULL);
    free(d);
}

static void test_missing_files(void **state) {
    (void)state;
    expect_load_error("/nonexistent/model", AP_ERR_IO, "/nonexistent/model", NULL);
    char *d = make_variant("no_weights", NULL);
    char *w = tu_tmp_path("no_weights/model.safetensors");
    remove(w);
    expect_load_error(d, AP_ERR_IO, "no_weights", NULL);
    free(w);
    free(d);
    d = make_variant("truncated", NULL);
    assert_int_equal(tu_run(NULL, "truncate -s 5000 '%s/model.safetensors'", d), 0);
    expect_load_error(d, AP_ERR_FORMAT, "model.safetensors", NULL);
    free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loads_and_reads_config),
        cmocka_unit_test(test_config_disagrees_with_tensors),
        cmocka_unit_test(test_bad_config_values),
        cmocka_unit_test(test_missing_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
