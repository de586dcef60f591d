/* Reading the scenario JSONL that `apmae mine` writes. */
#define _POSIX_C_SOURCE 200809L
#include "apmae/extract.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

void ap_scenario_clear(ap_scenario_line *s) {
    free(s->id);
    free(s->task);
    free(s->source);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

static ap_status copy_string(const cJSON *o, const char *key, int required, char **out, const char *where,
                             ap_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return ap_fail(err, AP_ERR_FORMAT, "%s: missing field '%s'", where, key);
        *out = ap_strdup("", err);
        return *out ? AP_OK : AP_ERR_NOMEM;
    }
    if (!cJSON_IsString(v)) return ap_fail(err, AP_ERR_FORMAT, "%s: field '%s' is not a string", where, key);
    *out = ap_strdup(v->valuestring, err);
    return *out ? AP_OK : AP_ERR_NOMEM;
}

static int64_t int_or(const cJSON *o, const char *key, int64_t dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : dflt;
}

static ap_status parse_ids(const cJSON *o, ap_scenario_line *s, const char *where, ap_error *err) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "input_ids");
    if (!cJSON_IsArray(arr)) return ap_fail(err, AP_ERR_FORMAT, "%s: missing array 'input_ids'", where);
    int n = cJSON_GetArraySize(arr);
    if (n < 1) return ap_fail(err, AP_ERR_FORMAT, "%s: 'input_ids' is empty", where);
    s->ids = ap_malloc((size_t)n * sizeof *s->ids, err);
    if (!s->ids) return AP_ERR_NOMEM;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int32_t)v->valuedouble)
            return ap_fail(err, AP_ERR_FORMAT, "%s: input_ids[%d] is not an integer token id", where, i);
        s->ids[i++] = (int32_t)v->valuedouble;
    }
    s->n = n;
    return AP_OK;
}

ap_status ap_scenario_parse(const char *line, const char *path, int64_t lineno, ap_scenario_line *s, ap_error *err) {
    memset(s, 0, sizeof *s);
    char where[600];
    snprintf(where, sizeof where, "%s:%lld", path, (long long)lineno);
    cJSON *o = cJSON_Parse(line);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return ap_fail(err, AP_ERR_FORMAT, "%s: not a JSON object", where);
    }
    ap_status st;
    if ((st = copy_string(o, "id", 1, &s->id, where, err)) || (st = copy_string(o, "task", 1, &s->task, where, err)) ||
        (st = copy_string(o, "source", 0, &s->source, where, err)) || (st = parse_ids(o, s, where, err))) {
        cJSON_Delete(o);
        ap_scenario_clear(s);
        return st;
    }
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(o, "label_id");
    if (label && !cJSON_IsNull(label) && !cJSON_IsNumber(label)) {
        cJSON_Delete(o);
        ap_scenario_clear(s);
        return ap_fail(err, AP_ERR_FORMAT, "%s: label_id must be an integer or null", where);
    }
    s->label = cJSON_IsNumber(label) ? (int32_t)label->valuedouble : -1;
    s->start = int_or(o, "start", -1);
    s->end = int_or(o, "end", -1);
    s->seed = int_or(o, "seed", 0);
    cJSON_Delete(o);
    return AP_OK;
}

ap_status ap_scenario_reader_open(ap_scenario_reader *r, const char *path, ap_error *err) {
    memset(r, 0, sizeof *r);
    r->f = fopen(path, "r");
    if (!r->f) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot open scenarios", path);
    r->path = path;
    return AP_OK;
}

/* Next non-empty line; *has = 0 at the end. */
ap_status ap_scenario_reader_next(ap_scenario_reader *r, ap_scenario_line *s, int *has, ap_error *err) {
    for (;;) {
        ssize_t len = getline(&r->line, &r->cap, r->f);
        if (len < 0) {
            *has = 0;
            return ferror(r->f) ? ap_fail_errno(err, AP_ERR_IO, "%s: read failed", r->path) : AP_OK;
        }
        r->lineno++;
        while (len > 0 && (r->line[len - 1] == '\n' || r->line[len - 1] == '\r')) r->line[--len] = '\0';
        if (len == 0) continue;
        *has = 1;
        return ap_scenario_parse(r->line, r->path, r->lineno, s, err);
    }
}

void ap_scenario_reader_close(ap_scenario_reader *r) {
    if (r->f) fclose(r->f);
    free(r->line);
    memset(r, 0, sizeof *r);
}
