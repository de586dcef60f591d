/* apmae intervene on a tiny fixture model: head orders per setting, the
 * SHAP file's checks, the experiment over a store whose correctness is
 * planted (labels set to the model's own prediction for half the
 * scenarios), its outputs against plain forward passes and `apmae lm
 * forward --ablate`, reuse against no reuse, a fresh draw, bad input, and
 * kill-and-resume. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/extract.h"
#include "apmae/intervene.h"
#include "apmae/io.h"
#include "extract_synth.h"

enum { N_TOKENS = 16, L_FIX = 2, H_FIX = 4 };

/* ---- head orders ---- */

static void fill_shap(ap_head_shap *h, int L, int H, const double (*fig)[2]) {
    for (int i = 0; i < L * H; i++) {
        h[i] = (ap_head_shap){.layer = i / H, .head = i % H, .mean_pos = fig[i][0], .mean_neg = fig[i][1]};
        h[i].mean_total = h[i].mean_pos + h[i].mean_neg;
        h[i].mean_abs = h[i].mean_pos - h[i].mean_neg;
    }
}

/* 3 layers x 4 heads: mean_pos and mean_neg per head. */
static const double k_fig[12][2] = {
    {0.0, 0.0},  {0.30, -0.05}, {0.0, 0.0},  {0.10, -0.40}, /* layer 0 */
    {0.0, 0.0},  {0.05, -0.05}, {0.20, 0.0}, {0.0, -0.10},  /* layer 1 */
    {0.0, -1e-5}, {0.0, 0.0},  {0.10, 0.0}, {2e-5, 0.0},    /* layer 2 */
};

static int position(const int *order, int n, int head) {
    for (int i = 0; i < n; i++)
        if (order[i] == head) return i;
    return -1;
}

static void test_head_order(void **state) {
    (void)state;
    enum { L = 3, H = 4, P = 12 };
    ap_head_shap h[P];
    fill_shap(h, L, H, k_fig);
    int order[P], again[P], other[P], n;
    /* pos_only: mean_pos descending; the 7 heads at 0 follow in a seeded order */
    TU_OK(ap_iv_head_order(AP_IV_POS_ONLY, h, L, H, 5, order, &n, tu_err()));
    assert_int_equal(n, P);
    int want_pos[] = {1, 6, 3, 10, 5, 11};
    for (int i = 0; i < 6; i++) assert_int_equal(order[i], want_pos[i] == 3 || want_pos[i] == 10 ? order[i] : want_pos[i]);
    assert_true((order[2] == 3 && order[3] == 10) || (order[2] == 10 && order[3] == 3)); /* equal 0.10: a tie */
    for (int i = 0; i < P; i++) assert_int_equal(ap_iv_head_ranked(AP_IV_POS_ONLY, &h[order[i]]), i < 6);
    TU_OK(ap_iv_head_order(AP_IV_POS_ONLY, h, L, H, 5, again, &n, tu_err()));
    assert_memory_equal(order, again, sizeof order);
    /* the ties at zero move with the seed, the ranked heads do not */
    int moved = 0;
    for (uint64_t seed = 6; seed < 16; seed++) {
        TU_OK(ap_iv_head_order(AP_IV_POS_ONLY, h, L, H, seed, other, &n, tu_err()));
        assert_int_equal(other[0], 1);
        assert_int_equal(other[1], 6);
        moved += memcmp(other + 6, order + 6, 6 * sizeof(int)) != 0;
    }
    assert_true(moved > 0);
    /* neg_only: mean_total ascending */
    TU_OK(ap_iv_head_order(AP_IV_NEG_ONLY, h, L, H, 5, order, &n, tu_err()));
    assert_int_equal(order[0], 3);  /* -0.30 */
    assert_int_equal(order[1], 7);  /* -0.10 */
    assert_int_equal(order[2], 8);  /* -1e-5 */
    assert_int_equal(order[P - 1], 1); /* +0.25 */
    for (int i = 0; i < P; i++) assert_int_equal(ap_iv_head_ranked(AP_IV_NEG_ONLY, &h[order[i]]), i < 3);
    /* neutral: |mean_total| <= 1e-5, so 8 (exactly -1e-5) is in and 11 (2e-5) out */
    TU_OK(ap_iv_head_order(AP_IV_NEUTRAL, h, L, H, 5, order, &n, tu_err()));
    assert_int_equal(n, 6);
    int neutral[] = {0, 2, 4, 5, 8, 9};
    for (int i = 0; i < 6; i++) assert_true(position(order, n, neutral[i]) >= 0);
    assert_int_equal(position(order, n, 11), -1);
    /* random: a permutation of all heads, its own per seed */
    TU_OK(ap_iv_head_order(AP_IV_RANDOM, h, L, H, 5, order, &n, tu_err()));
    assert_int_equal(n, P);
    for (int i = 0; i < P; i++) assert_true(position(order, n, i) >= 0);
    TU_OK(ap_iv_head_order(AP_IV_RANDOM, h, L, H, 99, other, &n, tu_err()));
    assert_memory_not_equal(order, other, sizeof order);
    ap_error err = {0};
    assert_int_equal(ap_iv_head_order(AP_IV_SETTINGS, h, L, H, 5, order, &n, &err), AP_ERR_ARG);
}

