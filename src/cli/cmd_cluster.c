/* apmae cluster: every head of a store (--store) or any matrix (--in)
 * through UMAP + HDBSCAN; cluster list and cluster show look at the
 * result (docs/analysis.md "Clusters"). */
#include "apmae/cluster.h"
#include "apmae/io.h"
#include "apmae/store.h"
#include "apmae/text.h"
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const cli_flag k_cluster_flags[] = {
    {"--store", CLI_PATH, "S.h5", "cluster every head of this store's embeddings into its /clusters"},
    {"--in", CLI_PATH, "X.safetensors", "cluster tensor x (F32 [n, d]) of this file instead"},
    {"--out", CLI_PATH, "labels.json", "with --in: the labels, {\"labels\": [...]} (-1 = noise)"},
    {"--embedding-out", CLI_PATH, "Y.safetensors", "with --in: the UMAP output as tensor embedding (F32 [n, c])"},
    {"--embedding", CLI_CHOICE, NULL, "with --store: the AP-MAE encoding to cluster", .choices = "cls|mean",
     .def = "cls"},
    {"--heads", CLI_STRING, "all|L:H,...", "with --store: the heads to cluster", .def = "all"},
    {"--no-umap", CLI_SWITCH, NULL, "cluster the embeddings themselves, without UMAP"},
    {"--umap-components", CLI_INT, "C", "UMAP output dimension", .def = "8", .range = "1..256"},
    {"--umap-neighbors", CLI_INT, "K", "UMAP's n_neighbors, the point itself counted", .def = "20",
     .range = "2..1000"},
    {"--umap-min-dist", CLI_REAL, "D", "UMAP's min_dist", .def = "0.05", .range = "[0, 100]"},
    {"--umap-epochs", CLI_INT, "E", "UMAP's SGD epochs", .range = "1..100000",
     .def_note = "500 up to 10,000 points, else 200"},
    {"--metric", CLI_CHOICE, NULL, "distance UMAP uses on the embeddings (HDBSCAN: euclidean on UMAP's output)",
     .choices = "cosine|euclidean", .def = "cosine"},
    {"--min-samples", CLI_INT, "K", "HDBSCAN's min_samples, the point itself counted", .def = "20",
     .range = "1..100000"},
    {"--min-cluster-size", CLI_INT, "M", "HDBSCAN's min_cluster_size", .def = "25", .range = "2..10000000"},
    {"--no-single-cluster", CLI_SWITCH, NULL, "never return one cluster of everything (allow_single_cluster off)"},
    {"--jitter", CLI_REAL, "J", "exact duplicate rows get J times a standard normal draw per entry", .def = "0.001",
     .range = "[0, 1]"},
    {"--seed", CLI_INT, "S", "seed of UMAP and of the jitter", .def = "42", .range = "0.."},
    {"--tokenizer", CLI_PATH, "PATH", "with --store: tokenizer.json (or its directory) naming the <fim_*> tokens",
     .def_note = "the store's model directory"},
    {"--threads", CLI_INT, "T", "with --store: heads clustered at once", .range = "1..1024",
     .def_note = "OMP_NUM_THREADS, else all cores"},
    {0},
};

static const cli_flag k_list_flags[] = {
    {"--store", CLI_PATH, "S.h5", "the clustered store", .required = 1},
    {"--json", CLI_SWITCH, NULL, "one JSON object, with every cluster's measures"},
    {0},
};

static const cli_flag k_show_flags[] = {
    {"--store", CLI_PATH, "S.h5", "the clustered store", .required = 1},
    {"--layer", CLI_INT, "L", "layer (0-based)", .range = "0..1048576", .required = 1},
    {"--head", CLI_INT, "H", "head (0-based)", .range = "0..1048576", .required = 1},
    {"--out", CLI_PATH, "head.png", "the sheet to write", .required = 1},
    {0},
};

/* ---- options ---- */

