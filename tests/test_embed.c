/* AP-MAE embeddings in the store: the store API (append, read, commit,
 * one model per store, dropping them, stores without patterns, copying
 * samples), `store
 * embed` (equal to the encoder run directly on the stored patterns,
 * resumable, refusing another model or another N), extraction's streaming
 * mode (equal to the encoder on the LM's own attention), and kill-and-resume
 * of both with SIGKILL at random points of their progress. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apmae/extract.h"
#include "apmae/lm.h"
#include "apmae/mae.h"
#include "apmae/store.h"
#include "extract_synth.h"

enum { N = 16, L = 2, H = 4, D = 16 }; /* the fixture LM and tests/fixtures/store/mae_n16.json */
static const char *k_mae16 = "fixtures/store/mae_n16.json", *k_mae32 = "fixtures/store/mae_n32.json";

static ap_extract_options options(const char *scenarios, const char *store) {
    return (ap_extract_options){.model_dir = k_model, .scenarios_path = scenarios, .store_path = store,
                                .balance = AP_BALANCE_NONE, .dtype = AP_F32, .commit_every = 4};
}

/* ---- the store API on a synthetic store (L 2, H 3, D 5) ---- */

static ap_store_meta small_meta(int no_patterns) {
    return (ap_store_meta){.model_id = "lm", .n_tokens = 4, .num_layers = 2, .num_heads = 3, .dtype = AP_F32,
                           .small_bits = -1, .deflate = -1, .run = "{}", .no_patterns = no_patterns};
}

static void append_small(ap_store *s, int i, int with_attention) {
    char id[16];
    snprintf(id, sizeof id, "s%d", i);
    int32_t ids[4] = {i, 1, 2, 3};
    float attn[2 * 3 * 16];
    for (int k = 0; k < 2 * 3 * 16; k++) attn[k] = (float)((k * 7 + i) % 5) / 5.0f;
    ap_store_sample r = {.id = id, .task = "t", .label_id = 1, .index = 10 * i};
    TU_OK(ap_store_append(s, &r, ids, with_attention ? attn : NULL, tu_err()));
}

static void fill_emb(int i, float *cls, float *mean) {
    for (int k = 0; k < 2 * 3 * 5; k++) cls[k] = (float)i + 0.01f * (float)k, mean[k] = -(float)i - 0.5f * (float)k;
}

