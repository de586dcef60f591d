/* Evaluating a checkpoint with the batched training forward pass: FIM
 * first-token accuracy on mined scenarios, loss on a corpus; and timing
 * training steps (ap_lm_train_bench). */
#include "kernels.h"
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A model's parameters in a layout, with activations for batches of up to
 * B sequences of length T (re-planned when T changes). */
typedef struct evaluator {
    lmt_layout L;
    lmt_plan pl;
    float *P, *A, *cos_t, *sin_t, *logits;
    size_t A_cap;
    int T;
} evaluator;

static void evaluator_free(evaluator *e) {
    lmt_layout_free(&e->L);
    ap_free_aligned(e->P);
    ap_free_aligned(e->A);
    free(e->cos_t);
    free(e->sin_t);
    free(e->logits);
}

static ap_status evaluator_init(evaluator *e, const ap_lm *lm, int B, ap_error *err) {
    memset(e, 0, sizeof *e);
    ap_status st = lmt_layout_init(&e->L, &lm->cfg, err);
    if (st) return st;
    e->P = ap_malloc_aligned(e->L.total * sizeof(float), err);
    e->logits = ap_malloc((size_t)B * lm->cfg.vocab_size * sizeof(float), err);
    if (!e->P || !e->logits) return AP_ERR_NOMEM;
    lmt_params_from_lm(&e->L, lm, e->P);
    return AP_OK;
}

/* Plans for nb sequences of T tokens (activations grown as needed). */
static ap_status evaluator_plan(evaluator *e, int nb, int T, ap_error *err) {
    lmt_plan_init(&e->pl, &e->L, nb, T);
    if (e->pl.total > e->A_cap) {
        ap_free_aligned(e->A);
        e->A = ap_malloc_aligned(e->pl.total * sizeof(float), err);
        if (!e->A) return AP_ERR_NOMEM;
        e->A_cap = e->pl.total;
    }
    if (T != e->T) {
        size_t half = (size_t)e->L.cfg.head_dim / 2;
        free(e->cos_t);
        free(e->sin_t);
        e->cos_t = ap_malloc((size_t)T * half * sizeof(float), err);
        e->sin_t = ap_malloc((size_t)T * half * sizeof(float), err);
        if (!e->cos_t || !e->sin_t) return AP_ERR_NOMEM;
        lm_rope_tables(e->cos_t, e->sin_t, T, e->L.cfg.head_dim, e->L.cfg.rope_theta);
        e->T = T;
    }
    return AP_OK;
}

/* ---- scenarios ---------------------------------------------------------------------------- */

typedef struct task_count {
    char name[48];
    int64_t n, correct;
} task_count;

typedef struct scen_batch {
    int32_t *ids;   /* [B, T] */
    int32_t *label; /* [B] */
    int *task;      /* [B] index into the task table */
    int n, T;
} scen_batch;

static int task_index(task_count *tasks, int *ntasks, const char *name) {
    for (int i = 0; i < *ntasks; i++)
        if (strcmp(tasks[i].name, name) == 0) return i;
    if (*ntasks == 64) return -1;
    snprintf(tasks[*ntasks].name, sizeof tasks[*ntasks].name, "%s", name);
    return (*ntasks)++;
}

/* Forward the batch, argmax of each last position against its label. */
static ap_status run_batch(evaluator *e, scen_batch *b, task_count *tasks, ap_error *err) {
    if (b->n == 0) return AP_OK;
    ap_status st = evaluator_plan(e, b->n, b->T, err);
    if (st) return st;
    lmt_forward_f(&e->L, &e->pl, e->cos_t, e->sin_t, e->P, e->A, b->ids);
    int rows[4096];
    for (int i = 0; i < b->n; i++) rows[i] = i * b->T + b->T - 1;
    lmt_logits_rows_f(&e->L, &e->pl, e->P, e->A, rows, b->n, e->logits);
    int V = e->L.cfg.vocab_size;
    for (int i = 0; i < b->n; i++) {
        const float *l = e->logits + (size_t)i * V;
        int best = 0;
        for (int j = 1; j < V; j++)
            if (l[j] > l[best]) best = j;
        tasks[b->task[i]].n++;
        tasks[b->task[i]].correct += best == b->label[i];
    }
    b->n = 0;
    return AP_OK;
}

