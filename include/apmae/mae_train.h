/* apmae/mae_train.h — training AP-MAE over a pattern store and evaluating
 * it (docs/mae.md; docs/mae.md).
 *
 * The held-out split is by sample: a sample is held out when a hash of its
 * scenario id and the seed falls below the held-out rate, so every pattern of
 * a held-out sample (all layers, all heads) is unseen by training. Batches
 * are drawn from one task at a time, tasks in turn; within a task the
 * (sample, layer, head) patterns chosen by the head selection are shuffled
 * with the seed and read from the store on demand.
 *
 * A training directory holds config.json + model.safetensors (the docs/mae.md
 * checkpoint, loadable by ap_mae_load), train_state.safetensors (parameters,
 * AdamW moments, step, random and data-order state, and the options that
 * identify the run; --resume continues from it bit for bit), train_args.json
 * (store, its model id, the split rule: what evaluation needs) and
 * train_log.jsonl. */
#ifndef APMAE_MAE_TRAIN_H
#define APMAE_MAE_TRAIN_H

#include "apmae/io.h"
#include "apmae/mae.h"
#include "apmae/store.h"

#define AP_MAE_TRAIN_ARGS "train_args.json"
#define AP_MAE_TRAIN_STATE "train_state.safetensors"
#define AP_MAE_TRAIN_LOG "train_log.jsonl"

/* ---- The held-out split ---------------------------------------------------------------- */

/* A sample's role in a run. */
enum { AP_MAE_EXCLUDED = -1, AP_MAE_TRAIN = 0, AP_MAE_HELDOUT = 1 };

/* Whether a scenario id falls in the held-out share `rate` for this seed
 * (the rule alone, without the at-least-one guarantee of ap_mae_split). */
int ap_mae_id_heldout(const char *id, uint64_t seed, double rate);

/* role[S] for every sample of the store: EXCLUDED when tasks (ntasks > 0) do
 * not name its task, else HELDOUT by ap_mae_id_heldout, else TRAIN. When
 * rate > 0 and no candidate falls under it, the candidate with the smallest
 * hash is held out, so there is always at least one. */
ap_status ap_mae_split(ap_store *s, const char *const *tasks, size_t ntasks, double rate, uint64_t seed,
                       signed char *role, ap_error *err);

/* ---- Training ------------------------------------------------------------------------------ */

typedef struct ap_mae_train_options {
    const char *store;
    const char *config;    /* "tiny", "paper", "small" or a config.json */
    const char *out;       /* training directory */
    int batch;             /* patterns per step */
    double lr;             /* peak learning rate; 0: ap_mae_base_lr(batch) */
    int64_t steps;
    const char *heads;     /* "all" or "layerwise:q" */
    const char *tasks;     /* comma-separated task names, or NULL for every task of the store */
    double holdout;        /* held-out share of the samples, in (0, 1) */
    uint64_t seed;         /* initialisation, split, data order, masks */
    int64_t checkpoint_every; /* steps; 0: 20 checkpoints per run */
    int64_t eval_every;       /* steps; 0: 20 evaluations per run */
    int eval_patterns;        /* held-out patterns per evaluation */
    int64_t stop_after;       /* > 0: stop (with a checkpoint) after this step, as if interrupted */
    int resume;
    int compat_reference;
    int progress;
    /* Data parallelism (docs/scale.md); NULL: this process alone. Every rank
     * calls ap_mae_train with the same options and reads the same store;
     * each takes its share of every batch (the same batches, order and masks
     * as a process alone), the ranks' gradients are summed, and every rank
     * takes the same AdamW step. Rank 0 alone evaluates and writes DIR
     * (checkpoints, log); --resume has every rank read DIR's state, so DIR
     * must be reachable under the same path from every rank. */
    const ap_parallel *parallel;
} ap_mae_train_options;

/* batch 60, holdout 0.05, heads "all", seed 0, eval_patterns 256. */
void ap_mae_train_options_default(ap_mae_train_options *o);

typedef struct ap_mae_train_result {
    int64_t step, steps, steps_per_epoch;
    int64_t params;
    int64_t train_samples, heldout_samples, train_patterns;
    int ntasks;
    double train_loss;           /* mean of the steps since the last evaluation */
    double heldout_loss;         /* at the last evaluation */
    double heldout_loss_initial; /* before the first step (NaN when resumed) */
    double images_per_s, seconds; /* of this run */
} ap_mae_train_result;

ap_status ap_mae_train(const ap_mae_train_options *o, ap_mae_train_result *res, ap_error *err);

/* ---- Evaluation ---------------------------------------------------------------------------- */

/* The masks evaluation uses for one pattern: num_masked ids drawn from a
 * stream of (seed, scenario id, layer, head) alone, so a pattern gets the
 * same masks whatever else is evaluated and in whatever order. */