static void test_store_api(void **state) {
    (void)state;
    char *path = tu_fresh_store_path("api.h5");
    ap_store_meta m = small_meta(0);
    ap_store_embed_info info = {.model_id = "maeA", .model_config = "{\"a\":1}", .model_hash = "0123456789abcdef",
                                .dim = 5};
    ap_store *s;
    float cls[30], mean[30], got_c[30], got_m[30];
    TU_OK(ap_store_create(path, &m, &s, tu_err()));
    assert_null(ap_store_embed_info_of(s));
    fill_emb(0, cls, mean);
    assert_int_equal(ap_store_append_embeddings(s, cls, mean, tu_err()), AP_ERR_ARG); /* not begun */
    TU_OK(ap_store_embed_begin(s, &info, tu_err()));
    assert_int_equal(ap_store_append_embeddings(s, cls, mean, tu_err()), AP_ERR_ARG); /* no sample 0 yet */
    assert_non_null(strstr(tu_last_error()->msg, "append the sample first"));
    for (int i = 0; i < 3; i++) append_small(s, i, 1);
    for (int i = 0; i < 2; i++) {
        fill_emb(i, cls, mean);
        TU_OK(ap_store_append_embeddings(s, cls, mean, tu_err()));
    }
    TU_OK(ap_store_read_embeddings(s, 1, got_c, got_m, tu_err())); /* pending, read back through the writer */
    fill_emb(1, cls, mean);
    assert_memory_equal(got_c, cls, sizeof cls);
    assert_memory_equal(got_m, mean, sizeof mean);
    TU_OK(ap_store_close(s, tu_err()));

    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_count(s), 3);
    assert_int_equal(ap_store_embedded(s), 2);
    const ap_store_embed_info *e = ap_store_embed_info_of(s);
    assert_non_null(e);
    assert_string_equal(e->model_id, "maeA");
    assert_string_equal(e->model_config, "{\"a\":1}");
    assert_string_equal(e->model_hash, "0123456789abcdef");
    assert_int_equal(e->dim, 5);
    assert_false(e->compat_reference);
    TU_OK(ap_store_read_embeddings(s, 1, got_c, NULL, tu_err()));
    assert_memory_equal(got_c, cls, sizeof cls);
    assert_int_equal(ap_store_read_embeddings(s, 2, got_c, got_m, tu_err()), AP_ERR_RANGE);
    assert_non_null(strstr(tu_last_error()->msg, "has no embeddings"));
    ap_store_sample r;
    TU_OK(ap_store_read_sample(s, 2, &r, NULL, tu_err()));
    assert_int_equal(r.index, 20);
    ap_store_size sz;
    TU_OK(ap_store_size_of(s, &sz, tu_err()));
    assert_true(sz.embedding_bytes > 0 && sz.pattern_bytes > 0);
    TU_OK(ap_store_close(s, tu_err()));

    /* one AP-MAE per store: another hash, or the same in --compat reference, is refused */
    TU_OK(ap_store_open(path, AP_STORE_APPEND, &s, tu_err()));
    ap_store_embed_info other = info;
    other.model_hash = "fedcba9876543210";
    assert_int_equal(ap_store_embed_begin(s, &other, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "already holds embeddings from another model"));
    other = info;
    other.compat_reference = 1;
    assert_int_equal(ap_store_embed_begin(s, &other, tu_err()), AP_ERR_ARG);
    TU_OK(ap_store_embed_begin(s, &info, tu_err()));
    fill_emb(2, cls, mean);
    TU_OK(ap_store_append_embeddings(s, cls, mean, tu_err()));
    assert_int_equal(ap_store_append_embeddings(s, cls, mean, tu_err()), AP_ERR_ARG); /* all 3 have them */
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_embedded(s), 3);
    TU_OK(ap_store_read_embeddings(s, 2, NULL, got_m, tu_err()));
    assert_memory_equal(got_m, mean, sizeof mean);
    assert_int_equal(ap_store_embed_drop(s, tu_err()), AP_ERR_ARG); /* read-only */
    TU_OK(ap_store_close(s, tu_err()));

    /* dropped (and committed) with the clusters made from them, another AP-MAE's embeddings can begin */
    TU_OK(ap_store_open(path, AP_STORE_APPEND, &s, tu_err()));
    TU_OK(ap_store_clusters_begin(s, "{}", tu_err()));
    TU_OK(ap_store_commit(s, tu_err()));
    TU_OK(ap_store_embed_drop(s, tu_err()));
    assert_null(ap_store_embed_info_of(s));
    assert_null(ap_store_clusters_info_of(s));
    assert_int_equal(ap_store_embedded(s), 0);
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_APPEND, &s, tu_err()));
    assert_null(ap_store_embed_info_of(s));
    assert_null(ap_store_clusters_info_of(s));
    assert_int_equal(ap_store_count(s), 3);
    other = info;
    other.model_hash = "fedcba9876543210";
    TU_OK(ap_store_embed_begin(s, &other, tu_err()));
    fill_emb(7, cls, mean);
    TU_OK(ap_store_append_embeddings(s, cls, mean, tu_err()));
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    assert_string_equal(ap_store_embed_info_of(s)->model_hash, "fedcba9876543210");
    assert_int_equal(ap_store_embedded(s), 1);
    TU_OK(ap_store_read_embeddings(s, 0, got_c, NULL, tu_err()));
    assert_memory_equal(got_c, cls, sizeof cls);
    TU_OK(ap_store_close(s, tu_err()));
    free(path);
}

