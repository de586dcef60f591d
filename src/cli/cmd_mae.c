/* apmae mae init | forward | bench | train | eval: the AP-MAE model. */
#include "apmae/io.h"
#include "apmae/mae.h"
#include "apmae/mae_train.h"
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COMPAT_HELP "reference: the published code's decoder slots and encoding (docs/mae.md)"

static const cli_flag k_init_flags[] = {
    {"--config", CLI_STRING, "tiny|paper|small|FILE", "model config: a built-in name or a config.json", .required = 1},
    {"--seed", CLI_INT, "S", "initialisation seed", .def = "0", .range = "0.."},
    {"--out", CLI_PATH, "DIR", "checkpoint directory to write (config.json, model.safetensors)", .required = 1},
    {0},
};

static const cli_flag k_forward_flags[] = {
    {"--model", CLI_PATH, "DIR", "AP-MAE checkpoint directory (config.json, model.safetensors)", .required = 1},
    {"--in", CLI_PATH, "IN.safetensors", "patterns F32 [B,N,N] (probabilities), optional masked_indices I64 [B,M]",
     .required = 1},
    {"--out", CLI_PATH, "OUT.safetensors", "scaled [B,N,N], loss [B], pred [B,M,p*p], cls [B,D], mean [B,D]",
     .required = 1},
    {"--compat", CLI_CHOICE, NULL, COMPAT_HELP, .choices = "default|reference", .def = "default"},
    {"--seed", CLI_INT, "S", "seed of the random masks when IN has no masked_indices", .def = "0", .range = "0.."},
    {0},
};

static const cli_flag k_bench_flags[] = {
    {"--config", CLI_STRING, "tiny|paper|small|FILE", "model config", .required = 1},
    {"--batch", CLI_INT, "B", "images per step", .def = "60", .range = "1..4096"},
    {"--steps", CLI_INT, "K", "timed steps after one warm-up", .def = "5", .range = "1..10000"},
    {0},
};

static const cli_flag k_train_flags[] = {
    {"--store", CLI_PATH, "S", "pattern store (apmae extract)", .required = 1},
    {"--config", CLI_STRING, "tiny|paper|small|FILE", "model config; its max_length must be the store's N", .required = 1},
    {"--steps", CLI_INT, "K", "training steps", .range = "1..", .required = 1},
    {"--out", CLI_PATH, "DIR", "training directory: checkpoint, train_state, train_args.json, train_log.jsonl",
     .required = 1},
    {"--batch", CLI_INT, "B", "patterns per step, all of one task; lr = 1.5e-4 * B / 50", .def = "60", .range = "1..4096"},
    {"--heads", CLI_STRING, "all|layerwise:q", "patterns of a sample trained on: every head, or q per layer", .def = "all"},
    {"--tasks", CLI_STRING, "T1,T2,...", "train on these tasks only, in this turn order",
     .def_note = "every task"},
    {"--holdout", CLI_REAL, "R", "share of the samples held out, by a hash of the sample id", .def = "0.05",
     .range = "(0, 1)"},
    {"--seed", CLI_INT, "S", "seed of initialisation, split, order and masks", .def = "0", .range = "0.."},
    {"--checkpoint-every", CLI_INT, "K", "checkpoint interval in steps", .range = "1..",
     .def_note = "20 per run"},
    {"--eval-every", CLI_INT, "K", "held-out loss interval in steps", .range = "1..",
     .def_note = "20 per run"},
    {"--eval-patterns", CLI_INT, "P", "held-out patterns of each evaluation", .def = "256", .range = "1..16777216"},
    {"--stop-after", CLI_INT, "K", "stop after this step with a checkpoint, as if interrupted", .range = "1.."},
    {"--resume", CLI_SWITCH, NULL, "continue the run in DIR from its last checkpoint (same options required)"},
    {"--compat", CLI_CHOICE, NULL, COMPAT_HELP, .choices = "default|reference", .def = "default"},
    {0},
};

