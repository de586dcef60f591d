/* Test-only helper for the store (built with the tests, not installed).
 *
 *   store_writer_tool write STORE --total K [--every C] [--crash-at M] [geometry]
 *       Create STORE (or reopen it and resume after its last sample) and
 *       append synthetic samples s000000.. up to K, committing every C
 *       samples and printing "done <count>" after each commit. --crash-at M
 *       makes the M-th file modification kill the process (SIGKILL, with a
 *       torn write); --kill-after A kills it right after appending sample
 *       count A, committed or not; --verify then checks the finished store
 *       as verify --exact K does. Prints "modifications <n>" on stderr at
 *       the end.
 *   store_writer_tool verify STORE [--min M] [--exact K]
 *       Check that STORE holds samples s000000.. in order, no gap or
 *       duplicate, each equal to its synthetic expectation; at least M of
 *       them (exactly K with --exact). Prints "ok <count>".
 *   store_writer_tool bench --out STORE [--samples S] [--sharpness X] [geometry]
 *       Write S synthetic samples and print one JSON line: bytes per pattern
 *       vs dense float32, the worst relative error on entries >= 1e-4, the
 *       worst |log ratio| on entries in [1e-30, 1e-4) and the share of those
 *       stored as 0, and patterns/s of append+commit.
 *
 * geometry: --n N --layers L --heads H --dtype f32|f16|bf16 --small-bits B
 * --deflate Z (defaults: 16 tokens, 2 layers, 3 heads, f32, 0-level defaults).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/store.h"
#include "store/internal.h"
#include "store_synth.h"

typedef struct opts {
    const char *cmd, *store;
    int64_t total, every, crash_at, kill_after, min, exact, samples;
    int n, layers, heads, small_bits, deflate, verify;
    ap_dtype dtype;
    double sharpness;
} opts;

static int die(const char *what, const ap_error *e) {
    fprintf(stderr, "store_writer_tool: %s: %s\n", what, e ? e->msg : "");
    return 1;
}

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.every = 1, .min = 0, .exact = -1, .samples = 4, .n = 16, .layers = 2, .heads = 3,
                .small_bits = -1, .deflate = -1, .dtype = AP_F32, .sharpness = 1.0};
    if (argc < 2) return -1;
    o->cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            o->store = a;
            continue;
        }
        if (!strcmp(a, "--verify")) {
            o->verify = 1;
            continue;
        }
        if (!v) return -1;
        i++;
        if (!strcmp(a, "--total")) o->total = atoll(v);
        else if (!strcmp(a, "--every")) o->every = atoll(v);
        else if (!strcmp(a, "--crash-at")) o->crash_at = atoll(v);
        else if (!strcmp(a, "--kill-after")) o->kill_after = atoll(v);
        else if (!strcmp(a, "--min")) o->min = atoll(v);
        else if (!strcmp(a, "--exact")) o->exact = atoll(v);
        else if (!strcmp(a, "--samples")) o->samples = atoll(v);
        else if (!strcmp(a, "--out")) o->store = v;
        else if (!strcmp(a, "--n")) o->n = atoi(v);
        else if (!strcmp(a, "--layers")) o->layers = atoi(v);
        else if (!strcmp(a, "--heads")) o->heads = atoi(v);
        else if (!strcmp(a, "--small-bits")) o->small_bits = atoi(v);
        else if (!strcmp(a, "--deflate")) o->deflate = atoi(v);
        else if (!strcmp(a, "--sharpness")) o->sharpness = atof(v);
        else if (!strcmp(a, "--dtype")) {
            if (!strcmp(v, "f32")) o->dtype = AP_F32;
            else if (!strcmp(v, "f16")) o->dtype = AP_F16;
            else if (!strcmp(v, "bf16")) o->dtype = AP_BF16;
            else return -1;
        } else return -1;
    }
    return o->store ? 0 : -1;
}

static ap_store_meta meta_of(const opts *o) {
    static const int64_t seeds[2] = {7, 11};
    return (ap_store_meta){.model_id = "synthetic",
                           .model_config = "{\"model_type\": \"synthetic\"}",
                           .n_tokens = o->n,
                           .num_layers = o->layers,
                           .num_heads = o->heads,
                           .dtype = o->dtype,
                           .small_bits = o->small_bits,
                           .deflate = o->deflate,
                           .tasks = k_synth_tasks,
                           .ntasks = 3,
                           .seeds = seeds,
                           .nseeds = 2,
                           .run = "{\"tool\": \"store_writer_tool\"}"};
}

static int cmd_verify(const opts *o);

static int cmd_write(const opts *o) {
    ap_error e = {0};
    ap_store *s = NULL;
    ap_store_crash_after(o->crash_at);
    ap_store_meta m = meta_of(o);
    ap_status st = ap_path_exists(o->store) ? ap_store_open(o->store, AP_STORE_APPEND, &s, &e)
                                            : ap_store_create(o->store, &m, &s, &e);
    if (st != AP_OK) return die("open", &e);
    const ap_store_meta *sm = ap_store_get_meta(s);
    int N = sm->n_tokens, L = sm->num_layers, H = sm->num_heads;
    float *attn = malloc(sizeof(float) * (size_t)L * H * N * N);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)N);
    char id[32], src[64];
    /* The resume point: the cursor counts samples written, so a rerun
     * continues with the next one and never repeats or skips one. */
    for (int64_t i = ap_store_cursor(s); st == AP_OK && i < o->total; i++) {
        ap_store_sample r;
        synth_record(i, N, id, src, &r, ids);
        synth_patterns(i, N, L, H, 1.0, attn);
        st = ap_store_append(s, &r, ids, attn, &e);
        ap_store_set_cursor(s, i + 1);
        if (i + 1 == o->kill_after) raise(SIGKILL);
        if (st == AP_OK && ((i + 1) % o->every == 0 || i + 1 == o->total)) {
            st = ap_store_commit(s, &e);
            if (st == AP_OK) {
                printf("done %lld\n", (long long)ap_store_committed(s));
                fflush(stdout);
            }
        }
    }
    free(attn);
    free(ids);
    if (st != AP_OK) {
        ap_store_close(s, NULL);
        return die("write", &e);
    }
    if (ap_store_close(s, &e) != AP_OK) return die("close", &e);
    fprintf(stderr, "modifications %lld\n", (long long)ap_store_modifications());
    if (!o->verify) return 0;
    opts v = *o;
    v.exact = o->total;
    return cmd_verify(&v);
}