static void test_store_without_patterns(void **state) {
    (void)state;
    char *path = tu_fresh_store_path("nopat.h5"), *src_path = tu_fresh_store_path("nopat_src.h5"), *copy = tu_fresh_store_path("nopat_copy.h5");
    ap_store_meta m = small_meta(1);
    ap_store_embed_info info = {.model_id = "maeA", .model_config = "{}", .model_hash = "0123456789abcdef", .dim = 5};
    float cls[30], mean[30], buf[16];
    ap_store *s, *t;
    TU_OK(ap_store_create(path, &m, &s, tu_err()));
    TU_OK(ap_store_embed_begin(s, &info, tu_err()));
    append_small(s, 0, 0); /* no attention needed */
    assert_int_equal(ap_store_commit(s, tu_err()), AP_ERR_ARG); /* a sample without embeddings keeps nothing */
    assert_non_null(strstr(tu_last_error()->msg, "'s0' has no embeddings"));
    fill_emb(0, cls, mean);
    TU_OK(ap_store_append_embeddings(s, cls, mean, tu_err()));
    append_small(s, 1, 1); /* attention given anyway: ignored */
    fill_emb(1, cls, mean);
    TU_OK(ap_store_append_embeddings(s, cls, mean, tu_err()));
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    assert_false(ap_store_has_patterns(s));
    assert_int_equal(ap_store_count(s), 2);
    assert_int_equal(ap_store_embedded(s), 2);
    assert_int_equal(ap_store_read_pattern(s, 0, 0, 0, buf, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "keeps no attention patterns"));
    ap_store_size sz;
    TU_OK(ap_store_size_of(s, &sz, tu_err()));
    assert_int_equal(sz.pattern_bytes, 0);
    assert_int_equal(sz.patterns, 0);
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_store_open(path, AP_STORE_APPEND, &s, tu_err()));
    assert_int_equal(ap_store_embed_drop(s, tu_err()), AP_ERR_ARG); /* the embeddings are all it keeps */
    assert_non_null(strstr(tu_last_error()->msg, "keeps no patterns"));

    /* copying samples: into a store of the same layout with the same
     * embeddings; a store with patterns is another layout */
    TU_OK(ap_store_create(copy, &m, &t, tu_err()));
    assert_int_equal(ap_store_copy_sample(t, s, 0, tu_err()), AP_ERR_ARG); /* embeddings not begun there */
    TU_OK(ap_store_embed_begin(t, &info, tu_err()));
    TU_OK(ap_store_copy_sample(t, s, 1, tu_err()));
    TU_OK(ap_store_copy_sample(t, s, 0, tu_err()));
    TU_OK(ap_store_close(t, tu_err()));
    TU_OK(ap_store_open(copy, AP_STORE_READ, &t, tu_err()));
    ap_store_sample r;
    float got[30];
    TU_OK(ap_store_read_sample(t, 0, &r, NULL, tu_err()));
    assert_string_equal(r.id, "s1");
    assert_int_equal(r.index, 10);
    TU_OK(ap_store_read_embeddings(t, 0, got, NULL, tu_err()));
    assert_memory_equal(got, cls, sizeof cls);
    TU_OK(ap_store_close(t, tu_err()));
    ap_store_meta mp = small_meta(0);
    TU_OK(ap_store_create(src_path, &mp, &t, tu_err()));
    assert_int_equal(ap_store_copy_sample(t, s, 0, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "cannot copy samples"));
    TU_OK(ap_store_close(t, tu_err()));
    TU_OK(ap_store_close(s, tu_err()));
    free(path), free(src_path), free(copy);
}

/* Patterns copied between stores keep their stored bytes: bf16 read back
 * equal. */
static void test_copy_patterns(void **state) {
    (void)state;
    char *a = tu_fresh_store_path("copy_a.h5"), *b = tu_fresh_store_path("copy_b.h5");
    ap_store_meta m = small_meta(0);
    m.dtype = AP_BF16;
    ap_store *s, *t;
    TU_OK(ap_store_create(a, &m, &s, tu_err()));
    for (int i = 0; i < 3; i++) append_small(s, i, 1);
    TU_OK(ap_store_commit(s, tu_err()));
    TU_OK(ap_store_create(b, &m, &t, tu_err()));
    TU_OK(ap_store_copy_sample(t, s, 2, tu_err()));
    TU_OK(ap_store_close(t, tu_err()));
    TU_OK(ap_store_open(b, AP_STORE_READ, &t, tu_err()));
    float pa[10], pb[10];
    int nonzero = 0;
    for (int l = 0; l < 2; l++)
        for (int h = 0; h < 3; h++) {
            TU_OK(ap_store_read_tri(s, 2, l, h, pa, tu_err()));
            TU_OK(ap_store_read_tri(t, 0, l, h, pb, tu_err()));
            assert_memory_equal(pa, pb, sizeof pa);
            for (int k = 0; k < 10; k++) nonzero += pa[k] != 0;
        }
    assert_true(nonzero > 0);
    TU_OK(ap_store_close(t, tu_err()));
    TU_OK(ap_store_close(s, tu_err()));
    free(a), free(b);
}

