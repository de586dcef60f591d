/* Which heads an intervention switches off (docs/analysis.md
 * "Interventions"): the SHAP figures of `apmae classify`'s results.json and
 * the order in which each setting takes heads. */
#include "apmae/intervene.h"
#include "apmae/io.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *ap_iv_setting_name(ap_iv_setting s) {
    static const char *const k[] = {"pos_only", "neg_only", "neutral", "random"};
    return s >= 0 && s < AP_IV_SETTINGS ? k[s] : "?";
}

static ap_status read_head(const cJSON *e, const char *path, int k, ap_head_shap *h, ap_error *err) {
    char where[64];
    snprintf(where, sizeof where, "heads[%d]", k);
    int64_t layer, head;
    ap_status st;
    if (!cJSON_IsObject(e)) return ap_fail(err, AP_ERR_FORMAT, "%s: %s is not an object", path, where);
    if ((st = ap_json_int(e, "layer", path, &layer, err)) || (st = ap_json_int(e, "head", path, &head, err)) ||
        (st = ap_json_num(e, "mean_pos", path, &h->mean_pos, err)) ||
        (st = ap_json_num(e, "mean_neg", path, &h->mean_neg, err)) ||
        (st = ap_json_num(e, "mean_total", path, &h->mean_total, err)) ||
        (st = ap_json_num(e, "mean_abs", path, &h->mean_abs, err)))
        return ap_error_prefix(err, "%s", where);
    if (!isfinite(h->mean_pos) || !isfinite(h->mean_neg) || !isfinite(h->mean_total) || !isfinite(h->mean_abs))
        return ap_fail(err, AP_ERR_FORMAT, "%s: %s has a SHAP figure that is not a finite number", path, where);
    h->layer = (int)layer;
    h->head = (int)head;
    return layer == h->layer && head == h->head ? AP_OK
                                                : ap_fail(err, AP_ERR_FORMAT, "%s: %s: layer or head out of range",
                                                          path, where);
}

/* The "heads" array of one task's entry into heads [L*H]. */
static ap_status read_heads(const cJSON *arr, const char *path, const char *what, int L, int H, ap_head_shap *heads,
                            ap_error *err) {
    int P = L * H;
    if (!cJSON_IsArray(arr)) return ap_fail(err, AP_ERR_FORMAT, "%s: %s has no 'heads' array", path, what);
    int n = cJSON_GetArraySize(arr);
    if (n != P)
        return ap_fail(err, AP_ERR_ARG, "%s: %s lists %d heads, but the model has %d layers x %d heads = %d", path,
                       what, n, L, H, P);
    uint8_t *seen = ap_calloc((size_t)P, 1, err);
    if (!seen) return AP_ERR_NOMEM;
    ap_status st = AP_OK;
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        ap_head_shap h;
        if ((st = read_head(e, path, k++, &h, err))) break;
        if (h.layer < 0 || h.layer >= L || h.head < 0 || h.head >= H) {
            st = ap_fail(err, AP_ERR_ARG, "%s: %s has head %d:%d, which a model of %d layers x %d heads lacks", path,
                         what, h.layer, h.head, L, H);
            break;
        }
        int i = h.layer * H + h.head;
        if (seen[i]++) {
            st = ap_fail(err, AP_ERR_FORMAT, "%s: %s lists head %d:%d twice", path, what, h.layer, h.head);
            break;
        }
        heads[i] = h;
    }
    free(seen);
    return st;
}

ap_status ap_shap_load(const char *path, const char *task, int cv, int L, int H, ap_head_shap *heads,
                       ap_error *err) {
    cJSON *root;
    ap_status st = ap_json_load(path, &root, err);
    if (st) return st;
    int64_t fl = 0, fh = 0;
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(root, "tasks");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(tasks, task);
    const cJSON *skipped = cJSON_GetObjectItemCaseSensitive(t, "skipped");
    const cJSON *from = cv ? cJSON_GetObjectItemCaseSensitive(t, "cv") : t;
    char what[300];
    snprintf(what, sizeof what, "task '%s'%s", task, cv ? " (cross-validation)" : "");
    if ((st = ap_json_int(root, "num_layers", path, &fl, err)) || (st = ap_json_int(root, "num_heads", path, &fh, err)))
        st = ap_error_prefix(err, "not the results.json of apmae classify");
    else if (fl != L || fh != H)
        st = ap_fail(err, AP_ERR_ARG,
                     "%s: SHAP figures of a model with %lld layers x %lld heads, but the model has %d x %d: the "
                     "SHAP file belongs to another model",
                     path, (long long)fl, (long long)fh, L, H);
    else if (!cJSON_IsObject(t))
        st = ap_fail(err, AP_ERR_ARG, "%s: no results for task '%s'", path, task);
    else if (cJSON_IsString(skipped))
        st = ap_fail(err, AP_ERR_ARG, "%s: task '%s' was skipped by classify (%s): it has no SHAP figures", path,
                     task, skipped->valuestring);
    else if (cv && !cJSON_IsObject(from))
        st = ap_fail(err, AP_ERR_ARG, "%s: task '%s' has no cross-validation figures (classify ran with --folds 0?)",
                     path, task);
    else
        st = read_heads(cJSON_GetObjectItemCaseSensitive(from, "heads"), path, what, L, H, heads, err);
    cJSON_Delete(root);
    return st;
}

/* ---- orders ---- */

typedef struct keyed {
    double key;
    uint64_t tie; /* seeded random: orders equal keys */
    int head;
} keyed;

static int by_key(const void *pa, const void *pb) {
    const keyed *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    if (a->tie != b->tie) return a->tie < b->tie ? -1 : 1;
    return a->head - b->head;
}

int ap_iv_head_ranked(ap_iv_setting s, const ap_head_shap *h) {
    return s == AP_IV_POS_ONLY ? h->mean_pos > 0 : s == AP_IV_NEG_ONLY ? h->mean_total < 0 : 0;
}

ap_status ap_iv_head_order(ap_iv_setting s, const ap_head_shap *heads, int L, int H, uint64_t seed, int *order,
                           int *navail, ap_error *err) {
    if (s < 0 || s >= AP_IV_SETTINGS) return ap_fail(err, AP_ERR_ARG, "unknown intervention setting %d", (int)s);
    int P = L * H, n = 0;
    keyed *k = ap_malloc((size_t)P * sizeof *k, err);
    if (!k) return AP_ERR_NOMEM;
    ap_rng r;
    ap_rng_seed(&r, ap_hash_mix(seed, (uint64_t)s + 1));
    for (int i = 0; i < P; i++) {
        const ap_head_shap *h = &heads[i];
        if (s == AP_IV_NEUTRAL && !(fabs(h->mean_total) <= AP_IV_NEUTRAL_MAX)) continue;
        double key = s == AP_IV_POS_ONLY ? -h->mean_pos : s == AP_IV_NEG_ONLY ? h->mean_total : 0.0;
        k[n++] = (keyed){key, ap_rng_next(&r), i};
    }
    qsort(k, (size_t)n, sizeof *k, by_key);
    for (int i = 0; i < n; i++) order[i] = k[i].head;
    *navail = n;
    free(k);
    return AP_OK;
}