/* One JSONL line into the batch; noise scenarios (no label) are skipped. */
static ap_status parse_line(const char *line, const char *path, int64_t lineno, const ap_lm_config *c,
                            scen_batch *b, task_count *tasks, int *ntasks, int *T_out, int64_t *skipped,
                            ap_error *err) {
    cJSON *j = cJSON_Parse(line);
    ap_status st = AP_OK;
    if (!j) return ap_fail(err, AP_ERR_FORMAT, "%s:%lld: not JSON", path, (long long)lineno);
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(j, "task");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "input_ids");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(j, "label_id");
    if (!cJSON_IsString(task) || !cJSON_IsArray(ids)) {
        st = ap_fail(err, AP_ERR_FORMAT, "%s:%lld: needs a string 'task' and an array 'input_ids'", path,
                     (long long)lineno);
        goto done;
    }
    if (!cJSON_IsNumber(label) || label->valuedouble < 0) {
        (*skipped)++;
        goto done;
    }
    int T = cJSON_GetArraySize(ids);
    if (T < 1 || T > c->max_position_embeddings) {
        st = ap_fail(err, AP_ERR_RANGE, "%s:%lld: %d input ids; the model takes 1..%d", path, (long long)lineno, T,
                     c->max_position_embeddings);
        goto done;
    }
    if (b->n > 0 && T != b->T) {
        st = ap_fail(err, AP_ERR_FORMAT, "%s:%lld: %d input ids where earlier scenarios have %d", path,
                     (long long)lineno, T, b->T);
        goto done;
    }
    if (label->valuedouble >= c->vocab_size) {
        st = ap_fail(err, AP_ERR_RANGE, "%s:%lld: label_id %.0f is outside the vocabulary", path, (long long)lineno,
                     label->valuedouble);
        goto done;
    }
    int k = task_index(tasks, ntasks, task->valuestring);
    if (k < 0) {
        st = ap_fail(err, AP_ERR_FORMAT, "%s:%lld: more than 64 distinct tasks", path, (long long)lineno);
        goto done;
    }
    int32_t *row = b->ids + (size_t)b->n * T;
    int t = 0;
    for (const cJSON *e = ids->child; e; e = e->next, t++) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= c->vocab_size) {
            st = ap_fail(err, AP_ERR_RANGE, "%s:%lld: input id %d is not a token id of the model (0..%d)", path,
                         (long long)lineno, t, c->vocab_size - 1);
            goto done;
        }
        row[t] = (int32_t)e->valuedouble;
    }
    b->label[b->n] = (int32_t)label->valuedouble;
    b->task[b->n] = k;
    b->T = T;
    b->n++;
    *T_out = T;
done:
    cJSON_Delete(j);
    return st;
}

static cJSON *counts_json(int64_t n, int64_t correct) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", (double)n);
    cJSON_AddNumberToObject(o, "correct", (double)correct);
    cJSON_AddNumberToObject(o, "accuracy", n ? (double)correct / (double)n : 0.0);
    return o;
}

static ap_status eval_scenarios(evaluator *e, const ap_lm_eval_options *o, cJSON *out, ap_error *err) {
    const ap_lm_config *c = &e->L.cfg;
    char *data;
    size_t len;
    ap_status st = ap_read_file(o->scenarios, &data, &len, err);
    if (st) return st;
    int B = o->batch;
    scen_batch b = {0};
    task_count tasks[64] = {{{0}, 0, 0}};
    int ntasks = 0, T = 0;
    int64_t lineno = 0, skipped = 0;
    b.ids = ap_malloc((size_t)B * c->max_position_embeddings * sizeof *b.ids, err);
    b.label = ap_malloc((size_t)B * sizeof *b.label, err);
    b.task = ap_malloc((size_t)B * sizeof *b.task, err);
    if (!b.ids || !b.label || !b.task) st = AP_ERR_NOMEM;
    ap_progress bar;
    if (o->progress) ap_progress_begin(&bar, "scenarios", (int64_t)len);
    for (char *line = data; !st && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        lineno++;
        if (*line && !(st = parse_line(line, o->scenarios, lineno, c, &b, tasks, &ntasks, &T, &skipped, err)) &&
            b.n == B)
            st = run_batch(e, &b, tasks, err);
        line = nl ? nl + 1 : line + strlen(line);
        if (o->progress) ap_progress_update(&bar, (int64_t)(line - data), NULL);
    }
    if (!st) st = run_batch(e, &b, tasks, err);
    if (o->progress) ap_progress_end(&bar, NULL);
    if (!st) {
        cJSON *s = cJSON_AddObjectToObject(out, "scenarios");
        cJSON_AddStringToObject(s, "file", o->scenarios);
        int64_t n = 0, correct = 0;
        cJSON *per = cJSON_CreateObject();
        for (int i = 0; i < ntasks; i++) {
            n += tasks[i].n, correct += tasks[i].correct;
            cJSON_AddItemToObject(per, tasks[i].name, counts_json(tasks[i].n, tasks[i].correct));
        }
        cJSON_AddNumberToObject(s, "input_length", T);
        cJSON_AddNumberToObject(s, "unlabeled_skipped", (double)skipped);
        cJSON_AddItemToObject(s, "overall", counts_json(n, correct));
        cJSON_AddItemToObject(s, "tasks", per);
    }
    free(b.ids);
    free(b.label);
    free(b.task);
    free(data);
    return st;
}