static const cli_flag k_eval_flags[] = {
    {"--model", CLI_PATH, "DIR", "AP-MAE checkpoint (a mae train directory, or any checkpoint with --split all)",
     .required = 1},
    {"--store", CLI_PATH, "S", "pattern store to evaluate on", .required = 1},
    {"--out", CLI_PATH, "OUTDIR", "write eval.json and the figures here"},
    {"--by", CLI_CHOICES, "task,layer,head", "also report the MSE by task, layer and/or head",
     .choices = "task|layer|head"},
    {"--figures", CLI_INT, "K", "4-panel PNG figures of K samples in OUTDIR", .def = "0", .range = "0..10000"},
    {"--json", CLI_SWITCH, NULL, "one JSON object on stdout instead of a table"},
    {"--split", CLI_CHOICE, NULL,
     "held-out samples of training, or all; auto: held-out when the store is of the model trained on, else all",
     .choices = "auto|heldout|all", .def = "auto"},
    {"--max-patterns", CLI_INT, "P", "evaluate a random subset of P patterns", .range = "1..",
     .def_note = "all"},
    {"--seed", CLI_INT, "S", "seed of the masks and of the subset", .def = "0", .range = "0.."},
    {"--seen-store", CLI_PATH, "S0", "store of the LM trained on: also report cross_model_ratio = mse(S) / mse(S0)"},
    {"--compat", CLI_CHOICE, NULL, "decoder mode", .choices = "default|reference",
     .def_note = "as trained"},
    {0},
};

static ap_status run_init(const cli_args *a, ap_error *err) {
    ap_mae_config cfg;
    ap_status st = ap_mae_config_resolve(cli_str(a, "--config"), &cfg, err);
    if (st) return st;
    ap_mae_model *m;
    if ((st = ap_mae_new(&cfg, (uint64_t)cli_int(a, "--seed"), &m, err))) return st;
    st = ap_mae_save(m, cli_str(a, "--out"), err);
    if (st == AP_OK)
        ap_info("wrote %s: %zu tensors, %zu parameters", cli_str(a, "--out"), ap_mae_tensor_count(m), m->nparams);
    ap_mae_free(m);
    return st;
}

/* The inputs of `forward`, checked against the model. */
typedef struct fwd_input {
    int B, M;
    float *patterns;  /* [B,N,N] */
    int64_t *masked; /* [B,M] */
} fwd_input;

static ap_status read_input(const char *path, const ap_mae_model *m, uint64_t seed, fwd_input *in, ap_error *err) {
    ap_safetensors *st;
    ap_status rc = ap_st_open(path, &st, err);
    if (rc) return rc;
    const int N = m->cfg.max_length;
    const ap_tensor *p = ap_st_find(st, "patterns"), *mi = ap_st_find(st, "masked_indices");
    if (!p)
        rc = ap_fail(err, AP_ERR_FORMAT, "%s: no tensor 'patterns' (F32 [B,N,N])", path);
    else if (p->dtype != AP_F32 && p->dtype != AP_F16 && p->dtype != AP_BF16)
        rc = ap_fail(err, AP_ERR_FORMAT, "%s: patterns has dtype %s, expected F32", path, ap_dtype_name(p->dtype));
    else if (p->ndim != 3 || p->shape[0] < 1 || p->shape[0] > (1 << 24) || p->shape[1] != p->shape[2])
        rc = ap_fail(err, AP_ERR_FORMAT, "%s: patterns must be [B,N,N] with B >= 1", path);
    else if (p->shape[1] != N)
        rc = ap_fail(err, AP_ERR_FORMAT, "%s: patterns are %lldx%lld but the model's max_length N is %d", path,
                     (long long)p->shape[1], (long long)p->shape[2], N);
    else if (mi && (mi->dtype != AP_I64 || mi->ndim != 2 || mi->shape[0] != p->shape[0]))
        rc = ap_fail(err, AP_ERR_FORMAT, "%s: masked_indices must be I64 [B,M] with B = %lld (the patterns')", path,
                     (long long)p->shape[0]);
    if (rc) {
        ap_st_close(st);
        return rc;
    }
    in->B = (int)p->shape[0];
    in->M = mi ? (int)mi->shape[1] : ap_mae_num_masked(&m->cfg);
    in->patterns = ap_malloc(p->numel * sizeof(float), err);
    in->masked = ap_malloc((size_t)in->B * (in->M > 0 ? in->M : 1) * sizeof(int64_t), err);
    if (!in->patterns || !in->masked) {
        rc = AP_ERR_NOMEM;
    } else {
        ap_to_f32(p->dtype, p->data, in->patterns, p->numel);
        if (mi) {
            memcpy(in->masked, mi->data, mi->nbytes);
            rc = ap_mae_check_masks(&m->cfg, in->masked, in->B, in->M, err);
            if (rc) ap_error_prefix(err, "%s", path);
        } else {
            ap_rng rng;
            ap_rng_seed(&rng, seed);
            ap_mae_random_masks(&m->cfg, &rng, in->B, in->masked);
        }
    }
    ap_st_close(st);
    return rc;
}

