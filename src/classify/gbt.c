/* Gradient-boosted trees over categorical features through XGBoost's C API:
 * hist trees with native categorical splits, binary logistic loss, an
 * early-stopping loop on the eval set's logloss (the C API has none), and
 * TreeSHAP contributions. tools/xgb_ref.py checks the same path through
 * XGBoost's Python package. */
#include "apmae/classify.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

struct ap_gbt {
    BoosterHandle booster;
    int best_iteration, rounds;
};

/* Cluster ids must stay exact as floats (XGBoost reads categories from
 * float features). */
#define MAX_CLUSTER_ID ((1 << 24) - 2)

void ap_gbt_params_default(ap_gbt_params *p) {
    *p = (ap_gbt_params){.max_rounds = 1000, .max_depth = 6, .learning_rate = 0.1, .early_stopping = 25, .seed = 42};
}

static ap_status xgb_fail(ap_error *err, const char *what) {
    return ap_fail(err, AP_ERR_INTERNAL, "XGBoost %s: %s", what, XGBGetLastError());
}

/* XGBoost's log lines (warnings at verbosity 1) go to apmae's debug log. */
static void xgb_log(const char *msg) { ap_debug("xgboost: %s", msg); }

static int nthread_of(const ap_gbt_params *p) { return p->nthread > 0 ? p->nthread : ap_num_threads(); }

/* Rows of x as a DMatrix of categorical features: cluster c -> category
 * c + 1, noise (-1) -> category 0. y may be NULL (prediction). */
static ap_status make_dmatrix(const int32_t *x, const uint8_t *y, int F, const int64_t *rows, int64_t n, int nthread,
                              DMatrixHandle *out, ap_error *err) {
    float *data = ap_malloc((size_t)n * F * sizeof *data, err);
    float *label = y ? ap_malloc((size_t)n * sizeof *label, err) : NULL;
    const char **types = ap_malloc((size_t)F * sizeof *types, err);
    ap_status st = AP_OK;
    if (!data || (y && !label) || !types) st = AP_ERR_NOMEM;
    for (int64_t i = 0; st == AP_OK && i < n; i++) {
        const int32_t *row = x + (size_t)rows[i] * F;
        for (int f = 0; f < F; f++) {
            if (row[f] < -1 || row[f] > MAX_CLUSTER_ID) {
                st = ap_fail(err, AP_ERR_RANGE, "sample %lld, feature %d: cluster id %d outside -1..%d",
                             (long long)rows[i], f, row[f], MAX_CLUSTER_ID);
                break;
            }
            data[(size_t)i * F + f] = (float)(row[f] + 1);
        }
        if (label) label[i] = y[rows[i]] ? 1.0f : 0.0f;
    }
    for (int f = 0; f < F && types; f++) types[f] = "c";
    *out = NULL;
    if (st == AP_OK && XGDMatrixCreateFromMat_omp(data, (bst_ulong)n, (bst_ulong)F, NAN, out, nthread) != 0)
        st = xgb_fail(err, "DMatrix");
    if (st == AP_OK && XGDMatrixSetStrFeatureInfo(*out, "feature_type", types, (bst_ulong)F) != 0)
        st = xgb_fail(err, "feature types");
    if (st == AP_OK && label && XGDMatrixSetFloatInfo(*out, "label", label, (bst_ulong)n) != 0)
        st = xgb_fail(err, "labels");
    if (st != AP_OK && *out) {
        XGDMatrixFree(*out);
        *out = NULL;
    }
    free(data);
    free(label);
    free(types);
    return st;
}

