/* apmae/classify.h — predicting from a sample's per-head cluster ids alone
 * whether the model's completion was correct, and ranking the heads by
 * their SHAP contributions (docs/analysis.md "Classify").
 *
 * Three layers:
 *   - ap_gbt_*: gradient-boosted trees over categorical features through
 *     XGBoost's C API (hist trees, native categorical splits), with an
 *     early-stopping loop and TreeSHAP contributions;
 *   - ap_classify: the evaluation protocol on one in-memory data set (cluster
 *     ids [n, L*H], correctness [n], the LM's max softmax probability [n]):
 *     stratified test split, early stopping, baselines, interval, repeated
 *     stratified K-fold cross-validation, SHAP per head;
 *   - ap_classify_store: per task and pooled over a store's /clusters/labels,
 *     writing results.json, CSV tables and SHAP head maps.
 *
 * Features: cluster id c >= 0 becomes category c + 1, noise (-1) category 0.
 * Everything is deterministic for a seed and a thread count. */
#ifndef APMAE_CLASSIFY_H
#define APMAE_CLASSIFY_H

#include "apmae/base.h"

/* ---- Gradient-boosted trees (XGBoost) --------------------------------------------------------- */

typedef struct ap_gbt_params {
    int max_rounds;       /* boosting rounds at most (1000) */
    int max_depth;        /* (6) */
    double learning_rate; /* eta (0.1) */
    int early_stopping;   /* stop after this many rounds without a lower eval logloss (25) */
    int nthread;          /* XGBoost threads; 0 = ap_num_threads() */
    uint64_t seed;
} ap_gbt_params;
void ap_gbt_params_default(ap_gbt_params *p);

/* A booster trained with early stopping; predictions use its rounds
 * 0..best_iteration. */
typedef struct ap_gbt ap_gbt;

/* Train on rows train[0..n_train) of the cluster ids x [*, F] (int32, -1 =
 * noise) with targets y (0/1), evaluating the logloss on rows
 * eval[0..n_eval) after every round (n_eval 0: no early stopping, all
 * max_rounds are kept). */
ap_status ap_gbt_train(const int32_t *x, const uint8_t *y, int F, const int64_t *train, int64_t n_train,
                       const int64_t *eval, int64_t n_eval, const ap_gbt_params *p, ap_gbt **out, ap_error *err);
/* The round with the lowest eval logloss (0-based; the first of equals). */
int ap_gbt_best_iteration(const ap_gbt *m);
/* Rounds trained (best_iteration + 1 + the rounds early stopping waited). */
int ap_gbt_rounds(const ap_gbt *m);
/* Raw margins (log-odds of "correct") of rows[0..n) of x: margin [n]. */
ap_status ap_gbt_margin(ap_gbt *m, const int32_t *x, int F, const int64_t *rows, int64_t n, float *margin,
                        ap_error *err);
/* TreeSHAP contributions of rows[0..n) of x: contribs [n, F + 1], the last
 * column the bias; each row sums to the row's margin. */
ap_status ap_gbt_contribs(ap_gbt *m, const int32_t *x, int F, const int64_t *rows, int64_t n, float *contribs,
                          ap_error *err);
void ap_gbt_free(ap_gbt *m);

/* ---- Splits, intervals, baselines ------------------------------------------------------------- */

/* Stratified split of n samples with targets y: in_test[i] = 1 for
 * round(fraction * n_c) samples of each class c, drawn with the seed. */
ap_status ap_stratified_split(const uint8_t *y, int64_t n, double fraction, uint64_t seed, uint8_t *in_test,
                              ap_error *err);
/* Stratified K-fold assignment: fold[i] in 0..K-1, each class dealt round
 * robin over the folds in a seeded random order. */
ap_status ap_stratified_folds(const uint8_t *y, int64_t n, int K, uint64_t seed, int *fold, ap_error *err);
/* Wilson score interval of k successes in n trials at 95%. */
void ap_wilson_interval(int64_t k, int64_t n, double *lo, double *hi);
/* The LM-confidence baseline: the threshold t on the max softmax probability
 * that best separates rows[0..n) ("correct" iff p > t; t = 0 calls every
 * sample correct, t = 1 none; the lowest of equally good thresholds). */
ap_status ap_confidence_threshold(const float *max_prob, const uint8_t *y, const int64_t *rows, int64_t n,
                                  double *threshold, ap_error *err);

