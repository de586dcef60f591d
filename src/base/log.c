/* Logging to stderr and the progress bar. */
#define _POSIX_C_SOURCE 200809L
#include "apmae/base.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static ap_log_level g_log_level = AP_LOG_INFO; /* the one process-wide setting */

void ap_log_set_level(ap_log_level level) { g_log_level = level; }
ap_log_level ap_log_get_level(void) { return g_log_level; }

void ap_log(ap_log_level level, const char *fmt, ...) {
    if (level > g_log_level) return;
    static const char *const tags[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "apmae: %s: ", tags[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double ap_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void format_duration(double s, char *out, size_t n) {
    if (s < 0 || s > 1e7) {
        snprintf(out, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(out, n, "%02ld:%02ld", t / 60, t % 60);
}

void ap_progress_begin(ap_progress *p, const char *label, int64_t total) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->t_start = ap_now();
    p->is_tty = isatty(STDERR_FILENO);
    p->last_decile = -1;
    p->active = g_log_level >= AP_LOG_INFO;
}

static void draw(ap_progress *p, const char *extra, int final) {
    double elapsed = ap_now() - p->t_start;
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 0.0;
    if (frac > 1) frac = 1;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0.0;
    char eta[32], el[32];
    format_duration(rate > 0 && p->total > 0 ? (double)(p->total - p->done) / rate : -1, eta, sizeof eta);
    format_duration(elapsed, el, sizeof el);
    if (p->is_tty) {
        char bar[31];
        int filled = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r\033[K%s [%s] %3d%% %lld/%lld %s<%s %s", p->label, bar, (int)(frac * 100),
                (long long)p->done, (long long)p->total, el, final ? "" : eta, extra ? extra : "");
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %3d%% %lld/%lld elapsed %s eta %s %s\n", p->label, (int)(frac * 100),
                (long long)p->done, (long long)p->total, el, final ? "00:00" : eta, extra ? extra : "");
    }
    fflush(stderr);
}

void ap_progress_update(ap_progress *p, int64_t done, const char *extra) {
    p->done = done;
    if (!p->active) return;
    double now = ap_now();
    if (p->is_tty) {
        if (now - p->t_last_draw < 0.1) return;
        p->t_last_draw = now;
        draw(p, extra, 0);
    } else {
        int decile = p->total > 0 ? (int)(10 * done / p->total) : 0;
        if (decile == p->last_decile) return;
        p->last_decile = decile;
        draw(p, extra, 0);
    }
}

void ap_progress_end(ap_progress *p, const char *extra) {
    if (!p->active) return;
    draw(p, extra, 1);
    p->active = 0;
}
