/* Inside the study runner: the stage table the runner walks. Each stage is
 * a slot: what identifies its run, which stages it reads from, what it
 * writes, and the function that does it through the library. */
#ifndef APMAE_STUDY_INTERNAL_H
#define APMAE_STUDY_INTERNAL_H

#include "apmae/study.h"

typedef struct study_ctx {
    const ap_study_config *cfg;
    const char *dir;
    int progress;
    const ap_parallel *parallel; /* NULL: one process */
} study_ctx;

/* Rank 0 of the study's ranks, or a process alone: the one that writes the
 * record, the report and every stage's own outputs. */
static inline int study_rank0(const study_ctx *c) { return !c->parallel || c->parallel->rank == 0; }

/* dir/name, malloc'ed (NULL and err set when out of memory). */
char *study_path(const study_ctx *c, const char *name, ap_error *err);

/* Adds to opts, under key, what identifies the file or directory at path:
 * the path and a hash of the size and modification time of the file, or of
 * every file directly inside the directory. A missing path is an error
 * naming `what` (a config field). */
ap_status study_identify(cJSON *opts, const char *key, const char *path, const char *what, ap_error *err);

#define STAGE_BIT(s) (1u << (s))

typedef struct stage_def {
    /* The stages whose outputs it reads: when one of them starts over, so
     * does this one. */
    unsigned (*deps)(const ap_study_config *cfg);
    /* Its outputs (relative to the study directory, NULL-terminated),
     * removed before it starts over. A stage whose results live in another
     * stage's file (the store) removes them itself. */
    const char *const *outputs;
    /* The options that identify its run, added to opts. */
    ap_status (*describe)(const study_ctx *c, cJSON *opts, ap_error *err);
    /* Does the work: from scratch (fresh) or continuing an interrupted run.
     * summary: one line for the record and the study's summary. */
    ap_status (*run)(const study_ctx *c, int fresh, char summary[256], ap_error *err);
    /* Renders what exists (the stages it reads from need not be done), and
     * is cheap enough to run every time. */
    int reads_partial;
    /* Run by every rank, sharing the work through the library's collective
     * calls (the rest on rank 0); other stages run on rank 0 alone. */
    int every_rank;
} stage_def;

extern const stage_def k_study_stages[AP_STAGE_COUNT];

#endif