/* ---- the SHAP file ---- */

/* classify's results.json with figures fig [L*H] for the tasks "alpha" and
 * "beta" ("gamma" skipped); heads listed in a shuffled order as classify
 * lists them by rank. */
static char *write_shap(const char *name, int L, int H, const double (*fig)[2]) {
    cJSON *root = cJSON_CreateObject(), *tasks = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "num_layers", L);
    cJSON_AddNumberToObject(root, "num_heads", H);
    const char *names[] = {"alpha", "beta", "noise"};
    for (int t = 0; t < 3; t++) {
        cJSON *e = cJSON_CreateObject(), *heads = cJSON_CreateArray();
        cJSON_AddNullToObject(e, "skipped");
        for (int k = 0; k < L * H; k++) {
            int i = (k * 5 + 3) % (L * H); /* a permutation for L*H = 8 or 12 */
            cJSON *h = cJSON_CreateObject();
            cJSON_AddNumberToObject(h, "layer", i / H);
            cJSON_AddNumberToObject(h, "head", i % H);
            cJSON_AddNumberToObject(h, "mean_pos", fig[i][0]);
            cJSON_AddNumberToObject(h, "mean_neg", fig[i][1]);
            cJSON_AddNumberToObject(h, "mean_total", fig[i][0] + fig[i][1]);
            cJSON_AddNumberToObject(h, "mean_abs", fig[i][0] - fig[i][1]);
            cJSON_AddItemToArray(heads, h);
        }
        cJSON_AddItemToObject(e, "heads", heads);
        cJSON *cv = cJSON_CreateObject();
        cJSON_AddItemToObject(cv, "heads", cJSON_Duplicate(heads, 1));
        cJSON_AddItemToObject(e, "cv", cv);
        cJSON_AddItemToObject(tasks, names[t], e);
    }
    cJSON *gamma = cJSON_CreateObject();
    cJSON_AddStringToObject(gamma, "skipped", "one class only");
    cJSON_AddItemToObject(tasks, "gamma", gamma);
    cJSON_AddItemToObject(root, "tasks", tasks);
    char *path = tu_tmp_path(name);
    TU_OK(ap_json_save(path, root, tu_err()));
    cJSON_Delete(root);
    return path;
}

static void expect_shap_error(const char *path, const char *task, int cv, int L, int H, const char *want) {
    ap_head_shap h[64];
    ap_error err = {0};
    assert_int_not_equal(ap_shap_load(path, task, cv, L, H, h, &err), AP_OK);
    if (!strstr(err.msg, want)) fail_msg("'%s' lacks '%s'", err.msg, want);
}

