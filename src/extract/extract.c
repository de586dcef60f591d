/* Extraction (docs/store.md): the LM over every scenario, correctness and
 * last-position statistics, every head's pattern into the store. The store's
 * cursor counts the scenario lines handled, so a rerun skips exactly those. */
#include "apmae/extract.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/lm.h"
#include "apmae/store.h"

#define EX_DEFAULT_COMMIT_EVERY 256
#define EX_MAX_TASKS 64
#define EX_COMMIT_SECONDS 2.0

void ap_last_token_stats(const float *logits, int V, int32_t label, float *logprob, float *entropy, float *max_prob,
                         int32_t *argmax) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    double m = logits[best], z = 0, ez = 0;
    for (int i = 0; i < V; i++) {
        double e = exp((double)logits[i] - m);
        z += e;
        ez += e * ((double)logits[i] - m);
    }
    double logz = log(z);
    /* H = -sum p log p = log Z - E[x - m] */
    *entropy = (float)(logz - ez / z);
    *max_prob = (float)(1.0 / z);
    *logprob = label >= 0 && label < V ? (float)((double)logits[label] - m - logz) : NAN;
    *argmax = best;
}

/* Per-task counts of kept samples, for balancing and the progress line. */
typedef struct task_counts {
    char *name[EX_MAX_TASKS];
    int64_t correct[EX_MAX_TASKS], incorrect[EX_MAX_TASKS];
    int n;
    int64_t noise_seen; /* noise scenarios met so far (all lines): their correctness alternates */
} task_counts;

static int task_index(task_counts *tc, const char *name) {
    for (int i = 0; i < tc->n; i++)
        if (strcmp(tc->name[i], name) == 0) return i;
    if (tc->n == EX_MAX_TASKS) return -1;
    tc->name[tc->n] = strdup(name);
    return tc->name[tc->n] ? tc->n++ : -1;
}

static void task_counts_free(task_counts *tc) {
    for (int i = 0; i < tc->n; i++) free(tc->name[i]);
}

/* First pass over the scenarios: count, check they share one length, and
 * collect the task names and seeds for the store's attributes. */
typedef struct scan_result {
    int64_t lines;
    int n_tokens;
    task_counts tasks;
    int64_t seeds[16];
    size_t nseeds;
} scan_result;

static ap_status scan_scenarios(const char *path, scan_result *sr, ap_error *err) {
    memset(sr, 0, sizeof *sr);
    ap_scenario_reader r;
    ap_status st = ap_scenario_reader_open(&r, path, err);
    if (st) return st;
    ap_scenario_line s;
    int has = 1;
    while (!(st = ap_scenario_reader_next(&r, &s, &has, err)) && has) {
        if (sr->lines == 0) sr->n_tokens = s.n;
        if (s.n != sr->n_tokens) {
            st = ap_fail(err, AP_ERR_FORMAT, "%s:%lld: %d input ids, but earlier scenarios have %d", path,
                         (long long)r.lineno, s.n, sr->n_tokens);
        } else if (task_index(&sr->tasks, s.task) < 0) {
            st = ap_fail(err, AP_ERR_FORMAT, "%s: more than %d tasks", path, EX_MAX_TASKS);
        }
        size_t k = 0;
        while (k < sr->nseeds && sr->seeds[k] != s.seed) k++;
        if (k == sr->nseeds && k < sizeof sr->seeds / sizeof sr->seeds[0]) sr->seeds[sr->nseeds++] = s.seed;
        ap_scenario_clear(&s);
        if (st) break;
        sr->lines++;
    }
    ap_scenario_reader_close(&r);
    if (!st && sr->lines == 0) st = ap_fail(err, AP_ERR_FORMAT, "%s: no scenarios", path);
    return st;
}

static const char *balance_name(ap_balance b) {
    return b == AP_BALANCE_PER_TASK ? "per-task" : b == AP_BALANCE_CORRECT_ONLY ? "correct-only" : "none";
}

/* What identifies a run: a store made with other options is not resumed.
 * The shard is not part of it (it is recorded apart), so that every shard
 * of a run and their merge carry the same description. */
