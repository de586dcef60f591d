/* Charts as inline SVG, drawn by hand: line charts, horizontal bar charts,
 * heat maps and image grids, each with a title, labelled axes with ticks,
 * and a legend. Sizes are in SVG user units; the page scales the viewBox
 * to its width. */
#include <math.h>
#include <string.h>

#include "internal.h"

const char *rp_series_colour(int i) {
    /* Okabe and Ito's colour-blind safe palette */
    static const char *const k[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"};
    return k[i % (int)(sizeof k / sizeof *k)];
}

/* ---- scales and ticks ---------------------------------------------------------------------------- */

typedef struct scale {
    double lo, hi; /* the axis range, in data units */
    int log;
    double p0, p1; /* the pixels lo and hi map to */
} scale;

static double to_px(const scale *s, double v) {
    double a = s->log ? log10(v) : v, lo = s->log ? log10(s->lo) : s->lo, hi = s->log ? log10(s->hi) : s->hi;
    return s->p0 + (a - lo) / (hi - lo) * (s->p1 - s->p0);
}

static double nice_step(double range, int want) {
    double raw = range / want, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

#define MAX_TICKS 32

/* The axis range (a's own bounds, else the data's, widened to whole ticks)
 * and its ticks; returns the tick count. */
static int axis_ticks(const rp_axis *a, double dlo, double dhi, scale *s, double t[MAX_TICKS]) {
    s->log = a->log;
    double lo = isnan(a->lo) ? dlo : a->lo, hi = isnan(a->hi) ? dhi : a->hi;
    int n = 0;
    if (a->log) {
        if (!(lo > 0)) lo = 1e-3;
        if (!(hi > lo)) hi = lo * 10;
        double d0 = floor(log10(lo) + 1e-9), d1 = ceil(log10(hi) - 1e-9);
        if (d1 <= d0) d1 = d0 + 1;
        if (isnan(a->lo)) lo = pow(10, d0);
        if (isnan(a->hi)) hi = pow(10, d1);
        for (double d = d0; d <= d1 && n < MAX_TICKS; d++) {
            static const double sub[] = {1, 2, 5};
            for (int k = 0; k < (d1 - d0 <= 2 ? 3 : 1) && n < MAX_TICKS; k++) {
                double v = sub[k] * pow(10, d);
                if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) t[n++] = v;
            }
        }
    } else {
        if (!(hi > lo)) hi = lo + 1;
        double step = nice_step(hi - lo, 5);
        if (isnan(a->lo)) lo = floor(lo / step + 1e-9) * step;
        if (isnan(a->hi)) hi = ceil(hi / step - 1e-9) * step;
        for (double k = ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9 && n < MAX_TICKS; k++)
            t[n++] = fabs(k) < 1e-12 ? 0 : k * step;
    }
    s->lo = lo;
    s->hi = hi;
    return n;
}

static void tick_label(rp_out *o, double v) {
    if (v == 0) rp_raw(o, "0");
    else rp_printf(o, "%g", fabs(v) >= 1e-4 && fabs(v) < 1e6 ? round(v * 1e6) / 1e6 : v);
}

static void svg_begin(rp_out *o, double w, double h, const char *title) {
    rp_printf(o, "<figure class=\"chart\"><svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" role=\"img\" aria-label=\"", w,
              h, w);
    rp_text(o, title);
    rp_raw(o, "\" xmlns=\"http://www.w3.org/2000/svg\">");
    rp_raw(o, "<text class=\"title\" x=\"8\" y=\"20\">");
    rp_text(o, title);
    rp_raw(o, "</text>");
}

/* Room for a title in the 14 px bold face. */
static double title_width(const char *title) { return 20 + 8.6 * (double)strlen(title); }

static void svg_end(rp_out *o) { rp_raw(o, "</svg></figure>\n"); }

static void text_at(rp_out *o, double x, double y, const char *anchor, const char *cls, const char *s) {
    rp_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s%s%s>", x, y, anchor, cls ? " class=\"" : "",
              cls ? cls : "", cls ? "\"" : "");
    rp_text(o, s);
    rp_raw(o, "</text>");
}

