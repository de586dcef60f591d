/* The pattern store: round trips per dtype, metadata and counts, lookup,
 * head selection, clear errors on foreign or damaged files, rollback of an
 * interrupted writer, locking, and the PNG colour map. The kill-and-resume
 * test at random moments is tests/cli_store_crash.sh. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apmae/store.h"
#include "store/internal.h"
#include "store_synth.h"

enum { N = 24, L = 2, H = 6 };
static const int64_t k_seeds[2] = {42, 43};

static ap_store_meta meta(ap_dtype dt, int small_bits) {
    return (ap_store_meta){.model_id = "tiny-sc2",
                           .model_config = "{\"model_type\": \"starcoder2\", \"hidden_size\": 64}",
                           .n_tokens = N,
                           .num_layers = L,
                           .num_heads = H,
                           .dtype = dt,
                           .small_bits = small_bits,
                           .deflate = -1,
                           .tasks = k_synth_tasks,
                           .ntasks = 3,
                           .seeds = k_seeds,
                           .nseeds = 2,
                           .run = "{\"balance\": \"none\"}"};
}

/* Append samples first..first+n-1 of the synthetic set. */
static void append_synth(ap_store *s, int64_t first, int64_t n, double sharpness) {
    float *attn = malloc(sizeof(float) * L * H * N * N);
    int32_t ids[N];
    char id[32], src[64];
    for (int64_t i = first; i < first + n; i++) {
        ap_store_sample r;
        synth_record(i, N, id, src, &r, ids);
        synth_patterns(i, N, L, H, sharpness, attn);
        TU_OK(ap_store_append(s, &r, ids, attn, tu_err()));
    }
    free(attn);
}

static ap_store *make_store(const char *path, ap_dtype dt, int small_bits, int64_t n) {
    ap_store *s = NULL;
    ap_store_meta m = meta(dt, small_bits);
    TU_OK(ap_store_create(path, &m, &s, tu_err()));
    append_synth(s, 0, n, 1.0);
    TU_OK(ap_store_commit(s, tu_err()));
    return s;
}

/* Store 3 synthetic samples and compare what comes back with the originals:
 * the worst relative error of entries >= 1e-4 must be within big (and above
 * big / 8: the dtype really narrowed), of entries in [1e-30, 1e-4) within
 * small (when > 0), and the worst absolute error of entries below 2^-14
 * within tiny (when > 0). big = 0: everything must be exact. */
static void check_roundtrip(ap_dtype dt, int small_bits, double big, double small, double tiny) {
    char *path = tu_fresh_store_path("rt.h5");
    ap_store *s = make_store(path, dt, small_bits, 3);
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_count(s), 3);
    float *want = malloc(sizeof(float) * L * H * N * N), *got = malloc(sizeof(float) * N * N);
    float *all = malloc(sizeof(float) * L * H * N * N), *tri = malloc(sizeof(float) * ap_tri_size(N));
    double worst_big = 0, worst_small = 0, worst_tiny = 0, worst_any = 0;
    for (int64_t i = 0; i < 3; i++) {
        synth_patterns(i, N, L, H, 1.0, want);
        TU_OK(ap_store_read_patterns(s, i, all, tu_err()));
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++) {
                const float *w = want + ((size_t)l * H + h) * N * N;
                TU_OK(ap_store_read_pattern(s, i, l, h, got, tu_err()));
                assert_memory_equal(got, all + ((size_t)l * H + h) * N * N, sizeof(float) * N * N);
                TU_OK(ap_store_read_tri(s, i, l, h, tri, tu_err()));
                for (int a = 0; a < N; a++)
                    for (int b = 0; b < N; b++) {
                        double x = w[a * N + b], y = got[a * N + b];
                        if (b > a) {
                            assert_true(y == 0); /* upper triangle */
                            continue;
                        }
                        assert_true(tri[(size_t)a * (a + 1) / 2 + b] == got[a * N + b]);
                        double rel = x > 0 ? fabs(y - x) / x : fabs(y);
                        if (x >= AP_STORE_SMALL_BELOW) worst_big = fmax(worst_big, rel);
                        else if (x >= 1e-30) worst_small = fmax(worst_small, rel);
                        if (x < 0x1p-14) worst_tiny = fmax(worst_tiny, fabs(y - x));
                        worst_any = fmax(worst_any, fabs(y - x));
                    }
            }
    }
    if (big == 0) {
        assert_true(worst_any == 0);
    } else {
        assert_true(worst_big <= big);
        assert_true(worst_big > big / 8);
        if (small > 0) assert_true(worst_small <= small);
        if (tiny > 0) assert_true(worst_tiny <= tiny);
    }
    free(want);
    free(got);
    free(all);
    free(tri);
    ap_store_close(s, NULL);
    free(path);
}