/* "all" (NULL), or "L:H,L:H,...": pairs malloc'ed into *heads. */
static ap_status parse_heads(const char *spec, int32_t **heads, int *n, ap_error *err) {
    *heads = NULL;
    *n = 0;
    if (strcmp(spec, "all") == 0) return AP_OK;
    size_t cap = strlen(spec) / 2 + 1;
    if (!(*heads = ap_malloc(2 * cap * sizeof **heads, err))) return AP_ERR_NOMEM;
    for (const char *p = spec;;) {
        char *end;
        long l = strtol(p, &end, 10), h = -1;
        int ok = end != p && *end == ':';
        if (ok) {
            const char *q = end + 1;
            h = strtol(q, &end, 10);
            ok = end != q && (*end == ',' || *end == '\0') && l >= 0 && h >= 0 && l < 1 << 20 && h < 1 << 20;
        }
        if (!ok) {
            free(*heads);
            *heads = NULL;
            return ap_fail(err, AP_ERR_ARG, "--heads '%s': expected all or a list of LAYER:HEAD such as 0:3,5:1", spec);
        }
        (*heads)[2 * *n] = (int32_t)l;
        (*heads)[2 * *n + 1] = (int32_t)h;
        ++*n;
        if (*end == '\0') return AP_OK;
        p = end + 1;
    }
}

static ap_status read_params(const cli_args *a, ap_cluster_params *p, ap_error *err) {
    ap_cluster_params_default(p);
    p->no_umap = cli_switch(a, "--no-umap");
    p->umap.n_components = (int)cli_int(a, "--umap-components");
    p->umap.n_neighbors = (int)cli_int(a, "--umap-neighbors");
    p->umap.min_dist = cli_real(a, "--umap-min-dist");
    p->umap.n_epochs = (int)cli_int(a, "--umap-epochs");
    p->umap.seed = (uint64_t)cli_int(a, "--seed");
    p->hdbscan.min_samples = (int)cli_int(a, "--min-samples");
    p->hdbscan.min_cluster_size = (int)cli_int(a, "--min-cluster-size");
    p->hdbscan.allow_single_cluster = !cli_switch(a, "--no-single-cluster");
    p->jitter = cli_real(a, "--jitter");
    return ap_metric_parse(cli_str(a, "--metric"), &p->umap.metric, err);
}

/* The store's model directory's tokenizer.json when there is one
 * (malloc'ed), else NULL. */
static ap_status store_tokenizer(const char *store, char **path, ap_error *err) {
    *path = NULL;
    ap_store *s;
    ap_status st = ap_store_open(store, AP_STORE_READ, &s, err);
    if (st != AP_OK) return st;
    const char *model = ap_store_get_meta(s)->model_id;
    char *tj = model[0] ? ap_path_join(model, "tokenizer.json", err) : NULL;
    if (tj && ap_path_exists(tj)) *path = tj;
    else {
        ap_warn("%s: its model '%s' has no tokenizer.json here, so FIM tokens are not told apart (the fim share "
                "stays 0); give --tokenizer", store, model);
        free(tj);
    }
    ap_store_close(s, NULL);
    return AP_OK;
}

/* The ids of <fim_prefix>, <fim_suffix>, <fim_middle> from --tokenizer or
 * the store's model directory; -1 when neither has a tokenizer. */
