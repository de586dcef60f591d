/* Exemplar sheets (docs/analysis.md "Clusters"): for one head, a row per
 * cluster with its medoid's pattern on the left and its mean pattern on
 * the right, drawn like `apmae store export` draws a pattern. */
#include "apmae/cluster.h"

#include <stdlib.h>
#include <string.h>

#define PANEL_PIXELS 256 /* a pattern is drawn at least this wide (whole pixels per entry) */
#define GAP 8            /* white pixels around and between the panels */

ap_status ap_cluster_sheet_png(ap_store *s, int layer, int head, const char *path, ap_error *err) {
    const ap_store_meta *m = ap_store_get_meta(s);
    ap_cluster_summary *c = NULL;
    int k = 0;
    ap_status st = ap_store_read_cluster_summary(s, layer, head, &c, &k, err);
    if (st != AP_OK) return st;
    if (!ap_store_has_patterns(s))
        st = ap_fail(err, AP_ERR_ARG, "%s: the store keeps no patterns to draw", ap_store_path(s));
    else if (k == 0)
        st = ap_fail(err, AP_ERR_ARG, "%s: layer %d head %d has no clusters (every sample is noise)", ap_store_path(s),
                     layer, head);
    if (st != AP_OK) {
        free(c);
        return st;
    }
    int N = m->n_tokens, zoom = N >= PANEL_PIXELS ? 1 : (PANEL_PIXELS + N - 1) / N, side = N * zoom;
    size_t W = (size_t)3 * GAP + 2 * (size_t)side, Hgt = (size_t)k * (side + GAP) + GAP, stride = 3 * W;
    unsigned char *pix = ap_malloc(stride * Hgt, err);
    float *P = ap_malloc((size_t)N * N * sizeof *P, err);
    if (!pix || !P) st = AP_ERR_NOMEM;
    else memset(pix, 255, stride * Hgt);
    for (int j = 0; st == AP_OK && j < k; j++) {
        unsigned char *row = pix + ((size_t)GAP + (size_t)j * (side + GAP)) * stride;
        st = ap_store_read_pattern(s, c[j].medoid, layer, head, P, err);
        if (st == AP_OK) ap_pattern_render(P, N, zoom, row + 3 * GAP, stride);
        if (st == AP_OK) st = ap_store_read_cluster_mean(s, layer, head, j, P, err);
        if (st == AP_OK) ap_pattern_render(P, N, zoom, row + 3 * (2 * GAP + (size_t)side), stride);
    }
    if (st == AP_OK) st = ap_png_write_rgb(path, pix, (int)W, (int)Hgt, err);
    free(pix);
    free(P);
    free(c);
    return st;
}