static void run_description(const ap_extract_options *o, const scan_result *sr, char *buf, size_t n) {
    snprintf(buf, n,
             "{\"balance\":\"%s\",\"per_task\":%lld,\"scenarios\":%lld,\"dtype\":\"%s\",\"patterns\":%s,"
             "\"embeddings\":%s}",
             balance_name(o->balance), (long long)(o->balance == AP_BALANCE_PER_TASK ? o->per_task : 0),
             (long long)sr->lines, ap_dtype_name(o->dtype), o->embeddings_only ? "false" : "true",
             o->embed_with ? "true" : "false");
}

static int shard_count(const ap_extract_options *o) { return o->shard_count > 1 ? o->shard_count : 1; }
static int shard_index(const ap_extract_options *o) { return o->shard_count > 1 ? o->shard_index : 0; }

static ap_status open_or_create_store(const ap_extract_options *o, const ap_lm *lm, const scan_result *sr,
                                      const char *run, ap_store **out, ap_error *err) {
    if (ap_path_exists(o->store_path)) {
        ap_status st = ap_store_open(o->store_path, AP_STORE_APPEND, out, err);
        if (st) return st;
        const ap_store_meta *m = ap_store_get_meta(*out);
        if (m->shard_count != shard_count(o) || m->shard_index != shard_index(o)) {
            ap_fail(err, AP_ERR_ARG, "%s: the store is shard %d/%d of its run, but this run is shard %d/%d; use a new "
                    "--out to start over", o->store_path, m->shard_index, m->shard_count, shard_index(o),
                    shard_count(o));
            ap_store_close(*out, NULL);
            *out = NULL;
            return AP_ERR_ARG;
        }
        if (m->n_tokens != sr->n_tokens || m->num_layers != lm->cfg.num_layers ||
            m->num_heads != lm->cfg.num_heads || !m->run || strcmp(m->run, run) != 0) {
            /* the message first: m points into the store */
            ap_fail(err, AP_ERR_ARG,
                    "%s: the store was made by another run (%s, N %d, %d x %d heads; this run: %s, N %d, %d x %d); "
                    "use a new --out to start over",
                    o->store_path, m->run ? m->run : "no run description", m->n_tokens, m->num_layers, m->num_heads,
                    run, sr->n_tokens, lm->cfg.num_layers, lm->cfg.num_heads);
            ap_store_close(*out, NULL);
            *out = NULL;
            return AP_ERR_ARG;
        }
        return AP_OK;
    }
    char *config_text = NULL, *cfg_path = ap_path_join(o->model_dir, "config.json", err);
    if (!cfg_path) return AP_ERR_NOMEM;
    ap_status st = ap_read_file(cfg_path, &config_text, NULL, err);
    free(cfg_path);
    if (st) return st;
    ap_store_meta meta = {
        .model_id = o->model_dir,
        .model_config = config_text,
        .n_tokens = sr->n_tokens,
        .num_layers = lm->cfg.num_layers,
        .num_heads = lm->cfg.num_heads,
        .dtype = o->dtype,
        .small_bits = -1,
        .deflate = -1,
        .tasks = (const char *const *)sr->tasks.name,
        .ntasks = (size_t)sr->tasks.n,
        .seeds = sr->seeds,
        .nseeds = sr->nseeds,
        .run = run,
        .no_patterns = o->embeddings_only,
        .shard_index = shard_index(o),
        .shard_count = shard_count(o),
    };
    st = ap_store_create(o->store_path, &meta, out, err);
    free(config_text);
    return st;
}

/* Counts of what the store already holds, so balancing resumes exactly. */
static ap_status count_stored(ap_store *store, task_counts *tc, ap_error *err) {
    int64_t n = ap_store_count(store);
    for (int64_t i = 0; i < n; i++) {
        ap_store_sample rec;
        ap_status st = ap_store_read_sample(store, i, &rec, NULL, err);
        if (st) return st;
        int t = task_index(tc, rec.task);
        if (t < 0) return ap_fail(err, AP_ERR_FORMAT, "%s: too many tasks", ap_store_path(store));
        if (rec.correct) tc->correct[t]++;
        else tc->incorrect[t]++;
    }
    return AP_OK;
}

/* A shard's part of a quota: q split as evenly as the shards allow, the
 * first q % R shards taking one more. */
