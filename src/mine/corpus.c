/* Corpus readers behind one streaming interface: a directory tree of .java
 * files, an archive read by libarchive (zip, tar, compressed tar), or JSONL
 * rows with a `content` field (plain or compressed, also through libarchive's
 * raw format). Nothing is unpacked to disk. */
#define _POSIX_C_SOURCE 200809L
#include "apmae/mine.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_MAX_FILE_BYTES (1u << 20)
#define MAX_WARNINGS 10 /* bad JSONL lines warned about one by one; then a count */

typedef enum corpus_kind { KIND_DIR, KIND_ARCHIVE, KIND_JSONL } corpus_kind;

typedef struct dir_file {
    char *rel; /* path below the root, '/'-separated */
    int64_t size;
} dir_file;

struct ap_corpus {
    corpus_kind kind;
    char *path;
    size_t max_bytes;
    char **include, **exclude;
    size_t ninclude, nexclude;
    ap_corpus_stats stats;
    ap_buf data;   /* the current file */
    ap_buf source; /* its source id */
    /* directory */
    dir_file *files;
    size_t nfiles, next_file;
    int64_t dir_total, dir_done;
    /* archive and JSONL */
    struct archive *ar;
    int64_t file_size;
    int have_pending; /* the first header, read by open to reject non-archives early */
    int pending_rc;
    struct archive_entry *pending;
    /* JSONL */
    ap_buf line;
    char *chunk;
    size_t blk_len, blk_off;
    int64_t lineno;
    int eof;
    int64_t warnings;
    int finished; /* the end was reached: later calls return nothing */
};

const char *ap_skip_reason_name(ap_skip_reason r) {
    static const char *const names[AP_SKIP_COUNT] = {"invalid_utf8", "empty", "too_large", "unreadable"};
    return (unsigned)r < AP_SKIP_COUNT ? names[r] : "?";
}

/* ---- selection ---- */

static void free_list(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static ap_status split_globs(const char *s, const char *what, char ***out, size_t *n, ap_error *err) {
    *out = NULL;
    *n = 0;
    if (!s) return AP_OK;
    size_t cap = 1;
    for (const char *c = s; *c; c++) cap += *c == ',';
    char **v = ap_calloc(cap, sizeof *v, err);
    if (!v) return AP_ERR_NOMEM;
    size_t k = 0;
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) {
            free_list(v, k);
            return ap_fail(err, AP_ERR_ARG, "%s: empty glob in '%s'", what, s);
        }
        v[k] = ap_malloc(len + 1, err);
        if (!v[k]) {
            free_list(v, k);
            return AP_ERR_NOMEM;
        }
        memcpy(v[k], p, len);
        v[k++][len] = '\0';
        if (!comma) break;
        p = comma + 1;
    }
    *out = v;
    *n = k;
    return AP_OK;
}

static int selected(const ap_corpus *c, const char *path) {
    int in = c->ninclude == 0;
    for (size_t i = 0; i < c->ninclude && !in; i++) in = ap_glob_match(c->include[i], path);
    for (size_t i = 0; i < c->nexclude && in; i++) in = !ap_glob_match(c->exclude[i], path);
    return in;
}

static int is_java(const char *path) { return strlen(path) > 5 && ap_path_has_suffix(path, ".java"); }

/* ---- content checks ---- */

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        unsigned c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) k = 1, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) k = 2, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) k = 3, cp = c & 0x07, min = 0x10000;
        else return 0;
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += k + 1;
    }
    return 1;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v'; }

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_space(s[i])) return 0;
    return 1;
}

/* -1 when the content is usable, else the skip reason. */
static int check_content(const ap_corpus *c, const char *data, size_t len) {
    if (len > c->max_bytes) return AP_SKIP_TOO_LARGE;
    if (blank(data, len)) return AP_SKIP_EMPTY;
    if (!valid_utf8((const unsigned char *)data, len)) return AP_SKIP_INVALID_UTF8;
    return -1;
}

static ap_status set_source(ap_corpus *c, const char *s, ap_error *err) {
    c->source.len = 0;
    return ap_buf_append(&c->source, s, strlen(s) + 1, err);
}

