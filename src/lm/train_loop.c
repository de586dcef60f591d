/* ap_lm_train: the training run. Data and model set up, then steps of
 * forward, backward, gradient clipping and AdamW under the warm-up + cosine
 * schedule; periodic held-out evaluation, progress, and checkpoints
 * (train_state.safetensors: parameters, AdamW moments, step, data position
 * and RNG state in one atomically written file; then the Hugging Face
 * export) from which --resume continues bit for bit. */
#include "kernels.h"
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STATE_FILE "train_state.safetensors"
#define LOG_FILE "train_log.jsonl"
#define STATE_KEY "apmae_train_state"

void ap_lm_train_options_default(ap_lm_train_options *o) {
    memset(o, 0, sizeof *o);
    o->config = "small";
    o->batch = 16;
    o->seq_len = 256;
    o->lr = 2e-3;
    o->min_lr_ratio = 0.1;
    o->warmup = -1;
    o->weight_decay = 0.1;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->clip = 1.0;
    o->fim_rate = 0.5;
    o->fim_middle_weight = 1.0;
    o->holdout = 0.01;
    o->eval_batches = 4;
    o->seed = 1;
    o->out_dtype = AP_F32;
}

/* Everything of one run, freed by trainer_free. */
typedef struct trainer {
    const ap_lm_train_options *o;
    ap_tokenizer *tok;
    char *tok_path;
    lmt_special sp;
    lmt_docs train_docs, held_docs;
    lmt_tokens train_toks, held_toks;
    size_t train_files, held_files;
    lmt_stream stream;
    lmt_layout L;
    lmt_plan pl;
    float *P, *G, *m, *v, *A, *cos_t, *sin_t;
    int32_t *seq, *inputs, *targets;
    float *row_weight; /* [B*N] with --fim-middle-weight, else NULL */
    int32_t *eval_inputs, *eval_targets; /* [eval_batches][B*N] */
    int eval_count;                       /* batches */
    int64_t steps, warmup, eval_every, ckpt_every, step;
    cJSON *identity; /* what a resumed run must agree on */
} trainer;

static void trainer_free(trainer *t) {
    ap_tokenizer_free(t->tok);
    free(t->tok_path);
    lmt_docs_free(&t->train_docs);
    lmt_docs_free(&t->held_docs);
    lmt_tokens_free(&t->train_toks);
    lmt_tokens_free(&t->held_toks);
    lmt_stream_free(&t->stream);
    lmt_layout_free(&t->L);
    ap_free_aligned(t->P);
    ap_free_aligned(t->G);
    ap_free_aligned(t->m);
    ap_free_aligned(t->v);
    ap_free_aligned(t->A);
    free(t->cos_t);
    free(t->sin_t);
    free(t->seq);
    free(t->inputs);
    free(t->targets);
    free(t->row_weight);
    free(t->eval_inputs);
    free(t->eval_targets);
    cJSON_Delete(t->identity);
}

