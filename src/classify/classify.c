/* The classification protocol on one data set (docs/analysis.md
 * "Classify"): a stratified test split, a model trained with early stopping
 * on part of the training part, its test accuracy beside the majority and
 * LM-confidence baselines, SHAP per head on the test part, and repeated
 * stratified K-fold cross-validation of the same procedure. */
#include "apmae/classify.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ap_classify_params_default(ap_classify_params *p) {
    ap_gbt_params_default(&p->gbt);
    p->seed = 42;
    p->test_fraction = 0.1;
    p->eval_fraction = 0.1;
    p->folds = 5;
    p->repeats = 5;
}

int64_t ap_classify_fits(const ap_classify_params *p) { return 1 + (p->folds > 0 ? (int64_t)p->folds * p->repeats : 0); }

typedef struct dataset {
    const int32_t *x; /* [n, F] */
    const uint8_t *y;
    const float *max_prob;
    int64_t n;
    int F;
} dataset;

/* One model fitted on a training part and scored on a test part. */
typedef struct outcome {
    double accuracy, majority, confidence, threshold;
    int64_t confusion[2][2];
    int best_iteration, rounds;
} outcome;

/* Split train rows into the rows the trees are fitted on and the
 * early-stopping eval rows (stratified, eval_fraction of each class). */
static ap_status split_eval(const dataset *d, const int64_t *train, int64_t ntr, double fraction, uint64_t seed,
                            int64_t *fit, int64_t *nfit, int64_t *eval, int64_t *neval, ap_error *err) {
    uint8_t *y = ap_malloc((size_t)ntr + 1, err), *in_eval = ap_malloc((size_t)ntr + 1, err);
    ap_status st = y && in_eval ? AP_OK : AP_ERR_NOMEM;
    for (int64_t i = 0; st == AP_OK && i < ntr; i++) y[i] = d->y[train[i]];
    if (st == AP_OK) st = ap_stratified_split(y, ntr, fraction, seed, in_eval, err);
    *nfit = *neval = 0;
    for (int64_t i = 0; st == AP_OK && i < ntr; i++) {
        if (in_eval[i]) eval[(*neval)++] = train[i];
        else fit[(*nfit)++] = train[i];
    }
    free(y);
    free(in_eval);
    return st;
}

/* Fit on train (with its own early-stopping split), score on test. The
 * model is handed back through keep when keep is not NULL. */
static ap_status fit_and_score(const dataset *d, const int64_t *train, int64_t ntr, const int64_t *test, int64_t nte,
                               const ap_classify_params *p, uint64_t seed, outcome *o, ap_gbt **keep,
                               ap_error *err) {
    memset(o, 0, sizeof *o);
    int64_t *fit = ap_malloc((size_t)ntr * sizeof *fit, err), *eval = ap_malloc((size_t)ntr * sizeof *eval, err);
    float *margin = ap_malloc((size_t)nte * sizeof *margin, err);
    ap_gbt *m = NULL;
    int64_t nfit = 0, neval = 0;
    ap_status st = fit && eval && margin ? AP_OK : AP_ERR_NOMEM;
    if (st == AP_OK) st = split_eval(d, train, ntr, p->eval_fraction, ap_hash_mix(seed, 0xe7a1), fit, &nfit, eval,
                                     &neval, err);
    if (st == AP_OK) st = ap_gbt_train(d->x, d->y, d->F, fit, nfit, eval, neval, &p->gbt, &m, err);
    if (st == AP_OK) st = ap_gbt_margin(m, d->x, d->F, test, nte, margin, err);
    if (st == AP_OK) st = ap_confidence_threshold(d->max_prob, d->y, train, ntr, &o->threshold, err);
    if (st == AP_OK) {
        int64_t train_correct = 0, hits = 0, majority_hits = 0, confident_hits = 0;
        for (int64_t i = 0; i < ntr; i++) train_correct += d->y[train[i]] != 0;
        int majority = 2 * train_correct >= ntr; /* a tie calls every sample correct */
        for (int64_t i = 0; i < nte; i++) {
            int truth = d->y[test[i]] != 0, pred = margin[i] > 0;
            o->confusion[truth][pred]++;
            hits += truth == pred;
            majority_hits += truth == majority;
            confident_hits += truth == (d->max_prob[test[i]] > o->threshold);
        }
        o->accuracy = (double)hits / (double)nte;
        o->majority = (double)majority_hits / (double)nte;
        o->confidence = (double)confident_hits / (double)nte;
        o->best_iteration = ap_gbt_best_iteration(m);
        o->rounds = ap_gbt_rounds(m);
    }
    free(fit);
    free(eval);
    free(margin);
    if (st == AP_OK && keep) *keep = m;
    else ap_gbt_free(m);
    return st;
}

