/* Byte-level BPE training (apmae/bpe_train.h). Texts are pre-tokenized with
 * the tokenizer's own pre-tokenizer (pretokenize.c, on a tokenizer with no
 * model and StarCoder2's special tokens as added tokens) into words counted
 * in one table per thread; training then merges pairs of symbols inside the
 * distinct words, keeping for every pair its count and the words it occurs
 * in, so a merge only revisits the words that hold the merged pair. A
 * max-heap of (count, pair) with lazy updates picks the next merge. */
#include "apmae/bpe_train.h"
#include "apmae/io.h"
#include "tok_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

const char *const ap_sc2_special_tokens[] = {
    "<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<repo_name>",
    "<file_sep>", "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>",
    "<jupyter_text>", "<jupyter_code>", "<jupyter_output>", "<jupyter_script>", "<empty_output>",
    "<code_to_intermediate>", "<intermediate_to_code>", "<pr>", "<pr_status>", "<pr_is_merged>",
    "<pr_base>", "<pr_file>", "<pr_base_code>", "<pr_diff>", "<pr_diff_hunk>", "<pr_comment>",
    "<pr_event_id>", "<pr_review>", "<pr_review_state>", "<pr_review_comment>",
    "<pr_in_reply_to_review_id>", "<pr_in_reply_to_comment_id>", "<pr_diff_hunk_comment_line>",
    "<NAME>", "<EMAIL>", "<KEY>", "<PASSWORD>",
};
const size_t ap_sc2_special_count = sizeof ap_sc2_special_tokens / sizeof ap_sc2_special_tokens[0];

/* ---- word counts ---------------------------------------------------------------- */

typedef struct word_slot {
    uint64_t hash; /* 0 = empty */
    size_t off;    /* bytes in the table's arena */
    uint32_t len;
    int64_t count;
} word_slot;

typedef struct word_table {
    word_slot *slots;
    size_t mask, used;
    char *arena;
    size_t arena_len, arena_cap;
    int64_t total;
} word_table;

static void word_table_free(word_table *w) {
    free(w->slots);
    free(w->arena);
    memset(w, 0, sizeof *w);
}

static ap_status word_table_grow(word_table *w, ap_error *err) {
    size_t cap = w->slots ? 2 * (w->mask + 1) : 4096;
    word_slot *s = ap_calloc(cap, sizeof *s, err);
    if (!s) return AP_ERR_NOMEM;
    for (size_t i = 0; w->slots && i <= w->mask; i++) {
        if (!w->slots[i].hash) continue;
        size_t j = w->slots[i].hash & (cap - 1);
        while (s[j].hash) j = (j + 1) & (cap - 1);
        s[j] = w->slots[i];
    }
    free(w->slots);
    w->slots = s;
    w->mask = cap - 1;
    return AP_OK;
}

static ap_status word_table_add(word_table *w, const char *s, size_t len, int64_t count, ap_error *err) {
    if (len > UINT32_MAX) return AP_OK; /* no such piece in text a corpus reader hands out */
    if ((w->used + 1) * 4 > (w->mask + 1) * 3 || !w->slots) {
        ap_status st = word_table_grow(w, err);
        if (st) return st;
    }
    uint64_t h = tok_hash(s, len) | 1;
    size_t j = h & w->mask;
    for (; w->slots[j].hash; j = (j + 1) & w->mask) {
        word_slot *e = &w->slots[j];
        if (e->hash == h && e->len == len && memcmp(w->arena + e->off, s, len) == 0) {
            e->count += count;
            w->total += count;
            return AP_OK;
        }
    }
    if (w->arena_len + len > w->arena_cap) {
        size_t cap = w->arena_cap ? w->arena_cap : (size_t)1 << 16;
        while (cap < w->arena_len + len) cap *= 2;
        char *a = ap_realloc(w->arena, cap, err);
        if (!a) return AP_ERR_NOMEM;
        w->arena = a;
        w->arena_cap = cap;
    }
    memcpy(w->arena + w->arena_len, s, len);
    w->slots[j] = (word_slot){h, w->arena_len, (uint32_t)len, count};
    w->arena_len += len;
    w->used++;
    w->total += count;
    return AP_OK;
}