static ap_status check_options(const ap_lm_train_options *o, ap_error *err) {
    if (!o->corpus || !o->tokenizer || !o->out || !o->config)
        return ap_fail(err, AP_ERR_ARG, "--corpus, --tokenizer, --config and --out are required");
    if (o->tokens < 1) return ap_fail(err, AP_ERR_ARG, "--tokens must be positive");
    if (o->batch < 1 || o->batch > 4096)
        return ap_fail(err, AP_ERR_ARG, "--batch %d is out of range 1..4096", o->batch);
    if (o->seq_len < 8 || o->seq_len > 65536)
        return ap_fail(err, AP_ERR_ARG, "--seq-len %d is out of range 8..65536", o->seq_len);
    if (!(o->lr > 0 && o->lr < 1)) return ap_fail(err, AP_ERR_ARG, "--lr must be in (0, 1)");
    if (!(o->min_lr_ratio >= 0 && o->min_lr_ratio <= 1))
        return ap_fail(err, AP_ERR_ARG, "--min-lr-ratio must be in [0, 1]");
    if (!(o->weight_decay >= 0 && o->weight_decay < 1))
        return ap_fail(err, AP_ERR_ARG, "--weight-decay must be in [0, 1)");
    if (!(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1))
        return ap_fail(err, AP_ERR_ARG, "AdamW betas must be in [0, 1)");
    if (!(o->clip > 0)) return ap_fail(err, AP_ERR_ARG, "--clip must be positive");
    if (!(o->fim_rate >= 0 && o->fim_rate <= 1)) return ap_fail(err, AP_ERR_ARG, "--fim-rate must be in [0, 1]");
    if (o->fim_chunk < 0 || (o->fim_chunk > 0 && o->fim_chunk < 8))
        return ap_fail(err, AP_ERR_ARG, "--fim-chunk must be 0 (whole documents) or at least 8 tokens");
    if (!(o->fim_middle_weight > 0 && o->fim_middle_weight <= 1000))
        return ap_fail(err, AP_ERR_ARG, "--fim-middle-weight must be in (0, 1000]");
    if (!(o->holdout >= 0 && o->holdout < 1)) return ap_fail(err, AP_ERR_ARG, "--holdout must be in [0, 1)");
    if (o->eval_batches < 1 || o->eval_batches > 10000)
        return ap_fail(err, AP_ERR_ARG, "--eval-batches must be 1..10000");
    if (o->out_dtype != AP_F32 && o->out_dtype != AP_BF16 && o->out_dtype != AP_F16)
        return ap_fail(err, AP_ERR_ARG, "--dtype must be f32, bf16 or f16");
    return AP_OK;
}

/* The options a resumed run must share with the checkpoint, as JSON. */
static cJSON *identity_json(const ap_lm_train_options *o, const ap_lm_config *c, uint64_t tok_hash) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    char hex[32];
    cJSON_AddStringToObject(j, "corpus", o->corpus);
    cJSON_AddStringToObject(j, "include", o->corpus_opt.include ? o->corpus_opt.include : "");
    cJSON_AddStringToObject(j, "exclude", o->corpus_opt.exclude ? o->corpus_opt.exclude : "");
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)tok_hash);
    cJSON_AddStringToObject(j, "tokenizer_fnv1a", hex);
    cJSON_AddNumberToObject(j, "tokens", (double)o->tokens);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "seq_len", o->seq_len);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "min_lr_ratio", o->min_lr_ratio);
    cJSON_AddNumberToObject(j, "warmup", (double)o->warmup);
    cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(j, "beta1", o->beta1);
    cJSON_AddNumberToObject(j, "beta2", o->beta2);
    cJSON_AddNumberToObject(j, "clip", o->clip);
    cJSON_AddNumberToObject(j, "fim_rate", o->fim_rate);
    cJSON_AddStringToObject(j, "fim_split", o->fim_split == AP_FIM_SPLIT_BOUNDARY ? "boundary" : "char");
    cJSON_AddNumberToObject(j, "fim_chunk", o->fim_chunk);
    cJSON_AddNumberToObject(j, "fim_middle_weight", o->fim_middle_weight);
    cJSON_AddNumberToObject(j, "holdout", o->holdout);
    snprintf(hex, sizeof hex, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "seed", hex);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(j, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(j, "norm_epsilon", c->norm_epsilon);
    cJSON_AddNumberToObject(j, "sliding_window", c->sliding_window);
    cJSON_AddBoolToObject(j, "use_bias", c->use_bias);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddStringToObject(j, "init_from", o->init_from ? o->init_from : "");
    return j;
}

static ap_status setup_tokenizer(trainer *t, ap_error *err) {
    const char *path = t->o->tokenizer;
    t->tok_path = ap_path_is_dir(path) ? ap_path_join(path, "tokenizer.json", err) : ap_strdup(path, err);
    if (!t->tok_path) return AP_ERR_NOMEM;
    ap_status st = ap_tokenizer_load(t->tok_path, &t->tok, err);
    return st ? st : lmt_special_lookup(t->tok, t->tok_path, &t->sp, err);
}

static ap_status alloc_floats(float **p, size_t n, ap_error *err) {
    *p = ap_malloc_aligned((n ? n : 1) * sizeof(float), err);
    if (!*p) return AP_ERR_NOMEM;
    memset(*p, 0, (n ? n : 1) * sizeof(float));
    return AP_OK;
}

