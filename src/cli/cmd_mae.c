/* apmae mae init | forward | bench: the AP-MAE model. */
#include "apmae/io.h"
#include "apmae/mae.h"
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
    "Write a randomly initialised AP-MAE checkpoint (SPEC §7 initialisation).",
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

int cmd_mae(int argc, char **argv) {
    static const struct {
        const char *name, *summary;
        const cli_spec *spec;
        ap_status (*run)(const cli_args *, ap_error *);
    } subs[] = {
        {"init", "write a randomly initialised checkpoint", &k_init_spec, run_init},
        {"forward", "loss, predicted patches and encodings of patterns", &k_forward_spec, run_forward},
        {"bench", "training and forward images/s of a random model", &k_bench_spec, run_bench},
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