static ap_status fim_ids(const cli_args *a, const char *store, int32_t ids[3], ap_error *err) {
    ids[0] = ids[1] = ids[2] = -1;
    char *from_store = NULL;
    const char *path = cli_str(a, "--tokenizer");
    if (!path) {
        ap_status st = store_tokenizer(store, &from_store, err);
        if (st != AP_OK || !from_store) return st;
        path = from_store;
    }
    ap_tokenizer *tok = NULL;
    ap_status st = ap_tokenizer_load(path, &tok, err);
    static const char *const names[3] = {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"};
    for (int k = 0; st == AP_OK && k < 3; k++)
        if ((ids[k] = ap_tokenizer_token_id(tok, names[k])) < 0)
            st = ap_fail(err, AP_ERR_ARG, "%s: the tokenizer has no %s token", path, names[k]);
    ap_tokenizer_free(tok);
    free(from_store);
    return st;
}

/* ---- the two forms ---- */

static ap_status run_store(const cli_args *a, ap_error *err) {
    ap_cluster_store_options o;
    ap_cluster_store_options_default(&o);
    o.store_path = cli_str(a, "--store");
    o.use_mean = cli_choice(a, "--embedding") == 1;
    o.threads = (int)cli_int(a, "--threads");
    int32_t *heads = NULL;
    ap_status st = read_params(a, &o.params, err);
    if (st == AP_OK) st = parse_heads(cli_str(a, "--heads"), &heads, &o.nheads, err);
    if (st == AP_OK) st = fim_ids(a, o.store_path, o.fim_ids, err);
    o.heads = heads;
    ap_cluster_store_report rep;
    if (st == AP_OK) st = ap_cluster_store(&o, &rep, err);
    if (st == AP_OK) {
        printf("{\"store\": \"%s\", \"samples\": %lld, \"heads\": %d, \"done_before\": %d, \"done_now\": %d, "
               "\"seconds\": %.3f}\n", o.store_path, (long long)rep.samples, rep.heads, rep.already_done, rep.done,
               rep.seconds);
        if (rep.done == 0) ap_info("%s: every selected head was already clustered with these options", o.store_path);
    }
    free(heads);
    return st;
}

static ap_status write_labels(const char *path, const int32_t *labels, int64_t n, ap_error *err) {
    ap_buf b = {0};
    ap_status st = ap_buf_printf(&b, err, "{\"labels\": [");
    for (int64_t i = 0; st == AP_OK && i < n; i++) st = ap_buf_printf(&b, err, i ? ",%d" : "%d", labels[i]);
    if (st == AP_OK) st = ap_buf_printf(&b, err, "]}\n");
    if (st == AP_OK) st = ap_write_file_atomic(path, b.data, b.len, err);
    ap_buf_free(&b);
    return st;
}

static ap_status run_matrix(const cli_args *a, ap_error *err) {
    const char *in = cli_str(a, "--in"), *out = cli_str(a, "--out"), *emb_out = cli_str(a, "--embedding-out");
    ap_cluster_params p;
    ap_status st = read_params(a, &p, err);
    if (st != AP_OK) return st;
    if (!out) return ap_fail(err, AP_ERR_ARG, "--in needs --out labels.json");
    if (emb_out && p.no_umap) return ap_fail(err, AP_ERR_ARG, "--embedding-out: there is no UMAP output with --no-umap");
    ap_safetensors *sf;
    if ((st = ap_st_open(in, &sf, err)) != AP_OK) return st;
    const ap_tensor *x = ap_st_find(sf, "x");
    if (!x || x->dtype != AP_F32 || x->ndim != 2 || x->shape[0] < 1 || x->shape[1] < 1) {
        ap_st_close(sf);
        return ap_fail(err, AP_ERR_FORMAT, "%s: needs a tensor 'x' F32 [n, d]", in);
    }
    int64_t n = x->shape[0];
    int d = (int)x->shape[1], c = p.umap.n_components, k = 0;
    float *xc = ap_malloc(x->nbytes, err), *emb = p.no_umap ? NULL : ap_malloc((size_t)n * c * sizeof *emb, err);
    int32_t *labels = ap_malloc((size_t)n * sizeof *labels, err);
    if (!xc || !labels || (!p.no_umap && !emb)) st = AP_ERR_NOMEM;
    else memcpy(xc, x->data, x->nbytes);
    ap_st_close(sf);
    double t0 = ap_now();
    if (st == AP_OK) st = ap_cluster_matrix(xc, n, d, &p, labels, emb, &k, err);
    double secs = ap_now() - t0;
    if (st != AP_OK) ap_error_prefix(err, "%s", in);
    if (st == AP_OK) st = write_labels(out, labels, n, err);
    if (st == AP_OK && emb_out) {
        ap_tensor_view t = {"embedding", AP_F32, 2, {n, c}, emb};
        st = ap_st_write(emb_out, &t, 1, NULL, err);
    }
    if (st == AP_OK) {
        int64_t noise = 0;
        for (int64_t i = 0; i < n; i++) noise += labels[i] < 0;
        printf("{\"n\": %lld, \"d\": %d, \"clusters\": %d, \"noise\": %lld, \"seconds\": %.4f}\n", (long long)n, d, k,
               (long long)noise, secs);
    }
    free(xc);
    free(emb);
    free(labels);
    return st;
}

static ap_status run_cluster(const cli_args *a, ap_error *err) {
    int store = cli_has(a, "--store"), in = cli_has(a, "--in");
    if (store == in) return ap_fail(err, AP_ERR_ARG, "give exactly one of --store S.h5 and --in X.safetensors");
    if (store && (cli_has(a, "--out") || cli_has(a, "--embedding-out")))
        return ap_fail(err, AP_ERR_ARG, "--out and --embedding-out go with --in; --store writes into the store");
    if (in && (cli_has(a, "--heads") || cli_has(a, "--embedding") || cli_has(a, "--tokenizer") ||
               cli_has(a, "--threads")))
        return ap_fail(err, AP_ERR_ARG, "--heads, --embedding, --tokenizer and --threads go with --store");
    return store ? run_store(a, err) : run_matrix(a, err);
}

/* ---- list and show ---- */

static void list_json(ap_store *s, const ap_store_clusters_info *ci, ap_cluster_summary *const *sum, const int *k) {
    const ap_store_meta *m = ap_store_get_meta(s);
    cJSON *o = cJSON_CreateObject(), *heads = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "store", ap_store_path(s));
    cJSON_AddNumberToObject(o, "samples", (double)ci->samples);
    cJSON *params = cJSON_Parse(ci->params);
    cJSON_AddItemToObject(o, "params", params ? params : cJSON_CreateString(ci->params));
    for (int i = 0; i < m->num_layers * m->num_heads; i++) {
        if (!ci->done[i]) continue;
        cJSON *h = cJSON_CreateObject(), *cl = cJSON_CreateArray();
        cJSON_AddNumberToObject(h, "layer", i / m->num_heads);
        cJSON_AddNumberToObject(h, "head", i % m->num_heads);
        cJSON_AddNumberToObject(h, "clusters", ci->n_clusters[i]);
        cJSON_AddNumberToObject(h, "noise_fraction", ci->noise_fraction[i]);
        for (int c = 0; sum[i] && c < k[i]; c++) {
            cJSON *e = cJSON_CreateObject(), *ms = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "size", (double)sum[i][c].size);
            cJSON_AddNumberToObject(e, "medoid", (double)sum[i][c].medoid);
            cJSON_AddStringToObject(e, "kind", sum[i][c].kind);
            for (int q = 0; q < AP_CLUSTER_MEASURES; q++)
                cJSON_AddNumberToObject(ms, ap_cluster_measure_name(q), sum[i][c].measures[q]);
            cJSON_AddItemToObject(e, "measures", ms);
            cJSON_AddItemToArray(cl, e);
        }
        cJSON_AddItemToObject(h, "cluster", cl);
        cJSON_AddItemToArray(heads, h);
    }
    cJSON_AddItemToObject(o, "heads", heads);
    char *text = cJSON_Print(o);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
}