/* The y axis label, written upwards beside the axis. */
static void y_label(rp_out *o, double x, double y, const char *s) {
    rp_printf(o, "<text class=\"label\" text-anchor=\"middle\" transform=\"translate(%.1f %.1f) rotate(-90)\">", x, y);
    rp_text(o, s);
    rp_raw(o, "</text>");
}

/* ---- line chart ---------------------------------------------------------------------------------- */

static void data_range(const rp_line_chart *c, int y, double *lo, double *hi) {
    const rp_axis *a = y ? &c->y : &c->x;
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t k = 0; k < c->nseries; k++)
        for (size_t i = 0; i < c->series[k].n; i++) {
            double v = y ? c->series[k].y[i] : c->series[k].x[i];
            if (isnan(v) || (a->log && !(v > 0))) continue;
            if (v < *lo) *lo = v;
            if (v > *hi) *hi = v;
        }
    if (*lo > *hi) *lo = a->log ? 0.1 : 0, *hi = 1;
}

static void legend(rp_out *o, double right, double top, const char *const *names, size_t n, int lines) {
    double w = 0;
    for (size_t k = 0; k < n; k++) w = fmax(w, 7.0 * (double)strlen(names[k]));
    w += 34;
    double x = right - w - 6;
    rp_printf(o, "<g class=\"legend\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>", x, top + 4, w,
              16.0 * (double)n + 8);
    for (size_t k = 0; k < n; k++) {
        double y = top + 16 + 16.0 * (double)k;
        if (lines)
            rp_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>",
                      x + 6, y - 4, x + 24, y - 4, rp_series_colour((int)k));
        else
            rp_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\"/>", x + 8, y - 9,
                      rp_series_colour((int)k));
        text_at(o, x + 30, y, "start", NULL, names[k]);
    }
    rp_raw(o, "</g>");
}

void rp_svg_line_chart(rp_out *o, const rp_line_chart *c) {
    const double W = 720, H = 340, ml = 72, mr = 16, mt = 34, mb = 52;
    scale sx = {.p0 = ml, .p1 = W - mr}, sy = {.p0 = H - mb, .p1 = mt};
    double tx[MAX_TICKS], ty[MAX_TICKS], lo, hi;
    data_range(c, 0, &lo, &hi);
    int nx = axis_ticks(&c->x, lo, hi, &sx, tx);
    data_range(c, 1, &lo, &hi);
    int ny = axis_ticks(&c->y, lo, hi, &sy, ty);
    int clip = ++o->next_id;
    svg_begin(o, W, H, c->title);
    rp_printf(o, "<clipPath id=\"clip%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>",
              clip, ml, mt, W - mr - ml, H - mb - mt);
    for (int i = 0; i < ny; i++) {
        double y = to_px(&sy, ty[i]);
        rp_printf(o, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", ml, y, W - mr, y);
        rp_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", ml - 6, y + 4);
        tick_label(o, ty[i]);
        rp_raw(o, "</text>");
    }
    for (int i = 0; i < nx; i++) {
        double x = to_px(&sx, tx[i]);
        rp_printf(o, "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x, H - mb, x, H - mb + 5);
        rp_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, H - mb + 18);
        tick_label(o, tx[i]);
        rp_raw(o, "</text>");
    }
    rp_printf(o, "<path class=\"axis\" d=\"M%.1f %.1fV%.1fH%.1f\"/>", ml, mt, H - mb, W - mr);
    text_at(o, ml + (W - mr - ml) / 2, H - 10, "middle", "label", c->x.label);
    y_label(o, 16, mt + (H - mb - mt) / 2, c->y.label);
    rp_printf(o, "<g clip-path=\"url(#clip%d)\">", clip);
    for (size_t k = 0; k < c->nseries; k++) {
        const rp_series *s = &c->series[k];
        rp_printf(o, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s d=\"", rp_series_colour((int)k),
                  s->thin ? "1" : "2", s->thin ? " stroke-opacity=\"0.45\"" : "");
        int pen = 0;
        for (size_t i = 0; i < s->n; i++) {
            int ok = !isnan(s->y[i]) && !isnan(s->x[i]) && (!c->y.log || s->y[i] > 0) && (!c->x.log || s->x[i] > 0);
            if (ok) rp_printf(o, "%c%.1f %.1f", pen ? 'L' : 'M', to_px(&sx, s->x[i]), to_px(&sy, s->y[i]));
            pen = ok;
        }
        rp_raw(o, "\"/>");
        for (size_t i = 0; s->markers && i < s->n; i++)
            if (!isnan(s->y[i]) && (!c->y.log || s->y[i] > 0))
                rp_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", to_px(&sx, s->x[i]),
                          to_px(&sy, s->y[i]), rp_series_colour((int)k));
    }
    rp_raw(o, "</g>");
    const char *names[16];
    size_t n = c->nseries < 16 ? c->nseries : 16;
    for (size_t k = 0; k < n; k++) names[k] = c->series[k].name;
    if (n > 1) legend(o, W - mr, mt, names, n, 1);
    svg_end(o);
}