static ap_status setup_model(trainer *t, const ap_lm_config *cfg, ap_error *err) {
    const ap_lm_train_options *o = t->o;
    ap_status st = lmt_layout_init(&t->L, cfg, err);
    if (st) return st;
    lmt_plan_init(&t->pl, &t->L, o->batch, o->seq_len);
    size_t np = t->L.total, n = (size_t)o->batch * o->seq_len, half = (size_t)cfg->head_dim / 2;
    if ((st = alloc_floats(&t->P, np, err)) || (st = alloc_floats(&t->G, np, err)) ||
        (st = alloc_floats(&t->m, np, err)) || (st = alloc_floats(&t->v, np, err)) ||
        (st = alloc_floats(&t->A, t->pl.total, err)))
        return st;
    t->cos_t = ap_malloc((size_t)o->seq_len * half * sizeof(float), err);
    t->sin_t = ap_malloc((size_t)o->seq_len * half * sizeof(float), err);
    t->seq = ap_malloc((size_t)(o->seq_len + 1) * sizeof *t->seq, err);
    t->inputs = ap_malloc(n * sizeof *t->inputs, err);
    t->targets = ap_malloc(n * sizeof *t->targets, err);
    if (!t->cos_t || !t->sin_t || !t->seq || !t->inputs || !t->targets) return AP_ERR_NOMEM;
    if (o->fim_middle_weight != 1.0 && !(t->row_weight = ap_malloc(n * sizeof *t->row_weight, err)))
        return AP_ERR_NOMEM;
    lm_rope_tables(t->cos_t, t->sin_t, o->seq_len, cfg->head_dim, cfg->rope_theta);
    return AP_OK;
}

/* B sequences from a stream into inputs/targets; *count: targets with a loss. */
static ap_status fill_batch(trainer *t, lmt_stream *s, int32_t *inputs, int32_t *targets, int *count,
                            ap_error *err) {
    int N = t->o->seq_len;
    *count = 0;
    for (int b = 0; b < t->o->batch; b++) {
        ap_status st = lmt_stream_next(s, t->seq, err);
        if (st) return st;
        *count += lmt_split_sequence(t->seq, N, t->sp.fim_pad, inputs + (size_t)b * N, targets + (size_t)b * N);
    }
    return AP_OK;
}

/* The held-out batches, drawn once from the held-out files (same recipe,
 * its own seed), so every evaluation sees the same sequences. */
static ap_status setup_eval(trainer *t, ap_error *err) {
    if (t->held_toks.n < (size_t)t->o->seq_len + 1) {
        ap_warn("too few held-out tokens (%zu) for an eval loss; raise --holdout", t->held_toks.n);
        return AP_OK;
    }
    size_t n = (size_t)t->o->batch * t->o->seq_len * t->o->eval_batches;
    t->eval_inputs = ap_malloc(n * sizeof *t->eval_inputs, err);
    t->eval_targets = ap_malloc(n * sizeof *t->eval_targets, err);
    if (!t->eval_inputs || !t->eval_targets) return AP_ERR_NOMEM;
    lmt_stream s;
    lmt_fim fim = {t->o->fim_rate, t->o->fim_split, t->o->fim_chunk};
    ap_status st = lmt_stream_init(&s, &t->held_toks, t->o->seq_len + 1, t->tok, &t->sp,
                                   ap_hash_mix(t->o->seed, 0x6576616cull), &fim, err);
    size_t per = (size_t)t->o->batch * t->o->seq_len;
    for (int i = 0; !st && i < t->o->eval_batches; i++) {
        int count;
        st = fill_batch(t, &s, t->eval_inputs + i * per, t->eval_targets + i * per, &count, err);
    }
    lmt_stream_free(&s);
    t->eval_count = st ? 0 : t->o->eval_batches;
    return st;
}

static double eval_loss(trainer *t) {
    size_t per = (size_t)t->o->batch * t->o->seq_len;
    double sum = 0;
    int64_t count = 0;
    for (int i = 0; i < t->eval_count; i++) {
        const int32_t *tg = t->eval_targets + i * per;
        lmt_forward_f(&t->L, &t->pl, t->cos_t, t->sin_t, t->P, t->A, t->eval_inputs + i * per);
        sum += lmt_head_f(&t->L, &t->pl, t->P, t->A, tg, 1.0, NULL, NULL);
        for (size_t j = 0; j < per; j++) count += tg[j] >= 0;
    }
    return count ? sum / (double)count : NAN;
}

