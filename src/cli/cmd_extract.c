/* apmae extract: the LM over mined scenarios, patterns into a store; one
 * shard of the scenarios with --shard, or every shard at once under mpirun
 * (one rank each, then rank 0 merges). */
#include "apmae/extract.h"
#include "cli.h"

#include <mpi.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const cli_flag k_flags[] = {
    {"--model", CLI_PATH, "DIR", "StarCoder2 checkpoint directory", .required = 1},
    {"--scenarios", CLI_PATH, "F", "scenarios JSONL written by 'apmae mine'", .required = 1},
    {"--out", CLI_PATH, "STORE.h5", "pattern store to create, or to resume when it exists", .required = 1},
    {"--balance", CLI_STRING, "per-task:K", "per task keep at most K/2 correct and K/2 incorrect completions"},
    {"--correct-only", CLI_SWITCH, NULL, "keep correct completions only (the AP-MAE training set)"},
    {"--dtype", CLI_CHOICE, NULL, "pattern storage type (bf16: >= 6x smaller than dense f32)", .choices = "f32|f16|bf16",
     .def = "bf16"},
    {"--threads", CLI_INT, "T", "threads for the forward pass", .range = "1..1024",
     .def_note = "OMP_NUM_THREADS or all cores"},
    {"--commit-every", CLI_INT, "K", "commit (make durable) at least every K samples, and every 2 s",
     .range = "1..1000000", .def_note = "256"},
    {"--shard", CLI_STRING, "K/R", "only the scenarios i with i % R == K, into --out as a shard (merge: apmae store merge)"},
    {"--embed-with", CLI_PATH, "MAE_DIR", "encode each kept sample's patterns with this AP-MAE as it is extracted"},
    {"--embeddings-only", CLI_SWITCH, NULL, "with --embed-with: keep only the embeddings, no patterns (streaming mode)"},
    {"--embed-batch", CLI_INT, "B", "patterns per AP-MAE batch", .range = "1..65536", .def_note = "64"},
    {"--compat", CLI_CHOICE, NULL, "the AP-MAE's encoding: reference = the published code's (docs/mae.md)",
     .choices = "default|reference"},
    {0},
};

static ap_status parse_options(const cli_args *a, ap_extract_options *o, ap_error *err) {
    static const ap_dtype dtypes[] = {AP_F32, AP_F16, AP_BF16}; /* as in --dtype */
    memset(o, 0, sizeof *o);
    o->model_dir = cli_str(a, "--model");
    o->scenarios_path = cli_str(a, "--scenarios");
    o->store_path = cli_str(a, "--out");
    o->dtype = dtypes[cli_choice(a, "--dtype")];
    ap_status st;
    const char *bal = cli_str(a, "--balance");
    if (bal && cli_switch(a, "--correct-only"))
        return ap_fail(err, AP_ERR_ARG, "--balance and --correct-only exclude each other");
    if (bal) {
        if (strncmp(bal, "per-task:", 9) != 0)
            return ap_fail(err, AP_ERR_ARG, "--balance: expected per-task:K, got '%s'", bal);
        if ((st = ap_parse_i64(bal + 9, "--balance per-task:K", &o->per_task, err))) return st;
        o->balance = AP_BALANCE_PER_TASK;
    } else if (cli_switch(a, "--correct-only")) {
        o->balance = AP_BALANCE_CORRECT_ONLY;
    }
    if (cli_has(a, "--threads")) omp_set_num_threads((int)cli_int(a, "--threads"));
    o->commit_every = (int)cli_int(a, "--commit-every");
    if (cli_has(a, "--shard") && (st = ap_shard_parse(cli_str(a, "--shard"), &o->shard_index, &o->shard_count, err)))
        return st;
    o->embed_with = cli_str(a, "--embed-with");
    o->embeddings_only = cli_switch(a, "--embeddings-only");
    if (o->embeddings_only && !o->embed_with)
        return ap_fail(err, AP_ERR_ARG, "--embeddings-only needs --embed-with MAE_DIR (the AP-MAE that encodes the patterns)");
    if ((cli_has(a, "--embed-batch") || cli_has(a, "--compat")) && !o->embed_with)
        return ap_fail(err, AP_ERR_ARG, "--embed-batch and --compat go with --embed-with MAE_DIR");
    o->embed_batch = (int)cli_int(a, "--embed-batch");
    o->compat_reference = cli_choice(a, "--compat") == 1;
    return AP_OK;
}

/* Open MPI's mpirun sets this in every rank it starts; a plain run never
 * initialises MPI. */
static int launched_by_mpirun(void) { return getenv("OMPI_COMM_WORLD_SIZE") != NULL; }

static int env_int(const char *name, int fallback) {
    const char *v = getenv(name);
    return v && atoi(v) > 0 ? atoi(v) : fallback;
}

/* Rank 0, after every rank finished its shard: merge the shards into the
 * store, then remove them. */
