#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static ap_error g_err;

ap_error *tu_err(void) {
    ap_error_clear(&g_err);
    return &g_err;
}
ap_error *tu_last_error(void) { return &g_err; }

char *tu_tmp_path(const char *name) {
    static char dir[512];
    if (!dir[0]) {
        const char *base = getenv("APMAE_TMP");
        snprintf(dir, sizeof dir, "%s/unit-%ld", base && *base ? base : "/tmp/apmae-test", (long)getpid());
        char cmd[600];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
        if (system(cmd) != 0) fail_msg("cannot create %s", dir);
    }
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int tu_run(char **out, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    ap_buf b = {0};
    char chunk[4096];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) ap_buf_append(&b, chunk, r, NULL);
    int status = pclose(f);
    if (out) *out = b.data ? b.data : strdup("");
    else ap_buf_free(&b);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const char *tu_apmae_bin(void) {
    const char *b = getenv("APMAE_BIN");
    return b && *b ? b : "../build/bin/apmae";
}

void tu_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    if (len && fwrite(data, 1, len, f) != len) fail_msg("short write %s", path);
    fclose(f);
}

double tu_max_rel_err(const float *a, const float *b, size_t n, double floor) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double s = fabs((double)b[i]);
        double e = d / (s > floor ? s : floor);
        if (e > worst || isnan(e)) worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

double tu_max_abs_err(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

void tu_fill(ap_rng *r, double *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * (2 * ap_rng_uniform(r) - 1);
}

double *tu_dalloc(size_t n) {
    double *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

double tu_dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

double tu_grad_err(const double *a, const double *num, size_t n) {
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(num[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - num[i]) / fmax(fmax(fabs(num[i]), 1e-3 * scale), 1e-300);
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

void tu_numeric_grad(tu_loss_fn f, void *ctx, double *x, size_t n, double h, double *out) {
    static const double k_off[4] = {2, 1, -1, -2}, k_w[4] = {-1, 8, -8, 1};
    for (size_t i = 0; i < n; i++) {
        double keep = x[i], s = 0;
        for (int j = 0; j < 4; j++) {
            x[i] = keep + k_off[j] * h;
            s += k_w[j] * f(ctx);
        }
        x[i] = keep;
        out[i] = s / (12 * h);
    }
}

void tu_check_grad(const char *what, const double *analytic, const double *numeric, size_t n, double tol) {
    double e = tu_grad_err(analytic, numeric, n);
    print_message("  %-40s worst rel err %.2e\n", what, e);
    assert_true(e < tol);
}

void tu_adamw_reference(double *p, double *m, double *v, const float *g, size_t n, int64_t step, double lr,
                        double beta1, double beta2, double eps, double weight_decay) {
    double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    for (size_t i = 0; i < n; i++) {
        p[i] *= 1 - lr * weight_decay;
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * (double)g[i] * g[i];
        p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + eps);
    }
}

char *tu_fresh_store_path(const char *name) {
    char *p = tu_tmp_path(name), journal[4200];
    snprintf(journal, sizeof journal, "%s-journal", p);
    unlink(p);
    unlink(journal);
    return p;
}