/* ---- bar chart ----------------------------------------------------------------------------------- */

void rp_svg_bar_chart(rp_out *o, const rp_bar_chart *c) {
    const double W = 720, bar = 12, gap = 10, mb = 46;
    double label_w = 0;
    for (size_t i = 0; i < c->ncat; i++) label_w = fmax(label_w, 7.0 * (double)strlen(c->categories[i]));
    /* the legend, then the reference line's label, above the bars */
    const double legend_h = c->nseries > 1 ? 16.0 * (double)c->nseries + 12 : 0;
    const double ref_h = !isnan(c->reference) && c->reference_label ? 14 : 0;
    const double ml = fmin(fmax(label_w + 14, 60), 240), mr = 64, mt = 34 + legend_h + ref_h;
    const double group = bar * (double)c->nseries + gap, H = mt + group * (double)c->ncat + mb;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < c->ncat * c->nseries; i++) {
        double vals[3] = {c->v[i], c->lo ? c->lo[i] : NAN, c->hi ? c->hi[i] : NAN};
        for (int k = 0; k < 3; k++)
            if (!isnan(vals[k])) lo = fmin(lo, vals[k]), hi = fmax(hi, vals[k]);
    }
    if (!isnan(c->reference)) lo = fmin(lo, c->reference), hi = fmax(hi, c->reference);
    if (lo > hi) lo = 0, hi = 1;
    if (lo > 0 && !c->value.log) lo = 0; /* bars start at zero */
    scale sx = {.p0 = ml, .p1 = W - mr};
    double t[MAX_TICKS];
    int nt = axis_ticks(&c->value, lo, hi, &sx, t);
    double base = to_px(&sx, sx.log ? sx.lo : fmax(sx.lo, fmin(0, sx.hi)));
    svg_begin(o, W, H, c->title);
    for (int i = 0; i < nt; i++) {
        double x = to_px(&sx, t[i]);
        rp_printf(o, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x, mt, x, H - mb);
        rp_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, H - mb + 18);
        tick_label(o, t[i]);
        rp_raw(o, "</text>");
    }
    for (size_t i = 0; i < c->ncat; i++) {
        double y0 = mt + group * (double)i + gap / 2;
        text_at(o, ml - 8, y0 + bar * (double)c->nseries / 2 + 4, "end", NULL, c->categories[i]);
        for (size_t k = 0; k < c->nseries; k++) {
            size_t j = i * c->nseries + k;
            double y = y0 + bar * (double)k, v = c->v[j];
            if (isnan(v)) {
                text_at(o, base + 4, y + bar - 2, "start", "note", "n/a");
                continue;
            }
            double x = to_px(&sx, v);
            rp_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", fmin(x, base),
                      y + 1, fabs(x - base), bar - 2, rp_series_colour((int)k));
            rp_text(o, c->categories[i]);
            if (c->nseries > 1) {
                rp_raw(o, ", ");
                rp_text(o, c->series[k]);
            }
            rp_raw(o, ": ");
            rp_num(o, v);
            rp_raw(o, "</title></rect>");
            double xe = x;
            if (c->lo && c->hi && !isnan(c->lo[j]) && !isnan(c->hi[j])) {
                double a = to_px(&sx, c->lo[j]), b = to_px(&sx, c->hi[j]), m = y + bar / 2;
                rp_printf(o, "<path class=\"interval\" d=\"M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f\"/>", a, m, b,
                          a, m - 4, m + 4, b, m - 4, m + 4);
                xe = fmax(xe, b);
            }
            rp_printf(o, "<text class=\"value\" x=\"%.1f\" y=\"%.1f\">", xe + 4, y + bar - 2);
            rp_num(o, v);
            rp_raw(o, "</text>");
        }
    }
    rp_printf(o, "<path class=\"axis\" d=\"M%.1f %.1fV%.1fH%.1f\"/>", base, mt, H - mb, W - mr);
    if (!isnan(c->reference)) {
        double x = to_px(&sx, c->reference);
        rp_printf(o, "<line class=\"reference\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x, mt - 4, x,
                  H - mb);
        if (c->reference_label) text_at(o, x + 4, mt - 6, "start", "note", c->reference_label);
    }
    text_at(o, ml + (W - mr - ml) / 2, H - 10, "middle", "label", c->value.label);
    if (c->nseries > 1) legend(o, W - mr, 24, c->series, c->nseries, 0);
    svg_end(o);
}

