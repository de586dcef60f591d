/* apmae/study.h — the whole study in one call (docs/study.md): mine ->
 * extract -> mae-train -> mae-eval -> embed -> cluster -> classify ->
 * intervene -> report, into one output directory.
 *
 * The config: every field has a default (the shipped model on the JDK
 * modules held out from its training), a JSON file overrides any of them,
 * and unknown or mistyped fields are errors naming the file and the field.
 *
 * The runner records every stage in DIR/study.json: the options that
 * identify its run (and a hash of them mixed with the hashes of the stages it
 * reads from), whether it is running or done, its time and a summary. A
 * stage done with the same options is skipped; a stage whose options (or an
 * upstream stage's) changed starts over, and so does every stage that reads
 * from it; a stage that was running when the study was killed continues
 * through its own resumability (extraction, AP-MAE training, encoding,
 * clustering). */
#ifndef APMAE_STUDY_H
#define APMAE_STUDY_H

#include "apmae/base.h"
#include "apmae/io.h"

/* ---- config ---------------------------------------------------------------------------------- */

typedef struct ap_study_config {
    char *model;       /* the LM checkpoint directory */
    char *cross_model; /* a second LM for the AP-MAE's cross-model check, or NULL */
    int64_t threads;   /* 0: OMP_NUM_THREADS, or all cores */
    struct {
        char *corpus, *include, *exclude, *tasks, *compat;
        int64_t per_task, max_length, seed;
    } mine;
    struct {
        int64_t samples_per_task; /* 0: keep every scenario; else K/2 correct and K/2 incorrect per task */
        char *dtype;
        int64_t commit_every;     /* samples between commits (0: the extractor's default) */
    } extract;
    struct {
        char *encoder; /* "auto" (MODEL-apmae when it exists, else "trained"), "trained" (mae-train's model)
                        * or an AP-MAE checkpoint directory */
        char *config, *heads;
        int64_t steps, batch, seed, figures, eval_patterns;
        double holdout;
    } mae;
    struct {
        char *embedding, *metric; /* cls|mean; cosine|euclidean (UMAP's input space) */
        int64_t umap_components, umap_neighbors, min_samples, min_cluster_size, seed;
        double umap_min_dist;
    } cluster;
    struct {
        char *tasks;
        int64_t seed, folds, repeats;
        double test_fraction;
    } classify;
    struct {
        char *tasks;    /* "auto" (the max_tasks best balanced), "all" (every task with K of each outcome), or a list */
        char *n;        /* heads per ablated set, a comma list */
        char *settings; /* a comma list of pos_only, neg_only, neutral, random */
        char *shap_set; /* test|cv: which of classify's SHAP figures rank the heads */
        int64_t max_tasks, target, seed;
    } intervene;
} ap_study_config;

/* Every field at its default. */
ap_status ap_study_config_default(ap_study_config *c, ap_error *err);
/* The defaults, then the fields of the JSON file at path (NULL: defaults
 * only). */
ap_status ap_study_config_load(const char *path, ap_study_config *c, ap_error *err);
void ap_study_config_free(ap_study_config *c);
/* Every field, as the config file would spell it. Caller deletes. */
cJSON *ap_study_config_to_json(const ap_study_config *c);

/* ---- stages ---------------------------------------------------------------------------------- */

typedef enum ap_study_stage {
    AP_STAGE_MINE,
    AP_STAGE_EXTRACT,
    AP_STAGE_MAE_TRAIN,
    AP_STAGE_MAE_EVAL,
    AP_STAGE_EMBED,
    AP_STAGE_CLUSTER,
    AP_STAGE_CLASSIFY,
    AP_STAGE_INTERVENE,
    AP_STAGE_REPORT,
    AP_STAGE_COUNT
} ap_study_stage;

const char *ap_study_stage_name(ap_study_stage s);
/* Returns 0 and sets *s when name is a stage, -1 otherwise. */
int ap_study_stage_from_name(const char *name, ap_study_stage *s);

/* ---- the runner ------------------------------------------------------------------------------ */

/* Files of a study directory, relative to it. */
#define AP_STUDY_RECORD "study.json"
#define AP_STUDY_SCENARIOS "scenarios.jsonl"
#define AP_STUDY_LM_EVAL "lm_eval.json"
#define AP_STUDY_STORE "store.h5"
#define AP_STUDY_CROSS_STORE "cross.h5"
#define AP_STUDY_MAE_DIR "mae"
#define AP_STUDY_MAE_EVAL_DIR "mae_eval"
#define AP_STUDY_CLASSIFY_DIR "classify"
#define AP_STUDY_INTERVENE_DIR "intervene"
#define AP_STUDY_INTERVENE_TASKS "intervene/tasks.json"
#define AP_STUDY_REPORT "report.html"

typedef struct ap_study_options {
    const ap_study_config *config;
    const char *config_path; /* recorded for the report; may be NULL (defaults) */
    const char *out;         /* the study directory (created when missing) */
    int from;                /* a stage: run it and every later stage again, from scratch; -1: none */
    int only;                /* a stage: run only it (its inputs must be done); -1: all */
    int progress;            /* progress bars on stderr */
    /* The ranks running this study together (docs/study.md "Under mpirun"):
     * every rank calls ap_study_run with the same options; extraction and
     * AP-MAE training are shared over the ranks, rank 0 alone does the rest
     * and writes the record. NULL: one process. */
    const ap_parallel *parallel;
} ap_study_options;

/* What the runner did with a stage. */
typedef enum ap_study_action {
    AP_STUDY_NOT_RUN, /* outside --only */
    AP_STUDY_SKIPPED, /* done before with the same options */
    AP_STUDY_RESUMED, /* interrupted before; continued */
    AP_STUDY_FRESH    /* run from scratch */
} ap_study_action;

typedef struct ap_study_result {
    ap_study_action action[AP_STAGE_COUNT];
    double seconds[AP_STAGE_COUNT];     /* wall time of this run */
    double cpu_seconds[AP_STAGE_COUNT]; /* CPU time of this run, every thread */
    char summary[AP_STAGE_COUNT][256]; /* one line per stage, from its record */
    double total_seconds;
} ap_study_result;

const char *ap_study_action_name(ap_study_action a);

/* Run the study. Stops at the first stage that fails, with the stage's name
 * in the message; what was done stays recorded. Under o->parallel it is
 * collective, every rank stops together, and res is complete on rank 0
 * alone (its actions on every rank). */
ap_status ap_study_run(const ap_study_options *o, ap_study_result *res, ap_error *err);

#endif
