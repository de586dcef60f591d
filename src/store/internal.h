/* Internals of the store shared by its source files. */
#ifndef APMAE_STORE_INTERNAL_H
#define APMAE_STORE_INTERNAL_H

#include "apmae/store.h"

#include <hdf5.h>
#include <zlib.h>

/* ---- Rollback journal and the HDF5 file driver that writes through it ----
 *
 * Every byte the HDF5 library overwrites below the file's size at the start
 * of a transaction is first copied, with a checksum, into "<store>-journal";
 * the overwrites themselves wait in memory and reach the store only at the
 * commit, after the journal is synced. Bytes written past that size go
 * straight to the store. A commit syncs the store and empties the journal.
 * So at any instant: store bytes, with the journal's saved copies put back
 * and cut to the journal's recorded size = the store as of the last commit.
 * Rolling back is idempotent, so a crash during the rollback is harmless
 * too. Details in journal.c and docs/store.md. */
typedef struct ap_journal ap_journal;

/* Journal path of a store (malloc'ed). */
char *ap_journal_path(const char *store_path, ap_error *err);

/* For a writer, with the store's exclusive lock held: roll back whatever an
 * interrupted writer left (no-op without a pending journal), then return a
 * journal ready to record the next transaction. */
ap_status ap_journal_open_write(const char *store_path, ap_journal **out, ap_error *err);
/* For a reader: when an interrupted writer left a pending transaction, a
 * journal that makes reads see the last committed state without writing
 * anything (*out NULL when there is nothing to undo). */
ap_status ap_journal_open_overlay(const char *store_path, ap_journal **out, ap_error *err);
/* Sync the journal, apply the waiting overwrites, sync the store, then
 * empty the journal: the commit point. */
ap_status ap_journal_commit(ap_journal *j, ap_error *err);
/* Free; remove the journal file when asked (after a clean close). */
void ap_journal_free(ap_journal *j, int remove_file);
/* After a writer's failure, with the store closed: roll back to the last
 * commit and remove the journal (it stays, for the next writer to roll
 * back, if that fails), then free. NULL is a no-op. */
void ap_journal_abort(ap_journal *j);
/* A file access property list using the journaling driver bound to j. */
hid_t ap_journal_fapl(ap_journal *j, ap_error *err);
/* The error a driver callback hit (message naming the file), if any; the
 * HDF5 error stack only says that the driver failed. */
const ap_error *ap_journal_last_error(const ap_journal *j);

/* fsync the directory holding path, so a new entry in it is durable. */
ap_status ap_fsync_parent_dir(const char *path, ap_error *err);

/* Test hook: the n-th (1-based) file modification made by journaled stores
 * after this call — a store or journal write, truncate or sync — kills the
 * process with SIGKILL; writes are first done half, to leave torn writes.
 * 0 disables. Returns the number of modifications counted so far. */
int64_t ap_store_crash_after(int64_t n);
int64_t ap_store_modifications(void);

/* ---- Pattern encoding ---- */

/* Lower triangle of an N×N matrix, row-major: row i holds columns 0..i. */
static inline size_t ap_tri_size(int N) { return (size_t)N * (size_t)(N + 1) / 2; }
void ap_tri_from_full(const float *full, int N, float *tri);
void ap_tri_to_full(const float *tri, int N, float *full);

/* Narrow n floats to the store dtype (F32 copy, F16, or BF16 keeping
 * small_bits mantissa bits for entries below AP_STORE_SMALL_BELOW). */
void ap_store_encode(ap_dtype dt, int small_bits, const float *src, void *dst, size_t n);

/* HDF5 file datatype for a store dtype (a copy the caller closes). F16 and
 * BF16 are custom IEEE-style 2-byte floats, so h5py reads them as numbers. */
hid_t ap_store_h5type(ap_dtype dt);

/* Byte-shuffle then deflate chunks exactly as HDF5's shuffle + deflate
 * filter pipeline stores them (a zlib stream of the shuffled bytes), so
 * chunks can be compressed in parallel and written directly. Level 1 uses
 * zlib's run-length strategy (on shuffled patterns it is both faster and
 * smaller than level 1's default), levels 2-9 the "filtered" strategy.
 * A coder keeps its zlib state between chunks (zlib's per-stream setup
 * costs more than compressing a small chunk). */
typedef struct ap_chunk_coder {
    z_stream z;
    int level, ready;
} ap_chunk_coder;
size_t ap_chunk_bound(size_t nbytes);
/* scratch: nbytes; out: ap_chunk_bound(nbytes). */
ap_status ap_chunk_compress(ap_chunk_coder *c, int level, const void *src, size_t nbytes, size_t elem, void *scratch,
                            void *out, size_t *out_len, ap_error *err);
void ap_chunk_coder_free(ap_chunk_coder *c);

/* ---- Root attributes and HDF5 helpers (meta.c) ---- */