/* Hands out c->data (NUL-terminated) as the next file. */
static void hand_out(ap_corpus *c, ap_corpus_file *f) {
    f->source = c->source.data;
    f->data = c->data.data;
    f->len = c->data.len - 1;
    f->ordinal = c->stats.files++;
    c->stats.bytes += (int64_t)f->len;
}

/* ---- directory ---- */

static int cmp_dir_file(const void *a, const void *b) {
    return strcmp(((const dir_file *)a)->rel, ((const dir_file *)b)->rel);
}

static ap_status add_dir_file(ap_corpus *c, size_t *cap, const char *rel, int64_t size, ap_error *err) {
    if (c->nfiles == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        dir_file *v = ap_realloc(c->files, *cap * sizeof *v, err);
        if (!v) return AP_ERR_NOMEM;
        c->files = v;
    }
    char *r = ap_strdup(rel, err);
    if (!r) return AP_ERR_NOMEM;
    c->files[c->nfiles++] = (dir_file){r, size};
    c->dir_total += size;
    return AP_OK;
}

/* Lists *.java files below root/rel. Symbolic links to directories are not
 * followed (no cycles); an unreadable subdirectory is a counted skip. */
static ap_status list_dir(ap_corpus *c, size_t *cap, const char *rel, ap_error *err) {
    char *dir = rel[0] ? ap_path_join(c->path, rel, err) : ap_strdup(c->path, err);
    if (!dir) return AP_ERR_NOMEM;
    DIR *d = opendir(dir);
    if (!d) {
        if (rel[0]) {
            ap_warn("%s: cannot read directory (%s), skipped", dir, strerror(errno));
            c->stats.skipped[AP_SKIP_UNREADABLE]++;
            free(dir);
            return AP_OK;
        }
        ap_status st = ap_fail_errno(err, AP_ERR_IO, "%s: cannot read corpus directory", dir);
        free(dir);
        return st;
    }
    ap_status st = AP_OK;
    struct dirent *e;
    while (!st && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *child_rel = rel[0] ? ap_path_join(rel, e->d_name, err) : ap_strdup(e->d_name, err);
        char *child = child_rel ? ap_path_join(c->path, child_rel, err) : NULL;
        struct stat lst, st_;
        if (!child) st = AP_ERR_NOMEM;
        else if (lstat(child, &lst) == 0 && S_ISDIR(lst.st_mode)) st = list_dir(c, cap, child_rel, err);
        else if (stat(child, &st_) == 0 && S_ISREG(st_.st_mode)) {
            c->stats.entries++;
            if (!is_java(child_rel)) c->stats.not_java++;
            else st = add_dir_file(c, cap, child_rel, (int64_t)st_.st_size, err);
        }
        free(child_rel);
        free(child);
    }
    closedir(d);
    free(dir);
    return st;
}

static ap_status next_dir(ap_corpus *c, ap_corpus_file *f, int *has, ap_error *err) {
    while (c->next_file < c->nfiles) {
        const dir_file *df = &c->files[c->next_file++];
        c->dir_done += df->size;
        if (!selected(c, df->rel)) {
            c->stats.filtered++;
            continue;
        }
        if ((uint64_t)df->size > c->max_bytes) {
            c->stats.skipped[AP_SKIP_TOO_LARGE]++;
            continue;
        }
        char *full = ap_path_join(c->path, df->rel, err);
        if (!full) return AP_ERR_NOMEM;
        char *data;
        size_t len;
        ap_error rerr = {0};
        ap_status st = ap_read_file(full, &data, &len, &rerr);
        free(full);
        if (st) {
            ap_warn("%s, skipped", rerr.msg);
            c->stats.skipped[AP_SKIP_UNREADABLE]++;
            continue;
        }
        int why = check_content(c, data, len);
        if (why >= 0) {
            c->stats.skipped[why]++;
            free(data);
            continue;
        }
        ap_buf_free(&c->data);
        c->data = (ap_buf){data, len + 1, len + 1};
        st = set_source(c, df->rel, err);
        if (st) return st;
        hand_out(c, f);
        *has = 1;
        return AP_OK;
    }
    *has = 0;
    return AP_OK;
}

/* ---- archives ---- */

