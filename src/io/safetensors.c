/* safetensors: reading (memory-mapped, every header field validated) and
 * writing (streamed to a temporary file that is renamed into place).
 *
 * Layout: u64 little-endian header length N, N bytes of JSON mapping tensor
 * names to {dtype, shape, data_offsets: [begin, end]} (plus an optional
 * "__metadata__" string map), then the data buffer that the offsets index. */
#define _POSIX_C_SOURCE 200809L
#include "apmae/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The limit the reference implementation uses; anything larger is garbage. */
#define AP_ST_MAX_HEADER 100000000ull
/* Offsets and dims arrive as JSON doubles, exact only up to 2^53. */
#define AP_ST_MAX_INT 9007199254740992.0

static const struct {
    const char *name;
    size_t size;
} k_dtypes[AP_DTYPE_COUNT] = {
    [AP_F32] = {"F32", 4}, [AP_F16] = {"F16", 2}, [AP_BF16] = {"BF16", 2},
    [AP_I64] = {"I64", 8}, [AP_I32] = {"I32", 4}, [AP_U8] = {"U8", 1},
};

size_t ap_dtype_size(ap_dtype dt) { return (unsigned)dt < AP_DTYPE_COUNT ? k_dtypes[dt].size : 0; }

const char *ap_dtype_name(ap_dtype dt) { return (unsigned)dt < AP_DTYPE_COUNT ? k_dtypes[dt].name : "?"; }

int ap_dtype_from_name(const char *name, ap_dtype *dt) {
    for (int i = 0; i < AP_DTYPE_COUNT; i++) {
        if (strcmp(name, k_dtypes[i].name) == 0) {
            *dt = (ap_dtype)i;
            return 0;
        }
    }
    return -1;
}

static int is_float_dtype(ap_dtype dt) { return dt == AP_F32 || dt == AP_F16 || dt == AP_BF16; }

/* "[2, 3]" into buf, for messages. */
static const char *fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}

/* numel * dtype size of a shape, or -1 when it does not fit in size_t. */
static int shape_bytes(ap_dtype dt, int ndim, const int64_t *shape, size_t *numel, size_t *nbytes) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        size_t d = (size_t)shape[i];
        if (d != 0 && n > SIZE_MAX / d) return -1;
        n *= d;
    }
    if (n > SIZE_MAX / ap_dtype_size(dt)) return -1;
    *numel = n;
    *nbytes = n * ap_dtype_size(dt);
    return 0;
}

/* ---------------------------------------------------------------- reading */

typedef struct st_builder {
    ap_safetensors *st;
    size_t tensor_cap, meta_cap;
} st_builder;

/* A non-negative integral JSON number that a double holds exactly. */
static int json_count(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= AP_ST_MAX_INT) || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static ap_status push_tensor(st_builder *b, const ap_tensor *t, ap_error *err) {
    ap_safetensors *st = b->st;
    if (st->ntensors == b->tensor_cap) {
        size_t cap = b->tensor_cap ? 2 * b->tensor_cap : 64;
        ap_tensor *p = ap_realloc(st->tensors, cap * sizeof *p, err);
        if (!p) return AP_ERR_NOMEM;
        st->tensors = p;
        b->tensor_cap = cap;
    }
    st->tensors[st->ntensors++] = *t;
    return AP_OK;
}

static ap_status parse_metadata(st_builder *b, const char *path, const cJSON *meta, ap_error *err) {
    if (!cJSON_IsObject(meta)) return ap_fail(err, AP_ERR_FORMAT, "%s: __metadata__ is not a JSON object", path);
    ap_safetensors *st = b->st;
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return ap_fail(err, AP_ERR_FORMAT, "%s: __metadata__ entry '%s' is not a string", path, kv->string);
        if (ap_st_meta(st, kv->string)) continue; /* an earlier shard already set it */
        if (2 * st->nmeta + 2 > b->meta_cap) {
            size_t cap = b->meta_cap ? 2 * b->meta_cap : 16;
            char **p = ap_realloc(st->meta, cap * sizeof *p, err);
            if (!p) return AP_ERR_NOMEM;
            st->meta = p;
            b->meta_cap = cap;
        }
        char *k = ap_strdup(kv->string, err);
        char *v = k ? ap_strdup(kv->valuestring, err) : NULL;
        if (!v) {
            free(k);
            return AP_ERR_NOMEM;
        }
        st->meta[2 * st->nmeta] = k;
        st->meta[2 * st->nmeta + 1] = v;
        st->nmeta++;
    }
    return AP_OK;
}