static void test_roundtrip_f32(void **state) {
    (void)state;
    check_roundtrip(AP_F32, -1, 0, 0, 0);
}

/* f16: entries >= 1e-4 are normal halves (rounding <= 2^-11 relative);
 * below 2^-14 they are subnormal, absolute error <= 2^-25. */
static void test_roundtrip_f16(void **state) {
    (void)state;
    check_roundtrip(AP_F16, -1, 0x1p-11, 0, 0x1p-25);
}

/* Plain bf16: 8 significant bits everywhere (<= 2^-8 relative). */
static void test_roundtrip_bf16(void **state) {
    (void)state;
    check_roundtrip(AP_BF16, 7, 0x1p-8, 0x1p-8, 0);
}

/* The default: bf16 keeping 3 mantissa bits below 1e-4 (<= 2^-4 there). */
static void test_roundtrip_bf16_default(void **state) {
    (void)state;
    check_roundtrip(AP_BF16, -1, 0x1p-8, 0x1p-4, 0);
}

/* The bf16 narrowing with k mantissa bits rounds to nearest even. */
static void test_encode_rounding(void **state) {
    (void)state;
    float in[4] = {1.0e-5f, 0.5f, 3.0e-5f, 0.0f};
    uint16_t out[4];
    ap_store_encode(AP_BF16, 0, in, out, 4);
    assert_int_equal(out[1], ap_f32_to_bf16(0.5f)); /* >= 1e-4: full bf16 */
    assert_true(ap_bf16_to_f32(out[3]) == 0.0f);
    /* k = 0: powers of two only, the nearer one in value */
    assert_true(ap_bf16_to_f32(out[0]) == 0x1p-17f);  /* 1e-5 = 1.31 * 2^-17 */
    assert_true(ap_bf16_to_f32(out[2]) == 0x1p-15f);  /* 3e-5 = 1.97 * 2^-16 rounds up */
    float half = 0x1.8p-16f;                          /* a tie at k = 0 goes to the even exponent */
    ap_store_encode(AP_BF16, 0, &half, out, 1);
    assert_true(ap_bf16_to_f32(out[0]) == 0x1p-15f);
}

static void test_meta_counts_filter(void **state) {
    (void)state;
    char *path = tu_fresh_store_path("meta.h5");
    ap_store *s = make_store(path, AP_BF16, -1, 9);
    ap_store_set_cursor(s, 12);
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    const ap_store_meta *m = ap_store_get_meta(s);
    assert_string_equal(m->model_id, "tiny-sc2");
    assert_string_equal(m->model_config, "{\"model_type\": \"starcoder2\", \"hidden_size\": 64}");
    assert_string_equal(m->run, "{\"balance\": \"none\"}");
    assert_int_equal(m->n_tokens, N);
    assert_int_equal(m->num_layers, L);
    assert_int_equal(m->num_heads, H);
    assert_int_equal(m->dtype, AP_BF16);
    assert_int_equal(m->small_bits, 3);
    assert_int_equal(m->deflate, 1);
    assert_int_equal(m->ntasks, 3);
    assert_string_equal(m->tasks[1], "eol");
    assert_int_equal(m->nseeds, 2);
    assert_int_equal(m->seeds[1], 43);
    assert_string_equal(ap_store_tool_version(s), AP_VERSION);
    assert_int_equal(ap_store_cursor(s), 12);
    assert_int_equal(ap_store_count(s), 9);
    /* synthetic sample i: task i % 3, correct (i / 3) % 2 */
    int64_t *idx = NULL;
    size_t n = 0;
    TU_OK(ap_store_filter(s, "eol", 1, &idx, &n, tu_err()));
    assert_int_equal(n, 1);
    assert_int_equal(idx[0], 4);
    free(idx);
    TU_OK(ap_store_filter(s, NULL, 0, &idx, &n, tu_err()));
    assert_int_equal(n, 6);
    assert_int_equal(idx[5], 8);
    free(idx);
    TU_OK(ap_store_filter(s, "identifiers", -1, &idx, &n, tu_err()));
    assert_int_equal(n, 3);
    free(idx);
    TU_OK(ap_store_filter(s, "nope", -1, &idx, &n, tu_err()));
    assert_int_equal(n, 0);
    ap_store_sample r;
    int32_t ids[N], want_ids[N];
    char id[32], src[64];
    ap_store_sample want;
    synth_record(7, N, id, src, &want, want_ids);
    TU_OK(ap_store_read_sample(s, 7, &r, ids, tu_err()));
    assert_string_equal(r.id, "s000007");
    assert_string_equal(r.source, want.source);
    assert_int_equal(r.end, want.end);
    assert_int_equal(r.label_id, want.label_id);
    assert_true(r.max_prob == want.max_prob);
    assert_memory_equal(ids, want_ids, sizeof ids);
    ap_store_size sz;
    TU_OK(ap_store_size_of(s, &sz, tu_err()));
    assert_int_equal(sz.patterns, 9 * L * H);
    assert_true(sz.pattern_bytes > 0 && sz.pattern_bytes < sz.file_bytes);
    ap_store_close(s, NULL);
    free(path);
}

