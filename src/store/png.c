/* Pattern images: log scaling like the AP-MAE scaler, the viridis colour
 * map, PNG through libpng's simplified API. */
#include "internal.h"

#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

/* viridis at t = 0, 1/8, ..., 1: the colour map's published 9-step anchors. */
static const unsigned char k_anchors[9][3] = {
    {0x44, 0x01, 0x54}, {0x47, 0x2d, 0x7b}, {0x3b, 0x52, 0x8b}, {0x2c, 0x72, 0x8e}, {0x21, 0x90, 0x8c},
    {0x27, 0xad, 0x81}, {0x5d, 0xc8, 0x63}, {0xaa, 0xdc, 0x32}, {0xfd, 0xe7, 0x25},
};

static double srgb_to_linear(double c) { return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4); }
static double linear_to_srgb(double c) {
    c = c < 0 ? 0 : c > 1 ? 1 : c;
    return c <= 0.0031308 ? 12.92 * c : 1.055 * pow(c, 1 / 2.4) - 0.055;
}

/* sRGB bytes -> Oklab (Ottosson's matrices). */
static void to_oklab(const unsigned char rgb[3], double lab[3]) {
    double r = srgb_to_linear(rgb[0] / 255.0), g = srgb_to_linear(rgb[1] / 255.0), b = srgb_to_linear(rgb[2] / 255.0);
    double l = cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b);
    double m = cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b);
    double s = cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b);
    lab[0] = 0.2104542553 * l + 0.7936177850 * m - 0.0040720468 * s;
    lab[1] = 1.9779984951 * l - 2.4285922050 * m + 0.4505937099 * s;
    lab[2] = 0.0259040371 * l + 0.7827717662 * m - 0.8086757660 * s;
}

static void from_oklab(const double lab[3], unsigned char rgb[3]) {
    double l = lab[0] + 0.3963377774 * lab[1] + 0.2158037573 * lab[2];
    double m = lab[0] - 0.1055613458 * lab[1] - 0.0638541728 * lab[2];
    double s = lab[0] - 0.0894841775 * lab[1] - 1.2914855480 * lab[2];
    l = l * l * l;
    m = m * m * m;
    s = s * s * s;
    double lin[3] = {4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
                     -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
                     -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s};
    for (int c = 0; c < 3; c++) rgb[c] = (unsigned char)lround(255.0 * linear_to_srgb(lin[c]));
}

void ap_viridis(double t, unsigned char rgb[3]) {
    t = t < 0 || t != t ? 0 : t > 1 ? 1 : t;
    double x = t * 8;
    int k = x >= 8 ? 7 : (int)x;
    double f = x - k, a[3], b[3], mix[3];
    to_oklab(k_anchors[k], a);
    to_oklab(k_anchors[k + 1], b);
    for (int c = 0; c < 3; c++) mix[c] = a[c] + f * (b[c] - a[c]);
    from_oklab(mix, rgb);
}

void ap_pattern_render(const float *P, int N, int zoom, unsigned char *rgb, size_t stride) {
    /* The scaler's m: the smallest log of a non-zero entry of the triangle. */
    double m = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++) {
            float p = P[(size_t)i * N + j];
            if (p > 0 && log(p) < m) m = log(p);
        }
    unsigned char lut[256][3];
    for (int v = 0; v < 256; v++) ap_viridis(v / 255.0, lut[v]);
    size_t W = (size_t)N * (size_t)zoom;
    for (int i = 0; i < N; i++) {
        unsigned char *row = rgb + (size_t)i * zoom * stride;
        for (int j = 0; j < N; j++) {
            static const unsigned char white[3] = {255, 255, 255};
            const unsigned char *c = white;
            if (j <= i) {
                float p = P[(size_t)i * N + j];
                double t = p > 0 ? (m < 0 ? (log(p) - m) / -m : 1.0) : 0.0;
                c = lut[(int)lround(255 * (t < 0 ? 0 : t > 1 ? 1 : t))];
            }
            for (int z = 0; z < zoom; z++) memcpy(row + 3 * ((size_t)j * zoom + z), c, 3);
        }
        for (int z = 1; z < zoom; z++) memcpy(row + z * stride, row, 3 * W);
    }
}

ap_status ap_pattern_write_png(const char *path, const float *P, int N, int zoom, ap_error *err) {
    if (N < 1 || zoom < 1 || (size_t)N * (size_t)zoom > 1 << 15)
        return ap_fail(err, AP_ERR_ARG, "%s: cannot draw a %dx%d pattern at zoom %d", path, N, N, zoom);
    size_t W = (size_t)N * (size_t)zoom, stride = 3 * W;
    unsigned char *pix = ap_malloc(stride * W, err);
    if (!pix) return err ? err->code : AP_ERR_NOMEM;
    ap_pattern_render(P, N, zoom, pix, stride);
    ap_status st = ap_png_write_rgb(path, pix, (int)W, (int)W, err);
    free(pix);
    return st;
}

ap_status ap_png_encode_rgb(const unsigned char *rgb, int W, int H, void **png, size_t *len, ap_error *err) {
    *png = NULL;
    *len = 0;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)W;
    img.height = (png_uint_32)H;
    img.format = PNG_FORMAT_RGB;
    png_alloc_size_t size = 0; /* first call: the size; second: the bytes */
    ap_status st = AP_OK;
    void *mem = NULL;
    if (!png_image_write_to_memory(&img, NULL, &size, 0, rgb, 3 * W, NULL))
        st = ap_fail(err, AP_ERR_INTERNAL, "PNG encoding of a %dx%d image failed: %s", W, H, img.message);
    else if (!(mem = ap_malloc(size, err)))
        st = AP_ERR_NOMEM;
    else if (!png_image_write_to_memory(&img, mem, &size, 0, rgb, 3 * W, NULL))
        st = ap_fail(err, AP_ERR_INTERNAL, "PNG encoding of a %dx%d image failed: %s", W, H, img.message);
    png_image_free(&img);
    if (st == AP_OK) {
        *png = mem;
        *len = size;
    } else {
        free(mem);
    }
    return st;
}

ap_status ap_png_write_rgb(const char *path, const unsigned char *rgb, int W, int H, ap_error *err) {
    void *png;
    size_t len;
    ap_status st = ap_png_encode_rgb(rgb, W, H, &png, &len, err);
    if (st == AP_OK) st = ap_write_file_atomic(path, png, len, err);
    else ap_error_prefix(err, "%s", path);
    free(png);
    return st;
}
