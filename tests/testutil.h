/* Shared helpers for the cmocka unit tests. */
#ifndef APMAE_TESTUTIL_H
#define APMAE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the three headers above first. */
#include <cmocka.h>

#include "apmae/base.h"

/* A fresh scratch directory for this test binary (under $APMAE_TMP or /tmp),
 * created on first use. name is appended: returns a malloc'ed path. */
char *tu_tmp_path(const char *name);
/* tu_tmp_path for a store: any store there, and its journal, removed. */
char *tu_fresh_store_path(const char *name);
/* Run a shell command; capture stdout into *out (malloc'ed, may be NULL) and
 * return the exit status (-1 if it did not exit normally). */
int tu_run(char **out, const char *fmt, ...) AP_PRINTF(2, 3);
/* Path of the apmae binary ($APMAE_BIN). */
const char *tu_apmae_bin(void);
/* Write bytes to a file (test setup). */
void tu_write_file(const char *path, const void *data, size_t len);
/* Largest |a-b| / max(|b|, floor) over n elements. */
double tu_max_rel_err(const float *a, const float *b, size_t n, double floor);
double tu_max_abs_err(const float *a, const float *b, size_t n);

/* Fail the test with the error message when st is not AP_OK. */
#define TU_OK(expr)                                                                    \
    do {                                                                               \
        ap_status tu_st_ = (expr);                                                     \
        if (tu_st_ != AP_OK) fail_msg("%s failed: %s", #expr, tu_last_error()->msg);  \
    } while (0)
/* Gradient checks in double precision. */
/* x[i] = scale * U(-1, 1) from r. */
void tu_fill(ap_rng *r, double *x, size_t n, double scale);
/* Zeroed doubles; fails the test when out of memory. */
double *tu_dalloc(size_t n);
double tu_dot(const double *a, const double *b, size_t n);
/* Worst |analytic - numeric| / max(|numeric|, 1e-3 * max|numeric| over the
 * tensor): near-zero entries are judged on the scale of their tensor. */
double tu_grad_err(const double *analytic, const double *numeric, size_t n);
/* d f / d x[i] for every i by the five-point stencil with step h (truncation
 * O(h^4), so rounding, not the formula, limits the accuracy). */
typedef double (*tu_loss_fn)(void *ctx);
void tu_numeric_grad(tu_loss_fn f, void *ctx, double *x, size_t n, double h, double *out);
/* Prints tu_grad_err of a gradient check under the name what; fails the test
 * when it is not below tol. */
void tu_check_grad(const char *what, const double *analytic, const double *numeric, size_t n, double tol);
/* One step of torch.optim.AdamW in double on p, m, v [n] from the gradients
 * g: the reference the AdamW tests compare with. step counts from 1. */
void tu_adamw_reference(double *p, double *m, double *v, const float *g, size_t n, int64_t step, double lr,
                        double beta1, double beta2, double eps, double weight_decay);

/* Tests pass tu_err() as the ap_error* argument so TU_OK can print it. */
ap_error *tu_err(void);
ap_error *tu_last_error(void);

#endif
