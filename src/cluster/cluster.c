/* UMAP + HDBSCAN on one matrix (docs/analysis.md "Clusters"): exact
 * duplicate rows jittered, the UMAP embedding clustered; and a cluster's
 * medoid. */
#include "apmae/cluster.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MEDOID_CANDIDATES 512

void ap_cluster_params_default(ap_cluster_params *p) {
    memset(p, 0, sizeof *p);
    ap_umap_params_default(&p->umap);
    ap_hdbscan_params_default(&p->hdbscan);
    p->jitter = 1e-3;
}

typedef struct row_key {
    uint64_t hash;
    int64_t row;
} row_key;

static int key_cmp(const void *a, const void *b) {
    const row_key *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Rows equal (bit for bit) to an earlier row get jitter * N(0, 1) added to
 * every entry, drawn from (seed, row): the result does not depend on the
 * order rows are visited in. Returns the number of rows changed. */
static int64_t jitter_duplicates(float *x, int64_t n, int d, double jitter, uint64_t seed, ap_error *err) {
    size_t rowb = (size_t)d * sizeof *x;
    row_key *k = ap_malloc((size_t)n * sizeof *k, err);
    uint8_t *dup = ap_calloc((size_t)n, 1, err);
    if (!k || !dup) {
        free(k);
        free(dup);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) k[i] = (row_key){ap_hash_bytes(x + (size_t)i * d, rowb), i};
    qsort(k, (size_t)n, sizeof *k, key_cmp);
    /* within a run of equal hashes (index order), a row is a copy when an
     * earlier row of the run that is not itself a copy equals it */
    for (int64_t a = 0, b; a < n; a = b) {
        for (b = a + 1; b < n && k[b].hash == k[a].hash; b++) {
            for (int64_t c = a; c < b && !dup[k[b].row]; c++)
                if (!dup[k[c].row] && memcmp(x + (size_t)k[c].row * d, x + (size_t)k[b].row * d, rowb) == 0)
                    dup[k[b].row] = 1;
        }
    }
    int64_t changed = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!dup[i]) continue;
        ap_rng r;
        ap_rng_seed(&r, ap_hash_mix(seed, (uint64_t)i));
        for (int j = 0; j < d; j++) x[(size_t)i * d + j] += (float)(jitter * ap_rng_normal(&r));
        changed++;
    }
    free(k);
    free(dup);
    return changed;
}

ap_status ap_cluster_matrix(float *x, int64_t n, int d, const ap_cluster_params *p, int32_t *labels, float *embedding,
                            int *nclusters, ap_error *err) {
    int64_t changed = jitter_duplicates(x, n, d, p->jitter, p->umap.seed, err);
    if (changed < 0) return AP_ERR_NOMEM;
    if (changed) ap_debug("%lld exact duplicate rows jittered by %g", (long long)changed, p->jitter);
    if (p->no_umap) return ap_hdbscan(x, n, d, &p->hdbscan, labels, NULL, nclusters, err);
    ap_status st = ap_umap(x, n, d, &p->umap, embedding, err);
    if (st == AP_OK) st = ap_hdbscan(embedding, n, p->umap.n_components, &p->hdbscan, labels, NULL, nclusters, err);
    return st;
}

typedef struct scored {
    double v;
    int64_t row;
} scored;

static int scored_cmp(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

static double distance(const float *u, const float *v, int d) {
    double s = 0;
    for (int k = 0; k < d; k++) s += ((double)u[k] - v[k]) * ((double)u[k] - v[k]);
    return sqrt(s);
}

ap_status ap_cluster_medoid(const float *space, int d, const int64_t *members, int64_t count, int64_t *medoid,
                            ap_error *err) {
    *medoid = -1;
    if (count <= 0) return ap_fail(err, AP_ERR_ARG, "medoid of an empty cluster");
    scored *c = ap_malloc((size_t)count * sizeof *c, err);
    double *mean = ap_calloc((size_t)d, sizeof *mean, err);
    float *meanf = ap_malloc((size_t)d * sizeof *meanf, err);
    if (!c || !mean || !meanf) {
        free(c), free(mean), free(meanf);
        return AP_ERR_NOMEM;
    }
    for (int64_t i = 0; i < count; i++)
        for (int k = 0; k < d; k++) mean[k] += space[(size_t)members[i] * d + k];
    for (int k = 0; k < d; k++) meanf[k] = (float)(mean[k] / (double)count);
    for (int64_t i = 0; i < count; i++) c[i] = (scored){distance(space + (size_t)members[i] * d, meanf, d), members[i]};
    int64_t nc = count;
    if (nc > MEDOID_CANDIDATES) {
        qsort(c, (size_t)count, sizeof *c, scored_cmp);
        nc = MEDOID_CANDIDATES;
    }
    scored best = {INFINITY, -1};
    for (int64_t i = 0; i < nc; i++) {
        scored s = {0, c[i].row};
        const float *u = space + (size_t)c[i].row * d;
        for (int64_t j = 0; j < count; j++) s.v += distance(u, space + (size_t)members[j] * d, d);
        if (scored_cmp(&s, &best) < 0) best = s;
    }
    free(c), free(mean), free(meanf);
    *medoid = best.row;
    return AP_OK;
}
