/* Sharded extraction (docs/store.md): the shards of a run merged back equal the
 * single-process store sample for sample (patterns, records, embeddings),
 * per-task quotas are split across the shards, and merging refuses
 * missing, doubled, incomplete or mismatched shards, naming them. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apmae/extract.h"
#include "apmae/store.h"
#include "extract_synth.h"

enum { N = 16 };

static ap_extract_options options(const char *scenarios, const char *store) {
    return (ap_extract_options){.model_dir = k_model, .scenarios_path = scenarios, .store_path = store,
                                .balance = AP_BALANCE_NONE, .dtype = AP_BF16, .commit_every = 8};
}

/* Run shards 0..R-1 of o into <base>.shard-K-of-R; returns their paths. */
static char **run_shards(ap_extract_options o, const char *base, int R) {
    char **paths = calloc((size_t)R, sizeof *paths);
    for (int k = 0; k < R; k++) {
        paths[k] = ap_shard_path(base, k, R, tu_err());
        unlink(paths[k]);
        o.store_path = paths[k];
        o.shard_index = k;
        o.shard_count = R;
        ap_extract_report rep;
        TU_OK(ap_extract_run(&o, &rep, tu_err()));
    }
    return paths;
}

static void free_paths(char **p, int n) {
    for (int k = 0; k < n; k++) free(p[k]);
    free(p);
}

