/* apmae/extract.h — run the LM over mined scenarios and keep, per scenario,
 * whether its first predicted token is right and every head's attention
 * pattern, in a pattern store (SPEC §5). Resumable: a run that is killed and
 * started again with the same options continues where its last commit left
 * off, with no duplicate and no gap. */
#ifndef APMAE_EXTRACT_H
#define APMAE_EXTRACT_H

#include "apmae/base.h"
#include "apmae/io.h"

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
} ap_extract_options;

typedef struct ap_extract_report {
    int64_t lines;           /* scenarios in the file */
    int64_t consumed;        /* scenarios handled (stored or skipped), this run and before */
    int64_t stored;          /* samples in the store at the end */
    int64_t stored_this_run;
    int64_t skipped_balance; /* run but not kept: their group was full */
    int already_complete;    /* the store already held the finished run: nothing was done */
    double seconds, forward_seconds; /* wall time of this run, and of it in the LM forward pass */
} ap_extract_report;

/* Last-position statistics from the logits row [V]: log-probability of label
 * (NaN when label < 0), entropy in nats, largest probability, argmax. */
void ap_last_token_stats(const float *logits, int V, int32_t label, float *logprob, float *entropy, float *max_prob,
                         int32_t *argmax);

ap_status ap_extract_run(const ap_extract_options *opt, ap_extract_report *rep, ap_error *err);

#endif
