/* The stages of the study (docs/study.md), each through the library part
 * that does the work: mining, extraction (with the LM's accuracy over every
 * mined scenario), AP-MAE training and evaluation, encoding, clustering,
 * classification, interventions, the report. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apmae/classify.h"
#include "apmae/cluster.h"
#include "apmae/extract.h"
#include "apmae/intervene.h"
#include "apmae/lm_train.h"
#include "apmae/mae_train.h"
#include "apmae/mine.h"
#include "apmae/report.h"
#include "apmae/store.h"
#include "apmae/text.h"
#include "internal.h"

#define SCENARIO_STATS "scenarios.stats.json"
#define LM_EVAL_BATCH 16

static void add_int(cJSON *o, const char *key, int64_t v) { cJSON_AddNumberToObject(o, key, (double)v); }
static void add_str(cJSON *o, const char *key, const char *v) {
    if (v) cJSON_AddStringToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

/* Every field of a config section (each identifies the stage's run), as
 * the config file spells it. */
static ap_status add_section(const ap_study_config *cfg, const char *section, cJSON *o, ap_error *err) {
    cJSON *all = ap_study_config_to_json(cfg);
    cJSON *fields = cJSON_DetachItemFromObjectCaseSensitive(all, section);
    cJSON_Delete(all);
    if (!fields) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    while (fields->child) {
        cJSON *f = fields->child;
        cJSON_DetachItemViaPointer(fields, f);
        cJSON_AddItemToObject(o, f->string, f);
    }
    cJSON_Delete(fields);
    return AP_OK;
}

/* Paths of the study directory and of the model's tokenizer, freed together. */
typedef struct paths {
    char *scenarios, *stats, *lm_eval, *store, *cross, *mae, *mae_eval, *tokenizer;
} paths;

static void paths_free(paths *p) {
    free(p->scenarios), free(p->stats), free(p->lm_eval), free(p->store), free(p->cross);
    free(p->mae), free(p->mae_eval), free(p->tokenizer);
}

static ap_status paths_init(const study_ctx *c, paths *p, ap_error *err) {
    memset(p, 0, sizeof *p);
    p->scenarios = study_path(c, AP_STUDY_SCENARIOS, err);
    p->stats = study_path(c, SCENARIO_STATS, err);
    p->lm_eval = study_path(c, AP_STUDY_LM_EVAL, err);
    p->store = study_path(c, AP_STUDY_STORE, err);
    p->cross = study_path(c, AP_STUDY_CROSS_STORE, err);
    p->mae = study_path(c, AP_STUDY_MAE_DIR, err);
    p->mae_eval = study_path(c, AP_STUDY_MAE_EVAL_DIR, err);
    p->tokenizer = ap_path_join(c->cfg->model, "tokenizer.json", err);
    if (p->scenarios && p->stats && p->lm_eval && p->store && p->cross && p->mae && p->mae_eval && p->tokenizer)
        return AP_OK;
    paths_free(p);
    return AP_ERR_NOMEM;
}

/* paths_init in a stage every rank runs: all ranks go on to the stage's
 * collective calls, or none does. */
static ap_status paths_init_agreed(const study_ctx *c, paths *p, ap_error *err) {
    ap_status own = paths_init(c, p, err), st = ap_parallel_agree(c->parallel, own, err);
    if (st && !own) paths_free(p);
    return st;
}

/* The AP-MAE shipped beside the model: MODEL-apmae (models/java-small-apmae
 * for models/java-small), malloc'ed. */
static char *shipped_encoder(const char *model, ap_error *err) {
    size_t n = strlen(model);
    while (n > 1 && model[n - 1] == '/') n--;
    char *dir = ap_malloc(n + sizeof "-apmae", err);
    if (dir) snprintf(dir, n + sizeof "-apmae", "%.*s-apmae", (int)n, model);
    return dir;
}

/* mae.encoder resolved (docs/study.md): NULL for the AP-MAE that mae-train
 * trains, else the checkpoint directory (malloc'ed in *dir). "auto" is the
 * shipped one when the checkout has it. */
static ap_status encoder_dir(const ap_study_config *cfg, char **dir, ap_error *err) {
    *dir = NULL;
    if (strcmp(cfg->mae.encoder, "trained") == 0) return AP_OK;
    if (strcmp(cfg->mae.encoder, "auto") != 0) return (*dir = ap_strdup(cfg->mae.encoder, err)) ? AP_OK : AP_ERR_NOMEM;
    if (!(*dir = shipped_encoder(cfg->model, err))) return AP_ERR_NOMEM;
    if (!ap_path_exists(*dir)) free(*dir), *dir = NULL;
    return AP_OK;
}

static int encoder_is_trained(const ap_study_config *cfg) {
    char *dir = NULL;
    encoder_dir(cfg, &dir, NULL);
    int trained = dir == NULL;
    free(dir);
    return trained;
}

/* ---- mine ---------------------------------------------------------------------------------------- */

static unsigned mine_deps(const ap_study_config *cfg) { return 0; }

