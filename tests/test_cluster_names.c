/* Naming clusters: the measures of synthetic patterns of each kind (sink,
 * self, previous token, local window, FIM token, content stripes, spread
 * content, uniform, a two-part mix) and the kind they decide. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/cluster.h"

enum { N = 64, FIM_SUFFIX = 20 };

typedef void (*row_fn)(int i, double *row); /* fills row[0..i] (unnormalised) */

static void sink(int i, double *row) { (void)i, row[0] = 1; }
static void self(int i, double *row) { row[i] = 1; }
static void previous(int i, double *row) { row[i - 1] = 1; }
static void local(int i, double *row) {
    for (int j = i - 8; j <= i - 2; j++) row[j >= 1 ? j : 0] += 1;
}
static void fim(int i, double *row) { row[i > FIM_SUFFIX + 1 ? FIM_SUFFIX : 0] = 1; }
static void stripes(int i, double *row) {
    if (i < 24) row[i] = 1;
    else row[5] = row[10] = row[15] = 1;
}
/* a fifth of the tokens beyond the local window, other ones for each row:
 * content, neither on a few columns nor flat */
static void content(int i, double *row) {
    int any = 0;
    for (int j = 1; j <= i - 9; j++)
        if ((j + i) % 5 == 0) row[j] = 1, any = 1;
    if (!any) row[i] = 1;
}
static void uniform(int i, double *row) {
    for (int j = 0; j <= i; j++) row[j] = 1;
}
static void sink_previous(int i, double *row) {
    row[0] += 0.45, row[i - 1] += 0.45, row[i] += 0.1;
}

static void measure(row_fn f, int full, double m[AP_CLUSTER_MEASURES], char *kind) {
    float *tri = calloc((size_t)N * (N + 1) / 2, sizeof(float));
    double row[N], col[N];
    int32_t ids[N];
    for (int j = 0; j < N; j++) ids[j] = 100 + j;
    ids[0] = 1, ids[FIM_SUFFIX] = 3, ids[N - 1] = 2; /* <fim_prefix>, <fim_suffix>, <fim_middle> */
    tri[0] = 1;
    for (int i = 1; i < N; i++) {
        memset(row, 0, sizeof row);
        f(i, row);
        double s = 0;
        for (int j = 0; j <= i; j++) s += row[j];
        for (int j = 0; j <= i; j++) tri[(size_t)i * (i + 1) / 2 + j] = (float)(row[j] / s);
    }
    const int32_t fim_ids[3] = {1, 3, 2};
    ap_pattern_measures(tri, N, ids, fim_ids, full, col, m);
    float mf[AP_CLUSTER_MEASURES];
    for (int k = 0; k < AP_CLUSTER_MEASURES; k++) mf[k] = (float)m[k];
    ap_cluster_kind(mf, kind, AP_CLUSTER_KIND_MAX);
    free(tri);
}

static void expect(row_fn f, const char *want, int measure_id, double lo) {
    double m[AP_CLUSTER_MEASURES];
    char kind[AP_CLUSTER_KIND_MAX];
    measure(f, 1, m, kind);
    print_message("%-14s sink %.3f self %.3f prev %.3f local %.3f fim %.3f content %.3f stripes %.3f entropy %.3f\n",
                  kind, m[AP_MEASURE_SINK], m[AP_MEASURE_SELF], m[AP_MEASURE_PREVIOUS], m[AP_MEASURE_LOCAL],
                  m[AP_MEASURE_FIM], m[AP_MEASURE_CONTENT], m[AP_MEASURE_STRIPES], m[AP_MEASURE_ENTROPY]);
    assert_string_equal(kind, want);
    if (measure_id >= 0) assert_true(m[measure_id] >= lo);
    double total = 0; /* the six shares partition each row */
    for (int k = AP_MEASURE_SINK; k <= AP_MEASURE_CONTENT; k++) total += m[k];
    assert_true(fabs(total - 1) < 1e-6);
    assert_true(m[AP_MEASURE_STRIPES] <= m[AP_MEASURE_CONTENT] + 1e-6);
}

static void test_kinds(void **state) {
    (void)state;
    expect(sink, "sink", AP_MEASURE_SINK, 0.999);
    expect(self, "self", AP_MEASURE_SELF, 0.999);
    expect(previous, "previous", AP_MEASURE_PREVIOUS, 62.0 / 63 - 1e-6);
    expect(local, "local", AP_MEASURE_LOCAL, 0.9);
    expect(fim, "fim+sink", AP_MEASURE_FIM, 42.0 / 63 - 1e-6); /* rows before the token cannot see it */
    expect(stripes, "stripes+self", AP_MEASURE_STRIPES, 40.0 / 63 - 1e-6);
    expect(content, "content", AP_MEASURE_CONTENT, 0.8);
    expect(uniform, "diffuse", AP_MEASURE_ENTROPY, 0.999);
    expect(sink_previous, "sink+previous", -1, 0);
}

/* Without the full pass stripes and entropy stay 0; the rest is the same. */
static void test_cheap_measures(void **state) {
    (void)state;
    double a[AP_CLUSTER_MEASURES], b[AP_CLUSTER_MEASURES];
    char kind[AP_CLUSTER_KIND_MAX];
    measure(stripes, 1, a, kind);
    measure(stripes, 0, b, kind);
    assert_true(b[AP_MEASURE_STRIPES] == 0 && b[AP_MEASURE_ENTROPY] == 0 && a[AP_MEASURE_ENTROPY] > 0);
    for (int k = AP_MEASURE_SINK; k <= AP_MEASURE_CONTENT; k++) assert_true(a[k] == b[k]);
    /* a uniform pattern's sink share is the mean of 1/(i+1) over the rows */
    measure(uniform, 0, a, kind);
    double want = 0;
    for (int i = 1; i < N; i++) want += 1.0 / (i + 1);
    assert_true(fabs(a[AP_MEASURE_SINK] - want / (N - 1)) < 1e-6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_cheap_measures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
