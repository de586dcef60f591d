/* The MPI side of data parallelism: the ranks mpirun started become an
 * ap_parallel group whose sum is MPI_Allreduce (cli.h). */
#define _GNU_SOURCE /* sched_getaffinity */
#include "cli.h"

#include <limits.h>
#include <mpi.h>
#include <omp.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

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

/* The threads of one rank without --threads. A launcher that bound the
 * rank to a CPU set sized it (Open MPI binds each rank to a core when it
 * starts at most two, else to a socket; --map-by slot:PE=T gives T cores;
 * srun --cpus-per-task): the rank keeps to its set. Unbound (mpirun
 * --bind-to none), the ranks mpirun put on this machine share its threads
 * (OMP_NUM_THREADS or all cores). */
static int threads_per_rank(void) {
    int n = ap_num_threads();
    cpu_set_t set;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < online)
        n = n < CPU_COUNT(&set) ? n : CPU_COUNT(&set);
    else
        n /= env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
    return n > 0 ? n : 1;
}

void cli_mpi_begin(int threads_given, ap_parallel *par) {
    MPI_Init(NULL, NULL);
    *par = (ap_parallel){.rank = 0, .size = 1, .sum = mpi_sum};
    MPI_Comm_rank(MPI_COMM_WORLD, &par->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &par->size);
    if (!threads_given) omp_set_num_threads(threads_per_rank());
    if (par->rank != 0 && ap_log_get_level() > AP_LOG_WARN) ap_log_set_level(AP_LOG_WARN);
    ap_info("MPI: %d ranks, rank 0 with %d threads", par->size, ap_num_threads());
}

ap_status cli_mpi_end(const ap_parallel *par, ap_status st, ap_error *err) {
    if (st != AP_OK) ap_error_prefix(err, "rank %d of %d", par->rank, par->size);
    MPI_Finalize();
    return st;
}
