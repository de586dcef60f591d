/* Tests of data parallelism without MPI: the ranks are forked processes
 * whose sum goes through shared memory, a stand-in for MPI_Allreduce
 * (docs/scale.md). ap_parallel_share, ap_parallel_agree and
 * ap_parallel_check_same; ap_mae_train's protocol: a failure of one rank, at
 * the start or mid-run, stops every rank at the same point with a message
 * naming it, and none waits for ever (each rank has an alarm; a rank killed
 * by it fails the test). Equality with a process alone is tested under
 * mpirun by tests/cli_mae_mpi.sh. */
#include "testutil.h"

#include <libgen.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apmae/mae_train.h"

enum { MAX_RANKS = 4, SLOT = 1 << 14 /* floats per rank and round of a sum */, ALARM_S = 120 };

/* Shared by the forked ranks: the sum's slots, and what each rank returned. */
typedef struct group {
    pthread_barrier_t barrier;
    int size;
    float x[MAX_RANKS][SLOT];
    ap_status status[MAX_RANKS];
    char msg[MAX_RANKS][1024];
    int64_t step[MAX_RANKS]; /* ap_mae_train's result.step */
} group;

static int g_rank; /* this process's rank (each forked child sets its own) */

/* Each rank's x into its slot, then every rank adds the slots in rank
 * order: the same sum on every rank. */
static ap_status group_sum(void *ctx, float *x, size_t n, ap_error *err) {
    (void)err;
    group *g = ctx;
    for (size_t off = 0; off < n; off += SLOT) {
        size_t c = n - off < SLOT ? n - off : SLOT;
        memcpy(g->x[g_rank], x + off, c * sizeof *x);
        pthread_barrier_wait(&g->barrier);
        for (size_t i = 0; i < c; i++) {
            float s = 0;
            for (int r = 0; r < g->size; r++) s += g->x[r][i];
            x[off + i] = s;
        }
        pthread_barrier_wait(&g->barrier);
    }
    return AP_OK;
}

typedef ap_status (*rank_fn)(const ap_parallel *par, const void *arg, int64_t *step, ap_error *err);

/* Run fn on `size` forked ranks; returns the group with what each returned
 * (munmap with free_group). Every rank must exit normally: one that an
 * alarm killed was waiting for ever. */
static group *run_ranks(int size, rank_fn fn, const void *arg) {
    group *g = mmap(NULL, sizeof *g, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(g != MAP_FAILED);
    memset(g, 0, sizeof *g);
    g->size = size;
    pthread_barrierattr_t attr;
    pthread_barrierattr_init(&attr);
    pthread_barrierattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    assert_int_equal(pthread_barrier_init(&g->barrier, &attr, (unsigned)size), 0);
    pthread_barrierattr_destroy(&attr);
    fflush(NULL);
    pid_t pids[MAX_RANKS];
    for (int r = 0; r < size; r++) {
        pids[r] = fork();
        assert_true(pids[r] >= 0);
        if (pids[r] == 0) {
            alarm(ALARM_S);
            g_rank = r;
            ap_parallel par = {.rank = r, .size = size, .sum = group_sum, .ctx = g};
            ap_error err = {0};
            g->step[r] = -1;
            g->status[r] = fn(&par, arg, &g->step[r], &err);
            snprintf(g->msg[r], sizeof g->msg[r], "%s", err.msg);
            _exit(0);
        }
    }
    for (int r = 0; r < size; r++) {
        int ws = 0;
        assert_int_equal(waitpid(pids[r], &ws, 0), pids[r]);
        if (!WIFEXITED(ws)) fail_msg("rank %d of %d did not exit (signal %d): it waited for ever", r, size, WTERMSIG(ws));
    }
    return g;
}

static void free_group(group *g) {
    pthread_barrier_destroy(&g->barrier);
    munmap(g, sizeof *g);
}

static void test_share(void **state) {
    (void)state;
    for (int size = 1; size <= 5; size++)
        for (int B = size; B <= 23; B++) {
            int next = 0, lo, n, least = B, most = 0;
            for (int r = 0; r < size; r++) {
                ap_parallel_share(B, r, size, &lo, &n);
                assert_int_equal(lo, next); /* consecutive, in rank order */
                next = lo + n;
                least = n < least ? n : least;
                most = n > most ? n : most;
            }
            assert_int_equal(next, B);
            assert_true(most - least <= 1 && least >= 1);
        }
    int lo, n;
    ap_parallel_share(7, 2, 3, &lo, &n);
    assert_true(lo == 4 && n == 3);
}

/* arg: the ranks that fail (a bit each), with the message "boom on rank r". */
static ap_status agree_rank(const ap_parallel *par, const void *arg, int64_t *step, ap_error *err) {
    (void)step;
    unsigned failing = *(const unsigned *)arg;
    ap_status st = failing >> par->rank & 1 ? ap_fail(err, AP_ERR_FORMAT, "boom on rank %d", par->rank) : AP_OK;
    return ap_parallel_agree(par, st, err);
}

static void test_agree(void **state) {
    (void)state;
    unsigned none = 0, ranks_1_2 = 6;
    group *g = run_ranks(3, agree_rank, &none);
    for (int r = 0; r < 3; r++) assert_int_equal(g->status[r], AP_OK);
    free_group(g);
    g = run_ranks(3, agree_rank, &ranks_1_2);
    assert_int_equal(g->status[0], AP_ERR_IO); /* told, naming the first rank that failed */
    assert_non_null(strstr(g->msg[0], "rank 1 of 3 failed"));
    for (int r = 1; r < 3; r++) { /* the failed ranks keep their own error */
        char want[32];
        snprintf(want, sizeof want, "boom on rank %d", r);
        assert_int_equal(g->status[r], AP_ERR_FORMAT);
        assert_string_equal(g->msg[r], want);
    }
    free_group(g);
    assert_int_equal(ap_parallel_agree(NULL, AP_ERR_ARG, NULL), AP_ERR_ARG); /* alone: the status itself */
}

/* arg: the rank whose value differs (-1: none); a 64-bit value with every byte in use. */
static ap_status same_rank(const ap_parallel *par, const void *arg, int64_t *step, ap_error *err) {
    (void)step;
    uint64_t v = 0xfedcba9876543210ull ^ (par->rank == *(const int *)arg ? 1ull << 56 : 0);
    return ap_parallel_check_same(par, v, "value", err);
}

static void test_check_same(void **state) {
    (void)state;
    int none = -1, two = 2;
    group *g = run_ranks(3, same_rank, &none);
    for (int r = 0; r < 3; r++) assert_int_equal(g->status[r], AP_OK);
    free_group(g);
    g = run_ranks(3, same_rank, &two);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(g->status[r], AP_ERR_INTERNAL);
        assert_non_null(strstr(g->msg[r], "rank 2 of 3 holds another value than rank 0"));
    }
    free_group(g);
}