static ap_status set_params(BoosterHandle b, const ap_gbt_params *p, ap_error *err) {
    char depth[32], eta[32], nthread[32], seed[32];
    snprintf(depth, sizeof depth, "%d", p->max_depth);
    snprintf(eta, sizeof eta, "%.17g", p->learning_rate);
    snprintf(nthread, sizeof nthread, "%d", nthread_of(p));
    /* XGBoost's seed is a 32-bit int parameter. */
    snprintf(seed, sizeof seed, "%d", (int)(p->seed & 0x7fffffff));
    const char *kv[][2] = {
        {"booster", "gbtree"}, {"objective", "binary:logistic"}, {"tree_method", "hist"}, {"max_depth", depth},
        {"eta", eta},          {"eval_metric", "logloss"},       {"nthread", nthread},   {"seed", seed},
        {"verbosity", "1"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (XGBoosterSetParam(b, kv[i][0], kv[i][1]) != 0) return xgb_fail(err, kv[i][0]);
    return AP_OK;
}

/* The eval set's logloss after round it, as XGBoost reports it
 * ("[it]\teval-logloss:0.693147"): the value its Python early stopping
 * compares, so both stop at the same round. */
static ap_status eval_logloss(BoosterHandle b, int it, DMatrixHandle deval, double *out, ap_error *err) {
    const char *names[1] = {"eval"}, *text = NULL;
    DMatrixHandle dm[1] = {deval};
    if (XGBoosterEvalOneIter(b, it, dm, names, 1, &text) != 0) return xgb_fail(err, "evaluation");
    const char *at = strstr(text, "eval-logloss:");
    if (!at) return ap_fail(err, AP_ERR_INTERNAL, "XGBoost evaluation: no logloss in '%s'", text);
    *out = strtod(at + strlen("eval-logloss:"), NULL);
    return AP_OK;
}

static ap_status boost(ap_gbt *m, DMatrixHandle dtrain, DMatrixHandle deval, const ap_gbt_params *p, ap_error *err) {
    double best = INFINITY;
    for (int it = 0; it < p->max_rounds; it++) {
        if (XGBoosterUpdateOneIter(m->booster, it, dtrain) != 0) return xgb_fail(err, "training");
        m->rounds = it + 1;
        if (!deval) {
            m->best_iteration = it;
            continue;
        }
        double loss = INFINITY;
        ap_status st = eval_logloss(m->booster, it, deval, &loss, err);
        if (st != AP_OK) return st;
        if (loss < best) {
            best = loss;
            m->best_iteration = it;
        } else if (it - m->best_iteration >= p->early_stopping) {
            break;
        }
    }
    return AP_OK;
}

ap_status ap_gbt_train(const int32_t *x, const uint8_t *y, int F, const int64_t *train, int64_t n_train,
                       const int64_t *eval, int64_t n_eval, const ap_gbt_params *p, ap_gbt **out, ap_error *err) {
    *out = NULL;
    if (F < 1 || n_train < 1 || p->max_rounds < 1 || p->max_depth < 1 || !(p->learning_rate > 0) ||
        p->early_stopping < 1)
        return ap_fail(err, AP_ERR_ARG,
                       "gradient-boosted trees: need features, training rows, rounds, depth, learning rate and "
                       "early-stopping rounds > 0 (got %d features, %lld rows, %d rounds, depth %d, lr %g, %d)",
                       F, (long long)n_train, p->max_rounds, p->max_depth, p->learning_rate, p->early_stopping);
    XGBRegisterLogCallback(xgb_log);
    ap_gbt *m = ap_calloc(1, sizeof *m, err);
    if (!m) return AP_ERR_NOMEM;
    DMatrixHandle dtrain = NULL, deval = NULL;
    ap_status st = make_dmatrix(x, y, F, train, n_train, nthread_of(p), &dtrain, err);
    if (st == AP_OK && n_eval > 0) st = make_dmatrix(x, y, F, eval, n_eval, nthread_of(p), &deval, err);
    DMatrixHandle cache[2] = {dtrain, deval};
    if (st == AP_OK && XGBoosterCreate(cache, deval ? 2 : 1, &m->booster) != 0) st = xgb_fail(err, "booster");
    if (st == AP_OK) st = set_params(m->booster, p, err);
    if (st == AP_OK) st = boost(m, dtrain, deval, p, err);
    if (dtrain) XGDMatrixFree(dtrain);
    if (deval) XGDMatrixFree(deval);
    if (st != AP_OK) {
        ap_gbt_free(m);
        return st;
    }
    *out = m;
    return AP_OK;
}

int ap_gbt_best_iteration(const ap_gbt *m) { return m->best_iteration; }
int ap_gbt_rounds(const ap_gbt *m) { return m->rounds; }

/* Predict rows of x with rounds 0..best_iteration: type 1 = margins [n],
 * 2 = contributions [n, F + 1]. */
static ap_status predict(ap_gbt *m, int type, const int32_t *x, int F, const int64_t *rows, int64_t n, float *out,
                         size_t expect, ap_error *err) {
    if (n == 0) return AP_OK;
    bst_ulong nfeat = 0;
    if (XGBoosterGetNumFeature(m->booster, &nfeat) != 0) return xgb_fail(err, "features");
    if ((int)nfeat != F)
        return ap_fail(err, AP_ERR_ARG, "gradient-boosted trees: model has %d features, data %d", (int)nfeat, F);
    DMatrixHandle dm;
    ap_status st = make_dmatrix(x, NULL, F, rows, n, 1, &dm, err);
    if (st != AP_OK) return st;
    char config[160];
    snprintf(config, sizeof config,
             "{\"type\": %d, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": %d, "
             "\"strict_shape\": false}",
             type, m->best_iteration + 1);
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *res = NULL;
    if (XGBoosterPredictFromDMatrix(m->booster, dm, config, &shape, &dim, &res) != 0) {
        st = xgb_fail(err, "prediction");
    } else {
        size_t len = 1;
        for (bst_ulong d = 0; d < dim; d++) len *= (size_t)shape[d];
        if (len != expect)
            st = ap_fail(err, AP_ERR_INTERNAL, "XGBoost prediction: %zu values, expected %zu", len, expect);
        else memcpy(out, res, len * sizeof *out);
    }
    XGDMatrixFree(dm);
    return st;
}

ap_status ap_gbt_margin(ap_gbt *m, const int32_t *x, int F, const int64_t *rows, int64_t n, float *margin,
                        ap_error *err) {
    return predict(m, 1, x, F, rows, n, margin, (size_t)n, err);
}

ap_status ap_gbt_contribs(ap_gbt *m, const int32_t *x, int F, const int64_t *rows, int64_t n, float *contribs,
                          ap_error *err) {
    return predict(m, 2, x, F, rows, n, contribs, (size_t)n * (F + 1), err);
}

void ap_gbt_free(ap_gbt *m) {
    if (!m) return;
    if (m->booster) XGBoosterFree(m->booster);
    free(m);
}
