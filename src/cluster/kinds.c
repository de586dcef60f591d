/* What a cluster's attention does (docs/analysis.md "Clusters"): shares of
 * the attention mass by where it goes (each row split between sink, self,
 * previous, local, fim and content, in that order of precedence), how much
 * of the content share sits on a few columns, and how flat the rows are;
 * measured per pattern and averaged over the cluster's members; and a
 * readable kind decided from them. */
#include "apmae/cluster.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCAL_WINDOW 8       /* "local": the tokens 2..LOCAL_WINDOW before the query */
#define STRIPE_COLUMNS 4     /* "stripes": the content columns with the most mass */
#define DIFFUSE_ENTROPY 0.75 /* row entropy / log(row length) at least this: "diffuse" */
#define SECOND_SHARE 0.25    /* a second share at least this joins the name: "sink+fim" */

static int is_fim(int32_t id, const int32_t fim_ids[3]) {
    return id >= 0 && (id == fim_ids[0] || id == fim_ids[1] || id == fim_ids[2]);
}

void ap_pattern_measures(const float *tri, int N, const int32_t *input_ids, const int32_t fim_ids[3], int full,
                         double *col, double m[AP_CLUSTER_MEASURES]) {
    for (int k = 0; k < AP_CLUSTER_MEASURES; k++) m[k] = 0;
    if (N < 2) return;
    if (full) memset(col, 0, (size_t)N * sizeof *col);
    for (int i = 1; i < N; i++) {
        const float *row = tri + (size_t)i * (i + 1) / 2;
        m[AP_MEASURE_SINK] += row[0];
        m[AP_MEASURE_SELF] += row[i];
        if (i >= 2) m[AP_MEASURE_PREVIOUS] += row[i - 1];
        /* columns 1..i-2: FIM positions, then the local window, then content */
        for (int j = 1; j <= i - 2; j++) {
            if (is_fim(input_ids[j], fim_ids)) m[AP_MEASURE_FIM] += row[j];
            else if (j >= i - LOCAL_WINDOW) m[AP_MEASURE_LOCAL] += row[j];
            else if (full) col[j] += row[j];
        }
        if (!full) continue;
        double h = 0;
        for (int j = 0; j <= i; j++)
            if (row[j] > 0) h -= row[j] * log(row[j]);
        m[AP_MEASURE_ENTROPY] += h / log((double)i + 1);
    }
    if (full) { /* the STRIPE_COLUMNS largest content columns */
        for (int s = 0; s < STRIPE_COLUMNS; s++) {
            int best = -1;
            for (int j = 1; j < N; j++)
                if (col[j] > 0 && (best < 0 || col[j] > col[best])) best = j;
            if (best < 0) break;
            m[AP_MEASURE_STRIPES] += col[best];
            col[best] = 0;
        }
    }
    for (int k = 0; k < AP_CLUSTER_MEASURES; k++) m[k] /= N - 1;
    m[AP_MEASURE_CONTENT] = 1;
    for (int k = AP_MEASURE_SINK; k <= AP_MEASURE_FIM; k++) m[AP_MEASURE_CONTENT] -= m[k];
    if (m[AP_MEASURE_CONTENT] < 0) m[AP_MEASURE_CONTENT] = 0; /* rounding */
}

/* The name of a share; content is "stripes" when STRIPE_COLUMNS columns
 * hold at least half of it. */
static const char *share_name(const float m[AP_CLUSTER_MEASURES], int share) {
    if (share == AP_MEASURE_CONTENT && m[AP_MEASURE_STRIPES] >= 0.5f * m[AP_MEASURE_CONTENT]) return "stripes";
    return ap_cluster_measure_name(share);
}

void ap_cluster_kind(const float m[AP_CLUSTER_MEASURES], char *kind, size_t cap) {
    if (m[AP_MEASURE_ENTROPY] >= DIFFUSE_ENTROPY) {
        snprintf(kind, cap, "diffuse");
        return;
    }
    int first = -1, second = -1; /* the two largest shares; ties: the earlier */
    for (int s = AP_MEASURE_SINK; s <= AP_MEASURE_CONTENT; s++) {
        if (first < 0 || m[s] > m[first]) second = first, first = s;
        else if (second < 0 || m[s] > m[second]) second = s;
    }
    if (m[second] >= SECOND_SHARE) snprintf(kind, cap, "%s+%s", share_name(m, first), share_name(m, second));
    else snprintf(kind, cap, "%s", share_name(m, first));
}
