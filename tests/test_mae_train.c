/* AP-MAE training and evaluation over synthetic stores (tests/store_synth.h)
 * with a small config: the held-out split and the batch order, that training
 * lowers the held-out loss, that a stopped and resumed run equals a straight
 * one byte for byte, eval's numbers against an independent computation, the
 * baseline on a hand-made image, the CLI's JSON, table and figures, and
 * clear errors on bad input. One thread, so steps are milliseconds even on a
 * loaded machine. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/mae_train.h"
#include "mae/train_internal.h"
#include "store_synth.h"

enum { N = 32, L = 2, H = 3, SAMPLES_A = 30, SAMPLES_B = 6 };

static char *g_store_a, *g_store_b, *g_store_n16, *g_cfg;
/* Every CLI call: one thread, no spinning (the machine is shared). */
#define CLI "OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE %s --quiet mae "

static void write_store(const char *path, const char *model_id, int n_tokens, int64_t first, int64_t count) {
    ap_store_meta m = {.model_id = model_id, .n_tokens = n_tokens, .num_layers = L, .num_heads = H, .dtype = AP_BF16,
                       .small_bits = -1, .deflate = -1, .tasks = k_synth_tasks, .ntasks = 3};
    ap_store *s = NULL;
    TU_OK(ap_store_create(path, &m, &s, tu_err()));
    float *attn = malloc(sizeof(float) * L * H * n_tokens * n_tokens);
    int32_t *ids = malloc(sizeof(int32_t) * n_tokens);
    char id[32], src[64];
    for (int64_t i = first; i < first + count; i++) {
        ap_store_sample r;
        synth_record(i, n_tokens, id, src, &r, ids);
        synth_patterns(i, n_tokens, L, H, 1.0, attn);
        TU_OK(ap_store_append(s, &r, ids, attn, tu_err()));
    }
    TU_OK(ap_store_close(s, tu_err()));
    free(attn);
    free(ids);
}

/* A config small enough for millisecond steps: N 32, p 8, 16 wide. */
static const char k_config[] =
    "{\"model_type\": \"ap_mae\", \"max_length\": 32, \"patch_size\": 8, \"mask_ratio\": 0.5,\n"
    " \"encoder_dim\": 16, \"encoder_layers\": 1, \"encoder_heads\": 2, \"encoder_dim_head\": 8,\n"
    " \"encoder_mlp_dim\": 32, \"decoder_dim\": 24, \"decoder_layers\": 1, \"decoder_heads\": 2,\n"
    " \"decoder_dim_head\": 8, \"decoder_mlp_dim\": 32}\n";

