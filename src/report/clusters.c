/* The clusters section: clusters and noise per head as layers x heads maps,
 * the kind of each head's largest cluster, and exemplar sheets (each
 * cluster's medoid and mean pattern) of the heads with the most clusters.
 * Also what the gallery needs to show each head's most common pattern. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_KIND_NAMES 7 /* coloured kinds; the rest are "other" */
#define EXEMPLAR_HEADS 6
#define EXEMPLAR_CLUSTERS 10

typedef struct kind_count {
    char name[AP_CLUSTER_KIND_MAX];
    int count;
} kind_count;

static int by_count(const void *a, const void *b) {
    const kind_count *x = a, *y = b;
    return x->count != y->count ? y->count - x->count : strcmp(x->name, y->name);
}

/* One head's line for hover text, and its largest cluster. */
static void describe_head(rp_out *o, const rp_study *s, int l, int h, const ap_store_clusters_info *ci, char **about,
                          char largest[AP_CLUSTER_KIND_MAX], int64_t *medoid) {
    int i = l * s->H + h;
    ap_buf b = {0};
    largest[0] = '\0';
    *medoid = -1;
    if (!ci->done[i]) {
        ap_buf_printf(&b, NULL, "layer %d, head %d: not clustered", l, h);
    } else {
        ap_buf_printf(&b, NULL, "layer %d, head %d: %d cluster%s, %.0f%% noise", l, h, ci->n_clusters[i],
                      ci->n_clusters[i] == 1 ? "" : "s", 100.0 * ci->noise_fraction[i]);
        ap_cluster_summary *c = NULL;
        int k = 0;
        if (ci->has_summary[i] && !(o->st = ap_store_read_cluster_summary(s->store, l, h, &c, &k, o->err))) {
            int best = -1;
            for (int j = 0; j < k; j++) {
                if (best < 0 || c[j].size > c[best].size) best = j;
                if (j < EXEMPLAR_CLUSTERS) ap_buf_printf(&b, NULL, "%s %s %lld", j ? "," : ":", c[j].kind, (long long)c[j].size);
            }
            if (k > EXEMPLAR_CLUSTERS) ap_buf_printf(&b, NULL, ", ...");
            if (best >= 0) {
                snprintf(largest, AP_CLUSTER_KIND_MAX, "%s", c[best].kind);
                *medoid = c[best].medoid;
            }
        }
        free(c);
    }
    *about = b.data;
    if (!b.data && !o->st) o->st = ap_fail(o->err, AP_ERR_NOMEM, "out of memory");
}

int rp_head_kinds_load(rp_out *o, const rp_study *s, rp_head_kinds *k) {
    memset(k, 0, sizeof *k);
    const ap_store_clusters_info *ci = s->store ? ap_store_clusters_info_of(s->store) : NULL;
    int n = s->L * s->H, any = 0;
    for (int i = 0; ci && i < n; i++) any |= ci->has_summary[i];
    if (!any || o->st) return 0;
    k->kind = ap_malloc((size_t)n * sizeof *k->kind, o->err);
    k->medoid = ap_malloc((size_t)n * sizeof *k->medoid, o->err);
    k->about = ap_calloc((size_t)n, sizeof *k->about, o->err);
    char (*largest)[AP_CLUSTER_KIND_MAX] = ap_calloc((size_t)n, sizeof *largest, o->err);
    kind_count *counts = ap_calloc((size_t)n, sizeof *counts, o->err);
    int distinct = 0;
    if (!k->kind || !k->medoid || !k->about || !largest || !counts) o->st = AP_ERR_NOMEM;
    for (int i = 0; i < n && !o->st; i++) {
        describe_head(o, s, i / s->H, i % s->H, ci, &k->about[i], largest[i], &k->medoid[i]);
        if (!largest[i][0]) continue;
        int j = 0;
        while (j < distinct && strcmp(counts[j].name, largest[i]) != 0) j++;
        if (j == distinct) snprintf(counts[distinct++].name, AP_CLUSTER_KIND_MAX, "%s", largest[i]);
        counts[j].count++;
    }
    qsort(counts, (size_t)distinct, sizeof *counts, by_count);
    k->n_names = distinct < MAX_KIND_NAMES ? distinct : MAX_KIND_NAMES;
    for (int j = 0; j < k->n_names; j++) {
        snprintf(k->name_buf[j], AP_CLUSTER_KIND_MAX, "%s", counts[j].name);
        k->names[j] = k->name_buf[j];
    }
    for (int i = 0; i < n && !o->st; i++) {
        k->kind[i] = largest[i][0] ? k->n_names : -1;
        for (int j = 0; j < k->n_names && largest[i][0]; j++)
            if (strcmp(largest[i], k->names[j]) == 0) k->kind[i] = j;
    }
    free(largest);
    free(counts);
    if (o->st) {
        rp_head_kinds_free(k, n);
        return 0;
    }
    return 1;
}

void rp_head_kinds_free(rp_head_kinds *k, int heads) {
    for (int i = 0; k->about && i < heads; i++) free(k->about[i]);
    free(k->about);
    free(k->kind);
    free(k->medoid);
    memset(k, 0, sizeof *k);
}

