/* The store's rollback journal and the HDF5 file driver that writes through
 * it (see internal.h for the invariant, docs/store.md for the design).
 *
 * HDF5 (1.10, without SWMR) updates B-tree nodes, object headers and the
 * superblock in place, so a process killed while it writes can leave a
 * file that no longer opens, or that lost samples flushed long before. The
 * driver below sees every byte HDF5 writes, and keeps the pre-image of each
 * in-place overwrite in the journal until the next commit:
 *
 *   journal = header {magic "APMAEJ01", base u64, 0 u64, crc32 u32, 0 u32}
 *             then records {offset u64, length u32, crc32 u32, bytes}
 *
 * base is the store's size when the transaction began. Writes at or past
 * base go straight to the store: rolling back cuts the file to base. A
 * write below base (an overwrite) first gets the old bytes appended to the
 * journal as a record (once per byte and transaction), then waits in memory
 * with the other overwrites (reads see them) until the commit, which syncs
 * the journal once, applies them, syncs the store, and truncates the
 * journal to zero bytes: that truncation is the commit point. So a commit
 * costs three syncs however many metadata blocks HDF5 rewrote, and every
 * overwrite reaches the store only after its record is durable.
 *
 * Rolling back = cut the store to base, put back the records newest first
 * (so each byte gets its oldest saved value), sync, empty the journal. A
 * torn or corrupt record ends the list: nothing it protects was written, as
 * overwrites are applied only after the journal is synced.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define J_MAGIC "APMAEJ01"
#define J_HEADER 32
#define J_RECHDR 16
#define J_MAX_RECORD ((size_t)64 << 20)

typedef struct j_range {
    uint64_t lo, hi;
} j_range;

typedef struct j_rec {
    uint64_t off;
    uint32_t len;
    const unsigned char *data;
} j_rec;

/* An overwrite below base waiting for the commit. */
typedef struct j_def {
    uint64_t off;
    size_t len;
    unsigned char *data;
} j_def;

struct ap_journal {
    char *path;       /* the journal file */
    char *store_path; /* for messages */
    int fd;           /* journal descriptor (write mode), -1 in overlay mode */
    int overlay;      /* read-only view of the last committed state */
    int active;       /* write mode: the current transaction's header is written */
    int unsynced;     /* write mode: journal bytes not yet synced */
    uint64_t base;    /* store size at the transaction's start (overlay: committed size) */
    uint64_t jlen;    /* write mode: journal length */
    j_range *saved;   /* write mode: store ranges already saved in this transaction */
    size_t nsaved, capsaved;
    j_def *defs;      /* write mode: overwrites waiting for the commit, in order */
    size_t ndefs, capdefs;
    unsigned char *image; /* overlay: the journal's bytes */
    j_rec *recs;          /* overlay: its valid records */
    size_t nrecs;
    int data_fd;     /* the store as opened read-write by the driver, -1 if not open */
    int data_synced; /* the driver synced the store when HDF5 closed it */
    ap_error err;
};

/* ---- crash test hook ---- */

static int64_t g_mods, g_crash_at;

int64_t ap_store_crash_after(int64_t n) {
    g_crash_at = n > 0 ? g_mods + n : 0;
    return g_mods;
}

int64_t ap_store_modifications(void) { return g_mods; }

/* Count one file modification; true when the test hook wants to die here. */
static int mod_crash_here(void) {
    g_mods++;
    return g_crash_at > 0 && g_mods == g_crash_at;
}

/* ---- small I/O helpers that name the file in errors ---- */

static ap_status pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *path, ap_error *err) {
    const unsigned char *p = buf;
    if (mod_crash_here()) { /* leave a torn write behind */
        ssize_t r = pwrite(fd, p, len / 2, (off_t)off);
        (void)r;
        raise(SIGKILL);
    }
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return ap_fail_errno(err, AP_ERR_IO, "%s: write of %zu bytes at %llu failed", path, len,
                                         (unsigned long long)off);
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return AP_OK;
}