static int setup(void **state) {
    (void)state;
    omp_set_num_threads(1);
    ap_log_set_level(AP_LOG_WARN);
    g_store_a = tu_tmp_path("a.h5");
    g_store_b = tu_tmp_path("b.h5");
    g_store_n16 = tu_tmp_path("n16.h5");
    g_cfg = tu_tmp_path("cfg.json");
    write_store(g_store_a, "lm-a", N, 0, SAMPLES_A);
    write_store(g_store_b, "lm-b", N, 1000, SAMPLES_B);
    write_store(g_store_n16, "lm-a", 16, 0, 3);
    tu_write_file(g_cfg, k_config, sizeof k_config - 1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(g_store_a);
    free(g_store_b);
    free(g_store_n16);
    free(g_cfg);
    return 0;
}

static ap_mae_train_options options(const char *out, int batch, int64_t steps) {
    ap_mae_train_options o;
    ap_mae_train_options_default(&o);
    o.store = g_store_a;
    o.config = g_cfg;
    o.out = out;
    o.batch = batch;
    o.steps = steps;
    o.checkpoint_every = steps; /* checkpoints sync files: few */
    return o;
}

static char *read_all(const char *path, size_t *len) {
    char *data = NULL;
    TU_OK(ap_read_file(path, &data, len, tu_err()));
    return data;
}

static void assert_same_file(const char *dir_a, const char *dir_b, const char *name) {
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/%s", dir_a, name);
    snprintf(pb, sizeof pb, "%s/%s", dir_b, name);
    size_t la, lb;
    char *a = read_all(pa, &la), *b = read_all(pb, &lb);
    if (la != lb || memcmp(a, b, la) != 0) fail_msg("%s and %s differ", pa, pb);
    free(a);
    free(b);
}

static ap_store *open_a(void) {
    ap_store *s = NULL;
    TU_OK(ap_store_open(g_store_a, AP_STORE_READ, &s, tu_err()));
    return s;
}

static const char *task_of(ap_store *s, int64_t i) {
    ap_store_sample r;
    TU_OK(ap_store_read_sample(s, i, &r, NULL, tu_err()));
    return r.task;
}

/* Training batches only hold training samples; every training sample is
 * used; the held-out set is not empty even when the rate rounds to none,
 * and agrees with the rule. */
static void test_split_by_sample(void **state) {
    (void)state;
    ap_store *s = open_a();
    mae_data d;
    TU_OK(mae_data_init(&d, s, "all", NULL, 0.3, 5, tu_err()));
    assert_int_equal(d.train_samples + d.heldout_samples, SAMPLES_A);
    assert_true(d.heldout_samples >= 3 && d.heldout_samples <= 16); /* 30% of 30, loosely */
    int seen[SAMPLES_A] = {0};
    ap_pattern_ref refs[16];
    for (int64_t step = 0; step < 40; step++) { /* 640 patterns: every task's epoch at least once */
        TU_OK(mae_data_next(&d, step, 16, refs, tu_err()));
        for (int b = 0; b < 16; b++) {
            assert_int_equal(d.role[refs[b].sample], AP_MAE_TRAIN);
            seen[refs[b].sample] = 1;
        }
    }
    for (int64_t i = 0; i < SAMPLES_A; i++) {
        ap_store_sample r;
        TU_OK(ap_store_read_sample(s, i, &r, NULL, tu_err()));
        assert_int_equal(d.role[i] == AP_MAE_HELDOUT, ap_mae_id_heldout(r.id, 5, 0.3));
        assert_int_equal(seen[i], d.role[i] == AP_MAE_TRAIN); /* held out: never trained on */
    }
    mae_data_free(&d);
    /* a rate too small for any sample still holds one out */
    TU_OK(mae_data_init(&d, s, "all", NULL, 1e-12, 5, tu_err()));
    assert_int_equal(d.heldout_samples, 1);
    mae_data_free(&d);
    ap_store_close(s, NULL);
}

/* Each batch is one task's; tasks come in turn (sorted, or as --tasks says);
 * within a task an epoch visits each selected pattern exactly once. */
static void test_batches_single_task_in_turn(void **state) {
    (void)state;
    ap_store *s = open_a();
    mae_data d;
    TU_OK(mae_data_init(&d, s, "all", NULL, 0.1, 1, tu_err()));
    assert_int_equal(d.ntasks, 3);
    assert_string_equal(d.tasks[0].name, "eol");
    assert_string_equal(d.tasks[1].name, "identifiers");
    assert_string_equal(d.tasks[2].name, "noise");
    const mae_task *t0 = &d.tasks[0];
    const int64_t n0 = t0->npatterns;
    assert_int_equal(n0, (int64_t)t0->nsamples * L * H);
    char *count = calloc((size_t)SAMPLES_A * L * H, 1);
    ap_pattern_ref refs[7];
    int64_t drawn0 = 0;
    for (int64_t step = 0; drawn0 < n0; step++) {
        TU_OK(mae_data_next(&d, step, 7, refs, tu_err()));
        const char *want = d.tasks[step % 3].name;
        for (int b = 0; b < 7; b++) {
            assert_string_equal(task_of(s, refs[b].sample), want);
            if (step % 3 == 0 && drawn0++ < n0) count[(refs[b].sample * L + refs[b].layer) * H + refs[b].head]++;
        }
    }
    for (size_t k = 0; k < t0->nsamples * L * H; k++) /* eol's epoch 0: each pattern once */
        assert_int_equal(count[(t0->samples[k / (L * H)] * L * H) + k % (L * H)], 1);
    mae_data_free(&d);
    /* --tasks order; other tasks never drawn; layerwise:1 = one head per (sample, layer) per epoch */
    TU_OK(mae_data_init(&d, s, "layerwise:1", "noise,eol", 0.1, 1, tu_err()));
    assert_int_equal(d.ntasks, 2);
    assert_string_equal(d.tasks[0].name, "noise");
    assert_int_equal(d.tasks[0].npatterns, (int64_t)d.tasks[0].nsamples * L);
    for (int64_t step = 0; step < 6; step++) {
        TU_OK(mae_data_next(&d, step, 7, refs, tu_err()));
        for (int b = 0; b < 7; b++) assert_string_equal(task_of(s, refs[b].sample), step % 2 ? "eol" : "noise");
    }
    mae_data_free(&d);
    free(count);
    ap_store_close(s, NULL);
}

/* The held-out loss after 120 steps is well below the initial one. */
static void test_training_lowers_heldout_loss(void **state) {
    (void)state;
    char *out = tu_tmp_path("learn");
    ap_mae_train_options o = options(out, 64, 120);
    o.eval_every = 120;
    ap_mae_train_result r;
    TU_OK(ap_mae_train(&o, &r, tu_err()));
    assert_int_equal(r.step, 120);
    assert_int_equal(r.ntasks, 3);
    assert_int_equal(r.train_samples + r.heldout_samples, SAMPLES_A);
    assert_true(r.heldout_loss < 0.7 * r.heldout_loss_initial);
    /* the checkpoint loads as a plain AP-MAE model */
    ap_mae_model *m = NULL;
    TU_OK(ap_mae_load(out, &m, tu_err()));
    assert_int_equal(m->cfg.encoder_dim, 16);
    assert_int_equal((int64_t)m->nparams, r.params);
    ap_mae_free(m);
    free(out);
}

/* Straight 10 steps vs stop after 4 + resume: the same model and state
 * bytes. Batches of 24 cross each task's epoch boundary (about 50 patterns),
 * layerwise heads change per epoch. Then: refusals. */
static void test_resume_is_exact(void **state) {
    (void)state;
    char *a = tu_tmp_path("straight"), *b = tu_tmp_path("resumed");
    ap_mae_train_options o = options(a, 24, 10);
    o.heads = "layerwise:2";
    o.checkpoint_every = 3;
    ap_mae_train_result r;
    TU_OK(ap_mae_train(&o, &r, tu_err()));
    o.out = b;
    o.stop_after = 4;
    TU_OK(ap_mae_train(&o, &r, tu_err()));
    assert_int_equal(r.step, 4);
    o.stop_after = 0;
    o.resume = 1;
    TU_OK(ap_mae_train(&o, &r, tu_err()));
    assert_int_equal(r.step, 10);
    assert_same_file(a, b, "model.safetensors");
    assert_same_file(a, b, AP_MAE_TRAIN_STATE);
    assert_same_file(a, b, "config.json");
    /* the log was trimmed to the checkpoint and continued: one line per step */
    size_t len;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", b, AP_MAE_TRAIN_LOG);
    char *log = read_all(path, &len);
    int lines = 0;
    for (char *p = log; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 11); /* step 0 (initial held-out loss) and 1..10 */
    free(log);
    /* a resume with other options names the option; a fresh run into DIR is refused */
    o.batch = 12;
    assert_int_equal(ap_mae_train(&o, &r, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "'batch' differs"));
    o.batch = 24;
    o.heads = "all";
    assert_int_equal(ap_mae_train(&o, &r, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "'heads' differs"));
    o.heads = "layerwise:2";
    o.resume = 0;
    assert_int_equal(ap_mae_train(&o, &r, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "already holds a training run"));
    free(a);
    free(b);
}

/* The baseline by hand: every lower patch k constant c_k plus a pixel ramp
 * shared by all patches. The pixelwise mean of the visible patches is the
 * mean of their c_k plus the ramp, so each masked patch's error is
 * (mean c - c_k)², whatever the ramp. */
static void test_baseline_by_hand(void **state) {
    (void)state;
    ap_mae_config cfg;
    TU_OK(ap_mae_config_load(g_cfg, &cfg, tu_err()));
    const int p = 8, g = 4;
    float *img = calloc(N * N, sizeof(float));
    float c[16] = {0};
    for (int k = 0; k < g * g; k++) {
        if (k / g < k % g) continue; /* above the diagonal: not a patch */
        c[k] = 0.05f * (float)(k + 1);
        for (int r = 0; r < p; r++)
            for (int q = 0; q < p; q++) img[((k / g) * p + r) * N + (k % g) * p + q] = c[k] + 0.001f * (r * p + q);
    }
    const int64_t masked[5] = {0, 5, 9, 12, 15}; /* M = floor(0.5 * 10) */
    const int64_t visible[5] = {4, 8, 10, 13, 14};
    double mean_c = 0, want = 0;
    for (int i = 0; i < 5; i++) mean_c += c[visible[i]] / 5.0;
    for (int i = 0; i < 5; i++) want += (mean_c - c[masked[i]]) * (mean_c - c[masked[i]]) / 5.0;
    float pred[64];
    double got = ap_mae_mean_patch_mse(&cfg, img, masked, 5, pred);
    assert_true(fabs(got - want) < 1e-6 * want);
    assert_true(fabsf(pred[9] - (float)(mean_c + 0.009)) < 1e-6f); /* pixel (1, 1) */
    free(img);
}

/* An independent baseline: the masked patches against the mean of the others. */
static double naive_baseline(const float *x, const int64_t *masked, int M) {
    const int p = 8, g = 4;
    double se = 0;
    int vis[16] = {0};
    for (int k = 0; k < 16; k++) vis[k] = k / g >= k % g;
    for (int i = 0; i < M; i++) vis[masked[i]] = 0;
    for (int i = 0; i < M; i++)
        for (int r = 0; r < p; r++)
            for (int q = 0; q < p; q++) {
                double sum = 0;
                int n = 0;
                for (int k = 0; k < 16; k++)
                    if (vis[k]) sum += x[((k / g) * p + r) * N + (k % g) * p + q], n++;
                double d = sum / n - x[((masked[i] / g) * p + r) * N + (masked[i] % g) * p + q];
                se += d * d;
            }
    return se / (M * p * p);
}

/* eval's mse and baseline equal a recomputation with the library's forward
 * on the same masks, over every pattern of store B (another LM: split all);
 * on store A the split is training's held-out one; cross_model_ratio. */
static void test_eval_matches_recomputation(void **state) {
    (void)state;
    char *dir = tu_tmp_path("for_eval");
    ap_mae_train_options to = options(dir, 16, 6);
    ap_mae_train_result tr;
    TU_OK(ap_mae_train(&to, &tr, tu_err()));
    ap_mae_eval_options o = {.model = dir, .store = g_store_b, .seen_store = g_store_a, .by_task = 1, .by_head = 1,
                             .seed = 3, .compat = -1};
    cJSON *j = NULL;
    TU_OK(ap_mae_eval(&o, &j, tu_err()));
    assert_string_equal(cJSON_GetObjectItem(j, "split")->valuestring, "all");
    assert_int_equal(cJSON_GetObjectItem(j, "patterns")->valueint, SAMPLES_B * L * H);

    ap_mae_model *m = NULL;
    TU_OK(ap_mae_load(dir, &m, tu_err()));
    ap_store *s = NULL;
    TU_OK(ap_store_open(g_store_b, AP_STORE_READ, &s, tu_err()));
    const int M = ap_mae_num_masked(&m->cfg);
    float *raw = malloc(sizeof(float) * N * N), *x = malloc(sizeof(float) * N * N), loss;
    int64_t masked[16];
    double mse = 0, base = 0, eol = 0;
    int neol = 0;
    for (int64_t i = 0; i < SAMPLES_B; i++)
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++) {
                ap_store_sample r;
                TU_OK(ap_store_read_sample(s, i, &r, NULL, tu_err()));
                TU_OK(ap_store_read_pattern(s, i, l, h, raw, tu_err()));
                TU_OK(ap_mae_scale(&m->cfg, raw, 1, x, tu_err()));
                ap_mae_pattern_masks(&m->cfg, 3, r.id, l, h, masked);
                TU_OK(ap_mae_forward(m, x, 1, masked, M, &loss, NULL, tu_err()));
                mse += loss;
                base += naive_baseline(x, masked, M);
                if (strcmp(r.task, "eol") == 0) eol += loss, neol++;
            }
    mse /= SAMPLES_B * L * H;
    base /= SAMPLES_B * L * H;
    double got = cJSON_GetObjectItem(j, "mse")->valuedouble, got_base = cJSON_GetObjectItem(j, "baseline_mse")->valuedouble;
    assert_true(fabs(got - mse) < 1e-5 * mse);
    assert_true(fabs(got_base - base) < 1e-5 * base);
    assert_true(fabs(cJSON_GetObjectItem(j, "ratio")->valuedouble - mse / base) < 1e-5 * mse / base);
    const cJSON *by_eol = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "by_task"), "eol");
    assert_non_null(by_eol);
    assert_true(fabs(cJSON_GetObjectItem(by_eol, "mse")->valuedouble - eol / neol) < 1e-5 * eol / neol);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "by_head")), L * H);
    assert_null(cJSON_GetObjectItem(j, "by_layer"));
    /* the seen store (the LM trained on) is evaluated on training's held-out samples */
    const cJSON *seen = cJSON_GetObjectItem(j, "seen");
    assert_string_equal(cJSON_GetObjectItem(seen, "split")->valuestring, "heldout");
    assert_int_equal(cJSON_GetObjectItem(seen, "samples")->valueint, tr.heldout_samples);
    double ratio = got / cJSON_GetObjectItem(seen, "mse")->valuedouble;
    assert_true(fabs(cJSON_GetObjectItem(j, "cross_model_ratio")->valuedouble - ratio) < 1e-9 * ratio);
    cJSON_Delete(j);
    /* --max-patterns: a subset of that size */
    o.seen_store = NULL;
    o.max_patterns = 7;
    TU_OK(ap_mae_eval(&o, &j, tu_err()));
    assert_int_equal(cJSON_GetObjectItem(j, "patterns")->valueint, 7);
    cJSON_Delete(j);
    free(raw);
    free(x);
    ap_store_close(s, NULL);
    ap_mae_free(m);
    free(dir);
}

