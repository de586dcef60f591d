/* The store's root attributes, and small HDF5 helpers. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void ap_h5_quiet(void) {
    static int done;
    if (!done) {
        /* Errors reach the user through ap_error; HDF5's own stack dumps on
         * stderr would only repeat them less clearly. */
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

typedef struct last_msg {
    char *buf;
    size_t cap;
    int found;
} last_msg;

static herr_t take_first(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    last_msg *m = data;
    if (!m->found && e->desc && e->desc[0]) {
        snprintf(m->buf, m->cap, "%s", e->desc);
        m->found = 1;
    }
    return 0;
}

void ap_h5_last_message(char *buf, size_t cap) {
    last_msg m = {buf, cap, 0};
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_first, &m);
}

ap_status ap_h5_fail(ap_error *err, ap_status code, const char *what) {
    char msg[512];
    ap_h5_last_message(msg, sizeof msg);
    return ap_fail(err, code, "%s%s%s", what, msg[0] ? ": HDF5: " : "", msg);
}

hid_t ap_h5_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

const char *ap_store_dtype_name(ap_dtype dt) {
    switch (dt) {
    case AP_F32: return "f32";
    case AP_F16: return "f16";
    case AP_BF16: return "bf16";
    default: return "?";
    }
}

/* Create or overwrite attribute name: a scalar (n < 0) or a 1-D array of n. */
static ap_status attr_put(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *buf, long long n,
                          const char *path, ap_error *err) {
    hid_t space = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, (hsize_t[]){(hsize_t)n}, NULL);
    hid_t a = H5I_INVALID_HID;
    if (space >= 0) a = H5Aexists(obj, name) > 0 ? H5Aopen(obj, name, H5P_DEFAULT)
                                                  : H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t w = a >= 0 ? H5Awrite(a, mtype, buf) : -1;
    if (a >= 0) H5Aclose(a);
    if (space >= 0) H5Sclose(space);
    if (w < 0) {
        char what[600];
        snprintf(what, sizeof what, "%s: cannot write attribute %s", path, name);
        return ap_h5_fail(err, AP_ERR_IO, what);
    }
    return AP_OK;
}

ap_status ap_h5_put_i64(hid_t obj, const char *name, int64_t v, const char *path, ap_error *err) {
    return attr_put(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, -1, path, err);
}

ap_status ap_h5_put_str(hid_t obj, const char *name, const char *v, const char *path, ap_error *err) {
    hid_t t = ap_h5_str_type();
    const char *s = v ? v : "";
    ap_status st = attr_put(obj, name, t, t, &s, -1, path, err);
    H5Tclose(t);
    return st;
}

ap_status ap_meta_write_cursor(hid_t file, int64_t cursor, const char *path, ap_error *err) {
    return ap_h5_put_i64(file, "cursor", cursor, path, err);
}

static int effective_small_bits(const ap_store_meta *m) {
    if (m->dtype == AP_F32) return 23;
    if (m->dtype == AP_F16) return 10;
    return m->small_bits;
}

ap_status ap_meta_write(hid_t file, const ap_store_meta *m, const char *path, ap_error *err) {
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    double below = AP_STORE_SMALL_BELOW;
    ap_status s = ap_h5_put_i64(file, "format_version", AP_STORE_FORMAT_VERSION, path, err);
    if (s == AP_OK) s = ap_h5_put_str(file, "tool_version", AP_VERSION, path, err);
    if (s == AP_OK) s = ap_h5_put_str(file, "created", created, path, err);
    if (s == AP_OK) s = ap_h5_put_str(file, "model_id", m->model_id, path, err);
    if (s == AP_OK) s = ap_h5_put_str(file, "model_config", m->model_config, path, err);
    if (s == AP_OK) s = ap_h5_put_i64(file, "n_tokens", m->n_tokens, path, err);
    if (s == AP_OK) s = ap_h5_put_i64(file, "num_layers", m->num_layers, path, err);
    if (s == AP_OK) s = ap_h5_put_i64(file, "num_heads", m->num_heads, path, err);
    if (s == AP_OK) s = ap_h5_put_str(file, "dtype", ap_store_dtype_name(m->dtype), path, err);
    if (s == AP_OK) s = ap_h5_put_i64(file, "small_bits", effective_small_bits(m), path, err);
    if (s == AP_OK) s = attr_put(file, "small_below", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &below, -1, path, err);
    if (s == AP_OK) s = ap_h5_put_i64(file, "deflate", m->deflate, path, err);
    if (s == AP_OK) {
        hid_t t = ap_h5_str_type();
        static const char *none[1] = {""};
        s = attr_put(file, "tasks", t, t, m->ntasks ? (const void *)m->tasks : (const void *)none,
                     (long long)m->ntasks, path, err);
        H5Tclose(t);
    }
    if (s == AP_OK) {
        static const int64_t none[1] = {0};
        s = attr_put(file, "seeds", H5T_STD_I64LE, H5T_NATIVE_INT64, m->nseeds ? m->seeds : none,
                     (long long)m->nseeds, path, err);
    }
    if (s == AP_OK) s = ap_h5_put_str(file, "run", m->run ? m->run : "{}", path, err);
    if (s == AP_OK) s = ap_h5_put_i64(file, "patterns", !m->no_patterns, path, err);
    if (s == AP_OK) s = ap_h5_put_i64(file, "shard_index", m->shard_count > 1 ? m->shard_index : 0, path, err);
    if (s == AP_OK) s = ap_h5_put_i64(file, "shard_count", m->shard_count > 1 ? m->shard_count : 1, path, err);
    if (s == AP_OK) s = ap_meta_write_cursor(file, 0, path, err);
    return s;
}

