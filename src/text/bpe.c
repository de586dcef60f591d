/* The BPE model on one piece: start from the ids of the piece's bytes (their
 * ByteLevel characters) and apply merges lowest rank first, leftmost first
 * among equal ranks, exactly as the Rust crate's Word::merge_all (a min-heap
 * of candidate merges; stale entries are skipped when popped). Results are
 * cached per piece for the duration of one encode call. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct sym {
    int32_t id;
    int32_t prev, next; /* neighbours in the piece, -1 at the ends */
    uint32_t len;       /* bytes covered; 0 = merged into its left neighbour */
} sym;

typedef struct cand {
    uint32_t rank, pos;
    int32_t new_id;
} cand;

typedef struct cache_slot {
    uint64_t hash; /* 0 = empty */
    uint32_t key_off, key_len, ids_off, n_ids;
} cache_slot;

/* Pieces longer than this are not cached (rare, and they would bloat it). */
#define CACHE_MAX_KEY 256
#define CACHE_MAX_ENTRIES (1u << 18)

struct tok_bpe_state {
    sym *syms;
    size_t syms_cap;
    cand *heap;
    size_t heap_cap;
    char *chars; /* a piece as a ByteLevel string, for ignore_merges */
    size_t chars_cap;
    cache_slot *slots;
    uint32_t mask, used;
    ap_buf keys;
    int32_t *cached_ids;
    size_t n_cached_ids, cached_ids_cap;
};

tok_bpe_state *tok_bpe_state_new(ap_error *err) { return ap_calloc(1, sizeof(tok_bpe_state), err); }

void tok_bpe_state_free(tok_bpe_state *st) {
    if (!st) return;
    free(st->syms);
    free(st->heap);
    free(st->chars);
    free(st->slots);
    ap_buf_free(&st->keys);
    free(st->cached_ids);
    free(st);
}

/* Grow *p (elements of size elem) to hold at least need. */
static ap_status reserve(void **p, size_t *cap, size_t need, size_t elem, ap_error *err) {
    if (need <= *cap) return AP_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = ap_realloc(*p, c * elem, err);
    if (!q) return AP_ERR_NOMEM;
    *p = q;
    *cap = c;
    return AP_OK;
}

static ap_status push_ids(int32_t **ids, size_t *n, size_t *cap, const int32_t *src, size_t k, ap_error *err) {
    ap_status st = reserve((void **)ids, cap, *n + k, sizeof **ids, err);
    if (st) return st;
    memcpy(*ids + *n, src, k * sizeof *src);
    *n += k;
    return AP_OK;
}

static int cand_less(const cand *a, const cand *b) { return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos; }