struct ap_bpe_trainer {
    ap_tokenizer *pre; /* the pre-tokenizer only: no model */
    int threads;
    word_table *tables;        /* one per thread */
    pcre2_match_data **md;     /* one per thread */
};

void ap_bpe_trainer_free(ap_bpe_trainer *t) {
    if (!t) return;
    for (int i = 0; t->tables && i < t->threads; i++) word_table_free(&t->tables[i]);
    for (int i = 0; t->md && i < t->threads; i++) pcre2_match_data_free(t->md[i]);
    free(t->tables);
    free(t->md);
    ap_tokenizer_free(t->pre);
    free(t);
}

ap_status ap_bpe_trainer_new(ap_bpe_trainer **out, ap_error *err) {
    *out = NULL;
    ap_bpe_trainer *t = ap_calloc(1, sizeof *t, err);
    if (!t) return AP_ERR_NOMEM;
    ap_status st = AP_ERR_NOMEM;
    t->threads = omp_get_max_threads();
    t->pre = ap_calloc(1, sizeof *t->pre, err);
    t->tables = ap_calloc((size_t)t->threads, sizeof *t->tables, err);
    t->md = ap_calloc((size_t)t->threads, sizeof *t->md, err);
    if (!t->pre || !t->tables || !t->md) goto fail;
    /* StarCoder2's pre-tokenizer: Digits(individual) + ByteLevel; the special
     * tokens are cut out as added tokens (normalized=false, matched first) */
    t->pre->digits = TOK_DIGITS_INDIVIDUAL;
    t->pre->added = ap_calloc(ap_sc2_special_count, sizeof *t->pre->added, err);
    if (!t->pre->added) goto fail;
    for (size_t i = 0; i < ap_sc2_special_count; i++) {
        tok_added *a = &t->pre->added[i];
        a->content = ap_sc2_special_tokens[i];
        a->len = (uint32_t)strlen(a->content);
        a->id = (int32_t)i;
        a->special = 1;
        t->pre->added_first[0][(unsigned char)a->content[0]] = 1;
    }
    t->pre->n_added = t->pre->n_added_pass[0] = ap_sc2_special_count;
    if ((st = tok_compile_regexes(t->pre, err))) goto fail;
    for (int i = 0; i < t->threads; i++) {
        t->md[i] = pcre2_match_data_create_from_pattern(t->pre->split_re, NULL);
        if (!t->md[i]) {
            st = ap_fail(err, AP_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    *out = t;
    return AP_OK;
fail:
    ap_bpe_trainer_free(t);
    return st;
}

static ap_status count_piece(void *ctx, const char *piece, size_t len, int32_t added_id, ap_error *err) {
    return piece ? word_table_add(ctx, piece, len, 1, err) : AP_OK;
}

ap_status ap_bpe_trainer_feed(ap_bpe_trainer *t, const char *const *texts, const size_t *lens, size_t n,
                              ap_error *err) {
    ap_status first = AP_OK;
#pragma omp parallel
    {
        int tid = omp_get_thread_num();
        ap_error terr = {0};
        ap_status tst = AP_OK;
#pragma omp for schedule(dynamic, 1)
        for (size_t i = 0; i < n; i++) {
            if (tst) continue;
            const char *s = texts[i];
            size_t len = lens[i];
            char *fixed = NULL;
            if (tok_utf8_valid_prefix(s, len) != len) {
                size_t flen;
                if ((tst = ap_utf8_lossy(s, len, &fixed, &flen, &terr))) continue;
                s = fixed, len = flen;
            }
            tst = tok_pretokenize(t->pre, s, len, t->md[tid], count_piece, &t->tables[tid], &terr);
            free(fixed);
        }
#pragma omp critical
        if (tst && !first) {
            first = tst;
            if (err) *err = terr;
        }
    }
    return first;
}

/* ---- training ------------------------------------------------------------------------- */

typedef struct pair_info {
    uint64_t key; /* left << 32 | right */
    int64_t count;
    uint32_t *words; /* words it may occur in (stale entries and repeats possible) */
    uint32_t nwords, cap;
    uint32_t stamp;  /* merge that last queued it for a heap push */
} pair_info;

typedef struct heap_entry {
    int64_t count;
    uint64_t key;
} heap_entry;

typedef struct bpe_state {
    /* words: symbols of word w are sym[off[w], off[w] + len[w]) */
    int32_t *sym;
    size_t *off;
    uint32_t *len;
    int64_t *wcount;
    size_t nwords;
    uint32_t *wstamp; /* merge that last visited the word */
    /* pairs */
    pair_info *pairs;
    size_t npairs, pairs_cap;
    uint32_t *pslots; /* open addressing: index + 1, 0 = empty */
    size_t pmask;
    heap_entry *heap;
    size_t nheap, heap_cap;
    /* tokens: id - first byte id -> bytes tok_bytes[tok_off[i], +tok_len[i]) */
    char *tok_bytes;
    size_t tok_bytes_len, tok_bytes_cap;
    size_t *tok_off;
    uint32_t *tok_len;
    size_t ntok, tok_off_cap, tok_len_cap;
    uint32_t *tslots; /* bytes -> token index + 1 */
    size_t tmask;
    /* merges in order */
    int32_t (*merges)[2];
    size_t nmerges, merges_cap;
    uint32_t *touched; /* pairs whose count rose in the current merge */
    size_t ntouched, touched_cap;
    ap_error *err;
} bpe_state;

static void bpe_state_free(bpe_state *s) {
    for (size_t i = 0; i < s->npairs; i++) free(s->pairs[i].words);
    free(s->sym), free(s->off), free(s->len), free(s->wcount), free(s->wstamp);
    free(s->pairs), free(s->pslots), free(s->heap);
    free(s->tok_bytes), free(s->tok_off), free(s->tok_len), free(s->tslots);
    free(s->merges), free(s->touched);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem, ap_error *err) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = ap_realloc(*p, c * elem, err);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* ---- the pair table ---- */

static int pairs_rehash(bpe_state *s, size_t cap) {
    uint32_t *slots = ap_calloc(cap, sizeof *slots, s->err);
    if (!slots) return -1;
    for (size_t i = 0; i < s->npairs; i++) {
        size_t j = mix64(s->pairs[i].key) & (cap - 1);
        while (slots[j]) j = (j + 1) & (cap - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(s->pslots);
    s->pslots = slots;
    s->pmask = cap - 1;
    return 0;
}

/* The pair's index, created with count 0 when absent (or -1 on failure). */
static long pair_get(bpe_state *s, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t j = mix64(key) & s->pmask;
    for (; s->pslots[j]; j = (j + 1) & s->pmask)
        if (s->pairs[s->pslots[j] - 1].key == key) return (long)s->pslots[j] - 1;
    if (grow((void **)&s->pairs, &s->pairs_cap, s->npairs + 1, sizeof *s->pairs, s->err)) return -1;
    pair_info *p = &s->pairs[s->npairs];
    memset(p, 0, sizeof *p);
    p->key = key;
    p->stamp = UINT32_MAX;
    s->pslots[j] = (uint32_t)++s->npairs;
    if (s->npairs * 2 > s->pmask + 1 && pairs_rehash(s, 2 * (s->pmask + 1))) return -1;
    return (long)s->npairs - 1;
}

static int pair_add_word(bpe_state *s, pair_info *p, uint32_t w) {
    if (p->nwords && p->words[p->nwords - 1] == w) return 0;
    if (p->nwords == p->cap) {
        uint32_t cap = p->cap ? 2 * p->cap : 4;
        uint32_t *q = ap_realloc(p->words, cap * sizeof *q, s->err);
        if (!q) return -1;
        p->words = q;
        p->cap = cap;
    }
    p->words[p->nwords++] = w;
    return 0;
}

/* ---- the heap: highest count first, then the smaller key ---- */

static int heap_before(const heap_entry *x, const heap_entry *y) {
    return x->count > y->count || (x->count == y->count && x->key < y->key);
}

static int heap_push(bpe_state *s, int64_t count, uint64_t key) {
    if (grow((void **)&s->heap, &s->heap_cap, s->nheap + 1, sizeof *s->heap, s->err)) return -1;
    size_t i = s->nheap++;
    heap_entry e = {count, key};
    while (i > 0 && heap_before(&e, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
    return 0;
}

static heap_entry heap_pop(bpe_state *s) {
    heap_entry top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0, n = s->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!heap_before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* ---- tokens (byte strings) ---- */

static int tokens_rehash(bpe_state *s, size_t cap) {
    uint32_t *slots = ap_calloc(cap, sizeof *slots, s->err);
    if (!slots) return -1;
    for (size_t i = 0; i < s->ntok; i++) {
        size_t j = tok_hash(s->tok_bytes + s->tok_off[i], s->tok_len[i]) & (cap - 1);
        while (slots[j]) j = (j + 1) & (cap - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(s->tslots);
    s->tslots = slots;
    s->tmask = cap - 1;
    return 0;
}

/* Index of the token with these bytes, added when new (-1 on failure). */
static long token_get(bpe_state *s, const char *bytes, size_t len, int *is_new) {
    size_t j = tok_hash(bytes, len) & s->tmask;
    for (; s->tslots[j]; j = (j + 1) & s->tmask) {
        size_t i = s->tslots[j] - 1;
        if (s->tok_len[i] == len && memcmp(s->tok_bytes + s->tok_off[i], bytes, len) == 0) {
            *is_new = 0;
            return (long)i;
        }
    }
    if (grow((void **)&s->tok_bytes, &s->tok_bytes_cap, s->tok_bytes_len + len, 1, s->err)) return -1;
    if (grow((void **)&s->tok_off, &s->tok_off_cap, s->ntok + 1, sizeof *s->tok_off, s->err) ||
        grow((void **)&s->tok_len, &s->tok_len_cap, s->ntok + 1, sizeof *s->tok_len, s->err))
        return -1;
    memmove(s->tok_bytes + s->tok_bytes_len, bytes, len);
    s->tok_off[s->ntok] = s->tok_bytes_len;
    s->tok_len[s->ntok] = (uint32_t)len;
    s->tok_bytes_len += len;
    s->tslots[j] = (uint32_t)++s->ntok;
    *is_new = 1;
    if (s->ntok * 2 > s->tmask + 1 && tokens_rehash(s, 2 * (s->tmask + 1))) return -1;
    return (long)s->ntok - 1;
}

/* ---- setup from the word counts ---- */

static ap_status build_words(bpe_state *s, const word_table *w, ap_error *err) {
    size_t nsym = w->arena_len;
    s->nwords = w->used;
    s->sym = ap_malloc((nsym ? nsym : 1) * sizeof *s->sym, err);
    s->off = ap_malloc((s->nwords ? s->nwords : 1) * sizeof *s->off, err);
    s->len = ap_malloc((s->nwords ? s->nwords : 1) * sizeof *s->len, err);
    s->wcount = ap_malloc((s->nwords ? s->nwords : 1) * sizeof *s->wcount, err);
    s->wstamp = ap_malloc((s->nwords ? s->nwords : 1) * sizeof *s->wstamp, err);
    if (!s->sym || !s->off || !s->len || !s->wcount || !s->wstamp) return AP_ERR_NOMEM;
    size_t k = 0, cur = 0;
    for (size_t i = 0; i <= w->mask; i++) {
        const word_slot *e = &w->slots[i];
        if (!e->hash) continue;
        s->off[k] = cur;
        s->len[k] = e->len;
        s->wcount[k] = e->count;
        s->wstamp[k] = UINT32_MAX;
        for (uint32_t j = 0; j < e->len; j++) s->sym[cur + j] = (unsigned char)w->arena[e->off + j];
        cur += e->len;
        k++;
    }
    /* the 256 byte symbols are tokens 0..255 */
    if (tokens_rehash(s, 1024)) return AP_ERR_NOMEM;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int is_new;
        if (token_get(s, &c, 1, &is_new) < 0) return AP_ERR_NOMEM;
    }
    if (pairs_rehash(s, 1 << 16)) return AP_ERR_NOMEM;
    for (size_t i = 0; i < s->nwords; i++) {
        const int32_t *x = s->sym + s->off[i];
        for (uint32_t j = 0; j + 1 < s->len[i]; j++) {
            long p = pair_get(s, x[j], x[j + 1]);
            if (p < 0 || pair_add_word(s, &s->pairs[p], (uint32_t)i)) return AP_ERR_NOMEM;
            s->pairs[p].count += s->wcount[i];
        }
    }
    for (size_t i = 0; i < s->npairs; i++)
        if (heap_push(s, s->pairs[i].count, s->pairs[i].key)) return AP_ERR_NOMEM;
    return AP_OK;
}

/* Count change of pair (a, b) in word w; a rise queues the pair for a push. */
static int bump(bpe_state *s, int32_t a, int32_t b, int64_t delta, uint32_t w, uint32_t merge) {
    long p = pair_get(s, a, b);
    if (p < 0) return -1;
    pair_info *pi = &s->pairs[p];
    pi->count += delta;
    if (delta <= 0) return 0;
    if (pair_add_word(s, pi, w)) return -1;
    if (pi->stamp != merge) {
        pi->stamp = merge;
        if (grow((void **)&s->touched, &s->touched_cap, s->ntouched + 1, sizeof *s->touched, s->err)) return -1;
        s->touched[s->ntouched++] = (uint32_t)p;
    }
    return 0;
}

/* Replace every (a, b) by c in the words that may hold it. */
static int apply_merge(bpe_state *s, long pidx, int32_t a, int32_t b, int32_t c, uint32_t merge) {
    /* the list may move while bump() adds pairs: copy what to visit */
    uint32_t n = s->pairs[pidx].nwords, *words = s->pairs[pidx].words;
    s->pairs[pidx].words = NULL;
    s->pairs[pidx].nwords = s->pairs[pidx].cap = 0;
    s->ntouched = 0;
    int rc = 0;
    for (uint32_t i = 0; !rc && i < n; i++) {
        uint32_t w = words[i];
        if (s->wstamp[w] == merge) continue;
        s->wstamp[w] = merge;
        int32_t *x = s->sym + s->off[w];
        uint32_t len = s->len[w], o = 0;
        int64_t cnt = s->wcount[w];
        for (uint32_t j = 0; !rc && j < len; j++) {
            if (j + 1 < len && x[j] == a && x[j + 1] == b) {
                /* left neighbour (already written at o-1) and right one */
                if (o > 0 && (bump(s, x[o - 1], a, -cnt, w, merge) || bump(s, x[o - 1], c, cnt, w, merge))) rc = -1;
                if (j + 2 < len && (bump(s, b, x[j + 2], -cnt, w, merge) || bump(s, c, x[j + 2], cnt, w, merge)))
                    rc = -1;
                x[o++] = c;
                j++;
            } else {
                x[o++] = x[j];
            }
        }
        s->len[w] = o;
    }
    free(words);
    s->pairs[pidx].count = 0;
    for (size_t i = 0; !rc && i < s->ntouched; i++) {
        const pair_info *p = &s->pairs[s->touched[i]];
        if (p->count > 0) rc = heap_push(s, p->count, p->key);
    }
    return rc;
}

static ap_status learn(bpe_state *s, const ap_bpe_train_options *o, size_t target_tokens) {
    ap_progress bar;
    if (o->progress) ap_progress_begin(&bar, "merges", (int64_t)(target_tokens - s->ntok));
    size_t start = s->ntok;
    while (s->ntok < target_tokens && s->nheap > 0) {
        heap_entry top = heap_pop(s);
        int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(uint32_t)top.key;
        long p = pair_get(s, a, b);
        if (p < 0) return AP_ERR_NOMEM;
        int64_t now = s->pairs[p].count;
        if (now != top.count) { /* stale: a fresher entry exists, or re-queue the lower count */
            if (now < top.count && now > 0 && heap_push(s, now, top.key)) return AP_ERR_NOMEM;
            continue;
        }
        if (now < o->min_frequency) break;
        /* the merged token's bytes (reusing an existing token with the same bytes) */
        size_t la = s->tok_len[a], lb = s->tok_len[b];
        char stackbuf[256], *buf = la + lb <= sizeof stackbuf ? stackbuf : malloc(la + lb);
        if (!buf) return ap_fail(s->err, AP_ERR_NOMEM, "out of memory");
        memcpy(buf, s->tok_bytes + s->tok_off[a], la);
        memcpy(buf + la, s->tok_bytes + s->tok_off[b], lb);
        int is_new;
        long c = token_get(s, buf, la + lb, &is_new);
        if (buf != stackbuf) free(buf);
        if (c < 0 || grow((void **)&s->merges, &s->merges_cap, s->nmerges + 1, sizeof *s->merges, s->err))
            return AP_ERR_NOMEM;
        s->merges[s->nmerges][0] = a;
        s->merges[s->nmerges][1] = b;
        s->nmerges++;
        if (apply_merge(s, p, a, b, (int32_t)c, (uint32_t)s->nmerges)) return AP_ERR_NOMEM;
        if (o->progress) ap_progress_update(&bar, (int64_t)(s->ntok - start), NULL);
    }
    if (o->progress) ap_progress_end(&bar, NULL);
    return AP_OK;
}

/* ---- tokenizer.json ----------------------------------------------------------------------- */

/* The ByteLevel string of token i (bytes mapped to their printable characters). */
static char *token_string(const bpe_state *s, size_t i, char *buf) {
    size_t o = 0;
    for (uint32_t k = 0; k < s->tok_len[i]; k++)
        o += tok_utf8_put(tok_byte_to_cp((uint8_t)s->tok_bytes[s->tok_off[i] + k]), buf + o);
    buf[o] = '\0';
    return buf;
}

static cJSON *byte_level(int trim_offsets) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", 0);
    cJSON_AddBoolToObject(o, "trim_offsets", trim_offsets);
    cJSON_AddBoolToObject(o, "use_regex", 1);
    return o;
}

static ap_status write_json(const bpe_state *s, ap_buf *out, ap_error *err) {
    size_t nsp = ap_sc2_special_count;
    cJSON *root = cJSON_CreateObject();
    if (!root) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (size_t i = 0; i < nsp; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", (double)i);
        cJSON_AddStringToObject(a, "content", ap_sc2_special_tokens[i]);
        cJSON_AddBoolToObject(a, "single_word", 0);
        cJSON_AddBoolToObject(a, "lstrip", 0);
        cJSON_AddBoolToObject(a, "rstrip", 0);
        cJSON_AddBoolToObject(a, "normalized", 0);
        cJSON_AddBoolToObject(a, "special", 1);
        cJSON_AddItemToArray(added, a);
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *seq = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *digits = cJSON_CreateObject();
    cJSON_AddStringToObject(digits, "type", "Digits");
    cJSON_AddBoolToObject(digits, "individual_digits", 1);
    cJSON_AddItemToArray(seq, digits);
    cJSON_AddItemToArray(seq, byte_level(1));
    cJSON_AddItemToObject(root, "post_processor", byte_level(0));
    cJSON_AddItemToObject(root, "decoder", byte_level(1));
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON_AddBoolToObject(model, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    if (!added || !pre || !seq || !model || !vocab || !merges) {
        cJSON_Delete(root);
        return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    }
    size_t maxlen = 0;
    for (size_t i = 0; i < s->ntok; i++) maxlen = s->tok_len[i] > maxlen ? s->tok_len[i] : maxlen;
    char *b1 = malloc(2 * maxlen + 2 + 1), *b2 = malloc(2 * maxlen + 2 + 1), *m = malloc(4 * maxlen + 8);
    ap_status st = AP_OK;
    if (!b1 || !b2 || !m) {
        st = ap_fail(err, AP_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nsp; i++) cJSON_AddNumberToObject(vocab, ap_sc2_special_tokens[i], (double)i);
    for (size_t i = 0; i < s->ntok; i++) cJSON_AddNumberToObject(vocab, token_string(s, i, b1), (double)(nsp + i));
    for (size_t i = 0; i < s->nmerges; i++) {
        snprintf(m, 4 * maxlen + 8, "%s %s", token_string(s, (size_t)s->merges[i][0], b1),
                 token_string(s, (size_t)s->merges[i][1], b2));
        cJSON_AddItemToArray(merges, cJSON_CreateString(m));
    }
    char *text = cJSON_Print(root);
    if (!text) {
        st = ap_fail(err, AP_ERR_NOMEM, "out of memory");
        goto done;
    }
    st = ap_buf_printf(out, err, "%s\n", text);
    free(text);
done:
    free(b1), free(b2), free(m);
    cJSON_Delete(root);
    return st;
}

ap_status ap_bpe_trainer_train(ap_bpe_trainer *t, const ap_bpe_train_options *o, ap_buf *out,
                               ap_bpe_train_stats *stats, ap_error *err) {
    size_t nsp = ap_sc2_special_count;
    memset(stats, 0, sizeof *stats);
    if (o->vocab_size < nsp + 256 + 1 || o->vocab_size > ((size_t)1 << 24))
        return ap_fail(err, AP_ERR_ARG, "--vocab-size %zu must be in %zu..%zu (38 special tokens, 256 bytes, merges)",
                       o->vocab_size, nsp + 257, (size_t)1 << 24);
    if (o->min_frequency < 1) return ap_fail(err, AP_ERR_ARG, "--min-frequency must be at least 1");
    /* all counts into the first thread's table */
    ap_status st = AP_OK;
    word_table *all = &t->tables[0];
    for (int i = 1; !st && i < t->threads; i++) {
        word_table *w = &t->tables[i];
        for (size_t j = 0; !st && w->slots && j <= w->mask; j++)
            if (w->slots[j].hash) st = word_table_add(all, w->arena + w->slots[j].off, w->slots[j].len,
                                                      w->slots[j].count, err);
        word_table_free(w);
    }
    if (st) return st;
    stats->words = all->total;
    stats->unique_words = (int64_t)all->used;
    if (all->used == 0) return ap_fail(err, AP_ERR_ARG, "no text to train the tokenizer on");
    double t0 = ap_now();
    bpe_state s = {.err = err};
    if (!(st = build_words(&s, all, err)) && !(st = learn(&s, o, o->vocab_size - nsp)))
        st = write_json(&s, out, err);
    stats->vocab_size = nsp + s.ntok;
    stats->merges = s.nmerges;
    stats->seconds = ap_now() - t0;
    bpe_state_free(&s);
    return st;
}