/* Images per forward call, so activations stay small for any B. */
#define FWD_CHUNK 32

static ap_status run_forward(const cli_args *a, ap_error *err) {
    ap_mae_model *m = NULL;
    fwd_input in = {0};
    float *scaled = NULL, *loss = NULL, *pred = NULL, *cls = NULL, *mean = NULL;
    ap_status st = ap_mae_load(cli_str(a, "--model"), &m, err);
    if (st == AP_OK) st = read_input(cli_str(a, "--in"), m, (uint64_t)cli_int(a, "--seed"), &in, err);
    if (st) goto done;
    m->compat_reference = cli_choice(a, "--compat");
    const size_t B = (size_t)in.B, M = (size_t)in.M, N = (size_t)m->cfg.max_length;
    const size_t P2 = (size_t)m->cfg.patch_size * m->cfg.patch_size, D = (size_t)m->cfg.encoder_dim;
    scaled = ap_malloc(B * N * N * sizeof(float), err);
    loss = ap_malloc(B * sizeof(float), err);
    pred = ap_malloc(B * M * P2 * sizeof(float), err);
    cls = ap_malloc(B * D * sizeof(float), err);
    mean = ap_malloc(B * D * sizeof(float), err);
    st = AP_ERR_NOMEM;
    if (!scaled || !loss || !pred || !cls || !mean) goto done;
    if ((st = ap_mae_scale(&m->cfg, in.patterns, in.B, scaled, err))) goto done;
    for (size_t b = 0; b < B; b += FWD_CHUNK) {
        int n = (int)(B - b < FWD_CHUNK ? B - b : FWD_CHUNK);
        const float *x = scaled + b * N * N;
        if ((st = ap_mae_forward(m, x, n, in.masked + b * M, (int)M, loss + b, pred + b * M * P2, err))) goto done;
        if ((st = ap_mae_encode(m, x, n, cls + b * D, mean + b * D, err))) goto done;
    }
    ap_tensor_view views[5] = {
        {"scaled", AP_F32, 3, {(int64_t)B, (int64_t)N, (int64_t)N}, scaled},
        {"loss", AP_F32, 1, {(int64_t)B}, loss},
        {"pred", AP_F32, 3, {(int64_t)B, (int64_t)M, (int64_t)P2}, pred},
        {"cls", AP_F32, 2, {(int64_t)B, (int64_t)D}, cls},
        {"mean", AP_F32, 2, {(int64_t)B, (int64_t)D}, mean},
    };
    st = ap_st_write(cli_str(a, "--out"), views, 5, NULL, err);
done:
    ap_mae_free(m);
    free(in.patterns);
    free(in.masked);
    free(scaled);
    free(loss);
    free(pred);
    free(cls);
    free(mean);
    return st;
}