/* A store's metadata as read back, owning its strings. */
typedef struct ap_meta_owned {
    ap_store_meta m; /* points into the fields below */
    char *model_id, *model_config, *run, *tool_version;
    char **tasks;
    int64_t *seeds;
    int format_version;
    int64_t cursor;
} ap_meta_owned;

/* Write every root attribute of a new store (cursor 0). */
ap_status ap_meta_write(hid_t file, const ap_store_meta *m, const char *path, ap_error *err);
/* Read and validate them; errors name path. */
ap_status ap_meta_read(hid_t file, const char *path, ap_meta_owned *out, ap_error *err);
void ap_meta_free(ap_meta_owned *o);
ap_status ap_meta_write_cursor(hid_t file, int64_t cursor, const char *path, ap_error *err);
/* "f32", "f16", "bf16". */
const char *ap_store_dtype_name(ap_dtype dt);

/* Scalar attributes of any object (create or overwrite; read). Errors name
 * path; a missing attribute is an AP_ERR_FORMAT error. */
ap_status ap_h5_put_i64(hid_t obj, const char *name, int64_t v, const char *path, ap_error *err);
ap_status ap_h5_put_str(hid_t obj, const char *name, const char *v, const char *path, ap_error *err);
ap_status ap_h5_get_i64(hid_t obj, const char *name, const char *path, int64_t *v, ap_error *err);
ap_status ap_h5_get_str(hid_t obj, const char *name, const char *path, char **out, ap_error *err); /* malloc'ed */

/* An empty dataset of rank <= 4, [0, dims_tail...], extendible along its
 * first dimension, chunked, shuffled and deflated at level (0: neither). */
ap_status ap_h5_make_dataset(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims_tail,
                             const hsize_t *chunk, int level, const char *path, ap_error *err);

/* ---- Embeddings (embeddings.c): /embeddings/{cls,mean} [E, L, H, D] ---- */

typedef struct ap_emb ap_emb;
/* Open the /embeddings group of a store when it exists (*out NULL when it
 * does not), checking its attributes and that both datasets are [E, L, H, D]
 * with the same E. */
ap_status ap_emb_open(hid_t file, const char *path, int L, int H, ap_emb **out, ap_error *err);
/* Create /embeddings with info's attributes (deflate 0: no compression). */
ap_status ap_emb_create(hid_t file, const char *path, const ap_store_embed_info *info, int L, int H, int deflate,
                        ap_emb **out, ap_error *err);
const ap_store_embed_info *ap_emb_info(const ap_emb *e);
/* Same AP-MAE and encoding: hash, config and compat mode. */
int ap_emb_same_model(const ap_store_embed_info *a, const ap_store_embed_info *b);
int64_t ap_emb_count(const ap_emb *e);
/* Write row E (cls, mean [L, H, D]) and extend both datasets to E + 1. */
ap_status ap_emb_append(ap_emb *e, const float *cls, const float *mean, ap_error *err);
ap_status ap_emb_read(ap_emb *e, int64_t i, float *cls, float *mean, ap_error *err);
/* Rows 0..count-1 of one head, cls (mean = 0) or mean: out [count, D]. */
ap_status ap_emb_read_head(ap_emb *e, int layer, int head, int mean, int64_t count, float *out, ap_error *err);
/* Stored bytes of both datasets. */
int64_t ap_emb_storage(const ap_emb *e);
/* Close the datasets and free; NULL is a no-op. */
void ap_emb_free(ap_emb *e);

/* ---- Clusters (clusters.c): /clusters, kept in memory but for labels and summaries ---- */

typedef struct ap_clusters ap_clusters;
/* Read /clusters when the store has it (*out NULL when not), checking its
 * shapes against L x H. */
ap_status ap_clusters_load(hid_t file, const char *path, int L, int H, ap_clusters **out, ap_error *err);
void ap_clusters_free(ap_clusters *c);

/* What clusters.c needs of the store handle (store.c). */
hid_t ap_store_h5(const ap_store *s);
ap_clusters **ap_store_clusters_slot(ap_store *s);
/* AP_OK when s may be written: opened for APPEND, no earlier failed write. */
ap_status ap_store_check_writable(const ap_store *s, ap_error *err);
/* After a failed write: refuse further commits and prefer the journal's
 * message (naming the file) when it has one. Returns st. */
ap_status ap_store_write_failed(ap_store *s, ap_status st, ap_error *err);

/* Variable-length UTF-8 string type (caller closes). */
hid_t ap_h5_str_type(void);
/* Silence HDF5's own printing of errors (once per process). */
void ap_h5_quiet(void);
/* The innermost message of the current HDF5 error stack ("" if none). */
void ap_h5_last_message(char *buf, size_t cap);
/* Fail with "<what>: <HDF5's innermost message>". */
ap_status ap_h5_fail(ap_error *err, ap_status code, const char *what);

#endif
