/* apmae/base.h — conventions every part of apmae uses.
 *
 * Errors: every fallible function returns an ap_status and, on failure, fills
 * the caller's ap_error with a message that names the file (or argument) and
 * what is wrong. Nothing aborts on bad input; the CLI prints err.msg and exits
 * non-zero.
 *
 * Memory: whoever calls a function named *_load / *_open / *_new owns the
 * result and releases it with the matching *_free / *_close. Buffers a
 * function returns through an out-pointer are owned by the caller (free()).
 *
 * Logging and progress go to stderr; stdout carries only results.
 */
#ifndef APMAE_BASE_H
#define APMAE_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define AP_VERSION "0.1.0"

#if defined(__GNUC__)
#define AP_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define AP_PRINTF(fmt_idx, arg_idx)
#endif

typedef enum ap_status {
    AP_OK = 0,
    AP_ERR_IO,       /* a file could not be opened, read or written */
    AP_ERR_FORMAT,   /* a file's content is malformed or inconsistent */
    AP_ERR_ARG,      /* a caller/user argument is invalid */
    AP_ERR_NOMEM,    /* allocation failed */
    AP_ERR_RANGE,    /* a value is out of its allowed range (ids, indices) */
    AP_ERR_INTERNAL  /* a bug: an invariant of apmae itself failed */
} ap_status;

typedef struct ap_error {
    ap_status code;
    char msg[1024];
} ap_error;

/* Record an error (if err is non-NULL) and return code, so callers can write
 * `return ap_fail(err, AP_ERR_FORMAT, "%s: bad header", path);`. */
ap_status ap_fail(ap_error *err, ap_status code, const char *fmt, ...) AP_PRINTF(3, 4);
/* Same, appending ": strerror(errno)". */
ap_status ap_fail_errno(ap_error *err, ap_status code, const char *fmt, ...) AP_PRINTF(3, 4);
/* Prepend context to an existing message ("while loading X: <old msg>"). */
ap_status ap_error_prefix(ap_error *err, const char *fmt, ...) AP_PRINTF(2, 3);
void ap_error_clear(ap_error *err);
const char *ap_status_name(ap_status code);

/* Allocation that reports failure through err instead of crashing. */
void *ap_malloc(size_t size, ap_error *err);
void *ap_calloc(size_t count, size_t size, ap_error *err);
void *ap_realloc(void *ptr, size_t size, ap_error *err);
char *ap_strdup(const char *s, ap_error *err);
/* 64-byte aligned allocation (free with ap_free_aligned). */
void *ap_malloc_aligned(size_t size, ap_error *err);
void ap_free_aligned(void *ptr);

/* Growable byte buffer, used for building strings and files in memory. */
typedef struct ap_buf {
    char *data;
    size_t len, cap;
} ap_buf;
ap_status ap_buf_append(ap_buf *b, const void *data, size_t len, ap_error *err);
ap_status ap_buf_printf(ap_buf *b, ap_error *err, const char *fmt, ...) AP_PRINTF(3, 4);
void ap_buf_free(ap_buf *b);

/* Files. ap_read_file returns a NUL-terminated copy of the whole file. */
ap_status ap_read_file(const char *path, char **data, size_t *len, ap_error *err);
/* Writes to "path.tmp.<pid>", fsyncs, renames over path: readers never see a
 * half-written file and a crash leaves the old version intact. */
ap_status ap_write_file_atomic(const char *path, const void *data, size_t len, ap_error *err);
/* A training log (JSON lines with a "step" field) cut back to the lines of
 * steps <= step, atomically: what a resumed run keeps before it writes the
 * later steps again. A missing file is fine. */
ap_status ap_log_keep_steps(const char *path, int64_t step, ap_error *err);
int ap_path_is_dir(const char *path);
int ap_path_exists(const char *path);
/* mkdir -p: dir and every missing parent. */
ap_status ap_make_dirs(const char *dir, ap_error *err);
/* rm -r: a file, or a directory with everything below it (symbolic links
 * are removed, never followed). A missing path is fine. */
ap_status ap_remove_tree(const char *path, ap_error *err);
/* dir + "/" + name into a fresh string. */
char *ap_path_join(const char *dir, const char *name, ap_error *err);
/* Whether path (or any string) ends in suffix, e.g. ".json". */
int ap_path_has_suffix(const char *path, const char *suffix);