/* Causal softmax rows of random logits: stand-ins for real attention patterns. */
static void random_patterns(float *P, int B, int N, ap_rng *rng) {
    for (size_t r = 0; r < (size_t)B * N; r++) {
        float *row = P + r * N;
        int i = (int)(r % N);
        double sum = 0;
        for (int j = 0; j < N; j++) {
            row[j] = j <= i ? (float)exp(4.0 * ap_rng_uniform(rng)) : 0.0f;
            sum += row[j];
        }
        for (int j = 0; j <= i; j++) row[j] = (float)(row[j] / sum);
    }
}

/* Median of n step times (sorts t): steady against a busy machine's outliers. */
static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}
static double median(double *t, int64_t n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static ap_status run_bench(const cli_args *a, ap_error *err) {
    ap_mae_config cfg;
    int64_t B = cli_int(a, "--batch"), K = cli_int(a, "--steps");
    ap_status st = ap_mae_config_resolve(cli_str(a, "--config"), &cfg, err);
    if (st) return st;
    ap_mae_model *m;
    if ((st = ap_mae_new(&cfg, 0, &m, err))) return st;
    double *t_train = NULL, *t_fwd = NULL;
    const size_t N = (size_t)cfg.max_length, M = (size_t)ap_mae_num_masked(&cfg);
    float *patterns = ap_malloc((size_t)B * N * N * sizeof(float), err);
    float *scaled = ap_malloc((size_t)B * N * N * sizeof(float), err);
    float *loss = ap_malloc((size_t)B * sizeof(float), err);
    int64_t *masked = ap_malloc((size_t)B * M * sizeof(int64_t), err);
    t_train = ap_malloc((size_t)K * sizeof(double), err);
    t_fwd = ap_malloc((size_t)K * sizeof(double), err);
    st = AP_ERR_NOMEM;
    if (!patterns || !scaled || !loss || !masked || !t_train || !t_fwd) goto done;
    ap_rng rng;
    ap_rng_seed(&rng, 1);
    random_patterns(patterns, (int)B, (int)N, &rng);
    double lr = ap_mae_base_lr((int)B);
    float batch_loss = 0;
    for (int64_t k = 0; k <= K; k++) { /* step 0 warms up (allocations, page-ins) */
        double t0 = ap_now();
        if ((st = ap_mae_train_step(m, patterns, (int)B, NULL, 0, &rng, lr, &batch_loss, err))) goto done;
        if (k > 0) t_train[k - 1] = ap_now() - t0;
    }
    for (int64_t k = 0; k <= K; k++) {
        double t0 = ap_now();
        ap_mae_random_masks(&cfg, &rng, (int)B, masked);
        if ((st = ap_mae_scale(&cfg, patterns, (int)B, scaled, err))) goto done;
        if ((st = ap_mae_forward(m, scaled, (int)B, masked, (int)M, loss, NULL, err))) goto done;
        if (k > 0) t_fwd[k - 1] = ap_now() - t0;
    }
    printf("{\"impl\":\"apmae\",\"config\":\"%s\",\"batch\":%lld,\"steps\":%lld,\"threads\":%d,"
           "\"train_images_per_s\":%.2f,\"forward_images_per_s\":%.2f,\"last_loss\":%.6f}\n",
           cli_str(a, "--config"), (long long)B, (long long)K, ap_num_threads(), (double)B / median(t_train, K),
           (double)B / median(t_fwd, K), (double)batch_loss);
    st = AP_OK;
done:
    free(t_train);
    free(t_fwd);
    ap_mae_free(m);
    free(patterns);
    free(scaled);
    free(loss);
    free(masked);
    return st;
}

static double json_num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static ap_status run_train(const cli_args *a, ap_error *err) {
    ap_mae_train_options o;
    ap_mae_train_options_default(&o);
    o.store = cli_str(a, "--store");
    o.config = cli_str(a, "--config");
    o.out = cli_str(a, "--out");
    o.heads = cli_str(a, "--heads");
    o.tasks = cli_str(a, "--tasks");
    o.resume = cli_switch(a, "--resume");
    o.progress = ap_log_get_level() >= AP_LOG_INFO;
    o.steps = cli_int(a, "--steps");
    o.batch = (int)cli_int(a, "--batch");
    o.seed = (uint64_t)cli_int(a, "--seed");
    o.checkpoint_every = cli_int(a, "--checkpoint-every");
    o.eval_every = cli_int(a, "--eval-every");
    o.eval_patterns = (int)cli_int(a, "--eval-patterns");
    o.stop_after = cli_int(a, "--stop-after");
    o.compat_reference = cli_choice(a, "--compat");
    o.holdout = cli_real(a, "--holdout");
    ap_status st;
    ap_mae_train_result r;
    if ((st = ap_mae_train(&o, &r, err))) return st;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "out", o.out);
    cJSON_AddNumberToObject(j, "step", (double)r.step);
    cJSON_AddNumberToObject(j, "steps", (double)r.steps);
    cJSON_AddNumberToObject(j, "steps_per_epoch", (double)r.steps_per_epoch);
    cJSON_AddNumberToObject(j, "params", (double)r.params);
    cJSON_AddNumberToObject(j, "tasks", r.ntasks);
    cJSON_AddNumberToObject(j, "train_samples", (double)r.train_samples);
    cJSON_AddNumberToObject(j, "heldout_samples", (double)r.heldout_samples);
    cJSON_AddNumberToObject(j, "train_patterns", (double)r.train_patterns);
    cJSON_AddNumberToObject(j, "train_loss", r.train_loss);
    cJSON_AddNumberToObject(j, "heldout_loss", r.heldout_loss);
    cJSON_AddNumberToObject(j, "heldout_loss_initial", r.heldout_loss_initial);
    cJSON_AddNumberToObject(j, "images_per_s", r.images_per_s);
    cJSON_AddNumberToObject(j, "seconds", r.seconds);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    printf("%s\n", text);
    free(text);
    return AP_OK;
}