/* ---- store embed ---- */

/* The encoder run directly on [count, N, N] patterns. */
static void encode_direct(const char *mae_dir, const float *pat, int count, float *cls, float *mean) {
    ap_mae_model *m;
    TU_OK(ap_mae_load(mae_dir, &m, tu_err()));
    float *scaled = malloc(sizeof(float) * (size_t)count * N * N);
    TU_OK(ap_mae_scale(&m->cfg, pat, count, scaled, tu_err()));
    TU_OK(ap_mae_encode(m, scaled, count, cls, mean, tu_err()));
    free(scaled);
    ap_mae_free(m);
}

static void assert_close(const float *a, const float *b, size_t n) {
    double worst = tu_max_abs_err(a, b, n);
    if (worst > 1e-5) fail_msg("embeddings differ by %g", worst);
}

static void test_store_embed(void **state) {
    (void)state;
    char *sc = write_scenarios("se.jsonl", 10, N, 5), *path = tu_fresh_store_path("se.h5");
    char *mae = make_mae(k_mae16, "mae_se", 1), *other = make_mae(k_mae16, "mae_se_other", 2);
    char *mae32 = make_mae(k_mae32, "mae_se32", 1);
    ap_extract_options o = options(sc, path);
    o.dtype = AP_BF16;
    ap_extract_report xrep;
    TU_OK(ap_extract_run(&o, &xrep, tu_err()));
    ap_embed_options eo = {.store_path = path, .model_dir = mae, .batch = 3};
    ap_embed_report rep;
    TU_OK(ap_embed_store(&eo, &rep, tu_err()));
    assert_int_equal(rep.embedded_this_run, 10);
    assert_false(rep.already_complete);
    ap_store *s;
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_embedded(s), 10);
    const ap_store_embed_info *e = ap_store_embed_info_of(s);
    assert_string_equal(e->model_id, mae);
    assert_int_equal(e->dim, D);
    assert_int_equal(strlen(e->model_hash), 16);
    char *cfg_text = NULL, *cfg_path = NULL;
    cfg_path = malloc(strlen(mae) + 16);
    sprintf(cfg_path, "%s/config.json", mae);
    TU_OK(ap_read_file(cfg_path, &cfg_text, NULL, tu_err()));
    assert_string_equal(e->model_config, cfg_text);
    float *pat = malloc(sizeof(float) * L * H * N * N), *want = malloc(sizeof(float) * 2 * L * H * D);
    float *got = malloc(sizeof(float) * 2 * L * H * D);
    for (int64_t i = 0; i < 10; i += 3) {
        TU_OK(ap_store_read_patterns(s, i, pat, tu_err()));
        encode_direct(mae, pat, L * H, want, want + L * H * D);
        TU_OK(ap_store_read_embeddings(s, i, got, got + L * H * D, tu_err()));
        assert_close(got, want, 2 * L * H * D);
    }
    /* cls and mean differ, and samples differ */
    assert_true(tu_max_abs_err(got, got + L * H * D, L * H * D) > 1e-3);
    TU_OK(ap_store_close(s, tu_err()));

    TU_OK(ap_embed_store(&eo, &rep, tu_err())); /* finished: nothing to do */
    assert_true(rep.already_complete);
    assert_int_equal(rep.embedded_this_run, 0);
    ap_error err = {0};
    eo.model_dir = other; /* another AP-MAE of the same shape */
    assert_int_equal(ap_embed_store(&eo, &rep, &err), AP_ERR_ARG);
    assert_non_null(strstr(err.msg, "already holds embeddings from another model"));
    eo.model_dir = mae;
    eo.compat_reference = 1;
    assert_int_equal(ap_embed_store(&eo, &rep, &err), AP_ERR_ARG);
    eo.compat_reference = 0;
    eo.model_dir = mae32; /* N 32 against the store's 16: both named */
    assert_int_equal(ap_embed_store(&eo, &rep, &err), AP_ERR_ARG);
    assert_non_null(strstr(err.msg, "max_length 32"));
    assert_non_null(strstr(err.msg, "N = 16"));
    assert_non_null(strstr(err.msg, path));
    free(sc), free(path), free(mae), free(other), free(mae32), free(pat), free(want), free(got), free(cfg_text),
        free(cfg_path);
}

