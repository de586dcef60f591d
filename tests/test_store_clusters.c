/* The store's /clusters: labels and summaries round trip (f32 and bf16
 * stores, a store without patterns), a run continued with the same options
 * and replaced by other options or more samples, a writer killed between
 * heads keeps exactly its committed heads, and clear errors for bad labels,
 * summaries that disagree with them, heads out of range or not done. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apmae/store.h"
#include "store/internal.h"
#include "store_synth.h"

enum { N = 12, L = 2, H = 3, S = 40 };

static ap_store *make_store(const char *name, ap_dtype dt, int no_patterns, int64_t n) {
    char *path = tu_fresh_store_path(name);
    ap_store_meta m = {.model_id = "tiny", .n_tokens = N, .num_layers = L, .num_heads = H, .dtype = dt,
                       .small_bits = -1, .deflate = -1, .run = "{}", .no_patterns = no_patterns};
    ap_store *s;
    TU_OK(ap_store_create(path, &m, &s, tu_err()));
    float *attn = malloc(sizeof(float) * L * H * N * N);
    float cls[L * H * 2], mean[L * H * 2];
    if (no_patterns) {
        ap_store_embed_info e = {.model_id = "mae", .model_config = "{}", .model_hash = "00", .dim = 2};
        TU_OK(ap_store_embed_begin(s, &e, tu_err()));
    }
    for (int64_t i = 0; i < n; i++) {
        char id[32], src[64];
        int32_t ids[N];
        ap_store_sample r;
        synth_record(i, N, id, src, &r, ids);
        synth_patterns(i, N, L, H, 1.0, attn);
        TU_OK(ap_store_append(s, &r, ids, attn, tu_err()));
        if (no_patterns) {
            for (int k = 0; k < L * H * 2; k++) cls[k] = mean[k] = (float)(i + k);
            TU_OK(ap_store_append_embeddings(s, cls, mean, tu_err()));
        }
    }
    TU_OK(ap_store_commit(s, tu_err()));
    free(attn);
    free(path);
    return s;
}

/* Head (l, h)'s labels: 3 + l + h clusters by sample index, every 7th noise. */
static int head_k(int l, int h) { return 3 + l + h; }
static void head_labels(int l, int h, int64_t n, int32_t *lab) {
    for (int64_t i = 0; i < n; i++) lab[i] = i % 7 == 3 ? -1 : (int32_t)(i % head_k(l, h));
}

/* A summary agreeing with head_labels, and made-up mean patterns. */
static void head_summary(int l, int h, int64_t n, ap_cluster_summary *c, float *mean_tri) {
    int32_t lab[S];
    head_labels(l, h, n, lab);
    size_t T = (size_t)N * (N + 1) / 2;
    for (int j = 0; j < head_k(l, h); j++) {
        c[j] = (ap_cluster_summary){.size = 0, .medoid = -1};
        snprintf(c[j].kind, sizeof c[j].kind, "%s", j % 2 ? "previous" : "sink+local");
        for (int m = 0; m < AP_CLUSTER_MEASURES; m++) c[j].measures[m] = 0.01f * (float)(m + 10 * j + 100 * h);
        for (size_t t = 0; t < T; t++) mean_tri[(size_t)j * T + t] = 1.0f / (float)(1 + t + (size_t)j + (size_t)l);
    }
    for (int64_t i = n - 1; i >= 0; i--)
        if (lab[i] >= 0) c[lab[i]].size++, c[lab[i]].medoid = i;
}

static void put_head(ap_store *s, int l, int h, int with_mean) {
    int32_t lab[S];
    ap_cluster_summary c[16];
    static float mean[16 * N * (N + 1) / 2];
    head_labels(l, h, S, lab);
    head_summary(l, h, S, c, mean);
    TU_OK(ap_store_put_cluster_labels(s, l, h, lab, tu_err()));
    TU_OK(ap_store_put_cluster_summary(s, l, h, head_k(l, h), c, with_mean ? mean : NULL, tu_err()));
}

