/* apmae/mae.h — AP-MAE, the masked autoencoder over attention patterns
 * (docs/mae.md): config, parameters (Hugging Face tensor names), scaler, masked
 * forward with its MSE loss, encoding (cls / mean), backward and AdamW.
 *
 * Shapes: a pattern is N×N float32 (N = max_length), row-major. Patch k of
 * the g×g grid (g = N/p) covers row-block k / g and column-block k % g, its
 * p² pixels flattened row-major. Only the T = g(g+1)/2 patches on or below
 * the diagonal are used. Batches are dense: every image of a batch has the
 * same number M of masked patches. */
#ifndef APMAE_MAE_H
#define APMAE_MAE_H

#include "apmae/base.h"

typedef enum ap_mae_scaler {
    AP_MAE_SCALER_LOG_NORMALIZE = 0, /* default */
    AP_MAE_SCALER_NONE,
    AP_MAE_SCALER_LOG
} ap_mae_scaler;

/* The config.json fields of docs/mae.md (hidden_act is always "gelu", the exact
 * erf form) plus the scaler, saved as "attention_scaler". */
typedef struct ap_mae_config {
    int max_length, patch_size;
    double mask_ratio;
    int encoder_dim, encoder_layers, encoder_heads, encoder_dim_head, encoder_mlp_dim;
    int decoder_dim, decoder_layers, decoder_heads, decoder_dim_head, decoder_mlp_dim;
    double layer_norm_eps;
    int qkv_bias;
    ap_mae_scaler scaler;
} ap_mae_config;

/* "tiny" and "paper" (docs/mae.md table) and "small" (N 256, p 32, 128-wide,
 * 4 encoder and 2 decoder layers: trains in minutes on two cores). */
ap_status ap_mae_config_builtin(const char *name, ap_mae_config *cfg, ap_error *err);
/* path: a config.json or a directory holding one. Validated. */
ap_status ap_mae_config_load(const char *path, ap_mae_config *cfg, ap_error *err);
/* A built-in name, else a file or checkpoint directory. */
ap_status ap_mae_config_resolve(const char *name_or_path, ap_mae_config *cfg, ap_error *err);
ap_status ap_mae_config_save(const char *path, const ap_mae_config *cfg, ap_error *err);
/* what names the source in messages (a file or a built-in name). */
ap_status ap_mae_config_validate(const ap_mae_config *cfg, const char *what, ap_error *err);
int ap_mae_grid(const ap_mae_config *cfg);       /* g = N / p */
int ap_mae_num_tril(const ap_mae_config *cfg);   /* T = g(g+1)/2 */
int ap_mae_num_masked(const ap_mae_config *cfg); /* floor(mask_ratio * T) */
const char *ap_mae_scaler_name(ap_mae_scaler s);

typedef struct ap_mae_work ap_mae_work; /* layout, activations (src/mae/internal.h) */

/* A model keeps its activations (sized for the largest batch seen so far;
 * chunk big batches), so one model serves one caller at a time. */
typedef struct ap_mae_model {
    ap_mae_config cfg;
    /* --compat reference: the published code's decoder slots and encoding
     * (docs/mae.md). Not part of the checkpoint; set by the caller. */
    int compat_reference;
    float *params; /* all tensors in one block, in ap_mae_tensor order */
    size_t nparams;
    float *grads, *adam_m, *adam_v; /* NULL until the first train step */
    int64_t adam_step;
    ap_mae_work *work;
} ap_mae_model;

/* A model initialised as docs/mae.md says, from seed. */
ap_status ap_mae_new(const ap_mae_config *cfg, uint64_t seed, ap_mae_model **out, ap_error *err);
/* dir: config.json + model.safetensors. A missing tensor or a wrong shape is
 * an error naming the tensor and the file. */
ap_status ap_mae_load(const char *dir, ap_mae_model **out, ap_error *err);
/* Writes dir/config.json and dir/model.safetensors (creates dir). */
ap_status ap_mae_save(const ap_mae_model *m, const char *dir, ap_error *err);
void ap_mae_free(ap_mae_model *m);

/* The tensors of the checkpoint, in file order: i in [0, count). */
size_t ap_mae_tensor_count(const ap_mae_model *m);
typedef struct ap_mae_tensor_info {
    const char *name;
    int ndim;
    int64_t shape[3];
    size_t offset, numel; /* into params (and grads) */
} ap_mae_tensor_info;
const ap_mae_tensor_info *ap_mae_tensor(const ap_mae_model *m, size_t i);
const ap_mae_tensor_info *ap_mae_tensor_find(const ap_mae_model *m, const char *name);

/* The scaler of the config over B raw patterns [B,N,N] -> scaled [B,N,N].
 * Negative or non-finite probabilities are errors naming the image. */
ap_status ap_mae_scale(const ap_mae_config *cfg, const float *patterns, int B, float *scaled, ap_error *err);
/* num_masked patch ids per image, uniformly random among the T lower-triangle
 * patches (a random order, which is the order of predictions). */
void ap_mae_random_masks(const ap_mae_config *cfg, ap_rng *rng, int B, int64_t *masked);
/* Every id in [B,M] must be a distinct lower-triangle patch; 1 <= M <= T. */
ap_status ap_mae_check_masks(const ap_mae_config *cfg, const int64_t *masked, int B, int M, ap_error *err);

/* Masked forward of scaled images [B,N,N] with masked [B,M]: loss [B] (mean
 * squared error over that image's masked pixels) and, when pred is not NULL,
 * the predicted pixels [B,M,p²] in the order of masked. */
ap_status ap_mae_forward(ap_mae_model *m, const float *scaled, int B, const int64_t *masked, int M, float *loss,
                         float *pred, ap_error *err);
/* Encoding of scaled images (no masking): cls [B,D_enc] and mean [B,D_enc],
 * either may be NULL. */
ap_status ap_mae_encode(ap_mae_model *m, const float *scaled, int B, float *cls, float *mean, ap_error *err);

/* Training. lr for a global batch: 1.5e-4 * batch / 50. */
double ap_mae_base_lr(int global_batch);
/* Cosine from base_lr to 0 over `cycle` steps, restarting every cycle. */
double ap_mae_cosine_lr(double base_lr, int64_t step, int64_t cycle);
/* One step on raw patterns [B,N,N]: ap_mae_grad, then ap_mae_adamw_step.
 * *loss: the batch mean loss before the update. */
ap_status ap_mae_train_step(ap_mae_model *m, const float *patterns, int B, const int64_t *masked, int M,
                            ap_rng *rng, double lr, float *loss, ap_error *err);
/* The first half of a step: scale, mask (masked [B,M] if given, else
 * num_masked random ids from rng), forward, backward. m->grads [nparams]
 * receives the gradient of the batch mean loss (*loss). A data-parallel
 * trainer averages m->grads over its ranks here, then takes the step. */
ap_status ap_mae_grad(ap_mae_model *m, const float *patterns, int B, const int64_t *masked, int M, ap_rng *rng,
                      float *loss, ap_error *err);
/* The second half: one AdamW step from m->grads (betas 0.9/0.95, eps 1e-8,
 * weight decay 0.05 on every parameter; ap_nn_adamw_step) with learning rate
 * lr; counts adam_step. An error when no gradient has been computed. */
ap_status ap_mae_adamw_step(ap_mae_model *m, double lr, ap_error *err);

#endif