static int64_t shard_quota(const ap_extract_options *o, int64_t q) {
    int64_t R = shard_count(o), K = shard_index(o);
    return q / R + (K < q % R ? 1 : 0);
}

/* Whether a sample of task t with this correctness is still wanted. */
static int wanted(const ap_extract_options *o, const task_counts *tc, int t, int correct) {
    switch (o->balance) {
    case AP_BALANCE_PER_TASK: {
        int64_t quota = shard_quota(o, correct ? o->per_task / 2 : o->per_task - o->per_task / 2);
        return (correct ? tc->correct[t] : tc->incorrect[t]) < quota;
    }
    case AP_BALANCE_CORRECT_ONLY: return correct;
    case AP_BALANCE_NONE: break;
    }
    return 1;
}

static int task_full(const ap_extract_options *o, const task_counts *tc, int t) {
    return o->balance == AP_BALANCE_PER_TASK && !wanted(o, tc, t, 0) && !wanted(o, tc, t, 1);
}

/* Everything one run holds. */
typedef struct extractor {
    const ap_extract_options *opt;
    ap_lm *lm;
    ap_lm_state *state;
    ap_store *store;
    ap_embedder *embedder; /* streaming mode, else NULL */
    float *logits, *attn;
    float *emb;            /* streaming mode: cls then mean, [L, H, D] each */
    task_counts counts;
    ap_extract_report *rep;
} extractor;

/* Run one scenario and keep it if its group still wants it. */
static ap_status handle_scenario(extractor *x, const ap_scenario_line *s, int64_t index, int64_t noise_ordinal,
                                 const char *path, int64_t lineno, ap_error *err) {
    int t = task_index(&x->counts, s->task);
    if (t < 0) return ap_fail(err, AP_ERR_FORMAT, "%s:%lld: too many tasks", path, (long long)lineno);
    if (task_full(x->opt, &x->counts, t)) return AP_OK;
    const ap_lm_config *c = &x->lm->cfg;
    if (s->label >= c->vocab_size)
        return ap_fail(err, AP_ERR_RANGE, "%s:%lld: label_id %d is outside the model's vocabulary (%d)", path,
                       (long long)lineno, s->label, c->vocab_size);
    ap_lm_forward_opts fo = {.ablate = NULL, .last_only = 1};
    double t0 = ap_now();
    ap_status st = ap_lm_forward(x->lm, x->state, s->ids, s->n, &fo, x->logits, x->attn, err);
    x->rep->forward_seconds += ap_now() - t0;
    if (st) return ap_error_prefix(err, "%s:%lld (scenario %s)", path, (long long)lineno, s->id);
    ap_store_sample rec = {.id = s->id, .task = s->task, .source = s->source, .start = s->start, .end = s->end,
                           .label_id = s->label};
    ap_last_token_stats(x->logits, c->vocab_size, s->label, &rec.logprob, &rec.entropy, &rec.max_prob, &rec.pred_id);
    /* Noise has no label: correctness alternates along the file so both
     * groups get half, the same however often the run was resumed. */
    rec.correct = s->label >= 0 ? rec.pred_id == s->label : (int)(noise_ordinal % 2);
    if (!wanted(x->opt, &x->counts, t, rec.correct)) {
        x->rep->skipped_balance++;
        return AP_OK;
    }
    rec.index = index;
    if (x->embedder) {
        size_t P = (size_t)c->num_layers * (size_t)c->num_heads, D = (size_t)ap_embedder_info(x->embedder)->dim;
        t0 = ap_now();
        st = ap_embedder_encode(x->embedder, x->attn, (int64_t)P, x->emb, x->emb + P * D, err);
        x->rep->embed_seconds += ap_now() - t0;
        if (st) return ap_error_prefix(err, "%s:%lld (scenario %s): AP-MAE", path, (long long)lineno, s->id);
        if ((st = ap_store_append(x->store, &rec, s->ids, x->opt->embeddings_only ? NULL : x->attn, err))) return st;
        if ((st = ap_store_append_embeddings(x->store, x->emb, x->emb + P * D, err))) return st;
    } else if ((st = ap_store_append(x->store, &rec, s->ids, x->attn, err))) {
        return st;
    }
    if (rec.correct) x->counts.correct[t]++;
    else x->counts.incorrect[t]++;
    x->rep->stored_this_run++;
    return AP_OK;
}