static void check_all(ap_store *s, ap_dtype dt, int with_mean) {
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    assert_non_null(ci);
    assert_string_equal(ci->params, "{\"min_samples\":5}");
    assert_int_equal(ci->samples, S);
    assert_int_equal(ci->heads_done, L * H);
    int32_t *all = malloc(sizeof(int32_t) * S * L * H), lab[S], got[S];
    TU_OK(ap_store_read_cluster_labels(s, all, tu_err()));
    float *P = malloc(sizeof(float) * N * N), *want = malloc(sizeof(float) * 16 * N * N);
    ap_cluster_summary c[16];
    size_t T = (size_t)N * (N + 1) / 2;
    float *mean_tri = malloc(sizeof(float) * 16 * T);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            head_labels(l, h, S, lab);
            for (int i = 0; i < S; i++) assert_int_equal(all[(i * L + l) * H + h], lab[i]);
            TU_OK(ap_store_read_head_labels(s, l, h, got, tu_err()));
            assert_memory_equal(got, lab, sizeof lab);
            assert_int_equal(ci->n_clusters[l * H + h], head_k(l, h));
            assert_true(fabsf(ci->noise_fraction[l * H + h] - 6.0f / S) < 1e-6f); /* i = 3, 10, 17, 24, 31, 38 */
            ap_cluster_summary *rc;
            int k;
            TU_OK(ap_store_read_cluster_summary(s, l, h, &rc, &k, tu_err()));
            head_summary(l, h, S, c, mean_tri);
            assert_int_equal(k, head_k(l, h));
            for (int j = 0; j < k; j++) {
                assert_int_equal(rc[j].size, c[j].size);
                assert_int_equal(rc[j].medoid, c[j].medoid);
                assert_string_equal(rc[j].kind, c[j].kind);
                assert_memory_equal(rc[j].measures, c[j].measures, sizeof c[j].measures);
                if (!with_mean) continue;
                TU_OK(ap_store_read_cluster_mean(s, l, h, j, P, tu_err()));
                ap_tri_to_full(mean_tri + (size_t)j * T, N, want);
                /* f32 exact; bf16 within its rounding (entries here are >= 1e-4) */
                assert_true(tu_max_rel_err(P, want, (size_t)N * N, 1e-30) <= (dt == AP_F32 ? 0 : 1.0 / 256));
            }
            free(rc);
        }
    free(all), free(P), free(want), free(mean_tri);
}

static void test_round_trip(void **state) {
    (void)state;
    ap_dtype dts[2] = {AP_F32, AP_BF16};
    for (int d = 0; d < 2; d++) {
        ap_store *s = make_store(d ? "rt_bf16.h5" : "rt_f32.h5", dts[d], 0, S);
        char *path = ap_strdup(ap_store_path(s), NULL);
        assert_null(ap_store_clusters_info_of(s));
        TU_OK(ap_store_clusters_begin(s, "{\"min_samples\":5}", tu_err()));
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++) put_head(s, l, h, 1);
        check_all(s, dts[d], 1); /* through the writer */
        TU_OK(ap_store_close(s, tu_err()));
        TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
        check_all(s, dts[d], 1);
        TU_OK(ap_store_close(s, tu_err()));
        char *out = NULL;
        assert_int_equal(tu_run(&out, "%s store info %s", tu_apmae_bin(), path), 0);
        assert_non_null(strstr(out, "clusters: 6 of 6 heads done over the first 40 samples, options {\"min_samples\":5}"));
        free(out);
        free(path);
    }
}

static void test_without_patterns(void **state) {
    (void)state;
    ap_store *s = make_store("np.h5", AP_BF16, 1, S);
    TU_OK(ap_store_clusters_begin(s, "{\"min_samples\":5}", tu_err()));
    int32_t lab[S];
    ap_cluster_summary c[16];
    float mean[16 * N * (N + 1) / 2], P[N * N];
    head_labels(0, 0, S, lab);
    head_summary(0, 0, S, c, mean);
    TU_OK(ap_store_put_cluster_labels(s, 0, 0, lab, tu_err()));
    assert_int_equal(ap_store_put_cluster_summary(s, 0, 0, head_k(0, 0), c, mean, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "keeps no patterns"));
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) put_head(s, l, h, 0);
    check_all(s, AP_BF16, 0);
    assert_int_equal(ap_store_read_cluster_mean(s, 0, 0, 0, P, tu_err()), AP_ERR_ARG);
    TU_OK(ap_store_close(s, tu_err()));
}

