/* JSON files through cJSON, with errors that name the file and the field. */
#include "apmae/io.h"

#include <stdlib.h>
#include <string.h>

ap_status ap_json_load(const char *path, cJSON **out, ap_error *err) {
    *out = NULL;
    char *text;
    size_t len;
    ap_status st = ap_read_file(path, &text, &len, err);
    if (st) return st;
    const char *stop = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &stop, 1);
    if (!root) {
        /* cJSON reports where it gave up; turn that into line:column. */
        size_t off = stop && stop >= text && stop <= text + len ? (size_t)(stop - text) : len;
        size_t line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        free(text);
        if (len == 0) return ap_fail(err, AP_ERR_FORMAT, "%s: empty file, expected JSON", path);
        return ap_fail(err, AP_ERR_FORMAT, "%s: invalid JSON at line %zu, column %zu (byte %zu)", path, line, col,
                       off);
    }
    free(text);
    *out = root;
    return AP_OK;
}

static const char *type_name(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "a list";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

/* The field, or NULL when absent. Fails when obj itself is not an object. */
static ap_status field(const cJSON *obj, const char *key, const char *file, const cJSON **out, ap_error *err) {
    *out = NULL;
    if (!cJSON_IsObject(obj))
        return ap_fail(err, AP_ERR_FORMAT, "%s: expected a JSON object holding field '%s', found %s",
                       file ? file : "(json)", key, obj ? type_name(obj) : "nothing");
    *out = cJSON_GetObjectItemCaseSensitive(obj, key);
    return AP_OK;
}

static ap_status missing(const char *key, const char *file, ap_error *err) {
    return ap_fail(err, AP_ERR_FORMAT, "%s: field '%s' is missing", file ? file : "(json)", key);
}

static ap_status wrong_type(const cJSON *v, const char *key, const char *file, const char *want, ap_error *err) {
    return ap_fail(err, AP_ERR_FORMAT, "%s: field '%s' must be %s, found %s", file ? file : "(json)", key, want,
                   type_name(v));
}

/* Integral and inside int64 (2^63 is exactly representable as a double). */
static ap_status to_int(const cJSON *v, const char *key, const char *file, int64_t *out, ap_error *err) {
    if (!cJSON_IsNumber(v)) return wrong_type(v, key, file, "an integer", err);
    double d = v->valuedouble;
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != (double)(int64_t)d)
        return ap_fail(err, AP_ERR_FORMAT, "%s: field '%s' must be an integer, found %.17g", file ? file : "(json)",
                       key, d);
    *out = (int64_t)d;
    return AP_OK;
}

ap_status ap_json_int(const cJSON *obj, const char *key, const char *file, int64_t *out, ap_error *err) {
    const cJSON *v;
    ap_status st = field(obj, key, file, &v, err);
    if (st) return st;
    if (!v) return missing(key, file, err);
    return to_int(v, key, file, out, err);
}

ap_status ap_json_int_opt(const cJSON *obj, const char *key, const char *file, int64_t dflt, int64_t *out,
                          ap_error *err) {
    const cJSON *v;
    ap_status st = field(obj, key, file, &v, err);
    if (st) return st;
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return AP_OK;
    }
    return to_int(v, key, file, out, err);
}

ap_status ap_json_num(const cJSON *obj, const char *key, const char *file, double *out, ap_error *err) {
    const cJSON *v;
    ap_status st = field(obj, key, file, &v, err);
    if (st) return st;
    if (!v) return missing(key, file, err);
    if (!cJSON_IsNumber(v)) return wrong_type(v, key, file, "a number", err);
    *out = v->valuedouble;
    return AP_OK;
}

ap_status ap_json_num_opt(const cJSON *obj, const char *key, const char *file, double dflt, double *out,
                          ap_error *err) {
    const cJSON *v;
    ap_status st = field(obj, key, file, &v, err);
    if (st) return st;
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return AP_OK;
    }
    if (!cJSON_IsNumber(v)) return wrong_type(v, key, file, "a number", err);
    *out = v->valuedouble;
    return AP_OK;
}

ap_status ap_json_bool_opt(const cJSON *obj, const char *key, const char *file, int dflt, int *out,
                           ap_error *err) {
    const cJSON *v;
    ap_status st = field(obj, key, file, &v, err);
    if (st) return st;
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return AP_OK;
    }
    if (!cJSON_IsBool(v)) return wrong_type(v, key, file, "true or false", err);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return AP_OK;
}

ap_status ap_json_str(const cJSON *obj, const char *key, const char *file, int required, const char **out,
                      ap_error *err) {
    *out = NULL;
    const cJSON *v;
    ap_status st = field(obj, key, file, &v, err);
    if (st) return st;
    if (!v || (!required && cJSON_IsNull(v))) return required ? missing(key, file, err) : AP_OK;
    if (!cJSON_IsString(v)) return wrong_type(v, key, file, "a string", err);
    *out = v->valuestring;
    return AP_OK;
}

ap_status ap_json_save(const char *path, const cJSON *value, ap_error *err) {
    char *text = cJSON_Print(value);
    if (!text) return ap_fail(err, AP_ERR_NOMEM, "%s: out of memory formatting JSON", path);
    ap_buf b = {0};
    ap_status st = ap_buf_append(&b, text, strlen(text), err);
    cJSON_free(text); /* cJSON's allocator, which may not be ours */
    if (!st) st = ap_buf_append(&b, "\n", 1, err);
    if (!st) st = ap_write_file_atomic(path, b.data, b.len, err);
    ap_buf_free(&b);
    return st;
}

/* The first field of a whose value differs in b (or is missing there). */
static const char *first_difference(const cJSON *a, const cJSON *b) {
    for (const cJSON *x = a->child; x; x = x->next) {
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
        if (!y || !cJSON_Compare(x, y, 1)) return x->string;
    }
    return NULL;
}

ap_status ap_train_state_open(const char *path, const char *key, const cJSON *identity, const char *same_what,
                              ap_safetensors **sf, cJSON **state, ap_error *err) {
    *sf = NULL;
    *state = NULL;
    ap_status st = ap_st_open(path, sf, err);
    if (st) return ap_error_prefix(err, "--resume");
    const char *text = ap_st_meta(*sf, key);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    const cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "identity") : NULL;
    const char *diff = cJSON_IsObject(id) ? first_difference(identity, id) : "identity";
    if (!j)
        st = ap_fail(err, AP_ERR_FORMAT, "%s: no training state in its metadata", path);
    else if (diff)
        st = ap_fail(err, AP_ERR_ARG, "--resume: '%s' differs from the run that wrote %s; resume with the same %s",
                     diff, path, same_what);
    if (st) {
        cJSON_Delete(j);
        ap_st_close(*sf);
        *sf = NULL;
        return st;
    }
    *state = j;
    return AP_OK;
}