static int cmd_verify(const opts *o) {
    ap_error e = {0};
    ap_store *s = NULL;
    if (ap_store_open(o->store, AP_STORE_READ, &s, &e) != AP_OK) return die("open", &e);
    const ap_store_meta *m = ap_store_get_meta(s);
    int N = m->n_tokens, L = m->num_layers, H = m->num_heads;
    size_t NN = (size_t)N * N, total = (size_t)L * H * NN;
    int64_t n = ap_store_count(s);
    float *want = malloc(sizeof(float) * total), *got = malloc(sizeof(float) * total);
    void *enc = malloc(sizeof(float) * total);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)N), *got_ids = malloc(sizeof(int32_t) * (size_t)N);
    char id[32], src[64], why[256] = "";
    if (n < o->min) snprintf(why, sizeof why, "%lld samples, fewer than the %lld reported done", (long long)n, (long long)o->min);
    if (!why[0] && o->exact >= 0 && n != o->exact)
        snprintf(why, sizeof why, "%lld samples, expected exactly %lld", (long long)n, (long long)o->exact);
    if (!why[0] && ap_store_cursor(s) != n)
        snprintf(why, sizeof why, "cursor %lld differs from the %lld samples", (long long)ap_store_cursor(s), (long long)n);
    for (int64_t i = 0; !why[0] && i < n; i++) {
        ap_store_sample want_r, r;
        synth_record(i, N, id, src, &want_r, ids);
        if (ap_store_read_sample(s, i, &r, got_ids, &e) != AP_OK) return die("read", &e);
        if (strcmp(r.id, want_r.id) != 0 || strcmp(r.task, want_r.task) != 0 || strcmp(r.source, want_r.source) != 0 ||
            r.start != want_r.start || r.end != want_r.end || r.label_id != want_r.label_id ||
            r.pred_id != want_r.pred_id || r.correct != want_r.correct || r.logprob != want_r.logprob ||
            r.entropy != want_r.entropy || r.max_prob != want_r.max_prob ||
            memcmp(ids, got_ids, sizeof(int32_t) * (size_t)N) != 0) {
            snprintf(why, sizeof why, "sample %lld is '%s', not the expected '%s' (or its fields differ)", (long long)i,
                     r.id, want_r.id);
            break;
        }
        synth_patterns(i, N, L, H, 1.0, want);
        /* What the store must give back: the expectation through its codec. */
        ap_store_encode(m->dtype, m->small_bits, want, enc, total);
        ap_to_f32(m->dtype, enc, want, total);
        for (size_t p = 0; p < (size_t)L * H; p++)
            for (int a = 0; a < N; a++)
                for (int b = a + 1; b < N; b++) want[p * NN + (size_t)a * N + b] = 0;
        if (ap_store_read_patterns(s, i, got, &e) != AP_OK) return die("read patterns", &e);
        if (memcmp(want, got, sizeof(float) * total) != 0)
            snprintf(why, sizeof why, "sample %lld: patterns differ from the expectation", (long long)i);
    }
    free(want);
    free(got);
    free(enc);
    free(ids);
    free(got_ids);
    ap_store_close(s, NULL);
    if (why[0]) {
        fprintf(stderr, "store_writer_tool: verify %s: %s\n", o->store, why);
        return 1;
    }
    printf("ok %lld\n", (long long)n);
    return 0;
}