/* Validate one header entry and turn it into a tensor pointing into data. */
static ap_status parse_entry(const char *path, const cJSON *e, const char *data, size_t data_size, ap_tensor *t,
                             ap_error *err) {
    const char *name = e->string;
    memset(t, 0, sizeof *t);
    if (!cJSON_IsObject(e))
        return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path, name);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt))
        return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s': missing or non-string dtype", path, name);
    if (ap_dtype_from_name(dt->valuestring, &t->dtype) != 0)
        return ap_fail(err, AP_ERR_FORMAT,
                       "%s: tensor '%s': unsupported dtype '%s' (supported: F32, F16, BF16, I64, I32, U8)", path,
                       name, dt->valuestring);

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(shape))
        return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s': shape is missing or not a list", path, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > AP_MAX_DIMS)
        return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s': %d dimensions, at most %d are supported", path, name,
                       ndim, AP_MAX_DIMS);
    t->ndim = 0;
    for (const cJSON *d = shape->child; d; d = d->next) {
        uint64_t v;
        if (json_count(d, &v) != 0)
            return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s': shape entry %d is not a non-negative integer", path,
                           name, t->ndim);
        t->shape[t->ndim++] = (int64_t)v;
    }
    char sbuf[256];
    if (shape_bytes(t->dtype, t->ndim, t->shape, &t->numel, &t->nbytes) != 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s': shape %s is too large", path, name,
                       fmt_shape(sbuf, sizeof sbuf, t->ndim, t->shape));

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || json_count(offs->child, &begin) != 0 ||
        json_count(offs->child->next, &end) != 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s': data_offsets is not a list of 2 non-negative integers",
                       path, name);
    if (begin > end)
        return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] begin after end", path, name,
                       (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return ap_fail(err, AP_ERR_FORMAT,
                       "%s: tensor '%s': data ends at byte %llu but the data buffer holds only %zu bytes "
                       "(truncated file?)",
                       path, name, (unsigned long long)end, data_size);
    if (end - begin != t->nbytes)
        return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s': data_offsets span %llu bytes but %s %s needs %zu", path,
                       name, (unsigned long long)(end - begin), ap_dtype_name(t->dtype),
                       fmt_shape(sbuf, sizeof sbuf, t->ndim, t->shape), t->nbytes);
    t->data = data + begin;
    /* Callers read F32/I64 data in place; a misaligned pointer would be
     * undefined behaviour. Writers since 2023 (and ours) align every tensor. */
    if (t->nbytes && (uintptr_t)t->data % ap_dtype_size(t->dtype) != 0)
        return ap_fail(err, AP_ERR_FORMAT,
                       "%s: tensor '%s': data at offset %llu is not aligned to its %zu-byte dtype (re-save the "
                       "file with a current safetensors writer)",
                       path, name, (unsigned long long)begin, ap_dtype_size(t->dtype));
    return AP_OK;
}

typedef struct span {
    size_t begin, end;
    const char *name;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Tensors [first, ntensors) come from one file whose data buffer starts at
 * data; no two non-empty ones may share a byte. */
static ap_status check_overlaps(const ap_safetensors *st, size_t first, const char *data, const char *path,
                                ap_error *err) {
    size_t n = st->ntensors - first;
    span *s = ap_malloc((n ? n : 1) * sizeof *s, err);
    if (!s) return AP_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = first; i < st->ntensors; i++) {
        const ap_tensor *t = &st->tensors[i];
        if (t->nbytes == 0) continue;
        size_t begin = (size_t)((const char *)t->data - data);
        s[m++] = (span){begin, begin + t->nbytes, t->name};
    }
    qsort(s, m, sizeof *s, span_cmp);
    ap_status rc = AP_OK;
    for (size_t i = 1; i < m && !rc; i++) {
        if (s[i].begin < s[i - 1].end)
            rc = ap_fail(err, AP_ERR_FORMAT, "%s: tensors '%s' [%zu, %zu) and '%s' [%zu, %zu) overlap", path,
                         s[i - 1].name, s[i - 1].begin, s[i - 1].end, s[i].name, s[i].begin, s[i].end);
    }
    free(s);
    return rc;
}

