/* Internals of StarCoder2 training (src/lm/train*.c) shared with its unit
 * tests.
 *
 * The network's forward/backward is written once in train_net.inc over a
 * scalar type R (nn/real.h) on the shared kernels of apmae/nn.h and compiled
 * twice: float (train_net_f.c, what training runs) and double
 * (train_net_d.c, what the gradient checks compare with finite differences).
 * Parameters live in one flat block in the order of the checkpoint's tensors
 * (the layout); the activations of a batch of B sequences of T tokens live in
 * another (the plan), llm.c style. Everything that sums over rows does so in
 * a fixed order (column blocks owned by one thread each, or one thread per
 * output), so a step gives the same bits whatever the thread count, apart
 * from BLAS. */
#ifndef APMAE_LM_TRAIN_INTERNAL_H
#define APMAE_LM_TRAIN_INTERNAL_H

#include "apmae/lm.h"
#include "apmae/lm_train.h"
#include "apmae/nn.h"

#define LMT_NONE ((size_t)-1) /* an absent tensor (biases with use_bias false) */

/* Parameter offsets of one decoder layer. */
typedef struct lmt_layer {
    size_t ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
    size_t ln2_w, ln2_b, fc_w, fc_b, proj_w, proj_b;
} lmt_layer;

/* How a tensor starts (lmt_layout_init_params). */
typedef enum lmt_init { LMT_INIT_NORMAL, LMT_INIT_RESIDUAL, LMT_INIT_ZERO, LMT_INIT_ONE } lmt_init;

typedef struct lmt_tensor {
    char name[80];     /* the Hugging Face name (docs/lm.md) */
    int ndim;
    int64_t shape[2];
    size_t offset, numel;
    int decay;         /* matrices get weight decay, vectors do not */
    lmt_init init;
} lmt_tensor;

typedef struct lmt_layout {
    ap_lm_config cfg;
    size_t embed, norm_w, norm_b, head; /* head == embed when tied */
    lmt_layer *layers;
    lmt_tensor *tensors;
    size_t ntensors, total;
} lmt_layout;

ap_status lmt_layout_init(lmt_layout *L, const ap_lm_config *cfg, ap_error *err);
void lmt_layout_free(lmt_layout *L);
/* GPT-2 style start: matrices N(0, 0.02), the two projections into the
 * residual stream N(0, 0.02/sqrt(2 layers)), biases 0, LayerNorm 1 and 0. */
void lmt_layout_init_params(const lmt_layout *L, float *P, uint64_t seed);
/* The weights of a loaded checkpoint widened into P (a layout of its config). */
void lmt_params_from_lm(const lmt_layout *L, const ap_lm *lm, float *P);

/* Activation offsets (in elements) for B sequences of T tokens. Arrays with
 * one entry per layer are consecutive: layer l of ln1 is at ln1 + l * BT*D. */
typedef struct lmt_plan {
    int B, T, chunk;
    size_t res;                      /* [L+1][BT*D]: res[l] enters layer l, res[L] the final norm */
    size_t ln1, ln1_mean, ln1_rstd;  /* [L][BT*D], [L][BT], [L][BT] */
    size_t q, k, v;                  /* [L][BT*D], [L][BT*kvd] x2, after RoPE */
    size_t att;                      /* [L][B*H*T*T] probabilities */
    size_t atty;                     /* [L][BT*D] heads' P·v, concatenated */
    size_t mid;                      /* [L][BT*D] residual after attention */
    size_t ln2, ln2_mean, ln2_rstd;
    size_t fch, fcg;                 /* [L][BT*I] before and after GELU */
    size_t lnf, lnf_mean, lnf_rstd;  /* final norm */
    size_t logits;                   /* [chunk*V] one chunk of rows at a time */
    size_t rowloss;                  /* [BT] */
    /* backward scratch */
    size_t d_res, d_a, d_q, d_k, d_v, d_atty, d_fc, d_lnf, d_att; /* d_att: ap_nn_attention_scratch(T) */
    size_t total;
} lmt_plan;

void lmt_plan_init(lmt_plan *pl, const lmt_layout *L, int B, int T);

/* Rows of [n, ...] arrays are token positions b*T + t (apmae/nn.h).
 * lmt_rope_fwd rotates x in place, lmt_rope_bwd applies the transpose to the
 * gradient in place. cos/sin: [T, hd/2] float tables (lm_rope_tables). */
#define LMT_DECLARE(R, SUF)                                                                                        \
    void lmt_rope_fwd_##SUF(R *x, int n, int T, int nheads, int hd, const float *cos_t, const float *sin_t);       \
    void lmt_rope_bwd_##SUF(R *dx, int n, int T, int nheads, int hd, const float *cos_t, const float *sin_t);      \
    void lmt_forward_##SUF(const lmt_layout *L, const lmt_plan *pl, const float *cos_t, const float *sin_t,       \
                           const R *P, R *A, const int32_t *ids);                                                  \
    double lmt_head_##SUF(const lmt_layout *L, const lmt_plan *pl, const R *P, R *A, const int32_t *targets,      \
                          double scale, const float *row_weight, R *G);                                            \
    void lmt_backward_##SUF(const lmt_layout *L, const lmt_plan *pl, const float *cos_t, const float *sin_t,      \
                            const R *P, R *A, const int32_t *ids, R *G);                                           \
    void lmt_logits_rows_##SUF(const lmt_layout *L, const lmt_plan *pl, const R *P, const R *A, const int *rows,  \
                               int nrows, R *out);