/* ---- ap_mae_train on ranks ----------------------------------------------------------------- */

static char *g_store, *g_cfg;

static int setup(void **state) {
    (void)state;
    omp_set_num_threads(1);
    ap_log_set_level(AP_LOG_ERROR);
    g_store = tu_fresh_store_path("s.h5");
    g_cfg = strdup("fixtures/store/mae_n16.json");
    char *bin = strdup(tu_apmae_bin());
    int rc = tu_run(NULL, "%s/../tests/store_writer_tool write %s --total 30 --n 16 --layers 2 --heads 3 --dtype bf16",
                    dirname(bin), g_store);
    free(bin);
    return rc == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    free(g_store);
    free(g_cfg);
    return 0;
}

typedef struct train_arg {
    ap_mae_train_options o;
    const char *store_of_rank_1; /* rank 1 reads this store instead (NULL: the same) */
} train_arg;

static ap_status train_rank(const ap_parallel *par, const void *arg, int64_t *step, ap_error *err) {
    const train_arg *a = arg;
    ap_mae_train_options o = a->o;
    o.parallel = par;
    if (par->rank == 1 && a->store_of_rank_1) o.store = a->store_of_rank_1;
    ap_mae_train_result r;
    ap_status st = ap_mae_train(&o, &r, err);
    *step = r.step;
    return st;
}

static train_arg train_options(const char *out) {
    train_arg a;
    memset(&a, 0, sizeof a);
    ap_mae_train_options_default(&a.o);
    a.o.store = g_store;
    a.o.config = g_cfg;
    a.o.out = out;
    a.o.batch = 5;
    a.o.steps = 10;
    a.o.checkpoint_every = 3;
    a.o.eval_every = 2;
    return a;
}

/* Rank 1 cannot open its store: every rank stops before DIR is written. */
static void test_train_setup_failure(void **state) {
    (void)state;
    char *out = tu_tmp_path("setup_failure"), *missing = tu_tmp_path("missing.h5");
    train_arg a = train_options(out);
    a.store_of_rank_1 = missing;
    group *g = run_ranks(2, train_rank, &a);
    assert_int_equal(g->status[1], AP_ERR_IO);
    assert_non_null(strstr(g->msg[1], "missing.h5"));
    assert_int_equal(g->status[0], AP_ERR_IO);
    assert_non_null(strstr(g->msg[0], "rank 1 of 2 failed"));
    assert_false(ap_path_exists(out));
    free_group(g);
    free(out);
    free(missing);
}

/* Rank 0 cannot write its first checkpoint (step 3: a directory stands
 * where model.safetensors goes): both ranks stop after step 3. Then 3 ranks
 * with batch 5 (shares 1, 2, 2) run to the end, and a batch smaller than
 * the rank count is refused on every rank. */
static void test_train_midrun_failure(void **state) {
    (void)state;
    char *out = tu_tmp_path("midrun_failure"), *blocker = tu_tmp_path("midrun_failure/model.safetensors");
    assert_int_equal(mkdir(out, 0777), 0);
    assert_int_equal(mkdir(blocker, 0777), 0);
    train_arg a = train_options(out);
    group *g = run_ranks(2, train_rank, &a);
    assert_int_equal(g->status[0], AP_ERR_IO);
    assert_non_null(strstr(g->msg[0], "model.safetensors"));
    assert_int_equal(g->status[1], AP_ERR_IO);
    assert_non_null(strstr(g->msg[1], "rank 0 of 2 failed"));
    assert_int_equal(g->step[0], 3);
    assert_int_equal(g->step[1], 3);
    free_group(g);

    char *fine = tu_tmp_path("three_ranks");
    a = train_options(fine);
    g = run_ranks(3, train_rank, &a);
    for (int r = 0; r < 3; r++) {
        if (g->status[r] != AP_OK) fail_msg("rank %d: %s", r, g->msg[r]);
        assert_int_equal(g->step[r], 10);
    }
    free_group(g);

    a = train_options(out);
    a.o.batch = 2;
    g = run_ranks(3, train_rank, &a);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(g->status[r], AP_ERR_ARG);
        assert_non_null(strstr(g->msg[r], "--batch 2 is smaller than the 3 ranks"));
    }
    free_group(g);
    free(out);
    free(blocker);
    free(fine);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_agree),
        cmocka_unit_test(test_check_same),
        cmocka_unit_test(test_train_setup_failure),
        cmocka_unit_test(test_train_midrun_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
