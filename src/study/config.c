/* The study's config (docs/study.md): one table of fields with their types,
 * defaults and ranges, read from JSON and written back. */
#include "apmae/study.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum field_type { F_STR, F_INT, F_REAL } field_type;

typedef struct field {
    const char *section; /* NULL: top level */
    const char *name;
    field_type type;
    size_t offset;
    const char *def_str; /* F_STR default (NULL: null) */
    double def_num;      /* F_INT / F_REAL default */
    double lo, hi;       /* F_INT / F_REAL range */
    int nullable;        /* F_STR: null allowed */
    const char *choices; /* F_STR: "a|b|c", or NULL for any text */
} field;

#define OFF(member) offsetof(ap_study_config, member)

/* The defaults serve `make demo`: the shipped model on the JDK modules held
 * out from its training, every task, sized for a few minutes on two cores. */
static const field k_fields[] = {
    {NULL, "model", F_STR, OFF(model), "models/java-small", 0, 0, 0, 0, NULL},
    {NULL, "cross_model", F_STR, OFF(cross_model), NULL, 0, 0, 0, 1, NULL},
    {NULL, "threads", F_INT, OFF(threads), NULL, 0, 0, 1024, 0, NULL},
    {"mine", "corpus", F_STR, OFF(mine.corpus), "/usr/lib/jvm/openjdk-17/lib/src.zip", 0, 0, 0, 0, NULL},
    {"mine", "include", F_STR, OFF(mine.include), "java.xml/**,java.desktop/**,jdk.compiler/**", 0, 0, 0, 1, NULL},
    {"mine", "exclude", F_STR, OFF(mine.exclude), NULL, 0, 0, 0, 1, NULL},
    {"mine", "tasks", F_STR, OFF(mine.tasks), "all", 0, 0, 0, 0, NULL},
    {"mine", "per_task", F_INT, OFF(mine.per_task), NULL, 60, 1, 1e9, 0, NULL},
    {"mine", "max_length", F_INT, OFF(mine.max_length), NULL, 256, 16, 65536, 0, NULL},
    {"mine", "seed", F_INT, OFF(mine.seed), NULL, 1, 0, 9e15, 0, NULL},
    {"mine", "compat", F_STR, OFF(mine.compat), "default", 0, 0, 0, 0, "default|reference"},
    {"extract", "samples_per_task", F_INT, OFF(extract.samples_per_task), NULL, 40, 0, 1e9, 0, NULL},
    {"extract", "dtype", F_STR, OFF(extract.dtype), "bf16", 0, 0, 0, 0, "f32|f16|bf16"},
    {"extract", "commit_every", F_INT, OFF(extract.commit_every), NULL, 0, 0, 1e6, 0, NULL},
    {"mae", "encoder", F_STR, OFF(mae.encoder), "auto", 0, 0, 0, 0, NULL},
    {"mae", "config", F_STR, OFF(mae.config), "small", 0, 0, 0, 0, NULL},
    {"mae", "steps", F_INT, OFF(mae.steps), NULL, 300, 1, 1e12, 0, NULL},
    {"mae", "batch", F_INT, OFF(mae.batch), NULL, 60, 1, 4096, 0, NULL},
    {"mae", "heads", F_STR, OFF(mae.heads), "all", 0, 0, 0, 0, NULL},
    {"mae", "holdout", F_REAL, OFF(mae.holdout), NULL, 0.05, 1e-9, 1 - 1e-9, 0, NULL},
    {"mae", "seed", F_INT, OFF(mae.seed), NULL, 0, 0, 9e15, 0, NULL},
    {"mae", "eval_patterns", F_INT, OFF(mae.eval_patterns), NULL, 0, 0, 1e12, 0, NULL},
    {"mae", "figures", F_INT, OFF(mae.figures), NULL, 4, 0, 1000, 0, NULL},
    {"cluster", "embedding", F_STR, OFF(cluster.embedding), "cls", 0, 0, 0, 0, "cls|mean"},
    {"cluster", "umap_components", F_INT, OFF(cluster.umap_components), NULL, 8, 1, 256, 0, NULL},
    {"cluster", "umap_neighbors", F_INT, OFF(cluster.umap_neighbors), NULL, 20, 2, 1000, 0, NULL},
    {"cluster", "umap_min_dist", F_REAL, OFF(cluster.umap_min_dist), NULL, 0.05, 0, 10, 0, NULL},
    {"cluster", "metric", F_STR, OFF(cluster.metric), "cosine", 0, 0, 0, 0, "cosine|euclidean"},
    {"cluster", "min_samples", F_INT, OFF(cluster.min_samples), NULL, 20, 1, 1e6, 0, NULL},
    {"cluster", "min_cluster_size", F_INT, OFF(cluster.min_cluster_size), NULL, 25, 2, 1e9, 0, NULL},
    {"cluster", "seed", F_INT, OFF(cluster.seed), NULL, 42, 0, 9e15, 0, NULL},
    {"classify", "tasks", F_STR, OFF(classify.tasks), "all", 0, 0, 0, 0, NULL},
    {"classify", "seed", F_INT, OFF(classify.seed), NULL, 42, 0, 9e15, 0, NULL},
    {"classify", "test_fraction", F_REAL, OFF(classify.test_fraction), NULL, 0.1, 0.01, 0.9, 0, NULL},
    {"classify", "folds", F_INT, OFF(classify.folds), NULL, 5, 0, 100, 0, NULL},
    {"classify", "repeats", F_INT, OFF(classify.repeats), NULL, 5, 1, 100, 0, NULL},
    {"intervene", "tasks", F_STR, OFF(intervene.tasks), "auto", 0, 0, 0, 0, NULL},
    {"intervene", "max_tasks", F_INT, OFF(intervene.max_tasks), NULL, 3, 1, 1000, 0, NULL},
    {"intervene", "target", F_INT, OFF(intervene.target), NULL, 10, 1, 1e6, 0, NULL},
    {"intervene", "n", F_STR, OFF(intervene.n), "1,2,5,10,20,50,100,200,400,600,800", 0, 0, 0, 0, NULL},
    {"intervene", "settings", F_STR, OFF(intervene.settings), "pos_only,neg_only,neutral,random", 0, 0, 0, 0, NULL},
    {"intervene", "shap_set", F_STR, OFF(intervene.shap_set), "test", 0, 0, 0, 0, "test|cv"},
    {"intervene", "seed", F_INT, OFF(intervene.seed), NULL, 1, 0, 9e15, 0, NULL},
};
#define NFIELDS (sizeof k_fields / sizeof *k_fields)

