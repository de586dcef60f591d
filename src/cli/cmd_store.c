/* apmae store info|export|repair|embed|merge: look into a pattern store,
 * add AP-MAE embeddings to it, merge shards. */
#include "apmae/extract.h"
#include "apmae/io.h"
#include "apmae/store.h"
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const cli_flag k_info_flags[] = {
    {"--json", NULL, "print one JSON object instead of text", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_info = {
    "apmae store info STORE.h5 [--json]",
    "Summarise a pattern store: samples per task and correctness, the model, the pattern dtype, the size on disk "
    "and the bytes per stored pattern against dense float32 N×N, whether it keeps patterns and/or AP-MAE "
    "embeddings, the AP-MAE that made them, and how far its clustering run (apmae cluster) got.",
    k_info_flags,
};

static const cli_flag k_export_flags[] = {
    {"--sample", "I", "sample index (0-based)", 0},
    {"--scenario", "ID", "select the sample by scenario id instead of --sample", 0},
    {"--layer", "L", "layer (0-based)", 1},
    {"--head", "H", "head (0-based)", 1},
    {"--out", "FILE", "x.png (viridis, log scale) or x.safetensors (pattern F32 [N,N], input_ids I64 [N])", 1},
    {"--zoom", "Z", "PNG pixels per entry (default: enough for a ~512 px image)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_export = {
    "apmae store export STORE.h5 (--sample I | --scenario ID) --layer L --head H --out x.png|x.safetensors",
    "Export one attention pattern: as a PNG (lower triangle log-scaled like the AP-MAE scaler, viridis colour map, "
    "upper triangle white) or as safetensors with tensors 'pattern' F32 [N,N] and 'input_ids' I64 [N].",
    k_export_flags,
};

static const cli_flag k_embed_flags[] = {
    {"--model", "MAE_DIR", "AP-MAE checkpoint (config.json, model.safetensors); its max_length must be the store's N", 1},
    {"--batch", "B", "patterns per AP-MAE batch (default 64)", 0},
    {"--compat", "default|reference", "reference: the published code's encoding (docs/mae.md)", 0},
    {"--commit-every", "K", "commit at least every K samples (default 64; also every 2 s)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_embed = {
    "apmae store embed STORE.h5 --model MAE_DIR [--batch B] [--compat reference]",
    "Encode every pattern of the store with the AP-MAE (its scaler, then the encoder: the cls slot and the mean of "
    "the slots) into /embeddings/cls and /embeddings/mean [S, L, H, D]. Killed at any moment, the same command "
    "continues after its last commit; on a store whose samples all have embeddings of this AP-MAE it does nothing "
    "and says so. A store holds the embeddings of one AP-MAE only.",
    k_embed_flags,
};

static const cli_flag k_merge_flags[] = {
    {"--out", "STORE.h5", "the merged store to create", 1},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_merge = {
    "apmae store merge --out STORE.h5 SHARD.h5...",
    "Merge the shards of one sharded extraction (apmae extract --shard K/R, every K of R given once, each complete) "
    "into one store, sample by sample in scenario order: the store one process would have written (under "
    "--balance per-task:K only approximately: docs/store.md). The shards must "
    "share model, N, dtype, options and embeddings; an error names the shard that does not.",
    k_merge_flags,
};

static const cli_flag k_repair_flags[] = {{NULL, NULL, NULL, 0}};
static const cli_spec k_repair = {
    "apmae store repair STORE.h5",
    "Roll a store back to its last commit when its writer was killed (STORE.h5-journal is then left non-empty), so "
    "that tools other than apmae (h5py, h5dump) can read it. apmae itself reads such a store as of its last commit "
    "without repairing, and its next writer repairs it anyway.",
    k_repair_flags,
};

typedef struct task_count {
    const char *task;
    int64_t correct, incorrect;
} task_count;

/* Counts per task: the store's declared tasks first, then any others in
 * order of appearance. */
static ap_status count_tasks(ap_store *s, task_count **out, size_t *n, ap_error *err) {
    const ap_store_meta *m = ap_store_get_meta(s);
    int64_t S = ap_store_count(s);
    task_count *tc = ap_calloc(m->ntasks + (size_t)S + 1, sizeof *tc, err);
    if (!tc) return err->code;
    size_t nt = 0;
    for (size_t t = 0; t < m->ntasks; t++) tc[nt++].task = m->tasks[t];
    for (int64_t i = 0; i < S; i++) {
        ap_store_sample r;
        ap_status st = ap_store_read_sample(s, i, &r, NULL, err);
        if (st != AP_OK) {
            free(tc);
            return st;
        }
        size_t k = 0;
        while (k < nt && strcmp(tc[k].task, r.task) != 0) k++;
        if (k == nt) tc[nt++].task = r.task;
        if (r.correct) tc[k].correct++;
        else tc[k].incorrect++;
    }
    *out = tc;
    *n = nt;
    return AP_OK;
}

static int info_json(ap_store *s, const ap_store_size *sz, const task_count *tc, size_t nt) {
    const ap_store_meta *m = ap_store_get_meta(s);
    double dense = 4.0 * m->n_tokens * m->n_tokens, per = sz->patterns ? (double)sz->pattern_bytes / sz->patterns : 0;
    int64_t correct = 0;
    cJSON *o = cJSON_CreateObject(), *pt = cJSON_CreateObject(), *tasks = cJSON_CreateArray(),
          *seeds = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "path", ap_store_path(s));
    cJSON_AddNumberToObject(o, "samples", (double)ap_store_count(s));
    for (size_t k = 0; k < nt; k++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "samples", (double)(tc[k].correct + tc[k].incorrect));
        cJSON_AddNumberToObject(t, "correct", (double)tc[k].correct);
        cJSON_AddNumberToObject(t, "incorrect", (double)tc[k].incorrect);
        cJSON_AddItemToObject(pt, tc[k].task, t);
        correct += tc[k].correct;
    }
    cJSON_AddNumberToObject(o, "correct", (double)correct);
    cJSON_AddNumberToObject(o, "incorrect", (double)(ap_store_count(s) - correct));
    cJSON_AddItemToObject(o, "per_task", pt);
    cJSON_AddNumberToObject(o, "cursor", (double)ap_store_cursor(s));
    cJSON_AddStringToObject(o, "model_id", m->model_id);
    cJSON_AddNumberToObject(o, "n_tokens", m->n_tokens);
    cJSON_AddNumberToObject(o, "num_layers", m->num_layers);
    cJSON_AddNumberToObject(o, "num_heads", m->num_heads);
    cJSON_AddStringToObject(o, "dtype", m->dtype == AP_F32 ? "f32" : m->dtype == AP_F16 ? "f16" : "bf16");
    cJSON_AddNumberToObject(o, "small_bits", m->small_bits);
    cJSON_AddNumberToObject(o, "deflate", m->deflate);
    for (size_t t = 0; t < m->ntasks; t++) cJSON_AddItemToArray(tasks, cJSON_CreateString(m->tasks[t]));
    cJSON_AddItemToObject(o, "tasks", tasks);
    for (size_t t = 0; t < m->nseeds; t++) cJSON_AddItemToArray(seeds, cJSON_CreateNumber((double)m->seeds[t]));
    cJSON_AddItemToObject(o, "seeds", seeds);
    cJSON_AddNumberToObject(o, "file_bytes", (double)sz->file_bytes);
    cJSON_AddNumberToObject(o, "pattern_bytes", (double)sz->pattern_bytes);
    cJSON_AddNumberToObject(o, "patterns", (double)sz->patterns);
    cJSON_AddNumberToObject(o, "bytes_per_pattern", per);
    cJSON_AddNumberToObject(o, "dense_f32_bytes_per_pattern", dense);
    cJSON_AddNumberToObject(o, "ratio_vs_dense_f32", per > 0 ? dense / per : 0);
    cJSON_AddBoolToObject(o, "has_patterns", ap_store_has_patterns(s));
    const ap_store_embed_info *e = ap_store_embed_info_of(s);
    if (e) {
        cJSON *em = cJSON_CreateObject();
        cJSON_AddNumberToObject(em, "samples", (double)ap_store_embedded(s));
        cJSON_AddStringToObject(em, "model_id", e->model_id);
        cJSON_AddStringToObject(em, "model_hash", e->model_hash);
        cJSON_AddNumberToObject(em, "dim", e->dim);
        cJSON_AddStringToObject(em, "compat", e->compat_reference ? "reference" : "default");
        cJSON_AddNumberToObject(em, "bytes", (double)sz->embedding_bytes);
        cJSON_AddItemToObject(o, "embeddings", em);
    } else {
        cJSON_AddNullToObject(o, "embeddings");
    }
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    if (ci) {
        cJSON *cl = cJSON_CreateObject(), *params = cJSON_Parse(ci->params);
        cJSON_AddNumberToObject(cl, "samples", (double)ci->samples);
        cJSON_AddNumberToObject(cl, "heads_done", ci->heads_done);
        cJSON_AddNumberToObject(cl, "heads", m->num_layers * m->num_heads);
        cJSON_AddItemToObject(cl, "params", params ? params : cJSON_CreateString(ci->params));
        cJSON_AddItemToObject(o, "clusters", cl);
    } else {
        cJSON_AddNullToObject(o, "clusters");
    }
    if (m->shard_count > 1) {
        cJSON *sh = cJSON_CreateObject();
        cJSON_AddNumberToObject(sh, "index", m->shard_index);
        cJSON_AddNumberToObject(sh, "count", m->shard_count);
        cJSON_AddItemToObject(o, "shard", sh);
    }
    cJSON_AddNumberToObject(o, "format_version", AP_STORE_FORMAT_VERSION);
    cJSON_AddStringToObject(o, "tool_version", ap_store_tool_version(s));
    char *text = cJSON_Print(o);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
    return 0;
}

static void info_text(ap_store *s, const ap_store_size *sz, const task_count *tc, size_t nt) {
    const ap_store_meta *m = ap_store_get_meta(s);
    double dense = 4.0 * m->n_tokens * m->n_tokens, per = sz->patterns ? (double)sz->pattern_bytes / sz->patterns : 0;
    printf("%s: %lld samples (cursor %lld), written by apmae %s\n", ap_store_path(s), (long long)ap_store_count(s),
           (long long)ap_store_cursor(s), ap_store_tool_version(s));
    printf("model:    %s, N = %d tokens, %d layers x %d heads\n", m->model_id[0] ? m->model_id : "(unnamed)",
           m->n_tokens, m->num_layers, m->num_heads);
    if (m->shard_count > 1) printf("shard:    %d of %d (scenarios i with i %% %d == %d)\n", m->shard_index,
                                   m->shard_count, m->shard_count, m->shard_index);
    if (!ap_store_has_patterns(s))
        printf("patterns: none (an embeddings-only store, extracted with --embeddings-only)\n");
    else if (m->dtype == AP_BF16)
        printf("patterns: bf16 (%d mantissa bits below %g), shuffle + deflate %d\n", m->small_bits,
               (double)AP_STORE_SMALL_BELOW, m->deflate);
    else printf("patterns: %s, shuffle + deflate %d\n", m->dtype == AP_F32 ? "f32" : "f16", m->deflate);
    const ap_store_embed_info *e = ap_store_embed_info_of(s);
    if (e)
        printf("embeddings: %lld of %lld samples, AP-MAE %s (D = %d, parameter hash %s%s), %.1f MiB\n",
               (long long)ap_store_embedded(s), (long long)ap_store_count(s), e->model_id, e->dim, e->model_hash,
               e->compat_reference ? ", --compat reference" : "", sz->embedding_bytes / 1048576.0);
    else printf("embeddings: none\n");
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    if (ci)
        printf("clusters: %d of %d heads done over the first %lld samples, options %s\n", ci->heads_done,
               m->num_layers * m->num_heads, (long long)ci->samples, ci->params);
    else printf("clusters: none\n");
    printf("size:     %.1f MiB on disk", sz->file_bytes / 1048576.0);
    if (per > 0) printf("; %.0f bytes per pattern (%.2fx smaller than dense float32 N×N, %.0f bytes)", per, dense / per,
                        dense);
    printf("\n\n%-24s %9s %9s %9s\n", "task", "samples", "correct", "incorrect");
    int64_t c = 0, w = 0;
    for (size_t k = 0; k < nt; k++) {
        printf("%-24s %9lld %9lld %9lld\n", tc[k].task, (long long)(tc[k].correct + tc[k].incorrect),
               (long long)tc[k].correct, (long long)tc[k].incorrect);
        c += tc[k].correct;
        w += tc[k].incorrect;
    }
    printf("%-24s %9lld %9lld %9lld\n", "total", (long long)(c + w), (long long)c, (long long)w);
}

static int store_info(int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(&k_info, argc, argv, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    if (a.npositional != 1) {
        ap_fail(&err, AP_ERR_ARG, "store info needs exactly one STORE.h5; see --help");
        return cli_report(&err);
    }
    ap_store *s = NULL;
    ap_store_size sz;
    task_count *tc = NULL;
    size_t nt = 0;
    if (ap_store_open(a.positional[0], AP_STORE_READ, &s, &err) != AP_OK || ap_store_size_of(s, &sz, &err) != AP_OK ||
        count_tasks(s, &tc, &nt, &err) != AP_OK) {
        ap_store_close(s, NULL);
        return cli_report(&err);
    }
    if (cli_has(&a, "--json")) info_json(s, &sz, tc, nt);
    else info_text(s, &sz, tc, nt);
    free(tc);
    ap_store_close(s, NULL);
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static ap_status select_sample(ap_store *s, const cli_args *a, int64_t *i, ap_error *err) {
    const char *sample = cli_get(a, "--sample"), *scenario = cli_get(a, "--scenario");
    if (!!sample == !!scenario) return ap_fail(err, AP_ERR_ARG, "give exactly one of --sample I and --scenario ID");
    if (sample) return ap_parse_i64(sample, "--sample", i, err);
    *i = ap_store_find(s, scenario);
    if (*i < 0) return ap_fail(err, AP_ERR_ARG, "--scenario: no scenario '%s' in %s", scenario, ap_store_path(s));
    return AP_OK;
}

static ap_status export_safetensors(ap_store *s, int64_t i, int layer, int head, const float *P, const char *out,
                                    ap_error *err) {
    const ap_store_meta *m = ap_store_get_meta(s);
    int N = m->n_tokens;
    int32_t *ids = ap_malloc(sizeof *ids * (size_t)N, err);
    int64_t *ids64 = ap_malloc(sizeof *ids64 * (size_t)N, err);
    ap_store_sample r;
    ap_status st = ids && ids64 ? ap_store_read_sample(s, i, &r, ids, err) : AP_ERR_NOMEM;
    if (st == AP_OK) {
        for (int t = 0; t < N; t++) ids64[t] = ids[t];
        char si[32], sl[16], sh[16];
        snprintf(si, sizeof si, "%lld", (long long)i);
        snprintf(sl, sizeof sl, "%d", layer);
        snprintf(sh, sizeof sh, "%d", head);
        const char *meta[] = {"store", ap_store_path(s), "sample", si, "scenario", r.id, "task", r.task,
                              "layer", sl, "head", sh, NULL};
        ap_tensor_view t[2] = {{"pattern", AP_F32, 2, {N, N}, P}, {"input_ids", AP_I64, 1, {N}, ids64}};
        st = ap_st_write(out, t, 2, meta, err);
    }
    free(ids);
    free(ids64);
    return st;
}

static int store_export(int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(&k_export, argc, argv, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    if (a.npositional != 1) {
        ap_fail(&err, AP_ERR_ARG, "store export needs exactly one STORE.h5; see --help");
        return cli_report(&err);
    }
    const char *out = cli_get(&a, "--out");
    int png = ends_with(out, ".png");
    if (!png && !ends_with(out, ".safetensors")) {
        ap_fail(&err, AP_ERR_ARG, "--out %s: the name must end in .png or .safetensors", out);
        return cli_report(&err);
    }
    int64_t layer = 0, head = 0, zoom = 0, i = 0;
    if (ap_parse_i64(cli_get(&a, "--layer"), "--layer", &layer, &err) != AP_OK ||
        ap_parse_i64(cli_get(&a, "--head"), "--head", &head, &err) != AP_OK ||
        (cli_has(&a, "--zoom") && ap_parse_i64(cli_get(&a, "--zoom"), "--zoom", &zoom, &err) != AP_OK))
        return cli_report(&err);
    if (cli_has(&a, "--zoom") && (zoom < 1 || zoom > 64)) {
        ap_fail(&err, AP_ERR_ARG, "--zoom %lld: must be 1..64", (long long)zoom);
        return cli_report(&err);
    }
    if (layer < 0 || layer > 1 << 20 || head < 0 || head > 1 << 20) {
        ap_fail(&err, AP_ERR_ARG, "--layer/--head must be non-negative");
        return cli_report(&err);
    }
    ap_store *s = NULL;
    float *P = NULL;
    ap_status st = ap_store_open(a.positional[0], AP_STORE_READ, &s, &err);
    if (st == AP_OK) st = select_sample(s, &a, &i, &err);
    int N = st == AP_OK ? ap_store_get_meta(s)->n_tokens : 0;
    if (st == AP_OK && !(P = ap_malloc(sizeof *P * (size_t)N * N, &err))) st = AP_ERR_NOMEM;
    if (st == AP_OK) st = ap_store_read_pattern(s, i, (int)layer, (int)head, P, &err);
    if (st == AP_OK && png) st = ap_pattern_write_png(out, P, N, zoom ? (int)zoom : (N >= 512 ? 1 : (511 + N) / N), &err);
    if (st == AP_OK && !png) st = export_safetensors(s, i, (int)layer, (int)head, P, out, &err);
    free(P);
    ap_store_close(s, NULL);
    if (st != AP_OK) return cli_report(&err);
    ap_info("wrote %s (sample %lld, layer %lld, head %lld)", out, (long long)i, (long long)layer, (long long)head);
    return 0;
}

static int store_repair(int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(&k_repair, argc, argv, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    if (a.npositional != 1) {
        ap_fail(&err, AP_ERR_ARG, "store repair needs exactly one STORE.h5; see --help");
        return cli_report(&err);
    }
    ap_store *s = NULL;
    if (ap_store_open(a.positional[0], AP_STORE_APPEND, &s, &err) != AP_OK) return cli_report(&err);
    int64_t n = ap_store_count(s);
    if (ap_store_close(s, &err) != AP_OK) return cli_report(&err);
    printf("%s: consistent, %lld samples\n", a.positional[0], (long long)n);
    return 0;
}

static int store_embed(int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(&k_embed, argc, argv, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    if (a.npositional != 1) {
        ap_fail(&err, AP_ERR_ARG, "store embed needs exactly one STORE.h5; see --help");
        return cli_report(&err);
    }
    ap_embed_options o = {.store_path = a.positional[0], .model_dir = cli_get(&a, "--model")};
    int64_t v = 0;
    if (cli_has(&a, "--batch")) {
        if (ap_parse_i64(cli_get(&a, "--batch"), "--batch", &v, &err) != AP_OK) return cli_report(&err);
        if (v < 1 || v > 65536) {
            ap_fail(&err, AP_ERR_ARG, "--batch: %lld is out of range (1..65536)", (long long)v);
            return cli_report(&err);
        }
        o.batch = (int)v;
    }
    if (cli_has(&a, "--commit-every")) {
        if (ap_parse_i64(cli_get(&a, "--commit-every"), "--commit-every", &v, &err) != AP_OK) return cli_report(&err);
        if (v < 1 || v > 1000000) {
            ap_fail(&err, AP_ERR_ARG, "--commit-every: %lld is out of range", (long long)v);
            return cli_report(&err);
        }
        o.commit_every = (int)v;
    }
    const char *compat = cli_get(&a, "--compat");
    if (compat && strcmp(compat, "reference") != 0 && strcmp(compat, "default") != 0) {
        ap_fail(&err, AP_ERR_ARG, "--compat: '%s' is not 'default' or 'reference'", compat);
        return cli_report(&err);
    }
    o.compat_reference = compat && strcmp(compat, "reference") == 0;
    ap_embed_report rep;
    return ap_embed_store(&o, &rep, &err) != AP_OK ? cli_report(&err) : 0;
}

static int store_merge(int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(&k_merge, argc, argv, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    if (a.npositional < 1) {
        ap_fail(&err, AP_ERR_ARG, "store merge needs the shards to merge; see --help");
        return cli_report(&err);
    }
    int64_t n = 0;
    const char *out = cli_get(&a, "--out");
    if (ap_extract_merge(out, a.positional, (size_t)a.npositional, &n, &err) != AP_OK) return cli_report(&err);
    ap_info("merged %d shards into %s: %lld samples", a.npositional, out, (long long)n);
    return 0;
}

int cmd_store(int argc, char **argv) {
    if (argc >= 1 && strcmp(argv[0], "info") == 0) return store_info(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "embed") == 0) return store_embed(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "merge") == 0) return store_merge(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "repair") == 0) return store_repair(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "export") == 0) return store_export(argc - 1, argv + 1);
    FILE *o = argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) ? stdout : stderr;
    fprintf(o, "usage: apmae store info|export|repair|embed|merge ...  (apmae store info --help, ...)\n\n"
               "  info    samples per task and correctness, model, dtype, size and bytes per pattern, embeddings\n"
               "  export  one pattern as a PNG or as safetensors\n"
               "  repair  roll back what a killed writer left uncommitted (for h5py readers)\n"
               "  embed   encode every pattern with an AP-MAE into /embeddings (resumable)\n"
               "  merge   merge the shards of a sharded extraction into one store\n");
    return o == stdout ? 0 : 2;
}
