/* apmae cluster --store: every selected head of a store clustered into its
 * /clusters (docs/analysis.md "Clusters", docs/store.md "Clusters").
 *
 * Heads run in parallel, one per thread; the store is not thread-safe, so
 * every store call sits in one critical section (reading a head's
 * embeddings, its members' patterns, writing and committing its result),
 * while UMAP, HDBSCAN and the measures run outside it. A head is committed
 * as soon as it is done: a killed run keeps every finished head and the
 * same options continue with the others. */
#include "apmae/cluster.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FULL_MEASURE_MEMBERS 128 /* members per cluster whose stripes and entropy are measured */

void ap_cluster_store_options_default(ap_cluster_store_options *o) {
    memset(o, 0, sizeof *o);
    ap_cluster_params_default(&o->params);
    o->params.umap.seed = 42;
    o->fim_ids[0] = o->fim_ids[1] = o->fim_ids[2] = -1;
}

char *ap_cluster_params_json(const ap_cluster_store_options *o, ap_error *err) {
    const ap_cluster_params *p = &o->params;
    cJSON *j = cJSON_CreateObject(), *u = cJSON_CreateObject(), *h = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "embedding", o->use_mean ? "mean" : "cls");
    cJSON_AddBoolToObject(j, "umap_used", !p->no_umap);
    cJSON_AddNumberToObject(u, "n_components", p->umap.n_components);
    cJSON_AddNumberToObject(u, "n_neighbors", p->umap.n_neighbors);
    cJSON_AddNumberToObject(u, "min_dist", p->umap.min_dist);
    cJSON_AddNumberToObject(u, "spread", p->umap.spread);
    cJSON_AddStringToObject(u, "metric", ap_metric_name(p->umap.metric));
    cJSON_AddNumberToObject(u, "n_epochs", p->umap.n_epochs);
    cJSON_AddItemToObject(j, "umap", u);
    cJSON_AddNumberToObject(h, "min_samples", p->hdbscan.min_samples);
    cJSON_AddNumberToObject(h, "min_cluster_size", p->hdbscan.min_cluster_size);
    cJSON_AddBoolToObject(h, "allow_single_cluster", p->hdbscan.allow_single_cluster);
    cJSON_AddStringToObject(h, "metric", ap_metric_name(p->hdbscan.metric));
    cJSON_AddItemToObject(j, "hdbscan", h);
    cJSON_AddNumberToObject(j, "jitter", p->jitter);
    const int fim[3] = {o->fim_ids[0], o->fim_ids[1], o->fim_ids[2]};
    cJSON_AddItemToObject(j, "fim_ids", cJSON_CreateIntArray(fim, 3));
    cJSON_AddNumberToObject(j, "seed", (double)p->umap.seed);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text) ap_fail(err, AP_ERR_NOMEM, "out of memory");
    return text;
}

/* ---- one head ---- */

/* What a head's clustering leaves for the store. */
typedef struct head_result {
    int32_t *labels;            /* [S] */
    int k;
    ap_cluster_summary *summary; /* [k] */
    float *mean_tri;             /* [k, T], or NULL without patterns */
} head_result;

static void head_result_free(head_result *r) {
    free(r->labels);
    free(r->summary);
    free(r->mean_tri);
    memset(r, 0, sizeof *r);
}

typedef struct run {
    ap_store *s;
    const ap_cluster_store_options *o;
    int64_t S;
    int N, D;
    const int32_t *ids; /* [S, N] input ids (with patterns) */
} run;

/* Members of each cluster, by sample: members + first[c] .. first[c + 1]. */
static ap_status group_members(const int32_t *labels, int64_t S, int k, int64_t **first, int64_t **members,
                               ap_error *err) {
    *first = ap_calloc((size_t)k + 1, sizeof **first, err);
    *members = ap_malloc((size_t)S * sizeof **members, err);
    if (!*first || !*members) return AP_ERR_NOMEM;
    for (int64_t i = 0; i < S; i++)
        if (labels[i] >= 0) (*first)[labels[i] + 1]++;
    for (int c = 0; c < k; c++) (*first)[c + 1] += (*first)[c];
    int64_t *fill = ap_malloc(((size_t)k + 1) * sizeof *fill, err);
    if (!fill) return AP_ERR_NOMEM;
    memcpy(fill, *first, ((size_t)k + 1) * sizeof *fill);
    for (int64_t i = 0; i < S; i++)
        if (labels[i] >= 0) (*members)[fill[labels[i]]++] = i;
    free(fill);
    return AP_OK;
}

