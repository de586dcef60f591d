/* AP-MAE training data: the held-out split by sample, the tasks taken in
 * turn, and each task's patterns shuffled per epoch and read on demand. */
#include "train_internal.h"

#include <stdlib.h>
#include <string.h>

static uint64_t id_hash(const char *id, uint64_t seed) { return ap_hash_mix(ap_hash_bytes(id, strlen(id)), seed); }

int ap_mae_id_heldout(const char *id, uint64_t seed, double rate) {
    return (double)(id_hash(id, seed) >> 11) * 0x1.0p-53 < rate;
}

static int name_in(const char *name, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) return 1;
    return 0;
}

ap_status ap_mae_split(ap_store *s, const char *const *tasks, size_t ntasks, double rate, uint64_t seed,
                       signed char *role, ap_error *err) {
    const int64_t S = ap_store_count(s);
    int64_t any = 0, best = -1;
    uint64_t best_hash = UINT64_MAX;
    for (int64_t i = 0; i < S; i++) {
        ap_store_sample r;
        ap_status st = ap_store_read_sample(s, i, &r, NULL, err);
        if (st) return st;
        if (ntasks > 0 && !name_in(r.task, tasks, ntasks)) {
            role[i] = AP_MAE_EXCLUDED;
            continue;
        }
        role[i] = ap_mae_id_heldout(r.id, seed, rate) ? AP_MAE_HELDOUT : AP_MAE_TRAIN;
        any += role[i] == AP_MAE_HELDOUT;
        uint64_t h = id_hash(r.id, seed);
        if (h < best_hash) best_hash = h, best = i;
    }
    if (rate > 0 && !any && best >= 0) role[best] = AP_MAE_HELDOUT;
    return AP_OK;
}

/* ---- tasks ------------------------------------------------------------------------------ */

