/* AP-MAE encodings of attention patterns into the store: the embedder
 * (scaler + encoder in batches) shared by extraction's streaming mode and
 * `apmae store embed`, which encodes an existing store and resumes after its
 * last commit. The embeddings' row count is the resume point: a commit makes
 * rows durable together with nothing else, so no cursor is needed. */
#include "apmae/extract.h"

#include <stdlib.h>
#include <string.h>

#include "apmae/mae.h"

#define EMB_DEFAULT_BATCH 64
#define EMB_DEFAULT_COMMIT_EVERY 64
#define EMB_COMMIT_SECONDS 2.0

struct ap_embedder {
    ap_mae_model *model;
    int batch;
    float *scaled; /* [batch, N, N] */
    char *dir, *config_text;
    char hash[17];
    ap_store_embed_info info;
};

void ap_embedder_free(ap_embedder *e) {
    if (!e) return;
    ap_mae_free(e->model);
    free(e->scaled);
    free(e->dir);
    free(e->config_text);
    free(e);
}

ap_status ap_embedder_open(const char *dir, int compat_reference, int batch, ap_embedder **out, ap_error *err) {
    *out = NULL;
    ap_embedder *e = ap_calloc(1, sizeof *e, err);
    if (!e) return AP_ERR_NOMEM;
    e->batch = batch > 0 ? batch : EMB_DEFAULT_BATCH;
    char *cfg_path = ap_path_join(dir, "config.json", err);
    ap_status st = cfg_path ? ap_mae_load(dir, &e->model, err) : AP_ERR_NOMEM;
    if (st == AP_OK) st = ap_read_file(cfg_path, &e->config_text, NULL, err);
    if (st == AP_OK && !(e->dir = ap_strdup(dir, err))) st = AP_ERR_NOMEM;
    free(cfg_path);
    if (st == AP_OK) {
        int N = e->model->cfg.max_length;
        e->model->compat_reference = compat_reference;
        e->scaled = ap_malloc((size_t)e->batch * (size_t)N * (size_t)N * sizeof(float), err);
        if (!e->scaled) st = AP_ERR_NOMEM;
    }
    if (st != AP_OK) {
        ap_embedder_free(e);
        return st;
    }
    /* The weights identify the model whatever its directory is called. */
    snprintf(e->hash, sizeof e->hash, "%016llx",
             (unsigned long long)ap_hash_bytes(e->model->params, e->model->nparams * sizeof(float)));
    e->info = (ap_store_embed_info){.model_id = e->dir,
                                    .model_config = e->config_text,
                                    .model_hash = e->hash,
                                    .dim = e->model->cfg.encoder_dim,
                                    .compat_reference = compat_reference};
    *out = e;
    return AP_OK;
}

const ap_store_embed_info *ap_embedder_info(const ap_embedder *e) { return &e->info; }

ap_status ap_embedder_check_length(const ap_embedder *e, int n_tokens, const char *what, ap_error *err) {
    if (e->model->cfg.max_length != n_tokens)
        return ap_fail(err, AP_ERR_ARG,
                       "the AP-MAE %s encodes %dx%d patterns (max_length %d), but %s has N = %d tokens per pattern",
                       e->dir, e->model->cfg.max_length, e->model->cfg.max_length, e->model->cfg.max_length, what,
                       n_tokens);
    return AP_OK;
}

ap_status ap_embedder_encode(ap_embedder *e, const float *patterns, int64_t count, float *cls, float *mean,
                             ap_error *err) {
    size_t NN = (size_t)e->model->cfg.max_length * (size_t)e->model->cfg.max_length, D = (size_t)e->info.dim;
    for (int64_t b0 = 0; b0 < count; b0 += e->batch) {
        int nb = count - b0 < e->batch ? (int)(count - b0) : e->batch;
        ap_status st = ap_mae_scale(&e->model->cfg, patterns + (size_t)b0 * NN, nb, e->scaled, err);
        if (st == AP_OK) st = ap_mae_encode(e->model, e->scaled, nb, cls + (size_t)b0 * D, mean + (size_t)b0 * D, err);
        if (st != AP_OK) return st;
    }
    return AP_OK;
}

/* ---- apmae store embed ---- */

/* A store that keeps no patterns can only be complete already. */
static ap_status check_has_patterns(ap_store *s, const ap_embedder *e, ap_embed_report *rep, ap_error *err) {
    const ap_store_embed_info *have = ap_store_embed_info_of(s);
    if (!have || strcmp(have->model_hash, ap_embedder_info(e)->model_hash) != 0 ||
        !have->compat_reference != !ap_embedder_info(e)->compat_reference)
        return ap_fail(err, AP_ERR_ARG, "%s keeps no patterns (extracted with --embeddings-only): nothing to encode "
                       "with %s", ap_store_path(s), ap_embedder_info(e)->model_id);
    rep->already_complete = 1;
    return AP_OK;
}

