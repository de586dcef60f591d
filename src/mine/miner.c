/* The miner: one streaming pass over a corpus serves every task.
 *
 * Sampling (docs/mining.md): each file gets a key, a hash of the seed and its
 * source path; sorted by key, the files are one seeded visiting order for all
 * tasks. A task keeps the K scenarios with the smallest keys among the files
 * that give it one (bottom-K, a reservoir that does not depend on reading
 * order). That is exactly "visit the files in key order and take the first K
 * that give a scenario", so the scenarios are spread uniformly over the
 * corpus, and a file whose key cannot enter a task's current bottom K is not
 * even searched for that task. Files are read sequentially in batches of a
 * fixed size and searched in parallel; a batch sees the reservoirs as of its
 * start (a stale threshold only lets more candidates through), and candidates
 * are merged in reading order, so the result does not depend on the number of
 * threads. */
#include "apmae/mine.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define BATCH_FILES 64
#define RANDOM_TAIL 15            /* the random span never starts in the last 15 tokens */
#define RANDOM_MIN 3
#define RANDOM_MAX 10

/* ---- keys and draws ---- */

/* A file's place in the seeded visiting order, the same for every task (as
 * the published loaders walk one shuffled dataset per task from its start),
 * so a file drawn for several tasks is searched once for all of them. */
static uint64_t file_key(uint64_t seed, uint64_t source_hash) { return ap_hash_mix(seed, source_hash); }

/* The generator of a task's draw in a file: fixed by the key and the task. */
static void draw_rng(ap_rng *r, uint64_t key, ap_task t) {
    ap_rng_seed(r, ap_hash_mix(ap_hash_mix(key, 0x64726177u), (uint64_t)t + 1));
}

/* Is (key, ordinal) before b's? Ties of key (duplicate source names) go to
 * the file read first. */
static int before(uint64_t key, int64_t ordinal, const ap_scenario *b) {
    return key < b->key || (key == b->key && ordinal < b->ordinal);
}

/* ---- per-task reservoirs: max-heaps of the K smallest keys ---- */

typedef struct heap {
    ap_scenario *v;
    size_t n, cap; /* cap = K */
    size_t alloc;  /* grown on demand, so a large K costs only what is found */
} heap;

static void scenario_free(ap_scenario *s) {
    free(s->source);
    free(s->target);
    free(s->input_ids);
    memset(s, 0, sizeof *s);
}

static void swap(ap_scenario *a, ap_scenario *b) {
    ap_scenario t = *a;
    *a = *b;
    *b = t;
}

static void sift_down(heap *h, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && before(h->v[m].key, h->v[m].ordinal, &h->v[l])) m = l;
        if (r < h->n && before(h->v[m].key, h->v[m].ordinal, &h->v[r])) m = r;
        if (m == i) return;
        swap(&h->v[i], &h->v[m]);
        i = m;
    }
}

static void sift_up(heap *h, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(h->v[p].key, h->v[p].ordinal, &h->v[i])) return;
        swap(&h->v[i], &h->v[p]);
        i = p;
    }
}

/* Would a candidate with this key enter the reservoir? */
static int wanted(const heap *h, uint64_t key, int64_t ordinal) {
    return h->n < h->cap || before(key, ordinal, &h->v[0]);
}

/* Takes ownership of s: keeps it (evicting the largest key) or frees it. */
static ap_status heap_offer(heap *h, ap_scenario *s, ap_error *err) {
    if (h->n < h->cap && h->n == h->alloc) {
        size_t a = h->alloc ? 2 * h->alloc : 64;
        if (a > h->cap) a = h->cap;
        ap_scenario *v = ap_realloc(h->v, a * sizeof *v, err);
        if (!v) {
            scenario_free(s);
            return AP_ERR_NOMEM;
        }
        h->v = v;
        h->alloc = a;
    }
    if (h->n < h->cap) {
        h->v[h->n] = *s;
        sift_up(h, h->n++);
    } else if (before(s->key, s->ordinal, &h->v[0])) {
        scenario_free(&h->v[0]);
        h->v[0] = *s;
        sift_down(h, 0);
    } else {
        scenario_free(s);
    }
    memset(s, 0, sizeof *s);
    return AP_OK;
}