/* ---- streaming mode ---- */

static void test_streaming(void **state) {
    (void)state;
    char *sc = write_scenarios("st.jsonl", 10, N, 6), *only = tu_fresh_store_path("st_only.h5"), *both = tu_fresh_store_path("st_both.h5");
    char *plain = tu_fresh_store_path("st_plain.h5");
    char *mae = make_mae(k_mae16, "mae_st", 1), *other = make_mae(k_mae16, "mae_st_other", 2);
    ap_extract_report rep;
    ap_error err = {0};
    ap_extract_options o = options(sc, only);
    o.embeddings_only = 1;
    assert_int_equal(ap_extract_run(&o, &rep, &err), AP_ERR_ARG); /* --embeddings-only needs --embed-with */
    o.embed_with = mae;
    o.embed_batch = 5;
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    assert_int_equal(rep.stored, 10);
    /* each sample's embeddings = the encoder on the LM's own attention */
    ap_lm *lm;
    ap_lm_state *lst;
    TU_OK(ap_lm_load(k_model, &lm, tu_err()));
    TU_OK(ap_lm_state_new(lm, N, &lst, tu_err()));
    float *att = malloc(sizeof(float) * L * H * N * N), *logits = malloc(sizeof(float) * N * 101);
    float *want = malloc(sizeof(float) * 2 * L * H * D), *got = malloc(sizeof(float) * 2 * L * H * D);
    int32_t ids[N];
    ap_store *s;
    TU_OK(ap_store_open(only, AP_STORE_READ, &s, tu_err()));
    assert_false(ap_store_has_patterns(s));
    assert_int_equal(ap_store_embedded(s), 10);
    float buf[N * N];
    assert_int_equal(ap_store_read_pattern(s, 0, 0, 0, buf, tu_err()), AP_ERR_ARG);
    for (int64_t i = 0; i < 10; i += 4) {
        ap_store_sample r;
        TU_OK(ap_store_read_sample(s, i, &r, ids, tu_err()));
        TU_OK(ap_lm_forward(lm, lst, ids, N, NULL, logits, att, tu_err()));
        encode_direct(mae, att, L * H, want, want + L * H * D);
        TU_OK(ap_store_read_embeddings(s, i, got, got + L * H * D, tu_err()));
        assert_close(got, want, 2 * L * H * D);
    }
    TU_OK(ap_store_close(s, tu_err()));
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    assert_true(rep.already_complete);
    o.embed_with = other; /* resumed with another AP-MAE: refused */
    assert_int_equal(ap_extract_run(&o, &rep, &err), AP_ERR_ARG);
    assert_non_null(strstr(err.msg, "another model"));
    o.embed_with = NULL;
    o.embeddings_only = 0;
    assert_int_equal(ap_extract_run(&o, &rep, &err), AP_ERR_ARG); /* other options: another run */
    assert_non_null(strstr(err.msg, "another run"));

    /* --embed-with keeping the patterns too = extraction, then store embed */
    o = options(sc, both);
    o.embed_with = mae;
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    o = options(sc, plain);
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    ap_embed_options eo = {.store_path = plain, .model_dir = mae};
    ap_embed_report erep;
    TU_OK(ap_embed_store(&eo, &erep, tu_err()));
    ap_store *a, *b;
    TU_OK(ap_store_open(both, AP_STORE_READ, &a, tu_err()));
    TU_OK(ap_store_open(plain, AP_STORE_READ, &b, tu_err()));
    assert_true(ap_store_has_patterns(a));
    assert_int_equal(ap_store_embedded(a), 10);
    float *pa = malloc(sizeof(float) * L * H * N * N), *pb = malloc(sizeof(float) * L * H * N * N);
    for (int64_t i = 0; i < 10; i++) {
        TU_OK(ap_store_read_patterns(a, i, pa, tu_err()));
        TU_OK(ap_store_read_patterns(b, i, pb, tu_err()));
        assert_memory_equal(pa, pb, sizeof(float) * L * H * N * N);
        TU_OK(ap_store_read_embeddings(a, i, got, got + L * H * D, tu_err()));
        TU_OK(ap_store_read_embeddings(b, i, want, want + L * H * D, tu_err()));
        assert_close(got, want, 2 * L * H * D);
    }
    TU_OK(ap_store_close(a, tu_err()));
    TU_OK(ap_store_close(b, tu_err()));
    ap_lm_state_free(lst);
    ap_lm_free(lm);
    free(att), free(logits), free(want), free(got), free(pa), free(pb);
    free(sc), free(only), free(both), free(plain), free(mae), free(other);
}

