/* The SHAP head map (docs/analysis.md): three layers x heads panels, mean
 * positive, mean negative and mean total contribution per head, on one
 * diverging colour scale (blue negative, white zero, red positive) with a
 * labelled colour bar. Text is drawn with a built-in 5x7 pixel font. */
#include "apmae/classify.h"
#include "apmae/store.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Upper-case letters, digits and a little punctuation, one byte per row
 * (the low 5 bits, most significant = leftmost pixel). */
static const char k_glyph_chars[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-+._:/()=%,?";
static const unsigned char k_glyphs[][7] = {
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e},
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e},
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e},
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c},
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e},
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}, {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c},
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}, {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10},
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}, {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11},
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c},
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f},
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}, {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10},
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}, {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11},
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}, {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04},
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}, {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11},
    {0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04}, {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f},
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}, {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00},
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}, {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f},
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}, {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00},
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}, {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},
    {0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08}, {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04},
};

typedef struct canvas {
    unsigned char *rgb;
    int W, H;
} canvas;

static void fill(canvas *c, int x, int y, int w, int h, const unsigned char col[3]) {
    for (int j = y < 0 ? 0 : y; j < y + h && j < c->H; j++)
        for (int i = x < 0 ? 0 : x; i < x + w && i < c->W; i++) memcpy(c->rgb + 3 * ((size_t)j * c->W + i), col, 3);
}

/* Width in pixels of text at scale k: 6k per character, the last without its gap. */
static int text_width(const char *s, int k) { return s[0] ? (int)strlen(s) * 6 * k - k : 0; }

/* Upper-cased text with its top-left corner at (x, y); characters the font
 * lacks print as '?'. */
static void draw_text(canvas *c, int x, int y, const char *s, int k) {
    static const unsigned char ink[3] = {0, 0, 0};
    for (; *s; s++, x += 6 * k) {
        if (*s == ' ') continue;
        const char *at = strchr(k_glyph_chars, toupper((unsigned char)*s));
        const unsigned char *g = k_glyphs[at ? at - k_glyph_chars : (long)sizeof k_glyph_chars - 2];
        for (int row = 0; row < 7; row++)
            for (int col = 0; col < 5; col++)
                if (g[row] >> (4 - col) & 1) fill(c, x + col * k, y + row * k, k, k, ink);
    }
}

/* ColorBrewer's 11-class RdBu, reversed: dark blue (-1) .. white (0) .. dark red (+1). */
static void diverging(double t, unsigned char rgb[3]) {
    static const unsigned char anchors[11][3] = {
        {0x05, 0x30, 0x61}, {0x21, 0x66, 0xac}, {0x43, 0x93, 0xc3}, {0x92, 0xc5, 0xde}, {0xd1, 0xe5, 0xf0}, {0xf7, 0xf7, 0xf7},
        {0xfd, 0xdb, 0xc7}, {0xf4, 0xa5, 0x82}, {0xd6, 0x60, 0x4d}, {0xb2, 0x18, 0x2b}, {0x67, 0x00, 0x1f},
    };
    t = t != t ? 0 : t < -1 ? -1 : t > 1 ? 1 : t;
    double x = (t + 1) * 5;
    int k = x >= 10 ? 9 : (int)x;
    double f = x - k;
    for (int ch = 0; ch < 3; ch++)
        rgb[ch] = (unsigned char)lround(anchors[k][ch] + f * (anchors[k + 1][ch] - anchors[k][ch]));
}

enum { MARGIN = 12, PANEL_GAP = 28, BAR_H = 16 };

static int digits(int v) { return v >= 100 ? 3 : v >= 10 ? 2 : 1; }

