/* apmae mae init | forward | bench | train | eval: the AP-MAE model. */
#include "apmae/io.h"
#include "apmae/mae.h"
#include "apmae/mae_train.h"
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cli_flag k_init_flags[] = {
    {"--config", "tiny|paper|small|FILE", "model config: a built-in name or a config.json", 1},
    {"--seed", "S", "initialisation seed (default 0)", 0},
    {"--out", "DIR", "checkpoint directory to write (config.json, model.safetensors)", 1},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_init_spec = {
    "apmae mae init --config tiny|paper|small|FILE [--seed S] --out DIR",
    "Write a randomly initialised AP-MAE checkpoint (docs/mae.md initialisation).",
    k_init_flags,
};

static const cli_flag k_forward_flags[] = {
    {"--model", "DIR", "AP-MAE checkpoint directory (config.json, model.safetensors)", 1},
    {"--in", "IN.safetensors", "patterns F32 [B,N,N] (probabilities), optional masked_indices I64 [B,M]", 1},
    {"--out", "OUT.safetensors", "scaled [B,N,N], loss [B], pred [B,M,p*p], cls [B,D], mean [B,D]", 1},
    {"--compat", "default|reference", "reference: the published code's decoder slots and encoding", 0},
    {"--seed", "S", "seed of the random masks when IN has no masked_indices (default 0)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_forward_spec = {
    "apmae mae forward --model DIR --in IN.safetensors --out OUT.safetensors [--compat reference] [--seed S]",
    "Scale the patterns, run the masked forward (per-image loss, predicted masked patches in the order of\n"
    "masked_indices) and the encoder (cls and mean encodings).",
    k_forward_flags,
};

static const cli_flag k_bench_flags[] = {
    {"--config", "tiny|paper|small|FILE", "model config", 1},
    {"--batch", "B", "images per step (default 60)", 0},
    {"--steps", "K", "timed steps after one warm-up (default 5)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_bench_spec = {
    "apmae mae bench --config C [--batch B] [--steps K]",
    "Time training steps (scale, mask, forward, backward, AdamW) and masked forward passes (scale, mask,\n"
    "forward) of a random model on random causal patterns; print one JSON line with train_images_per_s and\n"
    "forward_images_per_s (batch / median step time over K steps after one warm-up).",
    k_bench_flags,
};

static const cli_flag k_train_flags[] = {
    {"--store", "S", "pattern store (apmae extract)", 1},
    {"--config", "tiny|paper|small|FILE", "model config; its max_length must be the store's N", 1},
    {"--steps", "K", "training steps", 1},
    {"--out", "DIR", "training directory: checkpoint, train_state, train_args.json, train_log.jsonl", 1},
    {"--batch", "B", "patterns per step, all of one task (default 60)", 0},
    {"--lr", "LR", "peak learning rate of the cosine schedule (default 1.5e-4 * B / 50)", 0},
    {"--heads", "all|layerwise:q", "patterns of a sample trained on: every head, or q per layer (default all)", 0},
    {"--tasks", "T1,T2,...", "train on these tasks only, in this turn order (default: every task)", 0},
    {"--holdout", "R", "share of the samples held out, by a hash of the sample id (default 0.05)", 0},
    {"--seed", "S", "seed of initialisation, split, order and masks (default 0)", 0},
    {"--checkpoint-every", "K", "checkpoint interval in steps (default: 20 per run)", 0},
    {"--eval-every", "K", "held-out loss interval in steps (default: 20 per run)", 0},
    {"--eval-patterns", "P", "held-out patterns of each evaluation (default 256)", 0},
    {"--stop-after", "K", "stop after this step with a checkpoint, as if interrupted", 0},
    {"--resume", NULL, "continue the run in DIR from its last checkpoint (same options required)", 0},
    {"--compat", "default|reference", "reference: the published code's decoder slots", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_train_spec = {
    "apmae mae train --store S --config tiny|paper|small|FILE --steps K --out DIR [--batch 60] [--lr LR]\n"
    "                [--heads all|layerwise:q] [--tasks T1,T2] [--holdout R] [--seed S] [--checkpoint-every K]\n"
    "                [--eval-every K] [--resume]",
    "Train AP-MAE on a store's patterns: a held-out split by sample, batches of one task at a time (tasks in\n"
    "turn) shuffled per epoch, AdamW with the cosine schedule restarting every epoch, progress with loss,\n"
    "images/s and ETA, atomic checkpoints after which --resume continues bit for bit. DIR loads with\n"
    "apmae mae forward and mae eval. Prints a JSON summary on stdout.",
    k_train_flags,
};

static const cli_flag k_eval_flags[] = {
    {"--model", "DIR", "AP-MAE checkpoint (a mae train directory, or any checkpoint with --split all)", 1},
    {"--store", "S", "pattern store to evaluate on", 1},
    {"--out", "OUTDIR", "write eval.json and the figures here", 0},
    {"--by", "task,layer,head", "also report the MSE by task, layer and/or head", 0},
    {"--figures", "K", "4-panel PNG figures of K samples in OUTDIR", 0},
    {"--json", NULL, "one JSON object on stdout instead of a table", 0},
    {"--split", "heldout|all", "held-out samples of training (default when the store is of the model trained on) "
                               "or all", 0},
    {"--max-patterns", "P", "evaluate a random subset of P patterns (default: all)", 0},
    {"--seed", "S", "seed of the masks and of the subset (default 0)", 0},
    {"--seen-store", "S0", "store of the LM trained on: also report cross_model_ratio = mse(S) / mse(S0)", 0},
    {"--compat", "default|reference", "decoder mode (default: as trained)", 0},
    {"--train-store", "S", "the AP-MAE's training store, if it moved from where train_args.json says (for the "
                           "head-mean baseline when DIR has no head_mean.safetensors of it)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_eval_spec = {
    "apmae mae eval --model DIR --store S [--out OUTDIR] [--by task,layer,head] [--figures K] [--json]\n"
    "               [--split heldout|all] [--max-patterns P] [--seed S] [--seen-store S0] [--train-store S]",
    "Reconstruction MSE over the masked pixels of every pattern (all layers and heads) of the split, beside\n"
    "two baselines on the same masks: mean-patch (each masked patch predicted as the mean of the image's\n"
    "visible patches; ratio = mse / baseline_mse) and head-mean (each masked patch predicted by its head's\n"
    "mean pattern over the AP-MAE's training samples; head_mean_ratio = mse / head_mean_mse). The head-mean\n"
    "table is computed once from the training store and cached in DIR/head_mean.safetensors (docs/mae.md).",
    k_eval_flags,
};

static ap_status parse_seed(const cli_args *a, uint64_t *seed, ap_error *err) {
    int64_t s = 0;
    if (cli_has(a, "--seed")) {
        ap_status st = ap_parse_i64(cli_get(a, "--seed"), "--seed", &s, err);
        if (st) return st;
        if (s < 0) return ap_fail(err, AP_ERR_ARG, "--seed: %lld is negative", (long long)s);
    }
    *seed = (uint64_t)s;
    return AP_OK;
}

static ap_status run_init(const cli_args *a, ap_error *err) {
    ap_mae_config cfg;
    uint64_t seed = 0;
    ap_status st = ap_mae_config_resolve(cli_get(a, "--config"), &cfg, err);
    if (st == AP_OK) st = parse_seed(a, &seed, err);
    if (st) return st;
    ap_mae_model *m;
    if ((st = ap_mae_new(&cfg, seed, &m, err))) return st;
    st = ap_mae_save(m, cli_get(a, "--out"), err);
    if (st == AP_OK)
        ap_info("wrote %s: %zu tensors, %zu parameters", cli_get(a, "--out"), ap_mae_tensor_count(m), m->nparams);
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

static ap_status parse_compat(const cli_args *a, int *compat, ap_error *err) {
    const char *c = cli_get(a, "--compat");
    *compat = 0;
    if (!c || strcmp(c, "default") == 0) return AP_OK;
    if (strcmp(c, "reference") == 0) {
        *compat = 1;
        return AP_OK;
    }
    return ap_fail(err, AP_ERR_ARG, "--compat: '%s' is not 'default' or 'reference'", c);
}

/* Images per forward call, so activations stay small for any B. */
#define FWD_CHUNK 32

static ap_status run_forward(const cli_args *a, ap_error *err) {
    ap_mae_model *m = NULL;
    fwd_input in = {0};
    float *scaled = NULL, *loss = NULL, *pred = NULL, *cls = NULL, *mean = NULL;
    uint64_t seed = 0;
    int compat;
    ap_status st = parse_compat(a, &compat, err);
    if (st == AP_OK) st = parse_seed(a, &seed, err);
    if (st == AP_OK) st = ap_mae_load(cli_get(a, "--model"), &m, err);
    if (st == AP_OK) st = read_input(cli_get(a, "--in"), m, seed, &in, err);
    if (st) goto done;
    m->compat_reference = compat;
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
    st = ap_st_write(cli_get(a, "--out"), views, 5, NULL, err);
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
    int64_t B = 60, K = 5;
    ap_status st = ap_mae_config_resolve(cli_get(a, "--config"), &cfg, err);
    if (st == AP_OK && cli_has(a, "--batch")) st = ap_parse_i64(cli_get(a, "--batch"), "--batch", &B, err);
    if (st == AP_OK && cli_has(a, "--steps")) st = ap_parse_i64(cli_get(a, "--steps"), "--steps", &K, err);
    if (st) return st;
    if (B < 1 || B > 4096) return ap_fail(err, AP_ERR_ARG, "--batch: %lld is outside 1..4096", (long long)B);
    if (K < 1 || K > 10000) return ap_fail(err, AP_ERR_ARG, "--steps: %lld is outside 1..10000", (long long)K);
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
           cli_get(a, "--config"), (long long)B, (long long)K, ap_num_threads(), (double)B / median(t_train, K),
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

/* A non-negative integer flag, when given. */
static ap_status get_count(const cli_args *a, const char *flag, int64_t lo, int64_t hi, int64_t *out, ap_error *err) {
    if (!cli_has(a, flag)) return AP_OK;
    ap_status st = ap_parse_i64(cli_get(a, flag), flag, out, err);
    if (st) return st;
    if (*out < lo || *out > hi)
        return ap_fail(err, AP_ERR_ARG, "%s: %lld is outside %lld..%lld", flag, (long long)*out, (long long)lo,
                       (long long)hi);
    return AP_OK;
}

static double json_num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static ap_status run_train(const cli_args *a, ap_error *err) {
    ap_mae_train_options o;
    ap_mae_train_options_default(&o);
    o.store = cli_get(a, "--store");
    o.config = cli_get(a, "--config");
    o.out = cli_get(a, "--out");
    if (cli_has(a, "--heads")) o.heads = cli_get(a, "--heads");
    o.tasks = cli_get(a, "--tasks");
    o.resume = cli_has(a, "--resume");
    if (cli_has(a, "--lr")) {
        ap_status st = ap_parse_f64(cli_get(a, "--lr"), "--lr", &o.lr, err);
        if (st) return st;
        if (!(o.lr > 0)) return ap_fail(err, AP_ERR_ARG, "--lr: %g is not positive", o.lr);
    }
    o.progress = ap_log_get_level() >= AP_LOG_INFO;
    int64_t batch = o.batch, eval_patterns = o.eval_patterns;
    ap_status st;
    if ((st = get_count(a, "--steps", 1, INT64_MAX, &o.steps, err)) ||
        (st = get_count(a, "--batch", 1, 4096, &batch, err)) || (st = parse_seed(a, &o.seed, err)) ||
        (st = get_count(a, "--checkpoint-every", 1, INT64_MAX, &o.checkpoint_every, err)) ||
        (st = get_count(a, "--eval-every", 1, INT64_MAX, &o.eval_every, err)) ||
        (st = get_count(a, "--eval-patterns", 1, 1 << 24, &eval_patterns, err)) ||
        (st = get_count(a, "--stop-after", 1, INT64_MAX, &o.stop_after, err)) ||
        (st = parse_compat(a, &o.compat_reference, err)))
        return st;
    if (cli_has(a, "--holdout") && (st = ap_parse_f64(cli_get(a, "--holdout"), "--holdout", &o.holdout, err)))
        return st;
    o.batch = (int)batch;
    o.eval_patterns = (int)eval_patterns;
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

static ap_status parse_by(const char *by, ap_mae_eval_options *o, ap_error *err) {
    for (const char *p = by; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n == 4 && strncmp(p, "task", 4) == 0) o->by_task = 1;
        else if (n == 5 && strncmp(p, "layer", 5) == 0) o->by_layer = 1;
        else if (n == 4 && strncmp(p, "head", 4) == 0) o->by_head = 1;
        else return ap_fail(err, AP_ERR_ARG, "--by: '%.*s' is not task, layer or head", (int)n, p);
        p += n + (p[n] == ',');
    }
    return AP_OK;
}

static void print_row(const char *label, const cJSON *r) {
    printf("%-20s %12.6f %12.6f %8.4f %13.6f %10.4f %9.0f\n", label, json_num(r, "mse"), json_num(r, "baseline_mse"),
           json_num(r, "ratio"), json_num(r, "head_mean_mse"), json_num(r, "head_mean_ratio"),
           json_num(r, "patterns"));
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
    printf("%-20s %12s %12s %8s %13s %10s %9s\n", "", "mse", "baseline_mse", "ratio", "head_mean_mse", "head_ratio",
           "patterns");
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
    ap_mae_eval_options o = {.model = cli_get(a, "--model"),
                             .store = cli_get(a, "--store"),
                             .seen_store = cli_get(a, "--seen-store"),
                             .train_store = cli_get(a, "--train-store"),
                             .out = cli_get(a, "--out"),
                             .compat = -1,
                             .progress = ap_log_get_level() >= AP_LOG_INFO};
    int64_t figures = 0;
    ap_status st;
    if ((st = parse_by(cli_get(a, "--by"), &o, err)) || (st = get_count(a, "--figures", 0, 10000, &figures, err)) ||
        (st = get_count(a, "--max-patterns", 1, INT64_MAX, &o.max_patterns, err)) ||
        (st = parse_seed(a, &o.seed, err)))
        return st;
    o.figures = (int)figures;
    if (cli_has(a, "--compat") && (st = parse_compat(a, &o.compat, err))) return st;
    const char *split = cli_get(a, "--split");
    if (split && strcmp(split, "heldout") == 0) o.split = AP_MAE_SPLIT_HELDOUT;
    else if (split && strcmp(split, "all") == 0) o.split = AP_MAE_SPLIT_ALL;
    else if (split && strcmp(split, "auto") != 0)
        return ap_fail(err, AP_ERR_ARG, "--split: '%s' is not heldout or all", split);
    cJSON *j;
    if ((st = ap_mae_eval(&o, &j, err))) return st;
    if (cli_has(a, "--json")) {
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

int cmd_mae(int argc, char **argv) {
    static const struct {
        const char *name, *summary;
        const cli_spec *spec;
        ap_status (*run)(const cli_args *, ap_error *);
    } subs[] = {
        {"init", "write a randomly initialised checkpoint", &k_init_spec, run_init},
        {"forward", "loss, predicted patches and encodings of patterns", &k_forward_spec, run_forward},
        {"bench", "training and forward images/s of a random model", &k_bench_spec, run_bench},
        {"train", "train on a pattern store (held-out split, checkpoints, --resume)", &k_train_spec, run_train},
        {"eval", "reconstruction MSE vs the mean-patch and head-mean baselines, figures, cross-model ratio",
         &k_eval_spec, run_eval},
    };
    if (argc < 1 || strcmp(argv[0], "--help") == 0) {
        FILE *out = argc < 1 ? stderr : stdout;
        fprintf(out, "usage: apmae mae SUBCOMMAND [flags]\n\n");
        for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
            fprintf(out, "  %-8s %s\n", subs[i].name, subs[i].summary);
        return argc < 1 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
        if (strcmp(argv[0], subs[i].name) != 0) continue;
        cli_args a;
        ap_error err = {0};
        int r = cli_parse(subs[i].spec, argc - 1, argv + 1, &a, &err);
        if (r != 0) return r > 0 ? 0 : cli_report(&err);
        return subs[i].run(&a, &err) ? cli_report(&err) : 0;
    }
    fprintf(stderr, "apmae: error: unknown 'mae' subcommand '%s'; see 'apmae mae --help'\n", argv[0]);
    return 2;
}