static int cmd_bench(const opts *o) {
    ap_error e = {0};
    ap_store *s = NULL;
    ap_store_meta m = meta_of(o);
    int N = o->n, L = o->layers, H = o->heads;
    size_t NN = (size_t)N * N, per = (size_t)L * H * NN;
    float *attn = malloc(sizeof(float) * per * (size_t)o->samples), *back = malloc(sizeof(float) * NN);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)N);
    for (int64_t i = 0; i < o->samples; i++) synth_patterns(i, N, L, H, o->sharpness, attn + per * (size_t)i);
    if (ap_store_create(o->store, &m, &s, &e) != AP_OK) return die("create", &e);
    char id[32], src[64];
    double t0 = ap_now();
    for (int64_t i = 0; i < o->samples; i++) {
        ap_store_sample r;
        synth_record(i, N, id, src, &r, ids);
        if (ap_store_append(s, &r, ids, attn + per * (size_t)i, &e) != AP_OK) return die("append", &e);
    }
    if (ap_store_commit(s, &e) != AP_OK) return die("commit", &e);
    double dt = ap_now() - t0;
    double worst_big = 0, worst_small_log = 0, small_zero = 0, small = 0, big = 0;
    for (int64_t i = 0; i < o->samples; i++)
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++) {
                if (ap_store_read_pattern(s, i, l, h, back, &e) != AP_OK) return die("read", &e);
                const float *want = attn + per * (size_t)i + ((size_t)l * H + h) * NN;
                for (int a = 0; a < N; a++)
                    for (int b = 0; b <= a; b++) {
                        double x = want[(size_t)a * N + b], y = back[(size_t)a * N + b];
                        if (x >= 1e-4) {
                            big++;
                            if (fabs(y - x) / x > worst_big) worst_big = fabs(y - x) / x;
                        } else if (x >= 1e-30) { /* below: float32 subnormal dust */
                            small++;
                            if (y <= 0) small_zero++;
                            else if (fabs(log(y / x)) > worst_small_log) worst_small_log = fabs(log(y / x));
                        }
                    }
            }
    ap_store_size sz;
    if (ap_store_size_of(s, &sz, &e) != AP_OK) return die("size", &e);
    const ap_store_meta *sm = ap_store_get_meta(s);
    printf("{\"dtype\": \"%s\", \"small_bits\": %d, \"deflate\": %d, \"n\": %d, \"sharpness\": %g, "
           "\"share_small\": %.3f, \"bytes_per_pattern\": %.0f, \"ratio_vs_dense_f32\": %.2f, "
           "\"max_rel_err_ge_1e-4\": %.3g, \"max_abs_log_err_small\": %.3g, \"small_flushed_to_zero\": %.3f, "
           "\"patterns_per_s\": %.0f}\n",
           ap_store_dtype_name(sm->dtype), sm->small_bits, sm->deflate, N, o->sharpness, small / (small + big),
           (double)sz.pattern_bytes / (double)sz.patterns,
           (double)NN * 4 / ((double)sz.pattern_bytes / (double)sz.patterns), worst_big, worst_small_log,
           small > 0 ? small_zero / small : 0, (double)sz.patterns / dt);
    free(attn);
    free(back);
    free(ids);
    return ap_store_close(s, &e) == AP_OK ? 0 : die("close", &e);
}

int main(int argc, char **argv) {
    opts o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: store_writer_tool write|verify|bench STORE [flags] (see the source)\n");
        return 2;
    }
    if (!strcmp(o.cmd, "write")) return cmd_write(&o);
    if (!strcmp(o.cmd, "verify")) return cmd_verify(&o);
    if (!strcmp(o.cmd, "bench")) return cmd_bench(&o);
    fprintf(stderr, "store_writer_tool: unknown command '%s'\n", o.cmd);
    return 2;
}