static void test_continue_and_replace(void **state) {
    (void)state;
    ap_store *s = make_store("cr.h5", AP_F32, 0, S);
    char *path = ap_strdup(ap_store_path(s), NULL);
    int32_t *all = malloc(sizeof(int32_t) * S * L * H);
    assert_int_equal(ap_store_read_cluster_labels(s, all, tu_err()), AP_ERR_ARG); /* no /clusters */
    assert_non_null(strstr(tu_last_error()->msg, path));
    assert_non_null(strstr(tu_last_error()->msg, "no clusters"));
    TU_OK(ap_store_clusters_begin(s, "{\"a\":1}", tu_err()));
    put_head(s, 1, 2, 1);
    put_head(s, 0, 1, 1);
    assert_int_equal(ap_store_read_cluster_labels(s, all, tu_err()), AP_ERR_ARG); /* heads not done */
    assert_non_null(strstr(tu_last_error()->msg, "layer 0 head 0 is not clustered yet (2 of 6 heads done)"));
    TU_OK(ap_store_close(s, tu_err()));

    /* same options and samples: continued */
    TU_OK(ap_store_open(path, AP_STORE_APPEND, &s, tu_err()));
    TU_OK(ap_store_clusters_begin(s, "{\"a\":1}", tu_err()));
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    assert_int_equal(ci->heads_done, 2);
    assert_true(ci->done[1 * H + 2] && ci->done[0 * H + 1] && !ci->done[0]);
    assert_true(ci->has_summary[1 * H + 2]);
    /* writing a done head again replaces its labels and drops its summary */
    int32_t lab[S];
    for (int i = 0; i < S; i++) lab[i] = i < 20 ? 0 : -1;
    TU_OK(ap_store_put_cluster_labels(s, 0, 1, lab, tu_err()));
    assert_int_equal(ci->n_clusters[1], 1);
    assert_false(ci->has_summary[1]);
    TU_OK(ap_store_commit(s, tu_err()));

    /* other options: replaced */
    TU_OK(ap_store_clusters_begin(s, "{\"a\":2}", tu_err()));
    ci = ap_store_clusters_info_of(s);
    assert_int_equal(ci->heads_done, 0);
    assert_string_equal(ci->params, "{\"a\":2}");
    put_head(s, 0, 0, 1);
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    ci = ap_store_clusters_info_of(s);
    assert_int_equal(ci->heads_done, 1);
    assert_true(ci->done[0] && !ci->done[1 * H + 2] && ci->has_summary[0] && !ci->has_summary[1 * H + 2]);
    TU_OK(ap_store_close(s, tu_err()));

    /* more samples: replaced, with the new S */
    TU_OK(ap_store_open(path, AP_STORE_APPEND, &s, tu_err()));
    float *attn = calloc((size_t)L * H * N * N, sizeof(float));
    int32_t ids[N] = {0};
    ap_store_sample r = {.id = "extra", .task = "t"};
    TU_OK(ap_store_append(s, &r, ids, attn, tu_err()));
    TU_OK(ap_store_clusters_begin(s, "{\"a\":2}", tu_err()));
    assert_int_equal(ap_store_clusters_info_of(s)->samples, S); /* the committed samples */
    TU_OK(ap_store_commit(s, tu_err()));
    TU_OK(ap_store_clusters_begin(s, "{\"a\":2}", tu_err()));
    assert_int_equal(ap_store_clusters_info_of(s)->samples, S + 1);
    assert_int_equal(ap_store_clusters_info_of(s)->heads_done, 0);
    int32_t lab1[S + 1] = {0};
    TU_OK(ap_store_put_cluster_labels(s, 0, 0, lab1, tu_err()));
    TU_OK(ap_store_close(s, tu_err()));

    /* dropped: gone once committed, and a run with the same options starts from scratch */
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_clusters_drop(s, tu_err()), AP_ERR_ARG); /* read-only */
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_APPEND, &s, tu_err()));
    TU_OK(ap_store_clusters_drop(s, tu_err()));
    assert_null(ap_store_clusters_info_of(s));
    TU_OK(ap_store_clusters_drop(s, tu_err())); /* none: nothing to do */
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_APPEND, &s, tu_err()));
    assert_null(ap_store_clusters_info_of(s));
    TU_OK(ap_store_clusters_begin(s, "{\"a\":2}", tu_err()));
    assert_int_equal(ap_store_clusters_info_of(s)->heads_done, 0);
    TU_OK(ap_store_close(s, tu_err()));
    free(attn), free(all), free(path);
}

/* A child writes head 0 and commits, then writes heads 1 and 2 and is
 * killed before committing them: the store keeps head 0 only. */
static void test_killed_writer(void **state) {
    (void)state;
    ap_store *s = make_store("kill.h5", AP_BF16, 0, S);
    char *path = ap_strdup(ap_store_path(s), NULL);
    TU_OK(ap_store_close(s, tu_err()));
    pid_t pid = fork();
    if (pid == 0) {
        ap_store *w;
        if (ap_store_open(path, AP_STORE_APPEND, &w, NULL) != AP_OK ||
            ap_store_clusters_begin(w, "{}", NULL) != AP_OK)
            _exit(1);
        int32_t lab[S];
        for (int h = 0; h < H; h++) {
            head_labels(0, h, S, lab);
            if (ap_store_put_cluster_labels(w, 0, h, lab, NULL) != AP_OK) _exit(2);
            if (h == 0 && ap_store_commit(w, NULL) != AP_OK) _exit(3);
        }
        raise(SIGKILL);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err())); /* through the overlay */
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    assert_non_null(ci);
    assert_int_equal(ci->heads_done, 1);
    assert_true(ci->done[0] && !ci->done[1] && !ci->done[2]);
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_APPEND, &s, tu_err())); /* rolled back */
    TU_OK(ap_store_clusters_begin(s, "{}", tu_err()));
    assert_int_equal(ap_store_clusters_info_of(s)->heads_done, 1);
    int32_t got[S], want[S];
    TU_OK(ap_store_read_head_labels(s, 0, 0, got, tu_err()));
    head_labels(0, 0, S, want);
    assert_memory_equal(got, want, sizeof got);
    TU_OK(ap_store_close(s, tu_err()));
    free(path);
}