/* ---- heat maps and image grids ------------------------------------------------------------------- */

static void colour_of(double t, int diverging, char out[8]) {
    unsigned char rgb[3];
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    if (diverging) { /* blue, white, red */
        static const double a[3] = {59, 76, 192}, w[3] = {247, 247, 247}, b[3] = {180, 4, 38};
        for (int k = 0; k < 3; k++) {
            double v = t < 0.5 ? a[k] + (w[k] - a[k]) * (t / 0.5) : w[k] + (b[k] - w[k]) * ((t - 0.5) / 0.5);
            rgb[k] = (unsigned char)lround(v);
        }
    } else {
        ap_viridis(t, rgb);
    }
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

/* Every k-th index is labelled, k from 1 2 5 10 20 ..., so labels on
 * cells of this size do not overlap. */
static int label_every(double cell) {
    static const int k[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++)
        if (cell * k[i] >= 16) return k[i];
    return 1000;
}

/* Row and column labels (indices, or names) and the axis labels around a
 * grid of cells. */
static void grid_axes(rp_out *o, double ml, double mt, double cell, int rows, int cols, const char *row_label,
                      const char *col_label, const char *const *row_names, const char *const *col_names) {
    int kr = row_names ? 1 : label_every(cell), kc = col_names ? 1 : label_every(cell);
    for (int r = 0; r < rows; r += kr) {
        rp_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", ml - 5, mt + cell * (r + 0.5) + 4);
        if (row_names) rp_text(o, row_names[r]);
        else rp_printf(o, "%d", r);
        rp_raw(o, "</text>");
    }
    for (int c = 0; c < cols; c += kc) {
        rp_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", ml + cell * (c + 0.5),
                  mt + cell * rows + 15);
        if (col_names) rp_text(o, col_names[c]);
        else rp_printf(o, "%d", c);
        rp_raw(o, "</text>");
    }
    if (col_label) text_at(o, ml + cell * cols / 2, mt + cell * rows + 34, "middle", "label", col_label);
    if (row_label) y_label(o, 14, mt + cell * rows / 2, row_label);
}

static const char *category_colour(const rp_categories *cat, int i) {
    int k = cat->of[i];
    return k < 0 ? "#ffffff" : k < cat->n ? rp_series_colour(k) : "#9e9e9e";
}

/* Swatches and names of the categories (and "other" when some cell has it),
 * in a column from (x, y). */
static void category_legend(rp_out *o, const rp_categories *cat, size_t cells, double x, double y) {
    int other = 0;
    for (size_t i = 0; i < cells; i++) other |= cat->of[i] >= cat->n;
    for (int k = 0; k <= cat->n; k++) {
        if (k == cat->n && !other) break;
        double yy = y + 16.0 * k;
        rp_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\"/>", x, yy,
                  k < cat->n ? rp_series_colour(k) : "#9e9e9e");
        text_at(o, x + 20, yy + 9, "start", NULL, k < cat->n ? cat->names[k] : "other");
    }
}

