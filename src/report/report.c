/* report.html: the page skeleton, its style sheet, and the sections in
 * their fixed order. */
#include <stdlib.h>
#include <string.h>

#include "apmae/study.h"
#include "internal.h"

typedef struct section {
    const char *id, *title;
    rp_section_fn fn;
} section;

static const section k_sections[] = {
    {"settings", "Run settings", rp_section_settings},
    {"lm-accuracy", "LM accuracy per task", rp_section_lm_accuracy},
    {"patterns", "Pattern gallery", rp_section_patterns},
    {"mae", "AP-MAE: training, reconstruction, cross-model", rp_section_mae},
    {"clusters", "Clusters per head", rp_section_clusters},
    {"classify", "Predicting correctness from the clusters", rp_section_classify},
    {"shap", "SHAP head map", rp_section_shap},
    {"intervene", "Interventions: accuracy against heads switched off", rp_section_intervene},
};
#define NSECTIONS (sizeof k_sections / sizeof *k_sections)

size_t ap_report_section_count(void) { return NSECTIONS; }
const char *ap_report_section_id(size_t i) { return i < NSECTIONS ? k_sections[i].id : NULL; }

static const char k_style[] =
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1a1a1a;margin:0;background:#fff}"
    "main{max-width:1100px;margin:0 auto;padding:0 20px 60px}"
    "header{background:#1f2d3d;color:#fff;padding:18px 20px}header h1{margin:0 auto;max-width:1100px;font-size:22px}"
    "nav{max-width:1100px;margin:8px auto 0;font-size:14px}nav a{color:#cfe3ff;margin-right:14px}"
    "section{border-top:1px solid #ddd;margin-top:28px;padding-top:6px}h2{font-size:19px}h3{font-size:16px}"
    "table{border-collapse:collapse;margin:8px 0 16px;font-size:13.5px}"
    "th,td{border-bottom:1px solid #e4e4e4;padding:3px 10px;text-align:left;vertical-align:top}"
    "th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "code{font-size:12.5px;background:#f4f6f8;padding:0 3px}"
    ".missing{color:#8a5a00;background:#fff7e0;padding:8px 12px;border-left:3px solid #e6a700}"
    ".note{color:#555;font-size:13px}figure.chart{margin:10px 0 18px}"
    "svg{max-width:100%;height:auto;font-size:12px;font-family:inherit}"
    "svg .title{font-size:14px;font-weight:600}svg .label{font-size:13px}svg .note{fill:#555;font-size:11.5px}"
    "svg .value{font-size:11px;fill:#333}svg .grid{stroke:#e8e8e8}svg .tick,svg .axis{stroke:#333;fill:none}"
    "svg .interval{stroke:#222;stroke-width:1.3;fill:none}svg .reference{stroke:#555;stroke-dasharray:5 4}"
    "svg .legend rect:first-child{fill:#fff;fill-opacity:.9;stroke:#ccc}"
    "svg image{image-rendering:pixelated}svg .frame{fill:none;stroke-width:2}"
    ".figures img{max-width:min(100%,760px);display:block;margin:8px 0;image-rendering:pixelated}";

char *rp_path(rp_out *o, const rp_study *s, const char *name) {
    char *p = ap_path_join(s->dir, name, o->err);
    if (!p && !o->st) o->st = AP_ERR_NOMEM;
    return p;
}

cJSON *rp_load_json(rp_out *o, const rp_study *s, const char *name) {
    char *path = rp_path(o, s, name);
    cJSON *j = NULL;
    if (path && ap_path_exists(path) && !o->st) o->st = ap_json_load(path, &j, o->err);
    free(path);
    return j;
}

const cJSON *rp_stage(const rp_study *s, const char *stage) {
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s->record, "stages"), stage);
}

void rp_missing(rp_out *o, const rp_study *s, const char *stage, const char *what) {
    const cJSON *rec = rp_stage(s, stage);
    const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "state"));
    rp_raw(o, "<p class=\"missing\">No ");
    rp_text(o, what);
    rp_printf(o, " to show: the %s stage %s.</p>\n", stage,
              !state ? "has not run" : strcmp(state, "running") == 0 ? "has not finished" : "left no output for it");
}

static void write_section(rp_out *o, const rp_study *s, const section *sec) {
    rp_printf(o, "<section id=\"%s\"><h2>", sec->id);
    rp_text(o, sec->title);
    rp_raw(o, "</h2>\n");
    sec->fn(o, s);
    rp_raw(o, "</section>\n");
}

static ap_status open_study(rp_study *s, const char *dir, ap_error *err) {
    memset(s, 0, sizeof *s);
    s->dir = dir;
    char *rec = ap_path_join(dir, AP_STUDY_RECORD, err), *store = ap_path_join(dir, AP_STUDY_STORE, err);
    ap_status st = rec && store ? AP_OK : AP_ERR_NOMEM;
    if (!st && !ap_path_exists(rec)) st = ap_fail(err, AP_ERR_IO, "%s: no study here (%s is missing)", dir, rec);
    if (!st) st = ap_json_load(rec, &s->record, err);
    if (!st && ap_path_exists(store)) st = ap_store_open(store, AP_STORE_READ, &s->store, err);
    if (!st && s->store) {
        const ap_store_meta *m = ap_store_get_meta(s->store);
        s->L = m->num_layers, s->H = m->num_heads, s->N = m->n_tokens;
    }
    free(rec);
    free(store);
    return st;
}

ap_status ap_report_write(const char *study_dir, const char *out_path, ap_error *err) {
    rp_study s;
    rp_out o = {.err = err};
    o.st = open_study(&s, study_dir, err);
    rp_raw(&o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
               "style-src 'unsafe-inline'\"><title>apmae study: ");
    rp_text(&o, study_dir);
    rp_printf(&o, "</title><style>%s</style></head>\n<body><header><h1>Attention pattern study: ", k_style);
    rp_text(&o, study_dir);
    rp_raw(&o, "</h1><nav>");
    for (size_t i = 0; i < NSECTIONS; i++) {
        rp_printf(&o, "<a href=\"#%s\">", k_sections[i].id);
        rp_text(&o, k_sections[i].title);
        rp_raw(&o, "</a>");
    }
    rp_raw(&o, "</nav></header>\n<main>\n");
    for (size_t i = 0; i < NSECTIONS && !o.st; i++) write_section(&o, &s, &k_sections[i]);
    rp_raw(&o, "</main></body></html>\n");
    if (!o.st) o.st = ap_write_file_atomic(out_path, o.b.data, o.b.len, err);
    ap_buf_free(&o.b);
    cJSON_Delete(s.record);
    ap_store_close(s.store, NULL);
    return o.st;
}