static void test_errors(void **state) {
    (void)state;
    ap_store *empty = make_store("empty.h5", AP_F32, 0, 0);
    assert_int_equal(ap_store_clusters_begin(empty, "{}", tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "no committed samples"));
    TU_OK(ap_store_close(empty, tu_err()));
    ap_store *s = make_store("err.h5", AP_F32, 0, S);
    int32_t lab[S];
    head_labels(0, 0, S, lab);
    assert_int_equal(ap_store_put_cluster_labels(s, 0, 0, lab, tu_err()), AP_ERR_ARG); /* not begun */
    assert_non_null(strstr(tu_last_error()->msg, "no clusters"));
    TU_OK(ap_store_clusters_begin(s, "{}", tu_err()));
    assert_int_equal(ap_store_put_cluster_labels(s, L, 0, lab, tu_err()), AP_ERR_RANGE);
    assert_non_null(strstr(tu_last_error()->msg, "layer 2 is out of range (0..1)"));
    assert_int_equal(ap_store_put_cluster_labels(s, 0, -1, lab, tu_err()), AP_ERR_RANGE);
    assert_non_null(strstr(tu_last_error()->msg, "head -1 is out of range (0..2)"));
    lab[5] = -3;
    assert_int_equal(ap_store_put_cluster_labels(s, 0, 0, lab, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "sample 5 has label -3"));
    for (int i = 0; i < S; i++) lab[i] = i % 2 ? 2 : 0; /* cluster 1 unused */
    assert_int_equal(ap_store_put_cluster_labels(s, 0, 0, lab, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "no sample is in cluster 1"));
    ap_cluster_summary c[16];
    static float mean[16 * N * (N + 1) / 2];
    head_summary(0, 0, S, c, mean);
    assert_int_equal(ap_store_put_cluster_summary(s, 0, 0, 3, c, mean, tu_err()), AP_ERR_ARG); /* not done */
    head_labels(0, 0, S, lab);
    TU_OK(ap_store_put_cluster_labels(s, 0, 0, lab, tu_err()));
    assert_int_equal(ap_store_put_cluster_summary(s, 0, 0, 2, c, mean, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "a summary of 2 clusters, but its labels have 3"));
    c[1].size++;
    assert_int_equal(ap_store_put_cluster_summary(s, 0, 0, 3, c, mean, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "cluster 1 has"));
    c[1].size--;
    c[2].medoid = 0; /* sample 0 is in cluster 0 */
    assert_int_equal(ap_store_put_cluster_summary(s, 0, 0, 3, c, mean, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "medoid 0 of cluster 2"));
    head_summary(0, 0, S, c, mean);
    assert_int_equal(ap_store_put_cluster_summary(s, 0, 0, 3, c, NULL, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "mean patterns missing"));
    TU_OK(ap_store_put_cluster_summary(s, 0, 0, 3, c, mean, tu_err()));
    float P[N * N];
    assert_int_equal(ap_store_read_cluster_mean(s, 0, 0, 3, P, tu_err()), AP_ERR_RANGE);
    assert_int_equal(ap_store_read_cluster_mean(s, 0, 1, 0, P, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "layer 0 head 1 is not clustered yet"));
    /* all noise: no clusters, an empty summary */
    for (int i = 0; i < S; i++) lab[i] = -1;
    TU_OK(ap_store_put_cluster_labels(s, 1, 1, lab, tu_err()));
    TU_OK(ap_store_put_cluster_summary(s, 1, 1, 0, c, mean, tu_err()));
    ap_cluster_summary *rc = (ap_cluster_summary *)1;
    int k = -1;
    TU_OK(ap_store_read_cluster_summary(s, 1, 1, &rc, &k, tu_err()));
    assert_int_equal(k, 0);
    assert_null(rc);
    assert_true(ap_store_clusters_info_of(s)->noise_fraction[1 * H + 1] == 1.0f);
    TU_OK(ap_store_close(s, tu_err()));
    /* read-only */
    char *path = tu_tmp_path("err.h5");
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_put_cluster_labels(s, 0, 0, lab, tu_err()), AP_ERR_ARG);
    assert_int_equal(ap_store_clusters_begin(s, "{}", tu_err()), AP_ERR_ARG);
    TU_OK(ap_store_close(s, tu_err()));
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_without_patterns),
        cmocka_unit_test(test_continue_and_replace),
        cmocka_unit_test(test_killed_writer),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
