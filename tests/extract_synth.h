/* Shared by the extraction tests (test_extract.c, test_embed.c,
 * test_shard.c): a synthetic scenarios file for the tiny fixture LM, tiny
 * AP-MAE checkpoints, and a sample-for-sample comparison of two stores. */
#ifndef APMAE_TESTS_EXTRACT_SYNTH_H
#define APMAE_TESTS_EXTRACT_SYNTH_H

#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apmae/mae.h"
#include "apmae/store.h"

static const char *const k_model = "fixtures/lm/f32_gqa_untied"; /* vocab 101, 2 layers x 4 heads, 64 positions */

/* A scenarios file: every 5th line is noise (no label), tasks alternate. */
static inline char *write_scenarios(const char *name, int lines, int n_tokens, uint64_t seed) {
    char *path = tu_tmp_path(name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    uint64_t x = seed;
    for (int i = 0; i < lines; i++) {
        int noise = i % 5 == 4;
        const char *task = noise ? "noise" : i % 2 ? "beta" : "alpha";
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        fprintf(f, "{\"id\":\"%s-%04d\",\"task\":\"%s\",\"source\":%s,\"start\":%d,\"end\":%d,\"label_id\":", task, i,
                task, noise ? "null" : "\"A.java\"", i, i + 3);
        if (noise) fprintf(f, "null");
        else fprintf(f, "%d", (int)(x % 101));
        fprintf(f, ",\"seed\":7,\"input_ids\":[");
        for (int t = 0; t < n_tokens; t++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            fprintf(f, t ? ",%d" : "%d", (int)(x % 101));
        }
        fprintf(f, "]}\n");
    }
    fclose(f);
    return path;
}

/* A randomly initialised AP-MAE from a config of tests/fixtures/store/
 * (mae_n16.json: N 16, mae_n32.json: N 32), saved under the scratch dir. */
static inline char *make_mae(const char *config, const char *name, uint64_t seed) {
    ap_mae_config cfg;
    ap_mae_model *m;
    char *dir = tu_tmp_path(name);
    TU_OK(ap_mae_config_load(config, &cfg, tu_err()));
    TU_OK(ap_mae_new(&cfg, seed, &m, tu_err()));
    TU_OK(ap_mae_save(m, dir, tu_err()));
    ap_mae_free(m);
    return dir;
}

static inline double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Same records (every field) in the same order, same input ids, patterns
 * and embeddings, bit for bit. */
static inline void assert_stores_equal(const char *a_path, const char *b_path) {
    ap_store *a, *b;
    TU_OK(ap_store_open(a_path, AP_STORE_READ, &a, tu_err()));
    TU_OK(ap_store_open(b_path, AP_STORE_READ, &b, tu_err()));
    assert_int_equal(ap_store_count(a), ap_store_count(b));
    assert_int_equal(ap_store_cursor(a), ap_store_cursor(b));
    assert_int_equal(ap_store_has_patterns(a), ap_store_has_patterns(b));
    assert_int_equal(ap_store_embedded(a), ap_store_embedded(b));
    const ap_store_meta *m = ap_store_get_meta(a), *mb = ap_store_get_meta(b);
    assert_string_equal(m->run, mb->run);
    assert_int_equal(m->dtype, mb->dtype);
    size_t tri = (size_t)m->n_tokens * (m->n_tokens + 1) / 2, N = (size_t)m->n_tokens;
    size_t ne = ap_store_embed_info_of(a) ? (size_t)m->num_layers * m->num_heads * ap_store_embed_info_of(a)->dim : 1;
    float *pa = malloc(sizeof(float) * tri), *pb = malloc(sizeof(float) * tri);
    float *ea = malloc(sizeof(float) * 2 * ne), *eb = malloc(sizeof(float) * 2 * ne);
    int32_t *ia = malloc(sizeof(int32_t) * N), *ib = malloc(sizeof(int32_t) * N);
    for (int64_t i = 0; i < ap_store_count(a); i++) {
        ap_store_sample ra, rb;
        TU_OK(ap_store_read_sample(a, i, &ra, ia, tu_err()));
        TU_OK(ap_store_read_sample(b, i, &rb, ib, tu_err()));
        assert_string_equal(ra.id, rb.id);
        assert_string_equal(ra.task, rb.task);
        assert_string_equal(ra.source, rb.source);
        assert_int_equal(ra.index, rb.index);
        assert_int_equal(ra.start, rb.start);
        assert_int_equal(ra.label_id, rb.label_id);
        assert_int_equal(ra.pred_id, rb.pred_id);
        assert_int_equal(ra.correct, rb.correct);
        assert_true(ra.entropy == rb.entropy && ra.max_prob == rb.max_prob);
        assert_true(memcmp(&ra.logprob, &rb.logprob, sizeof ra.logprob) == 0); /* NaN for noise */
        assert_memory_equal(ia, ib, sizeof(int32_t) * N);
        for (int l = 0; ap_store_has_patterns(a) && l < m->num_layers; l++)
            for (int h = 0; h < m->num_heads; h++) {
                TU_OK(ap_store_read_tri(a, i, l, h, pa, tu_err()));
                TU_OK(ap_store_read_tri(b, i, l, h, pb, tu_err()));
                assert_memory_equal(pa, pb, sizeof(float) * tri);
            }
        if (i < ap_store_embedded(a)) {
            TU_OK(ap_store_read_embeddings(a, i, ea, ea + ne, tu_err()));
            TU_OK(ap_store_read_embeddings(b, i, eb, eb + ne, tu_err()));
            assert_memory_equal(ea, eb, sizeof(float) * 2 * ne);
        }
    }
    free(pa), free(pb), free(ea), free(eb), free(ia), free(ib);
    TU_OK(ap_store_close(a, tu_err()));
    TU_OK(ap_store_close(b, tu_err()));
}

static inline void copy_file(const char *from, const char *to) {
    char *data = NULL;
    size_t len = 0;
    TU_OK(ap_read_file(from, &data, &len, tu_err()));
    tu_write_file(to, data, len);
    free(data);
}

/* The store at work (and no journal) as the one at base: a kill test's
 * starting state. */
static inline void restore_store(const char *base, const char *work) {
    char *j = malloc(strlen(work) + 16);
    sprintf(j, "%s-journal", work);
    unlink(j);
    free(j);
    copy_file(base, work);
}

/* Run apmae with argv (argv[0] "apmae", NULL-terminated). Its stderr goes
 * to the write end of a pipe when stderr_fd >= 0, else to /dev/null. */
static inline pid_t spawn_apmae(char *const *argv, int stderr_fd) {
    pid_t pid = fork();
    if (pid == 0) {
        if (stderr_fd >= 0 ? dup2(stderr_fd, STDERR_FILENO) < 0 || close(stderr_fd) != 0
                           : !freopen("/dev/null", "w", stderr))
            _exit(126);
        execv(tu_apmae_bin(), argv);
        _exit(127);
    }
    return pid;
}

static inline int run_apmae(char *const *argv) {
    int status;
    waitpid(spawn_apmae(argv, -1), &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Kill-and-resume, timed by the writer's own progress, never by the clock.
 *
 * The progress lines apmae prints when stderr is not a terminal
 * ("LABEL: NN% DONE/TOTAL ...") count committed work only (extraction and
 * `store embed` update the bar right after each commit). Each round starts
 * argv with stderr on a pipe, picks a target a few samples past what the
 * store already holds, reads the lines as they come and sends SIGKILL as
 * soon as one shows the target reached and the run not finished: the kill
 * then lands wherever the writer is in the samples after that commit. The
 * store must then open, keep every sample a line reported (progress(s) >=
 * DONE) and never go back. A run that ends before its kill (possible only
 * on a machine far faster than the writer's commits) counts as no kill:
 * reset() restores the starting state. Load only slows the writer down, so
 * the rounds wait longer; a round that sees no progress within
 * KILL_ROUND_SECONDS fails with the writer's stderr. Returns the kills that
 * left work partly done (the caller asserts there were some).
 * APMAE_TEST_SEED reproduces the targets. */
enum { KILL_ROUND_SECONDS = 300, KILL_STDERR_MAX = 1 << 16 };

/* The largest DONE of the progress lines in text (lines "LABEL: NN% DONE/TOTAL"),
 * of one label's lines only unless label is NULL. */
static inline int64_t last_reported_done(const char *text, const char *label) {
    int64_t best = -1;
    size_t n = label ? strlen(label) : 0;
    for (const char *line = text; *line; line++) {
        long long done, total;
        int pct;
        if ((line == text || line[-1] == '\n') && (!label || (strncmp(line, label, n) == 0 && line[n] == ':')) &&
            sscanf(line, "%*[a-z]: %d%% %lld/%lld", &pct, &done, &total) == 3 && done > best)
            best = done;
    }
    return best;
}

/* One round: start argv, kill it once a progress line (of label, or of any
 * bar when label is NULL) shows at least target done (and fewer than
 * total). Returns the DONE the last such line before the kill reported, or
 * -1 when the run ended by itself with exit 0. */
static inline int64_t kill_at_progress(char *const *argv, const char *label, int round, int64_t target,
                                       int64_t total) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    pid_t pid = spawn_apmae(argv, fds[1]);
    close(fds[1]);
    char *text = calloc(KILL_STDERR_MAX + 1, 1);
    size_t len = 0;
    int64_t done = -1;
    double deadline = now_seconds() + KILL_ROUND_SECONDS;
    for (;;) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int ready = poll(&p, 1, 100);
        ssize_t got = 0;
        if (ready > 0) {
            char chunk[4096];
            got = read(fds[0], chunk, sizeof chunk);
            if (got > 0) {
                if (len + (size_t)got > KILL_STDERR_MAX) { /* keep the recent half */
                    memmove(text, text + len - KILL_STDERR_MAX / 2, KILL_STDERR_MAX / 2);
                    len = KILL_STDERR_MAX / 2;
                }
                memcpy(text + len, chunk, (size_t)got);
                text[len += (size_t)got] = '\0';
            }
            done = last_reported_done(text, label);
            if (done >= target && done < total) break;
            if (got == 0) break; /* the writer ended (or closed stderr) */
        }
        if (now_seconds() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("round %d: no progress line reached %lld of %lld committed samples within %d s; the writer "
                     "printed:\n%s", round, (long long)target, (long long)total, KILL_ROUND_SECONDS, text);
        }
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    close(fds[0]);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fail_msg("round %d: the writer failed (exit %d):\n%s", round, WEXITSTATUS(status), text);
    free(text);
    return WIFEXITED(status) ? -1 : done;
}

static inline int kill_rounds(char *const *argv, const char *store, int64_t (*progress)(const ap_store *), int64_t total,
                              void (*reset)(void)) {
    const char *seed_env = getenv("APMAE_TEST_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    print_message("kill rounds on %s: seed %u (APMAE_TEST_SEED reproduces it)\n", store, seed);
    srand(seed);
    int partial = 0;
    int64_t last = 0, step = total / 8 > 1 ? total / 8 : 1; /* three kills stay in the first half of the run */
    reset();
    for (int round = 0; round < 8 && partial < 3; round++) {
        int64_t target = last + 1 + rand() % step;
        int64_t reported = kill_at_progress(argv, NULL, round, target, total);
        if (reported < 0) { /* it finished before its kill: start over */
            reset();
            last = 0;
            continue;
        }
        ap_store *s;
        TU_OK(ap_store_open(store, AP_STORE_READ, &s, tu_err()));
        int64_t n = progress(s);
        TU_OK(ap_store_close(s, tu_err()));
        if (n < reported || n < last)
            fail_msg("round %d: the store holds %lld samples after the kill, but %lld were committed", round,
                     (long long)n, (long long)(reported > last ? reported : last));
        last = n;
        if (n < total) partial++;
        else reset(), last = 0; /* killed while closing a finished run */
    }
    print_message("kill rounds on %s: %d kills left the run part-done\n", store, partial);
    return partial;
}

#endif
