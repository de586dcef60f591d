/* apmae/extract.h — run the LM over mined scenarios and keep, per scenario,
 * whether its first predicted token is right and every head's attention
 * pattern, in a pattern store (docs/store.md). Resumable: a run that is killed and
 * started again with the same options continues where its last commit left
 * off, with no duplicate and no gap. */
#ifndef APMAE_EXTRACT_H
#define APMAE_EXTRACT_H

#include "apmae/base.h"
#include "apmae/io.h"
#include "apmae/store.h"

typedef enum ap_balance {
    AP_BALANCE_NONE,         /* keep every scenario */
    AP_BALANCE_PER_TASK,     /* per task, at most per_task/2 correct and per_task/2 incorrect */
    AP_BALANCE_CORRECT_ONLY  /* keep correct completions only */
} ap_balance;

typedef struct ap_extract_options {
    const char *model_dir;
    const char *scenarios_path; /* JSONL written by `apmae mine` */
    const char *store_path;
    ap_balance balance;
    int64_t per_task;        /* with AP_BALANCE_PER_TASK */
    ap_dtype dtype;          /* pattern dtype in the store */
    int commit_every;        /* samples between commits (durability points); <= 0: default */
    /* --shard K/R: only the scenarios whose 0-based line i has i % R == K,
     * into a store of their own (recorded as shard K of R). shard_count 0 or
     * 1: all scenarios. Per-task quotas are split across the shards (see
     * docs/store.md). */
    int shard_index, shard_count;
    /* Streaming mode: an AP-MAE checkpoint that encodes each kept sample's
     * patterns as they are extracted (embeddings into /embeddings); NULL:
     * none. embeddings_only: keep no /patterns at all. */
    const char *embed_with;
    int embeddings_only;
    int embed_batch;      /* patterns per AP-MAE batch; <= 0: default */
    int compat_reference; /* the AP-MAE's --compat reference encoding */
} ap_extract_options;

typedef struct ap_extract_report {
    int64_t lines;           /* scenarios in the file */
    int64_t consumed;        /* scenarios handled (stored or skipped), this run and before */
    int64_t stored;          /* samples in the store at the end */
    int64_t stored_this_run;
    int64_t skipped_balance; /* run but not kept: their group was full */
    int already_complete;    /* the store already held the finished run: nothing was done */
    double seconds, forward_seconds; /* wall time of this run, and of it in the LM forward pass */
    double embed_seconds;            /* ... and in AP-MAE encoding (streaming mode) */
} ap_extract_report;

/* ---- Scenario files (JSONL of `apmae mine`, docs/mining.md) ---- */

/* One scenario as extraction and the interventions need it. */
typedef struct ap_scenario_line {
    char *id, *task, *source;
    int64_t start, end, seed;
    int32_t label; /* first target token; -1: none (noise) */
    int32_t *ids;  /* the model input [n] */
    int n;
} ap_scenario_line;

/* Parse one line; errors name path:lineno. */
ap_status ap_scenario_parse(const char *line, const char *path, int64_t lineno, ap_scenario_line *s, ap_error *err);
void ap_scenario_clear(ap_scenario_line *s);

/* Reads a scenarios file line by line (empty lines skipped). */
typedef struct ap_scenario_reader {
    FILE *f;
    const char *path;
    char *line;
    size_t cap;
    int64_t lineno;
} ap_scenario_reader;
ap_status ap_scenario_reader_open(ap_scenario_reader *r, const char *path, ap_error *err);
/* The next scenario into s (clear it after use); *has = 0 at the end. */
ap_status ap_scenario_reader_next(ap_scenario_reader *r, ap_scenario_line *s, int *has, ap_error *err);
void ap_scenario_reader_close(ap_scenario_reader *r);

/* Last-position statistics from the logits row [V]: log-probability of label
 * (NaN when label < 0), entropy in nats, largest probability, argmax. */
void ap_last_token_stats(const float *logits, int V, int32_t label, float *logprob, float *entropy, float *max_prob,
                         int32_t *argmax);

ap_status ap_extract_run(const ap_extract_options *opt, ap_extract_report *rep, ap_error *err);

/* Parse "K/R" (0 <= K < R). */
ap_status ap_shard_parse(const char *spec, int *index, int *count, ap_error *err);
/* The name of shard K of R of a store: "<path>.shard-K-of-R". */
char *ap_shard_path(const char *store_path, int index, int count, ap_error *err);

/* Merge the shards of one sharded extraction (every shard K of R, R = n,
 * each complete, all with the same model, N, dtype, options and
 * embeddings) into a new store at out_path, sample by sample in scenario
 * order: the store a single process would have written. Errors name the
 * offending shard. The store appears at out_path only once complete. */
ap_status ap_extract_merge(const char *out_path, const char *const *shards, size_t n, int64_t *samples, ap_error *err);

/* Extraction by the ranks of a group (docs/store.md, "Sharding and
 * merging"): rank K of R extracts shard K/R into ap_shard_path(store, K, R);
 * once every rank has succeeded, rank 0 merges the shards into the store and
 * removes them. When a rank fails, nothing is merged and the shards stay, so
 * the same call again resumes each of them. A store already at the path (an
 * earlier merge) is left to rank 0 alone, which resumes it or reports it
 * complete. par NULL or of size 1: ap_extract_run. opt must not ask for a
 * shard itself. rep: this rank's own extraction. */
ap_status ap_extract_run_ranks(const ap_extract_options *opt, const ap_parallel *par, ap_extract_report *rep,
                               ap_error *err);

/* ---- AP-MAE encoding of patterns (docs/mae.md "Encodings") ---- */

typedef struct ap_embedder ap_embedder;
/* Load the AP-MAE checkpoint in dir; batch: patterns per encoder call
 * (<= 0: 64). */
ap_status ap_embedder_open(const char *dir, int compat_reference, int batch, ap_embedder **out, ap_error *err);
/* The AP-MAE as a store records it (its directory, config.json text,
 * parameter hash, dim, compat mode). */
const ap_store_embed_info *ap_embedder_info(const ap_embedder *e);
/* An error naming both unless the AP-MAE's max_length is n_tokens (the
 * pattern side N of `what`, a store or scenarios file). */
ap_status ap_embedder_check_length(const ap_embedder *e, int n_tokens, const char *what, ap_error *err);
/* count raw patterns [count, N, N] (probabilities) -> the scaler, then the
 * encoder: cls and mean [count, D]. */
ap_status ap_embedder_encode(ap_embedder *e, const float *patterns, int64_t count, float *cls, float *mean,
                             ap_error *err);
void ap_embedder_free(ap_embedder *e);

/* `apmae store embed`: encode every pattern of a store that has none yet,
 * continuing after the last commit of an interrupted run. */
typedef struct ap_embed_options {
    const char *store_path, *model_dir;
    int batch;            /* patterns per AP-MAE batch; <= 0: 64 */
    int compat_reference; /* --compat reference */
    int commit_every;     /* samples between commits; <= 0: default (also every 2 s) */
} ap_embed_options;
typedef struct ap_embed_report {
    int64_t samples;            /* samples in the store */
    int64_t embedded_this_run;  /* samples encoded by this run */
    int already_complete;       /* every sample already had embeddings of this AP-MAE: nothing done */
    double seconds;
} ap_embed_report;
ap_status ap_embed_store(const ap_embed_options *o, ap_embed_report *rep, ap_error *err);

#endif