/* lmt_forward: every activation up to the final norm (lnf). lmt_head: the
 * tied (or separate) head and cross-entropy over targets [B*T] (-1 = no
 * loss at that position), one chunk of rows at a time; returns the summed
 * loss (per position in A + rowloss). With G it also back-propagates
 * scale * loss, each row's loss times row_weight[r] when row_weight is not
 * NULL, into G (head weight) and A + d_lnf. lmt_backward: the rest
 * of the backward pass from A + d_lnf, accumulating into G. lmt_logits_rows:
 * logits [nrows, V] of chosen rows after lmt_forward. */
LMT_DECLARE(float, f)
LMT_DECLARE(double, d)

/* ---- training state ---------------------------------------------------------- */

/* ap_nn_adamw_step over every tensor of the layout, with opt's weight decay
 * on the matrices only (the tensors' decay flag). step counts from 1. */
void lmt_adamw_update(const lmt_layout *L, const ap_nn_adamw *opt, float *P, const float *G, float *m, float *v,
                      int64_t step, double lr);

/* Linear warm-up to lr over `warmup` steps, then cosine decay to
 * lr * min_ratio at the last step. */
double lmt_lr_at(int64_t step, int64_t total, int64_t warmup, double lr, double min_ratio);

/* Writes dir/config.json (model_type starcoder2) and dir/model.safetensors
 * (the docs/lm.md names, lm_head.weight only when untied) in dtype. */
ap_status lmt_export_hf(const lmt_layout *L, const float *P, ap_dtype dtype, const char *dir, ap_error *err);
ap_status lmt_config_to_json(const ap_lm_config *cfg, ap_dtype dtype, const char *path, ap_error *err);

/* ---- data ------------------------------------------------------------------------ */

/* Documents held in memory: text i is arena[off[i], off[i] + len[i]). */
typedef struct lmt_docs {
    char *arena;
    size_t arena_len, arena_cap;
    size_t *off, *len;
    size_t n, cap;
    int64_t bytes;
} lmt_docs;
void lmt_docs_free(lmt_docs *d);
ap_status lmt_docs_add(lmt_docs *d, const char *text, size_t len, ap_error *err);
/* Reads every file of the corpus; a file whose path hashes below `holdout`
 * (a share in [0, 1)) goes to held, the rest to train. */
ap_status lmt_docs_load(const char *path, const ap_corpus_options *opt, double holdout, lmt_docs *train,
                        lmt_docs *held, int progress, ap_error *err);
/* 1 when the file `source` belongs to the held-out share. */
int lmt_is_heldout(const char *source, double holdout);

/* The special tokens the data pipeline writes. */
typedef struct lmt_special {
    int32_t eot, fim_prefix, fim_middle, fim_suffix, fim_pad;
} lmt_special;
ap_status lmt_special_lookup(const ap_tokenizer *tok, const char *tokenizer_path, lmt_special *sp, ap_error *err);

/* The corpus as one token array: the documents in a shuffled order (seed),
 * each tokenized and followed by <|endoftext|>. */
typedef struct lmt_tokens {
    int32_t *ids;
    size_t n;
} lmt_tokens;
ap_status lmt_tokenize_docs(const lmt_docs *docs, const ap_tokenizer *tok, int32_t eot, uint64_t seed,
                            lmt_tokens *out, int progress, ap_error *err);
void lmt_tokens_free(lmt_tokens *t);

/* How FIM rewrites the pieces of a window (the options of the same names). */
typedef struct lmt_fim {
    double rate;
    ap_fim_split split;
    int chunk; /* > 0: pieces are cut first into chunks of chunk/4 (at least 8) to 4*chunk tokens, log-uniform */
} lmt_fim;

/* Where a stream is: the next sequence is window perm[index] of epoch
 * `epoch` (each epoch a fresh permutation of the windows), and the FIM
 * generator's state. This is what a checkpoint stores. */
typedef struct lmt_stream_pos {
    int64_t epoch, index;
    ap_rng rng;
} lmt_stream_pos;

/* Sequences of N+1 tokens: the token array cut into consecutive windows,
 * handed out in a shuffled order; in each, every piece of a document (the
 * tokens between two <|endoftext|>, or a chunk of it) is with probability
 * fim.rate rewritten
 * as <fim_prefix> P <fim_suffix> S <fim_middle> M (split at two positions
 * drawn uniformly from the candidates of fim.split, the three parts
 * tokenized on their own), its suffix
 * (then its middle, never the middle's first token) cut at the end or padded
 * with <fim_pad> so the piece keeps its length (the bigcode Megatron recipe,
 * applied to the context window so the model sees whole FIM examples within
 * N tokens). */
typedef struct lmt_stream {
    const lmt_tokens *toks;
    const ap_tokenizer *tok;
    lmt_special sp;
    uint64_t seed;
    lmt_fim fim;
    int n1;             /* N + 1 */
    size_t nwin;        /* windows per epoch */
    lmt_stream_pos pos;
    uint32_t *perm;     /* the current epoch's order */
    int64_t perm_epoch; /* which epoch perm holds (-1: none) */
    int32_t *piece;     /* FIM scratch: tokens and candidate split points */
    size_t piece_cap;
    size_t *cand;
    size_t cand_cap;
} lmt_stream;

/* An array shorter than one window is an error. */
ap_status lmt_stream_init(lmt_stream *s, const lmt_tokens *toks, int n1, const ap_tokenizer *tok,
                          const lmt_special *sp, uint64_t seed, const lmt_fim *fim, ap_error *err);
void lmt_stream_free(lmt_stream *s);
/* The next sequence of N+1 tokens. */
ap_status lmt_stream_next(lmt_stream *s, int32_t *seq, ap_error *err);
/* Inputs [N] and targets [N] of one sequence of N+1 tokens; targets that are
 * <fim_pad> get -1 (no loss). Returns the number of targets with a loss. */
int lmt_split_sequence(const int32_t *seq, int N, int32_t fim_pad, int32_t *inputs, int32_t *targets);

#endif