static char **str_at(ap_study_config *c, const field *f) { return (char **)((char *)c + f->offset); }
static int64_t *int_at(ap_study_config *c, const field *f) { return (int64_t *)((char *)c + f->offset); }
static double *real_at(ap_study_config *c, const field *f) { return (double *)((char *)c + f->offset); }

static void field_path(const field *f, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s", f->section ? f->section : "", f->section ? "." : "", f->name);
}

ap_status ap_study_config_default(ap_study_config *c, ap_error *err) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NFIELDS; i++) {
        const field *f = &k_fields[i];
        if (f->type == F_INT) *int_at(c, f) = (int64_t)f->def_num;
        else if (f->type == F_REAL) *real_at(c, f) = f->def_num;
        else if (f->def_str && !(*str_at(c, f) = ap_strdup(f->def_str, err))) {
            ap_study_config_free(c);
            return AP_ERR_NOMEM;
        }
    }
    return AP_OK;
}

void ap_study_config_free(ap_study_config *c) {
    if (!c) return;
    for (size_t i = 0; i < NFIELDS; i++)
        if (k_fields[i].type == F_STR) {
            free(*str_at(c, &k_fields[i]));
            *str_at(c, &k_fields[i]) = NULL;
        }
}

static int choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        size_t k = strcspn(p, "|");
        if (k == n && strncmp(p, v, n) == 0) return 1;
        p += k + (p[k] == '|');
    }
    return 0;
}