static void free_names(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static ap_status add_name(char ***names, size_t *n, const char *name, size_t len, ap_error *err) {
    char **grown = ap_realloc(*names, (*n + 1) * sizeof *grown, err);
    if (!grown) return AP_ERR_NOMEM;
    *names = grown;
    if (!(grown[*n] = ap_malloc(len + 1, err))) return AP_ERR_NOMEM;
    memcpy(grown[*n], name, len);
    grown[(*n)++][len] = '\0';
    return AP_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The distinct task names of the store, sorted. */
static ap_status store_tasks(ap_store *s, char ***names, size_t *n, ap_error *err) {
    *names = NULL;
    *n = 0;
    for (int64_t i = 0; i < ap_store_count(s); i++) {
        ap_store_sample r;
        ap_status st = ap_store_read_sample(s, i, &r, NULL, err);
        if (!st && !name_in(r.task, (const char *const *)*names, *n)) st = add_name(names, n, r.task, strlen(r.task), err);
        if (st) return st;
    }
    if (*n) qsort(*names, *n, sizeof **names, cmp_str);
    return AP_OK;
}

/* "a,b,c" checked against the store's tasks. */
static ap_status parse_tasks(const char *csv, char *const *have, size_t nhave, char ***names, size_t *n,
                             ap_error *err) {
    for (const char *p = csv;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) return ap_fail(err, AP_ERR_ARG, "--tasks '%s': empty task name", csv);
        ap_status st = add_name(names, n, p, len, err);
        if (st) return st;
        const char *name = (*names)[*n - 1];
        if (name_in(name, (const char *const *)*names, *n - 1))
            return ap_fail(err, AP_ERR_ARG, "--tasks: task '%s' is named twice", name);
        if (!name_in(name, (const char *const *)have, nhave)) {
            ap_buf list = {0};
            for (size_t i = 0; i < nhave; i++) ap_buf_printf(&list, NULL, "%s%s", i ? ", " : "", have[i]);
            ap_fail(err, AP_ERR_ARG, "--tasks: the store has no task '%s' (it has: %s)", name,
                    list.data ? list.data : "none");
            ap_buf_free(&list);
            return AP_ERR_ARG;
        }
        if (!end) return AP_OK;
        p = end;
    }
}

/* ---- order ------------------------------------------------------------------------------ */

static uint64_t task_order_seed(const mae_data *d, const mae_task *t) {
    return ap_hash_mix(ap_hash_mix(d->seed, ap_hash_bytes(t->name, strlen(t->name))), (uint64_t)t->epoch);
}

/* The head selection changes every epoch (layerwise:q sees other heads), the
 * same for every task. */
static uint64_t head_seed(const mae_data *d, int64_t epoch) {
    return ap_hash_mix(ap_hash_mix(d->seed, 0x6865616473ull /* "heads" */), (uint64_t)epoch);
}

static void shuffle(const mae_data *d, mae_task *t) {
    ap_rng rng;
    ap_rng_seed(&rng, task_order_seed(d, t));
    for (int64_t j = 0; j < t->npatterns; j++) t->perm[j] = j;
    for (int64_t j = t->npatterns - 1; j > 0; j--) {
        int64_t k = (int64_t)ap_rng_below(&rng, (uint64_t)j + 1), tmp = t->perm[j];
        t->perm[j] = t->perm[k];
        t->perm[k] = tmp;
    }
}

static ap_status task_samples(mae_data *d, mae_task *t, ap_error *err) {
    ap_status st = ap_store_filter(d->store, t->name, -1, &t->samples, &t->nsamples, err);
    if (st) return st;
    size_t n = 0;
    for (size_t i = 0; i < t->nsamples; i++)
        if (d->role[t->samples[i]] == AP_MAE_TRAIN) t->samples[n++] = t->samples[i];
    t->nsamples = n;
    t->npatterns = (int64_t)t->nsamples * d->L * d->q;
    if (t->npatterns == 0) return AP_OK;
    if (!(t->perm = ap_malloc((size_t)t->npatterns * sizeof *t->perm, err))) return AP_ERR_NOMEM;
    shuffle(d, t);
    return AP_OK;
}

void mae_data_free(mae_data *d) {
    for (size_t i = 0; i < d->ntasks; i++) {
        free(d->tasks[i].name);
        free(d->tasks[i].samples);
        free(d->tasks[i].perm);
    }
    free(d->tasks);
    free(d->role);
    memset(d, 0, sizeof *d);
}

static ap_status data_init(mae_data *d, const char *heads, const char *tasks_csv, double holdout, char ***names,
                           size_t *n, ap_error *err) {
    const ap_store_meta *m = ap_store_get_meta(d->store);
    d->L = m->num_layers;
    d->H = m->num_heads;
    ap_status st = ap_head_sel_parse(heads, &d->sel, err);
    if (!st) st = ap_head_sel_per_layer(&d->sel, d->H, &d->q, err);
    if (st) return ap_error_prefix(err, "--heads");
    char **have = NULL;
    size_t nhave = 0;
    st = store_tasks(d->store, &have, &nhave, err);
    if (!st && tasks_csv) st = parse_tasks(tasks_csv, have, nhave, names, n, err);
    if (!st && !tasks_csv) *names = have, *n = nhave, have = NULL, nhave = 0;
    free_names(have, nhave);
    if (st) return st;
    const int64_t S = ap_store_count(d->store);
    if (!(d->role = ap_malloc((size_t)(S ? S : 1), err))) return AP_ERR_NOMEM;
    if ((st = ap_mae_split(d->store, tasks_csv ? (const char *const *)*names : NULL, tasks_csv ? *n : 0, holdout,
                           d->seed, d->role, err)))
        return st;
    for (int64_t i = 0; i < S; i++) {
        d->train_samples += d->role[i] == AP_MAE_TRAIN;
        d->heldout_samples += d->role[i] == AP_MAE_HELDOUT;
    }
    if (!(d->tasks = ap_calloc(*n ? *n : 1, sizeof *d->tasks, err))) return AP_ERR_NOMEM;
    for (size_t i = 0; i < *n; i++) {
        mae_task *t = &d->tasks[d->ntasks++];
        t->name = (*names)[i];
        (*names)[i] = NULL;
        if ((st = task_samples(d, t, err))) return st;
        if (t->npatterns == 0) { /* every sample of it held out */
            ap_warn("task '%s' has no training samples; it is skipped", t->name);
            free(t->name);
            free(t->samples);
            memset(t, 0, sizeof *t);
            d->ntasks--;
            continue;
        }
        d->train_patterns += t->npatterns;
    }
    if (d->ntasks == 0)
        return ap_fail(err, AP_ERR_ARG, "%s: no training samples (%lld samples, %lld held out)",
                       ap_store_path(d->store), (long long)S, (long long)d->heldout_samples);
    return AP_OK;
}

ap_status mae_data_init(mae_data *d, ap_store *store, const char *heads, const char *tasks_csv, double holdout,
                        uint64_t seed, ap_error *err) {
    memset(d, 0, sizeof *d);
    d->store = store;
    d->seed = seed;
    char **names = NULL;
    size_t n = 0;
    ap_status st = data_init(d, heads, tasks_csv, holdout, &names, &n, err);
    free_names(names, n);
    if (st) mae_data_free(d);
    return st;
}

ap_status mae_data_seek(mae_data *d, size_t t, int64_t epoch, int64_t pos, ap_error *err) {
    mae_task *k = &d->tasks[t];
    if (epoch < 0 || pos < 0 || pos > k->npatterns)
        return ap_fail(err, AP_ERR_FORMAT, "task '%s': data position (epoch %lld, %lld) outside its %lld patterns",
                       k->name, (long long)epoch, (long long)pos, (long long)k->npatterns);
    if (epoch != k->epoch) {
        k->epoch = epoch;
        shuffle(d, k);
    }
    k->pos = pos;
    return AP_OK;
}

ap_status mae_data_next(mae_data *d, int64_t step, int B, ap_pattern_ref *refs, ap_error *err) {
    mae_task *t = &d->tasks[step % (int64_t)d->ntasks];
    const int64_t per_sample = (int64_t)d->L * d->q;
    for (int b = 0; b < B; b++) {
        if (t->pos == t->npatterns) {
            t->epoch++;
            t->pos = 0;
            shuffle(d, t);
        }
        int64_t k = t->perm[t->pos++], sample = t->samples[k / per_sample];
        int layer = (int)(k / d->q % d->L), slot = (int)(k % d->q), head = slot;
        if (d->q < d->H) {
            ap_pattern_ref *sel;
            size_t n;
            ap_status st = ap_select_heads(&d->sel, d->L, d->H, &sample, 1, head_seed(d, t->epoch), &sel, &n, err);
            if (st) return st;
            head = sel[(size_t)layer * d->q + slot].head;
            free(sel);
        }
        refs[b] = (ap_pattern_ref){sample, layer, head};
    }
    return AP_OK;
}

ap_status mae_store_ids_hash(ap_store *s, int64_t count, uint64_t *out, ap_error *err) {
    uint64_t h = 0x6964730000000000ull; /* "ids" */
    for (int64_t i = 0; i < count; i++) {
        ap_store_sample r;
        ap_status st = ap_store_read_sample(s, i, &r, NULL, err);
        if (st) return st;
        h = ap_hash_mix(h, ap_hash_bytes(r.id, strlen(r.id)));
    }
    *out = h;
    return AP_OK;
}

ap_status mae_is_training_store(ap_store *s, const mae_record *rec, int *yes, ap_error *err) {
    const char *model_id = ap_store_get_meta(s)->model_id;
    *yes = rec->present && model_id && strcmp(model_id, rec->model_id) == 0;
    if (!*yes || !rec->has_ids_hash) return AP_OK;
    uint64_t h = 0;
    ap_status st = rec->store_samples <= ap_store_count(s) ? mae_store_ids_hash(s, rec->store_samples, &h, err) : AP_OK;
    *yes = !st && rec->store_samples <= ap_store_count(s) && h == rec->store_ids_hash;
    return st;
}

ap_status mae_read_refs(ap_store *s, const ap_pattern_ref *refs, size_t n, float *out, ap_error *err) {
    const size_t NN = (size_t)ap_store_get_meta(s)->n_tokens * (size_t)ap_store_get_meta(s)->n_tokens;
    for (size_t i = 0; i < n; i++) {
        ap_status st = ap_store_read_pattern(s, refs[i].sample, refs[i].layer, refs[i].head, out + i * NN, err);
        if (st) return st;
    }
    return AP_OK;
}

ap_status mae_check_store_n(ap_store *s, const ap_mae_config *cfg, const char *what, ap_error *err) {
    int N = ap_store_get_meta(s)->n_tokens;
    if (N != cfg->max_length)
        return ap_fail(err, AP_ERR_ARG, "%s: patterns are %dx%d (N = %d tokens) but %s has max_length %d; use an "
                       "AP-MAE config with max_length %d", ap_store_path(s), N, N, N, what, cfg->max_length, N);
    return AP_OK;
}