static ap_status mine_options(const ap_study_config *cfg, ap_mine_options *opt, ap_error *err) {
    memset(opt, 0, sizeof *opt);
    ap_status st = ap_task_parse_list(cfg->mine.tasks, opt->tasks, err);
    if (st) {
        ap_error_prefix(err, "mine.tasks");
        return st;
    }
    opt->per_task = cfg->mine.per_task;
    opt->max_length = (size_t)cfg->mine.max_length;
    opt->seed = (uint64_t)cfg->mine.seed;
    opt->compat = strcmp(cfg->mine.compat, "reference") == 0 ? AP_COMPAT_REFERENCE : AP_COMPAT_DEFAULT;
    opt->corpus.include = cfg->mine.include;
    opt->corpus.exclude = cfg->mine.exclude;
    return AP_OK;
}

static ap_status mine_describe(const study_ctx *c, cJSON *o, ap_error *err) {
    const ap_study_config *cfg = c->cfg;
    ap_mine_options opt;
    char *tok = ap_path_join(cfg->model, "tokenizer.json", err);
    ap_status st = tok ? mine_options(cfg, &opt, err) : AP_ERR_NOMEM;
    if (!st) st = study_identify(o, "tokenizer", tok, "model", err);
    if (!st) st = study_identify(o, "corpus", cfg->mine.corpus, "mine.corpus", err);
    free(tok);
    add_str(o, "include", cfg->mine.include);
    add_str(o, "exclude", cfg->mine.exclude);
    add_str(o, "tasks", cfg->mine.tasks);
    add_int(o, "per_task", cfg->mine.per_task);
    add_int(o, "max_length", cfg->mine.max_length);
    add_int(o, "seed", cfg->mine.seed);
    add_str(o, "compat", cfg->mine.compat);
    return st;
}

static ap_status mine_run(const study_ctx *c, int fresh, char summary[256], ap_error *err) {
    paths p;
    ap_status st = paths_init(c, &p, err);
    if (st) return st;
    ap_mine_options opt;
    ap_tokenizer *tok = NULL;
    ap_mine_vocab vocab = {0};
    ap_scenario_set set = {0};
    ap_mine_stats stats;
    ap_buf jsonl = {0}, js = {0};
    st = mine_options(c->cfg, &opt, err);
    opt.progress = c->progress;
    if (!st) st = ap_tokenizer_load(p.tokenizer, &tok, err);
    if (!st) st = ap_mine_vocab_init(&vocab, tok, p.tokenizer, err);
    if (!st) st = ap_mine(c->cfg->mine.corpus, &vocab, &opt, &set, &stats, err);
    if (!st) st = ap_scenarios_to_jsonl(&set, &jsonl, err);
    if (!st) st = ap_mine_stats_to_json(&stats, &opt, c->cfg->mine.corpus, p.tokenizer, &js, err);
    if (!st && set.n == 0)
        st = ap_fail(err, AP_ERR_ARG, "%s gave no scenarios (mine.include '%s' selects %lld files)",
                     c->cfg->mine.corpus, c->cfg->mine.include ? c->cfg->mine.include : "", (long long)stats.corpus.files);
    if (!st) st = ap_write_file_atomic(p.scenarios, jsonl.data, jsonl.len, err);
    if (!st) st = ap_write_file_atomic(p.stats, js.data, js.len, err);
    if (!st) {
        int tasks = 0, short_of = 0;
        for (int t = 0; t < AP_TASK_COUNT; t++) {
            tasks += opt.tasks[t];
            short_of += opt.tasks[t] && stats.task[t].scenarios < opt.per_task;
        }
        snprintf(summary, 256, "%zu scenarios of %d tasks from %lld files%s", set.n, tasks,
                 (long long)stats.corpus.files, short_of ? " (some tasks short of their quota)" : "");
    }
    ap_buf_free(&jsonl);
    ap_buf_free(&js);
    ap_scenario_set_free(&set);
    ap_mine_vocab_free(&vocab);
    ap_tokenizer_free(tok);
    paths_free(&p);
    return st;
}

/* ---- extract ------------------------------------------------------------------------------------- */

static unsigned extract_deps(const ap_study_config *cfg) { return STAGE_BIT(AP_STAGE_MINE); }

static ap_dtype dtype_of(const char *name) {
    return strcmp(name, "f32") == 0 ? AP_F32 : strcmp(name, "f16") == 0 ? AP_F16 : AP_BF16;
}

static ap_status extract_describe(const study_ctx *c, cJSON *o, ap_error *err) {
    add_int(o, "samples_per_task", c->cfg->extract.samples_per_task);
    add_str(o, "dtype", c->cfg->extract.dtype);
    if (c->cfg->extract.samples_per_task == 1)
        return ap_fail(err, AP_ERR_ARG, "extract.samples_per_task must be 0 (keep all) or at least 2");
    return study_identify(o, "model", c->cfg->model, "model", err);
}

/* The shards (name.shard-K-of-R in the study directory) of an extraction
 * under ranks that was killed before its merge. */
static ap_status remove_shards(const study_ctx *c, const char *name, ap_error *err) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.shard-", name);
    DIR *d = opendir(c->dir);
    if (!d) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot list", c->dir);
    ap_status st = AP_OK;
    for (struct dirent *e; !st && (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        char *path = study_path(c, e->d_name, err);
        if (!path) st = AP_ERR_NOMEM;
        else if (unlink(path) != 0) st = ap_fail_errno(err, AP_ERR_IO, "%s: cannot remove", path);
        free(path);
    }
    closedir(d);
    return st;
}