static void test_shap_file(void **state) {
    (void)state;
    char *path = write_shap("shap12.json", 3, 4, k_fig);
    ap_head_shap h[12], want[12];
    fill_shap(want, 3, 4, k_fig);
    TU_OK(ap_shap_load(path, "alpha", 0, 3, 4, h, tu_err()));
    for (int i = 0; i < 12; i++) {
        assert_int_equal(h[i].layer, i / 4);
        assert_int_equal(h[i].head, i % 4);
        /* cJSON prints the shortest text that reads back within an ulp */
        assert_true(fabs(h[i].mean_pos - want[i].mean_pos) < 1e-15 && fabs(h[i].mean_total - want[i].mean_total) < 1e-15);
    }
    TU_OK(ap_shap_load(path, "beta", 1, 3, 4, h, tu_err()));
    expect_shap_error(path, "alpha", 0, 2, 4, "belongs to another model");
    expect_shap_error(path, "alpha", 0, 3, 8, "belongs to another model");
    expect_shap_error(path, "delta", 0, 3, 4, "no results for task 'delta'");
    expect_shap_error(path, "gamma", 0, 3, 4, "was skipped by classify (one class only)");
    char *bad = tu_tmp_path("bad.json");
    const char *cases[][2] = {
        {"not json", "bad.json"},
        {"{\"tasks\":{}}", "not the results.json of apmae classify"},
        {"{\"num_layers\":1,\"num_heads\":2,\"tasks\":{\"alpha\":{\"heads\":[{\"layer\":0,\"head\":0,\"mean_pos\":0,"
         "\"mean_neg\":0,\"mean_total\":0,\"mean_abs\":0},{\"layer\":0,\"head\":0,\"mean_pos\":0,\"mean_neg\":0,"
         "\"mean_total\":0,\"mean_abs\":0}]}}}",
         "lists head 0:0 twice"},
        {"{\"num_layers\":1,\"num_heads\":2,\"tasks\":{\"alpha\":{\"heads\":[{\"layer\":0,\"head\":0,\"mean_pos\":0,"
         "\"mean_neg\":0,\"mean_total\":0,\"mean_abs\":0},{\"layer\":0,\"head\":1,\"mean_pos\":\"x\",\"mean_neg\":0,"
         "\"mean_total\":0,\"mean_abs\":0}]}}}",
         "mean_pos"},
        {"{\"num_layers\":1,\"num_heads\":2,\"tasks\":{\"alpha\":{\"heads\":[{\"layer\":0,\"head\":0,\"mean_pos\":0,"
         "\"mean_neg\":0,\"mean_total\":0,\"mean_abs\":0},{\"layer\":0,\"head\":5,\"mean_pos\":0,\"mean_neg\":0,"
         "\"mean_total\":0,\"mean_abs\":0}]}}}",
         "lacks"},
        {"{\"num_layers\":1,\"num_heads\":2,\"tasks\":{\"alpha\":{\"heads\":[]}}}", "lists 0 heads"},
        {"{\"num_layers\":1,\"num_heads\":2,\"tasks\":{\"alpha\":{\"heads\":[], \"cv\":null}}}", "no cross-validation"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tu_write_file(bad, cases[i][0], strlen(cases[i][0]));
        expect_shap_error(bad, "alpha", i == 6, 1, 2, cases[i][1]);
    }
    char *none = tu_tmp_path("none.json");
    expect_shap_error(none, "alpha", 0, 1, 2, "none.json");
    free(none);
    free(bad);
    free(path);
}

/* ---- a planted store ---- */

/* Scenario lines of the fixture model whose label is its own prediction
 * for even k (correct) and another token for odd k: tasks alpha (count),
 * beta (6) and noise (2, no label). */
static char *write_planted(const char *name, const char *prefix, int count, uint64_t seed) {
    ap_lm *lm;
    ap_lm_state *s;
    TU_OK(ap_lm_load(k_model, &lm, tu_err()));
    TU_OK(ap_lm_state_new(lm, N_TOKENS, &s, tu_err()));
    int V = lm->cfg.vocab_size;
    float *logits = malloc(sizeof(float) * (size_t)V);
    char *path = tu_tmp_path(name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    ap_rng r;
    ap_rng_seed(&r, seed);
    for (int k = 0; k < count + 8; k++) {
        const char *task = k < count ? "alpha" : k < count + 6 ? "beta" : "noise";
        int32_t ids[N_TOKENS];
        for (int t = 0; t < N_TOKENS; t++) ids[t] = (int32_t)ap_rng_below(&r, (uint64_t)V);
        ap_lm_forward_opts fo = {.last_only = 1};
        TU_OK(ap_lm_forward(lm, s, ids, N_TOKENS, &fo, logits, NULL, tu_err()));
        int pred = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[pred]) pred = v;
        fprintf(f, "{\"id\":\"%s%03d\",\"task\":\"%s\",\"label_id\":", prefix, k, task);
        if (strcmp(task, "noise") == 0) fprintf(f, "null");
        else fprintf(f, "%d", k % 2 ? (pred + 1 + k) % V : pred);
        fprintf(f, ",\"input_ids\":[");
        for (int t = 0; t < N_TOKENS; t++) fprintf(f, t ? ",%d" : "%d", ids[t]);
        fprintf(f, "]}\n");
    }
    fclose(f);
    free(logits);
    ap_lm_state_free(s);
    ap_lm_free(lm);
    return path;
}

static char *g_store, *g_shap, *g_fresh;

/* The fixture model's 8 heads: a clear ranking, two neutral heads. */
static const double k_fig8[8][2] = {
    {0.02, -0.01}, {0.0, 0.0}, {0.40, -0.10}, {0.05, -0.30}, /* layer 0 */
    {0.10, 0.0},   {0.0, -0.2}, {0.0, 0.0},   {0.01, -0.01}, /* layer 1: 7 is neutral too (total 0) */
};

static int setup(void **state) {
    (void)state;
    char *sc = write_planted("planted.jsonl", "a", 40, 3);
    g_store = tu_fresh_store_path("planted.h5");
    ap_extract_options o = {.model_dir = k_model, .scenarios_path = sc, .store_path = g_store,
                            .balance = AP_BALANCE_NONE, .dtype = AP_BF16};
    ap_extract_report rep;
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    free(sc);
    g_shap = write_shap("shap8.json", L_FIX, H_FIX, k_fig8);
    g_fresh = write_planted("fresh.jsonl", "f", 30, 4);
    /* the fresh file begins with the store's 48 scenarios: they are left out */
    char *store_sc = tu_tmp_path("planted.jsonl"), *text, *more;
    size_t len, mlen;
    TU_OK(ap_read_file(store_sc, &text, &len, tu_err()));
    TU_OK(ap_read_file(g_fresh, &more, &mlen, tu_err()));
    text = realloc(text, len + mlen);
    memcpy(text + len, more, mlen);
    tu_write_file(g_fresh, text, len + mlen);
    free(text), free(more), free(store_sc);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(g_store), free(g_shap), free(g_fresh);
    return 0;
}

static ap_intervene_opts opts(const char *out) {
    static const int64_t n[] = {1, 2, 3, 20, 5, 2};
    return (ap_intervene_opts){.model_dir = k_model, .store_path = g_store, .shap_path = g_shap, .task = "alpha",
                               .out_dir = out, .target = 12, .n = n, .n_count = 6,
                               .settings = (1u << AP_IV_SETTINGS) - 1, .seed = 7};
}

static cJSON *load_json(const char *dir, const char *name) {
    char *path = ap_path_join(dir, name, tu_err());
    cJSON *j;
    TU_OK(ap_json_load(path, &j, tu_err()));
    free(path);
    return j;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("no number '%s'", key);
    return v->valuedouble;
}

static char *read_text(const char *dir, const char *name) {
    char *path = ap_path_join(dir, name, tu_err()), *text;
    size_t len;
    TU_OK(ap_read_file(path, &text, &len, tu_err()));
    free(path);
    return text;
}

/* Every run's predictions, recomputed with plain ap_lm_forward passes from
 * the store's input ids and the run's heads, and its counts. */
static void check_runs_against_forward(const cJSON *j, const char *store_path) {
    ap_lm *lm;
    ap_lm_state *s;
    ap_store *store;
    TU_OK(ap_lm_load(k_model, &lm, tu_err()));
    TU_OK(ap_lm_state_new(lm, N_TOKENS, &s, tu_err()));
    TU_OK(ap_store_open(store_path, AP_STORE_READ, &store, tu_err()));
    int V = lm->cfg.vocab_size;
    float *logits = malloc(sizeof(float) * (size_t)V);
    const cJSON *scen = cJSON_GetObjectItemCaseSensitive(j, "scenarios"), *r;
    int S = cJSON_GetArraySize(scen);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)S * N_TOKENS), *label = malloc(sizeof(int32_t) * (size_t)S);
    int base_correct = 0;
    for (int i = 0; i < S; i++) {
        const cJSON *e = cJSON_GetArrayItem(scen, i);
        ap_store_sample rec;
        TU_OK(ap_store_read_sample(store, (int64_t)num(e, "sample"), &rec, ids + (size_t)i * N_TOKENS, tu_err()));
        assert_string_equal(rec.id, cJSON_GetObjectItemCaseSensitive(e, "id")->valuestring);
        label[i] = rec.label_id;
        assert_int_equal((int)num(e, "label"), rec.label_id);
        assert_int_equal((int)num(e, "baseline_pred"), rec.pred_id);
        base_correct += rec.correct;
    }
    assert_int_equal(base_correct, S / 2);
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "runs")) {
        uint8_t mask[L_FIX * H_FIX] = {0};
        const cJSON *h;
        cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(r, "heads")) mask[(int)num(h, "layer") * H_FIX + (int)num(h, "head")] = 1;
        int after = 0, to_inc = 0, to_cor = 0;
        const cJSON *f_inc = cJSON_GetObjectItemCaseSensitive(r, "flipped_to_incorrect");
        const cJSON *f_cor = cJSON_GetObjectItemCaseSensitive(r, "flipped_to_correct");
        for (int i = 0; i < S; i++) {
            ap_lm_forward_opts fo = {.ablate = mask, .last_only = 1};
            TU_OK(ap_lm_forward(lm, s, ids + (size_t)i * N_TOKENS, N_TOKENS, &fo, logits, NULL, tu_err()));
            int pred = 0;
            for (int v = 1; v < V; v++)
                if (logits[v] > logits[pred]) pred = v;
            int before = i < S && num(cJSON_GetArrayItem(scen, i), "baseline_pred") == label[i];
            int now = pred == label[i];
            after += now;
            if (before && !now) assert_int_equal((int)cJSON_GetArrayItem(f_inc, to_inc++)->valuedouble, i);
            if (!before && now) assert_int_equal((int)cJSON_GetArrayItem(f_cor, to_cor++)->valuedouble, i);
        }
        assert_int_equal(to_inc, (int)num(r, "correct_to_incorrect"));
        assert_int_equal(to_cor, (int)num(r, "incorrect_to_correct"));
        assert_int_equal(to_inc, cJSON_GetArraySize(f_inc));
        assert_int_equal(to_cor, cJSON_GetArraySize(f_cor));
        assert_true(fabs(num(r, "accuracy_after") - 100.0 * after / S) < 1e-9);
        assert_true(fabs(num(r, "change_pp") - (100.0 * after / S - 50.0)) < 1e-9);
    }
    free(ids), free(label), free(logits);
    TU_OK(ap_store_close(store, tu_err()));
    ap_lm_state_free(s);
    ap_lm_free(lm);
}

