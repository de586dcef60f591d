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
    {"--json", CLI_SWITCH, NULL, "print one JSON object instead of text"},
    {0},
};

static const cli_flag k_export_flags[] = {
    {"--sample", CLI_INT, "I", "sample index (0-based)", .range = "0.."},
    {"--scenario", CLI_STRING, "ID", "select the sample by scenario id instead of --sample"},
    {"--layer", CLI_INT, "L", "layer (0-based)", .range = "0..1048576", .required = 1},
    {"--head", CLI_INT, "H", "head (0-based)", .range = "0..1048576", .required = 1},
    {"--out", CLI_PATH, "FILE", "x.png (viridis, log scale) or x.safetensors (pattern F32 [N,N], input_ids I64 [N])",
     .required = 1},
    {"--zoom", CLI_INT, "Z", "PNG pixels per entry", .range = "1..64",
     .def_note = "enough for a ~512 px image"},
    {0},
};

static const cli_flag k_embed_flags[] = {
    {"--model", CLI_PATH, "MAE_DIR", "AP-MAE checkpoint (config.json, model.safetensors); its max_length must be the "
                                     "store's N", .required = 1},
    {"--batch", CLI_INT, "B", "patterns per AP-MAE batch", .range = "1..65536", .def_note = "64"},
    {"--compat", CLI_CHOICE, NULL, "reference: the published code's encoding (docs/mae.md)",
     .choices = "default|reference", .def = "default"},
    {"--commit-every", CLI_INT, "K", "commit at least every K samples, and every 2 s", .range = "1..1000000",
     .def_note = "64"},
    {0},
};

static const cli_flag k_merge_flags[] = {
    {"--out", CLI_PATH, "STORE.h5", "the merged store to create", .required = 1},
    {0},
};

static const cli_flag k_no_flags[] = {{0}};

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

static ap_status run_info(const cli_args *a, ap_error *err) {
    ap_store *s = NULL;
    ap_store_size sz;
    task_count *tc = NULL;
    size_t nt = 0;
    ap_status st = ap_store_open(a->positional[0], AP_STORE_READ, &s, err);
    if (!st) st = ap_store_size_of(s, &sz, err);
    if (!st) st = count_tasks(s, &tc, &nt, err);
    if (!st && cli_switch(a, "--json")) info_json(s, &sz, tc, nt);
    else if (!st) info_text(s, &sz, tc, nt);
    free(tc);
    ap_store_close(s, NULL);
    return st;
}

