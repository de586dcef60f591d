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
    {"--model", "DIR", "StarCoder2 checkpoint directory", 1},
    {"--scenarios", "F", "scenarios JSONL written by 'apmae mine'", 1},
    {"--out", "STORE.h5", "pattern store to create, or to resume when it exists", 1},
    {"--balance", "per-task:K", "per task keep at most K/2 correct and K/2 incorrect completions", 0},
    {"--correct-only", NULL, "keep correct completions only (the AP-MAE training set)", 0},
    {"--dtype", "f32|f16|bf16", "pattern storage type (default bf16: >= 6x smaller than dense f32)", 0},
    {"--threads", "T", "threads for the forward pass (default: OMP_NUM_THREADS or all cores)", 0},
    {"--commit-every", "K", "commit (make durable) at least every K samples (default 256; also every 2 s)", 0},
    {"--shard", "K/R", "only the scenarios i with i % R == K, into --out as a shard (merge: apmae store merge)", 0},
    {"--embed-with", "MAE_DIR", "encode each kept sample's patterns with this AP-MAE as it is extracted", 0},
    {"--embeddings-only", NULL, "with --embed-with: keep only the embeddings, no patterns (streaming mode)", 0},
    {"--embed-batch", "B", "patterns per AP-MAE batch (default 64)", 0},
    {"--compat", "default|reference", "the AP-MAE's encoding: reference = the published code's (docs/mae.md)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_spec = {
    "apmae extract --model DIR --scenarios F --out STORE.h5 [--balance per-task:K | --correct-only]\n"
    "                     [--dtype f32|f16|bf16] [--threads T] [--shard K/R]\n"
    "                     [--embed-with MAE_DIR [--embeddings-only] [--embed-batch B] [--compat reference]]\n"
    "       mpirun -n R apmae extract ... --out STORE.h5",
    "Run the model on every scenario: predicted id, label id, correctness, the label's log-probability, the\n"
    "entropy and largest probability of the last position, and every head's attention pattern go into the\n"
    "store (docs/store.md). Noise scenarios have no label: their correctness alternates. Killed at any\n"
    "moment, the same command resumes after the last commit with no duplicate and no gap; run on a\n"
    "finished store it does nothing and says so. --embed-with also stores every pattern's AP-MAE encodings\n"
    "(cls and mean); with --embeddings-only the patterns themselves are not kept. Under mpirun, rank K of R\n"
    "extracts shard K/R into STORE.h5.shard-K-of-R, and rank 0 merges the shards into STORE.h5 once all are\n"
    "done (then removes them); per-task quotas are split across the shards (docs/store.md).",
    k_flags,
};

static ap_status parse_options(const cli_args *a, ap_extract_options *o, ap_error *err) {
    memset(o, 0, sizeof *o);
    o->model_dir = cli_get(a, "--model");
    o->scenarios_path = cli_get(a, "--scenarios");
    o->store_path = cli_get(a, "--out");
    o->dtype = AP_BF16;
    ap_status st;
    const char *bal = cli_get(a, "--balance");
    if (bal && cli_has(a, "--correct-only"))
        return ap_fail(err, AP_ERR_ARG, "--balance and --correct-only exclude each other");
    if (bal) {
        if (strncmp(bal, "per-task:", 9) != 0)
            return ap_fail(err, AP_ERR_ARG, "--balance: expected per-task:K, got '%s'", bal);
        if ((st = ap_parse_i64(bal + 9, "--balance per-task:K", &o->per_task, err))) return st;
        o->balance = AP_BALANCE_PER_TASK;
    } else if (cli_has(a, "--correct-only")) {
        o->balance = AP_BALANCE_CORRECT_ONLY;
    }
    const char *dt = cli_get(a, "--dtype");
    if (dt) {
        if (strcmp(dt, "f32") == 0) o->dtype = AP_F32;
        else if (strcmp(dt, "f16") == 0) o->dtype = AP_F16;
        else if (strcmp(dt, "bf16") == 0) o->dtype = AP_BF16;
        else return ap_fail(err, AP_ERR_ARG, "--dtype: expected f32, f16 or bf16, got '%s'", dt);
    }
    int64_t v;
    if (cli_has(a, "--threads")) {
        if ((st = ap_parse_i64(cli_get(a, "--threads"), "--threads", &v, err))) return st;
        if (v < 1 || v > 1024) return ap_fail(err, AP_ERR_ARG, "--threads: %lld is out of range", (long long)v);
        omp_set_num_threads((int)v);
    }
    if (cli_has(a, "--commit-every")) {
        if ((st = ap_parse_i64(cli_get(a, "--commit-every"), "--commit-every", &v, err))) return st;
        if (v < 1 || v > 1000000)
            return ap_fail(err, AP_ERR_ARG, "--commit-every: %lld is out of range", (long long)v);
        o->commit_every = (int)v;
    }
    if (cli_has(a, "--shard") && (st = ap_shard_parse(cli_get(a, "--shard"), &o->shard_index, &o->shard_count, err)))
        return st;
    o->embed_with = cli_get(a, "--embed-with");
    o->embeddings_only = cli_has(a, "--embeddings-only");
    if (o->embeddings_only && !o->embed_with)
        return ap_fail(err, AP_ERR_ARG, "--embeddings-only needs --embed-with MAE_DIR (the AP-MAE that encodes the patterns)");
    if ((cli_has(a, "--embed-batch") || cli_has(a, "--compat")) && !o->embed_with)
        return ap_fail(err, AP_ERR_ARG, "--embed-batch and --compat go with --embed-with MAE_DIR");
    if (cli_has(a, "--embed-batch")) {
        if ((st = ap_parse_i64(cli_get(a, "--embed-batch"), "--embed-batch", &v, err))) return st;
        if (v < 1 || v > 65536) return ap_fail(err, AP_ERR_ARG, "--embed-batch: %lld is out of range", (long long)v);
        o->embed_batch = (int)v;
    }
    const char *compat = cli_get(a, "--compat");
    if (compat && strcmp(compat, "reference") != 0 && strcmp(compat, "default") != 0)
        return ap_fail(err, AP_ERR_ARG, "--compat: '%s' is not 'default' or 'reference'", compat);
    o->compat_reference = compat && strcmp(compat, "reference") == 0;
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

int cmd_extract(int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(&k_spec, argc, argv, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    ap_extract_options o;
    ap_status st = parse_options(&a, &o, &err);
    if (!st) st = run(&o, cli_has(&a, "--threads"), &err);
    return st ? cli_report(&err) : 0;
}