static const cJSON *find_run(const cJSON *j, const char *setting, int n) {
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "runs")) {
        if (strcmp(cJSON_GetObjectItemCaseSensitive(r, "setting")->valuestring, setting) == 0 && num(r, "n") == n)
            return r;
    }
    fail_msg("no run %s/%d", setting, n);
    return NULL;
}

static void assert_heads(const cJSON *r, const int *want, int n) {
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(r, "heads");
    assert_int_equal(cJSON_GetArraySize(h), n);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(h, i);
        assert_int_equal((int)num(e, "layer") * H_FIX + (int)num(e, "head"), want[i]);
    }
}

static void test_experiment(void **state) {
    (void)state;
    char *out = tu_tmp_path("iv_out");
    ap_intervene_opts o = opts(out);
    ap_intervene_report rep;
    TU_OK(ap_intervene(&o, &rep, tu_err()));
    assert_int_equal(rep.scenarios, 24);
    assert_int_equal(rep.baseline_correct, 12);
    assert_int_equal(rep.resumed, 0);
    cJSON *j = load_json(out, "intervene.json");
    /* n: capped at 8 heads, sorted, duplicates dropped */
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "n");
    int want_n[] = {1, 2, 3, 5, 8};
    assert_int_equal(cJSON_GetArraySize(n), 5);
    for (int i = 0; i < 5; i++) assert_int_equal((int)cJSON_GetArrayItem(n, i)->valuedouble, want_n[i]);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "runs")), 20);
    assert_int_equal(rep.runs, 20);
    /* the heads of each setting */
    int pos[] = {2, 4, 3}, neg[] = {3, 5};
    assert_heads(find_run(j, "pos_only", 3), pos, 3);
    assert_heads(find_run(j, "neg_only", 2), neg, 2);
    assert_int_equal((int)num(find_run(j, "pos_only", 8), "ranked"), 5); /* heads 2, 4, 3, 0, 7 */
    const cJSON *neutral = find_run(j, "neutral", 5);
    assert_int_equal((int)num(neutral, "n_heads"), 3); /* heads 1, 6, 7 only */
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(neutral, "capped")));
    assert_int_equal((int)num(j, "neutral_heads"), 3);
    assert_int_equal((int)num(find_run(j, "random", 8), "n_heads"), 8);
    /* every count recomputed from plain forward passes */
    check_runs_against_forward(j, g_store);
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(j, "cost");
    assert_true(num(cost, "layers_run_fraction") < 1.0);
    assert_int_equal((int)num(cost, "ablated_passes"), 24 * rep.head_sets);
    char *pred = read_text(out, "predictions.csv"), *csv = read_text(out, "intervene.csv");
    char *svg = read_text(out, "curves.svg");
    assert_non_null(strstr(pred, "scenario,id,label,baseline,pos_only/1,"));
    assert_non_null(strstr(csv, "\npos_only,3,3,3,0,"));
    assert_non_null(strstr(svg, "<polyline"));
    assert_non_null(strstr(svg, "neg_only"));
    char *partial = ap_path_join(out, "intervene.partial.jsonl", tu_err());
    assert_false(ap_path_exists(partial));

    /* Without reuse: the same predictions, file for file */
    char *out2 = tu_tmp_path("iv_out_noreuse");
    o.out_dir = out2;
    o.no_reuse = 1;
    TU_OK(ap_intervene(&o, &rep, tu_err()));
    char *pred2 = read_text(out2, "predictions.csv"), *csv2 = read_text(out2, "intervene.csv");
    assert_string_equal(pred, pred2);
    assert_string_equal(csv, csv2);
    cJSON *j2 = load_json(out2, "intervene.json");
    assert_true(num(cJSON_GetObjectItemCaseSensitive(j2, "cost"), "layers_run_fraction") == 1.0);
    assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(j, "runs"), cJSON_GetObjectItemCaseSensitive(j2, "runs"), 1));

    /* Another seed draws other random heads; the ranked pos_only heads stay */
    o.seed = 8;
    o.no_reuse = 0;
    TU_OK(ap_intervene(&o, &rep, tu_err()));
    cJSON *j3 = load_json(out2, "intervene.json");
    assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(find_run(j, "pos_only", 5), "heads"),
                              cJSON_GetObjectItemCaseSensitive(find_run(j3, "pos_only", 5), "heads"), 1));
    assert_false(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(find_run(j, "random", 3), "heads"),
                               cJSON_GetObjectItemCaseSensitive(find_run(j3, "random", 3), "heads"), 1));
    cJSON_Delete(j), cJSON_Delete(j2), cJSON_Delete(j3);
    free(pred), free(pred2), free(csv), free(csv2), free(svg), free(partial), free(out), free(out2);
}

