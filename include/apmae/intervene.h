/* apmae/intervene.h — switching heads off by their SHAP ranking and
 * measuring what happens to the model's completions (docs/analysis.md
 * "Interventions").
 *
 * Two layers:
 *   - ap_ablator: the model's prediction on one input with given heads
 *     ablated (their P·v zeroed before o_proj at every position), reusing
 *     the unablated pass's residual stream up to the first ablated layer;
 *   - ap_intervene: the experiment over a task's scenarios — head sets per
 *     setting and n from a SHAP ranking, flips and accuracy per (setting,
 *     n), resumable, written as intervene.json, CSV tables and a figure. */
#ifndef APMAE_INTERVENE_H
#define APMAE_INTERVENE_H

#include "apmae/base.h"
#include "apmae/classify.h"
#include "apmae/lm.h"

/* ---- Ablated passes -------------------------------------------------------------------------- */

typedef struct ap_ablator ap_ablator;

typedef struct ap_ablator_stats {
    int64_t baseline_passes;
    double baseline_seconds;
    int64_t passes;      /* ablated passes */
    double seconds;      /* wall time in them */
    int64_t layers_run;  /* layers the ablated passes computed ... */
    int64_t layers_full; /* ... and would have computed without reuse */
} ap_ablator_stats;

/* For inputs of up to max_T tokens. reuse: keep the unablated pass's
 * residual stream ([L, max_T, D] floats) and start each ablated pass at its
 * first ablated layer; 0: every pass runs from the embedding (the peer the
 * reuse is checked and timed against). */
ap_status ap_ablator_new(const ap_lm *lm, int max_T, int reuse, ap_ablator **out, ap_error *err);
void ap_ablator_free(ap_ablator *a);
/* The unablated pass over ids[0..T): *pred = argmax of the last position's
 * logits (the first of equal maxima). Sets the input of the ablated passes
 * that follow. */
ap_status ap_ablator_baseline(ap_ablator *a, const int32_t *ids, int T, int32_t *pred, ap_error *err);
/* A pass over the baseline's input with the heads of mask [L*H] (index
 * l*H + h) ablated; *pred as above. Bit for bit the same with and without
 * reuse, and the same as ap_lm_forward with that mask and last_only; an
 * empty mask reproduces the baseline's logits. */
ap_status ap_ablator_run(ap_ablator *a, const uint8_t *mask, int32_t *pred, ap_error *err);
/* The last pass's logits at the last position [V]. */
const float *ap_ablator_logits(const ap_ablator *a);
const ap_ablator_stats *ap_ablator_get_stats(const ap_ablator *a);

/* ---- Head sets from a SHAP ranking ---------------------------------------------------------- */

/* The per-head SHAP figures of one task (or "all") from the results.json
 * `apmae classify` writes: heads [L*H], head (l, h) at index l*H + h. cv = 0
 * takes the test split's figures ("heads"), 1 the cross-validation's
 * ("cv.heads"). Errors name the file: not classify's results, no such task
 * or it was skipped, another model's head count than L x H, a head missing
 * or listed twice, a figure that is not a finite number. */
ap_status ap_shap_load(const char *path, const char *task, int cv, int L, int H, ap_head_shap *heads,
                       ap_error *err);

typedef enum ap_iv_setting { AP_IV_POS_ONLY, AP_IV_NEG_ONLY, AP_IV_NEUTRAL, AP_IV_RANDOM, AP_IV_SETTINGS } ap_iv_setting;
/* "pos_only", "neg_only", "neutral", "random". */
const char *ap_iv_setting_name(ap_iv_setting s);

/* Heads whose |mean_total| is at most this count as neutral. */
#define AP_IV_NEUTRAL_MAX 1e-5

/* The order in which a setting takes heads (docs/analysis.md
 * "Interventions"): order[0..*navail) are head indices l*H + h; the set of
 * n heads is the first min(n, *navail). *navail is L*H except for neutral
 * (the heads with |mean_total| <= AP_IV_NEUTRAL_MAX).
 *   pos_only: mean_pos descending;  neg_only: mean_total ascending;
 *   neutral: the neutral heads in a seeded random order;  random: all heads
 *   in a seeded random order.
 * Equal figures are ordered by a seeded random permutation. Each setting
 * draws from its own stream derived from seed, so a setting's sets do not
 * depend on which other settings run. */
ap_status ap_iv_head_order(ap_iv_setting s, const ap_head_shap *heads, int L, int H, uint64_t seed, int *order,
                           int *navail, ap_error *err);
/* pos_only, neg_only: whether head h's figure is nonzero in the setting's
 * direction (mean_pos > 0, mean_total < 0), i.e. the ranking, not a tie at
 * zero, chose it. Other settings: 0. */
int ap_iv_head_ranked(ap_iv_setting s, const ap_head_shap *h);

/* ---- The experiment ---------------------------------------------------------------------------- */

typedef struct ap_intervene_opts {
    const char *model_dir;      /* the LM */
    const char *store_path;     /* the study store: the task's samples, or the ids a fresh draw leaves out */
    const char *shap_path;      /* results.json of apmae classify */
    const char *task;           /* a task of the store (not noise: it has no label) */
    const char *scenarios_path; /* NULL: the store's samples; else a fresh balanced draw from this JSONL */
    const char *out_dir;        /* created if missing */
    int target;                 /* K: K correct and K incorrect scenarios */
    const int64_t *n;           /* heads per set, each >= 1; capped at L*H, duplicates dropped */
    size_t n_count;
    unsigned settings;          /* bit s: run ap_iv_setting s */
    uint64_t seed;              /* scenario draw, ties, neutral and random draws */
    int shap_cv;                /* rank by classify's cross-validation figures, not the test split's */
    int no_reuse;               /* every ablated pass from the embedding (to check and time the reuse) */
} ap_intervene_opts;

typedef struct ap_intervene_report {
    int64_t scenarios;       /* 2K */
    int64_t resumed;         /* of them, done by an earlier run that was interrupted */
    int runs;                /* (setting, n) pairs */
    int head_sets;           /* distinct head sets among them: each is run once per scenario */
    int64_t baseline_correct;
    ap_ablator_stats stats;  /* this run's passes */
    double seconds;
} ap_intervene_report;

/* The whole experiment (docs/analysis.md "Interventions"): writes
 * OUT/intervene.json, OUT/intervene.csv, OUT/predictions.csv and
 * OUT/curves.svg. Per scenario, its predictions are appended to
 * OUT/intervene.partial.jsonl as they are made; a run killed at any moment
 * and started again with the same options continues after the last
 * scenario written there (removed once the outputs are written). */
ap_status ap_intervene(const ap_intervene_opts *o, ap_intervene_report *rep, ap_error *err);

#endif