static ap_status select_sample(ap_store *s, const cli_args *a, int64_t *i, ap_error *err) {
    const char *scenario = cli_str(a, "--scenario");
    if (cli_has(a, "--sample") == !!scenario)
        return ap_fail(err, AP_ERR_ARG, "give exactly one of --sample I and --scenario ID");
    *i = cli_int(a, "--sample");
    if (!scenario) return AP_OK;
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

static ap_status run_export(const cli_args *a, ap_error *err) {
    const char *out = cli_str(a, "--out");
    int png = ap_path_has_suffix(out, ".png");
    if (!png && !ap_path_has_suffix(out, ".safetensors"))
        return ap_fail(err, AP_ERR_ARG, "--out %s: the name must end in .png or .safetensors", out);
    int layer = (int)cli_int(a, "--layer"), head = (int)cli_int(a, "--head"), zoom = (int)cli_int(a, "--zoom");
    int64_t i = 0;
    ap_store *s = NULL;
    float *P = NULL;
    ap_status st = ap_store_open(a->positional[0], AP_STORE_READ, &s, err);
    if (st == AP_OK) st = select_sample(s, a, &i, err);
    int N = st == AP_OK ? ap_store_get_meta(s)->n_tokens : 0;
    if (st == AP_OK && !(P = ap_malloc(sizeof *P * (size_t)N * N, err))) st = AP_ERR_NOMEM;
    if (st == AP_OK) st = ap_store_read_pattern(s, i, layer, head, P, err);
    if (st == AP_OK && png) st = ap_pattern_write_png(out, P, N, zoom ? zoom : (N >= 512 ? 1 : (511 + N) / N), err);
    if (st == AP_OK && !png) st = export_safetensors(s, i, layer, head, P, out, err);
    free(P);
    ap_store_close(s, NULL);
    if (st == AP_OK) ap_info("wrote %s (sample %lld, layer %d, head %d)", out, (long long)i, layer, head);
    return st;
}

static ap_status run_repair(const cli_args *a, ap_error *err) {
    ap_store *s = NULL;
    ap_status st = ap_store_open(a->positional[0], AP_STORE_APPEND, &s, err);
    if (st) return st;
    int64_t n = ap_store_count(s);
    if ((st = ap_store_close(s, err))) return st;
    printf("%s: consistent, %lld samples\n", a->positional[0], (long long)n);
    return AP_OK;
}

static ap_status run_embed(const cli_args *a, ap_error *err) {
    ap_embed_options o = {.store_path = a->positional[0],
                          .model_dir = cli_str(a, "--model"),
                          .batch = (int)cli_int(a, "--batch"),
                          .commit_every = (int)cli_int(a, "--commit-every"),
                          .compat_reference = cli_choice(a, "--compat") == 1};
    ap_embed_report rep;
    return ap_embed_store(&o, &rep, err);
}

static ap_status run_merge(const cli_args *a, ap_error *err) {
    int64_t n = 0;
    const char *out = cli_str(a, "--out");
    ap_status st = ap_extract_merge(out, a->positional, (size_t)a->npositional, &n, err);
    if (st == AP_OK) ap_info("merged %d shards into %s: %lld samples", a->npositional, out, (long long)n);
    return st;
}

static const cli_spec k_info = {
    .name = "store info",
    .summary = "samples per task and correctness, model, dtype, size and bytes per pattern, embeddings",
    .description =
        "Summarise a pattern store: samples per task and correctness, the model, the pattern dtype, the size on\n"
        "disk and the bytes per stored pattern against dense float32 N×N, whether it keeps patterns and/or\n"
        "AP-MAE embeddings, the AP-MAE that made them, and how far its clustering run (apmae cluster) got.",
    .docs = "docs/store.md",
    .flags = k_info_flags,
    .args = "STORE.h5",
    .args_help = "the pattern store",
    .nargs = 1,
    .run = run_info,
};

static const cli_spec k_export = {
    .name = "store export",
    .summary = "one pattern as a PNG or as safetensors",
    .usage = "apmae store export STORE.h5 (--sample I | --scenario ID) --layer L --head H --out x.png|x.safetensors",
    .description =
        "Export one attention pattern: as a PNG (lower triangle log-scaled like the AP-MAE scaler, viridis colour\n"
        "map, upper triangle white) or as safetensors with tensors 'pattern' F32 [N,N] and 'input_ids' I64 [N].",
    .docs = "docs/store.md",
    .flags = k_export_flags,
    .args = "STORE.h5",
    .args_help = "the pattern store",
    .nargs = 1,
    .run = run_export,
};

static const cli_spec k_repair = {
    .name = "store repair",
    .summary = "roll back what a killed writer left uncommitted (for h5py readers)",
    .description =
        "Roll a store back to its last commit when its writer was killed (STORE.h5-journal is then left\n"
        "non-empty), so that tools other than apmae (h5py, h5dump) can read it. apmae itself reads such a store\n"
        "as of its last commit without repairing, and its next writer repairs it anyway.",
    .docs = "docs/store.md",
    .flags = k_no_flags,
    .args = "STORE.h5",
    .args_help = "the pattern store",
    .nargs = 1,
    .run = run_repair,
};

static const cli_spec k_embed = {
    .name = "store embed",
    .summary = "encode every pattern with an AP-MAE into /embeddings (resumable)",
    .description =
        "Encode every pattern of the store with the AP-MAE (its scaler, then the encoder: the cls slot and the\n"
        "mean of the slots) into /embeddings/cls and /embeddings/mean [S, L, H, D]. Killed at any moment, the\n"
        "same command continues after its last commit; on a store whose samples all have embeddings of this\n"
        "AP-MAE it does nothing and says so. A store holds the embeddings of one AP-MAE only.",
    .docs = "docs/store.md",
    .flags = k_embed_flags,
    .args = "STORE.h5",
    .args_help = "the pattern store",
    .nargs = 1,
    .run = run_embed,
};

static const cli_spec k_merge = {
    .name = "store merge",
    .summary = "merge the shards of a sharded extraction into one store",
    .description =
        "Merge the shards of one sharded extraction (apmae extract --shard K/R, every K of R given once, each\n"
        "complete) into one store, sample by sample in scenario order: the store one process would have\n"
        "written (under --balance per-task:K only approximately). The shards must share model, N, dtype,\n"
        "options and embeddings; an error names the shard that does not.",
    .docs = "docs/store.md",
    .flags = k_merge_flags,
    .args = "SHARD.h5...",
    .args_help = "the shards to merge",
    .nargs = -1,
    .run = run_merge,
};

int cmd_store(int argc, char **argv) {
    static const cli_spec *const subs[] = {&k_info, &k_export, &k_repair, &k_embed, &k_merge};
    return cli_run_group("store", subs, sizeof subs / sizeof *subs, argc, argv);
}