/* ---- reading ---- */

static ap_status missing(const char *path, const char *name, ap_error *err) {
    return ap_fail(err, AP_ERR_FORMAT, "%s: the store lacks its attribute '%s'", path, name);
}

ap_status ap_h5_get_i64(hid_t obj, const char *name, const char *path, int64_t *v, ap_error *err) {
    if (H5Aexists(obj, name) <= 0) return missing(path, name, err);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    herr_t r = a >= 0 ? H5Aread(a, H5T_NATIVE_INT64, v) : -1;
    if (a >= 0) H5Aclose(a);
    if (r < 0) return ap_fail(err, AP_ERR_FORMAT, "%s: root attribute '%s' is not an integer", path, name);
    return AP_OK;
}

/* Reads a string attribute (scalar) or a 1-D array of them into malloc'ed
 * copies. */
static ap_status get_strs(hid_t obj, const char *name, const char *path, char ***out, size_t *n, ap_error *err) {
    *out = NULL;
    *n = 0;
    if (H5Aexists(obj, name) <= 0) return missing(path, name, err);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t space = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
    hid_t ft = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    hid_t t = ap_h5_str_type();
    hssize_t cnt = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    ap_status s = AP_OK;
    if (cnt < 0 || ft < 0 || H5Tget_class(ft) != H5T_STRING || !H5Tis_variable_str(ft)) {
        s = ap_fail(err, AP_ERR_FORMAT, "%s: root attribute '%s' is not a variable-length string", path, name);
    } else if (cnt > 0) {
        char **raw = ap_calloc((size_t)cnt, sizeof *raw, err);
        char **copy = ap_calloc((size_t)cnt, sizeof *copy, err);
        if (!raw || !copy) s = err ? err->code : AP_ERR_NOMEM;
        if (s == AP_OK && H5Aread(a, t, raw) < 0)
            s = ap_fail(err, AP_ERR_FORMAT, "%s: cannot read root attribute '%s'", path, name);
        for (hssize_t i = 0; s == AP_OK && i < cnt; i++)
            if (!(copy[i] = ap_strdup(raw[i] ? raw[i] : "", err))) s = err ? err->code : AP_ERR_NOMEM;
        if (raw && s == AP_OK) H5Dvlen_reclaim(t, space, H5P_DEFAULT, raw);
        free(raw);
        if (s == AP_OK) {
            *out = copy;
            *n = (size_t)cnt;
        } else if (copy) {
            for (hssize_t i = 0; i < cnt; i++) free(copy[i]);
            free(copy);
        }
    }
    H5Tclose(t);
    if (ft >= 0) H5Tclose(ft);
    if (space >= 0) H5Sclose(space);
    if (a >= 0) H5Aclose(a);
    return s;
}

ap_status ap_h5_get_str(hid_t obj, const char *name, const char *path, char **out, ap_error *err) {
    char **v = NULL;
    size_t n = 0;
    ap_status s = get_strs(obj, name, path, &v, &n, err);
    if (s != AP_OK) return s;
    *out = n ? v[0] : ap_strdup("", err);
    for (size_t i = 1; i < n; i++) free(v[i]);
    free(v);
    return *out ? AP_OK : (err ? err->code : AP_ERR_NOMEM);
}

static ap_status get_i64s(hid_t obj, const char *name, const char *path, int64_t **out, size_t *n, ap_error *err) {
    *out = NULL;
    *n = 0;
    if (H5Aexists(obj, name) <= 0) return missing(path, name, err);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t space = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
    hssize_t cnt = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    ap_status s = AP_OK;
    if (cnt < 0) s = ap_fail(err, AP_ERR_FORMAT, "%s: cannot read root attribute '%s'", path, name);
    if (s == AP_OK && cnt > 0) {
        *out = ap_malloc((size_t)cnt * sizeof **out, err);
        if (!*out) s = err ? err->code : AP_ERR_NOMEM;
        else if (H5Aread(a, H5T_NATIVE_INT64, *out) < 0)
            s = ap_fail(err, AP_ERR_FORMAT, "%s: root attribute '%s' is not an integer array", path, name);
        else *n = (size_t)cnt;
    }
    if (space >= 0) H5Sclose(space);
    if (a >= 0) H5Aclose(a);
    return s;
}

void ap_meta_free(ap_meta_owned *o) {
    free(o->model_id);
    free(o->model_config);
    free(o->run);
    free(o->tool_version);
    for (size_t i = 0; o->tasks && i < o->m.ntasks; i++) free(o->tasks[i]);
    free(o->tasks);
    free(o->seeds);
    memset(o, 0, sizeof *o);
}