/* ---- kill and resume ---- */

static char *g_base, *g_work; /* store embed: the store to encode, and the copy being encoded */

static void reset_embed(void) { restore_store(g_base, g_work); }

static void reset_extract(void) {
    char *j = malloc(strlen(g_work) + 16);
    sprintf(j, "%s-journal", g_work);
    unlink(j);
    unlink(g_work);
    free(j);
}

static void test_kill_and_resume_embed(void **state) {
    (void)state;
    enum { LINES = 40 };
    char *sc = write_scenarios("ke.jsonl", LINES, N, 8), *mae = make_mae(k_mae16, "mae_ke", 1);
    char *ref = tu_fresh_store_path("ke_ref.h5");
    g_base = tu_fresh_store_path("ke_base.h5");
    g_work = tu_fresh_store_path("ke.h5");
    ap_extract_options o = options(sc, g_base);
    ap_extract_report xrep;
    TU_OK(ap_extract_run(&o, &xrep, tu_err()));
    copy_file(g_base, ref);
    char *argv_ref[] = {"apmae", "store", "embed", ref, "--model", mae, "--commit-every", "1", "--batch", "8", NULL};
    assert_int_equal(run_apmae(argv_ref), 0);
    char *argv[] = {"apmae", "store", "embed", g_work, "--model", mae, "--commit-every", "1", "--batch", "8", NULL};
    assert_true(kill_rounds(argv, g_work, ap_store_embedded, LINES, reset_embed) > 0);
    ap_embed_options eo = {.store_path = g_work, .model_dir = mae, .batch = 8};
    ap_embed_report rep;
    TU_OK(ap_embed_store(&eo, &rep, tu_err())); /* resume in-process to the end */
    assert_int_equal(rep.samples, LINES);
    assert_stores_equal(ref, g_work);
    free(sc), free(mae), free(ref), free(g_base), free(g_work);
}

static void test_kill_and_resume_streaming(void **state) {
    (void)state;
    enum { LINES = 20 }; /* each line a forward pass and a commit: slow under ASan */
    char *sc = write_scenarios("ks.jsonl", LINES, N, 9), *mae = make_mae(k_mae16, "mae_ks", 1);
    char *ref = tu_fresh_store_path("ks_ref.h5");
    g_work = tu_fresh_store_path("ks.h5");
    char *argv_ref[] = {"apmae", "extract", "--model", (char *)k_model, "--scenarios", sc, "--out", ref,
                        "--embed-with", mae, "--embeddings-only", "--commit-every", "1", "--threads", "1", NULL};
    assert_int_equal(run_apmae(argv_ref), 0);
    char *argv[] = {"apmae", "extract", "--model", (char *)k_model, "--scenarios", sc, "--out", g_work,
                    "--embed-with", mae, "--embeddings-only", "--commit-every", "1", "--threads", "1", NULL};
    assert_true(kill_rounds(argv, g_work, ap_store_count, LINES, reset_extract) > 0);
    ap_extract_options o = options(sc, g_work);
    o.embed_with = mae;
    o.embeddings_only = 1;
    o.dtype = AP_BF16; /* the CLI's default */
    ap_extract_report rep;
    TU_OK(ap_extract_run(&o, &rep, tu_err()));
    assert_int_equal(rep.stored, LINES);
    assert_stores_equal(ref, g_work);
    free(sc), free(mae), free(ref), free(g_work);
}

int main(void) {
    /* tiny models: threads only add waiting on a loaded machine (also for
     * the apmae processes the kill tests start) */
    omp_set_num_threads(1);
    setenv("OMP_NUM_THREADS", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_api),
        cmocka_unit_test(test_store_without_patterns),
        cmocka_unit_test(test_copy_patterns),
        cmocka_unit_test(test_store_embed),
        cmocka_unit_test(test_streaming),
        cmocka_unit_test(test_kill_and_resume_embed),
        cmocka_unit_test(test_kill_and_resume_streaming),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