/* One ablated head: the prediction apmae intervene reports for each
 * scenario is the argmax of `apmae lm forward --ablate` at the last position. */
static void test_matches_lm_forward_cli(void **state) {
    (void)state;
    char *out = tu_tmp_path("iv_one");
    ap_intervene_opts o = opts(out);
    static const int64_t one[] = {1};
    o.n = one;
    o.n_count = 1;
    o.settings = 1u << AP_IV_POS_ONLY;
    o.target = 3;
    ap_intervene_report rep;
    TU_OK(ap_intervene(&o, &rep, tu_err()));
    cJSON *j = load_json(out, "intervene.json");
    const cJSON *run = find_run(j, "pos_only", 1), *e;
    const cJSON *head = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(run, "heads"), 0);
    int layer = (int)num(head, "layer"), hh = (int)num(head, "head");
    char *pred = read_text(out, "predictions.csv");
    ap_store *store;
    TU_OK(ap_store_open(g_store, AP_STORE_READ, &store, tu_err()));
    char *fwd = tu_tmp_path("one.safetensors");
    int i = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "scenarios")) {
        int32_t ids[N_TOKENS];
        ap_store_sample rec;
        TU_OK(ap_store_read_sample(store, (int64_t)num(e, "sample"), &rec, ids, tu_err()));
        char list[N_TOKENS * 8] = "";
        for (int t = 0; t < N_TOKENS; t++) snprintf(list + strlen(list), sizeof list - strlen(list), t ? ",%d" : "%d", ids[t]);
        int rc = tu_run(NULL, "OMP_NUM_THREADS=1 %s --quiet lm forward --model %s --ids %s --ablate %d:%d --out %s",
                        tu_apmae_bin(), k_model, list, layer, hh, fwd);
        assert_int_equal(rc, 0);
        ap_safetensors *st;
        TU_OK(ap_st_open(fwd, &st, tu_err()));
        const ap_tensor *lg = ap_st_find(st, "logits");
        int V = (int)lg->shape[1];
        const float *last = (const float *)lg->data + (size_t)(N_TOKENS - 1) * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (last[v] > last[best]) best = v;
        ap_st_close(st);
        /* predictions.csv row i: scenario,id,label,baseline,pos_only/1 */
        char row[64];
        snprintf(row, sizeof row, "\n%d,\"%s\",%d,%d,%d\n", i, rec.id, rec.label_id, rec.pred_id, best);
        if (!strstr(pred, row)) fail_msg("predictions.csv lacks the row '%s' of lm forward --ablate", row + 1);
        i++;
    }
    assert_int_equal(i, 6);
    TU_OK(ap_store_close(store, tu_err()));
    cJSON_Delete(j);
    free(pred), free(fwd), free(out);
}

