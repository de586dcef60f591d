/* Whole-file reads, atomic writes and read-only memory maps. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "apmae/base.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

ap_status ap_read_file(const char *path, char **data, size_t *len, ap_error *err) {
    *data = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot open", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return ap_fail_errno(err, AP_ERR_IO, "%s: cannot stat", path);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return ap_fail(err, AP_ERR_IO, "%s: is a directory, expected a file", path);
    }
    size_t size = (size_t)st.st_size;
    char *buf = ap_malloc(size + 1, err);
    if (!buf) {
        close(fd);
        return AP_ERR_NOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            close(fd);
            return r < 0 ? ap_fail_errno(err, AP_ERR_IO, "%s: read failed", path)
                         : ap_fail(err, AP_ERR_IO, "%s: file shrank while reading", path);
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = '\0';
    *data = buf;
    if (len) *len = size;
    return AP_OK;
}

ap_status ap_write_file_atomic(const char *path, const void *data, size_t len, ap_error *err) {
    size_t n = strlen(path) + 32;
    char *tmp = ap_malloc(n, err);
    if (!tmp) return AP_ERR_NOMEM;
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        ap_fail_errno(err, AP_ERR_IO, "%s: cannot create", tmp);
        free(tmp);
        return AP_ERR_IO;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            ap_fail_errno(err, AP_ERR_IO, "%s: write failed", path);
            close(fd);
            unlink(tmp);
            free(tmp);
            return AP_ERR_IO;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        ap_fail_errno(err, AP_ERR_IO, "%s: flush failed", path);
        unlink(tmp);
        free(tmp);
        return AP_ERR_IO;
    }
    if (rename(tmp, path) != 0) {
        ap_fail_errno(err, AP_ERR_IO, "%s: cannot replace", path);
        unlink(tmp);
        free(tmp);
        return AP_ERR_IO;
    }
    free(tmp);
    return AP_OK;
}

int ap_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ap_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

ap_status ap_make_dirs(const char *dir, ap_error *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return ap_fail(err, AP_ERR_ARG, "%.64s...: path too long", dir);
    for (char *p = path + 1;; p++) {
        if (*p && *p != '/') continue;
        char c = *p;
        *p = '\0';
        if (!ap_path_is_dir(path) && mkdir(path, 0777) != 0 && !ap_path_is_dir(path))
            return ap_fail_errno(err, AP_ERR_IO, "%s: cannot create directory", path);
        if (!(*p = c)) return AP_OK;
    }
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb, (void)type, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

ap_status ap_remove_tree(const char *path, ap_error *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? AP_OK : ap_fail_errno(err, AP_ERR_IO, "%s: cannot stat", path);
    /* depth first, never following symbolic links out of the tree */
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return ap_fail_errno(err, AP_ERR_IO, "%s: cannot remove", path);
    return AP_OK;
}

char *ap_path_join(const char *dir, const char *name, ap_error *err) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = ap_malloc(a + b + 2, err);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t off = a;
    if (a > 0 && dir[a - 1] != '/') p[off++] = '/';
    memcpy(p + off, name, b + 1);
    return p;
}

int ap_path_has_suffix(const char *path, const char *suffix) {
    size_t n = strlen(path), k = strlen(suffix);
    return n >= k && strcmp(path + n - k, suffix) == 0;
}

ap_status ap_mmap_open(const char *path, ap_mmap *map, ap_error *err) {
    map->data = NULL;
    map->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot open", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return ap_fail_errno(err, AP_ERR_IO, "%s: cannot stat", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ap_fail(err, AP_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) { /* mmap of length 0 is invalid; an empty map is fine */
        close(fd);
        return AP_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot map", path);
    map->data = p;
    map->size = (size_t)st.st_size;
    return AP_OK;
}

void ap_mmap_close(ap_mmap *map) {
    if (map->data) munmap(map->data, map->size);
    map->data = NULL;
    map->size = 0;
}

ap_status ap_log_keep_steps(const char *path, int64_t step, ap_error *err) {
    if (!ap_path_exists(path)) return AP_OK;
    char *data;
    size_t len;
    ap_status st = ap_read_file(path, &data, &len, err);
    if (st) return st;
    ap_buf keep = {0};
    for (char *line = data; !st && *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line + 1) : strlen(line);
        const char *s = strstr(line, "\"step\":");
        if (s && s < line + n && strtoll(s + 7, NULL, 10) <= step) st = ap_buf_append(&keep, line, n, err);
        line += n;
    }
    if (!st) st = ap_write_file_atomic(path, keep.data ? keep.data : "", keep.len, err);
    free(data);
    ap_buf_free(&keep);
    return st;
}