static int by_mean_abs(const void *a, const void *b) {
    const ap_head_shap *x = a, *y = b;
    if (x->mean_abs != y->mean_abs) return x->mean_abs < y->mean_abs ? 1 : -1;
    if (x->layer != y->layer) return x->layer - y->layer;
    return x->head - y->head;
}

/* Sums of the SHAP figures per head over the samples seen so far. */
typedef struct shap_sums {
    int F;
    int64_t samples;
    double *pos, *neg, *abs; /* [F] each, one block */
    double max_sum_error;    /* largest |sum of a sample's contributions - its margin| */
} shap_sums;

static ap_status shap_sums_init(shap_sums *s, int F, ap_error *err) {
    *s = (shap_sums){.F = F, .pos = ap_calloc(3 * (size_t)F, sizeof *s->pos, err)};
    if (!s->pos) return AP_ERR_NOMEM;
    s->neg = s->pos + F;
    s->abs = s->neg + F;
    return AP_OK;
}

/* Add the contributions of model m on rows[0..n) of the data set. */
static ap_status shap_add(shap_sums *s, ap_gbt *m, const dataset *d, const int64_t *rows, int64_t n, ap_error *err) {
    const int F = d->F;
    float *phi = ap_malloc((size_t)n * (F + 1) * sizeof *phi, err), *margin = ap_malloc((size_t)n * sizeof *margin, err);
    ap_status st = phi && margin ? AP_OK : AP_ERR_NOMEM;
    if (st == AP_OK) st = ap_gbt_contribs(m, d->x, F, rows, n, phi, err);
    if (st == AP_OK) st = ap_gbt_margin(m, d->x, F, rows, n, margin, err);
    for (int64_t i = 0; st == AP_OK && i < n; i++) {
        const float *row = phi + (size_t)i * (F + 1);
        double sum = row[F]; /* the bias */
        for (int f = 0; f < F; f++) {
            double v = row[f];
            s->pos[f] += v > 0 ? v : 0;
            s->neg[f] += v < 0 ? v : 0;
            s->abs[f] += fabs(v);
            sum += v;
        }
        s->max_sum_error = fmax(s->max_sum_error, fabs(sum - margin[i]));
    }
    if (st == AP_OK) s->samples += n;
    free(phi);
    free(margin);
    return st;
}

/* The means per head, ranked: heads [F] (malloc'ed). */
static ap_status shap_rank(const shap_sums *s, int H, ap_head_shap **heads, ap_error *err) {
    ap_head_shap *h = ap_calloc((size_t)s->F, sizeof *h, err);
    if (!h) return AP_ERR_NOMEM;
    const double n = s->samples > 0 ? (double)s->samples : 1;
    for (int f = 0; f < s->F; f++)
        h[f] = (ap_head_shap){.layer = f / H,
                              .head = f % H,
                              .mean_pos = s->pos[f] / n,
                              .mean_neg = s->neg[f] / n,
                              .mean_total = (s->pos[f] + s->neg[f]) / n,
                              .mean_abs = s->abs[f] / n};
    qsort(h, (size_t)s->F, sizeof *h, by_mean_abs);
    *heads = h;
    return AP_OK;
}

