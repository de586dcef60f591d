/* Inside the report: an HTML writer with a sticky error, the SVG charts,
 * and the sections. */
#ifndef APMAE_REPORT_INTERNAL_H
#define APMAE_REPORT_INTERNAL_H

#include "apmae/io.h"
#include "apmae/report.h"
#include "apmae/store.h"

/* ---- the page being written ---------------------------------------------------------------------- */

/* Writes append to b until one fails; later writes are no-ops, and st/err
 * keep the first failure, so sections can write without checking each call. */
typedef struct rp_out {
    ap_buf b;
    ap_status st;
    ap_error *err;
    int next_id; /* for element ids unique in the page (SVG gradients) */
} rp_out;

void rp_printf(rp_out *o, const char *fmt, ...) AP_PRINTF(2, 3);
void rp_raw(rp_out *o, const char *s);
/* Text with & < > " ' escaped. */
void rp_text(rp_out *o, const char *s);
/* base64 of n bytes (RFC 4648, padded). */
void rp_base64(rp_out *o, const void *data, size_t n);
/* <img> of PNG bytes, or of a PNG file, as a data URI. */
void rp_img_png(rp_out *o, const void *png, size_t n, const char *alt);
void rp_img_file(rp_out *o, const char *path, const char *alt);
/* A number for a table or label: 3 significant digits, or "–" for NaN. */
void rp_num(rp_out *o, double v);

/* ---- charts (inline SVG) ------------------------------------------------------------------------- */

/* Colours of the series: a palette that stays distinct for colour-blind readers. */
const char *rp_series_colour(int i);

typedef struct rp_axis {
    const char *label; /* with its unit, e.g. "accuracy (%)" */
    int log;           /* log10 scale (values must be > 0) */
    double lo, hi;     /* NaN: from the data */
} rp_axis;

typedef struct rp_series {
    const char *name;
    const double *x, *y; /* n points; NaN y leaves a gap */
    size_t n;
    int markers;         /* draw a dot at each point */
    int thin;            /* a thin, light line (e.g. raw per-step values) */
} rp_series;

typedef struct rp_line_chart {
    const char *title;
    rp_axis x, y;
    const rp_series *series;
    size_t nseries;
} rp_line_chart;
void rp_svg_line_chart(rp_out *o, const rp_line_chart *c);

/* Horizontal bars, one group per category and one bar per series in it;
 * lo/hi (NaN: none) draw an interval on a bar. */
typedef struct rp_bar_chart {
    const char *title;
    rp_axis value;
    const char *const *categories;
    size_t ncat;
    const char *const *series; /* names, for the legend (one series: no legend) */
    size_t nseries;
    const double *v, *lo, *hi; /* [ncat * nseries]; lo, hi may be NULL */
    double reference;          /* a dashed line at this value (NaN: none) */
    const char *reference_label;
} rp_bar_chart;
void rp_svg_bar_chart(rp_out *o, const rp_bar_chart *c);

/* Categories shown by colour, with a legend of swatches: category[i] in
 * 0..n-1 (colour rp_series_colour(i)), n for "other" (grey), -1 for none. */
typedef struct rp_categories {
    const int *of;             /* [cells] */
    const char *const *names;  /* [n] */
    int n;
} rp_categories;

/* A rows x cols grid of values (NaN: no value), e.g. layers x heads, with
 * a colour legend. diverging: a blue-white-red scale centred on 0. With
 * cat.of set, the cells show categories instead of v. */
typedef struct rp_heatmap {
    const char *title;
    const char *row_label, *col_label, *value_label;
    int rows, cols;
    const double *v;            /* [rows * cols] */
    const char *const *tooltip; /* [rows * cols] or NULL: shown on hover */
    int diverging;
    rp_categories cat;
} rp_heatmap;
void rp_svg_heatmap(rp_out *o, const rp_heatmap *c);