static cJSON *run_json(const char *fmt, const char *args) {
    char *out = NULL;
    int rc = tu_run(&out, fmt, tu_apmae_bin(), args);
    if (rc != 0) fail_msg("exit %d: %s", rc, args);
    cJSON *j = cJSON_Parse(out);
    if (!j) fail_msg("not JSON: %s", out);
    free(out);
    return j;
}

/* The CLI: train's summary, eval's --json fields, the table, the figures. */
static void test_cli(void **state) {
    (void)state;
    char *dir = tu_tmp_path("cli_run"), *figs = tu_tmp_path("cli_figs"), args[4096];
    snprintf(args, sizeof args, "--store %s --config %s --batch 8 --steps 3 --out %s --compat reference", g_store_a,
             g_cfg, dir);
    cJSON *j = run_json(CLI "train %s", args);
    assert_int_equal(cJSON_GetObjectItem(j, "step")->valueint, 3);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(j, "heldout_loss")));
    cJSON_Delete(j);
    snprintf(args, sizeof args, "--model %s --store %s --json --by task,layer,head --figures 2 --out %s --split all",
             dir, g_store_a, figs);
    j = run_json(CLI "eval %s", args);
    static const char *const keys[] = {"mse", "baseline_mse", "ratio", "patterns", "split", "by_task", "by_layer",
                                       "by_head", "figures"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) assert_non_null(cJSON_GetObjectItem(j, keys[k]));
    assert_string_equal(cJSON_GetObjectItem(j, "split")->valuestring, "all");
    assert_string_equal(cJSON_GetObjectItem(j, "compat")->valuestring, "reference"); /* as trained */
    assert_int_equal(cJSON_GetObjectItem(j, "patterns")->valueint, SAMPLES_A * L * H);
    const cJSON *list = cJSON_GetObjectItem(j, "figures");
    assert_int_equal(cJSON_GetArraySize(list), 2);
    ap_mae_config cfg;
    TU_OK(ap_mae_config_load(g_cfg, &cfg, tu_err()));
    int w, h;
    ap_mae_figure_size(&cfg, &w, &h);
    assert_int_equal(w, 4 * 256 + 24);
    for (const cJSON *f = list->child; f; f = f->next) { /* decodes, and has the size */
        png_image img;
        memset(&img, 0, sizeof img);
        img.version = PNG_IMAGE_VERSION;
        assert_true(png_image_begin_read_from_file(&img, f->valuestring));
        assert_int_equal(img.width, w);
        assert_int_equal(img.height, h);
        img.format = PNG_FORMAT_RGB;
        unsigned char *buf = malloc(PNG_IMAGE_SIZE(img));
        assert_true(png_image_finish_read(&img, NULL, buf, 0, NULL));
        free(buf);
    }
    cJSON_Delete(j);
    /* the default split on the training store is the held-out one; the table names it */
    char *out = NULL;
    assert_int_equal(tu_run(&out, CLI "eval --model %s --store %s", tu_apmae_bin(), dir, g_store_a), 0);
    assert_non_null(strstr(out, "split heldout"));
    assert_non_null(strstr(out, "baseline_mse"));
    free(out);
    free(dir);
    free(figs);
}

