/* A synthetic study directory for the report's test and its benchmark: a
 * store of S samples of L x H heads (tests/store_synth.h patterns) with a
 * clustering run, the classify stage's results.json, and a study.json in
 * which extract is done and mae-train was interrupted. No LM, no AP-MAE. */
#ifndef APMAE_TESTS_STUDY_SYNTH_H
#define APMAE_TESTS_STUDY_SYNTH_H

#include <stdlib.h>
#include <string.h>

#include "apmae/io.h"
#include "apmae/study.h"
#include "store_synth.h"

/* Head number i (l * H + h) has 1 + i % 5 clusters (by sample index, every
 * 9th sample noise); cluster 0's kind is "sink" on even heads and "a<b&c"
 * (to test escaping) on odd ones, the others "previous". */
static inline int synth_head_k(int i) { return 1 + i % 5; }

static inline ap_status synth_clusters(ap_store *s, int L, int H, int N, int64_t S, ap_error *err) {
    ap_status st = ap_store_clusters_begin(s, "{\"min_samples\":5}", err);
    size_t T = (size_t)N * (N + 1) / 2;
    float *mean = malloc(sizeof(float) * 5 * T);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)S);
    if (!mean || !lab) st = ap_fail(err, AP_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < L * H; i++) {
        int k = synth_head_k(i);
        ap_cluster_summary c[5];
        for (int j = 0; j < k; j++) {
            c[j] = (ap_cluster_summary){.size = 0, .medoid = -1};
            snprintf(c[j].kind, sizeof c[j].kind, "%s", j ? "previous" : i % 2 ? "a<b&c" : "sink");
            for (size_t t = 0; t < T; t++) mean[(size_t)j * T + t] = 1.0f / (float)(1 + t % (size_t)(7 + j));
        }
        for (int64_t n = 0; n < S; n++) {
            lab[n] = n % 9 == 4 ? -1 : (int32_t)(n % k);
            if (lab[n] >= 0) c[lab[n]].size++, c[lab[n]].medoid = n;
        }
        st = ap_store_put_cluster_labels(s, i / H, i % H, lab, err);
        if (!st) st = ap_store_put_cluster_summary(s, i / H, i % H, k, c, mean, err);
    }
    free(mean);
    free(lab);
    return st;
}

static inline ap_status synth_store(const char *path, int L, int H, int N, int64_t S, ap_error *err) {
    ap_store_meta m = {.model_id = "synthetic", .n_tokens = N, .num_layers = L, .num_heads = H, .dtype = AP_BF16,
                       .small_bits = -1, .deflate = -1, .run = "{}"};
    ap_store *s;
    ap_status st = ap_store_create(path, &m, &s, err);
    if (st) return st;
    float *attn = malloc(sizeof(float) * (size_t)L * H * N * N);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)N);
    if (!attn || !ids) st = ap_fail(err, AP_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; !st && i < S; i++) {
        char id[32], src[64];
        ap_store_sample r;
        synth_record(i, N, id, src, &r, ids);
        synth_patterns(i, N, L, H, 1.0, attn);
        st = ap_store_append(s, &r, ids, attn, err);
    }
    if (!st) st = ap_store_commit(s, err);
    if (!st) st = synth_clusters(s, L, H, N, S, err);
    ap_status cst = ap_store_close(s, st ? NULL : err);
    free(attn);
    free(ids);
    return st ? st : cst;
}

static inline void synth_num(cJSON *o, const char *key, double v) { cJSON_AddNumberToObject(o, key, v); }

/* results.json as the classify stage writes it (docs/analysis.md): two
 * tasks, identifiers skipped, and the pooled run; the head ranked first is
 * number 9 % (L * H) (layer 2, head 1 for 3 x 4), then 10, 11, ... */
