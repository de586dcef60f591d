/* Inside the interventions: the experiment's plan, scenarios and outcomes,
 * shared by the driver (run.c) and the writers of its outputs (output.c). */
#ifndef APMAE_INTERVENE_INTERNAL_H
#define APMAE_INTERVENE_INTERNAL_H

#include "apmae/intervene.h"

/* One (setting, n): the first n_heads of the setting's order. */
typedef struct iv_run {
    ap_iv_setting setting;
    int n;           /* as asked, after capping at L*H */
    int n_heads;     /* min(n, heads the setting has) */
    const int *heads; /* [n_heads] l*H + h, in the order taken (points into the setting's order) */
    int set;         /* its distinct head set: runs with equal sets share one pass */
    int first_layer; /* lowest layer among its heads */
} iv_run;

typedef struct iv_scenario {
    char *id;
    int64_t where; /* sample index in the store, or line (1-based) of the scenarios file */
    int32_t label;
    int32_t *ids;
    int T;
} iv_scenario;

typedef struct iv_exp {
    const ap_intervene_opts *o;
    const ap_lm *lm;
    int L, H, P;
    ap_head_shap *shap; /* [P] */
    int *order[AP_IV_SETTINGS];
    int navail[AP_IV_SETTINGS];
    int64_t *n; /* the n values run, ascending */
    int nn;
    iv_run *runs;
    int nruns;
    uint8_t *sets; /* [nsets, P] masks */
    int nsets;
    iv_scenario *sc;
    int64_t nsc;
    int max_T;
    /* store scenarios: how many recomputed baselines disagree with the store's pred_id */
    int64_t store_disagree;
    /* fresh draw: scenarios of the task read, and those left out as already in the store */
    int64_t drawn_read, drawn_in_store;
    int32_t *base_pred; /* [nsc] */
    int32_t *pred;      /* [nsc, nsets] */
} iv_exp;

/* The outcome of run r over the scenarios. */
typedef struct iv_outcome {
    int64_t before, after; /* correct scenarios */
    int64_t to_incorrect, to_correct;
    double mcnemar_p; /* exact two-sided binomial test of the flips */
} iv_outcome;
void iv_outcome_of(const iv_exp *x, int r, iv_outcome *out);

/* Outputs (output.c). */
ap_status iv_write_outputs(const iv_exp *x, const ap_intervene_report *rep, ap_error *err);

#endif
