/* Internals of AP-MAE training shared by src/mae and its unit tests: the
 * training data (split, tasks, batch order). */
#ifndef APMAE_MAE_TRAIN_INTERNAL_H
#define APMAE_MAE_TRAIN_INTERNAL_H

#include "apmae/mae_train.h"

/* One task's training patterns and where the run is in them. Pattern j of
 * an epoch is perm[j], an index into (sample, layer, head slot) order:
 * sample = samples[k / (L q)], layer = k / q % L, slot = k % q. */
typedef struct mae_task {
    char *name;
    int64_t *samples; /* training samples, ascending */
    size_t nsamples;
    int64_t npatterns; /* nsamples * L * q */
    int64_t epoch, pos; /* data-order state: the epoch's permutation and the next position in it */
    int64_t *perm;
} mae_task;

typedef struct mae_data {
    ap_store *store; /* not owned */
    int L, H, q;
    ap_head_sel sel;
    uint64_t seed;
    mae_task *tasks; /* in turn order */
    size_t ntasks;
    signed char *role; /* [S] AP_MAE_TRAIN / HELDOUT / EXCLUDED */
    int64_t train_samples, heldout_samples, train_patterns;
} mae_data;

/* Split the store and set up the task streams at epoch 0. tasks_csv: NULL
 * (every task with training samples, by name) or "t1,t2" (in that order; an
 * unknown name is an error). */
ap_status mae_data_init(mae_data *d, ap_store *store, const char *heads, const char *tasks_csv, double holdout,
                        uint64_t seed, ap_error *err);
void mae_data_free(mae_data *d);
/* The batch of step `step`: task step % ntasks, its next B patterns (across
 * its epoch boundary if need be). */
ap_status mae_data_next(mae_data *d, int64_t step, int B, ap_pattern_ref *refs, ap_error *err);
/* Put task t at (epoch, pos), as a resumed run does. */
ap_status mae_data_seek(mae_data *d, size_t t, int64_t epoch, int64_t pos, ap_error *err);

/* Read n patterns into out [n, N, N]. */
ap_status mae_read_refs(ap_store *s, const ap_pattern_ref *refs, size_t n, float *out, ap_error *err);
/* "<store>: patterns are NxN but <what> has max_length M" when they differ. */
ap_status mae_check_store_n(ap_store *s, const ap_mae_config *cfg, const char *what, ap_error *err);

#endif