static int cmp_scenario(const void *a, const void *b) {
    const ap_scenario *x = a, *y = b;
    return before(x->key, x->ordinal, y) ? -1 : before(y->key, y->ordinal, x) ? 1 : 0;
}

/* ---- one file ---- */

typedef struct batch_file {
    char *source, *data;
    size_t len;
    int64_t ordinal;
    uint64_t source_hash;
} batch_file;

typedef struct file_result {
    ap_scenario cand[AP_TASK_COUNT];
    int has[AP_TASK_COUNT];
    ap_task_stats st[AP_TASK_COUNT];
    ap_status status;
    ap_error err;
} file_result;

typedef struct worker {
    ap_finder *finder;
    ap_spans spans[AP_TASK_COUNT];
} worker;

typedef struct mine_ctx {
    const ap_mine_vocab *vocab;
    const ap_mine_options *opt;
    heap heaps[AP_TASK_COUNT];
    worker *workers;
    int nworkers;
} mine_ctx;

/* Draws the random task's target: a span of 3..10 whole-file tokens starting
 * before the last 15, widened to whole UTF-8 characters. *found = 0 when the
 * file has too few tokens. */
static ap_status draw_random(const mine_ctx *cx, const batch_file *f, ap_rng *rng, ap_task_stats *ts, ap_span *span,
                             int *found, ap_error *err) {
    int32_t *ids;
    size_t n;
    *found = 0;
    ap_status st = ap_tokenizer_encode(cx->vocab->tok, f->data, f->len, &ids, &n, err);
    if (st) return st;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += cx->vocab->byte_len[ids[i]];
    if (total != f->len) {
        free(ids);
        return ap_fail(err, AP_ERR_INTERNAL, "%s: its %zu tokens decode to %zu bytes, not %zu", f->source, n, total,
                       f->len);
    }
    if (n > RANDOM_TAIL) {
        ts->matches += (int64_t)(n - RANDOM_TAIL);
        size_t first = ap_rng_below(rng, n - RANDOM_TAIL);
        size_t count = RANDOM_MIN + ap_rng_below(rng, RANDOM_MAX - RANDOM_MIN + 1);
        size_t a = 0, b;
        for (size_t i = 0; i < first; i++) a += cx->vocab->byte_len[ids[i]];
        b = a;
        for (size_t i = first; i < first + count; i++) b += cx->vocab->byte_len[ids[i]];
        while (a > 0 && ((unsigned char)f->data[a] & 0xC0) == 0x80) a--;
        while (b < f->len && ((unsigned char)f->data[b] & 0xC0) == 0x80) b++;
        *span = (ap_span){a, b};
        *found = 1;
    }
    free(ids);
    return AP_OK;
}

static ap_status make_candidate(const mine_ctx *cx, const batch_file *f, ap_task t, uint64_t key, ap_span span,
                                file_result *res, ap_error *err) {
    ap_scenario *s = &res->cand[t];
    size_t n = cx->opt->max_length;
    s->input_ids = ap_malloc(n * sizeof *s->input_ids, err);
    if (!s->input_ids) return AP_ERR_NOMEM;
    ap_fim_input in = {.ids = s->input_ids};
    ap_status st = ap_fim_build(cx->vocab, f->data, f->len, span.start, span.end, n, &in, err);
    if (st || in.result != AP_FIM_OK) {
        if (!st) res->st[t].too_short += in.result == AP_FIM_TOO_SHORT;
        if (!st) res->st[t].special_token += in.result == AP_FIM_SPECIAL_TOKEN;
        scenario_free(s);
        return st;
    }
    s->task = t;
    s->start = span.start;
    s->end = span.end;
    s->label_id = in.label_id;
    s->prefix_tokens = in.prefix_tokens;
    s->suffix_tokens = in.suffix_tokens;
    s->key = key;
    s->ordinal = f->ordinal;
    s->source = ap_strdup(f->source, err);
    s->target = s->source ? ap_malloc(span.end - span.start + 1, err) : NULL;
    if (!s->target) {
        scenario_free(s);
        return AP_ERR_NOMEM;
    }
    memcpy(s->target, f->data + span.start, span.end - span.start);
    s->target[span.end - span.start] = '\0';
    res->has[t] = 1;
    return AP_OK;
}