void ap_mae_pattern_masks(const ap_mae_config *cfg, uint64_t seed, const char *id, int layer, int head,
                          int64_t *masked);

/* The mean-patch baseline on one scaled image [N,N] with masked [M]: every
 * masked patch predicted as the pixelwise mean of the image's visible
 * lower-triangle patches. Returns the mean squared error over the masked
 * pixels (the training loss's definition); pred [p²] (may be NULL) gets the
 * predicted patch. */
double ap_mae_mean_patch_mse(const ap_mae_config *cfg, const float *scaled, const int64_t *masked, int M,
                             float *pred);

/* ---- The head-mean baseline ------------------------------------------------------------------ */

/* Per (layer, head) of the LM, the mean of the scaled patterns (the AP-MAE's
 * scaler) over the AP-MAE's training samples: what a predictor that knows
 * only which head a pattern came from would predict (docs/mae.md). The
 * values are rounded to float16, as cached beside the checkpoint
 * (AP_MAE_HEAD_MEAN_FILE), so a fresh and a cached table are the same. */
#define AP_MAE_HEAD_MEAN_FILE "head_mean.safetensors"

typedef struct ap_mae_head_mean {
    int num_layers, num_heads, n_tokens;
    int64_t samples; /* training samples averaged */
    float *mean;     /* [L, H, N(N+1)/2]: the lower triangle with the diagonal, row-major */
} ap_mae_head_mean;

/* One streaming pass over the store: every pattern of the samples i < count
 * whose role[i] is AP_MAE_TRAIN, scaled with cfg's scaler, read once. */
ap_status ap_mae_head_mean_compute(ap_store *s, const ap_mae_config *cfg, const signed char *role, int64_t count,
                                   int progress, ap_mae_head_mean *out, ap_error *err);
void ap_mae_head_mean_free(ap_mae_head_mean *hm);

/* The baseline on one scaled image [N,N] of (layer, head) with masked [M]:
 * every masked patch predicted by the head's mean pattern at that patch's
 * place (zero above the diagonal). Mean squared error over the masked
 * pixels, as ap_mae_mean_patch_mse. */
double ap_mae_head_mean_mse(const ap_mae_config *cfg, const ap_mae_head_mean *hm, int layer, int head,
                            const float *scaled, const int64_t *masked, int M);

typedef enum ap_mae_split_mode {
    AP_MAE_SPLIT_AUTO,    /* heldout when the training record's store has the same model id, else all */
    AP_MAE_SPLIT_HELDOUT, /* the held-out samples of the training split */
    AP_MAE_SPLIT_ALL      /* every sample */
} ap_mae_split_mode;

typedef struct ap_mae_eval_options {
    const char *model;      /* checkpoint directory (a training directory or any AP-MAE checkpoint) */
    const char *store;
    const char *seen_store; /* may be NULL: the store of the LM trained on, for cross_model_ratio */
    const char *out;        /* figures and eval.json go here; may be NULL without figures */
    int by_task, by_layer, by_head;
    int figures;            /* 4-panel PNGs for this many samples */
    ap_mae_split_mode split;
    int64_t max_patterns;   /* 0: every pattern of the split */
    uint64_t seed;          /* masks and the --max-patterns subset */
    int compat;             /* -1: as recorded by training (default mode otherwise), 0, 1 */
    const char *train_store; /* may be NULL: the training store, when not where train_args.json says */
    int progress;
} ap_mae_eval_options;

/* Evaluate and return a JSON object: store, split, patterns, samples, mse,
 * baseline_mse, ratio (= mse / baseline_mse), head_mean_mse and
 * head_mean_ratio (= mse / head_mean_mse; when the checkpoint's training
 * split is known, its head-mean table is cached or its training store
 * readable, and the store has the LM's layers and heads; "head_mean" then
 * says where the table came from) and, when asked, by_task,
 * by_layer, by_head ({"layer:head": ...}), figures, and with seen_store
 * "seen" (the same numbers there) and cross_model_ratio. Caller frees *out
 * (cJSON_Delete). */
ap_status ap_mae_eval(const ap_mae_eval_options *o, cJSON **out, ap_error *err);

/* The 4-panel figure of docs/mae.md as a PNG: the scaled pattern, the visible
 * input (masked patches grey), the predicted masked patches alone, and
 * visible + predicted; pred [M,p²] in the order of masked. Colours: the
 * viridis map over the scaled pattern's range; above the diagonal white.
 * Panels are N·zoom square (zoom = max(1, 256 / N)), 8 pixels apart. */
ap_status ap_mae_write_figure(const char *path, const ap_mae_config *cfg, const float *scaled,
                              const int64_t *masked, int M, const float *pred, ap_error *err);
/* The figure's size in pixels. */
void ap_mae_figure_size(const ap_mae_config *cfg, int *width, int *height);

#endif