/* ---- corpus loss -------------------------------------------------------------------------------- */

static ap_status eval_corpus(evaluator *e, const ap_lm_eval_options *o, cJSON *out, ap_error *err) {
    int N = e->L.cfg.max_position_embeddings, B = o->batch;
    ap_tokenizer *tok = NULL;
    char *tok_path = ap_path_join(o->model, "tokenizer.json", err);
    lmt_docs docs = {0}, none = {0};
    lmt_tokens toks = {0};
    lmt_stream s = {0};
    int32_t *seq = NULL, *inputs = NULL, *targets = NULL;
    ap_status st = AP_ERR_NOMEM;
    if (!tok_path) goto done;
    lmt_special sp;
    if ((st = ap_tokenizer_load(tok_path, &tok, err)) || (st = lmt_special_lookup(tok, tok_path, &sp, err)) ||
        (st = lmt_docs_load(o->corpus, &o->corpus_opt, 0.0, &docs, &none, o->progress, err)))
        goto done;
    if (docs.n == 0) {
        st = ap_fail(err, AP_ERR_ARG, "%s: no files to evaluate on", o->corpus);
        goto done;
    }
    if ((st = lmt_tokenize_docs(&docs, tok, sp.eot, o->seed, &toks, o->progress, err)) ||
        (st = lmt_stream_init(&s, &toks, N + 1, tok, &sp, o->seed,
                              &(lmt_fim){o->fim_rate, o->fim_split, o->fim_chunk}, err)))
        goto done;
    st = AP_ERR_NOMEM;
    seq = ap_malloc((size_t)(N + 1) * sizeof *seq, err);
    inputs = ap_malloc((size_t)B * N * sizeof *inputs, err);
    targets = ap_malloc((size_t)B * N * sizeof *targets, err);
    if (!seq || !inputs || !targets) goto done;
    /* at most one pass over the corpus, at most max_tokens */
    int64_t max_seqs = (o->max_tokens + N - 1) / N, nseq = 0, count = 0;
    if ((size_t)max_seqs > s.nwin) max_seqs = (int64_t)s.nwin;
    double sum = 0;
    st = AP_OK;
    while (!st && nseq < max_seqs) {
        int nb = 0;
        for (; nb < B && nseq < max_seqs; nb++, nseq++) {
            if ((st = lmt_stream_next(&s, seq, err))) break;
            lmt_split_sequence(seq, N, sp.fim_pad, inputs + (size_t)nb * N, targets + (size_t)nb * N);
        }
        if (st || nb == 0 || (st = evaluator_plan(e, nb, N, err))) break;
        lmt_forward_f(&e->L, &e->pl, e->cos_t, e->sin_t, e->P, e->A, inputs);
        sum += lmt_head_f(&e->L, &e->pl, e->P, e->A, targets, 1.0, NULL, NULL);
        for (int i = 0; i < nb * N; i++) count += targets[i] >= 0;
    }
    if (!st) {
        cJSON *h = cJSON_AddObjectToObject(out, "heldout");
        cJSON_AddStringToObject(h, "corpus", o->corpus);
        cJSON_AddNumberToObject(h, "files", (double)docs.n);
        cJSON_AddNumberToObject(h, "sequences", (double)nseq);
        cJSON_AddNumberToObject(h, "tokens", (double)count);
        cJSON_AddNumberToObject(h, "fim_rate", o->fim_rate);
        cJSON_AddStringToObject(h, "fim_split", o->fim_split == AP_FIM_SPLIT_BOUNDARY ? "boundary" : "char");
        cJSON_AddNumberToObject(h, "fim_chunk", o->fim_chunk);
        double loss = count ? sum / (double)count : NAN;
        cJSON_AddNumberToObject(h, "loss", loss);
        cJSON_AddNumberToObject(h, "perplexity", exp(loss));
    }
done:
    ap_tokenizer_free(tok);
    free(tok_path);
    lmt_docs_free(&docs);
    lmt_docs_free(&none);
    lmt_tokens_free(&toks);
    lmt_stream_free(&s);
    free(seq);
    free(inputs);
    free(targets);
    return st;
}

