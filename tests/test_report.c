/* report.html from a synthetic study (a store with patterns and clusters,
 * the classify stage's results.json, no other stage's outputs): every
 * section in order, the clusters section's maps and exemplar sheets for the
 * heads with the most clusters, the gallery framed by kind, the
 * classification table and SHAP maps, notes for the stages that did not
 * run, text escaped, every embedded PNG valid, nothing fetched from
 * elsewhere; and the charts' axes and ticks. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/report.h"
#include "apmae/study.h"
#include "report/internal.h"
#include "store_synth.h"

enum { N = 32, L = 3, H = 4, S = 60 };

/* Head (l, h) has 1 + (l * H + h) % 5 clusters (by sample index, every 9th
 * sample noise); cluster 0's kind is "sink" on even heads and "a<b&c" on odd
 * ones, the others "previous". */
static int head_k(int l, int h) { return 1 + (l * H + h) % 5; }

static void write_clusters(ap_store *s) {
    TU_OK(ap_store_clusters_begin(s, "{\"min_samples\":5}", tu_err()));
    size_t T = (size_t)N * (N + 1) / 2;
    float *mean = malloc(sizeof(float) * 5 * T);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            int k = head_k(l, h);
            int32_t lab[S];
            ap_cluster_summary c[5];
            for (int j = 0; j < k; j++) {
                c[j] = (ap_cluster_summary){.size = 0, .medoid = -1};
                snprintf(c[j].kind, sizeof c[j].kind, "%s", j ? "previous" : h % 2 ? "a<b&c" : "sink");
                for (size_t t = 0; t < T; t++) mean[(size_t)j * T + t] = 1.0f / (float)(1 + t % (7 + j));
            }
            for (int i = 0; i < S; i++) {
                lab[i] = i % 9 == 4 ? -1 : i % k;
                if (lab[i] >= 0) c[lab[i]].size++, c[lab[i]].medoid = i;
            }
            TU_OK(ap_store_put_cluster_labels(s, l, h, lab, tu_err()));
            TU_OK(ap_store_put_cluster_summary(s, l, h, k, c, mean, tu_err()));
        }
    free(mean);
}

/* results.json as the classify stage writes it (docs/analysis.md): two
 * tasks, one skipped, and the pooled run; head (2, 1) ranked first. */
static void write_results(const char *dir) {
    char *cdir = malloc(strlen(dir) + 64), *path = malloc(strlen(dir) + 64);
    sprintf(cdir, "%s/%s", dir, AP_STUDY_CLASSIFY_DIR);
    sprintf(path, "%s/results.json", cdir);
    TU_OK(ap_make_dirs(cdir, tu_err()));
    cJSON *r = cJSON_CreateObject(), *tasks = cJSON_AddObjectToObject(r, "tasks");
    cJSON_AddNumberToObject(r, "num_layers", L);
    cJSON_AddNumberToObject(r, "num_heads", H);
    cJSON_AddNumberToObject(r, "seed", 42);
    cJSON_AddNumberToObject(r, "test_fraction", 0.1);
    cJSON_AddNumberToObject(r, "folds", 5);
    cJSON_AddNumberToObject(r, "repeats", 5);
    cJSON *gbt = cJSON_AddObjectToObject(r, "gbt");
    cJSON_AddNumberToObject(gbt, "max_depth", 6);
    cJSON_AddNumberToObject(gbt, "learning_rate", 0.1);
    cJSON_AddNumberToObject(gbt, "max_rounds", 1000);
    cJSON_AddNumberToObject(gbt, "early_stopping", 25);
    static const char *const names[3] = {"eol", "identifiers", "all"};
    for (int t = 0; t < 3; t++) {
        cJSON *x = cJSON_AddObjectToObject(tasks, names[t]);
        cJSON_AddNumberToObject(x, "n", 20 * (t + 1));
        cJSON_AddNumberToObject(x, "n_correct", 10 * (t + 1));
        if (t == 1) {
            cJSON_AddStringToObject(x, "skipped", "one class only (every completion incorrect)");
            cJSON_AddArrayToObject(x, "heads");
            continue;
        }
        cJSON_AddNullToObject(x, "skipped");
        cJSON_AddNumberToObject(x, "accuracy", 0.625 + 0.05 * t);
        cJSON *iv = cJSON_AddArrayToObject(x, "interval");
        cJSON_AddItemToArray(iv, cJSON_CreateNumber(0.41));
        cJSON_AddItemToArray(iv, cJSON_CreateNumber(0.8));
        cJSON *cv = cJSON_AddObjectToObject(x, "cv");
        cJSON_AddNumberToObject(cv, "mean", 0.6);
        cJSON_AddNumberToObject(cv, "sd", 0.05);
        cJSON *cb = cJSON_AddObjectToObject(cv, "baselines");
        cJSON_AddNumberToObject(cb, "majority", 0.5);
        cJSON_AddNumberToObject(cb, "confidence", 0.55);
        cJSON *g = cJSON_AddObjectToObject(cv, "gain_over_confidence");
        cJSON_AddNumberToObject(g, "mean", 0.05);
        cJSON_AddNumberToObject(g, "sd", 0.08);
        cJSON_AddNumberToObject(g, "wins", 17);
        cJSON_AddNumberToObject(g, "losses", 6);
        cJSON *heads = cJSON_AddArrayToObject(x, "heads");
        for (int i = 0; i < L * H; i++) {
            int l = (i + 9) % (L * H) / H, h = (i + 9) % (L * H) % H; /* (2, 1) first */
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "layer", l);
            cJSON_AddNumberToObject(e, "head", h);
            double a = 0.5 / (1 + i);
            cJSON_AddNumberToObject(e, "mean_pos", 0.7 * a);
            cJSON_AddNumberToObject(e, "mean_neg", -0.3 * a);
            cJSON_AddNumberToObject(e, "mean_total", 0.4 * a);
            cJSON_AddNumberToObject(e, "mean_abs", a);
            cJSON_AddItemToArray(heads, e);
        }
    }
    TU_OK(ap_json_save(path, r, tu_err()));
    cJSON_Delete(r);
    free(cdir), free(path);
}

