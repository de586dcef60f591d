/* The attention-pattern store: HDF5 layout (docs/store.md), appending with
 * parallel chunk compression, commits through the rollback journal, and
 * reading. The sample table is kept in memory (a few dozen bytes a sample)
 * so lookups by id, task and correctness need no I/O. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define COL_CHUNK 1024       /* rows per chunk of the /samples columns */
#define MIN_CHUNK_BYTES 16384 /* heads are grouped until a pattern chunk is at least this big */
#define MAX_BATCH 64          /* pattern chunks compressed in parallel before being written */
#define PARALLEL_MIN_BYTES (256 << 10) /* below this a batch is compressed on one thread: waking others costs more */

typedef enum col_kind { K_STR, K_I64, K_I32, K_BOOL, K_F32 } col_kind;
enum { C_ID, C_TASK, C_SOURCE, C_START, C_END, C_LABEL, C_PRED, C_CORRECT, C_LOGPROB, C_ENTROPY, C_MAXPROB, C_INDEX, NCOLS };
static const struct {
    const char *name;
    col_kind kind;
} k_cols[NCOLS] = {
    {"id", K_STR},         {"task", K_STR},       {"source", K_STR},    {"start", K_I64},
    {"end", K_I64},        {"label_id", K_I32},   {"pred_id", K_I32},   {"correct", K_BOOL},
    {"logprob", K_F32},    {"entropy", K_F32},    {"max_prob", K_F32},   {"index", K_I64},
};

static size_t kind_size(col_kind k) {
    switch (k) {
    case K_STR: return sizeof(size_t); /* offset into the string arena */
    case K_I64: return 8;
    case K_I32: return 4;
    case K_BOOL: return 1;
    default: return 4;
    }
}

struct ap_store {
    char *path;
    ap_store_mode mode;
    int lock_fd;
    ap_journal *journal; /* APPEND: the write journal; READ: the overlay, or NULL */
    int broken;          /* an append or commit failed midway: refuse to commit more */
    hid_t file, d_patterns, d_ids, d_cols[NCOLS]; /* d_patterns < 0 in a store without patterns */
    ap_emb *emb;                                  /* /embeddings, NULL until there are some */
    ap_clusters *clusters;                        /* /clusters, NULL until a run began */
    hid_t t_pattern, t_str, t_bool_mem;
    ap_meta_owned meta;
    size_t T;     /* entries of one stored pattern */
    size_t esize; /* bytes of one stored entry */
    int hc;       /* heads per pattern chunk */
    int64_t count, committed, cursor, cursor_saved;
    size_t cap;
    void *cols[NCOLS];
    ap_buf strings;        /* NUL-terminated strings the K_STR columns point into */
    int32_t *pending_ids;  /* input_ids of the samples appended since the last commit */
    int64_t *hash;         /* open addressing: sample index + 1, 0 = empty */
    size_t hash_cap;
    int nthreads;          /* compression scratch, allocated on first append */
    ap_chunk_coder *coders; /* one per thread */
    unsigned char *scratch, *packed;
    size_t *packed_len;
    float *tri_buf;         /* reading: one sample's patterns, widened */
    unsigned char *raw_buf; /* reading: the same as stored */
};

/* ---- the in-memory table ---- */

static const char *col_str(const ap_store *s, int c, int64_t i) {
    return s->strings.data + ((const size_t *)s->cols[c])[i];
}

static uint64_t hash_str(const char *p) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

/* Insert sample i's id; returns the index already holding that id (then
 * nothing is inserted), or -1. */
static int64_t hash_put(ap_store *s, int64_t i) {
    const char *id = col_str(s, C_ID, i);
    size_t mask = s->hash_cap - 1, k = (size_t)hash_str(id) & mask;
    for (; s->hash[k]; k = (k + 1) & mask)
        if (strcmp(col_str(s, C_ID, s->hash[k] - 1), id) == 0) return s->hash[k] - 1;
    s->hash[k] = i + 1;
    return -1;
}

/* Room for n ids, at most half full so probes stay short; the first
 * `existing` samples (distinct ids) are re-inserted when it grows. */
static ap_status hash_reserve(ap_store *s, int64_t n, int64_t existing, ap_error *err) {
    if ((size_t)n * 2 < s->hash_cap) return AP_OK;
    size_t cap = s->hash_cap ? s->hash_cap : 64;
    while ((size_t)n * 2 >= cap) cap *= 2;
    int64_t *h = ap_calloc(cap, sizeof *h, err);
    if (!h) return err ? err->code : AP_ERR_NOMEM;
    free(s->hash);
    s->hash = h;
    s->hash_cap = cap;
    for (int64_t i = 0; i < existing; i++) hash_put(s, i);
    return AP_OK;
}

int64_t ap_store_find(const ap_store *s, const char *id) {
    if (!s->hash_cap || !id) return -1;
    size_t mask = s->hash_cap - 1;
    for (size_t k = (size_t)hash_str(id) & mask; s->hash[k]; k = (k + 1) & mask)
        if (strcmp(col_str(s, C_ID, s->hash[k] - 1), id) == 0) return s->hash[k] - 1;
    return -1;
}

static ap_status table_reserve(ap_store *s, size_t n, ap_error *err) {
    if (n <= s->cap) return AP_OK;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n) cap *= 2;
    for (int c = 0; c < NCOLS; c++) {
        void *p = ap_realloc(s->cols[c], cap * kind_size(k_cols[c].kind), err);
        if (!p) return err ? err->code : AP_ERR_NOMEM;
        s->cols[c] = p;
    }
    s->cap = cap;
    return AP_OK;
}

static ap_status intern(ap_store *s, int c, int64_t i, const char *str, ap_error *err) {
    size_t off = s->strings.len;
    ap_status st = ap_buf_append(&s->strings, str, strlen(str) + 1, err);
    if (st == AP_OK) ((size_t *)s->cols[c])[i] = off;
    return st;
}

/* ---- HDF5 objects ---- */