/* Searches one file for every task whose reservoir its key could enter (as
 * of the batch's start, thresholds in `snap`). */
static ap_status process_file(const mine_ctx *cx, worker *w, const batch_file *f, const heap *snap, file_result *res,
                              ap_error *err) {
    int want[AP_TASK_COUNT] = {0}, any = 0;
    uint64_t key = file_key(cx->opt->seed, f->source_hash);
    for (int t = 0; t < AP_TASK_COUNT; t++) {
        if (!cx->opt->tasks[t] || t == AP_TASK_NOISE) continue;
        want[t] = wanted(&snap[t], key, f->ordinal);
        any |= want[t];
    }
    if (!any) return AP_OK;
    ap_status st = ap_finder_find(w->finder, f->data, f->len, want, w->spans, err);
    for (int t = 0; !st && t < AP_TASK_COUNT; t++) {
        if (!want[t]) continue;
        ap_task_stats *ts = &res->st[t];
        ts->files_examined++;
        ap_rng rng;
        draw_rng(&rng, key, (ap_task)t);
        ap_span span;
        int found;
        if (t == AP_TASK_RANDOM) {
            st = draw_random(cx, f, &rng, ts, &span, &found, err);
        } else {
            const ap_spans *sp = &w->spans[t];
            ts->matches += (int64_t)sp->n;
            found = sp->n > 0;
            if (found) span = sp->v[ap_rng_below(&rng, sp->n)];
        }
        if (st) break;
        if (!found) {
            ts->files_without_match++;
            continue;
        }
        ts->draws++;
        st = make_candidate(cx, f, (ap_task)t, key, span, res, err);
    }
    if (st) ap_error_prefix(err, "%s", f->source);
    return st;
}

/* ---- the pass ---- */

static void add_stats(ap_task_stats *a, const ap_task_stats *b) {
    a->files_examined += b->files_examined;
    a->files_without_match += b->files_without_match;
    a->matches += b->matches;
    a->draws += b->draws;
    a->too_short += b->too_short;
    a->special_token += b->special_token;
}

static void free_batch(batch_file *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(b[i].source);
        free(b[i].data);
    }
}

/* Reads up to BATCH_FILES files (copies: the reader's buffer is reused). */
static ap_status read_batch(ap_corpus *c, batch_file *b, size_t *n, ap_error *err) {
    *n = 0;
    while (*n < BATCH_FILES) {
        ap_corpus_file f;
        int has;
        ap_status st = ap_corpus_next(c, &f, &has, err);
        if (st || !has) return st;
        batch_file *bf = &b[*n];
        bf->source = ap_strdup(f.source, err);
        bf->data = bf->source ? ap_malloc(f.len + 1, err) : NULL;
        if (!bf->data) {
            free(bf->source);
            return AP_ERR_NOMEM;
        }
        memcpy(bf->data, f.data, f.len + 1);
        bf->len = f.len;
        bf->ordinal = f.ordinal;
        bf->source_hash = ap_hash_bytes(f.source, strlen(f.source));
        (*n)++;
    }
    return AP_OK;
}