static inline cJSON *synth_results(int L, int H) {
    cJSON *r = cJSON_CreateObject(), *tasks = cJSON_AddObjectToObject(r, "tasks");
    synth_num(r, "num_layers", L);
    synth_num(r, "num_heads", H);
    synth_num(r, "seed", 42);
    synth_num(r, "test_fraction", 0.1);
    synth_num(r, "folds", 5);
    synth_num(r, "repeats", 5);
    cJSON *gbt = cJSON_AddObjectToObject(r, "gbt");
    synth_num(gbt, "max_depth", 6);
    synth_num(gbt, "learning_rate", 0.1);
    synth_num(gbt, "max_rounds", 1000);
    synth_num(gbt, "early_stopping", 25);
    static const char *const names[3] = {"eol", "identifiers", "all"};
    for (int t = 0; t < 3; t++) {
        cJSON *x = cJSON_AddObjectToObject(tasks, names[t]);
        synth_num(x, "n", 20 * (t + 1));
        synth_num(x, "n_correct", 10 * (t + 1));
        if (t == 1) {
            cJSON_AddStringToObject(x, "skipped", "one class only (every completion incorrect)");
            cJSON_AddArrayToObject(x, "heads");
            continue;
        }
        cJSON_AddNullToObject(x, "skipped");
        synth_num(x, "accuracy", 0.625 + 0.05 * t);
        cJSON *iv = cJSON_AddArrayToObject(x, "interval");
        cJSON_AddItemToArray(iv, cJSON_CreateNumber(0.41));
        cJSON_AddItemToArray(iv, cJSON_CreateNumber(0.8));
        cJSON *cv = cJSON_AddObjectToObject(x, "cv"), *cb = cJSON_AddObjectToObject(cv, "baselines");
        synth_num(cv, "mean", 0.6);
        synth_num(cv, "sd", 0.05);
        synth_num(cb, "majority", 0.5);
        synth_num(cb, "confidence", 0.55);
        cJSON *g = cJSON_AddObjectToObject(cv, "gain_over_confidence");
        synth_num(g, "mean", 0.05);
        synth_num(g, "sd", 0.08);
        synth_num(g, "wins", 17);
        synth_num(g, "losses", 6);
        cJSON *heads = cJSON_AddArrayToObject(x, "heads");
        for (int i = 0; i < L * H; i++) {
            int f = (i + 9) % (L * H);
            cJSON *e = cJSON_CreateObject();
            double a = 0.5 / (1 + i);
            synth_num(e, "layer", f / H);
            synth_num(e, "head", f % H);
            synth_num(e, "mean_pos", 0.7 * a);
            synth_num(e, "mean_neg", -0.3 * a);
            synth_num(e, "mean_total", 0.4 * a);
            synth_num(e, "mean_abs", a);
            cJSON_AddItemToArray(heads, e);
        }
    }
    return r;
}

static inline ap_status synth_study(const char *dir, int L, int H, int N, int64_t S, ap_error *err) {
    char *rec = ap_path_join(dir, AP_STUDY_RECORD, err), *store = ap_path_join(dir, AP_STUDY_STORE, err);
    char *cdir = ap_path_join(dir, AP_STUDY_CLASSIFY_DIR, err), *res = cdir ? ap_path_join(cdir, "results.json", err) : NULL;
    ap_status st = rec && store && cdir && res ? AP_OK : AP_ERR_NOMEM;
    const char *json = "{\"stages\": {\"extract\": {\"state\": \"done\", \"seconds\": 1.5, \"summary\": \"synthetic\"},"
                       " \"mae-train\": {\"state\": \"running\"}}, \"apmae_version\": \"test\", \"config_file\": null,"
                       " \"config\": {\"model\": \"m & <n>\", \"mine\": {\"per_task\": 3}}}";
    if (!st) st = ap_make_dirs(cdir, err);
    if (!st) st = ap_write_file_atomic(rec, json, strlen(json), err);
    if (!st) st = synth_store(store, L, H, N, S, err);
    cJSON *r = st ? NULL : synth_results(L, H);
    if (r) st = ap_json_save(res, r, err);
    cJSON_Delete(r);
    free(rec), free(store), free(cdir), free(res);
    return st;
}

#endif