static void print_row(const char *label, const cJSON *r) {
    printf("%-20s %12.6f %12.6f %8.4f %9.0f\n", label, json_num(r, "mse"), json_num(r, "baseline_mse"),
           json_num(r, "ratio"), json_num(r, "patterns"));
}

static void print_group(const cJSON *j, const char *key, const char *prefix) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, key);
    for (const cJSON *r = g ? g->child : NULL; r; r = r->next) {
        char label[96];
        snprintf(label, sizeof label, "%s%s", prefix, r->string);
        print_row(label, r);
    }
}

static void print_table(const cJSON *j) {
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(j, "split");
    printf("store %s, split %s: %.0f samples, %.0f patterns\n\n", cJSON_GetStringValue(cJSON_GetObjectItem(j, "store")),
           cJSON_GetStringValue(split), json_num(j, "samples"), json_num(j, "patterns"));
    printf("%-20s %12s %12s %8s %9s\n", "", "mse", "baseline_mse", "ratio", "patterns");
    print_row("overall", j);
    print_group(j, "by_task", "task ");
    print_group(j, "by_layer", "layer ");
    print_group(j, "by_head", "head ");
    const cJSON *seen = cJSON_GetObjectItemCaseSensitive(j, "seen");
    if (seen) {
        printf("\nseen store %s, split %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(seen, "store")),
               cJSON_GetStringValue(cJSON_GetObjectItem(seen, "split")));
        print_row("overall (seen)", seen);
        printf("cross_model_ratio %.4f (mse on this store / mse on the seen store)\n",
               json_num(j, "cross_model_ratio"));
    }
    const cJSON *figs = cJSON_GetObjectItemCaseSensitive(j, "figures");
    for (const cJSON *f = figs ? figs->child : NULL; f; f = f->next) printf("figure %s\n", f->valuestring);
}