ap_status ap_lm_eval(const ap_lm_eval_options *o, ap_buf *out, ap_error *err) {
    if (!o->scenarios && !o->corpus) return ap_fail(err, AP_ERR_ARG, "give --scenarios, --corpus or both");
    if (o->batch < 1 || o->batch > 4096)
        return ap_fail(err, AP_ERR_ARG, "--batch %d is out of range 1..4096", o->batch);
    ap_lm *lm = NULL;
    ap_status st = ap_lm_load(o->model, &lm, err);
    if (st) return st;
    evaluator e;
    cJSON *j = cJSON_CreateObject();
    if ((st = evaluator_init(&e, lm, o->batch, err))) goto done;
    cJSON_AddStringToObject(j, "model", o->model);
    if (o->scenarios && (st = eval_scenarios(&e, o, j, err))) goto done;
    if (o->corpus && (st = eval_corpus(&e, o, j, err))) goto done;
    char *text = cJSON_Print(j);
    if (!text) {
        st = ap_fail(err, AP_ERR_NOMEM, "out of memory");
        goto done;
    }
    st = ap_buf_printf(out, err, "%s\n", text);
    free(text);
done:
    cJSON_Delete(j);
    evaluator_free(&e);
    ap_lm_free(lm);
    return st;
}

/* ---- training benchmark ---------------------------------------------------------------------------- */

ap_status ap_lm_train_bench(const ap_lm_config *cfg, int B, int T, int steps, double *tokens_per_s, double *gflops,
                            ap_error *err) {
    lmt_layout L;
    ap_status st = lmt_layout_init(&L, cfg, err);
    if (st) return st;
    lmt_plan pl;
    lmt_plan_init(&pl, &L, B, T);
    size_t np = L.total, n = (size_t)B * T, half = (size_t)cfg->head_dim / 2;
    float *P = ap_malloc_aligned(np * sizeof(float), err), *G = ap_malloc_aligned(np * sizeof(float), err);
    float *m = ap_calloc(np, sizeof(float), err), *v = ap_calloc(np, sizeof(float), err);
    float *A = ap_malloc_aligned(pl.total * sizeof(float), err);
    float *cos_t = ap_malloc((size_t)T * half * sizeof(float), err);
    float *sin_t = ap_malloc((size_t)T * half * sizeof(float), err);
    int32_t *ids = ap_malloc(n * sizeof *ids, err), *tg = ap_malloc(n * sizeof *tg, err);
    st = AP_ERR_NOMEM;
    if (!P || !G || !m || !v || !A || !cos_t || !sin_t || !ids || !tg) goto done;
    lmt_layout_init_params(&L, P, 1);
    lm_rope_tables(cos_t, sin_t, T, cfg->head_dim, cfg->rope_theta);
    ap_rng rng;
    ap_rng_seed(&rng, 1);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)ap_rng_below(&rng, (uint64_t)cfg->vocab_size);
    for (size_t i = 0; i < n; i++) tg[i] = ids[(i + 1) % n];
    ap_nn_adamw opt = {0.9, 0.95, 1e-8, 0.1};
    double best = 1e30;
    for (int s = 0; s <= steps; s++) {
        double t0 = ap_now();
        memset(G, 0, np * sizeof *G);
        lmt_forward_f(&L, &pl, cos_t, sin_t, P, A, ids);
        lmt_head_f(&L, &pl, P, A, tg, 1.0 / (double)n, NULL, G);
        lmt_backward_f(&L, &pl, cos_t, sin_t, P, A, ids, G);
        double norm = ap_nn_grad_norm(G, np);
        if (norm > 1.0) ap_nn_scale(G, np, (float)(1.0 / norm));
        lmt_adamw_update(&L, &opt, P, G, m, v, s + 1, 1e-4);
        double dt = ap_now() - t0;
        if (s > 0 && dt < best) best = dt; /* step 0 warms caches and pages */
    }
    *tokens_per_s = (double)n / best;
    *gflops = ap_lm_train_flops(cfg, B, T) / best / 1e9;
    st = AP_OK;
done:
    lmt_layout_free(&L);
    ap_free_aligned(P);
    ap_free_aligned(G);
    free(m);
    free(v);
    ap_free_aligned(A);
    free(cos_t);
    free(sin_t);
    free(ids);
    free(tg);
    return st;
}