static ap_status parse_header(st_builder *b, int file, ap_error *err) {
    ap_safetensors *st = b->st;
    const char *path = st->paths[file];
    const unsigned char *base = st->maps[file].data;
    size_t size = st->maps[file].size;
    if (size < 8)
        return ap_fail(err, AP_ERR_FORMAT, "%s: %zu bytes, too small for a safetensors header", path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
    if (hlen > AP_ST_MAX_HEADER)
        return ap_fail(err, AP_ERR_FORMAT, "%s: header length %llu is absurd (limit %llu); not a safetensors file?",
                       path, (unsigned long long)hlen, AP_ST_MAX_HEADER);
    if (hlen > size - 8)
        return ap_fail(err, AP_ERR_FORMAT, "%s: header length %llu is larger than the file (%zu bytes)", path,
                       (unsigned long long)hlen, size);
    const char *hdr = (const char *)base + 8;
    const char *stop = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &stop, 0);
    if (!root) {
        size_t at = stop && stop >= hdr ? (size_t)(stop - hdr) : 0;
        return ap_fail(err, AP_ERR_FORMAT, "%s: header is not valid JSON (parsing stopped at header byte %zu)", path,
                       at);
    }
    ap_status rc = AP_OK;
    /* Only the padding spaces (or other JSON whitespace) may follow. */
    for (const char *p = stop; p < hdr + hlen && !rc; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            rc = ap_fail(err, AP_ERR_FORMAT, "%s: unexpected bytes after the header JSON (header byte %zu)", path,
                         (size_t)(p - hdr));
    }
    if (!rc && !cJSON_IsObject(root)) rc = ap_fail(err, AP_ERR_FORMAT, "%s: header is not a JSON object", path);
    const char *data = hdr + hlen;
    size_t data_size = size - 8 - (size_t)hlen;
    size_t first = st->ntensors;
    for (const cJSON *e = rc ? NULL : root->child; e && !rc; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            rc = parse_metadata(b, path, e, err);
            continue;
        }
        ap_tensor t;
        rc = parse_entry(path, e, data, data_size, &t, err);
        if (rc) break;
        t.file = path;
        t.name = ap_strdup(e->string, err);
        if (!t.name) rc = AP_ERR_NOMEM;
        if (!rc && (rc = push_tensor(b, &t, err)) != AP_OK) free(t.name);
    }
    cJSON_Delete(root);
    if (!rc) rc = check_overlaps(st, first, data, path, err);
    return rc;
}

/* Map one safetensors file and add its tensors. */
static ap_status add_file(st_builder *b, const char *path, ap_error *err) {
    ap_safetensors *st = b->st;
    ap_mmap *maps = ap_realloc(st->maps, (size_t)(st->nfiles + 1) * sizeof *maps, err);
    if (!maps) return AP_ERR_NOMEM;
    st->maps = maps;
    char **paths = ap_realloc(st->paths, (size_t)(st->nfiles + 1) * sizeof *paths, err);
    if (!paths) return AP_ERR_NOMEM;
    st->paths = paths;
    char *copy = ap_strdup(path, err);
    if (!copy) return AP_ERR_NOMEM;
    ap_status rc = ap_mmap_open(path, &st->maps[st->nfiles], err);
    if (rc) {
        free(copy);
        return rc;
    }
    st->paths[st->nfiles] = copy;
    int file = st->nfiles++;
    return parse_header(b, file, err);
}

static int tensor_cmp(const void *a, const void *b) {
    return strcmp(((const ap_tensor *)a)->name, ((const ap_tensor *)b)->name);
}

/* Sort by name for ap_st_find, which also exposes duplicates as neighbours. */
static ap_status sort_and_check_names(ap_safetensors *st, ap_error *err) {
    if (st->ntensors > 1) qsort(st->tensors, st->ntensors, sizeof *st->tensors, tensor_cmp);
    for (size_t i = 1; i < st->ntensors; i++) {
        const ap_tensor *a = &st->tensors[i - 1], *b = &st->tensors[i];
        if (strcmp(a->name, b->name) != 0) continue;
        if (a->file == b->file) return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s' appears twice", a->file, a->name);
        return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s' is in two shards: %s and %s", st->path, a->name, a->file,
                       b->file);
    }
    return AP_OK;
}