static void heap_push(cand *h, size_t *n, cand c) {
    size_t i = (*n)++;
    while (i > 0 && cand_less(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static cand heap_pop(cand *h, size_t *n) {
    cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = l;
        if (l >= *n) break;
        if (l + 1 < *n && cand_less(&h[l + 1], &h[l])) m = l + 1;
        if (!cand_less(&h[m], &last)) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_merge(const ap_tokenizer *tok, tok_bpe_state *st, size_t *nh, int32_t pos) {
    const sym *s = &st->syms[pos];
    const tok_merge *m = tok_merges_find(tok, s->id, st->syms[s->next].id);
    if (m) heap_push(st->heap, nh, (cand){m->rank, (uint32_t)pos, m->new_id});
}

/* Initial symbols: one per byte, unknown bytes become unk (fused if asked)
 * or are dropped, as the Rust crate's BPE::merge_word does. */
static size_t initial_symbols(const ap_tokenizer *tok, tok_bpe_state *st, const unsigned char *p, size_t len) {
    size_t n = 0;
    int unk_open = 0; /* the last symbol is an unk that may still grow */
    for (size_t i = 0; i < len; i++) {
        int32_t id = tok->byte_id[p[i]];
        if (id >= 0) {
            st->syms[n++] = (sym){id, 0, 0, 1};
            unk_open = 0;
        } else if (tok->unk_id >= 0) {
            if (tok->fuse_unk && unk_open) {
                st->syms[n - 1].len++;
            } else {
                st->syms[n++] = (sym){tok->unk_id, 0, 0, 1};
                unk_open = 1;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        st->syms[i].prev = (int32_t)i - 1;
        st->syms[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    return n;
}

/* BPE on the bytes p[0..len); leaves the resulting ids in syms[0..*count). */
static ap_status merge_piece(const ap_tokenizer *tok, tok_bpe_state *st, const unsigned char *p, size_t len,
                             size_t *count, ap_error *err) {
    ap_status s;
    /* n - 1 initial candidates plus at most two per merge: < 3 len. */
    if ((s = reserve((void **)&st->syms, &st->syms_cap, len, sizeof *st->syms, err)) ||
        (s = reserve((void **)&st->heap, &st->heap_cap, 3 * len, sizeof *st->heap, err)))
        return s;
    size_t n = initial_symbols(tok, st, p, len), nh = 0;
    for (size_t i = 0; i + 1 < n; i++) push_merge(tok, st, &nh, (int32_t)i);
    while (nh > 0) {
        cand top = heap_pop(st->heap, &nh);
        sym *a = &st->syms[top.pos];
        if (a->len == 0 || a->next < 0) continue;
        sym *b = &st->syms[a->next];
        const tok_merge *m = tok_merges_find(tok, a->id, b->id);
        if (!m || m->new_id != top.new_id) continue; /* stale candidate */
        a->id = top.new_id;
        a->len += b->len;
        a->next = b->next;
        b->len = 0;
        if (a->next >= 0) st->syms[a->next].prev = (int32_t)top.pos;
        if (a->prev >= 0) push_merge(tok, st, &nh, a->prev);
        if (a->next >= 0) push_merge(tok, st, &nh, (int32_t)top.pos);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (st->syms[i].len) st->syms[k++].id = st->syms[i].id;
    *count = k;
    return AP_OK;
}

static const cache_slot *cache_find(const tok_bpe_state *st, const char *piece, size_t len, uint64_t h) {
    if (!st->slots) return NULL;
    for (uint32_t i = (uint32_t)h & st->mask; st->slots[i].hash; i = (i + 1) & st->mask) {
        const cache_slot *c = &st->slots[i];
        if (c->hash == h && c->key_len == len && memcmp(st->keys.data + c->key_off, piece, len) == 0) return c;
    }
    return NULL;
}

static ap_status cache_grow(tok_bpe_state *st, ap_error *err) {
    uint32_t size = st->slots ? 2 * (st->mask + 1) : 1024;
    cache_slot *slots = ap_calloc(size, sizeof *slots, err);
    if (!slots) return AP_ERR_NOMEM;
    for (uint32_t i = 0; st->slots && i <= st->mask; i++) {
        if (!st->slots[i].hash) continue;
        uint32_t j = (uint32_t)st->slots[i].hash & (size - 1);
        while (slots[j].hash) j = (j + 1) & (size - 1);
        slots[j] = st->slots[i];
    }
    free(st->slots);
    st->slots = slots;
    st->mask = size - 1;
    return AP_OK;
}

static ap_status cache_put(tok_bpe_state *st, const char *piece, size_t len, uint64_t h, const int32_t *ids, size_t k,
                           ap_error *err) {
    if (st->used >= CACHE_MAX_ENTRIES) return AP_OK;
    ap_status s;
    if ((!st->slots || 2 * (st->used + 1) > st->mask + 1) && (s = cache_grow(st, err))) return s;
    cache_slot c = {h, (uint32_t)st->keys.len, (uint32_t)len, (uint32_t)st->n_cached_ids, (uint32_t)k};
    if ((s = ap_buf_append(&st->keys, piece, len, err)) ||
        (s = push_ids(&st->cached_ids, &st->n_cached_ids, &st->cached_ids_cap, ids, k, err)))
        return s;
    uint32_t i = (uint32_t)h & st->mask;
    while (st->slots[i].hash) i = (i + 1) & st->mask;
    st->slots[i] = c;
    st->used++;
    return AP_OK;
}

/* ignore_merges: a piece that is a whole vocabulary token is that token. */
static ap_status whole_piece_id(const ap_tokenizer *tok, tok_bpe_state *st, const unsigned char *p, size_t len,
                                int32_t *id, ap_error *err) {
    ap_status s = reserve((void **)&st->chars, &st->chars_cap, 2 * len, 1, err);
    if (s) return s;
    size_t m = 0;
    for (size_t i = 0; i < len; i++) m += tok_utf8_put(tok_byte_to_cp(p[i]), st->chars + m);
    *id = tok_vocab_find(tok, st->chars, m);
    return AP_OK;
}

ap_status tok_bpe_piece(const ap_tokenizer *tok, tok_bpe_state *st, const char *piece, size_t len, int32_t **ids,
                        size_t *n, size_t *cap, ap_error *err) {
    const unsigned char *p = (const unsigned char *)piece;
    ap_status s;
    if (tok->ignore_merges) {
        int32_t id;
        if ((s = whole_piece_id(tok, st, p, len, &id, err))) return s;
        if (id >= 0) return push_ids(ids, n, cap, &id, 1, err);
    }
    if (len == 1) {
        int32_t id = tok->byte_id[p[0]] >= 0 ? tok->byte_id[p[0]] : tok->unk_id;
        return id >= 0 ? push_ids(ids, n, cap, &id, 1, err) : AP_OK;
    }
    uint64_t h = 0;
    if (len <= CACHE_MAX_KEY) {
        h = tok_hash(piece, len) | 1; /* never 0, which marks an empty slot */
        const cache_slot *c = cache_find(st, piece, len, h);
        if (c) return push_ids(ids, n, cap, st->cached_ids + c->ids_off, c->n_ids, err);
    }
    size_t k;
    if ((s = merge_piece(tok, st, p, len, &k, err))) return s;
    /* The merged ids sit in syms[i].id; gather them before caching. */
    size_t first = *n;
    if ((s = reserve((void **)ids, cap, *n + k, sizeof **ids, err))) return s;
    for (size_t i = 0; i < k; i++) (*ids)[(*n)++] = st->syms[i].id;
    return len <= CACHE_MAX_KEY ? cache_put(st, piece, len, h, *ids + first, k, err) : AP_OK;
}