static double category_legend_width(const rp_categories *cat) {
    double w = 40;
    for (int k = 0; k < cat->n; k++) w = fmax(w, 7.0 * (double)strlen(cat->names[k]));
    return w + 30;
}

static double grid_cell(int rows, int cols, double max_w, double max_h, double lo, double hi) {
    double cell = fmin(floor(max_w / cols), floor(max_h / rows));
    return fmax(lo, fmin(hi, cell));
}

void rp_svg_heatmap(rp_out *o, const rp_heatmap *c) {
    const double ml = 56, mt = 34, mb = 46;
    const double cell = grid_cell(c->rows, c->cols, 620, 640, 4, 28);
    const double gw = cell * c->cols, gh = cell * c->rows, legend_x = ml + gw + 24;
    const double W = fmax(legend_x + (c->cat.of ? category_legend_width(&c->cat) : 110), title_width(c->title));
    const double H = mt + fmax(gh, c->cat.of ? 16.0 * (c->cat.n + 1) : fmin(fmax(gh, 100), 220) + 40) + mb;
    size_t n = (size_t)c->rows * (size_t)c->cols;
    double lo = INFINITY, hi = -INFINITY;
    int any_nan = 0;
    for (size_t i = 0; i < n && !c->cat.of; i++) {
        if (isnan(c->v[i])) any_nan = 1;
        else lo = fmin(lo, c->v[i]), hi = fmax(hi, c->v[i]);
    }
    if (lo > hi) lo = 0, hi = 1;
    if (c->diverging) hi = fmax(fabs(lo), fabs(hi)), lo = -hi;
    if (!(hi > lo)) lo -= 1, hi += 1; /* a flat map */
    svg_begin(o, W, H, c->title);
    char colour[8];
    for (int r = 0; r < c->rows; r++)
        for (int k = 0; k < c->cols; k++) {
            size_t i = (size_t)r * c->cols + k;
            if (c->cat.of) snprintf(colour, sizeof colour, "%s", category_colour(&c->cat, (int)i));
            else if (isnan(c->v[i])) snprintf(colour, sizeof colour, "#dddddd");
            else colour_of((c->v[i] - lo) / (hi - lo), c->diverging, colour);
            rp_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", ml + cell * k,
                      mt + cell * r, cell, cell, colour);
            if (c->tooltip && c->tooltip[i]) {
                rp_text(o, c->tooltip[i]);
            } else {
                rp_printf(o, "%s %d, %s %d: ", c->row_label, r, c->col_label, k);
                rp_num(o, c->v[i]);
            }
            rp_raw(o, "</title></rect>");
        }
    grid_axes(o, ml, mt, cell, c->rows, c->cols, c->row_label, c->col_label, NULL, NULL);
    if (c->cat.of) {
        category_legend(o, &c->cat, n, legend_x, mt);
        svg_end(o);
        return;
    }
    /* the colour legend: a vertical ramp from lo (bottom) to hi (top) */
    int id = ++o->next_id;
    double lh = fmin(fmax(gh, 100), 220);
    rp_printf(o, "<linearGradient id=\"ramp%d\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">", id);
    for (int k = 0; k <= 10; k++) {
        colour_of(k / 10.0, c->diverging, colour);
        rp_printf(o, "<stop offset=\"%.1f\" stop-color=\"%s\"/>", k / 10.0, colour);
    }
    rp_printf(o, "</linearGradient><rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"url(#ramp%d)\"/>",
              legend_x, mt, lh, id);
    double marks[3] = {hi, (lo + hi) / 2, lo};
    for (int k = 0; k < 3; k++) {
        double y = mt + lh * k / 2.0;
        rp_printf(o, "<text x=\"%.1f\" y=\"%.1f\">", legend_x + 20, y + 4);
        rp_num(o, marks[k]);
        rp_raw(o, "</text>");
    }
    text_at(o, legend_x, mt + lh + 18, "start", "note", c->value_label);
    if (any_nan) {
        rp_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"#dddddd\"/>", legend_x,
                  mt + lh + 26);
        text_at(o, legend_x + 20, mt + lh + 35, "start", "note", "no value");
    }
    svg_end(o);
}