const ap_tensor *ap_st_find(const ap_safetensors *st, const char *name) {
    size_t lo = 0, hi = st->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static ap_status open_single(st_builder *b, const char *path, ap_error *err) {
    ap_status rc = add_file(b, path, err);
    return rc ? rc : sort_and_check_names(b->st, err);
}

/* dirname(path) joined with name; "." when path has no directory part. */
static char *sibling_path(const char *path, const char *name, ap_error *err) {
    const char *slash = strrchr(path, '/');
    if (!slash) return ap_strdup(name, err);
    size_t n = (size_t)(slash - path);
    char *dir = ap_malloc(n + 2, err);
    if (!dir) return NULL;
    memcpy(dir, path, n ? n : 1); /* "/x.json" -> "/" */
    dir[n ? n : 1] = '\0';
    char *p = ap_path_join(dir, name, err);
    free(dir);
    return p;
}

static ap_status open_index(st_builder *b, const char *index, ap_error *err) {
    ap_safetensors *st = b->st;
    cJSON *root;
    ap_status rc = ap_json_load(index, &root, err);
    if (rc) return rc;
    const cJSON *map = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map))
        rc = ap_fail(err, AP_ERR_FORMAT, "%s: weight_map is missing or not a JSON object", index);
    else if (!map->child)
        rc = ap_fail(err, AP_ERR_FORMAT, "%s: weight_map is empty", index);
    /* Open each shard once, in order of first mention. */
    for (const cJSON *e = rc ? NULL : map->child; e && !rc; e = e->next) {
        if (!cJSON_IsString(e)) {
            rc = ap_fail(err, AP_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name", index, e->string);
            break;
        }
        char *shard = sibling_path(index, e->valuestring, err);
        if (!shard) {
            rc = AP_ERR_NOMEM;
            break;
        }
        int seen = 0;
        for (int i = 0; i < st->nfiles && !seen; i++) seen = strcmp(st->paths[i], shard) == 0;
        if (!seen && !ap_path_exists(shard))
            rc = ap_fail(err, AP_ERR_IO, "%s: shard %s (holding tensor '%s') does not exist", index, shard, e->string);
        else if (!seen)
            rc = add_file(b, shard, err);
        free(shard);
    }
    if (!rc) rc = sort_and_check_names(st, err);
    /* Every tensor the map promises must be in the shard it names. */
    for (const cJSON *e = rc ? NULL : map->child; e && !rc; e = e->next) {
        const ap_tensor *t = ap_st_find(st, e->string);
        char *shard = sibling_path(index, e->valuestring, err);
        if (!shard) {
            rc = AP_ERR_NOMEM;
            break;
        }
        if (!t || strcmp(t->file, shard) != 0)
            rc = ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s' is listed for shard %s but is not in it%s%s", index,
                         e->string, shard, t ? "; found in " : "", t ? t->file : "");
        free(shard);
    }
    cJSON_Delete(root);
    return rc;
}

ap_status ap_st_open(const char *path, ap_safetensors **out, ap_error *err) {
    *out = NULL;
    ap_safetensors *st = ap_calloc(1, sizeof *st, err);
    if (!st) return AP_ERR_NOMEM;
    st_builder b = {st, 0, 0};
    ap_status rc = AP_OK;
    st->path = ap_strdup(path, err);
    if (!st->path) rc = AP_ERR_NOMEM;
    if (!rc && ap_path_is_dir(path)) {
        char *single = ap_path_join(path, "model.safetensors", err);
        char *index = ap_path_join(path, "model.safetensors.index.json", err);
        if (!single || !index)
            rc = AP_ERR_NOMEM;
        else if (ap_path_exists(single))
            rc = open_single(&b, single, err);
        else if (ap_path_exists(index))
            rc = open_index(&b, index, err);
        else
            rc = ap_fail(err, AP_ERR_IO, "%s: directory has neither model.safetensors nor model.safetensors.index.json",
                         path);
        free(single);
        free(index);
    } else if (!rc && ap_path_has_suffix(path, ".json")) {
        rc = open_index(&b, path, err);
    } else if (!rc) {
        rc = open_single(&b, path, err);
    }
    if (rc) {
        ap_st_close(st);
        return rc;
    }
    *out = st;
    return AP_OK;
}