/* Each cluster's mean pattern and measures, from its members' stored
 * patterns: the cheap measures over every member, stripes and entropy over
 * at most FULL_MEASURE_MEMBERS of them, evenly spread. */
static ap_status measure_clusters(const run *R, int layer, int head, const int64_t *first, const int64_t *members,
                                  head_result *r, ap_error *err) {
    size_t T = (size_t)R->N * (R->N + 1) / 2;
    float *tri = ap_malloc(T * sizeof *tri, err);
    double *sum = ap_malloc(T * sizeof *sum, err), *col = ap_malloc((size_t)R->N * sizeof *col, err);
    r->mean_tri = ap_malloc((size_t)r->k * T * sizeof *r->mean_tri, err);
    ap_status st = tri && sum && col && r->mean_tri ? AP_OK : AP_ERR_NOMEM;
    for (int c = 0; st == AP_OK && c < r->k; c++) {
        int64_t size = first[c + 1] - first[c], step = (size + FULL_MEASURE_MEMBERS - 1) / FULL_MEASURE_MEMBERS;
        double m[AP_CLUSTER_MEASURES], acc[AP_CLUSTER_MEASURES] = {0}, nfull = 0;
        memset(sum, 0, T * sizeof *sum);
        for (int64_t rank = 0; st == AP_OK && rank < size; rank++) {
            int64_t i = members[first[c] + rank];
#pragma omp critical(ap_cluster_store)
            st = ap_store_read_tri(R->s, i, layer, head, tri, err);
            if (st != AP_OK) break;
            for (size_t t = 0; t < T; t++) sum[t] += tri[t];
            int full = rank % step == 0;
            ap_pattern_measures(tri, R->N, R->ids + (size_t)i * R->N, R->o->fim_ids, full, col, m);
            for (int q = 0; q < AP_CLUSTER_MEASURES; q++)
                if (full || (q != AP_MEASURE_STRIPES && q != AP_MEASURE_ENTROPY)) acc[q] += m[q];
            nfull += full;
        }
        for (size_t t = 0; t < T; t++) r->mean_tri[(size_t)c * T + t] = (float)(sum[t] / (double)size);
        for (int q = 0; q < AP_CLUSTER_MEASURES; q++)
            r->summary[c].measures[q] =
                (float)(acc[q] / (q == AP_MEASURE_STRIPES || q == AP_MEASURE_ENTROPY ? nfull : (double)size));
        ap_cluster_kind(r->summary[c].measures, r->summary[c].kind, sizeof r->summary[c].kind);
    }
    free(tri);
    free(sum);
    free(col);
    return st;
}

/* Sizes, medoids (in the space HDBSCAN clustered) and, with patterns, mean
 * patterns, measures and kinds. */
static ap_status summarise(const run *R, int layer, int head, const float *space, int dim, head_result *r,
                           ap_error *err) {
    int64_t *first = NULL, *members = NULL;
    r->summary = ap_calloc(r->k > 0 ? (size_t)r->k : 1, sizeof *r->summary, err);
    ap_status st = r->summary ? group_members(r->labels, R->S, r->k, &first, &members, err) : AP_ERR_NOMEM;
    for (int c = 0; st == AP_OK && c < r->k; c++) {
        r->summary[c].size = first[c + 1] - first[c];
        st = ap_cluster_medoid(space, dim, members + first[c], r->summary[c].size, &r->summary[c].medoid, err);
        if (!ap_store_has_patterns(R->s)) { /* nothing to measure */
            snprintf(r->summary[c].kind, sizeof r->summary[c].kind, "unknown");
            for (int q = 0; q < AP_CLUSTER_MEASURES; q++) r->summary[c].measures[q] = NAN;
        }
    }
    if (st == AP_OK && ap_store_has_patterns(R->s)) st = measure_clusters(R, layer, head, first, members, r, err);
    free(first);
    free(members);
    return st;
}