static void test_find_and_duplicates(void **state) {
    (void)state;
    char *path = tu_fresh_store_path("find.h5");
    ap_store *s = make_store(path, AP_F16, -1, 5);
    append_synth(s, 5, 1, 1.0); /* pending, not committed */
    assert_int_equal(ap_store_find(s, "s000003"), 3);
    assert_int_equal(ap_store_find(s, "s000005"), 5);
    assert_int_equal(ap_store_find(s, "s000099"), -1);
    assert_int_equal(ap_store_count(s), 6);
    assert_int_equal(ap_store_committed(s), 5);
    /* a pending sample reads back through the writer */
    ap_store_sample r;
    int32_t ids[N], want_ids[N];
    char id[32], src[64];
    synth_record(5, N, id, src, &r, want_ids);
    TU_OK(ap_store_read_sample(s, 5, &r, ids, tu_err()));
    assert_memory_equal(ids, want_ids, sizeof ids);
    /* duplicates, committed or pending, are refused */
    float *attn = calloc((size_t)L * H * N * N, sizeof(float));
    synth_record(2, N, id, src, &r, ids);
    assert_int_equal(ap_store_append(s, &r, ids, attn, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "already in the store"));
    synth_record(5, N, id, src, &r, ids);
    assert_int_equal(ap_store_append(s, &r, ids, attn, tu_err()), AP_ERR_ARG);
    free(attn);
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_count(s), 6); /* close committed the pending one */
    assert_int_equal(ap_store_find(s, "s000005"), 5);
    ap_store_close(s, NULL);
    free(path);
}

