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
#include "study_synth.h"

enum { N = 32, L = 3, H = 4, S = 60 };

static char *make_study(void) {
    char *dir = tu_tmp_path("study");
    assert_int_equal(tu_run(NULL, "rm -rf '%s' && mkdir -p '%s'", dir, dir), 0);
    TU_OK(synth_study(dir, L, H, N, S, tu_err()));
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
    assert_non_null(strstr(html, "No interventions to show: the intervene stage has not run."));
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