static ap_status cluster_head(const run *R, int layer, int head, head_result *r, ap_error *err) {
    const ap_cluster_params *p = &R->o->params;
    int dim = p->no_umap ? R->D : p->umap.n_components;
    float *x = ap_malloc((size_t)R->S * R->D * sizeof *x, err);
    float *emb = p->no_umap ? NULL : ap_malloc((size_t)R->S * dim * sizeof *emb, err);
    r->labels = ap_malloc((size_t)R->S * sizeof *r->labels, err);
    ap_status st = x && r->labels && (p->no_umap || emb) ? AP_OK : AP_ERR_NOMEM;
    if (st == AP_OK) {
#pragma omp critical(ap_cluster_store)
        st = ap_store_read_head_embeddings(R->s, layer, head, R->o->use_mean, R->S, x, err);
    }
    if (st == AP_OK) st = ap_cluster_matrix(x, R->S, R->D, p, r->labels, emb, &r->k, err);
    if (st == AP_OK) st = summarise(R, layer, head, p->no_umap ? x : emb, dim, r, err);
    free(x);
    free(emb);
    return st;
}

static ap_status store_head(ap_store *s, int layer, int head, const head_result *r, ap_error *err) {
    ap_status st = ap_store_put_cluster_labels(s, layer, head, r->labels, err);
    if (st == AP_OK) st = ap_store_put_cluster_summary(s, layer, head, r->k, r->summary, r->mean_tri, err);
    if (st == AP_OK) st = ap_store_commit(s, err);
    return st;
}

/* ---- the run ---- */

static ap_status check_store(ap_store *s, const ap_cluster_store_options *o, int64_t S, ap_error *err) {
    const char *path = ap_store_path(s);
    const ap_store_embed_info *e = ap_store_embed_info_of(s);
    if (!e)
        return ap_fail(err, AP_ERR_ARG, "%s: the store has no embeddings to cluster; run 'apmae store embed %s --model "
                       "MAE_DIR' first", path, path);
    if (ap_store_embedded(s) < S)
        return ap_fail(err, AP_ERR_ARG, "%s: only %lld of its %lld samples have embeddings; run 'apmae store embed' "
                       "to finish them", path, (long long)ap_store_embedded(s), (long long)S);
    const ap_hdbscan_params *hp = &o->params.hdbscan;
    if (S < hp->min_cluster_size || S < hp->min_samples)
        return ap_fail(err, AP_ERR_ARG, "%s: %lld samples, fewer than min_cluster_size %d or min_samples %d", path,
                       (long long)S, hp->min_cluster_size, hp->min_samples);
    if (!o->params.no_umap && S <= o->params.umap.n_neighbors)
        return ap_fail(err, AP_ERR_ARG, "%s: %lld samples; UMAP needs more than its n_neighbors (%d)", path,
                       (long long)S, o->params.umap.n_neighbors);
    const ap_store_meta *m = ap_store_get_meta(s);
    for (int i = 0; o->heads && i < o->nheads; i++) {
        int l = o->heads[2 * i], h = o->heads[2 * i + 1];
        if (l < 0 || l >= m->num_layers || h < 0 || h >= m->num_heads)
            return ap_fail(err, AP_ERR_RANGE, "%s: head %d:%d is out of range (layers 0..%d, heads 0..%d)", path, l, h,
                           m->num_layers - 1, m->num_heads - 1);
    }
    return AP_OK;
}

/* The selected heads that are not done yet, as layer * H + head; *selected
 * counts the distinct heads asked for. */
static ap_status heads_to_do(ap_store *s, const ap_cluster_store_options *o, int **todo, int *ntodo, int *selected,
                             ap_error *err) {
    const ap_store_meta *m = ap_store_get_meta(s);
    int LH = m->num_layers * m->num_heads;
    uint8_t *want = ap_calloc((size_t)LH, 1, err);
    *todo = ap_malloc((size_t)LH * sizeof **todo, err);
    if (!want || !*todo) {
        free(want);
        return AP_ERR_NOMEM;
    }
    for (int i = 0; i < LH; i++) want[i] = !o->heads;
    for (int i = 0; o->heads && i < o->nheads; i++) want[o->heads[2 * i] * m->num_heads + o->heads[2 * i + 1]] = 1;
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    *ntodo = *selected = 0;
    for (int i = 0; i < LH; i++) {
        *selected += want[i];
        if (want[i] && !ci->done[i]) (*todo)[(*ntodo)++] = i;
    }
    free(want);
    return AP_OK;
}