/* Extraction of the scenarios through one LM into the store DIR/name,
 * shared over the ranks (collective): a shard each, merged by rank 0.
 * Starting over drops the shards of a killed run too (other options, or
 * another number of ranks). */
static ap_status extract_into(const study_ctx *c, const char *model, const char *scenarios, const char *name,
                              int fresh, ap_error *err) {
    char *store = study_path(c, name, err);
    ap_status st = store ? AP_OK : AP_ERR_NOMEM;
    if (!st && fresh && study_rank0(c)) st = remove_shards(c, name, err);
    if ((st = ap_parallel_agree(c->parallel, st, err))) {
        free(store);
        return st;
    }
    ap_extract_report rep;
    ap_extract_options o = {.model_dir = model,
                            .scenarios_path = scenarios,
                            .store_path = store,
                            .balance = c->cfg->extract.samples_per_task > 0 ? AP_BALANCE_PER_TASK : AP_BALANCE_NONE,
                            .per_task = c->cfg->extract.samples_per_task,
                            .dtype = dtype_of(c->cfg->extract.dtype),
                            .commit_every = (int)c->cfg->extract.commit_every};
    st = ap_extract_run_ranks(&o, c->parallel, &rep, err);
    free(store);
    return st;
}

/* The LM's first-token accuracy over every mined scenario: what the report
 * shows, since a balanced store holds chosen shares of each. */
static ap_status lm_accuracy(const study_ctx *c, const paths *p, int fresh, ap_error *err) {
    if (!fresh && ap_path_exists(p->lm_eval)) return AP_OK;
    ap_lm_eval_options o = {.model = c->cfg->model, .scenarios = p->scenarios, .batch = LM_EVAL_BATCH,
                            .progress = c->progress};
    ap_buf out = {0};
    ap_status st = ap_lm_eval(&o, &out, err);
    if (!st) st = ap_write_file_atomic(p->lm_eval, out.data, out.len, err);
    ap_buf_free(&out);
    return st;
}

static ap_status count_correct(const char *store, int64_t *n, int64_t *correct, ap_error *err) {
    ap_store *s;
    ap_status st = ap_store_open(store, AP_STORE_READ, &s, err);
    if (st) return st;
    int64_t *idx = NULL;
    size_t k = 0;
    st = ap_store_filter(s, NULL, 1, &idx, &k, err);
    *n = ap_store_count(s);
    *correct = (int64_t)k;
    free(idx);
    ap_store_close(s, NULL);
    return st;
}

/* Every rank extracts; rank 0 then scores the LM and counts the merged store. */
static ap_status extract_run(const study_ctx *c, int fresh, char summary[256], ap_error *err) {
    paths p;
    ap_status st = paths_init_agreed(c, &p, err);
    if (st) return st;
    cJSON *eval = NULL;
    int64_t n = 0, correct = 0;
    st = extract_into(c, c->cfg->model, p.scenarios, AP_STUDY_STORE, fresh, err);
    if (!st && !study_rank0(c)) {
        paths_free(&p);
        return AP_OK;
    }
    if (!st) st = lm_accuracy(c, &p, fresh, err);
    if (!st) st = count_correct(p.store, &n, &correct, err);
    if (!st) st = ap_json_load(p.lm_eval, &eval, err);
    if (!st) {
        const cJSON *all = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(eval, "scenarios"),
                                                             "overall");
        double acc = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(all, "accuracy"));
        double scored = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(all, "n"));
        snprintf(summary, 256, "%lld samples in the store (%lld correct); LM accuracy %.1f%% of %.0f labelled scenarios",
                 (long long)n, (long long)correct, 100 * acc, scored);
    }
    cJSON_Delete(eval);
    paths_free(&p);
    return st;
}

/* ---- mae-train ----------------------------------------------------------------------------------- */

static unsigned mae_train_deps(const ap_study_config *cfg) { return STAGE_BIT(AP_STAGE_EXTRACT); }

static ap_status mae_train_describe(const study_ctx *c, cJSON *o, ap_error *err) {
    const ap_study_config *cfg = c->cfg;
    ap_status st = AP_OK;
    if (ap_path_exists(cfg->mae.config)) st = study_identify(o, "config", cfg->mae.config, "mae.config", err);
    else add_str(o, "config", cfg->mae.config);
    add_int(o, "steps", cfg->mae.steps);
    add_int(o, "batch", cfg->mae.batch);
    add_str(o, "heads", cfg->mae.heads);
    cJSON_AddNumberToObject(o, "holdout", cfg->mae.holdout);
    add_int(o, "seed", cfg->mae.seed);
    return st;
}