/* exit code != 0 and the message on stderr */
static void expect_cli_error(const char *args, const char *want) {
    char *out = NULL;
    int rc = tu_run(&out, CLI "%s 2>&1", tu_apmae_bin(), args);
    if (rc == 0 || rc >= 128 || !strstr(out, want)) fail_msg("(rc %d) %s -> %s (wanted '%s')", rc, args, out, want);
    free(out);
}

/* The library's message for options o. */
static void expect_train_error(ap_mae_train_options o, const char *want) {
    ap_mae_train_result r;
    ap_status st = ap_mae_train(&o, &r, tu_err());
    if (st == AP_OK || !strstr(tu_last_error()->msg, want))
        fail_msg("status %d: '%s' (wanted '%s')", st, tu_last_error()->msg, want);
}

static void test_bad_input(void **state) {
    (void)state;
    char *dir = tu_tmp_path("bad"), args[4096], want[1024];
    ap_mae_train_options o = options(dir, 8, 1);
    snprintf(want, sizeof want, "%s/missing.h5", dir);
    o.store = want;
    expect_train_error(o, want);
    o.store = g_store_n16;
    snprintf(want, sizeof want, "%s: patterns are 16x16 (N = 16 tokens) but %s has max_length 32", g_store_n16, g_cfg);
    expect_train_error(o, want);
    o.store = g_store_a;
    o.tasks = "eol,bogus";
    expect_train_error(o, "--tasks: the store has no task 'bogus' (it has: eol, identifiers, noise)");
    o.tasks = NULL;
    o.heads = "layerwise:9";
    expect_train_error(o, "more heads than the 3 of a layer");
    o.heads = "all";
    o.resume = 1;
    expect_train_error(o, "--resume");
    /* the CLI's own checks */
    snprintf(args, sizeof args, "train --store %s --config %s --steps 1 --out %s --batch 0", g_store_a, g_cfg, dir);
    expect_cli_error(args, "--batch: must be in 1..4096, got 0");
    snprintf(args, sizeof args, "eval --model %s --store %s --figures 1", dir, g_store_a);
    expect_cli_error(args, "--figures needs --out");
    snprintf(args, sizeof args, "eval --model %s --store %s --by colour", dir, g_store_a);
    expect_cli_error(args, "--by: 'colour' is not 'task', 'layer' or 'head'");
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_by_sample),
        cmocka_unit_test(test_batches_single_task_in_turn),
        cmocka_unit_test(test_training_lowers_heldout_loss),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_baseline_by_hand),
        cmocka_unit_test(test_eval_matches_recomputation),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