static ap_status run_eval(const cli_args *a, ap_error *err) {
    static const ap_mae_split_mode splits[] = {AP_MAE_SPLIT_AUTO, AP_MAE_SPLIT_HELDOUT, AP_MAE_SPLIT_ALL}; /* --split */
    unsigned by = cli_choices(a, "--by"); /* bits in the order task, layer, head */
    ap_mae_eval_options o = {.model = cli_str(a, "--model"),
                             .store = cli_str(a, "--store"),
                             .seen_store = cli_str(a, "--seen-store"),
                             .out = cli_str(a, "--out"),
                             .by_task = !!(by & 1),
                             .by_layer = !!(by & 2),
                             .by_head = !!(by & 4),
                             .figures = (int)cli_int(a, "--figures"),
                             .max_patterns = cli_int(a, "--max-patterns"),
                             .seed = (uint64_t)cli_int(a, "--seed"),
                             .split = splits[cli_choice(a, "--split")],
                             .compat = cli_choice(a, "--compat"),
                             .progress = ap_log_get_level() >= AP_LOG_INFO};
    ap_status st;
    cJSON *j;
    if ((st = ap_mae_eval(&o, &j, err))) return st;
    if (cli_switch(a, "--json")) {
        char *text = cJSON_PrintUnformatted(j);
        if (text) printf("%s\n", text);
        else st = ap_fail(err, AP_ERR_NOMEM, "out of memory");
        free(text);
    } else {
        print_table(j);
    }
    cJSON_Delete(j);
    return st;
}

static const cli_spec k_init_spec = {
    .name = "mae init",
    .summary = "write a randomly initialised checkpoint",
    .description = "Write a randomly initialised AP-MAE checkpoint (its initialisation is described in docs/mae.md).",
    .docs = "docs/mae.md",
    .flags = k_init_flags,
    .run = run_init,
};

static const cli_spec k_forward_spec = {
    .name = "mae forward",
    .summary = "loss, predicted patches and encodings of patterns",
    .description =
        "Scale the patterns, run the masked forward (per-image loss, predicted masked patches in the order of\n"
        "masked_indices) and the encoder (cls and mean encodings).",
    .docs = "docs/mae.md",
    .flags = k_forward_flags,
    .run = run_forward,
};

static const cli_spec k_bench_spec = {
    .name = "mae bench",
    .summary = "training and forward images/s of a random model",
    .description =
        "Time training steps (scale, mask, forward, backward, AdamW) and masked forward passes (scale, mask,\n"
        "forward) of a random model on random causal patterns; print one JSON line with train_images_per_s and\n"
        "forward_images_per_s (batch / median step time over K steps after one warm-up).",
    .docs = "docs/performance.md",
    .flags = k_bench_flags,
    .run = run_bench,
};

static const cli_spec k_train_spec = {
    .name = "mae train",
    .summary = "train on a pattern store (held-out split, checkpoints, --resume)",
    .description =
        "Train AP-MAE on a store's patterns: a held-out split by sample, batches of one task at a time (tasks in\n"
        "turn) shuffled per epoch, AdamW with the cosine schedule restarting every epoch, progress with loss,\n"
        "images/s and ETA, atomic checkpoints after which --resume continues bit for bit. DIR loads with\n"
        "apmae mae forward and mae eval. Prints a JSON summary on stdout.",
    .docs = "docs/mae.md",
    .flags = k_train_flags,
    .run = run_train,
};

static const cli_spec k_eval_spec = {
    .name = "mae eval",
    .summary = "reconstruction MSE vs the mean-patch baseline, figures, cross-model ratio",
    .description =
        "Reconstruction MSE over the masked pixels of every pattern (all layers and heads) of the split, beside\n"
        "the mean-patch baseline (each masked patch predicted as the mean of the visible patches) on the same\n"
        "masks; ratio = mse / baseline_mse.",
    .docs = "docs/mae.md",
    .flags = k_eval_flags,
    .run = run_eval,
};

int cmd_mae(int argc, char **argv) {
    static const cli_spec *const subs[] = {&k_init_spec, &k_forward_spec, &k_bench_spec, &k_train_spec, &k_eval_spec};
    return cli_run_group("mae", subs, sizeof subs / sizeof *subs, argc, argv);
}