/* A read-only memory map of a whole file. */
typedef struct ap_mmap {
    void *data;
    size_t size;
} ap_mmap;
ap_status ap_mmap_open(const char *path, ap_mmap *map, ap_error *err);
void ap_mmap_close(ap_mmap *map);

/* Logging (stderr). The level is process-wide, set once by the CLI. */
typedef enum ap_log_level { AP_LOG_ERROR, AP_LOG_WARN, AP_LOG_INFO, AP_LOG_DEBUG } ap_log_level;
void ap_log_set_level(ap_log_level level);
ap_log_level ap_log_get_level(void);
void ap_log(ap_log_level level, const char *fmt, ...) AP_PRINTF(2, 3);
#define ap_info(...) ap_log(AP_LOG_INFO, __VA_ARGS__)
#define ap_warn(...) ap_log(AP_LOG_WARN, __VA_ARGS__)
#define ap_debug(...) ap_log(AP_LOG_DEBUG, __VA_ARGS__)

/* Progress bar on stderr. On a TTY it redraws one line at most ~10 times a
 * second; otherwise it prints a plain line every ~10% so logs stay short. */
typedef struct ap_progress {
    char label[64];
    int64_t total, done;
    double t_start, t_last_draw;
    int is_tty, last_decile, active;
} ap_progress;
void ap_progress_begin(ap_progress *p, const char *label, int64_t total);
/* extra: short status text shown after the bar (may be NULL). */
void ap_progress_update(ap_progress *p, int64_t done, const char *extra);
void ap_progress_end(ap_progress *p, const char *extra);

/* Monotonic wall-clock seconds. */
double ap_now(void);

/* Threads used by parallel loops: OMP_NUM_THREADS if set, else all cores. */
int ap_num_threads(void);

/* Seedable randomness, the same on every machine (never rand()):
 * xoshiro256** seeded through splitmix64. */
typedef struct ap_rng {
    uint64_t s[4];
} ap_rng;
void ap_rng_seed(ap_rng *r, uint64_t seed);
uint64_t ap_rng_next(ap_rng *r);
/* Uniform in [0, n) without modulo bias; n >= 1. */
uint64_t ap_rng_below(ap_rng *r, uint64_t n);
/* Uniform in [0, 1) with 53 random bits. */
double ap_rng_uniform(ap_rng *r);
/* Standard normal (Box-Muller). */
double ap_rng_normal(ap_rng *r);
/* A 64-bit mix of a and b (splitmix64 finaliser), for deriving seeds. */
uint64_t ap_hash_mix(uint64_t a, uint64_t b);
/* FNV-1a of len bytes. */
uint64_t ap_hash_bytes(const void *data, size_t len);

/* Data parallelism (docs/scale.md): this process is rank `rank` of `size`
 * processes working on one job. `sum` adds x[n] element-wise over every rank
 * in place, every rank receiving the same result (the CLI fills it with
 * MPI_Allreduce, so the library needs no MPI); it is collective: every rank
 * makes the same calls in the same order. A NULL group, or size 1, is a
 * process alone. */
typedef struct ap_parallel {
    int rank, size;
    ap_status (*sum)(void *ctx, float *x, size_t n, ap_error *err);
    void *ctx;
} ap_parallel;

/* Collective: every rank passes its status. Returns st when this rank
 * failed (its message kept), else an error naming the first rank that
 * failed, else AP_OK, so that all ranks stop together and none waits for a
 * rank that has given up. */
ap_status ap_parallel_agree(const ap_parallel *p, ap_status st, ap_error *err);
/* Collective: an error naming the first rank whose value differs from rank
 * 0's (`what` names the value), else AP_OK. */
ap_status ap_parallel_check_same(const ap_parallel *p, uint64_t value, const char *what, ap_error *err);
/* The items [*lo, *lo + *n) of B that rank `rank` of `size` takes:
 * consecutive shares, in rank order, whose sizes differ by at most one. */
void ap_parallel_share(int B, int rank, int size, int *lo, int *n);

/* Parsing helpers for CLI values; messages name `what` (e.g. "--ids"). */
ap_status ap_parse_i64(const char *s, const char *what, int64_t *out, ap_error *err);
ap_status ap_parse_f64(const char *s, const char *what, double *out, ap_error *err);
/* "1,2,3" -> array of int64 (caller frees). Empty string or items are errors. */
ap_status ap_parse_i64_list(const char *s, const char *what, int64_t **out, size_t *n, ap_error *err);

#endif