/* Searches a batch in parallel, then merges in reading order. */
static ap_status run_batch(mine_ctx *cx, batch_file *b, size_t n, file_result *res, ap_mine_stats *stats,
                           ap_error *err) {
    memset(res, 0, n * sizeof *res);
    const heap *snap = cx->heaps; /* read-only while the workers run; merged after */
#pragma omp parallel for schedule(dynamic, 1) num_threads(cx->nworkers)
    for (size_t i = 0; i < n; i++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        res[i].status = process_file(cx, &cx->workers[tid], &b[i], snap, &res[i], &res[i].err);
    }
    ap_status st = AP_OK;
    for (size_t i = 0; i < n; i++) {
        if (res[i].status && !st) {
            st = res[i].status;
            if (err) *err = res[i].err;
        }
        for (int t = 0; t < AP_TASK_COUNT; t++) {
            add_stats(&stats->task[t], &res[i].st[t]);
            if (!res[i].has[t]) continue;
            if (st) scenario_free(&res[i].cand[t]);
            else st = heap_offer(&cx->heaps[t], &res[i].cand[t], err);
        }
    }
    return st;
}

static ap_status mine_corpus(mine_ctx *cx, const char *corpus_path, ap_mine_stats *stats, ap_error *err) {
    ap_corpus *c;
    ap_status st = ap_corpus_open(corpus_path, &cx->opt->corpus, &c, err);
    if (st) return st;
    batch_file *b = ap_calloc(BATCH_FILES, sizeof *b, err);
    file_result *res = ap_malloc(BATCH_FILES * sizeof *res, err);
    if (!b || !res) st = AP_ERR_NOMEM;
    ap_progress bar;
    int64_t done, total;
    ap_corpus_progress(c, &done, &total);
    if (cx->opt->progress) ap_progress_begin(&bar, "mine", total);
    while (!st) {
        size_t n;
        st = read_batch(c, b, &n, err);
        if (!st && n) st = run_batch(cx, b, n, res, stats, err);
        free_batch(b, n);
        if (st || n == 0) break;
        ap_corpus_progress(c, &done, &total);
        if (cx->opt->progress && done < total) { /* the end is drawn once, below */
            char extra[64];
            snprintf(extra, sizeof extra, "%lld files", (long long)ap_corpus_get_stats(c)->files);
            ap_progress_update(&bar, done, extra);
        }
    }
    if (cx->opt->progress) {
        char extra[64];
        snprintf(extra, sizeof extra, "%lld files", (long long)ap_corpus_get_stats(c)->files);
        ap_progress_end(&bar, extra);
    }
    stats->corpus = *ap_corpus_get_stats(c);
    free(b);
    free(res);
    ap_corpus_close(c);
    return st;
}

/* Noise: N ordinary vocabulary ids, <fim_prefix> first, <fim_middle> last and
 * <fim_suffix> at a random inner position. */
static ap_status mine_noise(mine_ctx *cx, ap_error *err) {
    const ap_mine_vocab *v = cx->vocab;
    size_t n = cx->opt->max_length;
    if (v->nplain == 0) return ap_fail(err, AP_ERR_FORMAT, "the tokenizer has no ordinary tokens to draw noise from");
    heap *h = &cx->heaps[AP_TASK_NOISE];
    for (size_t k = 0; k < h->cap; k++) {
        ap_scenario s = {.task = AP_TASK_NOISE, .label_id = -1, .key = k, .ordinal = (int64_t)k};
        s.input_ids = ap_malloc(n * sizeof *s.input_ids, err);
        if (!s.input_ids) return AP_ERR_NOMEM;
        ap_rng rng;
        ap_rng_seed(&rng, ap_hash_mix(ap_hash_mix(cx->opt->seed, (uint64_t)AP_TASK_NOISE + 1), k));
        for (size_t i = 1; i + 1 < n; i++) s.input_ids[i] = v->plain_ids[ap_rng_below(&rng, v->nplain)];
        size_t at = 1 + ap_rng_below(&rng, n - 2);
        s.input_ids[0] = v->fim_prefix;
        s.input_ids[n - 1] = v->fim_middle;
        s.input_ids[at] = v->fim_suffix;
        /* As for every scenario, <fim_suffix> sits at 1 + prefix_tokens. */
        s.prefix_tokens = at - 1;
        s.suffix_tokens = n - 2 - at;
        ap_status st = heap_offer(h, &s, err);
        if (st) return st;
    }
    return AP_OK;
}