/* Reads len bytes at off; bytes past the end of the file read as zeros. */
static ap_status pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path, ap_error *err) {
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return ap_fail_errno(err, AP_ERR_IO, "%s: read at %llu failed", path, (unsigned long long)off);
        if (r == 0) {
            memset(p, 0, len);
            break;
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return AP_OK;
}

static ap_status sync_fd(int fd, const char *path, ap_error *err) {
    if (mod_crash_here()) raise(SIGKILL);
    if (fdatasync(fd) != 0) return ap_fail_errno(err, AP_ERR_IO, "%s: sync failed", path);
    return AP_OK;
}

static ap_status truncate_fd(int fd, uint64_t size, const char *path, ap_error *err) {
    if (mod_crash_here()) raise(SIGKILL);
    if (ftruncate(fd, (off_t)size) != 0)
        return ap_fail_errno(err, AP_ERR_IO, "%s: cannot set size to %llu", path, (unsigned long long)size);
    return AP_OK;
}

/* Make a new directory entry durable (the journal must not vanish in a
 * power loss while the store holds overwrites it protects). */
ap_status ap_fsync_parent_dir(const char *path, ap_error *err) {
    char *copy = ap_strdup(path, err);
    if (!copy) return err ? err->code : AP_ERR_NOMEM;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    ap_status st = AP_OK;
    if (dfd < 0 || fsync(dfd) != 0) st = ap_fail_errno(err, AP_ERR_IO, "%s: cannot sync its directory", path);
    if (dfd >= 0) close(dfd);
    free(copy);
    return st;
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t crc(const unsigned char *p, size_t n, uint32_t seed) {
    return (uint32_t)crc32((uLong)seed, p, (uInt)n);
}

/* ---- journal parsing (shared by rollback and the read-only overlay) ---- */

/* Parse a journal image: 1 and base/records when it holds a transaction,
 * 0 when it is empty or its header was never completely written (then no
 * store byte was touched yet, as everything waits for the header). */
static int parse_journal(const unsigned char *img, size_t len, uint64_t *base, j_rec **recs, size_t *nrecs,
                         ap_error *err) {
    *recs = NULL;
    *nrecs = 0;
    if (len < J_HEADER || memcmp(img, J_MAGIC, 8) != 0 || crc(img, 24, 0) != get_u32(img + 24)) return 0;
    *base = get_u64(img + 8);
    size_t cap = 0;
    for (size_t pos = J_HEADER; pos + J_RECHDR <= len;) {
        uint64_t off = get_u64(img + pos);
        uint32_t n = get_u32(img + pos + 8);
        if (n == 0 || n > len - pos - J_RECHDR || off + n > *base) break;
        uint32_t c = crc(img + pos + J_RECHDR, n, crc(img + pos, 12, 0));
        if (c != get_u32(img + pos + 12)) break;
        if (*nrecs == cap) {
            cap = cap ? 2 * cap : 16;
            j_rec *grown = ap_realloc(*recs, cap * sizeof **recs, err);
            if (!grown) {
                free(*recs);
                *recs = NULL;
                return -1;
            }
            *recs = grown;
        }
        (*recs)[(*nrecs)++] = (j_rec){off, n, img + pos + J_RECHDR};
        pos += J_RECHDR + n;
    }
    return 1;
}

static ap_status read_all_fd(int fd, const char *path, unsigned char **out, size_t *len, ap_error *err) {
    struct stat st;
    if (fstat(fd, &st) != 0) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot stat", path);
    *len = (size_t)st.st_size;
    *out = ap_malloc(*len + 1, err);
    if (!*out) return err ? err->code : AP_ERR_NOMEM;
    ap_status s = pread_full(fd, *out, *len, 0, path, err);
    if (s != AP_OK) {
        free(*out);
        *out = NULL;
    }
    return s;
}

char *ap_journal_path(const char *store_path, ap_error *err) {
    size_t n = strlen(store_path) + sizeof "-journal";
    char *p = ap_malloc(n, err);
    if (p) snprintf(p, n, "%s-journal", store_path);
    return p;
}

static void drop_deferred(ap_journal *j) {
    for (size_t k = 0; k < j->ndefs; k++) free(j->defs[k].data);
    j->ndefs = 0;
}

static void journal_free_fields(ap_journal *j) {
    drop_deferred(j);
    free(j->defs);
    if (j->fd >= 0) close(j->fd);
    free(j->path);
    free(j->store_path);
    free(j->saved);
    free(j->image);
    free(j->recs);
}

void ap_journal_free(ap_journal *j, int remove_file) {
    if (!j) return;
    if (remove_file && !j->overlay) unlink(j->path);
    journal_free_fields(j);
    free(j);
}

static ap_journal *journal_new(const char *store_path, ap_error *err) {
    ap_journal *j = ap_calloc(1, sizeof *j, err);
    if (!j) return NULL;
    j->fd = -1;
    j->data_fd = -1;
    j->path = ap_journal_path(store_path, err);
    j->store_path = ap_strdup(store_path, err);
    if (!j->path || !j->store_path) {
        ap_journal_free(j, 0);
        return NULL;
    }
    return j;
}

/* Put the store back to the journal's committed state (idempotent). */
static ap_status roll_back(const char *store_path, uint64_t base, const j_rec *recs, size_t nrecs, ap_error *err) {
    int fd = open(store_path, O_RDWR);
    if (fd < 0) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot open to roll back an interrupted write", store_path);
    ap_status s = truncate_fd(fd, base, store_path, err);
    for (size_t k = nrecs; s == AP_OK && k-- > 0;)
        s = pwrite_all(fd, recs[k].data, recs[k].len, recs[k].off, store_path, err);
    if (s == AP_OK) s = sync_fd(fd, store_path, err);
    close(fd);
    if (s == AP_OK)
        ap_info("%s: rolled back the uncommitted part of an interrupted write (%zu saved blocks)", store_path, nrecs);
    return s;
}

/* Roll back what the journal holds, then empty it. */
static ap_status recover(ap_journal *j, ap_error *err) {
    unsigned char *img = NULL;
    size_t len = 0;
    ap_status s = read_all_fd(j->fd, j->path, &img, &len, err);
    if (s == AP_OK) {
        uint64_t base = 0;
        j_rec *recs = NULL;
        size_t nrecs = 0;
        int pending = parse_journal(img, len, &base, &recs, &nrecs, err);
        if (pending < 0) s = err ? err->code : AP_ERR_NOMEM;
        if (pending > 0) s = roll_back(j->store_path, base, recs, nrecs, err);
        if (s == AP_OK && len > 0) s = truncate_fd(j->fd, 0, j->path, err);
        if (s == AP_OK && len > 0) s = sync_fd(j->fd, j->path, err);
        free(recs);
    }
    free(img);
    if (s == AP_OK) {
        j->active = 0;
        j->nsaved = 0;
        j->jlen = 0;
        drop_deferred(j);
    }
    return s;
}

ap_status ap_journal_open_write(const char *store_path, ap_journal **out, ap_error *err) {
    *out = NULL;
    ap_journal *j = journal_new(store_path, err);
    if (!j) return err ? err->code : AP_ERR_NOMEM;
    int existed = ap_path_exists(j->path);
    ap_status s = AP_OK;
    j->fd = open(j->path, O_RDWR | O_CREAT, 0644);
    if (j->fd < 0) s = ap_fail_errno(err, AP_ERR_IO, "%s: cannot open the store's journal", j->path);
    if (s == AP_OK && !existed) s = ap_fsync_parent_dir(j->path, err);
    if (s == AP_OK) s = recover(j, err);
    if (s != AP_OK) {
        ap_journal_free(j, 0);
        return s;
    }
    *out = j;
    return AP_OK;
}

void ap_journal_abort(ap_journal *j) {
    if (!j) return;
    ap_error e = {0};
    int ok = j->overlay || recover(j, &e) == AP_OK;
    if (!ok) ap_warn("%s", e.msg);
    ap_journal_free(j, ok);
}

ap_status ap_journal_open_overlay(const char *store_path, ap_journal **out, ap_error *err) {
    *out = NULL;
    char *path = ap_journal_path(store_path, err);
    if (!path) return err ? err->code : AP_ERR_NOMEM;
    int fd = open(path, O_RDONLY);
    free(path);
    if (fd < 0) return AP_OK; /* no journal: nothing pending */
    ap_journal *j = journal_new(store_path, err);
    size_t len = 0;
    ap_status s = j ? read_all_fd(fd, j->path, &j->image, &len, err) : (err ? err->code : AP_ERR_NOMEM);
    close(fd);
    if (s != AP_OK) {
        ap_journal_free(j, 0);
        return s;
    }
    j->overlay = 1;
    int pending = parse_journal(j->image, len, &j->base, &j->recs, &j->nrecs, err);
    if (pending <= 0) {
        ap_journal_free(j, 0);
        return pending < 0 ? (err ? err->code : AP_ERR_NOMEM) : AP_OK;
    }
    ap_warn("%s: its last writer stopped without committing; reading the last committed state (the next writer "
            "repairs the file)",
            store_path);
    *out = j;
    return AP_OK;
}

/* Write mode: start a transaction at the first modification after a commit. */
static ap_status begin_transaction(ap_journal *j, int data_fd, ap_error *err) {
    struct stat st;
    if (fstat(data_fd, &st) != 0) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot stat", j->store_path);
    unsigned char h[J_HEADER] = {0};
    memcpy(h, J_MAGIC, 8);
    put_u64(h + 8, (uint64_t)st.st_size);
    put_u32(h + 24, crc(h, 24, 0));
    ap_status s = pwrite_all(j->fd, h, sizeof h, 0, j->path, err);
    if (s != AP_OK) return s;
    j->base = (uint64_t)st.st_size;
    j->jlen = J_HEADER;
    j->active = 1;
    j->unsynced = 1;
    j->nsaved = 0;
    return AP_OK;
}

static ap_status save_range(ap_journal *j, int data_fd, uint64_t lo, uint64_t hi, ap_error *err) {
    while (lo < hi) {
        size_t n = (size_t)(hi - lo) < J_MAX_RECORD ? (size_t)(hi - lo) : J_MAX_RECORD;
        unsigned char *rec = ap_malloc(J_RECHDR + n, err);
        if (!rec) return err ? err->code : AP_ERR_NOMEM;
        ap_status s = pread_full(data_fd, rec + J_RECHDR, n, lo, j->store_path, err);
        if (s == AP_OK) {
            put_u64(rec, lo);
            put_u32(rec + 8, (uint32_t)n);
            put_u32(rec + 12, crc(rec + J_RECHDR, n, crc(rec, 12, 0)));
            s = pwrite_all(j->fd, rec, J_RECHDR + n, j->jlen, j->path, err);
        }
        free(rec);
        if (s != AP_OK) return s;
        j->jlen += J_RECHDR + n;
        j->unsynced = 1;
        lo += n;
    }
    return AP_OK;
}

/* Record that [lo, hi) is saved, keeping the list sorted and merged. */
static ap_status mark_saved(ap_journal *j, uint64_t lo, uint64_t hi, ap_error *err) {
    if (j->nsaved == j->capsaved) {
        size_t cap = j->capsaved ? 2 * j->capsaved : 32;
        j_range *grown = ap_realloc(j->saved, cap * sizeof *grown, err);
        if (!grown) return err ? err->code : AP_ERR_NOMEM;
        j->saved = grown;
        j->capsaved = cap;
    }
    size_t k = 0;
    while (k < j->nsaved && j->saved[k].hi < lo) k++;
    size_t m = k; /* ranges k..m-1 touch [lo, hi) and merge into it */
    while (m < j->nsaved && j->saved[m].lo <= hi) {
        if (j->saved[m].lo < lo) lo = j->saved[m].lo;
        if (j->saved[m].hi > hi) hi = j->saved[m].hi;
        m++;
    }
    if (m == k) {
        memmove(j->saved + k + 1, j->saved + k, (j->nsaved - k) * sizeof *j->saved);
        j->nsaved++;
    } else if (m > k + 1) {
        memmove(j->saved + k + 1, j->saved + m, (j->nsaved - m) * sizeof *j->saved);
        j->nsaved -= m - k - 1;
    }
    j->saved[k] = (j_range){lo, hi};
    return AP_OK;
}

/* Before store bytes [addr, addr+size) change: journal (not yet synced)
 * the old value of what of them lies below base and is not saved yet. */
static ap_status save_preimage(ap_journal *j, int data_fd, uint64_t addr, uint64_t size, ap_error *err) {
    ap_status s = AP_OK;
    if (!j->active && (s = begin_transaction(j, data_fd, err)) != AP_OK) return s;
    uint64_t hi = addr + size < j->base ? addr + size : j->base;
    if (addr >= hi) return AP_OK;
    uint64_t pos = addr;
    for (size_t k = 0; k < j->nsaved && pos < hi; k++) {
        const j_range *r = &j->saved[k];
        if (r->hi <= pos) continue;
        if (r->lo >= hi) break;
        if (r->lo > pos && (s = save_range(j, data_fd, pos, r->lo, err)) != AP_OK) return s;
        pos = r->hi;
    }
    if (pos < hi && (s = save_range(j, data_fd, pos, hi, err)) != AP_OK) return s;
    return mark_saved(j, addr, hi, err);
}

/* Keep an overwrite for the commit; a rewrite of the same block replaces
 * the waiting one (HDF5 rewrites its metadata blocks in place). */
static ap_status defer(ap_journal *j, uint64_t off, const void *buf, size_t len, ap_error *err) {
    for (size_t k = j->ndefs; k-- > 0;) {
        j_def *d = &j->defs[k];
        if (d->off == off && d->len == len) {
            memcpy(d->data, buf, len);
            return AP_OK;
        }
        if (d->off < off + len && off < d->off + d->len) break; /* overlaps: order matters */
    }
    if (j->ndefs == j->capdefs) {
        size_t cap = j->capdefs ? 2 * j->capdefs : 64;
        j_def *grown = ap_realloc(j->defs, cap * sizeof *grown, err);
        if (!grown) return err ? err->code : AP_ERR_NOMEM;
        j->defs = grown;
        j->capdefs = cap;
    }
    unsigned char *copy = ap_malloc(len, err);
    if (!copy) return err ? err->code : AP_ERR_NOMEM;
    memcpy(copy, buf, len);
    j->defs[j->ndefs++] = (j_def){off, len, copy};
    return AP_OK;
}

/* Sync the journal, then apply the waiting overwrites to the store. */
static ap_status apply_deferred(ap_journal *j, int data_fd, ap_error *err) {
    ap_status s = AP_OK;
    if (j->unsynced && (s = sync_fd(j->fd, j->path, err)) != AP_OK) return s;
    j->unsynced = 0;
    for (size_t k = 0; s == AP_OK && k < j->ndefs; k++)
        s = pwrite_all(data_fd, j->defs[k].data, j->defs[k].len, j->defs[k].off, j->store_path, err);
    drop_deferred(j);
    return s;
}

ap_status ap_journal_commit(ap_journal *j, ap_error *err) {
    if (!j->active) return AP_OK;
    ap_status s = AP_OK;
    if (j->data_fd >= 0) {
        s = apply_deferred(j, j->data_fd, err);
        if (s == AP_OK) s = sync_fd(j->data_fd, j->store_path, err);
    } else if (!j->data_synced) {
        s = ap_fail(err, AP_ERR_INTERNAL, "%s: commit of an unsynced store", j->store_path);
    }
    if (s == AP_OK) s = truncate_fd(j->fd, 0, j->path, err);
    if (s == AP_OK) s = sync_fd(j->fd, j->path, err);
    if (s == AP_OK) {
        j->active = 0;
        j->nsaved = 0;
        j->jlen = 0;
    }
    return s;
}

const ap_error *ap_journal_last_error(const ap_journal *j) { return j && j->err.msg[0] ? &j->err : NULL; }

/* ---- the HDF5 file driver ---- */

typedef struct jd_fapl {
    ap_journal *j;
} jd_fapl;

typedef struct jd_file {
    H5FD_t pub; /* must be first */
    int fd;
    haddr_t eoa, eof;
    dev_t dev;
    ino_t ino;
    ap_journal *j;
} jd_file;

#define JD_MAXADDR (((haddr_t)1 << (8 * sizeof(off_t) - 1)) - 1)

static void *jd_fapl_get(H5FD_t *file) {
    jd_fapl *fa = malloc(sizeof *fa);
    if (fa) fa->j = ((jd_file *)file)->j;
    return fa;
}

static void *jd_fapl_copy(const void *old) {
    jd_fapl *fa = malloc(sizeof *fa);
    if (fa) memcpy(fa, old, sizeof *fa);
    return fa;
}

static herr_t jd_fapl_free(void *fa) {
    free(fa);
    return 0;
}

static H5FD_t *jd_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr) {
    const jd_fapl *fa = H5Pget_driver_info(fapl);
    if (!fa || !fa->j) return NULL;
    ap_journal *j = fa->j;
    int rw = (flags & H5F_ACC_RDWR) != 0;
    if (rw && j->overlay) {
        ap_fail(&j->err, AP_ERR_INTERNAL, "%s: read-only view opened for writing", name);
        return NULL;
    }
    int oflags = rw ? O_RDWR : O_RDONLY;
    int fd = open(name, oflags);
    if (fd < 0) {
        ap_fail_errno(&j->err, AP_ERR_IO, "%s: cannot open", name);
        return NULL;
    }
    struct stat st;
    jd_file *f = NULL;
    if (fstat(fd, &st) != 0 || !(f = calloc(1, sizeof *f))) {
        ap_fail_errno(&j->err, AP_ERR_IO, "%s: cannot stat", name);
        close(fd);
        return NULL;
    }
    f->fd = fd;
    f->eof = (haddr_t)st.st_size;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->j = j;
    if (rw) {
        j->data_fd = fd;
        j->data_synced = 0;
    }
    return &f->pub;
}

/* A store closed in a transaction is synced first: the commit that follows
 * (ap_store_close) has no descriptor left to sync. */
static herr_t jd_close(H5FD_t *file) {
    jd_file *f = (jd_file *)file;
    ap_journal *j = f->j;
    int ok = 1;
    if (j->data_fd == f->fd) {
        j->data_fd = -1;
        j->data_synced = !j->active || (apply_deferred(j, f->fd, &j->err) == AP_OK &&
                                        sync_fd(f->fd, j->store_path, &j->err) == AP_OK);
        ok = j->data_synced;
    }
    ok = close(f->fd) == 0 && ok;
    free(f);
    return ok ? 0 : -1;
}

static int jd_cmp(const H5FD_t *a, const H5FD_t *b) {
    const jd_file *x = (const jd_file *)a, *y = (const jd_file *)b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return 0;
}

static herr_t jd_query(const H5FD_t *file, unsigned long *flags) {
    (void)file;
    if (flags)
        *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
                 H5FD_FEAT_AGGREGATE_SMALLDATA | H5FD_FEAT_DEFAULT_VFD_COMPATIBLE;
    return 0;
}

static haddr_t jd_get_eoa(const H5FD_t *file, H5FD_mem_t type) {
    (void)type;
    return ((const jd_file *)file)->eoa;
}

static herr_t jd_set_eoa(H5FD_t *file, H5FD_mem_t type, haddr_t addr) {
    (void)type;
    ((jd_file *)file)->eoa = addr;
    return 0;
}

/* In the overlay the committed file ends at the journal's base. */
static haddr_t jd_get_eof(const H5FD_t *file, H5FD_mem_t type) {
    (void)type;
    const jd_file *f = (const jd_file *)file;
    return f->j->overlay ? (haddr_t)f->j->base : f->eof;
}

static herr_t jd_read(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, void *buf) {
    (void)type;
    (void)dxpl;
    jd_file *f = (jd_file *)file;
    ap_journal *j = f->j;
    if (pread_full(f->fd, buf, size, addr, j->store_path, &j->err) != AP_OK) return -1;
    unsigned char *out = buf;
    if (!j->overlay) { /* the overwrites waiting for the commit, in order */
        for (size_t k = 0; k < j->ndefs; k++) {
            const j_def *d = &j->defs[k];
            uint64_t lo = d->off > addr ? d->off : addr;
            uint64_t hi = d->off + d->len < addr + size ? d->off + d->len : addr + size;
            if (lo < hi) memcpy(out + (lo - addr), d->data + (lo - d->off), hi - lo);
        }
        return 0;
    }
    /* Bytes past the committed end did not exist then; saved blocks hold
     * the committed values (newest first, so the oldest copy wins). */
    if (addr + size > j->base) {
        uint64_t from = addr < j->base ? j->base - addr : 0;
        memset(out + from, 0, size - from);
    }
    for (size_t k = j->nrecs; k-- > 0;) {
        const j_rec *r = &j->recs[k];
        uint64_t lo = r->off > addr ? r->off : addr;
        uint64_t hi = r->off + r->len < addr + size ? r->off + r->len : addr + size;
        if (lo < hi) memcpy(out + (lo - addr), r->data + (lo - r->off), hi - lo);
    }
    return 0;
}

static herr_t jd_write(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, const void *buf) {
    (void)type;
    (void)dxpl;
    jd_file *f = (jd_file *)file;
    ap_journal *j = f->j;
    if (save_preimage(j, f->fd, addr, size, &j->err) != AP_OK) return -1;
    /* [addr, split) lies below base: an overwrite, held until the commit */
    uint64_t split = addr < j->base ? (addr + size < j->base ? addr + size : j->base) : addr;
    if (split > addr && defer(j, addr, buf, (size_t)(split - addr), &j->err) != AP_OK) return -1;
    if (addr + size > split &&
        pwrite_all(f->fd, (const unsigned char *)buf + (split - addr), (size_t)(addr + size - split), split,
                   j->store_path, &j->err) != AP_OK)
        return -1;
    if (addr + size > f->eof) f->eof = addr + size;
    return 0;
}

/* HDF5 sets the file's size to its end of allocation on flush and close.
 * Cutting below base destroys committed bytes: their copies must be
 * durable first, and waiting overwrites are applied before. */
static herr_t jd_truncate(H5FD_t *file, hid_t dxpl, hbool_t closing) {
    (void)dxpl;
    (void)closing;
    jd_file *f = (jd_file *)file;
    ap_journal *j = f->j;
    if (f->eoa == f->eof) return 0;
    if (save_preimage(j, f->fd, f->eoa < f->eof ? f->eoa : f->eof, f->eoa < f->eof ? f->eof - f->eoa : 0, &j->err) !=
        AP_OK)
        return -1;
    if (f->eoa < j->base && apply_deferred(j, f->fd, &j->err) != AP_OK) return -1;
    if (truncate_fd(f->fd, f->eoa, j->store_path, &j->err) != AP_OK) return -1;
    f->eof = f->eoa;
    return 0;
}

static const H5FD_class_t k_driver = {
    .name = "apmae_journal",
    .maxaddr = JD_MAXADDR,
    .fc_degree = H5F_CLOSE_WEAK,
    .fapl_size = sizeof(jd_fapl),
    .fapl_get = jd_fapl_get,
    .fapl_copy = jd_fapl_copy,
    .fapl_free = jd_fapl_free,
    .open = jd_open,
    .close = jd_close,
    .cmp = jd_cmp,
    .query = jd_query,
    .get_eoa = jd_get_eoa,
    .set_eoa = jd_set_eoa,
    .get_eof = jd_get_eof,
    .read = jd_read,
    .write = jd_write,
    .truncate = jd_truncate,
    /* No lock callbacks: the store holds its own flock on the file. */
    .fl_map = H5FD_FLMAP_DICHOTOMY,
};

hid_t ap_journal_fapl(ap_journal *j, ap_error *err) {
    static hid_t driver = H5I_INVALID_HID;
    if (driver < 0 || H5Iis_valid(driver) <= 0) driver = H5FDregister(&k_driver);
    if (driver < 0) {
        ap_fail(err, AP_ERR_INTERNAL, "cannot register the store's HDF5 file driver");
        return H5I_INVALID_HID;
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    jd_fapl info = {j};
    if (fapl < 0 || H5Pset_driver(fapl, driver, &info) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        ap_fail(err, AP_ERR_INTERNAL, "cannot set up the store's HDF5 file driver");
        return H5I_INVALID_HID;
    }
    j->err.msg[0] = '\0';
    return fapl;
}