/* Data parallel over the ranks (collective); rank 0 writes DIR/mae. */
static ap_status mae_train_run(const study_ctx *c, int fresh, char summary[256], ap_error *err) {
    paths p;
    ap_status st = paths_init_agreed(c, &p, err);
    if (st) return st;
    const ap_study_config *cfg = c->cfg;
    ap_mae_train_options o;
    ap_mae_train_options_default(&o);
    o.store = p.store;
    o.config = cfg->mae.config;
    o.out = p.mae;
    o.batch = (int)cfg->mae.batch;
    o.steps = cfg->mae.steps;
    o.heads = cfg->mae.heads;
    o.holdout = cfg->mae.holdout;
    o.seed = (uint64_t)cfg->mae.seed;
    o.progress = c->progress;
    o.parallel = c->parallel;
    char *state = ap_path_join(p.mae, AP_MAE_TRAIN_STATE, err);
    if (!state) st = AP_ERR_NOMEM;
    o.resume = !fresh && state && ap_path_exists(state);
    /* every rank decided before rank 0 removes anything, and each the same */
    st = ap_parallel_agree(c->parallel, st, err);
    if (!st) st = ap_parallel_check_same(c->parallel, (uint64_t)o.resume, "view of " AP_STUDY_MAE_DIR "/"
                                         AP_MAE_TRAIN_STATE " (is the study directory shared by every rank?)", err);
    /* killed before its first checkpoint: nothing to continue */
    if (!st && !o.resume && study_rank0(c)) st = ap_remove_tree(p.mae, err);
    st = ap_parallel_agree(c->parallel, st, err);
    ap_mae_train_result r;
    if (!st) st = ap_mae_train(&o, &r, err);
    if (!st)
        snprintf(summary, 256, "%lld steps of %lld patterns (%lld training, %lld held-out samples); held-out loss %.4f",
                 (long long)r.step, (long long)cfg->mae.batch, (long long)r.train_samples,
                 (long long)r.heldout_samples, r.heldout_loss);
    free(state);
    paths_free(&p);
    return st;
}

/* ---- mae-eval ------------------------------------------------------------------------------------ */

static unsigned mae_eval_deps(const ap_study_config *cfg) {
    return STAGE_BIT(AP_STAGE_MINE) | STAGE_BIT(AP_STAGE_EXTRACT) | STAGE_BIT(AP_STAGE_MAE_TRAIN);
}

static ap_status mae_eval_describe(const study_ctx *c, cJSON *o, ap_error *err) {
    const ap_study_config *cfg = c->cfg;
    add_int(o, "figures", cfg->mae.figures);
    add_int(o, "eval_patterns", cfg->mae.eval_patterns);
    add_int(o, "seed", cfg->mae.seed);
    if (!cfg->cross_model) {
        cJSON_AddNullToObject(o, "cross_model");
        return AP_OK;
    }
    /* the second LM's store is extracted like the first */
    add_int(o, "samples_per_task", cfg->extract.samples_per_task);
    add_str(o, "dtype", cfg->extract.dtype);
    return study_identify(o, "cross_model", cfg->cross_model, "cross_model", err);
}

