/* apmae/lm_train.h — training a small model of the StarCoder2 architecture
 * (docs/lm.md) on Java code, and evaluating it.
 *
 * Training reads a corpus (apmae/mine.h), packs its documents into sequences
 * of N+1 tokens separated by <|endoftext|>, turns half of the documents of
 * each sequence into fill-in-the-middle form (<fim_prefix> P <fim_suffix> S
 * <fim_middle> M, split at random character positions), keeps ~1% of the
 * files (by path hash) for an eval loss, and runs AdamW in float32 with
 * warm-up and cosine decay and gradient clipping. The output directory is a
 * Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json)
 * plus train_state.safetensors, from which --resume continues bit for bit.
 * docs/training.md describes the recipe. */
#ifndef APMAE_LM_TRAIN_H
#define APMAE_LM_TRAIN_H

#include "apmae/base.h"
#include "apmae/io.h"
#include "apmae/lm.h"
#include "apmae/mine.h"

/* A built-in architecture ("small", "tiny") or a StarCoder2 config.json,
 * completed for training: vocab_size from the tokenizer (a file's own value
 * must be at least that), max_position_embeddings = seq_len (N). */
ap_status ap_lm_train_config(const char *name_or_path, int vocab_size, int seq_len, ap_lm_config *cfg,
                             ap_error *err);

/* Where FIM cuts a document piece into prefix, middle and suffix: at two
 * character positions drawn uniformly (StarCoder2's recipe), or drawn
 * uniformly among character-class boundaries — between identifier
 * characters, whitespace and punctuation, or between two punctuation
 * characters — which is where the scenarios' targets start and end
 * (docs/training.md compares the two). */
typedef enum ap_fim_split { AP_FIM_SPLIT_CHAR, AP_FIM_SPLIT_BOUNDARY } ap_fim_split;

typedef struct ap_lm_train_options {
    const char *corpus;     /* directory, archive or JSONL (apmae/mine.h) */
    ap_corpus_options corpus_opt;
    const char *tokenizer;  /* tokenizer.json (or a directory holding one) */
    const char *config;     /* "small", "tiny" or a config.json */
    const char *out;        /* output directory */
    int64_t tokens;         /* training tokens (steps = ceil(tokens / (batch * seq_len))) */
    int batch;              /* sequences per step */
    int seq_len;            /* N */
    double lr, min_lr_ratio;
    int64_t warmup;         /* steps; < 0: 2% of the steps */
    double weight_decay, beta1, beta2, clip;
    double fim_rate;        /* share of documents turned into FIM */
    ap_fim_split fim_split;
    int fim_chunk;          /* > 0: documents are cut into chunks of L/4 (at least 8) to 4L tokens (log-uniform), each its own FIM draw */
    double fim_middle_weight; /* gradient weight of the prediction at <fim_middle> (the middle's first token) */
    double holdout;         /* share of files held out for the eval loss */
    int64_t eval_every;     /* steps; 0: 20 evaluations per run */
    int eval_batches;       /* batches of held-out sequences per evaluation */
    int64_t checkpoint_every; /* steps; 0: 20 checkpoints per run */
    int64_t stop_after;     /* > 0: stop (with a checkpoint) after this step, as if interrupted */
    uint64_t seed;
    int resume;
    const char *init_from;  /* a checkpoint of the same architecture and tokenizer to start from, or NULL */
    ap_dtype out_dtype;     /* AP_F32 or AP_BF16 for model.safetensors */
    int progress;
} ap_lm_train_options;

/* The defaults of `apmae lm train` (everything but the paths and tokens). */
void ap_lm_train_options_default(ap_lm_train_options *o);

typedef struct ap_lm_train_result {
    int64_t step, steps;    /* steps done (in total, resumed ones included) and planned */
    int64_t params;
    double train_loss;      /* mean loss of the last steps */
    double eval_loss;       /* at the last evaluation; NaN when there was none */
    double tokens_per_s, seconds; /* of this run */
    int64_t train_files, holdout_files;
} ap_lm_train_result;

ap_status ap_lm_train(const ap_lm_train_options *o, ap_lm_train_result *res, ap_error *err);

/* Floating-point operations of one training step on B sequences of T tokens
 * (forward, and backward at twice the forward's matrix work). */
double ap_lm_train_flops(const ap_lm_config *cfg, int B, int T);

/* Time `steps` training steps on random tokens (no corpus): tokens/s and
 * GFLOP/s of the best step, after one warm-up step. */
ap_status ap_lm_train_bench(const ap_lm_config *cfg, int B, int T, int steps, double *tokens_per_s,
                            double *gflops, ap_error *err);

typedef struct ap_lm_eval_options {
    const char *model;      /* checkpoint directory */
    const char *scenarios;  /* JSONL of `apmae mine` (may be NULL) */
    const char *corpus;     /* held-out loss over this corpus (may be NULL) */
    ap_corpus_options corpus_opt;
    int64_t max_tokens;     /* corpus tokens evaluated at most */
    double fim_rate;        /* FIM share in the corpus sequences (as in training) */
    ap_fim_split fim_split;
    int fim_chunk;
    uint64_t seed;
    int batch;
    int progress;
} ap_lm_eval_options;

/* Appends a JSON object to out: "scenarios" (FIM first-token accuracy
 * overall and per task: argmax of the last position's logits == label_id)
 * and "heldout" (mean loss and perplexity over the corpus sequences). */
ap_status ap_lm_eval(const ap_lm_eval_options *o, ap_buf *out, ap_error *err);

#endif
