/* Hash tables of the tokenizer: token string -> id, and id pair -> merge.
 * Open addressing with linear probing at load factor <= 1/2; both are built
 * once at load and only read afterwards, so encoding is lock-free. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* A fast 64-bit hash: 8 bytes per step, with a final avalanche. */
uint64_t tok_hash(const void *data, size_t len) {
    const unsigned char *s = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)len;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        len -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, len);
    h = (h ^ v) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

static uint32_t table_size(size_t n) {
    uint32_t size = 16;
    while (size < 2 * n) size *= 2;
    return size;
}

ap_status tok_vocab_index(ap_tokenizer *tok, ap_error *err) {
    size_t n = 0;
    for (size_t id = 0; id < tok->n_ids; id++) n += tok->model_tok[id] != NULL;
    uint32_t size = table_size(n);
    tok->vocab_slots = ap_calloc(size, sizeof *tok->vocab_slots, err);
    if (!tok->vocab_slots) return AP_ERR_NOMEM;
    tok->vocab_mask = size - 1;
    for (size_t id = 0; id < tok->n_ids; id++) {
        if (!tok->model_tok[id]) continue;
        uint32_t i = (uint32_t)tok_hash(tok->model_tok[id], tok->model_len[id]) & tok->vocab_mask;
        while (tok->vocab_slots[i]) i = (i + 1) & tok->vocab_mask;
        tok->vocab_slots[i] = (uint32_t)id + 1;
    }
    return AP_OK;
}

int32_t tok_vocab_find(const ap_tokenizer *tok, const char *s, size_t len) {
    uint32_t i = (uint32_t)tok_hash(s, len) & tok->vocab_mask;
    for (uint32_t slot; (slot = tok->vocab_slots[i]) != 0; i = (i + 1) & tok->vocab_mask) {
        uint32_t id = slot - 1;
        if (tok->model_len[id] == len && memcmp(tok->model_tok[id], s, len) == 0) return (int32_t)id;
    }
    return -1;
}

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

static uint32_t pair_slot(const ap_tokenizer *tok, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & tok->merges_mask;
}

ap_status tok_merges_alloc(ap_tokenizer *tok, size_t n, ap_error *err) {
    uint32_t size = table_size(n);
    tok->merges = ap_malloc((size_t)size * sizeof *tok->merges, err);
    if (!tok->merges) return AP_ERR_NOMEM;
    for (uint32_t i = 0; i < size; i++) tok->merges[i].key = UINT64_MAX;
    tok->merges_mask = size - 1;
    return AP_OK;
}

void tok_merges_put(ap_tokenizer *tok, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    uint64_t key = pair_key(a, b);
    uint32_t i = pair_slot(tok, key);
    while (tok->merges[i].key != UINT64_MAX && tok->merges[i].key != key) i = (i + 1) & tok->merges_mask;
    tok->merges[i] = (tok_merge){key, rank, new_id};
}

const tok_merge *tok_merges_find(const ap_tokenizer *tok, int32_t a, int32_t b) {
    uint64_t key = pair_key(a, b);
    for (uint32_t i = pair_slot(tok, key);; i = (i + 1) & tok->merges_mask) {
        const tok_merge *m = &tok->merges[i];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
    }
}