/* The held-out test split: accuracy, interval, baselines, confusion, SHAP. */
static ap_status test_split(const dataset *d, int H, const ap_classify_params *p, ap_classify_result *out,
                            ap_error *err) {
    uint8_t *in_test = ap_malloc((size_t)d->n, err);
    int64_t *train = ap_malloc((size_t)d->n * sizeof *train, err), *test = ap_malloc((size_t)d->n * sizeof *test, err);
    ap_status st = in_test && train && test ? AP_OK : AP_ERR_NOMEM;
    if (st == AP_OK) st = ap_stratified_split(d->y, d->n, p->test_fraction, p->seed, in_test, err);
    int64_t ntr = 0, nte = 0;
    for (int64_t i = 0; st == AP_OK && i < d->n; i++) {
        if (in_test[i]) test[nte++] = i;
        else train[ntr++] = i;
    }
    if (st == AP_OK && (nte == 0 || ntr == 0))
        snprintf(out->skipped, sizeof out->skipped, "test fraction %g leaves the %s part of %lld samples empty",
                 p->test_fraction, nte == 0 ? "test" : "training", (long long)d->n);
    ap_gbt *m = NULL;
    outcome o;
    if (st == AP_OK && !out->skipped[0]) st = fit_and_score(d, train, ntr, test, nte, p, p->seed, &o, &m, err);
    if (st == AP_OK && !out->skipped[0]) {
        out->n_train = ntr;
        out->n_test = nte;
        out->accuracy = o.accuracy;
        ap_wilson_interval(o.confusion[0][0] + o.confusion[1][1], nte, &out->lo, &out->hi);
        out->majority = o.majority;
        out->confidence = o.confidence;
        out->confidence_threshold = o.threshold;
        memcpy(out->confusion, o.confusion, sizeof o.confusion);
        out->best_iteration = o.best_iteration;
        out->rounds = o.rounds;
        shap_sums sums;
        st = shap_sums_init(&sums, d->F, err);
        if (st == AP_OK) st = shap_add(&sums, m, d, test, nte, err);
        if (st == AP_OK) st = shap_rank(&sums, H, &out->heads, err);
        if (st == AP_OK) {
            out->nheads = d->F;
            out->shap_sum_error = sums.max_sum_error;
        }
        free(sums.pos);
    }
    ap_gbt_free(m);
    free(in_test);
    free(train);
    free(test);
    return st;
}

