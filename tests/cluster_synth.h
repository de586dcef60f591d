/* Shared by the clustering tests (test_cluster.c, test_cluster_cli.c): a
 * synthetic store whose heads each have 2 or 3 groups of samples, every
 * group with its own embedding direction and its own attention (group 0
 * attends to token 0, group 1 to the previous token, group 2 to itself). */
#ifndef APMAE_TESTS_CLUSTER_SYNTH_H
#define APMAE_TESTS_CLUSTER_SYNTH_H

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/store.h"

enum { N = 16, D = 8, S = 120 }; /* tokens, embedding dimension, samples */

static inline int groups_of(int l, int h) { return 2 + (l + h) % 2; }
static inline int group_of(int64_t i, int l, int h) { return (int)((i * 7 + l + 3 * h) % groups_of(l, h)); }

/* Group 0 attends to token 0, group 1 to the previous token, group 2 to itself. */
static inline void fill_pattern(int g, float *P) {
    memset(P, 0, sizeof(float) * N * N);
    P[0] = 1;
    for (int i = 1; i < N; i++) {
        int peak = g == 0 ? 0 : g == 1 ? i - 1 : i;
        for (int j = 0; j <= i; j++) P[i * N + j] = (j == peak ? 0.9f : 0.0f) + 0.1f / (float)(i + 1);
    }
}

static inline char *make_store_lh(const char *name, int64_t samples, int with_embeddings, int nl, int nh) {
    char *path = tu_fresh_store_path(name);
    ap_store_meta m = {.model_id = "tiny", .n_tokens = N, .num_layers = nl, .num_heads = nh, .dtype = AP_F32,
                       .small_bits = -1, .deflate = -1, .run = "{}"};
    ap_store *s;
    TU_OK(ap_store_create(path, &m, &s, tu_err()));
    ap_store_embed_info e = {.model_id = "mae", .model_config = "{}", .model_hash = "0123456789abcdef", .dim = D};
    if (with_embeddings) TU_OK(ap_store_embed_begin(s, &e, tu_err()));
    float *attn = malloc(sizeof(float) * nl * nh * N * N), *cls = malloc(sizeof(float) * nl * nh * D),
          *mean = malloc(sizeof(float) * nl * nh * D);
    ap_rng r;
    ap_rng_seed(&r, 9);
    for (int64_t i = 0; i < samples; i++) {
        char id[32];
        snprintf(id, sizeof id, "s%03lld", (long long)i);
        int32_t ids[N];
        for (int t = 0; t < N; t++) ids[t] = 100 + t;
        ap_store_sample rec = {.id = id, .task = "t", .label_id = 1};
        for (int l = 0; l < nl; l++)
            for (int h = 0; h < nh; h++) {
                int g = group_of(i, l, h);
                fill_pattern(g, attn + (size_t)(l * nh + h) * N * N);
                for (int k = 0; k < D; k++) {
                    float c = (k == g ? 3.0f : 0.0f) + (k == D - 1 ? 1.0f : 0.0f); /* distinct directions */
                    cls[(l * nh + h) * D + k] = c + 0.05f * (float)ap_rng_normal(&r);
                    mean[(l * nh + h) * D + k] = -cls[(l * nh + h) * D + k];
                }
            }
        TU_OK(ap_store_append(s, &rec, ids, attn, tu_err()));
        if (with_embeddings) TU_OK(ap_store_append_embeddings(s, cls, mean, tu_err()));
    }
    TU_OK(ap_store_close(s, tu_err()));
    free(attn), free(cls), free(mean);
    return path;
}

/* Two stores' /clusters equal: options, every label, every head's summary
 * and mean patterns, bit for bit. */
static inline void assert_clusters_equal(const char *a_path, const char *b_path) {
    ap_store *a, *b;
    TU_OK(ap_store_open(a_path, AP_STORE_READ, &a, tu_err()));
    TU_OK(ap_store_open(b_path, AP_STORE_READ, &b, tu_err()));
    const ap_store_meta *m = ap_store_get_meta(a);
    const ap_store_clusters_info *ia = ap_store_clusters_info_of(a), *ib = ap_store_clusters_info_of(b);
    assert_true(ia && ib);
    assert_string_equal(ia->params, ib->params);
    assert_int_equal(ia->samples, ib->samples);
    size_t nl = (size_t)ia->samples * m->num_layers * m->num_heads, NN = (size_t)m->n_tokens * m->n_tokens;
    int32_t *la = malloc(sizeof(int32_t) * nl), *lb = malloc(sizeof(int32_t) * nl);
    float *pa = malloc(sizeof(float) * NN), *pb = malloc(sizeof(float) * NN);
    TU_OK(ap_store_read_cluster_labels(a, la, tu_err()));
    TU_OK(ap_store_read_cluster_labels(b, lb, tu_err()));
    assert_memory_equal(la, lb, sizeof(int32_t) * nl);
    for (int l = 0; l < m->num_layers; l++)
        for (int h = 0; h < m->num_heads; h++) {
            ap_cluster_summary *ca, *cb;
            int ka, kb;
            TU_OK(ap_store_read_cluster_summary(a, l, h, &ca, &ka, tu_err()));
            TU_OK(ap_store_read_cluster_summary(b, l, h, &cb, &kb, tu_err()));
            assert_int_equal(ka, kb);
            assert_memory_equal(ca, cb, sizeof *ca * (size_t)ka);
            for (int c = 0; c < ka; c++) {
                TU_OK(ap_store_read_cluster_mean(a, l, h, c, pa, tu_err()));
                TU_OK(ap_store_read_cluster_mean(b, l, h, c, pb, tu_err()));
                assert_memory_equal(pa, pb, sizeof(float) * NN);
            }
            free(ca), free(cb);
        }
    TU_OK(ap_store_close(a, tu_err()));
    TU_OK(ap_store_close(b, tu_err()));
    free(la), free(lb), free(pa), free(pb);
}

#endif
