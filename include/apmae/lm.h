/* apmae/lm.h — the StarCoder2 language model: load a Hugging Face checkpoint
 * (config.json + safetensors, F32/F16/BF16 weights kept in their stored dtype)
 * and run the forward pass in float32 with every head's attention pattern
 * available, and heads optionally ablated (their P·v zeroed before o_proj). */
#ifndef APMAE_LM_H
#define APMAE_LM_H

#include "apmae/base.h"
#include "apmae/io.h"

typedef struct ap_lm_config {
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int num_layers;
    int num_heads;
    int num_kv_heads;
    int head_dim; /* hidden_size / num_heads */
    int max_position_embeddings;
    double rope_theta;
    double norm_epsilon;
    int sliding_window; /* <= 0: none */
    int use_bias;
    int tie_word_embeddings;
} ap_lm_config;

/* Parse and validate a StarCoder2 config.json (model_type "starcoder2",
 * hidden_act "gelu_pytorch_tanh" or "gelu_tanh"-equivalent). */
ap_status ap_lm_config_load(const char *path, ap_lm_config *cfg, ap_error *err);
ap_status ap_lm_config_validate(const ap_lm_config *cfg, const char *file, ap_error *err);

/* A weight as stored: data points into the mmapped checkpoint. */
typedef struct ap_weight {
    const void *data;
    ap_dtype dtype; /* F32, F16 or BF16 */
} ap_weight;

/* Bias fields are NULL when the config has use_bias false. */
typedef struct ap_lm_layer {
    ap_weight ln1_w, ln1_b;
    ap_weight q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
    ap_weight ln2_w, ln2_b;
    ap_weight fc_w, fc_b, proj_w, proj_b;
} ap_lm_layer;

typedef struct ap_lm {
    ap_lm_config cfg;
    ap_safetensors *st;
    ap_weight embed;    /* [V, D] */
    ap_lm_layer *layers;
    ap_weight norm_w, norm_b;
    ap_weight lm_head;  /* [V, D]; the embedding when tied */
    float *small;       /* biases and LayerNorm parameters, widened to float32 */
    char *dir;
} ap_lm;

ap_status ap_lm_load(const char *dir, ap_lm **out, ap_error *err);
void ap_lm_free(ap_lm *lm);

/* Working memory of a forward pass for up to max_T tokens, reusable across
 * calls (contiguous activations in the llm.c style). */
typedef struct ap_lm_state ap_lm_state;
ap_status ap_lm_state_new(const ap_lm *lm, int max_T, ap_lm_state **out, ap_error *err);
void ap_lm_state_free(ap_lm_state *s);

typedef struct ap_lm_forward_opts {
    /* [L*H] bytes, 1 = ablate head (l, h) at index l*H + h; NULL = none. */
    const uint8_t *ablate;
    /* Compute logits only at the last position (logits is [V] then). */
    int last_only;
    /* Reusing the layers before an ablation (docs/lm.md "Starting at a later
     * layer"). residuals_out: when non-NULL, receives the residual stream
     * entering each layer the pass runs, [L, T, D] (layer l at l*T*D).
     * start_layer > 0: skip the embedding and layers 0..start_layer-1 and
     * start from start_residual [T, D], the stream entering start_layer as an
     * earlier pass over the same ids captured it; the result is then bit for
     * bit that of the whole pass, provided nothing before start_layer is
     * ablated. */
    float *residuals_out;
    int start_layer;
    const float *start_residual;
} ap_lm_forward_opts;

/* Forward pass over ids[0..T). logits: [T, V] (or [V] with last_only), may be
 * NULL. attentions: [L, H, T, T] float32 probabilities (zeros above the
 * diagonal and outside the sliding window), may be NULL; with start_layer > 0
 * only the layers run are written. Ids outside the vocabulary and T outside
 * 1..max_T are AP_ERR_RANGE errors; a start_layer outside 0..L-1, or > 0
 * without start_residual, is AP_ERR_ARG. */
ap_status ap_lm_forward(const ap_lm *lm, ap_lm_state *s, const int32_t *ids, int T, const ap_lm_forward_opts *opts,
                        float *logits, float *attentions, ap_error *err);

/* Approximate floating-point operations of one forward pass of T tokens
 * (matrix products and attention), for throughput reporting. */
double ap_lm_forward_flops(const ap_lm_config *cfg, int T, int last_only);

#endif