/* One optimisation step on the batch in t->inputs/targets; returns the
 * batch's mean loss before the update. */
static double train_step(trainer *t, int count, double lr, double *gnorm) {
    const ap_lm_train_options *o = t->o;
    double scale = 1.0 / (count > 0 ? count : 1);
    memset(t->G, 0, t->L.total * sizeof *t->G);
    if (t->row_weight) {
        size_t n = (size_t)o->batch * o->seq_len;
        for (size_t i = 0; i < n; i++)
            t->row_weight[i] = t->inputs[i] == t->sp.fim_middle ? (float)o->fim_middle_weight : 1.0f;
    }
    lmt_forward_f(&t->L, &t->pl, t->cos_t, t->sin_t, t->P, t->A, t->inputs);
    double loss = lmt_head_f(&t->L, &t->pl, t->P, t->A, t->targets, scale, t->row_weight, t->G) * scale;
    lmt_backward_f(&t->L, &t->pl, t->cos_t, t->sin_t, t->P, t->A, t->inputs, t->G);
    *gnorm = ap_nn_grad_norm(t->G, t->L.total);
    /* torch.nn.utils.clip_grad_norm_ */
    double coef = o->clip / (*gnorm + 1e-6);
    if (coef < 1.0) ap_nn_scale(t->G, t->L.total, (float)coef);
    ap_nn_adamw t_opt = {o->beta1, o->beta2, 1e-8, o->weight_decay};
    lmt_adamw_update(&t->L, &t_opt, t->P, t->G, t->m, t->v, t->step + 1, lr);
    return loss;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

static ap_status copy_file(const char *from, const char *to, ap_error *err) {
    char *data;
    size_t len;
    ap_status st = ap_read_file(from, &data, &len, err);
    if (st) return st;
    st = ap_write_file_atomic(to, data, len, err);
    free(data);
    return st;
}

static ap_status save_checkpoint(trainer *t, ap_error *err) {
    const ap_lm_train_options *o = t->o;
    cJSON *j = cJSON_CreateObject();
    if (!j) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    char buf[64];
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddNumberToObject(j, "step", (double)t->step);
    cJSON_AddNumberToObject(j, "steps", (double)t->steps);
    cJSON_AddNumberToObject(j, "epoch", (double)t->stream.pos.epoch);
    cJSON_AddNumberToObject(j, "index", (double)t->stream.pos.index);
    cJSON *rng = cJSON_AddArrayToObject(j, "rng");
    for (int i = 0; rng && i < 4; i++) {
        snprintf(buf, sizeof buf, "%016llx", (unsigned long long)t->stream.pos.rng.s[i]);
        cJSON_AddItemToArray(rng, cJSON_CreateString(buf));
    }
    cJSON_AddItemToObject(j, "identity", cJSON_Duplicate(t->identity, 1));
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char *path = ap_path_join(o->out, STATE_FILE, err), *tok_out = ap_path_join(o->out, "tokenizer.json", err);
    ap_status st = AP_ERR_NOMEM;
    if (text && path && tok_out) {
        int64_t n = (int64_t)t->L.total;
        ap_tensor_view views[3] = {{"params", AP_F32, 1, {n}, t->P},
                                   {"adam_m", AP_F32, 1, {n}, t->m},
                                   {"adam_v", AP_F32, 1, {n}, t->v}};
        const char *meta[] = {STATE_KEY, text, NULL};
        if (!(st = ap_st_write(path, views, 3, meta, err)) &&
            !(st = lmt_export_hf(&t->L, t->P, o->out_dtype, o->out, err)))
            st = copy_file(t->tok_path, tok_out, err);
    }
    free(text);
    free(path);
    free(tok_out);
    return st;
}

/* Names the first identity field that differs, for the --resume error. */
static ap_status load_checkpoint(trainer *t, ap_error *err) {
    char *path = ap_path_join(t->o->out, STATE_FILE, err);
    if (!path) return AP_ERR_NOMEM;
    ap_safetensors *st_file;
    cJSON *j;
    ap_status st = ap_train_state_open(path, STATE_KEY, t->identity, "corpus, tokenizer, model and training options",
                                       &st_file, &j, err);
    if (st) {
        free(path);
        return st;
    }
    int64_t step, epoch, index;
    if ((st = ap_json_int(j, "step", path, &step, err)) || (st = ap_json_int(j, "epoch", path, &epoch, err)) ||
        (st = ap_json_int(j, "index", path, &index, err)))
        goto done;
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(j, "rng");
    if (!cJSON_IsArray(rng) || cJSON_GetArraySize(rng) != 4 || step < 0 || step > t->steps || epoch < 0 || index < 0 ||
        (size_t)index > t->stream.nwin) {
        st = ap_fail(err, AP_ERR_FORMAT, "%s: inconsistent training state", path);
        goto done;
    }
    for (int i = 0; i < 4; i++) {
        const cJSON *e = cJSON_GetArrayItem(rng, i);
        t->stream.pos.rng.s[i] = cJSON_IsString(e) ? strtoull(e->valuestring, NULL, 16) : 0;
    }
    int64_t shape[1] = {(int64_t)t->L.total};
    const char *names[3] = {"params", "adam_m", "adam_v"};
    float *dst[3] = {t->P, t->m, t->v};
    for (int i = 0; i < 3; i++) {
        const ap_tensor *tn;
        if ((st = ap_st_expect(st_file, names[i], 1, 1, shape, &tn, err))) goto done;
        if (tn->dtype != AP_F32) {
            st = ap_fail(err, AP_ERR_FORMAT, "%s: %s is not F32", path, names[i]);
            goto done;
        }
        memcpy(dst[i], tn->data, t->L.total * sizeof(float));
    }
    t->step = step;
    t->stream.pos.epoch = epoch;
    t->stream.pos.index = index;
done:
    cJSON_Delete(j);
    ap_st_close(st_file);
    free(path);
    return st;
}

static ap_status append_log(const char *path, const char *line, ap_error *err) {
    FILE *f = fopen(path, "a");
    if (!f) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot open", path);
    int bad = fputs(line, f) < 0;
    bad |= fclose(f) != 0;
    return bad ? ap_fail_errno(err, AP_ERR_IO, "%s: cannot write", path) : AP_OK;
}

/* ---- the run --------------------------------------------------------------------------------- */

/* The checkpoint's tokenizer.json, if it has one, must be byte for byte the
 * training tokenizer: the same vocabulary size is not enough. */
static ap_status same_tokenizer(const char *dir, const char *tok_path, ap_error *err) {
    char *path = ap_path_join(dir, "tokenizer.json", err), *a = NULL, *b = NULL;
    if (!path) return AP_ERR_NOMEM;
    size_t na, nb;
    ap_status st = AP_OK;
    if (ap_path_exists(path) && !(st = ap_read_file(path, &a, &na, err)) && !(st = ap_read_file(tok_path, &b, &nb, err)) &&
        (na != nb || memcmp(a, b, na) != 0))
        st = ap_fail(err, AP_ERR_ARG, "--init-from: %s is not the tokenizer given with --tokenizer (%s)", path, tok_path);
    free(path), free(a), free(b);
    return st;
}

/* --init-from: the parameters of a checkpoint of the same architecture and
 * tokenizer (a new run, with its own schedule and optimiser state, that
 * continues training a model). */
static ap_status init_from_checkpoint(trainer *t, const ap_lm_config *cfg, ap_error *err) {
    const char *dir = t->o->init_from;
    ap_lm *lm;
    ap_status st = ap_lm_load(dir, &lm, err);
    if (st) return ap_error_prefix(err, "--init-from");
    const ap_lm_config *c = &lm->cfg;
    if (c->vocab_size != cfg->vocab_size || c->hidden_size != cfg->hidden_size ||
        c->intermediate_size != cfg->intermediate_size || c->num_layers != cfg->num_layers ||
        c->num_heads != cfg->num_heads || c->num_kv_heads != cfg->num_kv_heads ||
        c->tie_word_embeddings != cfg->tie_word_embeddings || c->use_bias != cfg->use_bias)
        st = ap_fail(err, AP_ERR_ARG,
                     "--init-from %s: its architecture (hidden %d, %d layers, %d heads, %d KV heads, intermediate %d, "
                     "vocabulary %d) is not the one of --config %s (hidden %d, %d layers, %d heads, %d KV heads, "
                     "intermediate %d, vocabulary %d)",
                     dir, c->hidden_size, c->num_layers, c->num_heads, c->num_kv_heads, c->intermediate_size,
                     c->vocab_size, t->o->config, cfg->hidden_size, cfg->num_layers, cfg->num_heads,
                     cfg->num_kv_heads, cfg->intermediate_size, cfg->vocab_size);
    else if (!(st = same_tokenizer(dir, t->tok_path, err)))
        lmt_params_from_lm(&t->L, lm, t->P);
    ap_lm_free(lm);
    return st;
}

static ap_status setup(trainer *t, ap_error *err) {
    const ap_lm_train_options *o = t->o;
    ap_status st;
    if ((st = setup_tokenizer(t, err))) return st;
    ap_lm_config cfg;
    if ((st = ap_lm_train_config(o->config, (int)ap_tokenizer_vocab_size(t->tok), o->seq_len, &cfg, err)))
        return st;
    char *tok_text;
    size_t tok_len;
    if ((st = ap_read_file(t->tok_path, &tok_text, &tok_len, err))) return st;
    t->identity = identity_json(o, &cfg, ap_hash_bytes(tok_text, tok_len));
    free(tok_text);
    if (!t->identity) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    if ((st = lmt_docs_load(o->corpus, &o->corpus_opt, o->holdout, &t->train_docs, &t->held_docs, o->progress, err)))
        return st;
    if (t->train_docs.n == 0)
        return ap_fail(err, AP_ERR_ARG, "%s: no training files (after --include/--exclude and the held-out split)",
                       o->corpus);
    if ((st = lmt_tokenize_docs(&t->train_docs, t->tok, t->sp.eot, o->seed, &t->train_toks, o->progress, err)) ||
        (st = lmt_tokenize_docs(&t->held_docs, t->tok, t->sp.eot, ap_hash_mix(o->seed, 1), &t->held_toks, 0, err)))
        return st;
    ap_info("corpus: %zu training files (%.1f MB, %.2fM tokens), %zu held out (%.1f MB, %.2fM tokens)",
            t->train_docs.n, (double)t->train_docs.bytes / 1e6, (double)t->train_toks.n / 1e6, t->held_docs.n,
            (double)t->held_docs.bytes / 1e6, (double)t->held_toks.n / 1e6);
    /* only the tokens are needed from here on */
    t->train_files = t->train_docs.n;
    t->held_files = t->held_docs.n;
    lmt_docs_free(&t->train_docs);
    lmt_docs_free(&t->held_docs);
    if ((st = setup_model(t, &cfg, err))) return st;
    int64_t per_step = (int64_t)o->batch * o->seq_len;
    t->steps = (o->tokens + per_step - 1) / per_step;
    t->warmup = o->warmup >= 0 ? o->warmup : t->steps / 50;
    if (t->warmup < 1) t->warmup = 1;
    t->eval_every = o->eval_every > 0 ? o->eval_every : (t->steps + 19) / 20;
    t->ckpt_every = o->checkpoint_every > 0 ? o->checkpoint_every : (t->steps + 19) / 20;
    lmt_fim fim = {o->fim_rate, o->fim_split, o->fim_chunk};
    if ((st = lmt_stream_init(&t->stream, &t->train_toks, o->seq_len + 1, t->tok, &t->sp, o->seed, &fim, err)))
        return st;
    if ((st = setup_eval(t, err))) return st;
    if (o->resume) return load_checkpoint(t, err);
    if (o->init_from) return init_from_checkpoint(t, &cfg, err);
    lmt_layout_init_params(&t->L, t->P, o->seed);
    return AP_OK;
}

ap_status ap_lm_train(const ap_lm_train_options *o, ap_lm_train_result *res, ap_error *err) {
    memset(res, 0, sizeof *res);
    res->eval_loss = NAN;
    ap_status st = check_options(o, err);
    if (st) return st;
    if (!o->resume && ap_path_is_dir(o->out)) {
        char *state = ap_path_join(o->out, STATE_FILE, err);
        if (!state) return AP_ERR_NOMEM;
        int exists = ap_path_exists(state);
        free(state);
        if (exists)
            return ap_fail(err, AP_ERR_ARG, "%s already holds a training run; pass --resume to continue it or "
                           "choose another --out", o->out);
    }
    if ((st = ap_make_dirs(o->out, err))) return st;
    trainer t = {.o = o};
    char *log_path = ap_path_join(o->out, LOG_FILE, err);
    if (!log_path) return AP_ERR_NOMEM;
    if ((st = setup(&t, err))) goto done;
    if (o->resume) {
        if ((st = ap_log_keep_steps(log_path, t.step, err))) goto done;
        ap_info("resuming at step %lld of %lld", (long long)t.step, (long long)t.steps);
    } else if ((st = ap_write_file_atomic(log_path, "", 0, err))) {
        goto done;
    }
    res->params = (int64_t)(t.L.total);
    res->steps = t.steps;
    res->train_files = (int64_t)t.train_files;
    res->holdout_files = (int64_t)t.held_files;
    int64_t per_step = (int64_t)o->batch * o->seq_len, start = t.step;
    int64_t stop = o->stop_after > 0 && o->stop_after < t.steps ? o->stop_after : t.steps;
    ap_progress bar;
    if (o->progress) ap_progress_begin(&bar, "train", stop - start);
    double t0 = ap_now(), loss_sum = 0, last_loss = NAN, eval = NAN;
    int64_t loss_n = 0;
    while (t.step < stop) {
        int count;
        if ((st = fill_batch(&t, &t.stream, t.inputs, t.targets, &count, err))) break;
        double lr = lmt_lr_at(t.step, t.steps, t.warmup, o->lr, o->min_lr_ratio), gnorm;
        double loss = train_step(&t, count, lr, &gnorm);
        if (!isfinite(loss)) {
            st = ap_fail(err, AP_ERR_INTERNAL, "the loss became %g at step %lld; lower --lr", loss,
                         (long long)t.step + 1);
            break;
        }
        t.step++;
        loss_sum += loss, loss_n++;
        double elapsed = ap_now() - t0, tps = (double)(t.step - start) * per_step / (elapsed > 0 ? elapsed : 1);
        int last = t.step == stop;
        if (t.step % t.eval_every == 0 || last) {
            eval = eval_loss(&t);
            last_loss = loss_sum / (double)loss_n;
            char line[512];
            snprintf(line, sizeof line,
                     "{\"step\":%lld,\"tokens\":%lld,\"loss\":%.5f,\"eval_loss\":%.5f,\"lr\":%.3e,\"grad_norm\":%.4f,"
                     "\"tokens_per_s\":%.1f,\"elapsed_s\":%.1f}\n",
                     (long long)t.step, (long long)(t.step * per_step), last_loss, isnan(eval) ? -1.0 : eval, lr,
                     gnorm, tps, elapsed);
            if ((st = append_log(log_path, line, err))) break;
            ap_debug("%s", line);
            loss_sum = 0, loss_n = 0;
        }
        if (o->progress) {
            char extra[160];
            char ev[32] = "-";
            if (!isnan(eval)) snprintf(ev, sizeof ev, "%.3f", eval);
            snprintf(extra, sizeof extra, "loss %.3f eval %s | %.0f tok/s | lr %.1e", loss, ev, tps, lr);
            ap_progress_update(&bar, t.step - start, extra);
        }
        if ((t.step % t.ckpt_every == 0 || last) && (st = save_checkpoint(&t, err))) break;
    }
    res->seconds = ap_now() - t0;
    if (o->progress) {
        char extra[160];
        snprintf(extra, sizeof extra, "loss %.3f eval %.3f", last_loss, eval);
        ap_progress_end(&bar, extra);
    }
    res->step = t.step;
    res->train_loss = last_loss;
    res->eval_loss = eval;
    res->tokens_per_s = res->seconds > 0 ? (double)(t.step - start) * per_step / res->seconds : 0;
done:
    free(log_path);
    trainer_free(&t);
    return st;
}