static ap_status archive_error(ap_corpus *c, ap_error *err) {
    const char *why = archive_error_string(c->ar);
    return ap_fail(err, AP_ERR_FORMAT, "%s: not a readable archive: %s", c->path, why ? why : "unknown error");
}

static ap_status open_archive(ap_corpus *c, int raw, ap_error *err) {
    c->ar = archive_read_new();
    if (!c->ar) return ap_fail(err, AP_ERR_NOMEM, "%s: cannot create an archive reader", c->path);
    archive_read_support_filter_all(c->ar);
    if (raw) archive_read_support_format_raw(c->ar);
    else archive_read_support_format_all(c->ar);
    if (archive_read_open_filename(c->ar, c->path, 1 << 16) != ARCHIVE_OK) return archive_error(c, err);
    c->pending_rc = archive_read_next_header(c->ar, &c->pending);
    c->have_pending = 1;
    if (c->pending_rc == ARCHIVE_FATAL) return archive_error(c, err);
    return AP_OK;
}

static int next_header(ap_corpus *c, struct archive_entry **e) {
    if (c->have_pending) {
        c->have_pending = 0;
        *e = c->pending;
        return c->pending_rc;
    }
    return archive_read_next_header(c->ar, e);
}

/* Reads the current entry into c->data (NUL-terminated) and sets *why to the
 * skip reason, or to -1 when the content is usable. An error only for a
 * stream that cannot be read on. */
static ap_status read_entry(ap_corpus *c, int *why, ap_error *err) {
    c->data.len = 0;
    char chunk[1 << 16];
    for (;;) {
        la_ssize_t r = archive_read_data(c->ar, chunk, sizeof chunk);
        if (r == 0) break;
        if (r < 0) {
            if (r == ARCHIVE_FATAL) return archive_error(c, err);
            const char *msg = archive_error_string(c->ar);
            ap_warn("%s: entry %s cannot be read (%s), skipped", c->path, c->source.data, msg ? msg : "error");
            *why = AP_SKIP_UNREADABLE;
            return AP_OK;
        }
        if (c->data.len + (size_t)r > c->max_bytes) {
            *why = AP_SKIP_TOO_LARGE;
            return AP_OK;
        }
        ap_status st = ap_buf_append(&c->data, chunk, (size_t)r, err);
        if (st) return st;
    }
    ap_status st = ap_buf_append(&c->data, "", 1, err);
    if (st) return st;
    *why = check_content(c, c->data.data, c->data.len - 1);
    return AP_OK;
}

static ap_status next_archive(ap_corpus *c, ap_corpus_file *f, int *has, ap_error *err) {
    for (;;) {
        struct archive_entry *e;
        int rc = next_header(c, &e);
        if (rc == ARCHIVE_EOF) break;
        if (rc == ARCHIVE_FATAL) return archive_error(c, err);
        if (rc == ARCHIVE_RETRY) continue;
        if (archive_entry_filetype(e) != AE_IFREG) continue;
        c->stats.entries++;
        const char *name = archive_entry_pathname(e);
        if (!name) name = archive_entry_pathname_utf8(e);
        if (!name || rc == ARCHIVE_FAILED) {
            c->stats.skipped[AP_SKIP_UNREADABLE]++;
            continue;
        }
        while (name[0] == '.' && name[1] == '/') name += 2; /* `tar -C dir .` names */
        if (!is_java(name)) {
            c->stats.not_java++;
            continue;
        }
        if (!selected(c, name)) {
            c->stats.filtered++;
            continue;
        }
        if (archive_entry_size_is_set(e) && archive_entry_size(e) > (la_int64_t)c->max_bytes) {
            c->stats.skipped[AP_SKIP_TOO_LARGE]++;
            continue;
        }
        ap_status st = set_source(c, name, err);
        if (st) return st;
        int why;
        st = read_entry(c, &why, err);
        if (st) return st;
        if (why >= 0) {
            c->stats.skipped[why]++;
            continue;
        }
        hand_out(c, f);
        *has = 1;
        return AP_OK;
    }
    *has = 0;
    return AP_OK;
}

/* ---- JSONL ---- */

#define CHUNK_BYTES (1 << 16)

/* The next line into c->line (without its '\n', NUL-terminated); *got = 0 at
 * the end. A line longer than limit is drained and flagged *overlong. */