static void test_head_selection(void **state) {
    (void)state;
    ap_head_sel sel;
    int q = 0;
    TU_OK(ap_head_sel_parse("all", &sel, tu_err()));
    TU_OK(ap_head_sel_per_layer(&sel, 24, &q, tu_err()));
    assert_int_equal(q, 24);
    TU_OK(ap_head_sel_parse("layerwise:4", &sel, tu_err()));
    TU_OK(ap_head_sel_per_layer(&sel, 24, &q, tu_err()));
    assert_int_equal(q, 4);
    assert_int_equal(ap_head_sel_per_layer(&sel, 3, &q, tu_err()), AP_ERR_ARG);
    TU_OK(ap_head_sel_parse("layerwise:0.25", &sel, tu_err()));
    TU_OK(ap_head_sel_per_layer(&sel, 24, &q, tu_err()));
    assert_int_equal(q, 6);
    TU_OK(ap_head_sel_per_layer(&sel, 2, &q, tu_err()));
    assert_int_equal(q, 1); /* at least one */
    TU_OK(ap_head_sel_parse("layerwise:1.0", &sel, tu_err()));
    TU_OK(ap_head_sel_per_layer(&sel, 6, &q, tu_err()));
    assert_int_equal(q, 6);
    const char *bad[] = {"", "some", "layerwise:", "layerwise:0", "layerwise:-2", "layerwise:1.5", "layerwise:0.0",
                         "layerwise:x", "layerwise:2x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(ap_head_sel_parse(bad[i], &sel, tu_err()), AP_ERR_ARG);

    /* layerwise:2 of 6 heads over 300 samples x 2 layers */
    enum { S = 300 };
    int64_t samples[S];
    for (int i = 0; i < S; i++) samples[i] = 1000 + i;
    TU_OK(ap_head_sel_parse("layerwise:2", &sel, tu_err()));
    ap_pattern_ref *a = NULL, *b = NULL, *c = NULL;
    size_t na = 0, nb = 0, nc = 0;
    TU_OK(ap_select_heads(&sel, L, 6, samples, S, 7, &a, &na, tu_err()));
    assert_int_equal(na, S * L * 2);
    int freq[6] = {0};
    for (size_t k = 0; k < na; k += 2) {
        assert_int_equal(a[k].sample, a[k + 1].sample);
        assert_int_equal(a[k].layer, a[k + 1].layer);
        assert_int_equal(a[k].layer, (int)((k / 2) % L));
        assert_true(a[k].head < a[k + 1].head); /* distinct, ascending */
        assert_true(a[k].head >= 0 && a[k + 1].head < 6);
        freq[a[k].head]++;
        freq[a[k + 1].head]++;
    }
    for (int h = 0; h < 6; h++) assert_true(freq[h] > 150 && freq[h] < 250); /* each ~200 = 1/3 of 600 */
    /* same seed: same draw; another seed: another draw */
    TU_OK(ap_select_heads(&sel, L, 6, samples, S, 7, &b, &nb, tu_err()));
    assert_memory_equal(a, b, na * sizeof *a);
    free(b);
    TU_OK(ap_select_heads(&sel, L, 6, samples, S, 8, &b, &nb, tu_err()));
    assert_true(memcmp(a, b, na * sizeof *a) != 0);
    /* a sample's draw does not depend on which other samples are asked for */
    int64_t one = samples[17];
    TU_OK(ap_select_heads(&sel, L, 6, &one, 1, 7, &c, &nc, tu_err()));
    assert_memory_equal(c, a + 17 * L * 2, nc * sizeof *c);
    free(a);
    free(b);
    free(c);
    TU_OK(ap_head_sel_parse("all", &sel, tu_err()));
    TU_OK(ap_select_heads(&sel, L, 6, samples, 2, 7, &a, &na, tu_err()));
    assert_int_equal(na, 2 * L * 6);
    assert_int_equal(a[7].head, 1);
    assert_int_equal(a[7].layer, 1);
    free(a);
}

static void expect_open_error(const char *path, ap_status code, const char *needle) {
    ap_store *s = NULL;
    assert_int_equal(ap_store_open(path, AP_STORE_READ, &s, tu_err()), code);
    assert_null(s);
    if (!strstr(tu_last_error()->msg, needle)) fail_msg("'%s' lacks '%s'", tu_last_error()->msg, needle);
    assert_non_null(strstr(tu_last_error()->msg, path));
}

static void test_foreign_and_damaged_files(void **state) {
    (void)state;
    char *text = tu_fresh_store_path("notes.h5");
    tu_write_file(text, "these are notes, not HDF5\n", 26);
    expect_open_error(text, AP_ERR_FORMAT, "not an HDF5 file");
    ap_store *s = NULL;
    assert_int_equal(ap_store_open(text, AP_STORE_APPEND, &s, tu_err()), AP_ERR_FORMAT);
    char journal[4200];
    snprintf(journal, sizeof journal, "%s-journal", text);
    assert_false(ap_path_exists(journal)); /* a failed open leaves nothing behind */
    char *empty = tu_fresh_store_path("empty.h5");
    tu_write_file(empty, "", 0);
    expect_open_error(empty, AP_ERR_FORMAT, "empty");
    char *none = tu_fresh_store_path("missing.h5");
    expect_open_error(none, AP_ERR_IO, "no such store");

    /* a real store cut to half its size */
    char *half = tu_fresh_store_path("half.h5");
    s = make_store(half, AP_BF16, -1, 4);
    TU_OK(ap_store_close(s, tu_err()));
    struct stat st;
    assert_int_equal(stat(half, &st), 0);
    off_t cut = st.st_size / 2;
    assert_int_equal(truncate(half, cut), 0);
    expect_open_error(half, AP_ERR_FORMAT, "truncated");
    assert_int_equal(ap_store_open(half, AP_STORE_APPEND, &s, tu_err()), AP_ERR_FORMAT);
    assert_non_null(strstr(tu_last_error()->msg, "truncated"));
    assert_int_equal(stat(half, &st), 0);
    assert_int_equal(st.st_size, cut); /* the failed writer changed nothing */

    /* HDF5, but not a store */
    char *foreign = tu_fresh_store_path("foreign.h5");
    hid_t f = H5Fcreate(foreign, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {4};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(f, "data", H5T_NATIVE_INT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
    expect_open_error(foreign, AP_ERR_FORMAT, "not an apmae store");

    /* a store missing /patterns, and one of another format version */
    char *nopat = tu_fresh_store_path("nopat.h5");
    s = make_store(nopat, AP_F32, -1, 1);
    TU_OK(ap_store_close(s, tu_err()));
    f = H5Fopen(nopat, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "patterns", H5P_DEFAULT);
    H5Fclose(f);
    expect_open_error(nopat, AP_ERR_FORMAT, "missing /patterns");
    f = H5Fopen(nopat, H5F_ACC_RDWR, H5P_DEFAULT);
    int64_t v = 99;
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Fclose(f);
    expect_open_error(nopat, AP_ERR_FORMAT, "format version 99");
    free(text);
    free(empty);
    free(none);
    free(half);
    free(foreign);
    free(nopat);
}

static void test_create_and_args(void **state) {
    (void)state;
    char *path = tu_fresh_store_path("args.h5");
    ap_store *s = make_store(path, AP_F16, -1, 1);
    ap_store *t = NULL;
    ap_store_meta m = meta(AP_F16, -1);
    assert_int_equal(ap_store_create(path, &m, &t, tu_err()), AP_ERR_IO); /* never overwritten */
    assert_non_null(strstr(tu_last_error()->msg, "already exists"));
    /* one writer: another handle (reader or writer) is refused */
    assert_int_equal(ap_store_open(path, AP_STORE_READ, &t, tu_err()), AP_ERR_IO);
    assert_non_null(strstr(tu_last_error()->msg, "being written"));
    assert_int_equal(ap_store_open(path, AP_STORE_APPEND, &t, tu_err()), AP_ERR_IO);
    float buf[N * N];
    assert_int_equal(ap_store_read_pattern(s, 1, 0, 0, buf, tu_err()), AP_ERR_RANGE);
    assert_int_equal(ap_store_read_pattern(s, 0, L, 0, buf, tu_err()), AP_ERR_RANGE);
    assert_int_equal(ap_store_read_pattern(s, 0, 0, -1, buf, tu_err()), AP_ERR_RANGE);
    assert_non_null(strstr(tu_last_error()->msg, "head -1"));
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_READ, &t, tu_err())); /* readers share */
    assert_int_equal(ap_store_commit(s, tu_err()), AP_ERR_ARG);
    ap_store_close(t, NULL);
    ap_store_close(s, NULL);
    m.n_tokens = 0;
    char *bad = tu_fresh_store_path("bad.h5");
    assert_int_equal(ap_store_create(bad, &m, &t, tu_err()), AP_ERR_ARG);
    m = meta(AP_I64, -1);
    assert_int_equal(ap_store_create(bad, &m, &t, tu_err()), AP_ERR_ARG);
    m = meta(AP_BF16, 8);
    assert_int_equal(ap_store_create(bad, &m, &t, tu_err()), AP_ERR_ARG);
    assert_false(ap_path_exists(bad));
    free(bad);
    free(path);
}

/* The test-only writer beside the test binaries (tests/store_writer_tool.c):
 * run as a process of its own, since forking a process that has used
 * OpenMP can hang the child. */
static int run_tool(const char *args) {
    char tool[4096];
    snprintf(tool, sizeof tool, "%s", tu_apmae_bin());
    char *slash = strrchr(tool, '/');
    snprintf(slash ? slash + 1 : tool, sizeof tool - (size_t)(slash ? slash + 1 - tool : 0), "../tests/store_writer_tool");
    return tu_run(NULL, "'%s' %s >/dev/null 2>&1", tool, args);
}

/* A writer killed after a commit of 3 samples and 2 more appends: readers
 * see the commit without touching the files; the next writer rolls back
 * and goes on. */
static void test_rollback_after_kill(void **state) {
    (void)state;
    char *path = tu_fresh_store_path("kill.h5"), journal[4200], args[4400];
    snprintf(journal, sizeof journal, "%s-journal", path);
    snprintf(args, sizeof args, "write '%s' --total 9 --every 3 --kill-after 5 --dtype bf16 --n %d --layers %d --heads %d",
             path, N, L, H);
    assert_int_equal(run_tool(args), 128 + 9); /* the shell reports the SIGKILL */
    struct stat st;
    assert_int_equal(stat(journal, &st), 0);
    assert_true(st.st_size > 0); /* the uncommitted transaction */
    assert_int_equal(stat(path, &st), 0);
    off_t size_after_kill = st.st_size;
    ap_store *s = NULL;
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_count(s), 3);
    assert_int_equal(ap_store_cursor(s), 3);
    assert_int_equal(ap_store_find(s, "s000003"), -1);
    float p[N * N];
    TU_OK(ap_store_read_pattern(s, 2, 1, 5, p, tu_err()));
    ap_store_close(s, NULL);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, size_after_kill); /* the reader changed nothing */
    TU_OK(ap_store_open(path, AP_STORE_APPEND, &s, tu_err()));
    assert_int_equal(ap_store_count(s), 3);
    append_synth(s, 3, 2, 1.0);
    ap_store_set_cursor(s, 5);
    TU_OK(ap_store_close(s, tu_err()));
    assert_false(ap_path_exists(journal)); /* clean close */
    snprintf(args, sizeof args, "write '%s' --total 9", path);
    assert_int_equal(run_tool(args), 0);
    snprintf(args, sizeof args, "verify '%s' --exact 9", path);
    assert_int_equal(run_tool(args), 0);
    free(path);
}

