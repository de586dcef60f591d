/* The MPI side of data parallelism: the ranks mpirun started become an
 * ap_parallel group whose sum is MPI_Allreduce (cli.h). */
#include "cli.h"

#include <limits.h>
#include <mpi.h>
#include <omp.h>
#include <stdlib.h>

/* Open MPI's mpirun sets the first in every rank it starts; PMIx launchers
 * (mpirun too, and SLURM's srun --mpi=pmix) the second. */
int cli_mpi_launched(void) { return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL; }

static int env_int(const char *name, int fallback) {
    const char *v = getenv(name);
    return v && atoi(v) > 0 ? atoi(v) : fallback;
}

/* In place over MPI_COMM_WORLD, in pieces an int can count. */
static ap_status mpi_sum(void *ctx, float *x, size_t n, ap_error *err) {
    (void)ctx;
    for (size_t done = 0; done < n;) {
        int c = n - done > INT_MAX ? INT_MAX : (int)(n - done);
        if (MPI_Allreduce(MPI_IN_PLACE, x + done, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return ap_fail(err, AP_ERR_IO, "MPI_Allreduce of %zu floats failed", n);
        done += (size_t)c;
    }
    return AP_OK;
}

void cli_mpi_begin(int threads_given, ap_parallel *par) {
    MPI_Init(NULL, NULL);
    *par = (ap_parallel){.rank = 0, .size = 1, .sum = mpi_sum};
    MPI_Comm_rank(MPI_COMM_WORLD, &par->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &par->size);
    /* The ranks mpirun puts on one machine share its cores. (srun gives
     * each task its own CPU set with --cpus-per-task, which OpenMP's
     * default already follows.) */
    if (!threads_given) {
        int per_rank = ap_num_threads() / env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
        omp_set_num_threads(per_rank > 0 ? per_rank : 1);
    }
    if (par->rank != 0 && ap_log_get_level() > AP_LOG_WARN) ap_log_set_level(AP_LOG_WARN);
}

ap_status cli_mpi_end(const ap_parallel *par, ap_status st, ap_error *err) {
    if (st != AP_OK) ap_error_prefix(err, "rank %d of %d", par->rank, par->size);
    MPI_Finalize();
    return st;
}