static void list_text(ap_store *s, const ap_store_clusters_info *ci, ap_cluster_summary *const *sum, const int *k) {
    const ap_store_meta *m = ap_store_get_meta(s);
    printf("%s: %d of %d heads clustered over %lld samples, options %s\n", ap_store_path(s), ci->heads_done,
           m->num_layers * m->num_heads, (long long)ci->samples, ci->params);
    printf("%-6s %8s %6s  %s\n", "head", "clusters", "noise", "clusters: size kind");
    for (int i = 0; i < m->num_layers * m->num_heads; i++) {
        char name[32];
        snprintf(name, sizeof name, "%d:%d", i / m->num_heads, i % m->num_heads);
        if (!ci->done[i]) {
            printf("%-6s %8s\n", name, "-");
            continue;
        }
        printf("%-6s %8d %5.1f%% ", name, ci->n_clusters[i], 100.0 * ci->noise_fraction[i]);
        for (int c = 0; sum[i] && c < k[i]; c++) printf(" %d:%lld %s", c, (long long)sum[i][c].size, sum[i][c].kind);
        printf("\n");
    }
}

static ap_status run_list(const cli_args *a, ap_error *err) {
    ap_store *s;
    ap_status st = ap_store_open(cli_str(a, "--store"), AP_STORE_READ, &s, err);
    if (st != AP_OK) return st;
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    const ap_store_meta *m = ap_store_get_meta(s);
    int LH = m->num_layers * m->num_heads;
    ap_cluster_summary **sum = NULL;
    int *k = NULL;
    if (!ci) st = ap_fail(err, AP_ERR_ARG, "%s: no clusters yet (run 'apmae cluster --store %s')", ap_store_path(s),
                          ap_store_path(s));
    if (st == AP_OK && (!(sum = ap_calloc((size_t)LH, sizeof *sum, err)) || !(k = ap_calloc((size_t)LH, sizeof *k, err))))
        st = AP_ERR_NOMEM;
    for (int i = 0; st == AP_OK && i < LH; i++)
        if (ci->has_summary[i])
            st = ap_store_read_cluster_summary(s, i / m->num_heads, i % m->num_heads, &sum[i], &k[i], err);
    if (st == AP_OK) {
        if (cli_switch(a, "--json")) list_json(s, ci, sum, k);
        else list_text(s, ci, sum, k);
    }
    for (int i = 0; sum && i < LH; i++) free(sum[i]);
    free(sum);
    free(k);
    ap_store_close(s, NULL);
    return st;
}