static double num(const cJSON *o, const char *key) {
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* Every rank extracts the cross-model store (when there is one); rank 0
 * evaluates. */
static ap_status mae_eval_run(const study_ctx *c, int fresh, char summary[256], ap_error *err) {
    paths p;
    ap_status st = paths_init_agreed(c, &p, err);
    if (st) return st;
    const ap_study_config *cfg = c->cfg;
    if (cfg->cross_model) st = extract_into(c, cfg->cross_model, p.scenarios, AP_STUDY_CROSS_STORE, fresh, err);
    if (st || !study_rank0(c)) {
        paths_free(&p);
        return st;
    }
    ap_mae_eval_options o = {.model = p.mae,
                             .store = p.store,
                             .out = p.mae_eval,
                             .by_task = 1,
                             .by_layer = 1,
                             .by_head = 1,
                             .figures = (int)cfg->mae.figures,
                             .split = AP_MAE_SPLIT_HELDOUT,
                             .max_patterns = cfg->mae.eval_patterns,
                             .seed = (uint64_t)cfg->mae.seed,
                             .compat = -1,
                             .progress = c->progress};
    cJSON *own = NULL, *cross = NULL;
    char *cross_json = ap_path_join(p.mae_eval, "cross.json", err);
    if (!cross_json) st = AP_ERR_NOMEM;
    if (!st) st = ap_mae_eval(&o, &own, err);
    int n = snprintf(summary, 256, "held-out MSE %.4f, %.3f of the mean-patch baseline (%.0f patterns)",
                     own ? num(own, "mse") : NAN, own ? num(own, "ratio") : NAN, own ? num(own, "patterns") : 0.0);
    if (!st && cfg->cross_model) {
        ap_mae_eval_options x = o;
        x.store = p.cross;
        x.seen_store = p.store;
        x.out = NULL;
        x.figures = 0;
        x.by_task = x.by_head = 0;
        x.split = AP_MAE_SPLIT_ALL;
        if (!st) st = ap_mae_eval(&x, &cross, err);
        if (!st) st = ap_json_save(cross_json, cross, err);
        if (!st) snprintf(summary + n, (size_t)(256 - n), "; cross-model ratio %.2f", num(cross, "cross_model_ratio"));
    }
    cJSON_Delete(own);
    cJSON_Delete(cross);
    free(cross_json);
    paths_free(&p);
    return st;
}

/* ---- embed --------------------------------------------------------------------------------------- */

static unsigned embed_deps(const ap_study_config *cfg) {
    return STAGE_BIT(AP_STAGE_EXTRACT) | (encoder_is_trained(cfg) ? STAGE_BIT(AP_STAGE_MAE_TRAIN) : 0);
}

static ap_status embed_describe(const study_ctx *c, cJSON *o, ap_error *err) {
    char *dir;
    ap_status st = encoder_dir(c->cfg, &dir, err);
    if (!st && !dir) add_str(o, "encoder", "trained");
    else if (!st) st = study_identify(o, "encoder", dir, "mae.encoder", err);
    free(dir);
    return st;
}

/* A store holds one AP-MAE's embeddings: starting over drops them. */
static ap_status drop_embeddings(const char *store, ap_error *err) {
    ap_store *s;
    ap_status st = ap_store_open(store, AP_STORE_APPEND, &s, err);
    if (!st) st = ap_store_embed_drop(s, err);
    ap_status cst = ap_store_close(s, st ? NULL : err);
    return st ? st : cst;
}

static ap_status embed_run(const study_ctx *c, int fresh, char summary[256], ap_error *err) {
    paths p;
    ap_status st = paths_init(c, &p, err);
    if (st) return st;
    char *dir;
    if ((st = encoder_dir(c->cfg, &dir, err))) {
        paths_free(&p);
        return st;
    }
    ap_embed_options o = {.store_path = p.store, .model_dir = dir ? dir : p.mae};
    ap_embed_report rep;
    if (fresh) st = drop_embeddings(p.store, err);
    if (!st) st = ap_embed_store(&o, &rep, err);
    if (!st)
        snprintf(summary, 256, "%lld samples encoded with %s", (long long)rep.samples,
                 dir ? dir : "the AP-MAE trained here");
    free(dir);
    paths_free(&p);
    return st;
}

/* ---- cluster ------------------------------------------------------------------------------------- */

static unsigned cluster_deps(const ap_study_config *cfg) {
    return STAGE_BIT(AP_STAGE_EXTRACT) | STAGE_BIT(AP_STAGE_EMBED);
}

static ap_status cluster_describe(const study_ctx *c, cJSON *o, ap_error *err) {
    return add_section(c->cfg, "cluster", o, err);
}

/* The ids of <fim_prefix>, <fim_suffix>, <fim_middle> in the model's
 * tokenizer (-1 where it has none): the kinds of clusters measure the
 * attention on them. */
static ap_status fim_ids(const char *tokenizer, int32_t ids[3], ap_error *err) {
    ap_tokenizer *tok;
    ap_status st = ap_tokenizer_load(tokenizer, &tok, err);
    if (st) return st;
    static const char *const names[3] = {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"};
    for (int k = 0; k < 3; k++) ids[k] = ap_tokenizer_token_id(tok, names[k]);
    ap_tokenizer_free(tok);
    return AP_OK;
}

/* The same options on the same store continue a clustering run: starting
 * over drops it first. */
static ap_status drop_clusters(const char *store, ap_error *err) {
    ap_store *s;
    ap_status st = ap_store_open(store, AP_STORE_APPEND, &s, err);
    if (!st) st = ap_store_clusters_drop(s, err);
    ap_status cst = ap_store_close(s, st ? NULL : err);
    return st ? st : cst;
}

/* Clusters per head (range and mean) and the share of noise labels. */
static ap_status cluster_summary(const char *store, char summary[256], ap_error *err) {
    ap_store *s;
    ap_status st = ap_store_open(store, AP_STORE_READ, &s, err);
    if (st) return st;
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    const ap_store_meta *m = ap_store_get_meta(s);
    int heads = m->num_layers * m->num_heads, lo = INT32_MAX, hi = 0;
    double k = 0, noise = 0;
    for (int i = 0; ci && i < heads; i++) {
        int n = ci->n_clusters[i];
        lo = n < lo ? n : lo, hi = n > hi ? n : hi;
        k += n, noise += ci->noise_fraction[i];
    }
    if (!ci || ci->heads_done != heads)
        st = ap_fail(err, AP_ERR_IO, "%s: the clustering ended with %d of %d heads done", store, ci ? ci->heads_done : 0,
                     heads);
    else
        snprintf(summary, 256, "%d heads over %lld samples: %d to %d clusters per head (mean %.1f), %.1f%% noise",
                 heads, (long long)ci->samples, lo, hi, k / heads, 100 * noise / heads);
    ap_store_close(s, NULL);
    return st;
}

static ap_status cluster_run(const study_ctx *c, int fresh, char summary[256], ap_error *err) {
    paths p;
    ap_status st = paths_init(c, &p, err);
    if (st) return st;
    const ap_study_config *cfg = c->cfg;
    ap_cluster_store_options o;
    ap_cluster_store_options_default(&o);
    o.store_path = p.store;
    o.use_mean = strcmp(cfg->cluster.embedding, "mean") == 0;
    o.params.umap.n_components = (int)cfg->cluster.umap_components;
    o.params.umap.n_neighbors = (int)cfg->cluster.umap_neighbors;
    o.params.umap.min_dist = cfg->cluster.umap_min_dist;
    o.params.umap.seed = (uint64_t)cfg->cluster.seed;
    o.params.hdbscan.min_samples = (int)cfg->cluster.min_samples;
    o.params.hdbscan.min_cluster_size = (int)cfg->cluster.min_cluster_size;
    st = ap_metric_parse(cfg->cluster.metric, &o.params.umap.metric, err);
    if (!st) st = fim_ids(p.tokenizer, o.fim_ids, err);
    if (!st && fresh) st = drop_clusters(p.store, err);
    ap_cluster_store_report rep;
    if (!st) st = ap_cluster_store(&o, &rep, err);
    if (!st) st = cluster_summary(p.store, summary, err);
    paths_free(&p);
    return st;
}

/* ---- classify ------------------------------------------------------------------------------------ */

static unsigned classify_deps(const ap_study_config *cfg) {
    return STAGE_BIT(AP_STAGE_EXTRACT) | STAGE_BIT(AP_STAGE_CLUSTER);
}

static ap_status classify_describe(const study_ctx *c, cJSON *o, ap_error *err) {
    return add_section(c->cfg, "classify", o, err);
}

/* The pooled run's accuracy beside its baselines, from results.json: the
 * cross-validation's when there is one (the test split is small). */
static void classify_summary(const char *results, char summary[256]) {
    cJSON *r = NULL;
    if (ap_json_load(results, &r, NULL)) return;
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "tasks"), "all");
    const cJSON *cv = cJSON_GetObjectItemCaseSensitive(all, "cv");
    if (!cJSON_IsObject(cv)) cv = NULL; /* null without cross-validation (classify.folds 0) */
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(cv ? cv : all, "baselines");
    const char *skipped = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(all, "skipped"));
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(base, "confidence");
    if (skipped) snprintf(summary, 256, "all tasks pooled: skipped (%s)", skipped);
    else
        snprintf(summary, 256, "all tasks pooled: %s accuracy %.1f%% (majority %.1f%%, LM confidence %.1f%%)",
                 cv ? "cross-validated" : "test", 100 * num(cv ? cv : all, cv ? "mean" : "accuracy"),
                 100 * num(base, "majority"), 100 * (cJSON_IsNumber(conf) ? conf->valuedouble : num(conf, "accuracy")));
    cJSON_Delete(r);
}