static hid_t bool_type(hid_t base) {
    hid_t t = H5Tenum_create(base);
    signed char f = 0, tr = 1;
    /* FALSE/TRUE members: the enum h5py reads and writes as numpy bool. */
    if (t >= 0 && (H5Tenum_insert(t, "FALSE", &f) < 0 || H5Tenum_insert(t, "TRUE", &tr) < 0)) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

static hid_t col_mem_type(const ap_store *s, col_kind k) {
    switch (k) {
    case K_STR: return s->t_str;
    case K_I64: return H5T_NATIVE_INT64;
    case K_I32: return H5T_NATIVE_INT32;
    case K_BOOL: return s->t_bool_mem;
    default: return H5T_NATIVE_FLOAT;
    }
}

static int heads_per_chunk(int H, size_t T, size_t esize) {
    for (int d = 1; d <= H; d++)
        if (H % d == 0 && T * esize * (size_t)d >= MIN_CHUNK_BYTES) return d;
    return H;
}

/* Chunked, extendible along the first dimension, shuffled and deflated. */
static hid_t make_dcpl(int rank, const hsize_t *chunk, int level) {
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    if (p < 0) return p;
    if (H5Pset_chunk(p, rank, chunk) < 0 || (level > 0 && (H5Pset_shuffle(p) < 0 || H5Pset_deflate(p, (unsigned)level) < 0))) {
        H5Pclose(p);
        return H5I_INVALID_HID;
    }
    return p;
}

ap_status ap_h5_make_dataset(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims_tail,
                             const hsize_t *chunk, int level, const char *path, ap_error *err) {
    hsize_t dims[4] = {0}, maxd[4] = {H5S_UNLIMITED};
    for (int r = 1; r < rank; r++) dims[r] = maxd[r] = dims_tail[r - 1];
    hid_t space = H5Screate_simple(rank, dims, maxd);
    hid_t dcpl = make_dcpl(rank, chunk, level);
    hid_t d = space >= 0 && dcpl >= 0 ? H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (d < 0) {
        char what[600];
        snprintf(what, sizeof what, "%s: cannot create dataset %s", path, name);
        return ap_h5_fail(err, AP_ERR_IO, what);
    }
    return AP_OK;
}

static ap_status write_skeleton(hid_t f, const ap_store_meta *m, const char *path, ap_error *err) {
    ap_status s = ap_meta_write(f, m, path, err);
    hid_t g = s == AP_OK ? H5Gcreate2(f, "samples", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : H5I_INVALID_HID;
    if (s == AP_OK && g < 0) s = ap_h5_fail(err, AP_ERR_IO, "cannot create group /samples");
    hid_t t_str = ap_h5_str_type(), t_bool = bool_type(H5T_STD_I8LE), t_pat = ap_store_h5type(m->dtype);
    for (int c = 0; s == AP_OK && c < NCOLS; c++) {
        hid_t ft = k_cols[c].kind == K_STR    ? t_str
                   : k_cols[c].kind == K_I64  ? H5T_STD_I64LE
                   : k_cols[c].kind == K_I32  ? H5T_STD_I32LE
                   : k_cols[c].kind == K_BOOL ? t_bool
                                              : H5T_IEEE_F32LE;
        s = ap_h5_make_dataset(g, k_cols[c].name, ft, 1, NULL, (hsize_t[]){COL_CHUNK}, m->deflate, path, err);
    }
    size_t T = ap_tri_size(m->n_tokens);
    if (s == AP_OK)
        s = ap_h5_make_dataset(f, "input_ids", H5T_STD_I32LE, 2, (hsize_t[]){(hsize_t)m->n_tokens},
                         (hsize_t[]){1, (hsize_t)m->n_tokens}, m->deflate, path, err);
    if (s == AP_OK && !m->no_patterns) {
        int hc = heads_per_chunk(m->num_heads, T, H5Tget_size(t_pat));
        s = ap_h5_make_dataset(f, "patterns", t_pat, 4, (hsize_t[]){(hsize_t)m->num_layers, (hsize_t)m->num_heads, T},
                         (hsize_t[]){1, 1, (hsize_t)hc, T}, m->deflate, path, err);
    }
    if (g >= 0) H5Gclose(g);
    H5Tclose(t_str);
    H5Tclose(t_bool);
    H5Tclose(t_pat);
    return s;
}

/* ---- open / create / close ---- */

static void store_free(ap_store *s) {
    ap_emb_free(s->emb);
    ap_clusters_free(s->clusters);
    if (s->d_patterns >= 0) H5Dclose(s->d_patterns);
    if (s->d_ids >= 0) H5Dclose(s->d_ids);
    for (int c = 0; c < NCOLS; c++)
        if (s->d_cols[c] >= 0) H5Dclose(s->d_cols[c]);
    if (s->t_pattern >= 0) H5Tclose(s->t_pattern);
    if (s->t_str >= 0) H5Tclose(s->t_str);
    if (s->t_bool_mem >= 0) H5Tclose(s->t_bool_mem);
    if (s->file >= 0) H5Fclose(s->file);
    /* Not closed cleanly: put the store back to its last commit now. */
    if (s->mode == AP_STORE_APPEND) ap_journal_abort(s->journal);
    else ap_journal_free(s->journal, 0);
    if (s->lock_fd >= 0) close(s->lock_fd);
    ap_meta_free(&s->meta);
    for (int c = 0; c < NCOLS; c++) free(s->cols[c]);
    ap_buf_free(&s->strings);
    free(s->pending_ids);
    free(s->hash);
    for (int t = 0; s->coders && t < s->nthreads; t++) ap_chunk_coder_free(&s->coders[t]);
    free(s->coders);
    free(s->scratch);
    free(s->packed);
    free(s->packed_len);
    free(s->tri_buf);
    free(s->raw_buf);
    free(s->path);
    free(s);
}

static ap_store *store_new(const char *path, ap_store_mode mode, ap_error *err) {
    ap_store *s = ap_calloc(1, sizeof *s, err);
    if (!s) return NULL;
    s->mode = mode;
    s->lock_fd = -1;
    s->file = s->d_patterns = s->d_ids = s->t_pattern = s->t_str = s->t_bool_mem = H5I_INVALID_HID;
    for (int c = 0; c < NCOLS; c++) s->d_cols[c] = H5I_INVALID_HID;
    if (!(s->path = ap_strdup(path, err))) {
        free(s);
        return NULL;
    }
    return s;
}

/* One writer or many readers, across processes (h5py's HDF5 takes the same
 * kind of lock, so it cannot read a store while apmae writes it). */
static ap_status take_lock(ap_store *s, ap_error *err) {
    int rw = s->mode == AP_STORE_APPEND;
    s->lock_fd = open(s->path, rw ? O_RDWR : O_RDONLY);
    if (s->lock_fd < 0) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot open the store", s->path);
    if (flock(s->lock_fd, (rw ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return ap_fail(err, AP_ERR_IO, "%s: the store is %s by another process", s->path,
                           rw ? "open (for reading or writing)" : "being written");
        return ap_fail_errno(err, AP_ERR_IO, "%s: cannot lock the store", s->path);
    }
    return AP_OK;
}

static ap_status check_signature(const ap_store *s, ap_error *err) {
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8] = {0};
    struct stat st;
    if (fstat(s->lock_fd, &st) != 0) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot stat", s->path);
    ssize_t r = pread(s->lock_fd, head, sizeof head, 0);
    if (st.st_size == 0) return ap_fail(err, AP_ERR_FORMAT, "%s: empty file, not an HDF5 store", s->path);
    if (r != (ssize_t)sizeof head || memcmp(head, sig, sizeof sig) != 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: not an HDF5 file (no HDF5 signature at its start)", s->path);
    return AP_OK;
}

static ap_status open_h5(ap_store *s, ap_error *err) {
    hid_t fapl = H5P_DEFAULT;
    if (s->journal && (fapl = ap_journal_fapl(s->journal, err)) < 0) return err ? err->code : AP_ERR_INTERNAL;
    s->file = H5Fopen(s->path, s->mode == AP_STORE_APPEND ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
    char msg[512] = ""; /* taken before H5Pclose, which clears HDF5's error stack */
    if (s->file < 0) ap_h5_last_message(msg, sizeof msg);
    if (fapl != H5P_DEFAULT) H5Pclose(fapl);
    if (s->file >= 0) return AP_OK;
    const ap_error *je = ap_journal_last_error(s->journal);
    if (je) return ap_fail(err, je->code, "%s", je->msg);
    if (strstr(msg, "truncated"))
        return ap_fail(err, AP_ERR_FORMAT, "%s: truncated HDF5 file (%s); was it copied or written only in part?",
                       s->path, msg);
    return ap_fail(err, AP_ERR_FORMAT, "%s: cannot open as HDF5 (%s)", s->path, msg[0] ? msg : "unknown error");
}

static hid_t open_dataset(ap_store *s, const char *name, ap_error *err) {
    if (H5Lexists(s->file, name, H5P_DEFAULT) <= 0) {
        ap_fail(err, AP_ERR_FORMAT, "%s: not a complete apmae store: missing /%s", s->path, name);
        return H5I_INVALID_HID;
    }
    hid_t d = H5Dopen2(s->file, name, H5P_DEFAULT);
    if (d < 0) ap_fail(err, AP_ERR_FORMAT, "%s: /%s is not a dataset", s->path, name);
    return d;
}

/* dims of a dataset of the expected rank. */
static ap_status dataset_dims(ap_store *s, hid_t d, const char *name, int rank, hsize_t *dims, ap_error *err) {
    hid_t sp = H5Dget_space(d);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r == rank) H5Sget_simple_extent_dims(sp, dims, NULL);
    if (sp >= 0) H5Sclose(sp);
    if (r != rank) return ap_fail(err, AP_ERR_FORMAT, "%s: /%s has %d dimensions, expected %d", s->path, name, r, rank);
    return AP_OK;
}

static ap_status read_column(ap_store *s, int c, ap_error *err) {
    int64_t n = s->count;
    if (n == 0) return AP_OK;
    hid_t mt = col_mem_type(s, k_cols[c].kind);
    if (k_cols[c].kind != K_STR) {
        if (H5Dread(s->d_cols[c], mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->cols[c]) < 0)
            return ap_fail(err, AP_ERR_FORMAT, "%s: cannot read /samples/%s", s->path, k_cols[c].name);
        return AP_OK;
    }
    char **raw = ap_calloc((size_t)n, sizeof *raw, err);
    if (!raw) return err ? err->code : AP_ERR_NOMEM;
    ap_status st = AP_OK;
    if (H5Dread(s->d_cols[c], mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
        st = ap_fail(err, AP_ERR_FORMAT, "%s: cannot read /samples/%s", s->path, k_cols[c].name);
    for (int64_t i = 0; st == AP_OK && i < n; i++) st = intern(s, c, i, raw[i] ? raw[i] : "", err);
    hid_t sp = H5Dget_space(s->d_cols[c]);
    H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
    H5Sclose(sp);
    free(raw);
    return st;
}

/* /patterns: its shape, type and chunking (sample, layer, heads); *rows its
 * sample count. */
static ap_status load_patterns(ap_store *s, hsize_t *rows, ap_error *err) {
    const ap_store_meta *m = &s->meta.m;
    if ((s->d_patterns = open_dataset(s, "patterns", err)) < 0) return AP_ERR_FORMAT;
    hsize_t pd[4];
    ap_status st = dataset_dims(s, s->d_patterns, "patterns", 4, pd, err);
    if (st != AP_OK) return st;
    if (pd[1] != (hsize_t)m->num_layers || pd[2] != (hsize_t)m->num_heads || pd[3] != s->T)
        return ap_fail(err, AP_ERR_FORMAT, "%s: /patterns is [%llu, %llu, %llu, %llu], expected [S, %d, %d, %zu]",
                       s->path, (unsigned long long)pd[0], (unsigned long long)pd[1], (unsigned long long)pd[2],
                       (unsigned long long)pd[3], m->num_layers, m->num_heads, s->T);
    hid_t ft = H5Dget_type(s->d_patterns);
    int same = ft >= 0 && H5Tequal(ft, s->t_pattern) > 0;
    if (ft >= 0) H5Tclose(ft);
    if (!same)
        return ap_fail(err, AP_ERR_FORMAT, "%s: /patterns is not stored as the store's dtype %s", s->path,
                       ap_store_dtype_name(m->dtype));
    hid_t dcpl = H5Dget_create_plist(s->d_patterns);
    hsize_t chunk[4] = {0};
    if (dcpl < 0 || H5Pget_chunk(dcpl, 4, chunk) != 4 || chunk[0] != 1 || chunk[1] != 1 || chunk[3] != s->T ||
        chunk[2] == 0 || pd[2] % chunk[2] != 0) {
        if (dcpl >= 0) H5Pclose(dcpl);
        return ap_fail(err, AP_ERR_FORMAT, "%s: /patterns is not chunked by (sample, layer, heads)", s->path);
    }
    H5Pclose(dcpl);
    s->hc = (int)chunk[2];
    *rows = pd[0];
    return AP_OK;
}

/* Embeddings cover at most the samples; all of them without patterns. */
static ap_status load_embeddings(ap_store *s, ap_error *err) {
    const ap_store_meta *m = &s->meta.m;
    ap_status st = ap_emb_open(s->file, s->path, m->num_layers, m->num_heads, &s->emb, err);
    if (st != AP_OK) return st;
    int64_t e = s->emb ? ap_emb_count(s->emb) : 0;
    if (e > s->count)
        return ap_fail(err, AP_ERR_FORMAT, "%s: /embeddings has %lld rows but the store only %lld samples", s->path,
                       (long long)e, (long long)s->count);
    if (m->no_patterns && e != s->count)
        return ap_fail(err, AP_ERR_FORMAT, "%s: a store without patterns, but only %lld of its %lld samples have "
                       "embeddings", s->path, (long long)e, (long long)s->count);
    return AP_OK;
}

static ap_status load(ap_store *s, ap_error *err) {
    ap_status st = ap_meta_read(s->file, s->path, &s->meta, err);
    if (st != AP_OK) return st;
    const ap_store_meta *m = &s->meta.m;
    s->cursor = s->cursor_saved = s->meta.cursor;
    s->t_str = ap_h5_str_type();
    s->t_bool_mem = bool_type(H5T_NATIVE_SCHAR);
    s->t_pattern = ap_store_h5type(m->dtype);
    s->T = ap_tri_size(m->n_tokens);
    s->esize = H5Tget_size(s->t_pattern);
    if ((s->d_ids = open_dataset(s, "input_ids", err)) < 0) return AP_ERR_FORMAT;
    char name[64];
    for (int c = 0; c < NCOLS; c++) {
        snprintf(name, sizeof name, "samples/%s", k_cols[c].name);
        if ((s->d_cols[c] = open_dataset(s, name, err)) < 0) return AP_ERR_FORMAT;
    }
    hsize_t id[2], cd[1];
    if ((st = dataset_dims(s, s->d_ids, "input_ids", 2, id, err)) != AP_OK) return st;
    hsize_t rows = id[0];
    if (!m->no_patterns && (st = load_patterns(s, &rows, err)) != AP_OK) return st;
    s->count = s->committed = (int64_t)rows;
    if (id[0] != rows || id[1] != (hsize_t)m->n_tokens)
        return ap_fail(err, AP_ERR_FORMAT, "%s: /input_ids is [%llu, %llu], expected [%llu, %d]", s->path,
                       (unsigned long long)id[0], (unsigned long long)id[1], (unsigned long long)rows, m->n_tokens);
    for (int c = 0; c < NCOLS; c++) {
        if ((st = dataset_dims(s, s->d_cols[c], k_cols[c].name, 1, cd, err)) != AP_OK) return st;
        if (cd[0] != rows)
            return ap_fail(err, AP_ERR_FORMAT, "%s: /samples/%s has %llu rows but /input_ids has %llu samples",
                           s->path, k_cols[c].name, (unsigned long long)cd[0], (unsigned long long)rows);
    }
    if ((st = load_embeddings(s, err)) != AP_OK) return st;
    if ((st = ap_clusters_load(s->file, s->path, m->num_layers, m->num_heads, &s->clusters, err)) != AP_OK) return st;
    if ((st = table_reserve(s, (size_t)s->count, err)) != AP_OK) return st;
    for (int c = 0; c < NCOLS; c++)
        if ((st = read_column(s, c, err)) != AP_OK) return st;
    if ((st = hash_reserve(s, s->count, 0, err)) != AP_OK) return st;
    for (int64_t i = 0; i < s->count; i++)
        if (hash_put(s, i) >= 0)
            return ap_fail(err, AP_ERR_FORMAT, "%s: scenario id '%s' appears twice", s->path, col_str(s, C_ID, i));
    return AP_OK;
}

ap_status ap_store_open(const char *path, ap_store_mode mode, ap_store **out, ap_error *err) {
    *out = NULL;
    ap_h5_quiet();
    if (!ap_path_exists(path)) return ap_fail(err, AP_ERR_IO, "%s: no such store", path);
    ap_store *s = store_new(path, mode, err);
    if (!s) return err ? err->code : AP_ERR_NOMEM;
    ap_status st = take_lock(s, err);
    if (st == AP_OK)
        st = mode == AP_STORE_APPEND ? ap_journal_open_write(path, &s->journal, err)
                                     : ap_journal_open_overlay(path, &s->journal, err);
    if (st == AP_OK) st = check_signature(s, err);
    if (st == AP_OK) st = open_h5(s, err);
    if (st == AP_OK) st = load(s, err);
    if (st != AP_OK) {
        store_free(s);
        return st;
    }
    *out = s;
    return AP_OK;
}

static ap_status check_meta(const char *path, const ap_store_meta *m, ap_error *err) {
    if (m->n_tokens < 1 || m->n_tokens > 1 << 16)
        return ap_fail(err, AP_ERR_ARG, "%s: n_tokens %d is outside 1..65536", path, m->n_tokens);
    if (m->num_layers < 1 || m->num_heads < 1)
        return ap_fail(err, AP_ERR_ARG, "%s: %d layers x %d heads: both must be at least 1", path, m->num_layers,
                       m->num_heads);
    if (m->dtype != AP_F32 && m->dtype != AP_F16 && m->dtype != AP_BF16)
        return ap_fail(err, AP_ERR_ARG, "%s: pattern dtype must be f32, f16 or bf16", path);
    if (m->small_bits < -1 || m->small_bits > 7)
        return ap_fail(err, AP_ERR_ARG, "%s: small_bits %d is outside 0..7 (or -1 for the default)", path, m->small_bits);
    if (m->deflate < -1 || m->deflate > 9)
        return ap_fail(err, AP_ERR_ARG, "%s: deflate level %d is outside 0..9 (or -1 for the default)", path, m->deflate);
    for (size_t i = 0; i < m->ntasks; i++)
        if (!m->tasks[i]) return ap_fail(err, AP_ERR_ARG, "%s: task name %zu is NULL", path, i);
    return AP_OK;
}

static ap_status fsync_path(const char *path, ap_error *err) {
    int fd = open(path, O_RDONLY);
    ap_status st = AP_OK;
    if (fd < 0 || fsync(fd) != 0) st = ap_fail_errno(err, AP_ERR_IO, "%s: cannot sync", path);
    if (fd >= 0) close(fd);
    return st;
}

ap_status ap_store_create(const char *path, const ap_store_meta *meta, ap_store **out, ap_error *err) {
    *out = NULL;
    ap_h5_quiet();
    ap_status st = check_meta(path, meta, err);
    if (st != AP_OK) return st;
    if (ap_path_exists(path)) return ap_fail(err, AP_ERR_IO, "%s: already exists (a store is never overwritten)", path);
    ap_store_meta m = *meta;
    if (m.small_bits < 0) m.small_bits = 3;
    if (m.deflate < 0) m.deflate = 1;
    if (m.dtype != AP_BF16) m.small_bits = 7;
    /* Build the empty store under a temporary name and link it into place:
     * the store exists only once it is complete. */
    char tmp[4096], *jpath = NULL;
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        char what[4200];
        snprintf(what, sizeof what, "%s: cannot create", tmp);
        return ap_h5_fail(err, AP_ERR_IO, what);
    }
    st = write_skeleton(f, &m, path, err);
    if (H5Fclose(f) < 0 && st == AP_OK) st = ap_h5_fail(err, AP_ERR_IO, "cannot close the new store");
    if (st == AP_OK) st = fsync_path(tmp, err);
    /* A journal left by an earlier store of that name must not touch this one. */
    if (st == AP_OK && (jpath = ap_journal_path(path, err)) != NULL) unlink(jpath);
    if (st == AP_OK && link(tmp, path) != 0)
        st = errno == EEXIST ? ap_fail(err, AP_ERR_IO, "%s: already exists (a store is never overwritten)", path)
                             : ap_fail_errno(err, AP_ERR_IO, "%s: cannot create", path);
    unlink(tmp);
    free(jpath);
    if (st == AP_OK) st = ap_fsync_parent_dir(path, err);
    if (st != AP_OK) return st;
    return ap_store_open(path, AP_STORE_APPEND, out, err);
}

ap_status ap_store_close(ap_store *s, ap_error *err) {
    if (!s) return AP_OK;
    ap_status st = AP_OK;
    if (s->mode == AP_STORE_APPEND && !s->broken) st = ap_store_commit(s, err);
    /* Close every object, then the file (HDF5 writes its last metadata on
     * close, through the journal), then commit that too. */
    hid_t file = s->file;
    s->file = H5I_INVALID_HID;
    ap_emb_free(s->emb);
    s->emb = NULL;
    if (s->d_patterns >= 0) H5Dclose(s->d_patterns);
    if (s->d_ids >= 0) H5Dclose(s->d_ids);
    for (int c = 0; c < NCOLS; c++)
        if (s->d_cols[c] >= 0) H5Dclose(s->d_cols[c]);
    s->d_patterns = s->d_ids = H5I_INVALID_HID;
    for (int c = 0; c < NCOLS; c++) s->d_cols[c] = H5I_INVALID_HID;
    if (file >= 0 && H5Fclose(file) < 0 && st == AP_OK && s->mode == AP_STORE_APPEND)
        st = ap_h5_fail(err, AP_ERR_IO, "cannot close the store");
    if (s->mode == AP_STORE_APPEND && st == AP_OK && !s->broken) st = ap_journal_commit(s->journal, err);
    if (s->mode == AP_STORE_APPEND && st == AP_OK && !s->broken) {
        ap_journal_free(s->journal, 1);
        s->journal = NULL;
    }
    store_free(s);
    return st;
}

const ap_store_meta *ap_store_get_meta(const ap_store *s) { return &s->meta.m; }
const char *ap_store_path(const ap_store *s) { return s->path; }
const char *ap_store_tool_version(const ap_store *s) { return s->meta.tool_version; }
int64_t ap_store_count(const ap_store *s) { return s->count; }
int64_t ap_store_committed(const ap_store *s) { return s->committed; }
int64_t ap_store_cursor(const ap_store *s) { return s->cursor; }
void ap_store_set_cursor(ap_store *s, int64_t cursor) { s->cursor = cursor; }

/* ---- appending ---- */

static ap_status check_record(const ap_store *s, const ap_store_sample *r, const int32_t *input_ids,
                              int has_attention, ap_error *err) {
    ap_status wst = ap_store_check_writable(s, err);
    if (wst != AP_OK) return wst;
    if (!r->id || !r->id[0]) return ap_fail(err, AP_ERR_ARG, "%s: a sample needs a scenario id", s->path);
    if (!input_ids || (!has_attention && !s->meta.m.no_patterns))
        return ap_fail(err, AP_ERR_ARG, "%s: sample '%s' needs its input_ids and attention", s->path, r->id);
    if (!r->task) return ap_fail(err, AP_ERR_ARG, "%s: sample '%s' has no task", s->path, r->id);
    if (r->correct != 0 && r->correct != 1)
        return ap_fail(err, AP_ERR_ARG, "%s: sample '%s': correct must be 0 or 1", s->path, r->id);
    int64_t dup = ap_store_find(s, r->id);
    if (dup >= 0)
        return ap_fail(err, AP_ERR_ARG, "%s: scenario '%s' is already in the store (sample %lld)", s->path, r->id,
                       (long long)dup);
    return AP_OK;
}

static ap_status ensure_scratch(ap_store *s, ap_error *err) {
    if (s->scratch) return AP_OK;
#ifdef _OPENMP
    s->nthreads = omp_get_max_threads();
#else
    s->nthreads = 1;
#endif
    size_t chunk_elems = (size_t)s->hc * s->T;
    /* per thread: the triangles as f32, then encoded, then shuffled */
    size_t per_thread = chunk_elems * (sizeof(float) + 2 * s->esize);
    s->scratch = ap_malloc((size_t)s->nthreads * per_thread, err);
    s->packed = ap_malloc(MAX_BATCH * ap_chunk_bound(chunk_elems * s->esize), err);
    s->packed_len = ap_calloc(MAX_BATCH, sizeof *s->packed_len, err);
    s->coders = ap_calloc((size_t)s->nthreads, sizeof *s->coders, err);
    if (!s->scratch || !s->packed || !s->packed_len || !s->coders) return err ? err->code : AP_ERR_NOMEM;
    return AP_OK;
}

/* Encode chunk k of a sample (layer k / (H/hc), heads from hc * (k % (H/hc)))
 * into packed slot b, compressed unless deflate is 0. */
static ap_status pack_chunk(ap_store *s, const float *attention, int k, int b, int thread, ap_error *err) {
    const ap_store_meta *m = &s->meta.m;
    int N = m->n_tokens, per_layer = m->num_heads / s->hc;
    int layer = k / per_layer, h0 = (k % per_layer) * s->hc;
    size_t chunk_elems = (size_t)s->hc * s->T, nbytes = chunk_elems * s->esize;
    unsigned char *ws = s->scratch + (size_t)thread * chunk_elems * (sizeof(float) + 2 * s->esize);
    float *tri = (float *)(void *)ws;
    unsigned char *enc = ws + chunk_elems * sizeof(float), *shuf = enc + nbytes;
    for (int h = 0; h < s->hc; h++)
        ap_tri_from_full(attention + ((size_t)layer * m->num_heads + (size_t)(h0 + h)) * N * N, N, tri + h * s->T);
    unsigned char *dst = s->packed + (size_t)b * ap_chunk_bound(nbytes);
    if (m->deflate == 0) {
        ap_store_encode(m->dtype, m->small_bits, tri, dst, chunk_elems);
        s->packed_len[b] = nbytes;
        return AP_OK;
    }
    ap_store_encode(m->dtype, m->small_bits, tri, enc, chunk_elems);
    return ap_chunk_compress(&s->coders[thread], m->deflate, enc, nbytes, s->esize, shuf, dst, &s->packed_len[b], err);
}

static ap_status write_patterns(ap_store *s, int64_t i, const float *attention, ap_error *err) {
    const ap_store_meta *m = &s->meta.m;
    hsize_t dims[4] = {(hsize_t)i + 1, (hsize_t)m->num_layers, (hsize_t)m->num_heads, s->T};
    if (H5Dset_extent(s->d_patterns, dims) < 0) return ap_h5_fail(err, AP_ERR_IO, "cannot extend /patterns");
    int per_layer = m->num_heads / s->hc, nchunks = m->num_layers * per_layer;
    for (int k0 = 0; k0 < nchunks; k0 += MAX_BATCH) {
        int nb = nchunks - k0 < MAX_BATCH ? nchunks - k0 : MAX_BATCH;
        ap_status bad = AP_OK;
        ap_error perr = {0};
        int parallel = nb > 1 && (size_t)nb * (size_t)s->hc * s->T * s->esize >= PARALLEL_MIN_BYTES;
#pragma omp parallel for schedule(dynamic) if (parallel)
        for (int b = 0; b < nb; b++) {
#ifdef _OPENMP
            int thread = omp_get_thread_num();
#else
            int thread = 0;
#endif
            ap_error e = {0};
            if (pack_chunk(s, attention, k0 + b, b, thread, &e) != AP_OK) {
#pragma omp critical(ap_store_pack)
                {
                    bad = e.code;
                    perr = e;
                }
            }
        }
        if (bad != AP_OK) {
            if (err) *err = perr;
            return bad;
        }
        size_t stride = ap_chunk_bound((size_t)s->hc * s->T * s->esize);
        for (int b = 0; b < nb; b++) {
            int k = k0 + b;
            hsize_t off[4] = {(hsize_t)i, (hsize_t)(k / per_layer), (hsize_t)((k % per_layer) * s->hc), 0};
            if (H5Dwrite_chunk(s->d_patterns, H5P_DEFAULT, 0, off, s->packed_len[b], s->packed + (size_t)b * stride) < 0) {
                const ap_error *je = ap_journal_last_error(s->journal);
                if (je) return ap_fail(err, je->code, "%s", je->msg);
                return ap_h5_fail(err, AP_ERR_IO, "cannot write a pattern chunk");
            }
        }
    }
    return AP_OK;
}

/* Copy sample src_i's pattern chunks, as stored, to sample i of s (same
 * layout: checked by the caller). */
static ap_status copy_patterns(ap_store *s, ap_store *src, int64_t src_i, int64_t i, ap_error *err) {
    const ap_store_meta *m = &s->meta.m;
    hsize_t dims[4] = {(hsize_t)i + 1, (hsize_t)m->num_layers, (hsize_t)m->num_heads, s->T};
    if (H5Dset_extent(s->d_patterns, dims) < 0) return ap_h5_fail(err, AP_ERR_IO, "cannot extend /patterns");
    size_t cap = ap_chunk_bound((size_t)s->hc * s->T * s->esize);
    unsigned char *buf = ap_malloc(cap, err);
    if (!buf) return AP_ERR_NOMEM;
    ap_status st = AP_OK;
    for (int l = 0; st == AP_OK && l < m->num_layers; l++)
        for (int h0 = 0; st == AP_OK && h0 < m->num_heads; h0 += s->hc) {
            hsize_t from[4] = {(hsize_t)src_i, (hsize_t)l, (hsize_t)h0, 0}, to[4] = {(hsize_t)i, (hsize_t)l, (hsize_t)h0, 0};
            hsize_t n = 0;
            uint32_t filters = 0;
            if (H5Dget_chunk_storage_size(src->d_patterns, from, &n) < 0 || n > cap ||
                H5Dread_chunk(src->d_patterns, H5P_DEFAULT, from, &filters, buf) < 0) {
                char what[600];
                snprintf(what, sizeof what, "%s: cannot read the patterns of sample %lld", src->path, (long long)src_i);
                st = ap_h5_fail(err, AP_ERR_FORMAT, what);
            } else if (H5Dwrite_chunk(s->d_patterns, H5P_DEFAULT, filters, to, (size_t)n, buf) < 0) {
                const ap_error *je = ap_journal_last_error(s->journal);
                st = je ? ap_fail(err, je->code, "%s", je->msg) : ap_h5_fail(err, AP_ERR_IO, "cannot write a pattern chunk");
            }
        }
    free(buf);
    return st;
}

/* Append a record whose patterns come from attention or, when src is
 * given, from sample src_i of src. */
static ap_status append_sample(ap_store *s, const ap_store_sample *r, const int32_t *input_ids, const float *attention,
                               ap_store *src, int64_t src_i, ap_error *err) {
    ap_status st = check_record(s, r, input_ids, src || attention, err);
    if (st != AP_OK) return st;
    const ap_store_meta *m = &s->meta.m;
    int64_t i = s->count, pend = i - s->committed;
    int32_t *ids = ap_realloc(s->pending_ids, (size_t)(pend + 1) * (size_t)m->n_tokens * sizeof *ids, err);
    if (!ids) return err ? err->code : AP_ERR_NOMEM;
    s->pending_ids = ids;
    memcpy(ids + (size_t)pend * (size_t)m->n_tokens, input_ids, (size_t)m->n_tokens * sizeof *ids);
    if ((st = table_reserve(s, (size_t)i + 1, err)) != AP_OK) return st;
    if ((st = hash_reserve(s, i + 1, i, err)) != AP_OK) return st;
    if (!m->no_patterns) {
        if (src) st = copy_patterns(s, src, src_i, i, err);
        else if ((st = ensure_scratch(s, err)) == AP_OK) st = write_patterns(s, i, attention, err);
    }
    if (st != AP_OK) {
        s->broken = 1;
        return ap_error_prefix(err, "%s: sample '%s'", s->path, r->id);
    }
    if ((st = intern(s, C_ID, i, r->id, err)) != AP_OK || (st = intern(s, C_TASK, i, r->task, err)) != AP_OK ||
        (st = intern(s, C_SOURCE, i, r->source ? r->source : "", err)) != AP_OK) {
        s->broken = 1;
        return st;
    }
    ((int64_t *)s->cols[C_START])[i] = r->start;
    ((int64_t *)s->cols[C_END])[i] = r->end;
    ((int32_t *)s->cols[C_LABEL])[i] = r->label_id;
    ((int32_t *)s->cols[C_PRED])[i] = r->pred_id;
    ((signed char *)s->cols[C_CORRECT])[i] = (signed char)r->correct;
    ((float *)s->cols[C_LOGPROB])[i] = r->logprob;
    ((float *)s->cols[C_ENTROPY])[i] = r->entropy;
    ((float *)s->cols[C_MAXPROB])[i] = r->max_prob;
    ((int64_t *)s->cols[C_INDEX])[i] = r->index;
    s->count = i + 1;
    hash_put(s, i);
    return AP_OK;
}

ap_status ap_store_append(ap_store *s, const ap_store_sample *r, const int32_t *input_ids, const float *attention,
                          ap_error *err) {
    return append_sample(s, r, input_ids, attention, NULL, 0, err);
}

/* Rows [committed, count) of a 1-D or 2-D dataset from buf. */
static ap_status write_rows(ap_store *s, hid_t d, hid_t mtype, int rank, hsize_t width, const void *buf,
                            const char *name, ap_error *err) {
    hsize_t dims[2] = {(hsize_t)s->count, width}, start[2] = {(hsize_t)s->committed, 0},
            cnt[2] = {(hsize_t)(s->count - s->committed), width};
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    herr_t r = H5Dset_extent(d, dims);
    if (r >= 0) r = (fs = H5Dget_space(d)) >= 0 ? 0 : -1;
    if (r >= 0) r = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    if (r >= 0) r = (ms = H5Screate_simple(rank, cnt, NULL)) >= 0 ? 0 : -1;
    if (r >= 0) r = H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, buf);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (r < 0) {
        const ap_error *je = ap_journal_last_error(s->journal);
        if (je) return ap_fail(err, je->code, "%s", je->msg);
        char what[128];
        snprintf(what, sizeof what, "cannot write /%s", name);
        return ap_h5_fail(err, AP_ERR_IO, what);
    }
    return AP_OK;
}

static ap_status write_pending_rows(ap_store *s, ap_error *err) {
    size_t n = (size_t)(s->count - s->committed);
    ap_status st = write_rows(s, s->d_ids, H5T_NATIVE_INT32, 2, (hsize_t)s->meta.m.n_tokens, s->pending_ids,
                              "input_ids", err);
    const char **strs = st == AP_OK ? ap_malloc(n * sizeof *strs, err) : NULL;
    if (st == AP_OK && !strs) st = err ? err->code : AP_ERR_NOMEM;
    for (int c = 0; st == AP_OK && c < NCOLS; c++) {
        const void *buf;
        if (k_cols[c].kind == K_STR) {
            for (size_t k = 0; k < n; k++) strs[k] = col_str(s, c, s->committed + (int64_t)k);
            buf = strs;
        } else {
            buf = (const char *)s->cols[c] + (size_t)s->committed * kind_size(k_cols[c].kind);
        }
        char name[64];
        snprintf(name, sizeof name, "samples/%s", k_cols[c].name);
        st = write_rows(s, s->d_cols[c], col_mem_type(s, k_cols[c].kind), 1, 0, buf, name, err);
    }
    free(strs);
    return st;
}

ap_status ap_store_commit(ap_store *s, ap_error *err) {
    ap_status wst = ap_store_check_writable(s, err);
    if (wst != AP_OK) return wst;
    if (s->meta.m.no_patterns && ap_store_embedded(s) < s->count)
        return ap_fail(err, AP_ERR_ARG, "%s: sample '%s' has no embeddings, and this store keeps nothing else of its "
                       "patterns", s->path, col_str(s, C_ID, ap_store_embedded(s)));
    ap_status st = AP_OK;
    if (s->count > s->committed) st = write_pending_rows(s, err);
    if (st == AP_OK && s->cursor != s->cursor_saved) st = ap_meta_write_cursor(s->file, s->cursor, s->path, err);
    if (st == AP_OK && H5Fflush(s->file, H5F_SCOPE_GLOBAL) < 0) {
        const ap_error *je = ap_journal_last_error(s->journal);
        st = je ? ap_fail(err, je->code, "%s", je->msg) : ap_h5_fail(err, AP_ERR_IO, "cannot flush the store");
    }
    if (st == AP_OK) st = ap_journal_commit(s->journal, err);
    if (st != AP_OK) {
        s->broken = 1;
        return ap_error_prefix(err, "%s: commit failed (the store keeps its previous commit)", s->path);
    }
    s->committed = s->count;
    s->cursor_saved = s->cursor;
    free(s->pending_ids);
    s->pending_ids = NULL;
    return AP_OK;
}

/* ---- reading ---- */

static ap_status check_sample(const ap_store *s, int64_t i, ap_error *err) {
    if (i < 0 || i >= s->count)
        return ap_fail(err, AP_ERR_RANGE, "%s: sample %lld is out of range (the store has %lld samples)", s->path,
                       (long long)i, (long long)s->count);
    return AP_OK;
}

/* A pattern of sample i; layer < 0 or head < 0: all of them. */
static ap_status check_index(const ap_store *s, int64_t i, int layer, int head, ap_error *err) {
    if (s->meta.m.no_patterns)
        return ap_fail(err, AP_ERR_ARG, "%s: the store keeps no attention patterns, only their AP-MAE embeddings "
                       "(it was extracted with --embeddings-only)", s->path);
    ap_status st = check_sample(s, i, err);
    if (st != AP_OK) return st;
    if (layer < 0 || layer >= s->meta.m.num_layers)
        return ap_fail(err, AP_ERR_RANGE, "%s: layer %d is out of range (0..%d)", s->path, layer,
                       s->meta.m.num_layers - 1);
    if (head < 0 || head >= s->meta.m.num_heads)
        return ap_fail(err, AP_ERR_RANGE, "%s: head %d is out of range (0..%d)", s->path, head, s->meta.m.num_heads - 1);
    return AP_OK;
}

ap_status ap_store_read_sample(ap_store *s, int64_t i, ap_store_sample *out, int32_t *input_ids, ap_error *err) {
    ap_status st = check_sample(s, i, err);
    if (st != AP_OK) return st;
    *out = (ap_store_sample){
        .id = col_str(s, C_ID, i),
        .task = col_str(s, C_TASK, i),
        .source = col_str(s, C_SOURCE, i),
        .start = ((int64_t *)s->cols[C_START])[i],
        .end = ((int64_t *)s->cols[C_END])[i],
        .label_id = ((int32_t *)s->cols[C_LABEL])[i],
        .pred_id = ((int32_t *)s->cols[C_PRED])[i],
        .correct = ((signed char *)s->cols[C_CORRECT])[i],
        .logprob = ((float *)s->cols[C_LOGPROB])[i],
        .entropy = ((float *)s->cols[C_ENTROPY])[i],
        .max_prob = ((float *)s->cols[C_MAXPROB])[i],
        .index = ((int64_t *)s->cols[C_INDEX])[i],
    };
    if (!input_ids) return AP_OK;
    int N = s->meta.m.n_tokens;
    if (i >= s->committed) {
        memcpy(input_ids, s->pending_ids + (size_t)(i - s->committed) * (size_t)N, (size_t)N * sizeof *input_ids);
        return AP_OK;
    }
    hsize_t start[2] = {(hsize_t)i, 0}, cnt[2] = {1, (hsize_t)N};
    hid_t fs = H5Dget_space(s->d_ids), ms = H5Screate_simple(2, cnt, NULL);
    herr_t r = fs >= 0 && ms >= 0 ? H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) : -1;
    if (r >= 0) r = H5Dread(s->d_ids, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, input_ids);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (r < 0) return ap_h5_fail(err, AP_ERR_IO, "cannot read /input_ids");
    return AP_OK;
}

/* Read [i, layer, h0 .. h0+nh) (all layers when layer < 0) and widen to
 * floats: out [layers * nh * T]. */
static ap_status read_tris(ap_store *s, int64_t i, int layer, int h0, int nh, float *out, ap_error *err) {
    const ap_store_meta *m = &s->meta.m;
    hsize_t start[4] = {(hsize_t)i, layer < 0 ? 0 : (hsize_t)layer, (hsize_t)h0, 0};
    hsize_t cnt[4] = {1, layer < 0 ? (hsize_t)m->num_layers : 1, (hsize_t)nh, s->T};
    size_t n = (size_t)cnt[1] * (size_t)nh * s->T;
    void *raw = out;
    if (s->esize != sizeof(float)) {
        if (!s->raw_buf && !(s->raw_buf = ap_malloc(s->T * s->esize * (size_t)m->num_layers * (size_t)m->num_heads, err)))
            return err ? err->code : AP_ERR_NOMEM;
        raw = s->raw_buf;
    }
    hsize_t mdims[1] = {n};
    hid_t fs = H5Dget_space(s->d_patterns), ms = H5Screate_simple(1, mdims, NULL);
    herr_t r = fs >= 0 && ms >= 0 ? H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) : -1;
    if (r >= 0) r = H5Dread(s->d_patterns, s->t_pattern, ms, fs, H5P_DEFAULT, raw);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (r < 0) {
        char what[512];
        snprintf(what, sizeof what, "%s: cannot read the patterns of sample %lld", s->path, (long long)i);
        return ap_h5_fail(err, AP_ERR_FORMAT, what);
    }
    if (raw != out) ap_to_f32(m->dtype, raw, out, n);
    return AP_OK;
}

ap_status ap_store_read_tri(ap_store *s, int64_t i, int layer, int head, float *out, ap_error *err) {
    ap_status st = check_index(s, i, layer, head, err);
    return st != AP_OK ? st : read_tris(s, i, layer, head, 1, out, err);
}

ap_status ap_store_read_pattern(ap_store *s, int64_t i, int layer, int head, float *out, ap_error *err) {
    ap_status st = check_index(s, i, layer, head, err);
    if (st != AP_OK) return st;
    if (!s->tri_buf && !(s->tri_buf = ap_malloc(s->T * sizeof(float) * (size_t)s->meta.m.num_layers *
                                                    (size_t)s->meta.m.num_heads, err)))
        return err ? err->code : AP_ERR_NOMEM;
    if ((st = read_tris(s, i, layer, head, 1, s->tri_buf, err)) != AP_OK) return st;
    ap_tri_to_full(s->tri_buf, s->meta.m.n_tokens, out);
    return AP_OK;
}

ap_status ap_store_read_patterns(ap_store *s, int64_t i, float *out, ap_error *err) {
    ap_status st = check_index(s, i, 0, 0, err);
    if (st != AP_OK) return st;
    const ap_store_meta *m = &s->meta.m;
    size_t np = (size_t)m->num_layers * (size_t)m->num_heads, NN = (size_t)m->n_tokens * (size_t)m->n_tokens;
    if (!s->tri_buf && !(s->tri_buf = ap_malloc(s->T * sizeof(float) * np, err))) return err ? err->code : AP_ERR_NOMEM;
    if ((st = read_tris(s, i, -1, 0, m->num_heads, s->tri_buf, err)) != AP_OK) return st;
    for (size_t p = 0; p < np; p++) ap_tri_to_full(s->tri_buf + p * s->T, m->n_tokens, out + p * NN);
    return AP_OK;
}

ap_status ap_store_filter(const ap_store *s, const char *task, int correct, int64_t **idx, size_t *n, ap_error *err) {
    *idx = NULL;
    *n = 0;
    size_t cap = 0;
    for (int64_t i = 0; i < s->count; i++) {
        if (task && strcmp(col_str(s, C_TASK, i), task) != 0) continue;
        if (correct >= 0 && ((signed char *)s->cols[C_CORRECT])[i] != correct) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            int64_t *grown = ap_realloc(*idx, cap * sizeof *grown, err);
            if (!grown) {
                free(*idx);
                *idx = NULL;
                *n = 0;
                return err ? err->code : AP_ERR_NOMEM;
            }
            *idx = grown;
        }
        (*idx)[(*n)++] = i;
    }
    return AP_OK;
}

ap_status ap_store_size_of(ap_store *s, ap_store_size *out, ap_error *err) {
    struct stat st;
    if (fstat(s->lock_fd, &st) != 0) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot stat", s->path);
    out->file_bytes = (int64_t)st.st_size;
    int pat = !s->meta.m.no_patterns;
    out->pattern_bytes = pat ? (int64_t)H5Dget_storage_size(s->d_patterns) : 0;
    out->patterns = pat ? s->committed * s->meta.m.num_layers * s->meta.m.num_heads : 0;
    out->embedding_bytes = s->emb ? ap_emb_storage(s->emb) : 0;
    return AP_OK;
}

int ap_store_has_patterns(const ap_store *s) { return !s->meta.m.no_patterns; }

/* ---- what the store's other files need (internal.h) ---- */

hid_t ap_store_h5(const ap_store *s) { return s->file; }
ap_clusters **ap_store_clusters_slot(ap_store *s) { return &s->clusters; }

ap_status ap_store_check_writable(const ap_store *s, ap_error *err) {
    if (s->mode != AP_STORE_APPEND) return ap_fail(err, AP_ERR_ARG, "%s: opened read-only", s->path);
    if (s->broken) return ap_fail(err, AP_ERR_IO, "%s: an earlier write failed; reopen the store to continue", s->path);
    return AP_OK;
}

ap_status ap_store_write_failed(ap_store *s, ap_status st, ap_error *err) {
    s->broken = 1;
    const ap_error *je = ap_journal_last_error(s->journal);
    return je ? ap_fail(err, je->code, "%s", je->msg) : st;
}

/* ---- embeddings ---- */

const ap_store_embed_info *ap_store_embed_info_of(const ap_store *s) { return s->emb ? ap_emb_info(s->emb) : NULL; }
int64_t ap_store_embedded(const ap_store *s) { return s->emb ? ap_emb_count(s->emb) : 0; }

/* "the AP-MAE <id> (hash <h>, compat <c>)" for messages. */
static void describe_model(const ap_store_embed_info *e, char *buf, size_t n) {
    snprintf(buf, n, "the AP-MAE '%s' (parameter hash %s, dim %d%s)", e->model_id, e->model_hash, e->dim,
             e->compat_reference ? ", --compat reference" : "");
}

ap_status ap_store_embed_begin(ap_store *s, const ap_store_embed_info *info, ap_error *err) {
    ap_status wst = ap_store_check_writable(s, err);
    if (wst != AP_OK) return wst;
    if (s->emb) {
        if (ap_emb_same_model(ap_emb_info(s->emb), info)) return AP_OK;
        char have[1024], want[1024];
        describe_model(ap_emb_info(s->emb), have, sizeof have);
        describe_model(info, want, sizeof want);
        return ap_fail(err, AP_ERR_ARG, "%s already holds embeddings from another model: %s, not %s", s->path, have,
                       want);
    }
    ap_status st = ap_emb_create(s->file, s->path, info, s->meta.m.num_layers, s->meta.m.num_heads, s->meta.m.deflate,
                                 &s->emb, err);
    if (st != AP_OK) s->broken = 1;
    return st;
}

ap_status ap_store_embed_drop(ap_store *s, ap_error *err) {
    if (s->mode != AP_STORE_APPEND) return ap_fail(err, AP_ERR_ARG, "%s: opened read-only", s->path);
    if (s->broken) return ap_fail(err, AP_ERR_IO, "%s: an earlier write failed; reopen the store to continue", s->path);
    if (!s->emb) return AP_OK;
    if (s->meta.m.no_patterns)
        return ap_fail(err, AP_ERR_ARG, "%s keeps no patterns, only their embeddings: dropping them would leave "
                       "nothing", s->path);
    /* the clusters were made from these embeddings */
    ap_status st = ap_store_clusters_drop(s, err);
    if (st != AP_OK) return st;
    ap_emb_free(s->emb);
    s->emb = NULL;
    if (H5Ldelete(s->file, "embeddings", H5P_DEFAULT) < 0) {
        s->broken = 1;
        return ap_h5_fail(err, AP_ERR_IO, "cannot remove /embeddings");
    }
    return AP_OK;
}

ap_status ap_store_append_embeddings(ap_store *s, const float *cls, const float *mean, ap_error *err) {
    ap_status wst = ap_store_check_writable(s, err);
    if (wst != AP_OK) return wst;
    if (!s->emb) return ap_fail(err, AP_ERR_ARG, "%s: embeddings not begun (ap_store_embed_begin)", s->path);
    if (!cls || !mean) return ap_fail(err, AP_ERR_ARG, "%s: embeddings need both cls and mean", s->path);
    int64_t e = ap_emb_count(s->emb);
    if (e >= s->count)
        return ap_fail(err, AP_ERR_ARG, "%s: all %lld samples already have embeddings; append the sample first",
                       s->path, (long long)s->count);
    ap_status st = ap_emb_append(s->emb, cls, mean, err);
    if (st != AP_OK) {
        s->broken = 1;
        const ap_error *je = ap_journal_last_error(s->journal);
        if (je) st = ap_fail(err, je->code, "%s", je->msg);
        return ap_error_prefix(err, "%s: embeddings of sample %lld", s->path, (long long)e);
    }
    return AP_OK;
}

ap_status ap_store_read_embeddings(ap_store *s, int64_t i, float *cls, float *mean, ap_error *err) {
    ap_status st = check_sample(s, i, err);
    if (st != AP_OK) return st;
    if (i >= ap_store_embedded(s))
        return ap_fail(err, AP_ERR_RANGE, "%s: sample %lld has no embeddings (%lld of %lld samples have them%s)",
                       s->path, (long long)i, (long long)ap_store_embedded(s), (long long)s->count,
                       s->emb ? "" : "; run 'apmae store embed'");
    return ap_emb_read(s->emb, i, cls, mean, err);
}

ap_status ap_store_read_head_embeddings(ap_store *s, int layer, int head, int use_mean, int64_t count, float *out,
                                        ap_error *err) {
    const ap_store_meta *m = &s->meta.m;
    if (layer < 0 || layer >= m->num_layers || head < 0 || head >= m->num_heads)
        return ap_fail(err, AP_ERR_RANGE, "%s: layer %d head %d is out of range (%d layers x %d heads)", s->path, layer,
                       head, m->num_layers, m->num_heads);
    if (count < 0 || count > ap_store_embedded(s))
        return ap_fail(err, AP_ERR_RANGE, "%s: %lld samples asked for, but %lld have embeddings%s", s->path,
                       (long long)count, (long long)ap_store_embedded(s), s->emb ? "" : "; run 'apmae store embed'");
    return count ? ap_emb_read_head(s->emb, layer, head, use_mean, count, out, err) : AP_OK;
}

/* ---- copying between stores ---- */

static ap_status check_same_layout(const ap_store *dst, const ap_store *src, ap_error *err) {
    const ap_store_meta *a = &dst->meta.m, *b = &src->meta.m;
    if (a->n_tokens != b->n_tokens || a->num_layers != b->num_layers || a->num_heads != b->num_heads ||
        a->dtype != b->dtype || a->small_bits != b->small_bits || a->deflate != b->deflate ||
        a->no_patterns != b->no_patterns)
        return ap_fail(err, AP_ERR_ARG,
                       "%s: cannot copy samples into %s: N %d, %d x %d heads, %s (%d bits), deflate %d, %s there; "
                       "N %d, %d x %d heads, %s (%d bits), deflate %d, %s here",
                       src->path, dst->path, a->n_tokens, a->num_layers, a->num_heads, ap_store_dtype_name(a->dtype),
                       a->small_bits, a->deflate, a->no_patterns ? "no patterns" : "patterns", b->n_tokens,
                       b->num_layers, b->num_heads, ap_store_dtype_name(b->dtype), b->small_bits, b->deflate,
                       b->no_patterns ? "no patterns" : "patterns");
    return AP_OK;
}

ap_status ap_store_copy_sample(ap_store *dst, ap_store *src, int64_t i, ap_error *err) {
    ap_status st = check_same_layout(dst, src, err);
    if (st == AP_OK) st = check_sample(src, i, err);
    if (st != AP_OK) return st;
    int with_emb = i < ap_store_embedded(src);
    if (with_emb && (!dst->emb || !ap_emb_same_model(ap_emb_info(dst->emb), ap_emb_info(src->emb))))
        return ap_fail(err, AP_ERR_ARG, "%s: sample %lld has embeddings of an AP-MAE that %s has not begun", src->path,
                       (long long)i, dst->path);
    const ap_store_meta *m = &src->meta.m;
    size_t ne = with_emb ? (size_t)m->num_layers * (size_t)m->num_heads * (size_t)ap_emb_info(src->emb)->dim : 0;
    int32_t *ids = ap_malloc((size_t)m->n_tokens * sizeof *ids, err);
    float *cls = with_emb ? ap_malloc(2 * ne * sizeof *cls, err) : NULL;
    if (!ids || (with_emb && !cls)) st = AP_ERR_NOMEM;
    ap_store_sample r;
    if (st == AP_OK) st = ap_store_read_sample(src, i, &r, ids, err);
    if (st == AP_OK && with_emb) st = ap_emb_read(src->emb, i, cls, cls + ne, err);
    if (st == AP_OK) st = append_sample(dst, &r, ids, NULL, src, i, err);
    if (st == AP_OK && with_emb) st = ap_store_append_embeddings(dst, cls, cls + ne, err);
    free(ids);
    free(cls);
    return st;
}