void rp_svg_tiles(rp_out *o, const rp_tiles *c) {
    double ml = 56, label_w = 0, col_w = 0;
    for (int r = 0; c->row_names && r < c->rows; r++) label_w = fmax(label_w, 7.0 * (double)strlen(c->row_names[r]));
    for (int k = 0; c->col_names && k < c->cols; k++) col_w = fmax(col_w, 7.0 * (double)strlen(c->col_names[k]) + 10);
    ml = fmax(ml, label_w + 12);
    /* small patterns are shown enlarged (pixelated), and columns as wide as their names */
    const double mt = 34, mb = 46, cell = fmax(fmax(c->tile + c->gap, 40), col_w);
    const double px = cell / (c->tile + c->gap); /* display units per image pixel */
    const double legend_x = ml + cell * c->cols + 16;
    const double W = fmax(legend_x + (c->cat.of ? category_legend_width(&c->cat) : 0), title_width(c->title));
    const double H = mt + fmax(cell * c->rows, c->cat.of ? 16.0 * (c->cat.n + 1) : 0) + mb;
    svg_begin(o, W, H, c->title);
    rp_printf(o, "<image x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" href=\"data:image/png;base64,", ml, mt,
              cell * c->cols, cell * c->rows);
    rp_base64(o, c->png, c->png_len);
    rp_raw(o, "\"/>");
    for (int r = 0; (c->cat.of || c->tooltip) && r < c->rows; r++)
        for (int k = 0; k < c->cols; k++) {
            size_t i = (size_t)r * c->cols + k;
            const char *stroke = c->cat.of ? category_colour(&c->cat, (int)i) : "none";
            rp_printf(o, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" stroke=\"%s\">",
                      ml + cell * k + 0.5, mt + cell * r + 0.5, (c->tile + c->gap / 2.0) * px, (c->tile + c->gap / 2.0) * px,
                      stroke);
            if (c->tooltip && c->tooltip[i]) {
                rp_raw(o, "<title>");
                rp_text(o, c->tooltip[i]);
                rp_raw(o, "</title>");
            }
            rp_raw(o, "</rect>");
        }
    grid_axes(o, ml, mt, cell, c->rows, c->cols, c->row_label, c->col_label, c->row_names, c->col_names);
    if (c->cat.of) category_legend(o, &c->cat, (size_t)c->rows * c->cols, legend_x, mt);
    svg_end(o);
}

/* ---- pattern thumbnails -------------------------------------------------------------------------- */

void rp_thumb_size(int N, int target, int *b, int *t) {
    *b = (N + target - 1) / target;
    *t = (N + *b - 1) / *b;
}

void rp_thumbnail(const float *P, int N, int b, unsigned char *rgb, size_t stride, float *block) {
    int t = (N + b - 1) / b;
    double m = 0;
    for (int i = 0; i < t; i++)
        for (int j = 0; j < t; j++) {
            double sum = 0;
            int cnt = 0;
            for (int y = i * b; y < (i + 1) * b && y < N; y++)
                for (int x = j * b; x < (j + 1) * b && x <= y; x++) sum += P[(size_t)y * N + x], cnt++;
            block[i * t + j] = cnt ? (float)(sum / (b * b)) : -1.0f;
            if (cnt && sum > 0 && log(block[i * t + j]) < m) m = log(block[i * t + j]);
        }
    for (int i = 0; i < t; i++)
        for (int j = 0; j < t; j++) {
            unsigned char *px = rgb + (size_t)i * stride + 3 * (size_t)j;
            float v = block[i * t + j];
            if (v < 0) px[0] = px[1] = px[2] = 255;
            else ap_viridis(v > 0 ? (m < 0 ? (log(v) - m) / -m : 1.0) : 0.0, px);
        }
}