static ap_status classify_run(const study_ctx *c, int fresh, char summary[256], ap_error *err) {
    paths p;
    ap_status st = paths_init(c, &p, err);
    if (st) return st;
    const ap_study_config *cfg = c->cfg;
    char *dir = study_path(c, AP_STUDY_CLASSIFY_DIR, err), *results = dir ? ap_path_join(dir, "results.json", err) : NULL;
    ap_classify_opts o = {.store = p.store, .out_dir = dir, .tasks = cfg->classify.tasks};
    ap_classify_params_default(&o.params);
    o.params.seed = (uint64_t)cfg->classify.seed;
    o.params.test_fraction = cfg->classify.test_fraction;
    o.params.folds = (int)cfg->classify.folds;
    o.params.repeats = (int)cfg->classify.repeats;
    st = results ? ap_classify_store(&o, err) : AP_ERR_NOMEM;
    if (!st) classify_summary(results, summary);
    free(dir), free(results);
    paths_free(&p);
    return st;
}

/* ---- intervene ---------------------------------------------------------------------------------- */

static unsigned intervene_deps(const ap_study_config *cfg) {
    return STAGE_BIT(AP_STAGE_EXTRACT) | STAGE_BIT(AP_STAGE_CLASSIFY);
}

/* intervene.n: a comma list of head counts, each at least 1; *n malloc'ed. */
static ap_status parse_head_counts(const char *spec, int64_t **n, size_t *count, ap_error *err) {
    size_t cap = 1;
    for (const char *p = spec; *p; p++) cap += *p == ',';
    *count = 0;
    if (!(*n = ap_malloc(cap * sizeof **n, err))) return AP_ERR_NOMEM;
    for (const char *p = spec;;) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 1 || (*end != ',' && *end != '\0')) {
            free(*n);
            *n = NULL;
            return ap_fail(err, AP_ERR_ARG, "intervene.n '%s': expected a comma list of head counts of at least 1, such as 1,2,5,10",
                           spec);
        }
        (*n)[(*count)++] = v;
        if (*end == '\0') return AP_OK;
        p = end + 1;
    }
}

/* intervene.settings: bit s for ap_iv_setting s. */
static ap_status parse_settings(const char *spec, unsigned *bits, ap_error *err) {
    *bits = 0;
    for (const char *p = spec;;) {
        size_t k = strcspn(p, ",");
        int s = 0;
        while (s < AP_IV_SETTINGS && !(strlen(ap_iv_setting_name((ap_iv_setting)s)) == k &&
                                       strncmp(p, ap_iv_setting_name((ap_iv_setting)s), k) == 0))
            s++;
        if (s == AP_IV_SETTINGS)
            return ap_fail(err, AP_ERR_ARG,
                           "intervene.settings '%s': expected a comma list of pos_only, neg_only, neutral, random", spec);
        *bits |= 1u << s;
        if (p[k] == '\0') return AP_OK;
        p += k + 1;
    }
}

static ap_status intervene_describe(const study_ctx *c, cJSON *o, ap_error *err) {
    const ap_study_config *cfg = c->cfg;
    int64_t *n;
    size_t nn;
    unsigned bits;
    ap_status st = parse_head_counts(cfg->intervene.n, &n, &nn, err);
    if (st) return st;
    free(n);
    if ((st = parse_settings(cfg->intervene.settings, &bits, err))) return st;
    const char *tasks = cfg->intervene.tasks;
    int chosen[AP_TASK_COUNT];
    if (strcmp(tasks, "auto") != 0 && strcmp(tasks, "all") != 0 && (st = ap_task_parse_list(tasks, chosen, err))) {
        ap_error_prefix(err, "intervene.tasks");
        return st;
    }
    return add_section(cfg, "intervene", o, err);
}

typedef struct iv_candidate {
    const char *task;
    size_t rarer; /* samples of its rarer outcome in the store */
    int order;    /* in classify's results */
} iv_candidate;