static ap_status read_input_ids(ap_store *s, int64_t S, int32_t **ids, ap_error *err) {
    int N = ap_store_get_meta(s)->n_tokens;
    *ids = ap_malloc((size_t)S * N * sizeof **ids, err);
    if (!*ids) return AP_ERR_NOMEM;
    ap_store_sample rec;
    for (int64_t i = 0; i < S; i++) {
        ap_status st = ap_store_read_sample(s, i, &rec, *ids + (size_t)i * N, err);
        if (st != AP_OK) return st;
    }
    return AP_OK;
}

/* Cluster the heads of todo, threads at a time; *done counts those stored.
 * The bar counts every selected head, those done before included: its
 * lines report committed heads only. */
static ap_status run_heads(const run *R, const int *todo, int ntodo, int threads, ap_progress *bar, int before,
                           int *done, ap_error *err) {
    int H = ap_store_get_meta(R->s)->num_heads;
    *done = 0;
    ap_status failed = AP_OK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (int t = 0; t < ntodo; t++) {
        int layer = todo[t] / H, head = todo[t] % H, stop;
#pragma omp atomic read
        stop = failed;
        if (stop) continue;
        head_result r = {0};
        ap_error e = {0};
        ap_status st = cluster_head(R, layer, head, &r, &e);
#pragma omp critical(ap_cluster_store)
        {
            if (st == AP_OK && failed == AP_OK) st = store_head(R->s, layer, head, &r, &e);
            if (st != AP_OK && failed == AP_OK) {
                ap_error_prefix(&e, "layer %d head %d", layer, head);
                if (err) *err = e;
#pragma omp atomic write
                failed = st;
            }
            if (st == AP_OK) {
                char extra[96];
                int noise = 0;
                for (int64_t i = 0; i < R->S; i++) noise += r.labels[i] < 0;
                snprintf(extra, sizeof extra, "%d:%d %d clusters, %.0f%% noise", layer, head, r.k,
                         100.0 * noise / (double)R->S);
                ap_progress_update(bar, before + ++*done, extra);
            }
        }
        head_result_free(&r);
    }
    return failed;
}

ap_status ap_cluster_store(const ap_cluster_store_options *o, ap_cluster_store_report *rep, ap_error *err) {
    memset(rep, 0, sizeof *rep);
    double t0 = ap_now();
    ap_store *s = NULL;
    ap_status st = ap_store_open(o->store_path, AP_STORE_APPEND, &s, err);
    if (st != AP_OK) return st;
    int64_t S = ap_store_committed(s);
    char *params = NULL;
    int *todo = NULL, ntodo = 0;
    int32_t *ids = NULL;
    st = check_store(s, o, S, err);
    if (st == AP_OK && !(params = ap_cluster_params_json(o, err))) st = AP_ERR_NOMEM;
    if (st == AP_OK) st = ap_store_clusters_begin(s, params, err);
    if (st == AP_OK) st = ap_store_commit(s, err);
    if (st == AP_OK) st = heads_to_do(s, o, &todo, &ntodo, &rep->heads, err);
    if (st == AP_OK && ntodo > 0 && ap_store_has_patterns(s)) st = read_input_ids(s, S, &ids, err);
    rep->samples = S;
    rep->already_done = rep->heads - ntodo;
    if (st == AP_OK && ntodo > 0) {
        run R = {.s = s, .o = o, .S = S, .N = ap_store_get_meta(s)->n_tokens, .D = ap_store_embed_info_of(s)->dim,
                 .ids = ids};
        int threads = o->threads > 0 ? o->threads : ap_num_threads();
        if (threads > ntodo) threads = ntodo;
        ap_progress bar;
        ap_progress_begin(&bar, "cluster", rep->heads);
        ap_progress_update(&bar, rep->already_done, NULL);
        st = run_heads(&R, todo, ntodo, threads, &bar, rep->already_done, &rep->done, err);
        ap_progress_end(&bar, NULL);
    }
    ap_status cst = ap_store_close(s, st == AP_OK ? err : NULL);
    if (st == AP_OK) st = cst;
    free(params);
    free(todo);
    free(ids);
    rep->seconds = ap_now() - t0;
    return st;
}