static ap_status run_show(const cli_args *a, ap_error *err) {
    ap_store *s;
    ap_status st = ap_store_open(cli_str(a, "--store"), AP_STORE_READ, &s, err);
    if (st != AP_OK) return st;
    int layer = (int)cli_int(a, "--layer"), head = (int)cli_int(a, "--head");
    const char *out = cli_str(a, "--out");
    st = ap_cluster_sheet_png(s, layer, head, out, err);
    ap_cluster_summary *c = NULL;
    int k = 0;
    if (st == AP_OK) st = ap_store_read_cluster_summary(s, layer, head, &c, &k, err);
    if (st == AP_OK) {
        printf("%s: layer %d head %d, a row per cluster: medoid pattern | mean pattern\n", out, layer, head);
        for (int j = 0; j < k; j++)
            printf("row %d: cluster %d, %lld samples, %s, medoid sample %lld\n", j, j, (long long)c[j].size,
                   c[j].kind, (long long)c[j].medoid);
    }
    free(c);
    ap_store_close(s, NULL);
    return st;
}

static const cli_spec k_cluster = {
    .name = "cluster",
    .summary = "recurring patterns: UMAP + HDBSCAN of every head's embeddings (list, show)",
    .usage = "apmae cluster --store S.h5 [--embedding cls|mean] [--heads all|L:H,...] [UMAP and HDBSCAN flags]\n"
             "       apmae cluster --in X.safetensors --out labels.json [--no-umap] [--embedding-out Y.safetensors]\n"
             "       apmae cluster list --store S.h5 [--json]\n"
             "       apmae cluster show --store S.h5 --layer L --head H --out head.png",
    .description =
        "With --store: for every selected head, the AP-MAE encodings of the store's samples (exact duplicates\n"
        "jittered), reduced with UMAP and clustered with HDBSCAN, into the store's /clusters: each sample's\n"
        "label (-1 = noise) and each cluster's size, medoid, mean pattern and kind. Heads run in parallel and\n"
        "are committed one by one: killed, the same command continues; other options start the run again.\n"
        "Prints a JSON summary. With --in: the same on tensor x of a safetensors file, labels into --out.",
    .docs = "docs/analysis.md",
    .flags = k_cluster_flags,
    .run = run_cluster,
};

static const cli_spec k_list = {
    .name = "cluster list",
    .summary = "per head: clusters, noise, each cluster's size and kind",
    .description = "List a store's clusters: per head the number of clusters, the noise share and each cluster's\n"
                   "size and kind (with --json also its medoid and the measures that named it).",
    .docs = "docs/analysis.md",
    .flags = k_list_flags,
    .run = run_list,
};

static const cli_spec k_show = {
    .name = "cluster show",
    .summary = "exemplar sheet of a head: each cluster's medoid and mean pattern",
    .description = "Draw a PNG with a row per cluster of one head: the medoid's pattern and the mean pattern side by\n"
                   "side (log scale, viridis, like 'apmae store export'); print what each row is.",
    .docs = "docs/analysis.md",
    .flags = k_show_flags,
    .run = run_show,
};

int cmd_cluster(int argc, char **argv) {
    if (argc > 0 && strcmp(argv[0], "list") == 0) return cli_run(&k_list, argc - 1, argv + 1);
    if (argc > 0 && strcmp(argv[0], "show") == 0) return cli_run(&k_show, argc - 1, argv + 1);
    return cli_run(&k_cluster, argc, argv);
}