static void progress_text(const extractor *x, const char *task, char *buf, size_t n) {
    int64_t ok = 0, bad = 0;
    for (int i = 0; i < x->counts.n; i++) ok += x->counts.correct[i], bad += x->counts.incorrect[i];
    int t = -1;
    for (int i = 0; i < x->counts.n; i++)
        if (strcmp(x->counts.name[i], task) == 0) t = i;
    double el = x->rep->seconds > 0 ? x->rep->seconds : 1e-9;
    snprintf(buf, n, "%.2f samples/s kept %lld ok/%lld wrong, %s %lld/%lld",
             (double)x->rep->stored_this_run / el, (long long)ok, (long long)bad, task,
             t >= 0 ? (long long)x->counts.correct[t] : 0LL, t >= 0 ? (long long)x->counts.incorrect[t] : 0LL);
}

static ap_status commit(extractor *x, int64_t consumed, ap_error *err) {
    ap_store_set_cursor(x->store, consumed);
    return ap_store_commit(x->store, err);
}

/* Commits happen every `every` stored samples or EX_COMMIT_SECONDS, and the
 * progress bar shows only committed work: what it reports done survives a
 * kill at any later moment. */
static ap_status run_loop(extractor *x, ap_error *err) {
    const ap_extract_options *o = x->opt;
    ap_scenario_reader r;
    ap_status st = ap_scenario_reader_open(&r, o->scenarios_path, err);
    if (st) return st;
    int64_t consumed = ap_store_cursor(x->store);
    int every = o->commit_every > 0 ? o->commit_every : EX_DEFAULT_COMMIT_EVERY;
    int64_t since_commit = 0;
    ap_progress bar;
    ap_progress_begin(&bar, "extract", x->rep->lines);
    double t_start = ap_now(), t_commit = t_start;
    ap_scenario_line s;
    int has = 1;
    char text[160];
    for (int64_t line = 0; !(st = ap_scenario_reader_next(&r, &s, &has, err)) && has; line++) {
        int64_t noise_ordinal = s.label < 0 ? x->counts.noise_seen++ : -1;
        if (line < consumed || line % shard_count(o) != shard_index(o)) { /* an earlier run's, or another shard's */
            ap_scenario_clear(&s);
            if (line >= consumed) consumed = line + 1;
            continue;
        }
        int64_t before = x->rep->stored_this_run;
        st = handle_scenario(x, &s, line, noise_ordinal, r.path, r.lineno, err);
        consumed = line + 1;
        since_commit += x->rep->stored_this_run - before;
        double now = ap_now();
        if (!st && (since_commit >= every || now - t_commit >= EX_COMMIT_SECONDS)) {
            st = commit(x, consumed, err);
            since_commit = 0;
            t_commit = now;
            x->rep->seconds = now - t_start;
            progress_text(x, s.task, text, sizeof text);
            ap_progress_update(&bar, consumed, text);
        }
        ap_scenario_clear(&s);
        if (st) break;
    }
    if (!st && !(st = commit(x, consumed, err))) ap_progress_update(&bar, consumed, NULL);
    x->rep->seconds = ap_now() - t_start;
    x->rep->consumed = consumed;
    ap_progress_end(&bar, NULL);
    ap_scenario_reader_close(&r);
    return st;
}

static void log_summary(const extractor *x) {
    const ap_extract_report *rep = x->rep;
    for (int i = 0; i < x->counts.n; i++)
        ap_info("  %-24s correct %6lld  incorrect %6lld", x->counts.name[i], (long long)x->counts.correct[i],
                (long long)x->counts.incorrect[i]);
    ap_info("stored %lld samples this run (%lld in the store), %lld run but not kept (balance); "
            "%.1f s, %.1f%% of it outside the forward pass%s",
            (long long)rep->stored_this_run, (long long)rep->stored, (long long)rep->skipped_balance, rep->seconds,
            rep->seconds > 0 ? 100.0 * (1.0 - rep->forward_seconds / rep->seconds) : 0.0,
            x->embedder ? " (AP-MAE encoding included)" : "");
    if (x->embedder)
        ap_info("AP-MAE encoding: %.1f s (%.1f%% of the run)", rep->embed_seconds,
                rep->seconds > 0 ? 100.0 * rep->embed_seconds / rep->seconds : 0.0);
}