static int by_rarer(const void *a, const void *b) {
    const iv_candidate *x = a, *y = b;
    return x->rarer != y->rarer ? (x->rarer < y->rarer ? 1 : -1) : x->order - y->order;
}

/* The samples of the rarer outcome (correct or incorrect) of a task. */
static ap_status rarer_outcome(const ap_store *s, const char *task, size_t *rarer, ap_error *err) {
    size_t n[2];
    for (int k = 0; k < 2; k++) {
        int64_t *idx = NULL;
        ap_status st = ap_store_filter(s, task, k, &idx, &n[k], err);
        free(idx);
        if (st) return st;
    }
    *rarer = n[0] < n[1] ? n[0] : n[1];
    return AP_OK;
}

/* intervene.tasks resolved into tasks.json's {"tasks": [...], "left_out":
 * {task: why}}: a list is taken as given; "all" is every task classify
 * ranked heads for (noise has no right answer) with intervene.target
 * samples of each outcome, "auto" the max_tasks of them with the most
 * samples of the rarer outcome (ties: classify's order). */
static ap_status choose_tasks(const study_ctx *c, const char *results, const char *store, cJSON *index,
                              ap_error *err) {
    const ap_study_config *cfg = c->cfg;
    cJSON *tasks = cJSON_AddArrayToObject(index, "tasks"), *left_out = cJSON_AddObjectToObject(index, "left_out");
    const char *spec = cfg->intervene.tasks;
    int automatic = strcmp(spec, "auto") == 0;
    if (!automatic && strcmp(spec, "all") != 0) {
        for (const char *p = spec;;) {
            size_t k = strcspn(p, ",");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(k < sizeof name ? k : sizeof name - 1), p);
            cJSON_AddItemToArray(tasks, cJSON_CreateString(name));
            if (p[k] == '\0') return AP_OK;
            p += k + 1;
        }
    }
    cJSON *r = NULL;
    ap_store *s = NULL;
    ap_status st = ap_json_load(results, &r, err);
    if (!st) st = ap_store_open(store, AP_STORE_READ, &s, err);
    const cJSON *ranked = cJSON_GetObjectItemCaseSensitive(r, "tasks");
    iv_candidate *cand = st ? NULL : ap_calloc((size_t)cJSON_GetArraySize(ranked) + 1, sizeof *cand, err);
    size_t ncand = 0;
    if (!st && !cand) st = AP_ERR_NOMEM;
    for (const cJSON *t = ranked ? ranked->child : NULL; !st && t; t = t->next) {
        const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "skipped"));
        size_t rarer = 0;
        if (strcmp(t->string, "all") == 0) continue;
        if (strcmp(t->string, "noise") == 0) why = "noise scenarios have no right answer";
        else if (!why && !(st = rarer_outcome(s, t->string, &rarer, err)) && rarer < (size_t)cfg->intervene.target)
            why = "fewer than intervene.target samples of one outcome";
        if (why) cJSON_AddStringToObject(left_out, t->string, why);
        else if (!st) cand[ncand] = (iv_candidate){t->string, rarer, (int)ncand}, ncand++;
    }
    if (!st) {
        qsort(cand, ncand, sizeof *cand, by_rarer);
        for (size_t i = 0; i < ncand; i++) {
            if (automatic && i >= (size_t)cfg->intervene.max_tasks)
                cJSON_AddStringToObject(left_out, cand[i].task, "beyond intervene.max_tasks");
            else cJSON_AddItemToArray(tasks, cJSON_CreateString(cand[i].task));
        }
    }
    free(cand);
    if (s) ap_store_close(s, NULL);
    cJSON_Delete(r);
    return st;
}

/* The largest gain and the largest loss in accuracy over a task's runs. */
typedef struct iv_extremes {
    double gain, loss;
    char gain_at[96], loss_at[96];
} iv_extremes;

static void note_extremes(const char *json, const char *task, iv_extremes *x) {
    cJSON *j = NULL;
    if (ap_json_load(json, &j, NULL)) return;
    const cJSON *run;
    cJSON_ArrayForEach(run, cJSON_GetObjectItemCaseSensitive(j, "runs")) {
        double d = num(run, "change_pp");
        const char *setting = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(run, "setting"));
        if (d > x->gain) snprintf(x->gain_at, sizeof x->gain_at, "%s, %s n=%.0f", task, setting, num(run, "n_heads"));
        if (d < x->loss) snprintf(x->loss_at, sizeof x->loss_at, "%s, %s n=%.0f", task, setting, num(run, "n_heads"));
        x->gain = fmax(x->gain, d), x->loss = fmin(x->loss, d);
    }
    cJSON_Delete(j);
}