/* --scenarios: K correct and K incorrect of the file's scenarios of the
 * task, in file order, none of them in the store. */
static void test_fresh_draw(void **state) {
    (void)state;
    char *out = tu_tmp_path("iv_fresh");
    ap_intervene_opts o = opts(out);
    o.scenarios_path = g_fresh;
    o.target = 10;
    ap_intervene_report rep;
    TU_OK(ap_intervene(&o, &rep, tu_err()));
    assert_int_equal(rep.baseline_correct, 10);
    cJSON *j = load_json(out, "intervene.json");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "scenario_source"), *e;
    assert_int_equal((int)num(src, "run_unablated"), 20);
    assert_int_equal((int)num(src, "left_out_in_store"), 40);
    int k = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "scenarios")) {
        char want[16];
        snprintf(want, sizeof want, "f%03d", k);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "id")->valuestring, want);
        assert_int_equal((int)num(e, "line"), 48 + k + 1);
        k++;
    }
    assert_int_equal(k, 20);
    /* 15 of each outside the store */
    ap_error err = {0};
    o.target = 16;
    assert_int_not_equal(ap_intervene(&o, &rep, &err), AP_OK);
    if (!strstr(err.msg, "only 15 correct and 15 incorrect completions among its 30 scenarios of task 'alpha' not in "
                         "the store, too few for --target 16"))
        fail_msg("%s", err.msg);
    cJSON_Delete(j);
    free(out);
}