ap_status ap_shap_head_map_png(const char *path, const char *title, const ap_head_shap *heads, int nheads, int L,
                               int H, ap_error *err) {
    if (L < 1 || H < 1 || nheads != L * H || L > 1000 || H > 1000)
        return ap_fail(err, AP_ERR_ARG, "%s: a SHAP head map needs L*H heads (got %d for %d x %d)", path, nheads, L, H);
    /* per panel: the grid of values, [3][L*H] */
    double *v = ap_malloc(sizeof *v * 3 * (size_t)L * H, err);
    if (!v) return AP_ERR_NOMEM;
    double vmax = 0;
    for (int i = 0; i < nheads; i++) {
        size_t f = (size_t)heads[i].layer * H + heads[i].head;
        v[f] = heads[i].mean_pos;
        v[(size_t)L * H + f] = heads[i].mean_neg;
        v[2 * (size_t)L * H + f] = heads[i].mean_total;
        vmax = fmax(vmax, fmax(heads[i].mean_pos, fmax(-heads[i].mean_neg, fabs(heads[i].mean_total))));
    }
    if (!(vmax > 0)) vmax = 1;
    const int big = L > H ? L : H, cell = big * 32 <= 240 ? 32 : 240 / big < 6 ? 6 : 240 / big;
    const int tick = cell >= 16 ? 2 : 1, step_row = (9 * tick + cell - 1) / cell,
              step_col = (6 * tick * digits(H - 1) + 4 + cell - 1) / cell;
    const int left = MARGIN + 6 * tick * digits(L - 1) + 6, pw = H * cell, ph = L * cell;
    const int top = MARGIN + 18 + 10 + 18 + 4 + 9 * tick + 2;
    const char *names[3] = {"mean positive", "mean negative", "mean total"};
    char lo_text[32], hi_text[32];
    snprintf(lo_text, sizeof lo_text, "-%.3g", vmax);
    snprintf(hi_text, sizeof hi_text, "+%.3g", vmax);
    const char *caption = "rows: layers. columns: heads. SHAP in log-odds of correct";
    int W = left + 3 * pw + 2 * PANEL_GAP + MARGIN, need = 0;
    for (int p = 0; p < 3; p++) need = need > text_width(names[p], 2) ? need : text_width(names[p], 2);
    if (pw < need) W = left + 3 * need + 2 * PANEL_GAP + MARGIN;
    const int panel_step = (pw > need ? pw : need) + PANEL_GAP;
    if (W < 2 * MARGIN + text_width(title, 2)) W = 2 * MARGIN + text_width(title, 2);
    if (W < 2 * MARGIN + text_width(caption, 1)) W = 2 * MARGIN + text_width(caption, 1);
    const int bar_y = top + ph + 14, Himg = bar_y + BAR_H + 6 + 14 + 10 + 7 + MARGIN;
    canvas c = {ap_malloc((size_t)W * Himg * 3, err), W, Himg};
    if (!c.rgb) {
        free(v);
        return AP_ERR_NOMEM;
    }
    memset(c.rgb, 255, (size_t)W * Himg * 3);
    static const unsigned char grid[3] = {200, 200, 200};
    draw_text(&c, MARGIN, MARGIN, title, 2);
    char num[16];
    for (int l = 0; l < L; l += step_row) {
        snprintf(num, sizeof num, "%d", l);
        draw_text(&c, left - 6 - text_width(num, tick), top + l * cell + (cell - 7 * tick) / 2, num, tick);
    }
    for (int p = 0; p < 3; p++) {
        const int x0 = left + p * panel_step;
        draw_text(&c, x0, MARGIN + 28, names[p], 2);
        for (int h = 0; h < H; h += step_col) {
            snprintf(num, sizeof num, "%d", h);
            draw_text(&c, x0 + h * cell + (cell - text_width(num, tick)) / 2, top - 9 * tick - 2, num, tick);
        }
        fill(&c, x0 - 1, top - 1, pw + 1, ph + 1, grid);
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++) {
                unsigned char col[3];
                diverging(v[(size_t)p * L * H + (size_t)l * H + h] / vmax, col);
                int gap = cell >= 8;
                fill(&c, x0 + h * cell, top + l * cell, cell - gap, cell - gap, col);
            }
    }
    /* colour bar under the panels, -vmax .. 0 .. +vmax */
    const int bar_w = 2 * panel_step + pw;
    for (int i = 0; i < bar_w; i++) {
        unsigned char col[3];
        diverging(2.0 * i / (bar_w - 1) - 1, col);
        fill(&c, left + i, bar_y, 1, BAR_H, col);
    }
    draw_text(&c, left, bar_y + BAR_H + 6, lo_text, 2);
    draw_text(&c, left + (bar_w - text_width("0", 2)) / 2, bar_y + BAR_H + 6, "0", 2);
    draw_text(&c, left + bar_w - text_width(hi_text, 2), bar_y + BAR_H + 6, hi_text, 2);
    draw_text(&c, MARGIN, bar_y + BAR_H + 6 + 14 + 10, caption, 1);
    ap_status st = ap_png_write_rgb(path, c.rgb, W, Himg, err);
    free(c.rgb);
    free(v);
    return st;
}