void ap_st_close(ap_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->ntensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->nfiles; i++) {
        ap_mmap_close(&st->maps[i]);
        free(st->paths[i]);
    }
    free(st->maps);
    free(st->paths);
    for (size_t i = 0; i < 2 * st->nmeta; i++) free(st->meta[i]);
    free(st->meta);
    free(st->path);
    free(st);
}

const char *ap_st_meta(const ap_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
    return NULL;
}

ap_status ap_st_expect(const ap_safetensors *st, const char *name, int float_only, int n, const int64_t *shape,
                       const ap_tensor **out, ap_error *err) {
    *out = NULL;
    const ap_tensor *t = ap_st_find(st, name);
    if (!t) return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s' is missing", st->path, name);
    if (float_only && !is_float_dtype(t->dtype))
        return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16", t->file, name,
                       ap_dtype_name(t->dtype));
    int same = t->ndim == n;
    for (int i = 0; i < n && same; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char have[256], want[256];
        return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", t->file, name,
                       fmt_shape(have, sizeof have, t->ndim, t->shape), fmt_shape(want, sizeof want, n, shape));
    }
    *out = t;
    return AP_OK;
}

/* ---------------------------------------------------------------- writing */

static ap_status json_string(ap_buf *b, const char *s, ap_error *err) {
    ap_status rc = ap_buf_append(b, "\"", 1, err);
    for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
        if (*p == '"' || *p == '\\')
            rc = ap_buf_printf(b, err, "\\%c", *p);
        else if (*p < 0x20)
            rc = ap_buf_printf(b, err, "\\u%04x", *p);
        else
            rc = ap_buf_append(b, p, 1, err);
    }
    return rc ? rc : ap_buf_append(b, "\"", 1, err);
}

/* Where a tensor starts when the previous one ended at offset: right there
 * if that suits its element size (the reference loader wants no gaps),
 * else at the next multiple of it (we map tensors in place). Empty tensors
 * hold no bytes, so they never need padding. */
static size_t tensor_begin(size_t offset, ap_dtype dt, size_t nbytes) {
    size_t a = nbytes ? ap_dtype_size(dt) : 1;
    return (offset + a - 1) / a * a;
}

static int name_ptr_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static ap_status check_views(const char *path, const ap_tensor_view *v, size_t n, ap_error *err) {
    for (size_t i = 0; i < n; i++) {
        size_t numel, nbytes;
        const char *name = v[i].name;
        if (!name || strcmp(name, "__metadata__") == 0)
            return ap_fail(err, AP_ERR_ARG, "%s: tensor %zu has no usable name", path, i);
        if ((unsigned)v[i].dtype >= AP_DTYPE_COUNT)
            return ap_fail(err, AP_ERR_ARG, "%s: tensor '%s': invalid dtype %d", path, name, (int)v[i].dtype);
        if (v[i].ndim < 0 || v[i].ndim > AP_MAX_DIMS)
            return ap_fail(err, AP_ERR_ARG, "%s: tensor '%s': %d dimensions", path, name, v[i].ndim);
        if (shape_bytes(v[i].dtype, v[i].ndim, v[i].shape, &numel, &nbytes) != 0)
            return ap_fail(err, AP_ERR_ARG, "%s: tensor '%s': negative or oversized shape", path, name);
        if (nbytes && !v[i].data) return ap_fail(err, AP_ERR_ARG, "%s: tensor '%s': no data", path, name);
    }
    const char **names = ap_malloc((n ? n : 1) * sizeof *names, err);
    if (!names) return AP_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) names[i] = v[i].name;
    qsort(names, n, sizeof *names, name_ptr_cmp);
    ap_status rc = AP_OK;
    for (size_t i = 1; i < n && !rc; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = ap_fail(err, AP_ERR_ARG, "%s: tensor '%s' given twice", path, names[i]);
    free(names);
    return rc;
}