static void expect_error(ap_intervene_opts o, const char *want) {
    ap_intervene_report rep;
    ap_error err = {0};
    assert_int_not_equal(ap_intervene(&o, &rep, &err), AP_OK);
    if (!strstr(err.msg, want)) fail_msg("'%s' lacks '%s'", err.msg, want);
}

static void test_bad_input(void **state) {
    (void)state;
    char *out = tu_tmp_path("iv_bad");
    ap_intervene_opts o = opts(out);
    o.target = 21;
    expect_error(o, "20 correct and 20 incorrect samples, too few for --target 21");
    o = opts(out);
    o.task = "beta";
    o.target = 4;
    expect_error(o, "3 correct and 3 incorrect samples, too few for --target 4");
    o.task = "noise";
    o.target = 1;
    expect_error(o, "has no label");
    o.task = "delta";
    expect_error(o, "no results for task 'delta'");
    o = opts(out);
    static const int64_t zero[] = {1, 0};
    o.n = zero;
    o.n_count = 2;
    expect_error(o, "--n: 0 heads");
    o = opts(out);
    o.settings = 0;
    expect_error(o, "--settings");
    o = opts(out);
    o.target = 0;
    expect_error(o, "--target 0");
    o = opts(out);
    char *other = write_shap("shap12.json", 3, 4, k_fig);
    o.shap_path = other;
    expect_error(o, "belongs to another model");
    o = opts(out);
    o.model_dir = "fixtures/lm/bf16_mha_tied"; /* another head count than the store's */
    expect_error(o, "patterns of a model with 2 layers x 4 heads");
    free(other), free(out);
}