static double mean_sd(const double *v, int n, double *sd) {
    double mean = 0, ss = 0;
    for (int i = 0; i < n; i++) mean += v[i];
    mean /= n;
    for (int i = 0; i < n; i++) ss += (v[i] - mean) * (v[i] - mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
    return mean;
}

/* Repeated stratified K-fold cross-validation of fit_and_score; the SHAP
 * contributions of every fold's model on its held-out fold go into sums. */
static ap_status cross_validate(const dataset *d, const ap_classify_params *p, ap_classify_progress_fn progress,
                                void *ctx, int64_t *done, int64_t total, ap_cv_result *cv, shap_sums *sums,
                                ap_error *err) {
    const int K = p->folds, R = p->repeats, nfit = K * R;
    int *fold = ap_malloc((size_t)d->n * sizeof *fold, err);
    int64_t *train = ap_malloc((size_t)d->n * sizeof *train, err), *test = ap_malloc((size_t)d->n * sizeof *test, err);
    double *acc = ap_malloc((size_t)nfit * 2 * sizeof *acc, err), *gain = acc ? acc + nfit : NULL;
    ap_status st = fold && train && test && acc ? AP_OK : AP_ERR_NOMEM;
    memset(cv, 0, sizeof *cv);
    cv->folds = K;
    cv->repeats = R;
    for (int r = 0; st == AP_OK && r < R; r++) {
        uint64_t seed = ap_hash_mix(p->seed, 0xc0ff + (uint64_t)r);
        st = ap_stratified_folds(d->y, d->n, K, seed, fold, err);
        for (int k = 0; st == AP_OK && k < K; k++) {
            int64_t ntr = 0, nte = 0;
            for (int64_t i = 0; i < d->n; i++) {
                if (fold[i] == k) test[nte++] = i;
                else train[ntr++] = i;
            }
            outcome o;
            ap_gbt *m = NULL;
            st = fit_and_score(d, train, ntr, test, nte, p, ap_hash_mix(seed, (uint64_t)k), &o, &m, err);
            if (st == AP_OK) st = shap_add(sums, m, d, test, nte, err);
            ap_gbt_free(m);
            if (st != AP_OK) break;
            int j = r * K + k;
            acc[j] = o.accuracy;
            gain[j] = o.accuracy - o.confidence;
            cv->majority_mean += o.majority / nfit;
            cv->confidence_mean += o.confidence / nfit;
            cv->wins += o.accuracy > o.confidence;
            cv->losses += o.accuracy < o.confidence;
            if (progress) progress(ctx, ++*done, total);
        }
    }
    if (st == AP_OK) {
        cv->mean = mean_sd(acc, nfit, &cv->sd);
        cv->gain_mean = mean_sd(gain, nfit, &cv->gain_sd);
    }
    free(fold);
    free(train);
    free(test);
    free(acc);
    return st;
}

static ap_status check_params(const ap_classify_params *p, ap_error *err) {
    if (!(p->test_fraction > 0 && p->test_fraction < 1))
        return ap_fail(err, AP_ERR_ARG, "--test-fraction %g: must lie in (0, 1)", p->test_fraction);
    if (!(p->eval_fraction >= 0 && p->eval_fraction < 1))
        return ap_fail(err, AP_ERR_ARG, "eval fraction %g: must lie in [0, 1)", p->eval_fraction);
    if (p->folds < 0 || p->folds == 1 || p->folds > 1000)
        return ap_fail(err, AP_ERR_ARG, "--folds %d: use 0 (no cross-validation) or 2..1000", p->folds);
    if (p->folds > 0 && (p->repeats < 1 || p->repeats > 1000))
        return ap_fail(err, AP_ERR_ARG, "--repeats %d: must lie in 1..1000", p->repeats);
    return AP_OK;
}

ap_status ap_classify(const int32_t *labels, const uint8_t *correct, const float *max_prob, int64_t n, int L, int H,
                      const ap_classify_params *p, ap_classify_progress_fn progress, void *ctx,
                      ap_classify_result *out, ap_error *err) {
    memset(out, 0, sizeof *out);
    ap_status st = check_params(p, err);
    if (st != AP_OK) return st;
    if (L < 1 || H < 1) return ap_fail(err, AP_ERR_ARG, "classify: %d layers x %d heads", L, H);
    const dataset d = {labels, correct, max_prob, n, L * H};
    out->n = n;
    for (int64_t i = 0; i < n; i++) out->n_correct += correct[i] != 0;
    const int64_t n_incorrect = n - out->n_correct, fewest = out->n_correct < n_incorrect ? out->n_correct : n_incorrect;
    const int64_t total = ap_classify_fits(p);
    int64_t done = 0;
    if (fewest == 0) {
        snprintf(out->skipped, sizeof out->skipped, "one class only: all %lld samples are %s", (long long)n,
                 out->n_correct ? "correct" : "incorrect");
    } else if (fewest < AP_CLASSIFY_MIN_PER_CLASS) {
        snprintf(out->skipped, sizeof out->skipped,
                 "too few samples: %lld correct and %lld incorrect; at least %d of each are needed",
                 (long long)out->n_correct, (long long)n_incorrect, AP_CLASSIFY_MIN_PER_CLASS);
    }
    if (out->skipped[0]) {
        if (progress) progress(ctx, total, total);
        return AP_OK;
    }
    st = test_split(&d, H, p, out, err);
    if (progress) progress(ctx, out->skipped[0] ? total : ++done, total);
    if (st != AP_OK || out->skipped[0] || p->folds == 0) return st;
    if (fewest < p->folds) {
        snprintf(out->cv_skipped, sizeof out->cv_skipped,
                 "too few samples for %d folds: %lld correct and %lld incorrect; each class needs one per fold",
                 p->folds, (long long)out->n_correct, (long long)n_incorrect);
        if (progress) progress(ctx, total, total);
        return AP_OK;
    }
    shap_sums sums;
    st = shap_sums_init(&sums, d.F, err);
    if (st == AP_OK) st = cross_validate(&d, p, progress, ctx, &done, total, &out->cv, &sums, err);
    if (st == AP_OK) st = shap_rank(&sums, H, &out->cv.heads, err);
    if (st == AP_OK) out->cv.shap_sum_error = sums.max_sum_error;
    free(sums.pos);
    out->has_cv = st == AP_OK;
    return st;
}

void ap_classify_result_free(ap_classify_result *r) {
    if (!r) return;
    free(r->heads);
    free(r->cv.heads);
    r->heads = r->cv.heads = NULL;
    r->nheads = 0;
}