static ap_status check_range(const char *path, const char *name, int64_t v, int64_t lo, int64_t hi, ap_error *err) {
    if (v < lo || v > hi)
        return ap_fail(err, AP_ERR_FORMAT, "%s: root attribute %s = %lld is outside %lld..%lld", path, name,
                       (long long)v, (long long)lo, (long long)hi);
    return AP_OK;
}

ap_status ap_meta_read(hid_t file, const char *path, ap_meta_owned *o, ap_error *err) {
    memset(o, 0, sizeof *o);
    int64_t version = 0, n = 0, L = 0, H = 0, small = 0, deflate = 0, patterns = 1, shard = 0, shards = 1;
    if (H5Aexists(file, "format_version") <= 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: an HDF5 file but not an apmae store (no format_version attribute)",
                       path);
    ap_status s = ap_h5_get_i64(file, "format_version", path, &version, err);
    if (s == AP_OK && version != AP_STORE_FORMAT_VERSION)
        s = ap_fail(err, AP_ERR_FORMAT, "%s: store format version %lld, but this apmae (%s) reads version %d "
                    "(extract it again into a new store)", path, (long long)version, AP_VERSION,
                    AP_STORE_FORMAT_VERSION);
    char *dtype = NULL;
    size_t ntasks = 0;
    if (s == AP_OK) s = ap_h5_get_str(file, "tool_version", path, &o->tool_version, err);
    if (s == AP_OK) s = ap_h5_get_str(file, "model_id", path, &o->model_id, err);
    if (s == AP_OK) s = ap_h5_get_str(file, "model_config", path, &o->model_config, err);
    if (s == AP_OK) s = ap_h5_get_str(file, "run", path, &o->run, err);
    if (s == AP_OK) s = ap_h5_get_str(file, "dtype", path, &dtype, err);
    if (s == AP_OK) s = ap_h5_get_i64(file, "n_tokens", path, &n, err);
    if (s == AP_OK) s = ap_h5_get_i64(file, "num_layers", path, &L, err);
    if (s == AP_OK) s = ap_h5_get_i64(file, "num_heads", path, &H, err);
    if (s == AP_OK) s = ap_h5_get_i64(file, "small_bits", path, &small, err);
    if (s == AP_OK) s = ap_h5_get_i64(file, "deflate", path, &deflate, err);
    if (s == AP_OK) s = ap_h5_get_i64(file, "cursor", path, &o->cursor, err);
    if (s == AP_OK) s = ap_h5_get_i64(file, "patterns", path, &patterns, err);
    if (s == AP_OK) s = ap_h5_get_i64(file, "shard_index", path, &shard, err);
    if (s == AP_OK) s = ap_h5_get_i64(file, "shard_count", path, &shards, err);
    if (s == AP_OK) s = get_strs(file, "tasks", path, &o->tasks, &ntasks, err);
    if (s == AP_OK) s = get_i64s(file, "seeds", path, &o->seeds, &o->m.nseeds, err);
    if (s == AP_OK) s = check_range(path, "n_tokens", n, 1, 1 << 16, err);
    if (s == AP_OK) s = check_range(path, "num_layers", L, 1, 1 << 12, err);
    if (s == AP_OK) s = check_range(path, "num_heads", H, 1, 1 << 12, err);
    if (s == AP_OK) s = check_range(path, "deflate", deflate, 0, 9, err);
    if (s == AP_OK) s = check_range(path, "patterns", patterns, 0, 1, err);
    if (s == AP_OK) s = check_range(path, "shard_count", shards, 1, 1 << 20, err);
    if (s == AP_OK) s = check_range(path, "shard_index", shard, 0, shards - 1, err);
    ap_dtype dt = AP_F32;
    if (s == AP_OK) {
        if (strcmp(dtype, "f32") == 0) dt = AP_F32;
        else if (strcmp(dtype, "f16") == 0) dt = AP_F16;
        else if (strcmp(dtype, "bf16") == 0) dt = AP_BF16;
        else s = ap_fail(err, AP_ERR_FORMAT, "%s: unknown pattern dtype '%s' (expected f32, f16 or bf16)", path, dtype);
    }
    if (s == AP_OK && dt == AP_BF16) s = check_range(path, "small_bits", small, 0, 7, err);
    free(dtype);
    if (s != AP_OK) {
        o->m.ntasks = ntasks;
        ap_meta_free(o);
        return s;
    }
    o->format_version = (int)version;
    o->m = (ap_store_meta){
        .model_id = o->model_id,
        .model_config = o->model_config,
        .n_tokens = (int)n,
        .num_layers = (int)L,
        .num_heads = (int)H,
        .dtype = dt,
        .small_bits = (int)small,
        .deflate = (int)deflate,
        .tasks = (const char *const *)o->tasks,
        .ntasks = ntasks,
        .seeds = o->seeds,
        .nseeds = o->m.nseeds,
        .run = o->run,
        .no_patterns = !patterns,
        .shard_index = (int)shard,
        .shard_count = (int)shards,
    };
    return AP_OK;
}