/* One field's value from the file into c. */
static ap_status set_field(ap_study_config *c, const field *f, const cJSON *v, const char *path, ap_error *err) {
    char name[96];
    field_path(f, name, sizeof name);
    if (f->type == F_STR) {
        if (cJSON_IsNull(v) && f->nullable) {
            free(*str_at(c, f));
            *str_at(c, f) = NULL;
            return AP_OK;
        }
        if (!cJSON_IsString(v) || !v->valuestring[0])
            return ap_fail(err, AP_ERR_FORMAT, "%s: %s must be a non-empty string%s", path, name,
                           f->nullable ? " or null" : "");
        if (f->choices && !choice_ok(f->choices, v->valuestring))
            return ap_fail(err, AP_ERR_FORMAT, "%s: %s is '%s', expected one of %s", path, name, v->valuestring,
                           f->choices);
        char *s = ap_strdup(v->valuestring, err);
        if (!s) return AP_ERR_NOMEM;
        free(*str_at(c, f));
        *str_at(c, f) = s;
        return AP_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
    if (!cJSON_IsNumber(v) || (f->type == F_INT && d != (double)(int64_t)d))
        return ap_fail(err, AP_ERR_FORMAT, "%s: %s must be %s", path, name, f->type == F_INT ? "an integer" : "a number");
    if (!(d >= f->lo && d <= f->hi))
        return ap_fail(err, AP_ERR_FORMAT, "%s: %s = %.17g is outside %.17g..%.17g", path, name, d, f->lo, f->hi);
    if (f->type == F_INT) *int_at(c, f) = (int64_t)d;
    else *real_at(c, f) = d;
    return AP_OK;
}

static const field *find_field(const char *section, const char *name) {
    for (size_t i = 0; i < NFIELDS; i++) {
        const field *f = &k_fields[i];
        if (strcmp(f->name, name) == 0 && (section ? f->section && strcmp(f->section, section) == 0 : !f->section))
            return f;
    }
    return NULL;
}

static int is_section(const char *name) {
    for (size_t i = 0; i < NFIELDS; i++)
        if (k_fields[i].section && strcmp(k_fields[i].section, name) == 0) return 1;
    return 0;
}

/* Every member of obj (the top level, or a section) must be a known field. */
static ap_status read_object(ap_study_config *c, const cJSON *obj, const char *section, const char *path,
                             ap_error *err) {
    for (const cJSON *v = obj->child; v; v = v->next) {
        if (!section && is_section(v->string)) {
            if (!cJSON_IsObject(v)) return ap_fail(err, AP_ERR_FORMAT, "%s: %s must be an object", path, v->string);
            ap_status st = read_object(c, v, v->string, path, err);
            if (st) return st;
            continue;
        }
        const field *f = find_field(section, v->string);
        if (!f)
            return ap_fail(err, AP_ERR_FORMAT, "%s: unknown field %s%s%s (docs/study.md lists the fields)", path,
                           section ? section : "", section ? "." : "", v->string);
        ap_status st = set_field(c, f, v, path, err);
        if (st) return st;
    }
    return AP_OK;
}

ap_status ap_study_config_load(const char *path, ap_study_config *c, ap_error *err) {
    ap_status st = ap_study_config_default(c, err);
    if (st || !path) return st;
    cJSON *root;
    if ((st = ap_json_load(path, &root, err))) {
        ap_study_config_free(c);
        return st;
    }
    if (!cJSON_IsObject(root)) st = ap_fail(err, AP_ERR_FORMAT, "%s: expected a JSON object", path);
    else st = read_object(c, root, NULL, path, err);
    cJSON_Delete(root);
    if (st) ap_study_config_free(c);
    return st;
}

cJSON *ap_study_config_to_json(const ap_study_config *c) {
    cJSON *root = cJSON_CreateObject();
    ap_study_config *cc = (ap_study_config *)(uintptr_t)c; /* read through the same accessors */
    for (size_t i = 0; root && i < NFIELDS; i++) {
        const field *f = &k_fields[i];
        cJSON *parent = root;
        if (f->section) {
            parent = cJSON_GetObjectItemCaseSensitive(root, f->section);
            if (!parent) parent = cJSON_AddObjectToObject(root, f->section);
        }
        if (f->type == F_INT) cJSON_AddNumberToObject(parent, f->name, (double)*int_at(cc, f));
        else if (f->type == F_REAL) cJSON_AddNumberToObject(parent, f->name, *real_at(cc, f));
        else if (*str_at(cc, f)) cJSON_AddStringToObject(parent, f->name, *str_at(cc, f));
        else cJSON_AddNullToObject(parent, f->name);
    }
    return root;
}
