/* Extraction by the ranks of a data-parallel group: one shard each, then
 * rank 0 merges (ap_extract_run_ranks in extract.h). */
#include "apmae/extract.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rank 0, after every rank finished its shard: merge the R shards into the
 * store, then remove them. */
static ap_status merge_shards(const char *store, int R, ap_error *err) {
    char **paths = ap_calloc((size_t)R, sizeof *paths, err);
    ap_status st = paths ? AP_OK : AP_ERR_NOMEM;
    for (int k = 0; st == AP_OK && k < R; k++)
        if (!(paths[k] = ap_shard_path(store, k, R, err))) st = AP_ERR_NOMEM;
    int64_t n = 0;
    if (st == AP_OK) st = ap_extract_merge(store, (const char *const *)paths, (size_t)R, &n, err);
    if (st == AP_OK) ap_info("merged %d shards into %s: %lld samples", R, store, (long long)n);
    for (int k = 0; k < R && paths; k++) {
        if (st == AP_OK) unlink(paths[k]);
        free(paths[k]);
    }
    free(paths);
    return st;
}

ap_status ap_extract_run_ranks(const ap_extract_options *o, const ap_parallel *par, ap_extract_report *rep,
                               ap_error *err) {
    if (!par || par->size <= 1) return ap_extract_run(o, rep, err);
    if (o->shard_count > 1)
        return ap_fail(err, AP_ERR_ARG, "--shard K/R and ranks exclude each other (each rank takes its own shard)");
    const int rank = par->rank, R = par->size;
    memset(rep, 0, sizeof *rep);
    ap_status st = AP_OK;
    char *shard = NULL;
    if (ap_path_exists(o->store_path)) { /* merged before: rank 0 resumes or reports it */
        if (rank == 0) st = ap_extract_run(o, rep, err);
    } else if (!(shard = ap_shard_path(o->store_path, rank, R, err))) {
        st = AP_ERR_NOMEM;
    } else {
        ap_extract_options so = *o;
        so.store_path = shard;
        so.shard_index = rank;
        so.shard_count = R;
        st = ap_extract_run(&so, rep, err);
    }
    const ap_status own = st;
    st = ap_parallel_agree(par, st, err);
    if (shard && rank == 0 && own == AP_OK && st != AP_OK)
        ap_error_prefix(err, "%s: not merged; run the same command again to resume every shard", o->store_path);
    if (shard && rank == 0 && st == AP_OK) st = merge_shards(o->store_path, R, err);
    free(shard);
    return st;
}
