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

/* What training recorded in train_args.json: the split and where it came from. */
typedef struct mae_record {
    int present; /* the file exists */
    char *store, *model_id;
    int64_t store_samples; /* the store's samples when training began; -1 when not recorded */
    int has_ids_hash;      /* store_ids_hash was recorded */
    uint64_t store_ids_hash; /* mae_store_ids_hash of those samples: which store it was */
    double holdout;
    uint64_t seed;
    char **tasks; /* the --tasks of training (the split's candidates); none: every task */
    size_t ntasks;
    int compat;
} mae_record;

/* model/train_args.json when it exists (present = 0 otherwise). */
ap_status mae_record_load(const char *model, mae_record *r, ap_error *err);
void mae_record_free(mae_record *r);

/* The checkpoint's head-mean table: the cache in model/ when it belongs to
 * this record and config, else computed from the training store
 * (train_store, or the recorded one) and cached. *found = 0, with no error,
 * when the training store is not there. */
ap_status mae_head_mean_for_model(const char *model, const mae_record *rec, const ap_mae_config *cfg,
                                  const char *train_store, int progress, ap_mae_head_mean *out, int *found,
                                  ap_error *err);

/* A hash of the scenario ids of samples [0, count), in order: identifies a
 * store (and its first count samples) wherever it lives. */
ap_status mae_store_ids_hash(ap_store *s, int64_t count, uint64_t *out, ap_error *err);
/* Whether the store is the one rec was trained on (or that store extended):
 * the same model id and, when recorded, the same ids hash of its first
 * store_samples samples. */
ap_status mae_is_training_store(ap_store *s, const mae_record *rec, int *yes, ap_error *err);

/* Read n patterns into out [n, N, N]. */
ap_status mae_read_refs(ap_store *s, const ap_pattern_ref *refs, size_t n, float *out, ap_error *err);
/* "<store>: patterns are NxN but <what> has max_length M" when they differ. */
ap_status mae_check_store_n(ap_store *s, const ap_mae_config *cfg, const char *what, ap_error *err);

#endif