static char *make_study(void) {
    char *dir = tu_tmp_path("study");
    assert_int_equal(tu_run(NULL, "rm -rf '%s' && mkdir -p '%s'", dir, dir), 0);
    char *rec = malloc(strlen(dir) + 32), *store = malloc(strlen(dir) + 32);
    sprintf(rec, "%s/%s", dir, AP_STUDY_RECORD);
    sprintf(store, "%s/%s", dir, AP_STUDY_STORE);
    const char *json = "{\"stages\": {\"extract\": {\"state\": \"done\", \"seconds\": 1.5, \"summary\": \"60 samples\"},"
                       " \"mae-train\": {\"state\": \"running\"}}, \"apmae_version\": \"test\", \"config_file\": null,"
                       " \"config\": {\"model\": \"m & <n>\", \"mine\": {\"per_task\": 3}}}";
    tu_write_file(rec, json, strlen(json));
    ap_store_meta m = {.model_id = "synthetic", .n_tokens = N, .num_layers = L, .num_heads = H, .dtype = AP_BF16,
                       .small_bits = -1, .deflate = -1, .run = "{}"};
    ap_store *s;
    TU_OK(ap_store_create(store, &m, &s, tu_err()));
    float *attn = malloc(sizeof(float) * L * H * N * N);
    for (int64_t i = 0; i < S; i++) {
        char id[32], src[64];
        int32_t ids[N];
        ap_store_sample r;
        synth_record(i, N, id, src, &r, ids);
        synth_patterns(i, N, L, H, 1.0, attn);
        TU_OK(ap_store_append(s, &r, ids, attn, tu_err()));
    }
    TU_OK(ap_store_commit(s, tu_err()));
    write_clusters(s);
    TU_OK(ap_store_close(s, tu_err()));
    write_results(dir);
    free(attn), free(rec), free(store);
    return dir;
}

static size_t count(const char *text, const char *what) {
    size_t n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

static const unsigned char *b64_table(void) {
    static unsigned char t[256];
    const char *k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; i++) t[(unsigned char)k[i]] = (unsigned char)i;
    return t;
}

/* Every data:image/png;base64 URI decodes to a PNG whose header gives a
 * non-empty image. Returns how many there are. */