static ap_status intervene_tasks(const study_ctx *c, const paths *p, const char *dir, const char *results,
                                 const cJSON *tasks, char summary[256], ap_error *err) {
    const ap_study_config *cfg = c->cfg;
    ap_intervene_opts o = {.model_dir = cfg->model,
                           .store_path = p->store,
                           .shap_path = results,
                           .target = (int)cfg->intervene.target,
                           .seed = (uint64_t)cfg->intervene.seed,
                           .shap_cv = strcmp(cfg->intervene.shap_set, "cv") == 0};
    int64_t *n = NULL;
    ap_status st = parse_head_counts(cfg->intervene.n, &n, &o.n_count, err);
    if (!st) st = parse_settings(cfg->intervene.settings, &o.settings, err);
    o.n = n;
    iv_extremes x = {.gain = 0, .loss = 0};
    int done = 0;
    for (const cJSON *t = tasks->child; !st && t; t = t->next) {
        char *out = ap_path_join(dir, t->valuestring, err), *json = out ? ap_path_join(out, "intervene.json", err) : NULL;
        ap_intervene_report rep;
        o.task = t->valuestring;
        o.out_dir = out;
        st = json ? ap_intervene(&o, &rep, err) : AP_ERR_NOMEM;
        if (st) ap_error_prefix(err, "intervene on %s", t->valuestring);
        else note_extremes(json, t->valuestring, &x), done++;
        free(out), free(json);
    }
    if (!st)
        snprintf(summary, 256, "%d tasks, %d + %d scenarios each; largest gain %+.1f pp (%.60s), largest loss "
                 "%+.1f pp (%.60s)", done, o.target, o.target, x.gain, x.gain_at[0] ? x.gain_at : "none", x.loss,
                 x.loss_at[0] ? x.loss_at : "none");
    free(n);
    return st;
}

static ap_status intervene_run(const study_ctx *c, int fresh, char summary[256], ap_error *err) {
    paths p;
    ap_status st = paths_init(c, &p, err);
    if (st) return st;
    char *dir = study_path(c, AP_STUDY_INTERVENE_DIR, err), *index_path = study_path(c, AP_STUDY_INTERVENE_TASKS, err);
    char *results = study_path(c, AP_STUDY_CLASSIFY_DIR "/results.json", err);
    cJSON *index = cJSON_CreateObject();
    if (!dir || !index_path || !results || !index) st = ap_fail(err, AP_ERR_NOMEM, "out of memory");
    if (!st) st = ap_make_dirs(dir, err);
    if (!st) st = choose_tasks(c, results, p.store, index, err);
    cJSON_AddNumberToObject(index, "target", (double)c->cfg->intervene.target);
    if (!st) st = ap_json_save(index_path, index, err);
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(index, "tasks");
    if (!st && cJSON_GetArraySize(tasks) == 0)
        snprintf(summary, 256, "no task has %lld correct and %lld incorrect samples (intervene.target)",
                 (long long)c->cfg->intervene.target, (long long)c->cfg->intervene.target);
    else if (!st) st = intervene_tasks(c, &p, dir, results, tasks, summary, err);
    cJSON_Delete(index);
    free(dir), free(index_path), free(results);
    paths_free(&p);
    return st;
}

/* ---- report -------------------------------------------------------------------------------------- */

static unsigned report_deps(const ap_study_config *cfg) { return STAGE_BIT(AP_STAGE_REPORT) - 1; }

static ap_status report_describe(const study_ctx *c, cJSON *o, ap_error *err) { return AP_OK; }

static ap_status report_run(const study_ctx *c, int fresh, char summary[256], ap_error *err) {
    char *out = study_path(c, AP_STUDY_REPORT, err);
    if (!out) return AP_ERR_NOMEM;
    ap_status st = ap_report_write(c->dir, out, err);
    if (!st) snprintf(summary, 256, "%s", out);
    free(out);
    return st;
}

/* ---- the table ----------------------------------------------------------------------------------- */

static const char *const k_mine_out[] = {AP_STUDY_SCENARIOS, SCENARIO_STATS, NULL};
static const char *const k_extract_out[] = {AP_STUDY_LM_EVAL, AP_STUDY_STORE, AP_STUDY_STORE "-journal", NULL};
static const char *const k_mae_train_out[] = {AP_STUDY_MAE_DIR, NULL};
static const char *const k_mae_eval_out[] = {AP_STUDY_MAE_EVAL_DIR, AP_STUDY_CROSS_STORE,
                                             AP_STUDY_CROSS_STORE "-journal", NULL};
static const char *const k_classify_out[] = {AP_STUDY_CLASSIFY_DIR, NULL};
static const char *const k_intervene_out[] = {AP_STUDY_INTERVENE_DIR, NULL};
static const char *const k_report_out[] = {AP_STUDY_REPORT, NULL};

const stage_def k_study_stages[AP_STAGE_COUNT] = {
    [AP_STAGE_MINE] = {mine_deps, k_mine_out, mine_describe, mine_run, 0},
    [AP_STAGE_EXTRACT] = {extract_deps, k_extract_out, extract_describe, extract_run, 0, 1},
    [AP_STAGE_MAE_TRAIN] = {mae_train_deps, k_mae_train_out, mae_train_describe, mae_train_run, 0, 1},
    [AP_STAGE_MAE_EVAL] = {mae_eval_deps, k_mae_eval_out, mae_eval_describe, mae_eval_run, 0, 1},
    [AP_STAGE_EMBED] = {embed_deps, NULL, embed_describe, embed_run, 0},
    [AP_STAGE_CLUSTER] = {cluster_deps, NULL, cluster_describe, cluster_run, 0},
    [AP_STAGE_CLASSIFY] = {classify_deps, k_classify_out, classify_describe, classify_run, 0},
    [AP_STAGE_INTERVENE] = {intervene_deps, k_intervene_out, intervene_describe, intervene_run, 0},
    [AP_STAGE_REPORT] = {report_deps, k_report_out, report_describe, report_run, 1},
};