static ap_status merge_shards(const ap_extract_options *o, int R, ap_error *err) {
    char **paths = ap_calloc((size_t)R, sizeof *paths, err);
    ap_status st = paths ? AP_OK : AP_ERR_NOMEM;
    for (int k = 0; st == AP_OK && k < R; k++)
        if (!(paths[k] = ap_shard_path(o->store_path, k, R, err))) st = AP_ERR_NOMEM;
    int64_t n = 0;
    if (st == AP_OK) st = ap_extract_merge(o->store_path, (const char *const *)paths, (size_t)R, &n, err);
    if (st == AP_OK) ap_info("merged %d shards into %s: %lld samples", R, o->store_path, (long long)n);
    for (int k = 0; k < R && paths; k++) {
        if (st == AP_OK) unlink(paths[k]);
        free(paths[k]);
    }
    free(paths);
    return st;
}

/* Every rank extracts its shard; rank 0 merges once all succeeded. A store
 * already at --out (an earlier merge) is left to rank 0 alone: it says it
 * is complete, or resumes it. */
static ap_status run_under_mpi(ap_extract_options *o, int threads_given, ap_error *err) {
    int rank = 0, R = 1;
    MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &R);
    /* The ranks on one machine share its cores. */
    if (!threads_given) {
        int per_rank = ap_num_threads() / env_int("OMPI_COMM_WORLD_LOCAL_SIZE", R);
        omp_set_num_threads(per_rank > 0 ? per_rank : 1);
    }
    if (rank != 0 && ap_log_get_level() > AP_LOG_WARN) ap_log_set_level(AP_LOG_WARN); /* one progress bar */
    ap_extract_report rep;
    ap_status st = AP_OK;
    char *shard = NULL;
    int merged = ap_path_exists(o->store_path), failed = 0, any_failed = 0;
    if (merged || R == 1) {
        if (rank == 0) st = ap_extract_run(o, &rep, err);
    } else if (!(shard = ap_shard_path(o->store_path, rank, R, err))) {
        st = AP_ERR_NOMEM;
    } else {
        ap_extract_options so = *o;
        so.store_path = shard;
        so.shard_index = rank;
        so.shard_count = R;
        st = ap_extract_run(&so, &rep, err);
    }
    if (st != AP_OK) ap_error_prefix(err, "rank %d of %d", rank, R);
    failed = st != AP_OK;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (shard && rank == 0 && st == AP_OK) {
        st = any_failed ? ap_fail(err, AP_ERR_IO, "%s: not merged, as another rank failed (its error is above); run "
                                  "the same command again to resume every shard", o->store_path)
                        : merge_shards(o, R, err);
    }
    free(shard);
    MPI_Finalize();
    return st;
}

/* The ranks of mpirun, or this process alone. */
static ap_status run(ap_extract_options *o, int threads_given, ap_error *err) {
    if (!launched_by_mpirun()) {
        ap_extract_report rep;
        return ap_extract_run(o, &rep, err);
    }
    if (o->shard_count > 1)
        return ap_fail(err, AP_ERR_ARG, "--shard K/R and mpirun exclude each other (under mpirun each rank takes "
                       "its own shard)");
    return run_under_mpi(o, threads_given, err);
}

static ap_status run_extract(const cli_args *a, ap_error *err) {
    ap_extract_options o;
    ap_status st = parse_options(a, &o, err);
    return st ? st : run(&o, cli_has(a, "--threads"), err);
}

static const cli_spec k_spec = {
    .name = "extract",
    .summary = "run the LM over scenarios; correctness and every attention pattern into a store",
    .usage = "apmae extract --model DIR --scenarios F --out STORE.h5 [--balance per-task:K | --correct-only]\n"
             "                     [--dtype f32|f16|bf16] [--threads T] [--shard K/R]\n"
             "                     [--embed-with MAE_DIR [--embeddings-only] [--embed-batch B] [--compat reference]]\n"
             "       mpirun -n R apmae extract ... --out STORE.h5",
    .description =
        "Run the model on every scenario: predicted id, label id, correctness, the label's log-probability, the\n"
        "entropy and largest probability of the last position, and every head's attention pattern go into the\n"
        "store. Noise scenarios have no label: their correctness alternates. Killed at any moment, the same\n"
        "command resumes after the last commit with no duplicate and no gap; run on a finished store it does\n"
        "nothing and says so. --embed-with also stores every pattern's AP-MAE encodings (cls and mean); with\n"
        "--embeddings-only the patterns themselves are not kept. Under mpirun, rank K of R extracts shard K/R\n"
        "into STORE.h5.shard-K-of-R, and rank 0 merges the shards into STORE.h5 once all are done (then removes\n"
        "them); per-task quotas are split across the shards.",
    .docs = "docs/store.md",
    .flags = k_flags,
    .run = run_extract,
};

int cmd_extract(int argc, char **argv) { return cli_run(&k_spec, argc, argv); }