static int check_pngs(const char *html) {
    const unsigned char *t = b64_table();
    int n = 0;
    for (const char *p = strstr(html, "data:image/png;base64,"); p; p = strstr(p + 1, "data:image/png;base64,")) {
        p += strlen("data:image/png;base64,");
        unsigned char head[24];
        size_t got = 0;
        for (const char *q = p; got + 3 <= sizeof head && q[0] && q[1] && q[2] && q[3]; q += 4) {
            unsigned v = t[(unsigned char)q[0]] << 18 | t[(unsigned char)q[1]] << 12 | t[(unsigned char)q[2]] << 6 |
                         t[(unsigned char)q[3]];
            head[got++] = (unsigned char)(v >> 16), head[got++] = (unsigned char)(v >> 8), head[got++] = (unsigned char)v;
        }
        assert_memory_equal(head, "\x89PNG\r\n\x1a\n", 8);
        assert_memory_equal(head + 12, "IHDR", 4);
        unsigned w = (unsigned)head[16] << 24 | (unsigned)head[17] << 16 | (unsigned)head[18] << 8 | head[19];
        unsigned h = (unsigned)head[20] << 24 | (unsigned)head[21] << 16 | (unsigned)head[22] << 8 | head[23];
        assert_true(w > 0 && h > 0);
        size_t len = strcspn(p, "\"");
        assert_int_equal(len % 4, 0);
        n++;
    }
    return n;
}