static void test_merge_equals_single(void **state) {
    (void)state;
    char *sc = write_scenarios("sh.jsonl", 23, N, 11), *single = tu_fresh_store_path("sh_single.h5"), *merged = tu_fresh_store_path("sh_merged.h5");
    ap_extract_options o = options(sc, single);
    ap_extract_report rep;
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    char *base = tu_tmp_path("sh.h5");
    char **p2 = run_shards(o, base, 2);
    /* each shard holds its own scenarios, in order, and says which shard it is */
    ap_store *s;
    TU_OK(ap_store_open(p2[1], AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_get_meta(s)->shard_index, 1);
    assert_int_equal(ap_store_get_meta(s)->shard_count, 2);
    assert_int_equal(ap_store_count(s), 11);
    for (int64_t i = 0; i < 11; i++) {
        ap_store_sample r;
        TU_OK(ap_store_read_sample(s, i, &r, NULL, tu_err()));
        assert_int_equal(r.index, 2 * i + 1);
    }
    TU_OK(ap_store_close(s, tu_err()));
    int64_t n = 0;
    TU_OK(ap_extract_merge(merged, (const char *const *)p2, 2, &n, tu_err()));
    assert_int_equal(n, 23);
    assert_stores_equal(single, merged);
    TU_OK(ap_store_open(merged, AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_get_meta(s)->shard_count, 1);
    TU_OK(ap_store_close(s, tu_err()));
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.merging", merged);
    assert_false(ap_path_exists(tmp));

    /* three shards, given in any order */
    char **p3 = run_shards(o, base, 3);
    const char *order[3] = {p3[2], p3[0], p3[1]};
    char *merged3 = tu_fresh_store_path("sh_merged3.h5");
    TU_OK(ap_extract_merge(merged3, order, 3, &n, tu_err()));
    assert_stores_equal(single, merged3);
    free_paths(p2, 2), free_paths(p3, 3);
    free(sc), free(single), free(merged), free(merged3), free(base);
}

/* Streaming mode sharded: embeddings travel with their samples. */
static void test_merge_with_embeddings(void **state) {
    (void)state;
    char *sc = write_scenarios("she.jsonl", 9, N, 12), *single = tu_fresh_store_path("she_single.h5"), *merged = tu_fresh_store_path("she_m.h5");
    char *mae = make_mae("fixtures/store/mae_n16.json", "mae_she", 1);
    for (int only = 0; only < 2; only++) {
        unlink(single);
        unlink(merged);
        ap_extract_options o = options(sc, single);
        o.embed_with = mae;
        o.embeddings_only = only;
        ap_extract_report rep;
        TU_OK(ap_extract_run(&o, &rep, tu_err()));
        char *base = tu_tmp_path("she.h5");
        char **p = run_shards(o, base, 2);
        TU_OK(ap_extract_merge(merged, (const char *const *)p, 2, NULL, tu_err()));
        assert_stores_equal(single, merged);
        ap_store *s;
        TU_OK(ap_store_open(merged, AP_STORE_READ, &s, tu_err()));
        assert_int_equal(ap_store_embedded(s), 9);
        assert_int_equal(ap_store_has_patterns(s), !only);
        TU_OK(ap_store_close(s, tu_err()));
        free_paths(p, 2);
        free(base);
    }
    /* more shards than scenarios: an empty shard merges too */
    char *sc3 = write_scenarios("she3.jsonl", 3, N, 15);
    unlink(single);
    unlink(merged);
    ap_extract_options o = options(sc3, single);
    o.embed_with = mae;
    o.embeddings_only = 1;
    ap_extract_report rep;
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    char *base = tu_tmp_path("she3.h5");
    char **p = run_shards(o, base, 4);
    TU_OK(ap_extract_merge(merged, (const char *const *)p, 4, NULL, tu_err()));
    assert_stores_equal(single, merged);
    free_paths(p, 4);
    free(base), free(sc3);
    free(sc), free(single), free(merged), free(mae);
}

/* per-task:5 over 2 shards: correct quota 2 -> 1 + 1, incorrect 3 -> 2 + 1. */
static void test_balance_split(void **state) {
    (void)state;
    char *sc = write_scenarios("shb.jsonl", 60, N, 13), *merged = tu_fresh_store_path("shb_m.h5");
    ap_extract_options o = options(sc, NULL);
    o.balance = AP_BALANCE_PER_TASK;
    o.per_task = 5;
    char *base = tu_tmp_path("shb.h5");
    char **p = run_shards(o, base, 2);
    const char *tasks[] = {"alpha", "beta", "noise"};
    const size_t quota[2][2] = {{2, 1}, {1, 1}}; /* [shard][correct] */
    for (int k = 0; k < 2; k++) {
        ap_store *s;
        TU_OK(ap_store_open(p[k], AP_STORE_READ, &s, tu_err()));
        for (int t = 0; t < 3; t++)
            for (int c = 0; c < 2; c++) {
                int64_t *idx;
                size_t n;
                TU_OK(ap_store_filter(s, tasks[t], c, &idx, &n, tu_err()));
                assert_true(n <= quota[k][c]);
                free(idx);
            }
        TU_OK(ap_store_close(s, tu_err()));
    }
    TU_OK(ap_extract_merge(merged, (const char *const *)p, 2, NULL, tu_err()));
    ap_store *s;
    TU_OK(ap_store_open(merged, AP_STORE_READ, &s, tu_err()));
    int64_t *idx;
    size_t n;
    TU_OK(ap_store_filter(s, "noise", -1, &idx, &n, tu_err()));
    /* noise correctness alternates over the whole file, so shard 0 (even
     * lines) only meets "incorrect" noise and shard 1 only "correct": 2 + 1 */
    assert_int_equal(n, 3);
    free(idx);
    for (int64_t i = 1; i < ap_store_count(s); i++) { /* scenario order */
        ap_store_sample a, b;
        TU_OK(ap_store_read_sample(s, i - 1, &a, NULL, tu_err()));
        TU_OK(ap_store_read_sample(s, i, &b, NULL, tu_err()));
        assert_true(a.index < b.index);
    }
    TU_OK(ap_store_close(s, tu_err()));
    free_paths(p, 2);
    free(sc), free(merged), free(base);
}

static void expect_merge_error(const char *out, const char *const *shards, size_t n, const char *needle,
                               const char *names) {
    ap_error err = {0};
    assert_int_not_equal(ap_extract_merge(out, shards, n, NULL, &err), AP_OK);
    if (!strstr(err.msg, needle)) fail_msg("'%s' lacks '%s'", err.msg, needle);
    if (names && !strstr(err.msg, names)) fail_msg("'%s' does not name %s", err.msg, names);
    assert_false(ap_path_exists(out));
}

static void test_merge_errors(void **state) {
    (void)state;
    char *sc = write_scenarios("shx.jsonl", 8, N, 14), *out = tu_fresh_store_path("shx_m.h5");
    ap_extract_options o = options(sc, NULL);
    char *base = tu_tmp_path("shx.h5"), *base32 = tu_tmp_path("shx32.h5");
    char **p = run_shards(o, base, 2);
    o.dtype = AP_F32;
    char **q = run_shards(o, base32, 2);
    const char *only0[1] = {p[0]};
    expect_merge_error(out, only0, 1, "shard 0 of 2, but 1 shards were given", p[0]);
    const char *twice[2] = {p[0], p[0]};
    expect_merge_error(out, twice, 2, "is also shard 0", p[0]);
    const char *mixed[2] = {p[0], q[1]};
    expect_merge_error(out, mixed, 2, "differs from shard", q[1]);
    /* an unfinished shard: its cursor short of the scenarios */
    ap_store *s;
    TU_OK(ap_store_open(p[1], AP_STORE_APPEND, &s, tu_err()));
    ap_store_set_cursor(s, 3);
    TU_OK(ap_store_close(s, tu_err()));
    const char *both[2] = {p[0], p[1]};
    expect_merge_error(out, both, 2, "is incomplete: 3 of 8 scenarios", p[1]);
    TU_OK(ap_store_open(p[1], AP_STORE_APPEND, &s, tu_err()));
    ap_store_set_cursor(s, 8);
    TU_OK(ap_store_close(s, tu_err()));
    /* rerunning a shard under another shard spec is refused; under its own it is complete */
    ap_extract_report rep;
    ap_error err = {0};
    o.dtype = AP_BF16;
    o.store_path = p[1];
    o.shard_index = 0;
    o.shard_count = 2;
    assert_int_equal(ap_extract_run(&o, &rep, &err), AP_ERR_ARG);
    assert_non_null(strstr(err.msg, "shard 1/2 of its run, but this run is shard 0/2"));
    o.shard_index = 1;
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    assert_true(rep.already_complete);
    TU_OK(ap_extract_merge(out, both, 2, NULL, tu_err()));
    ap_error e2 = {0};
    assert_int_equal(ap_extract_merge(out, both, 2, NULL, &e2), AP_ERR_IO);
    assert_non_null(strstr(e2.msg, "already exists"));
    /* --shard K/R */
    int k, r;
    TU_OK(ap_shard_parse("3/4", &k, &r, tu_err()));
    assert_true(k == 3 && r == 4);
    const char *bad[] = {"4/4", "1", "-1/2", "a/2", "1/0", "0/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(ap_shard_parse(bad[i], &k, &r, tu_err()), AP_ERR_ARG);
    free_paths(p, 2), free_paths(q, 2);
    free(sc), free(out), free(base), free(base32);
}

int main(void) {
    omp_set_num_threads(1); /* tiny models: threads only add waiting on a loaded machine */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_equals_single),
        cmocka_unit_test(test_merge_with_embeddings),
        cmocka_unit_test(test_balance_split),
        cmocka_unit_test(test_merge_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