static ap_status embed_loop(ap_store *s, ap_embedder *e, const ap_embed_options *o, ap_embed_report *rep,
                            ap_error *err) {
    const ap_store_meta *m = ap_store_get_meta(s);
    size_t P = (size_t)m->num_layers * (size_t)m->num_heads, NN = (size_t)m->n_tokens * (size_t)m->n_tokens;
    size_t D = (size_t)ap_embedder_info(e)->dim;
    float *pat = ap_malloc(P * NN * sizeof *pat, err), *cls = ap_malloc(2 * P * D * sizeof *cls, err);
    ap_status st = pat && cls ? AP_OK : AP_ERR_NOMEM;
    int every = o->commit_every > 0 ? o->commit_every : EMB_DEFAULT_COMMIT_EVERY;
    int64_t S = ap_store_count(s), since = 0;
    ap_progress bar;
    ap_progress_begin(&bar, "embed", S);
    double t_commit = ap_now();
    char text[96];
    for (int64_t i = ap_store_embedded(s); st == AP_OK && i < S; i++) {
        st = ap_store_read_patterns(s, i, pat, err);
        if (st == AP_OK) st = ap_embedder_encode(e, pat, (int64_t)P, cls, cls + P * D, err);
        if (st == AP_OK) st = ap_store_append_embeddings(s, cls, cls + P * D, err);
        if (st != AP_OK) break;
        rep->embedded_this_run++;
        double now = ap_now();
        if (++since >= every || now - t_commit >= EMB_COMMIT_SECONDS || i + 1 == S) {
            /* only committed samples are shown as done */
            if ((st = ap_store_commit(s, err)) != AP_OK) break;
            since = 0;
            t_commit = now;
            rep->seconds = now - bar.t_start;
            snprintf(text, sizeof text, "%.1f samples/s, %.0f patterns/s",
                     (double)rep->embedded_this_run / (rep->seconds > 0 ? rep->seconds : 1e-9),
                     (double)(rep->embedded_this_run * (int64_t)P) / (rep->seconds > 0 ? rep->seconds : 1e-9));
            ap_progress_update(&bar, i + 1, text);
        }
    }
    ap_progress_end(&bar, NULL);
    free(pat);
    free(cls);
    return st;
}

ap_status ap_embed_store(const ap_embed_options *o, ap_embed_report *rep, ap_error *err) {
    memset(rep, 0, sizeof *rep);
    double t0 = ap_now();
    ap_embedder *e = NULL;
    ap_store *s = NULL;
    ap_status st = ap_store_open(o->store_path, AP_STORE_APPEND, &s, err);
    if (st == AP_OK) st = ap_embedder_open(o->model_dir, o->compat_reference, o->batch, &e, err);
    if (st == AP_OK) st = ap_embedder_check_length(e, ap_store_get_meta(s)->n_tokens, o->store_path, err);
    if (st == AP_OK) rep->samples = ap_store_count(s);
    if (st == AP_OK && !ap_store_has_patterns(s)) st = check_has_patterns(s, e, rep, err);
    else if (st == AP_OK) st = ap_store_embed_begin(s, ap_embedder_info(e), err);
    if (st == AP_OK && !rep->already_complete && ap_store_embedded(s) >= rep->samples) rep->already_complete = 1;
    if (st == AP_OK && rep->already_complete) {
        ap_info("%s: already complete (all %lld samples have embeddings of %s); nothing to do", o->store_path,
                (long long)rep->samples, o->model_dir);
    } else if (st == AP_OK) {
        int64_t before = ap_store_embedded(s);
        if (before > 0)
            ap_info("%s: resuming after sample %lld of %lld", o->store_path, (long long)before,
                    (long long)rep->samples);
        st = embed_loop(s, e, o, rep, err);
    }
    ap_error close_err = {0};
    ap_status cst = ap_store_close(s, &close_err);
    if (st == AP_OK && cst != AP_OK) {
        st = cst;
        if (err) *err = close_err;
    }
    ap_embedder_free(e);
    rep->seconds = ap_now() - t0;
    if (st == AP_OK && !rep->already_complete)
        ap_info("encoded %lld samples in %.1f s (%lld in the store)", (long long)rep->embedded_this_run, rep->seconds,
                (long long)rep->samples);
    return st;
}