static void test_report_of_synthetic_study(void **state) {
    char *dir = make_study(), *out = tu_tmp_path("report.html"), *html;
    TU_OK(ap_report_write(dir, out, tu_err()));
    TU_OK(ap_read_file(out, &html, NULL, tu_err()));
    /* every section, once, in order */
    const char *prev = html;
    for (size_t i = 0; i < ap_report_section_count(); i++) {
        char tag[64];
        snprintf(tag, sizeof tag, "<section id=\"%s\">", ap_report_section_id(i));
        const char *at = strstr(html, tag);
        if (!at || at < prev) fail_msg("section %s missing or out of order", ap_report_section_id(i));
        assert_int_equal(count(html, tag), 1);
        prev = at;
    }
    /* nothing from elsewhere: no URL but the SVG namespace, a policy that forbids fetching */
    assert_int_equal(count(html, "https:"), 0);
    assert_int_equal(count(html, "http:"), count(html, "xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(html, "default-src 'none'; img-src data:"));
    /* the clusters section: maps with a cell (and hover text) per head, kinds, exemplar sheets */
    assert_non_null(strstr(html, "Clusters per head</text>"));
    assert_non_null(strstr(html, "Noise per head"));
    assert_non_null(strstr(html, "Kind of the largest cluster per head"));
    assert_non_null(strstr(html, "<title>layer 2, head 3: 2 clusters, 12% noise: a&lt;b&amp;c 26, previous 27</title>"));
    assert_null(strstr(html, "a<b&c"));
    assert_non_null(strstr(html, "m &amp; &lt;n&gt;")); /* config values escaped too */
    /* exemplars: the heads with 5 clusters (l*H+h = 4, 9), then 4 (3, 8), then 3 (2, 7) */
    assert_non_null(strstr(html, "Layer 1, head 0: 5 clusters"));
    assert_non_null(strstr(html, "Layer 2, head 1: 5 clusters"));
    assert_non_null(strstr(html, "Layer 0, head 3: 4 clusters"));
    assert_non_null(strstr(html, "Layer 2, head 0: 4 clusters"));
    assert_non_null(strstr(html, "Layer 0, head 2: 3 clusters"));
    assert_non_null(strstr(html, "Layer 1, head 3: 3 clusters"));
    assert_int_equal(count(html, "<text class=\"title\" x=\"8\" y=\"20\">Layer "), 6);
    assert_non_null(strstr(html, "medoid of its largest cluster"));
    /* the stages that left nothing say so */
    assert_non_null(strstr(html, "No LM accuracy to show: the extract stage left no output for it."));
    assert_non_null(strstr(html, "the mae-train stage has not finished"));
    assert_non_null(strstr(html, "This build of apmae has no intervene stage yet"));
    /* classification: a row per run, the skipped one with its reason, the baselines, the top heads */
    assert_non_null(strstr(html, "<td>eol</td><td class=\"num\">20 (10)</td><td class=\"num\">62.5</td>"));
    assert_non_null(strstr(html, "skipped: one class only (every completion incorrect)"));
    assert_non_null(strstr(html, "+5.0 ± 8.0 (17/6)"));
    assert_non_null(strstr(html, "<code>L2H1 L2H2 L2H3</code>"));
    assert_non_null(strstr(html, ">LM-confidence baseline</text>"));
    assert_non_null(strstr(html, ">chance (balanced)</text>"));
    /* SHAP: both maps with a cell per head, hover text with the rank, the top table */
    assert_non_null(strstr(html, "mean |SHAP| (all tasks pooled, on the test split)"));
    assert_non_null(strstr(html, "<title>layer 2, head 1: rank 1; mean |SHAP| 0.5, mean 0.2 (positive 0.35, negative -0.15)"));
    assert_non_null(strstr(html, "<tr><td class=\"num\">1</td><td class=\"num\">2</td><td class=\"num\">1</td>"));
    /* images: the gallery and six exemplar sheets, all valid PNGs */
    assert_int_equal(check_pngs(html), 7);
    free(html), free(out), free(dir);
}

static void test_missing_study(void **state) {
    char *out = tu_tmp_path("none.html");
    assert_int_equal(ap_report_write("no/such/study", out, tu_err()), AP_ERR_IO);
    assert_non_null(strstr(tu_last_error()->msg, "no/such/study: no study here"));
    assert_false(ap_path_exists(out));
    free(out);
}

/* The charts: labelled axes, ticks at round values, a legend for more than
 * one series, gaps for NaN, log ticks at decades. */
static void test_charts(void **state) {
    rp_out o = {.err = tu_err()};
    double x[4] = {0, 10, 20, 30}, y[4] = {0.5, NAN, 0.05, 0.012}, y2[4] = {0.4, 0.2, 0.1, 0.02};
    rp_series series[2] = {{.name = "train", .x = x, .y = y, .n = 4}, {.name = "held-out", .x = x, .y = y2, .n = 4}};
    rp_line_chart c = {.title = "Loss", .x = {.label = "step", .lo = 0, .hi = NAN},
                       .y = {.label = "MSE (scaled pixels)", .log = 1, .lo = NAN, .hi = NAN}, .series = series,
                       .nseries = 2};
    rp_svg_line_chart(&o, &c);
    TU_OK(o.st);
    const char *svg = o.b.data;
    assert_non_null(strstr(svg, ">step</text>"));
    assert_non_null(strstr(svg, ">MSE (scaled pixels)</text>"));
    for (const char *t = "0.01\0" "0.1\0" "1\0"; *t; t += strlen(t) + 1) {
        char tick[32];
        snprintf(tick, sizeof tick, ">%s</text>", t);
        if (!strstr(svg, tick)) fail_msg("no log tick %s", t);
    }
    assert_non_null(strstr(svg, ">30</text>"));
    assert_non_null(strstr(svg, "class=\"legend\""));
    assert_non_null(strstr(svg, ">held-out</text>"));
    /* the NaN point breaks the first series' path: two moves */
    const char *path = strstr(svg, "<path fill=\"none\"");
    assert_non_null(path);
    const char *d = strstr(path, " d=\"") + 4;
    size_t len = strcspn(d, "\"");
    int moves = 0;
    for (size_t i = 0; i < len; i++) moves += d[i] == 'M';
    assert_int_equal(moves, 2);
    ap_buf_free(&o.b);

    rp_out b = {.err = tu_err()};
    const char *cats[2] = {"alpha", "beta"};
    double v[2] = {40, 72.5}, lo[2] = {30, 60}, hi[2] = {50, 80};
    rp_bar_chart bc = {.title = "Accuracy", .value = {.label = "accuracy (%)", .lo = 0, .hi = 100}, .categories = cats,
                       .ncat = 2, .nseries = 1, .v = v, .lo = lo, .hi = hi, .reference = 50,
                       .reference_label = "chance"};
    rp_svg_bar_chart(&b, &bc);
    TU_OK(b.st);
    assert_non_null(strstr(b.b.data, ">accuracy (%)</text>"));
    assert_non_null(strstr(b.b.data, ">72.5</text>"));
    assert_non_null(strstr(b.b.data, ">chance</text>"));
    assert_int_equal(count(b.b.data, "class=\"interval\""), 2);
    assert_non_null(strstr(b.b.data, ">100</text>"));
    ap_buf_free(&b.b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_of_synthetic_study),
        cmocka_unit_test(test_missing_study),
        cmocka_unit_test(test_charts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
