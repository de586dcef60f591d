/* Shared by the extraction tests (test_extract.c, test_embed.c,
 * test_shard.c): a synthetic scenarios file for the tiny fixture LM, tiny
 * AP-MAE checkpoints, and a sample-for-sample comparison of two stores. */
#ifndef APMAE_TESTS_EXTRACT_SYNTH_H
#define APMAE_TESTS_EXTRACT_SYNTH_H

#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apmae/mae.h"
#include "apmae/store.h"

static const char k_model[] = "fixtures/lm/f32_gqa_untied"; /* vocab 101, 2 layers x 4 heads, 64 positions */

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

static inline void sleep_seconds(double s) {
    struct timespec d = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&d, NULL);
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

/* Run apmae with argv (argv[0] "apmae", NULL-terminated), stderr muted. */
static inline pid_t spawn_apmae(char *const *argv) {
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(126);
        execv(tu_apmae_bin(), argv);
        _exit(127);
    }
    return pid;
}

static inline int run_apmae(char *const *argv) {
    int status;
    waitpid(spawn_apmae(argv), &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Kill-and-resume: runs of argv that write `store` are killed with SIGKILL
 * at random moments within `full` seconds (an uninterrupted run's time);
 * after each kill the store must open and its progress (samples, or
 * embedded samples) never go back. reset() restores the starting state
 * when a run finished before its kill. Returns the kills that left work
 * partly done (the caller asserts there were some). */
static inline int kill_rounds(char *const *argv, const char *store, int64_t (*progress)(const ap_store *), int64_t total,
                              double full, void (*reset)(void)) {
    srand((unsigned)time(NULL));
    int partial = 0, status;
    int64_t last = 0;
    double scale = 1.0, lo = 0.1; /* kills land in [lo, lo + 0.6] x full x scale */
    reset();
    for (int round = 0; round < 16 && partial < 3; round++) {
        pid_t pid = spawn_apmae(argv);
        sleep_seconds(full * scale * (lo + 0.6 * (rand() % 1000) / 1000.0));
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        if (WIFEXITED(status)) { /* it finished before the kill: start over, kill sooner */
            reset();
            last = 0;
            scale *= 0.5;
            continue;
        }
        ap_store *s;
        if (ap_store_open(store, AP_STORE_READ, &s, tu_err()) != AP_OK) { /* killed before creating it? */
            print_message("round %d: %s\n", round, tu_last_error()->msg);
            continue;
        }
        int64_t n = progress(s);
        assert_true(n >= last); /* committed work never disappears */
        last = n;
        partial += n > 0 && n < total;
        if (n == 0) lo += (0.4 - lo) / 2; /* start-up took most of the time (e.g. under ASan): kill later */
        TU_OK(ap_store_close(s, tu_err()));
    }
    return partial;
}

#endif