static ap_status collect(mine_ctx *cx, ap_scenario_set *out, ap_mine_stats *stats, ap_error *err) {
    size_t total = 0;
    for (int t = 0; t < AP_TASK_COUNT; t++) total += cx->heaps[t].n;
    out->v = ap_calloc(total ? total : 1, sizeof *out->v, err);
    if (!out->v) return AP_ERR_NOMEM;
    for (int t = 0; t < AP_TASK_COUNT; t++) {
        heap *h = &cx->heaps[t];
        if (h->n == 0) continue;
        qsort(h->v, h->n, sizeof *h->v, cmp_scenario);
        memcpy(out->v + out->n, h->v, h->n * sizeof *h->v);
        out->n += h->n;
        stats->task[t].scenarios = (int64_t)h->n;
        h->n = 0; /* moved */
    }
    return AP_OK;
}

static ap_status check_options(const ap_mine_options *opt, ap_error *err) {
    if (opt->max_length < 16) return ap_fail(err, AP_ERR_ARG, "--max-length: must be at least 16, got %zu", opt->max_length);
    if (opt->max_length > (1u << 20))
        return ap_fail(err, AP_ERR_ARG, "--max-length: %zu is larger than apmae supports (2^20)", opt->max_length);
    if (opt->per_task < 1) return ap_fail(err, AP_ERR_ARG, "--per-task: must be at least 1, got %lld", (long long)opt->per_task);
    return AP_OK;
}

static ap_status setup(mine_ctx *cx, ap_error *err) {
    for (int t = 0; t < AP_TASK_COUNT; t++) {
        if (cx->opt->tasks[t]) cx->heaps[t].cap = (size_t)cx->opt->per_task;
    }
    cx->nworkers = ap_num_threads();
    if (cx->nworkers < 1) cx->nworkers = 1;
    cx->workers = ap_calloc((size_t)cx->nworkers, sizeof *cx->workers, err);
    if (!cx->workers) return AP_ERR_NOMEM;
    for (int i = 0; i < cx->nworkers; i++) {
        ap_status st = ap_finder_new(cx->opt->compat, &cx->workers[i].finder, err);
        if (st) return st;
    }
    return AP_OK;
}

static void teardown(mine_ctx *cx) {
    for (int t = 0; t < AP_TASK_COUNT; t++) {
        for (size_t i = 0; i < cx->heaps[t].n; i++) scenario_free(&cx->heaps[t].v[i]);
        free(cx->heaps[t].v);
    }
    for (int i = 0; cx->workers && i < cx->nworkers; i++) {
        ap_finder_free(cx->workers[i].finder);
        for (int t = 0; t < AP_TASK_COUNT; t++) ap_spans_free(&cx->workers[i].spans[t]);
    }
    free(cx->workers);
}

ap_status ap_mine(const char *corpus_path, const ap_mine_vocab *vocab, const ap_mine_options *opt,
                  ap_scenario_set *out, ap_mine_stats *stats, ap_error *err) {
    memset(out, 0, sizeof *out);
    memset(stats, 0, sizeof *stats);
    out->max_length = opt->max_length;
    out->seed = opt->seed;
    ap_status st = check_options(opt, err);
    if (st) return st;
    double t0 = ap_now();
    mine_ctx cx = {.vocab = vocab, .opt = opt};
    st = setup(&cx, err);
    int corpus_tasks = 0;
    for (int t = 0; t < AP_TASK_COUNT; t++) corpus_tasks |= opt->tasks[t] && t != AP_TASK_NOISE;
    if (!st && corpus_tasks) st = mine_corpus(&cx, corpus_path, stats, err);
    if (!st && opt->tasks[AP_TASK_NOISE]) st = mine_noise(&cx, err);
    if (!st) st = collect(&cx, out, stats, err);
    teardown(&cx);
    stats->seconds = ap_now() - t0;
    if (st) ap_scenario_set_free(out);
    return st;
}

void ap_scenario_set_free(ap_scenario_set *s) {
    for (size_t i = 0; i < s->n; i++) scenario_free(&s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}
