/* Extraction: stored records and patterns equal a direct forward pass,
 * balancing keeps its quotas, a finished run is not redone, and a run killed
 * with SIGKILL at random points of its progress resumes to exactly the
 * uninterrupted store. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apmae/extract.h"
#include "apmae/lm.h"
#include "apmae/store.h"
#include "extract_synth.h"

static ap_extract_options options(const char *scenarios, const char *store) {
    ap_extract_options o = {.model_dir = k_model, .scenarios_path = scenarios, .store_path = store,
                            .balance = AP_BALANCE_NONE, .dtype = AP_F32, .commit_every = 4};
    return o;
}

static void test_store_equals_forward(void **state) {
    (void)state;
    char *sc = write_scenarios("eq.jsonl", 12, 10, 1), *path = tu_tmp_path("eq.h5");
    ap_extract_options o = options(sc, path);
    ap_extract_report rep;
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    assert_int_equal(rep.stored, 12);
    ap_lm *lm;
    ap_lm_state *st;
    TU_OK(ap_lm_load(k_model, &lm, tu_err()));
    TU_OK(ap_lm_state_new(lm, 10, &st, tu_err()));
    ap_store *s;
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    int L = lm->cfg.num_layers, H = lm->cfg.num_heads, V = lm->cfg.vocab_size, N = 10;
    float *att = malloc(sizeof(float) * L * H * N * N), *logits = malloc(sizeof(float) * N * V);
    float *pat = malloc(sizeof(float) * N * N);
    int32_t ids[10];
    int noise_correct = 0;
    for (int64_t i = 0; i < 12; i++) {
        ap_store_sample rec;
        TU_OK(ap_store_read_sample(s, i, &rec, ids, tu_err()));
        assert_int_equal(rec.index, i); /* every scenario kept: sample i is line i */
        TU_OK(ap_lm_forward(lm, st, ids, N, NULL, logits, att, tu_err()));
        float lp, ent, mp;
        int32_t am;
        ap_last_token_stats(logits + (size_t)(N - 1) * V, V, rec.label_id, &lp, &ent, &mp, &am);
        assert_int_equal(rec.pred_id, am);
        if (rec.label_id >= 0) {
            assert_int_equal(rec.correct, am == rec.label_id);
            assert_true(fabsf(rec.logprob - lp) < 1e-4f);
        } else {
            assert_string_equal(rec.task, "noise");
            assert_true(isnan(rec.logprob));
            noise_correct += rec.correct;
        }
        assert_true(fabsf(rec.entropy - ent) < 1e-4f && fabsf(rec.max_prob - mp) < 1e-5f);
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++) {
                TU_OK(ap_store_read_pattern(s, i, l, h, pat, tu_err()));
                assert_memory_equal(pat, att + ((size_t)l * H + h) * N * N, sizeof(float) * N * N);
            }
    }
    assert_int_equal(noise_correct, 1); /* 2 noise lines: one of each */
    TU_OK(ap_store_close(s, tu_err()));
    /* Run again: finished, nothing to do. */
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    assert_true(rep.already_complete);
    assert_int_equal(rep.stored_this_run, 0);
    assert_int_equal(rep.stored, 12);
    /* Other options on an existing store: refused, not mixed. */
    o.balance = AP_BALANCE_CORRECT_ONLY;
    ap_error err = {0};
    assert_int_equal(ap_extract_run(&o, &rep, &err), AP_ERR_ARG);
    assert_non_null(strstr(err.msg, "another run"));
    free(att), free(logits), free(pat);
    ap_lm_state_free(st);
    ap_lm_free(lm);
    free(sc), free(path);
}