static void test_png_and_colormap(void **state) {
    (void)state;
    unsigned char c[3];
    ap_viridis(0, c);
    assert_true(c[0] == 0x44 && c[1] == 0x01 && c[2] == 0x54);
    ap_viridis(0.5, c);
    assert_true(c[0] == 0x21 && c[1] == 0x90 && c[2] == 0x8c);
    ap_viridis(1, c);
    assert_true(c[0] == 0xfd && c[1] == 0xe7 && c[2] == 0x25);
    double prev = -1;
    for (int v = 0; v <= 255; v++) { /* perceptual: lightness rises throughout */
        ap_viridis(v / 255.0, c);
        double luma = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
        assert_true(luma >= prev - 0.5);
        prev = luma;
    }
    float P[N * N];
    synth_head(3, N, 1.0, P);
    char *png = tu_fresh_store_path("p.png");
    TU_OK(ap_pattern_write_png(png, P, N, 3, tu_err()));
    char *data = NULL;
    size_t len = 0;
    TU_OK(ap_read_file(png, &data, &len, tu_err()));
    assert_true(len > 33);
    assert_memory_equal(data, "\x89PNG\r\n\x1a\n", 8);
    const unsigned char *u = (const unsigned char *)data;
    assert_int_equal((u[16] << 24) | (u[17] << 16) | (u[18] << 8) | u[19], N * 3); /* IHDR width */
    assert_int_equal((u[20] << 24) | (u[21] << 16) | (u[22] << 8) | u[23], N * 3);
    free(data);
    assert_int_equal(ap_pattern_write_png(png, P, N, 0, tu_err()), AP_ERR_ARG);
    free(png);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_f32),
        cmocka_unit_test(test_roundtrip_f16),
        cmocka_unit_test(test_roundtrip_bf16),
        cmocka_unit_test(test_roundtrip_bf16_default),
        cmocka_unit_test(test_encode_rounding),
        cmocka_unit_test(test_meta_counts_filter),
        cmocka_unit_test(test_find_and_duplicates),
        cmocka_unit_test(test_head_selection),
        cmocka_unit_test(test_foreign_and_damaged_files),
        cmocka_unit_test(test_create_and_args),
        cmocka_unit_test(test_rollback_after_kill),
        cmocka_unit_test(test_png_and_colormap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