static ap_status read_line(ap_corpus *c, size_t limit, int *got, int *overlong, ap_error *err) {
    c->line.len = 0;
    *got = *overlong = 0;
    int started = 0;
    for (;;) {
        if (c->blk_off == c->blk_len) {
            if (c->eof) break;
            la_ssize_t r = archive_read_data(c->ar, c->chunk, CHUNK_BYTES);
            if (r < 0) return archive_error(c, err);
            if (r == 0) {
                c->eof = 1;
                break;
            }
            c->blk_off = 0;
            c->blk_len = (size_t)r;
        }
        started = 1;
        const char *p = c->chunk + c->blk_off;
        const char *nl = memchr(p, '\n', c->blk_len - c->blk_off);
        size_t take = nl ? (size_t)(nl - p) : c->blk_len - c->blk_off;
        if (!*overlong && c->line.len + take > limit) *overlong = 1;
        if (!*overlong) {
            ap_status st = ap_buf_append(&c->line, p, take, err);
            if (st) return st;
        }
        c->blk_off += take + (nl != NULL);
        if (nl) break;
    }
    *got = started;
    return *got ? ap_buf_append(&c->line, "", 1, err) : AP_OK;
}

static void warn_line(ap_corpus *c, const char *what) {
    c->stats.skipped[AP_SKIP_UNREADABLE]++;
    if (c->warnings < MAX_WARNINGS)
        ap_warn("%s:%lld: %s, skipped", c->path, (long long)c->lineno, what);
    else if (c->warnings == MAX_WARNINGS)
        ap_warn("%s: more bad lines; they are counted in the stats without a warning", c->path);
    c->warnings++;
}

/* Takes the row's content if it passes selection and the content checks;
 * returns 1 when it did. */
static ap_status take_row(ap_corpus *c, cJSON *row, int *took, ap_error *err) {
    *took = 0;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(row, "content");
    if (!cJSON_IsString(content) || !content->valuestring) {
        warn_line(c, "no string field \"content\"");
        return AP_OK;
    }
    char id[32];
    snprintf(id, sizeof id, "line:%lld", (long long)c->lineno);
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(row, "path");
    if (!selected(c, cJSON_IsString(path) && path->valuestring ? path->valuestring : id)) {
        c->stats.filtered++;
        return AP_OK;
    }
    size_t len = strlen(content->valuestring);
    int why = check_content(c, content->valuestring, len);
    if (why >= 0) {
        c->stats.skipped[why]++;
        return AP_OK;
    }
    c->data.len = 0;
    ap_status st = ap_buf_append(&c->data, content->valuestring, len + 1, err);
    if (!st) st = set_source(c, id, err);
    *took = !st;
    return st;
}

static ap_status next_jsonl(ap_corpus *c, ap_corpus_file *f, int *has, ap_error *err) {
    /* JSON escapes can make a row much longer than its content. */
    size_t limit = 16 * c->max_bytes + CHUNK_BYTES;
    for (;;) {
        int got, overlong;
        ap_status st = read_line(c, limit, &got, &overlong, err);
        if (st) return st;
        if (!got) break;
        c->lineno++;
        if (overlong) {
            c->stats.entries++;
            c->stats.skipped[AP_SKIP_TOO_LARGE]++;
            continue;
        }
        if (blank(c->line.data, c->line.len - 1)) continue; /* blank lines are not rows */
        c->stats.entries++;
        cJSON *row = cJSON_ParseWithLength(c->line.data, c->line.len - 1);
        if (!row) {
            warn_line(c, "not valid JSON");
            continue;
        }
        int took = 0;
        st = cJSON_IsObject(row) ? take_row(c, row, &took, err) : (warn_line(c, "not a JSON object"), AP_OK);
        cJSON_Delete(row);
        if (st) return st;
        if (took) {
            hand_out(c, f);
            *has = 1;
            return AP_OK;
        }
    }
    *has = 0;
    return AP_OK;
}

/* ---- the interface ---- */