/* Each cluster's medoid pattern over its mean pattern, for one head. */
static void exemplar_sheet(rp_out *o, const rp_study *s, int l, int h) {
    ap_cluster_summary *c = NULL;
    int k = 0;
    if ((o->st = ap_store_read_cluster_summary(s->store, l, h, &c, &k, o->err)) || k == 0) {
        free(c);
        return;
    }
    int cols = k < EXEMPLAR_CLUSTERS ? k : EXEMPLAR_CLUSTERS, tile = 0;
    rp_cell cells[2 * EXEMPLAR_CLUSTERS];
    char names[EXEMPLAR_CLUSTERS][AP_CLUSTER_KIND_MAX + 24];
    const char *col_names[EXEMPLAR_CLUSTERS], *row_names[2] = {"medoid", "mean"};
    for (int j = 0; j < cols; j++) {
        cells[j] = (rp_cell){.sample = c[j].medoid, .layer = l, .head = h, .cluster = -1};
        cells[cols + j] = (rp_cell){.sample = -1, .layer = l, .head = h, .cluster = j};
        snprintf(names[j], sizeof names[j], "%d: %s (%lld)", j, c[j].kind, (long long)c[j].size);
        col_names[j] = names[j];
    }
    void *png = NULL;
    size_t len = 0;
    if (rp_compose(o, s, cells, 2, cols, 96, 12, &png, &len, &tile)) {
        char title[96];
        snprintf(title, sizeof title, "Layer %d, head %d: %d cluster%s%s", l, h, k, k == 1 ? "" : "s",
                 k > cols ? " (the first shown)" : "");
        rp_tiles t = {.title = title, .col_label = "cluster: kind (samples)", .rows = 2, .cols = cols, .tile = tile,
                      .gap = 12, .png = png, .png_len = len, .row_names = row_names, .col_names = col_names};
        rp_svg_tiles(o, &t);
    }
    free(png);
    free(c);
}

/* Whether head i should come before head j: more clusters, then less noise. */
static int more_clusters(const ap_store_clusters_info *ci, int i, int j) {
    return ci->n_clusters[i] > ci->n_clusters[j] ||
           (ci->n_clusters[i] == ci->n_clusters[j] && ci->noise_fraction[i] < ci->noise_fraction[j]);
}

/* The EXEMPLAR_HEADS heads with the most clusters, in that order. */
static int pick_heads(const rp_study *s, const ap_store_clusters_info *ci, int *pick) {
    int n = 0;
    for (; n < EXEMPLAR_HEADS; n++) {
        int best = -1;
        for (int i = 0; i < s->L * s->H; i++) {
            int taken = 0;
            for (int j = 0; j < n; j++) taken |= pick[j] == i;
            if (!taken && ci->has_summary[i] && ci->n_clusters[i] > 0 && (best < 0 || more_clusters(ci, i, best)))
                best = i;
        }
        if (best < 0) break;
        pick[n] = best;
    }
    return n;
}

void rp_section_clusters(rp_out *o, const rp_study *s) {
    const ap_store_clusters_info *ci = s->store ? ap_store_clusters_info_of(s->store) : NULL;
    if (!ci) {
        rp_missing(o, s, "cluster", "clusters");
        return;
    }
    int n = s->L * s->H;
    double *k = ap_malloc((size_t)n * sizeof *k, o->err), *noise = ap_malloc((size_t)n * sizeof *noise, o->err);
    rp_head_kinds kinds;
    int have_kinds = rp_head_kinds_load(o, s, &kinds);
    if (!k || !noise) o->st = AP_ERR_NOMEM;
    for (int i = 0; k && noise && i < n; i++) {
        k[i] = ci->done[i] ? ci->n_clusters[i] : NAN;
        noise[i] = ci->done[i] ? 100.0 * ci->noise_fraction[i] : NAN;
    }
    rp_printf(o, "<p>Per head, the AP-MAE encodings of the %lld samples reduced with UMAP and clustered with HDBSCAN "
              "(docs/analysis.md): recurring patterns across inferences. %d of %d heads clustered; options <code>",
              (long long)ci->samples, ci->heads_done, n);
    rp_text(o, ci->params);
    rp_raw(o, "</code>.</p>\n");
    const char *const *about = have_kinds ? (const char *const *)kinds.about : NULL;
    rp_heatmap m = {.title = "Clusters per head", .row_label = "layer", .col_label = "head",
                    .value_label = "clusters", .rows = s->L, .cols = s->H, .v = k, .tooltip = about};
    if (!o->st) rp_svg_heatmap(o, &m);
    m.title = "Noise per head: samples in no cluster";
    m.value_label = "% of the samples";
    m.v = noise;
    m.tooltip = NULL; /* the value alone: each head's full description is on the other maps */
    if (!o->st) rp_svg_heatmap(o, &m);
    if (have_kinds) {
        rp_raw(o, "<p>The kind of each head's largest cluster, named from measured shares of its mean pattern's "
                  "attention (docs/analysis.md).</p>\n");
        m.title = "Kind of the largest cluster per head";
        m.tooltip = about;
        m.cat = (rp_categories){.of = kinds.kind, .names = kinds.names, .n = kinds.n_names};
        rp_svg_heatmap(o, &m);
    }
    int pick[EXEMPLAR_HEADS];
    int np = ap_store_has_patterns(s->store) ? pick_heads(s, ci, pick) : 0;
    if (np > 0)
        rp_printf(o, "<h3>Exemplars</h3>\n<p>The %d heads with the most clusters: for each cluster, its medoid (the "
                  "sample nearest the cluster's centre in UMAP space) and the mean of its members' patterns.</p>\n",
                  np);
    for (int j = 0; j < np && !o->st; j++) exemplar_sheet(o, s, pick[j] / s->H, pick[j] % s->H);
    if (have_kinds) rp_head_kinds_free(&kinds, n);
    free(k);
    free(noise);
}