static void test_balance(void **state) {
    (void)state;
    char *sc = write_scenarios("bal.jsonl", 60, 8, 2), *path = tu_tmp_path("bal.h5");
    ap_extract_options o = options(sc, path);
    o.balance = AP_BALANCE_PER_TASK;
    o.per_task = 4;
    ap_extract_report rep;
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    ap_store *s;
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    const char *tasks[] = {"alpha", "beta", "noise"};
    for (int t = 0; t < 3; t++)
        for (int c = 0; c < 2; c++) {
            int64_t *idx;
            size_t n;
            TU_OK(ap_store_filter(s, tasks[t], c, &idx, &n, tu_err()));
            assert_true(n <= 2);
            if (t == 2) assert_int_equal(n, 2); /* noise alternates, so both groups fill */
            free(idx);
        }
    assert_int_equal(ap_store_count(s), rep.stored);
    assert_int_equal(rep.stored + rep.skipped_balance + 0 <= 60, 1);
    TU_OK(ap_store_close(s, tu_err()));
    ap_error err = {0};
    o.per_task = 1;
    assert_int_equal(ap_extract_run(&o, &rep, &err), AP_ERR_ARG);
    free(sc), free(path);
}

static char *g_kill_path; /* the store the kill rounds work on */

static void reset_kill_store(void) { free(tu_fresh_store_path("kill.h5")); }

static void test_kill_and_resume(void **state) {
    (void)state;
    enum { LINES = 80 };
    char *sc = write_scenarios("kill.jsonl", LINES, 32, 3);
    char *ref = tu_fresh_store_path("kill_ref.h5");
    g_kill_path = tu_fresh_store_path("kill.h5");
    char *argv_ref[] = {"apmae", "extract", "--model", (char *)k_model, "--scenarios", sc, "--out", ref,
                        "--dtype", "f32", "--commit-every", "1", "--threads", "1", NULL};
    char *argv[] = {"apmae", "extract", "--model", (char *)k_model, "--scenarios", sc, "--out", g_kill_path,
                    "--dtype", "f32", "--commit-every", "1", "--threads", "1", NULL};
    assert_int_equal(run_apmae(argv_ref), 0); /* the uninterrupted run */
    assert_true(kill_rounds(argv, g_kill_path, ap_store_count, LINES, reset_kill_store) > 0);
    ap_extract_options o = options(sc, g_kill_path); /* resume in-process; the commit cadence does not change content */
    ap_extract_report rep;
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    assert_int_equal(rep.stored, LINES);
    assert_stores_equal(ref, g_kill_path);
    free(sc), free(ref), free(g_kill_path);
}

static void test_bad_scenarios(void **state) {
    (void)state;
    char *sc = tu_tmp_path("bad.jsonl"), *path = tu_tmp_path("bad.h5");
    const char *cases[][2] = {
        {"{\"id\":\"a\",\"task\":\"t\",\"input_ids\":[1,2]}\nnot json\n", "bad.jsonl:2"},
        {"{\"id\":\"a\",\"task\":\"t\",\"input_ids\":[1,2]}\n{\"id\":\"b\",\"task\":\"t\",\"input_ids\":[1]}\n", "earlier"},
        {"{\"id\":\"a\",\"task\":\"t\"}\n", "input_ids"},
        {"{\"id\":\"a\",\"task\":\"t\",\"label_id\":3,\"input_ids\":[1,500]}\n", "outside the vocabulary"},
        {"", "no scenarios"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_write_file(sc, cases[i][0], strlen(cases[i][0]));
        remove(path);
        ap_extract_options o = options(sc, path);
        ap_extract_report rep;
        ap_error err = {0};
        assert_int_not_equal(ap_extract_run(&o, &rep, &err), AP_OK);
        if (!strstr(err.msg, cases[i][1])) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i][1]);
    }
    free(sc), free(path);
}

int main(void) {
    omp_set_num_threads(1); /* a tiny model: threads only add waiting on a loaded machine */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_equals_forward),
        cmocka_unit_test(test_balance),
        cmocka_unit_test(test_kill_and_resume),
        cmocka_unit_test(test_bad_scenarios),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