/* The header JSON, padded with spaces so the data buffer starts 8-aligned. */
static ap_status build_header(const char *path, const ap_tensor_view *v, size_t n, const char *const *metadata,
                              ap_buf *h, ap_error *err) {
    ap_status rc = ap_buf_append(h, "{", 1, err);
    if (!rc && metadata && metadata[0]) {
        rc = ap_buf_printf(h, err, "\"__metadata__\":{");
        for (size_t i = 0; !rc && metadata[i]; i += 2) {
            if (!metadata[i + 1])
                return ap_fail(err, AP_ERR_ARG, "%s: metadata key '%s' has no value", path, metadata[i]);
            if (i) rc = ap_buf_append(h, ",", 1, err);
            if (!rc) rc = json_string(h, metadata[i], err);
            if (!rc) rc = ap_buf_append(h, ":", 1, err);
            if (!rc) rc = json_string(h, metadata[i + 1], err);
        }
        if (!rc) rc = ap_buf_append(h, "}", 1, err);
        if (!rc && n) rc = ap_buf_append(h, ",", 1, err);
    }
    size_t offset = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t numel = 0, nbytes = 0; /* shapes were checked by check_views */
        shape_bytes(v[i].dtype, v[i].ndim, v[i].shape, &numel, &nbytes);
        size_t begin = tensor_begin(offset, v[i].dtype, nbytes);
        if (i) rc = ap_buf_append(h, ",", 1, err);
        if (!rc) rc = json_string(h, v[i].name, err);
        if (!rc) rc = ap_buf_printf(h, err, ":{\"dtype\":\"%s\",\"shape\":[", ap_dtype_name(v[i].dtype));
        for (int d = 0; d < v[i].ndim && !rc; d++)
            rc = ap_buf_printf(h, err, "%s%lld", d ? "," : "", (long long)v[i].shape[d]);
        if (!rc) rc = ap_buf_printf(h, err, "],\"data_offsets\":[%zu,%zu]}", begin, begin + nbytes);
        offset = begin + nbytes;
    }
    if (!rc) rc = ap_buf_append(h, "}", 1, err);
    while (!rc && h->len % 8 != 0) rc = ap_buf_append(h, " ", 1, err);
    return rc;
}

static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Stream header and tensors straight from the callers' buffers into fd. */
static int write_body(int fd, const ap_buf *h, const ap_tensor_view *v, size_t n) {
    unsigned char len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (unsigned char)((uint64_t)h->len >> (8 * i));
    if (write_all(fd, len_le, 8) || write_all(fd, h->data, h->len)) return -1;
    static const char zeros[8] = {0};
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        size_t numel = 0, nbytes = 0; /* shapes were checked by check_views */
        shape_bytes(v[i].dtype, v[i].ndim, v[i].shape, &numel, &nbytes);
        size_t begin = tensor_begin(offset, v[i].dtype, nbytes);
        if (write_all(fd, zeros, begin - offset) || write_all(fd, v[i].data, nbytes)) return -1;
        offset = begin + nbytes;
    }
    return 0;
}

ap_status ap_st_write(const char *path, const ap_tensor_view *tensors, size_t n, const char *const *metadata,
                      ap_error *err) {
    ap_status rc = check_views(path, tensors, n, err);
    if (rc) return rc;
    ap_buf h = {0};
    rc = build_header(path, tensors, n, metadata, &h, err);
    if (rc) {
        ap_buf_free(&h);
        return rc;
    }
    /* Same scheme as ap_write_file_atomic, but streamed so big tensors are
     * not copied into one in-memory image of the file first. */
    size_t tlen = strlen(path) + 32;
    char *tmp = ap_malloc(tlen, err);
    if (!tmp) {
        ap_buf_free(&h);
        return AP_ERR_NOMEM;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        rc = ap_fail_errno(err, AP_ERR_IO, "%s: cannot create", tmp);
    } else {
        if (write_body(fd, &h, tensors, n) != 0)
            rc = ap_fail_errno(err, AP_ERR_IO, "%s: write failed", path);
        if (fsync(fd) != 0 && !rc) rc = ap_fail_errno(err, AP_ERR_IO, "%s: flush failed", path);
        if (close(fd) != 0 && !rc) rc = ap_fail_errno(err, AP_ERR_IO, "%s: flush failed", path);
        if (!rc && rename(tmp, path) != 0) rc = ap_fail_errno(err, AP_ERR_IO, "%s: cannot replace", path);
        if (rc) unlink(tmp);
    }
    free(tmp);
    ap_buf_free(&h);
    return rc;
}
