/* The 4-panel reconstruction figure of docs/mae.md as a PNG (libpng's
 * simplified API), coloured with the store's viridis map. */
#include "apmae/mae_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GAP 8 /* white pixels between panels */

static int zoom_of(const ap_mae_config *cfg) { return cfg->max_length >= 256 ? 1 : 256 / cfg->max_length; }

void ap_mae_figure_size(const ap_mae_config *cfg, int *width, int *height) {
    int side = cfg->max_length * zoom_of(cfg);
    *width = 4 * side + 3 * GAP;
    *height = side;
}

enum { SRC_NONE, SRC_TRUE, SRC_PRED }; /* what a pixel of a panel shows */

ap_status ap_mae_write_figure(const char *path, const ap_mae_config *cfg, const float *scaled,
                              const int64_t *masked, int M, const float *pred, ap_error *err) {
    const int N = cfg->max_length, p = cfg->patch_size, g = N / p, z = zoom_of(cfg);
    int W, H;
    ap_mae_figure_size(cfg, &W, &H);
    /* slot[k]: the prediction's index for masked patch k, -1 when visible */
    int *slot = ap_malloc((size_t)g * g * sizeof *slot, err);
    unsigned char *pix = ap_malloc((size_t)W * H * 3, err);
    if (!slot || !pix) {
        free(slot);
        free(pix);
        return AP_ERR_NOMEM;
    }
    for (int k = 0; k < g * g; k++) slot[k] = -1;
    for (int i = 0; i < M; i++) slot[masked[i]] = i;
    /* one colour scale for every panel: the scaled pattern's range */
    float lo = scaled[0], hi = scaled[0];
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++) {
            float v = scaled[(size_t)i * N + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    const double span = hi > lo ? hi - lo : 1;
    static const unsigned char white[3] = {255, 255, 255}, grey[3] = {160, 160, 160};
    /* per panel: what visible and masked patches show */
    static const int show[4][2] = {{SRC_TRUE, SRC_TRUE}, {SRC_TRUE, SRC_NONE}, {SRC_NONE, SRC_PRED}, {SRC_TRUE, SRC_PRED}};
    unsigned char lut[256][3];
    for (int v = 0; v < 256; v++) ap_viridis(v / 255.0, lut[v]);
    memset(pix, 255, (size_t)W * H * 3);
    for (int panel = 0; panel < 4; panel++)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                const unsigned char *c = white;
                if (j <= i) {
                    int k = (i / p) * g + j / p, s = slot[k];
                    int src = show[panel][s >= 0];
                    float v = src == SRC_TRUE ? scaled[(size_t)i * N + j]
                                              : src == SRC_PRED ? pred[((size_t)s * p + i % p) * p + j % p] : 0;
                    double t = (v - lo) / span;
                    c = src == SRC_NONE ? grey : lut[(int)lround(255 * (t > 0 ? (t < 1 ? t : 1) : 0))];
                }
                for (int y = 0; y < z; y++)
                    for (int x = 0; x < z; x++)
                        memcpy(pix + 3 * ((size_t)(i * z + y) * W + panel * (N * z + GAP) + j * z + x), c, 3);
            }
    ap_status st = ap_png_write_rgb(path, pix, W, H, err);
    free(slot);
    free(pix);
    return st;
}