/* ---- The protocol on one data set ------------------------------------------------------------- */

typedef struct ap_classify_params {
    ap_gbt_params gbt;
    uint64_t seed;        /* split, folds and XGBoost (42) */
    double test_fraction; /* held-out test part (0.1) */
    double eval_fraction; /* early-stopping eval part of the training part (0.1) */
    int folds;            /* K of the cross-validation; 0 = none (5) */
    int repeats;          /* R: repetitions of the K-fold split (5) */
} ap_classify_params;
void ap_classify_params_default(ap_classify_params *p);

/* Fewest samples of each class a data set needs for the test split. */
#define AP_CLASSIFY_MIN_PER_CLASS 5

typedef struct ap_head_shap {
    int layer, head;
    /* over the test samples' contributions phi of this head (log-odds):
     * mean of max(phi, 0), of min(phi, 0), of phi and of |phi|;
     * mean_pos + mean_neg = mean_total. */
    double mean_pos, mean_neg, mean_total, mean_abs;
} ap_head_shap;

typedef struct ap_cv_result {
    int folds, repeats;
    double mean, sd;                  /* over the K*R held-out fold accuracies */
    double majority_mean, confidence_mean;
    double gain_mean, gain_sd;        /* per fold: accuracy - the confidence baseline's */
    int wins, losses;                 /* folds where the model beat / lost to the confidence baseline */
    /* SHAP per head over every fold's model on its held-out fold: each
     * sample counted once per repeat (n*R contributions per head), ranked
     * like ap_classify_result.heads; [nheads]. */
    ap_head_shap *heads;
    double shap_sum_error;
} ap_cv_result;

typedef struct ap_classify_result {
    int64_t n, n_correct, n_train, n_test;
    char skipped[256]; /* "" when the data set was classified, else why not */
    double accuracy, lo, hi; /* test accuracy and its 95% Wilson interval */
    double majority;           /* the training part's majority class, on the test part */
    double confidence, confidence_threshold;
    int64_t confusion[2][2];   /* [true][predicted], 0 = incorrect, 1 = correct */
    int best_iteration, rounds;
    double shap_sum_error;     /* max over test samples of |sum of contributions - margin| */
    int has_cv;
    char cv_skipped[256];      /* why there is no cross-validation ("" when folds = 0 or it ran) */
    ap_cv_result cv;
    int nheads;
    ap_head_shap *heads; /* [L*H], ranked by mean_abs descending (ties: layer, head ascending) */
} ap_classify_result;

/* Report progress: called after every fitted model (done of total). */
typedef void (*ap_classify_progress_fn)(void *ctx, int64_t done, int64_t total);

/* Models ap_classify fits for a data set (for a progress total). */
int64_t ap_classify_fits(const ap_classify_params *p);

/* The protocol on labels [n, L*H] (cluster ids, -1 = noise), correct [n]
 * and max_prob [n]. A data set too small or with one class only is not an
 * error: out->skipped says why. */
ap_status ap_classify(const int32_t *labels, const uint8_t *correct, const float *max_prob, int64_t n, int L, int H,
                      const ap_classify_params *p, ap_classify_progress_fn progress, void *ctx,
                      ap_classify_result *out, ap_error *err);
void ap_classify_result_free(ap_classify_result *r);

/* The SHAP head map of heads [nheads = L*H] as a PNG: three layers x heads
 * panels (mean positive, mean negative, mean total) on one diverging colour
 * scale, symmetric about 0, with a labelled colour bar; title on top. */
ap_status ap_shap_head_map_png(const char *path, const char *title, const ap_head_shap *heads, int nheads, int L,
                               int H, ap_error *err);

/* ---- Over a store ----------------------------------------------------------------------------- */

typedef struct ap_classify_opts {
    const char *store;   /* a store with /clusters/labels */
    const char *out_dir; /* created if missing */
    const char *tasks;   /* "all" or a comma-separated list of the store's tasks */
    ap_classify_params params;
} ap_classify_opts;

/* Classify each selected task and all of them pooled ("all"); write
 * OUT/results.json, OUT/summary.csv, OUT/heads_<task>.csv and
 * OUT/shap_<task>.png (docs/analysis.md). */
ap_status ap_classify_store(const ap_classify_opts *o, ap_error *err);

#endif