/* Killed at any moment, the same command continues and ends with the
 * outputs of an uninterrupted run. */
static void test_kill_and_resume(void **state) {
    (void)state;
    char *ref = tu_tmp_path("iv_ref"), *out = tu_tmp_path("iv_kill");
    ap_intervene_opts o = opts(ref);
    static const int64_t many[] = {1, 2, 3, 4, 5, 6, 7, 8};
    o.n = many;
    o.n_count = 8;
    o.target = 20;
    ap_intervene_report rep;
    TU_OK(ap_intervene(&o, &rep, tu_err()));
    char *argv[] = {"apmae", "intervene", "--model", (char *)k_model, "--store", g_store, "--shap", g_shap,
                    "--task", "alpha", "--target", "20", "--n", "1,2,3,4,5,6,7,8", "--seed", "7", "--out", out, NULL};
    const char *seed_env = getenv("APMAE_TEST_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    print_message("kill rounds: seed %u (APMAE_TEST_SEED reproduces it)\n", seed);
    srand(seed);
    char *partial = ap_path_join(out, "intervene.partial.jsonl", tu_err());
    int kills = 0;
    int64_t last = 0;
    for (int round = 0; round < 8 && kills < 3; round++) {
        int64_t target = last + 1 + rand() % 8;
        if (target >= 40) break;
        int64_t reported = kill_at_progress(argv, NULL, round, target, 40);
        if (reported < 0) break; /* it finished before its kill */
        /* the partial file holds at least what the bar reported */
        char *text;
        size_t len, lines = 0;
        TU_OK(ap_read_file(partial, &text, &len, tu_err()));
        for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
        free(text);
        if ((int64_t)lines - 1 < reported)
            fail_msg("round %d: %zu scenarios in the partial file, %lld reported", round, lines - 1,
                     (long long)reported);
        last = (int64_t)lines - 1;
        kills++;
    }
    print_message("%d kills left the run part-done\n", kills);
    assert_true(kills > 0);
    int resumes = ap_path_exists(partial);
    assert_int_equal(run_apmae(argv), 0);
    char *a = read_text(ref, "predictions.csv"), *b = read_text(out, "predictions.csv");
    assert_string_equal(a, b);
    cJSON *ja = load_json(ref, "intervene.json"), *jb = load_json(out, "intervene.json");
    assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(ja, "runs"), cJSON_GetObjectItemCaseSensitive(jb, "runs"), 1));
    if (resumes) assert_true(num(cJSON_GetObjectItemCaseSensitive(jb, "cost"), "resumed_scenarios") > 0);
    assert_false(ap_path_exists(partial));
    cJSON_Delete(ja), cJSON_Delete(jb);
    free(a), free(b), free(partial), free(ref), free(out);
}

int main(void) {
    omp_set_num_threads(1); /* a tiny model: threads only add waiting on a loaded machine */
    setenv("OMP_NUM_THREADS", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_order),
        cmocka_unit_test(test_shap_file),
        cmocka_unit_test(test_experiment),
        cmocka_unit_test(test_matches_lm_forward_cli),
        cmocka_unit_test(test_fresh_draw),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_kill_and_resume),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
