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

#endif
