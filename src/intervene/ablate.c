/* Ablated forward passes of one input, reusing the unablated pass's residual
 * stream (docs/analysis.md "Interventions", "Cost"): heads ablated at layer
 * l and later cannot change what enters layer l, so a pass whose first
 * ablated head is in layer l starts there from the stream the unablated
 * pass left, and computes only the last position's logits. */
#include "apmae/intervene.h"

#include <stdlib.h>
#include <string.h>

struct ap_ablator {
    const ap_lm *lm;
    ap_lm_state *state;
    int reuse;
    int32_t *ids;     /* the input of the baseline pass [max_T] */
    int T;            /* 0 until a baseline pass */
    float *residuals; /* [L, max_T, D] the stream entering each layer (reuse only) */
    float *logits;    /* [V] of the last pass */
    ap_ablator_stats stats;
};

ap_status ap_ablator_new(const ap_lm *lm, int max_T, int reuse, ap_ablator **out, ap_error *err) {
    *out = NULL;
    const ap_lm_config *c = &lm->cfg;
    ap_ablator *a = ap_calloc(1, sizeof *a, err);
    if (!a) return AP_ERR_NOMEM;
    a->lm = lm;
    a->reuse = reuse;
    ap_status st = ap_lm_state_new(lm, max_T, &a->state, err);
    if (st) {
        free(a);
        return st;
    }
    size_t stream = (size_t)c->num_layers * (size_t)max_T * (size_t)c->hidden_size;
    a->ids = ap_malloc((size_t)max_T * sizeof *a->ids, err);
    a->logits = ap_malloc((size_t)c->vocab_size * sizeof *a->logits, err);
    a->residuals = reuse ? ap_malloc(stream * sizeof *a->residuals, err) : NULL;
    if (!a->ids || !a->logits || (reuse && !a->residuals)) {
        ap_ablator_free(a);
        return AP_ERR_NOMEM;
    }
    *out = a;
    return AP_OK;
}

void ap_ablator_free(ap_ablator *a) {
    if (!a) return;
    ap_lm_state_free(a->state);
    free(a->ids);
    free(a->residuals);
    free(a->logits);
    free(a);
}

static int32_t argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

ap_status ap_ablator_baseline(ap_ablator *a, const int32_t *ids, int T, int32_t *pred, ap_error *err) {
    a->T = 0;
    ap_lm_forward_opts fo = {.last_only = 1, .residuals_out = a->residuals};
    double t0 = ap_now();
    ap_status st = ap_lm_forward(a->lm, a->state, ids, T, &fo, a->logits, NULL, err);
    if (st) return st;
    a->stats.baseline_passes++;
    a->stats.baseline_seconds += ap_now() - t0;
    memcpy(a->ids, ids, (size_t)T * sizeof *ids);
    a->T = T;
    *pred = argmax(a->logits, a->lm->cfg.vocab_size);
    return AP_OK;
}

/* The first layer with an ablated head, or L when none is. */
static int first_ablated_layer(const uint8_t *mask, int L, int H) {
    for (int i = 0; i < L * H; i++)
        if (mask[i]) return i / H;
    return L;
}

ap_status ap_ablator_run(ap_ablator *a, const uint8_t *mask, int32_t *pred, ap_error *err) {
    if (a->T == 0) return ap_fail(err, AP_ERR_INTERNAL, "an ablated pass needs the baseline pass of its input first");
    const ap_lm_config *c = &a->lm->cfg;
    int first = first_ablated_layer(mask, c->num_layers, c->num_heads);
    /* Nothing ablated: the whole pass, which must reproduce the baseline. */
    int start = a->reuse && first < c->num_layers ? first : 0;
    ap_lm_forward_opts fo = {.ablate = mask,
                             .last_only = 1,
                             .start_layer = start,
                             .start_residual = a->reuse ? a->residuals + (size_t)start * a->T * c->hidden_size : NULL};
    double t0 = ap_now();
    ap_status st = ap_lm_forward(a->lm, a->state, a->ids, a->T, &fo, a->logits, NULL, err);
    if (st) return st;
    a->stats.passes++;
    a->stats.seconds += ap_now() - t0;
    a->stats.layers_run += c->num_layers - start;
    a->stats.layers_full += c->num_layers;
    *pred = argmax(a->logits, c->vocab_size);
    return AP_OK;
}

const float *ap_ablator_logits(const ap_ablator *a) { return a->logits; }

const ap_ablator_stats *ap_ablator_get_stats(const ap_ablator *a) { return &a->stats; }
