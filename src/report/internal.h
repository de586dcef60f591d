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

/* A rows x cols grid of values (NaN: no value), e.g. layers x heads, with
 * a colour legend. diverging: a blue-white-red scale centred on 0. */
typedef struct rp_heatmap {
    const char *title;
    const char *row_label, *col_label, *value_label;
    int rows, cols;
    const double *v;            /* [rows * cols] */
    const char *const *tooltip; /* [rows * cols] or NULL: shown on hover */
    int diverging;
} rp_heatmap;
void rp_svg_heatmap(rp_out *o, const rp_heatmap *c);

/* An image (PNG bytes) inside a layers x heads frame: rows x cols tiles of
 * tile pixels plus gap, with the axes labelled like the heat maps. */
typedef struct rp_tiles {
    const char *title, *row_label, *col_label;
    int rows, cols, tile, gap;
    const void *png;
    size_t png_len;
} rp_tiles;
void rp_svg_tiles(rp_out *o, const rp_tiles *c);

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

#endif