ap_status ap_extract_run(const ap_extract_options *o, ap_extract_report *rep, ap_error *err) {
    memset(rep, 0, sizeof *rep);
    if (o->balance == AP_BALANCE_PER_TASK && o->per_task < 2)
        return ap_fail(err, AP_ERR_ARG, "--balance per-task:K needs K >= 2 (K/2 correct and K/2 incorrect)");
    if (o->dtype != AP_F32 && o->dtype != AP_F16 && o->dtype != AP_BF16)
        return ap_fail(err, AP_ERR_ARG, "pattern dtype must be f32, f16 or bf16");
    if (o->shard_count > 1 && (o->shard_index < 0 || o->shard_index >= o->shard_count))
        return ap_fail(err, AP_ERR_ARG, "--shard %d/%d: K must be in 0..%d", o->shard_index, o->shard_count,
                       o->shard_count - 1);
    if (o->embeddings_only && !o->embed_with)
        return ap_fail(err, AP_ERR_ARG, "--embeddings-only needs --embed-with MAE_DIR (the AP-MAE that encodes the patterns)");
    scan_result sr;
    ap_status st = scan_scenarios(o->scenarios_path, &sr, err);
    if (st) {
        task_counts_free(&sr.tasks);
        return st;
    }
    rep->lines = sr.lines;
    extractor x = {.opt = o, .rep = rep};
    char run[512];
    run_description(o, &sr, run, sizeof run);
    if ((st = ap_lm_load(o->model_dir, &x.lm, err))) goto done;
    if (sr.n_tokens > x.lm->cfg.max_position_embeddings) {
        st = ap_fail(err, AP_ERR_ARG, "%s: scenarios have %d tokens, more than the model's %d positions",
                     o->scenarios_path, sr.n_tokens, x.lm->cfg.max_position_embeddings);
        goto done;
    }
    if (o->embed_with) {
        if ((st = ap_embedder_open(o->embed_with, o->compat_reference, o->embed_batch, &x.embedder, err))) goto done;
        if ((st = ap_embedder_check_length(x.embedder, sr.n_tokens, o->scenarios_path, err))) goto done;
    }
    if ((st = open_or_create_store(o, x.lm, &sr, run, &x.store, err))) goto done;
    if (x.embedder && (st = ap_store_embed_begin(x.store, ap_embedder_info(x.embedder), err))) goto done;
    if ((st = count_stored(x.store, &x.counts, err))) goto done;
    if (ap_store_cursor(x.store) >= sr.lines) {
        rep->already_complete = 1;
        rep->consumed = rep->lines;
        rep->stored = ap_store_count(x.store);
        ap_info("%s: already complete (%lld scenarios handled, %lld samples); nothing to do", o->store_path,
                (long long)rep->lines, (long long)rep->stored);
        goto done;
    }
    size_t L = (size_t)x.lm->cfg.num_layers, H = (size_t)x.lm->cfg.num_heads, N = (size_t)sr.n_tokens;
    x.logits = ap_malloc((size_t)x.lm->cfg.vocab_size * sizeof(float), err);
    x.attn = ap_malloc(L * H * N * N * sizeof(float), err);
    if (x.embedder && !(x.emb = ap_malloc(2 * L * H * (size_t)ap_embedder_info(x.embedder)->dim * sizeof(float), err))) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    if (!x.logits || !x.attn) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    if ((st = ap_lm_state_new(x.lm, (int)N, &x.state, err))) goto done;
    st = run_loop(&x, err);
    rep->stored = ap_store_count(x.store);
    if (!st) log_summary(&x);
done:;
    ap_error close_err = {0};
    ap_status cst = ap_store_close(x.store, &close_err);
    if (!st && cst) {
        st = cst;
        if (err) *err = close_err;
    }
    ap_lm_state_free(x.state);
    ap_lm_free(x.lm);
    ap_embedder_free(x.embedder);
    free(x.logits);
    free(x.attn);
    free(x.emb);
    task_counts_free(&x.counts);
    task_counts_free(&sr.tasks);
    return st;
}