/* An image (PNG bytes) of rows x cols tiles of tile pixels plus gap, with
 * the rows and columns labelled by index (layers x heads) or by name. With
 * cat.of set, each tile gets a frame in its category's colour, and a legend. */
typedef struct rp_tiles {
    const char *title, *row_label, *col_label;
    int rows, cols, tile, gap;
    const void *png;
    size_t png_len;
    const char *const *row_names, *const *col_names; /* NULL: indices */
    const char *const *tooltip;                      /* [rows * cols] or NULL */
    rp_categories cat;
} rp_tiles;
void rp_svg_tiles(rp_out *o, const rp_tiles *c);

/* A thumbnail of an N x N pattern, about `target` pixels wide: *t x *t
 * pixels (each the mean of a b x b block), log-scaled like the AP-MAE's
 * input through viridis, white above the diagonal, written into rgb rows of
 * `stride` bytes. block: scratch of t*t floats. */
void rp_thumb_size(int N, int target, int *b, int *t);
void rp_thumbnail(const float *P, int N, int b, unsigned char *rgb, size_t stride, float *block);

/* ---- the study being reported ---------------------------------------------------------------------- */

typedef struct rp_study {
    const char *dir;
    cJSON *record;  /* study.json */
    ap_store *store; /* read-only; NULL when there is none yet */
    int L, H, N;
} rp_study;

/* dir/name (malloc'ed), or NULL when out of memory (o's error set). */
char *rp_path(rp_out *o, const rp_study *s, const char *name);
/* A JSON file of the study, or NULL when it does not exist (an unreadable
 * one fails o). */
cJSON *rp_load_json(rp_out *o, const rp_study *s, const char *name);
/* The stage's record in study.json, or NULL. */
const cJSON *rp_stage(const rp_study *s, const char *stage);
/* <p class="missing"> saying why a section has nothing to show. */
void rp_missing(rp_out *o, const rp_study *s, const char *stage, const char *what);

typedef void (*rp_section_fn)(rp_out *o, const rp_study *s);
void rp_section_settings(rp_out *o, const rp_study *s);
void rp_section_lm_accuracy(rp_out *o, const rp_study *s);
void rp_section_patterns(rp_out *o, const rp_study *s);
void rp_section_mae(rp_out *o, const rp_study *s);
void rp_section_clusters(rp_out *o, const rp_study *s);
void rp_section_classify(rp_out *o, const rp_study *s);
void rp_section_shap(rp_out *o, const rp_study *s);
void rp_section_intervene(rp_out *o, const rp_study *s);

/* One tile of a composed image: a stored pattern (sample, layer, head), a
 * cluster's mean pattern (cluster >= 0), or blank (sample and cluster < 0). */
typedef struct rp_cell {
    int64_t sample;
    int layer, head, cluster;
} rp_cell;
/* rows x cols thumbnails (about target pixels each, gap apart) as one PNG:
 * *png malloc'ed, *tile the thumbnail size. 0 on failure (o's error set). */
int rp_compose(rp_out *o, const rp_study *s, const rp_cell *cells, int rows, int cols, int target, int gap,
               void **png, size_t *len, int *tile);

/* Per head, what its clusters are (from the store's /clusters summaries):
 * the kind and medoid of its largest cluster, and a line describing all of
 * them; kinds coloured as categories, the most common first. */
typedef struct rp_head_kinds {
    int *kind;           /* [L*H]: index into names, n_names for another kind, -1: no summary */
    int64_t *medoid;     /* [L*H]: medoid sample of the largest cluster, -1: none */
    char **about;        /* [L*H]: "layer l, head h: k clusters, ..." */
    const char *names[8];
    char name_buf[8][AP_CLUSTER_KIND_MAX];
    int n_names;
} rp_head_kinds;
/* 0 when the store has no cluster summaries (nothing allocated). */
int rp_head_kinds_load(rp_out *o, const rp_study *s, rp_head_kinds *k);
void rp_head_kinds_free(rp_head_kinds *k, int heads);

#endif