static int is_jsonl_name(const char *path) {
    static const char *const bases[] = {".jsonl", ".ndjson", ".json"};
    static const char *const comp[] = {"", ".gz", ".xz", ".zst", ".bz2"};
    size_t n = strlen(path);
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 5; j++) {
            size_t a = strlen(bases[i]), b = strlen(comp[j]);
            if (n > a + b && strncmp(path + n - a - b, bases[i], a) == 0 && strcmp(path + n - b, comp[j]) == 0)
                return 1;
        }
    return 0;
}

static ap_status open_kind(ap_corpus *c, const struct stat *st_, ap_error *err) {
    if (S_ISDIR(st_->st_mode)) {
        c->kind = KIND_DIR;
        size_t cap = 0;
        ap_status st = list_dir(c, &cap, "", err);
        if (st) return st;
        if (c->nfiles) qsort(c->files, c->nfiles, sizeof *c->files, cmp_dir_file);
        return AP_OK;
    }
    c->file_size = (int64_t)st_->st_size;
    if (!is_jsonl_name(c->path)) {
        c->kind = KIND_ARCHIVE;
        return open_archive(c, 0, err);
    }
    c->kind = KIND_JSONL;
    c->chunk = ap_malloc(CHUNK_BYTES, err);
    if (!c->chunk) return AP_ERR_NOMEM;
    if (st_->st_size == 0) { /* libarchive cannot bid on zero bytes; no rows */
        c->eof = 1;
        return AP_OK;
    }
    ap_status st = open_archive(c, 1, err);
    if (st) return st;
    c->have_pending = 0; /* the raw format's single entry: the whole stream */
    return c->pending_rc == ARCHIVE_OK || c->pending_rc == ARCHIVE_WARN ? AP_OK : archive_error(c, err);
}

ap_status ap_corpus_open(const char *path, const ap_corpus_options *opt, ap_corpus **out, ap_error *err) {
    *out = NULL;
    struct stat st_;
    if (stat(path, &st_) != 0) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot open corpus", path);
    ap_corpus *c = ap_calloc(1, sizeof *c, err);
    if (!c) return AP_ERR_NOMEM;
    c->max_bytes = opt && opt->max_file_bytes ? opt->max_file_bytes : DEFAULT_MAX_FILE_BYTES;
    ap_status st = (c->path = ap_strdup(path, err)) ? AP_OK : AP_ERR_NOMEM;
    if (!st) st = split_globs(opt ? opt->include : NULL, "--include", &c->include, &c->ninclude, err);
    if (!st) st = split_globs(opt ? opt->exclude : NULL, "--exclude", &c->exclude, &c->nexclude, err);
    if (!st) st = open_kind(c, &st_, err);
    if (st) {
        ap_corpus_close(c);
        return st;
    }
    *out = c;
    return AP_OK;
}

ap_status ap_corpus_next(ap_corpus *c, ap_corpus_file *f, int *has, ap_error *err) {
    *has = 0;
    if (c->finished) return AP_OK;
    ap_status st = c->kind == KIND_DIR       ? next_dir(c, f, has, err)
                   : c->kind == KIND_ARCHIVE ? next_archive(c, f, has, err)
                                             : next_jsonl(c, f, has, err);
    c->finished = !st && !*has;
    return st;
}

const ap_corpus_stats *ap_corpus_get_stats(const ap_corpus *c) { return &c->stats; }

void ap_corpus_progress(const ap_corpus *c, int64_t *done, int64_t *total) {
    if (c->kind == KIND_DIR) {
        *done = c->dir_done;
        *total = c->dir_total;
        return;
    }
    /* Bytes consumed from the file; a zip reader seeks (central directory
     * at the end), so the count only approximates progress until the end. */
    *total = c->file_size;
    *done = c->ar && !c->finished ? (int64_t)archive_filter_bytes(c->ar, -1) : c->file_size;
    if (*done > *total) *done = *total;
}

void ap_corpus_close(ap_corpus *c) {
    if (!c) return;
    if (c->ar) archive_read_free(c->ar);
    for (size_t i = 0; i < c->nfiles; i++) free(c->files[i].rel);
    free(c->files);
    free_list(c->include, c->ninclude);
    free_list(c->exclude, c->nexclude);
    ap_buf_free(&c->data);
    ap_buf_free(&c->source);
    ap_buf_free(&c->line);
    free(c->chunk);
    free(c->path);
    free(c);
}
