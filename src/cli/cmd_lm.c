/* apmae lm forward | bench: run the StarCoder2 model. */
#include "apmae/lm.h"
#include "apmae/text.h"
#include "cli.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const cli_flag k_forward_flags[] = {
    {"--model", "DIR", "Hugging Face StarCoder2 checkpoint directory (config.json, safetensors)", 1},
    {"--ids", "I,J,...", "input token ids (needs no tokenizer)", 0},
    {"--text", "STR", "input text, tokenized with DIR/tokenizer.json", 0},
    {"--out", "OUT.safetensors", "output: input_ids I64 [T], logits F32 [T,V], attentions F32 [L,H,T,T]", 1},
    {"--ablate", "L:H,...", "zero these heads' P.v before o_proj (0-based layer:head)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_forward_spec = {
    "apmae lm forward --model DIR (--ids I,J,... | --text STR) --out OUT.safetensors [--ablate L:H,...]",
    "Run the model on one sequence and write its logits and every head's attention pattern.",
    k_forward_flags,
};

static const cli_flag k_bench_flags[] = {
    {"--model", "DIR", "checkpoint directory", 1},
    {"--tokens", "T", "sequence length (default 256)", 0},
    {"--iters", "K", "timed repetitions, best is reported (default 5)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_bench_spec = {
    "apmae lm bench --model DIR [--tokens T] [--iters K]",
    "Time the forward pass with attention capture (model load excluded, best of K after one warm-up) and\n"
    "print one JSON line: tokens_per_s, gflops, and the machine's sgemm rate measured in the same run.",
    k_bench_flags,
};

/* "L:H,L:H" -> mask [L*H]. */
static ap_status parse_ablate(const char *s, const ap_lm_config *c, uint8_t *mask, ap_error *err) {
    const char *p = s;
    while (*p) {
        char *end;
        long l = strtol(p, &end, 10);
        if (end == p || *end != ':') return ap_fail(err, AP_ERR_ARG, "--ablate: expected L:H at '%s'", p);
        p = end + 1;
        long h = strtol(p, &end, 10);
        if (end == p || (*end != ',' && *end != '\0'))
            return ap_fail(err, AP_ERR_ARG, "--ablate: expected L:H at '%s'", p);
        if (l < 0 || l >= c->num_layers || h < 0 || h >= c->num_heads)
            return ap_fail(err, AP_ERR_RANGE, "--ablate: head %ld:%ld does not exist (model has %d layers x %d heads)",
                           l, h, c->num_layers, c->num_heads);
        mask[l * c->num_heads + h] = 1;
        p = *end ? end + 1 : end;
    }
    return AP_OK;
}

static ap_status input_ids(const cli_args *a, const char *model_dir, int32_t **ids, size_t *n, ap_error *err) {
    const char *ids_arg = cli_get(a, "--ids"), *text = cli_get(a, "--text");
    if (!!ids_arg == !!text) return ap_fail(err, AP_ERR_ARG, "give exactly one of --ids and --text");
    if (text) {
        ap_tokenizer *tok;
        ap_status st = ap_tokenizer_load(model_dir, &tok, err);
        if (st) return st;
        st = ap_tokenizer_encode(tok, text, strlen(text), ids, n, err);
        ap_tokenizer_free(tok);
        return st;
    }
    int64_t *v;
    ap_status st = ap_parse_i64_list(ids_arg, "--ids", &v, n, err);
    if (st) return st;
    *ids = ap_malloc(*n * sizeof **ids, err);
    if (!*ids) {
        free(v);
        return AP_ERR_NOMEM;
    }
    for (size_t i = 0; i < *n; i++) {
        if (v[i] < INT32_MIN || v[i] > INT32_MAX) {
            free(v);
            free(*ids);
            return ap_fail(err, AP_ERR_RANGE, "--ids: %lld is not a token id", (long long)v[i]);
        }
        (*ids)[i] = (int32_t)v[i];
    }
    free(v);
    return AP_OK;
}

static ap_status run_forward(const cli_args *a, ap_error *err) {
    const char *dir = cli_get(a, "--model"), *out = cli_get(a, "--out");
    ap_lm *lm = NULL;
    ap_lm_state *s = NULL;
    int32_t *ids = NULL;
    float *logits = NULL, *att = NULL;
    uint8_t *mask = NULL;
    int64_t *ids64 = NULL;
    size_t n = 0;
    ap_status st;
    if ((st = input_ids(a, dir, &ids, &n, err))) goto done;
    if (n == 0) {
        st = ap_fail(err, AP_ERR_ARG, "empty input: the text tokenizes to no tokens");
        goto done;
    }
    if ((st = ap_lm_load(dir, &lm, err))) goto done;
    const ap_lm_config *c = &lm->cfg;
    size_t T = n, L = (size_t)c->num_layers, H = (size_t)c->num_heads, V = (size_t)c->vocab_size;
    st = AP_ERR_NOMEM;
    mask = ap_calloc(L * H, 1, err);
    logits = ap_malloc(T * V * sizeof(float), err);
    att = ap_malloc(L * H * T * T * sizeof(float), err);
    ids64 = ap_malloc(T * sizeof *ids64, err);
    if (!mask || !logits || !att || !ids64) goto done;
    if (cli_has(a, "--ablate") && (st = parse_ablate(cli_get(a, "--ablate"), c, mask, err))) goto done;
    if ((st = ap_lm_state_new(lm, (int)T, &s, err))) goto done;
    ap_lm_forward_opts opts = {.ablate = mask, .last_only = 0};
    if ((st = ap_lm_forward(lm, s, ids, (int)T, &opts, logits, att, err))) goto done;
    for (size_t i = 0; i < T; i++) ids64[i] = ids[i];
    ap_tensor_view views[3] = {
        {"input_ids", AP_I64, 1, {(int64_t)T}, ids64},
        {"logits", AP_F32, 2, {(int64_t)T, (int64_t)V}, logits},
        {"attentions", AP_F32, 4, {(int64_t)L, (int64_t)H, (int64_t)T, (int64_t)T}, att},
    };
    st = ap_st_write(out, views, 3, NULL, err);
done:
    ap_lm_state_free(s);
    ap_lm_free(lm);
    free(ids);
    free(ids64);
    free(logits);
    free(att);
    free(mask);
    return st;
}

/* The machine's sgemm rate on a product shaped like the MLP's, GFLOP/s. */
double measure_sgemm_gflops(int T, int D, int F, int iters) {
    float *a = calloc((size_t)T * D, sizeof(float)), *w = calloc((size_t)F * D, sizeof(float));
    float *c = calloc((size_t)T * F, sizeof(float));
    double best = 1e30;
    if (a && w && c) {
        for (size_t i = 0; i < (size_t)F * D; i++) w[i] = (float)(i % 7) * 0.01f;
        for (size_t i = 0; i < (size_t)T * D; i++) a[i] = (float)(i % 5) * 0.01f;
        for (int it = 0; it <= iters; it++) {
            double t0 = ap_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, F, D, 1.0f, a, D, w, D, 0.0f, c, F);
            double dt = ap_now() - t0;
            if (it > 0 && dt < best) best = dt;
        }
    }
    free(a);
    free(w);
    free(c);
    return best < 1e30 ? 2.0 * T * D * F / best / 1e9 : 0.0;
}

static ap_status run_bench(const cli_args *a, ap_error *err) {
    int64_t T = 256, iters = 5;
    ap_status st;
    if (cli_has(a, "--tokens") && (st = ap_parse_i64(cli_get(a, "--tokens"), "--tokens", &T, err))) return st;
    if (cli_has(a, "--iters") && (st = ap_parse_i64(cli_get(a, "--iters"), "--iters", &iters, err))) return st;
    if (T < 1 || T > 1 << 16) return ap_fail(err, AP_ERR_ARG, "--tokens: %lld is out of range", (long long)T);
    if (iters < 1 || iters > 1000) return ap_fail(err, AP_ERR_ARG, "--iters: %lld is out of range", (long long)iters);
    ap_lm *lm = NULL;
    ap_lm_state *s = NULL;
    if ((st = ap_lm_load(cli_get(a, "--model"), &lm, err))) return st;
    const ap_lm_config *c = &lm->cfg;
    size_t L = (size_t)c->num_layers, H = (size_t)c->num_heads;
    int32_t *ids = ap_malloc((size_t)T * sizeof *ids, err);
    float *logits = ap_malloc((size_t)T * c->vocab_size * sizeof(float), err);
    float *att = ap_malloc(L * H * (size_t)T * T * sizeof(float), err);
    st = AP_ERR_NOMEM;
    if (!ids || !logits || !att) goto done;
    if ((st = ap_lm_state_new(lm, (int)T, &s, err))) goto done;
    uint64_t x = 0x9E3779B97F4A7C15ull; /* fixed pseudo-random ids */
    for (int64_t t = 0; t < T; t++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[t] = (int32_t)(x % (uint64_t)c->vocab_size);
    }
    double best = 1e30;
    for (int64_t it = 0; it <= iters; it++) {
        double t0 = ap_now();
        if ((st = ap_lm_forward(lm, s, ids, (int)T, NULL, logits, att, err))) goto done;
        double dt = ap_now() - t0;
        if (it > 0 && dt < best) best = dt; /* iteration 0 warms caches and page-ins */
    }
    double flops = ap_lm_forward_flops(c, (int)T, 0);
    double sgemm = measure_sgemm_gflops((int)T, c->hidden_size, c->intermediate_size, 5);
    double gflops = flops / best / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru); /* peak resident set: mapped weights + activations + outputs */
    printf("{\"impl\":\"apmae\",\"tokens\":%lld,\"seconds\":%.6f,\"tokens_per_s\":%.2f,\"gflops\":%.2f,"
           "\"sgemm_gflops\":%.2f,\"sgemm_share\":%.3f,\"threads\":%d,\"weights_dtype\":\"%s\","
           "\"peak_rss_mb\":%.1f}\n",
           (long long)T, best, (double)T / best, gflops, sgemm, sgemm > 0 ? gflops / sgemm : 0.0, ap_num_threads(),
           ap_dtype_name(lm->layers[0].q_w.dtype), (double)ru.ru_maxrss / 1024.0);
    st = AP_OK;
done:
    ap_lm_state_free(s);
    ap_lm_free(lm);
    free(ids);
    free(logits);
    free(att);
    return st;
}

int cmd_lm(int argc, char **argv) {
    if (argc < 1 || strcmp(argv[0], "--help") == 0) {
        FILE *out = argc < 1 ? stderr : stdout;
        fprintf(out, "usage: apmae lm SUBCOMMAND [flags]\n\n  forward  %s\n  bench    %s\n", k_forward_spec.description,
                "time the forward pass (tokens/s, GFLOP/s vs the sgemm rate)");
        fprintf(out, "  train    train a StarCoder2-architecture model on a Java corpus\n"
                     "  eval     FIM first-token accuracy on scenarios, held-out loss on a corpus\n"
                     "  train-bench  time training steps (tokens/s, GFLOP/s vs the sgemm rate)\n");
        return argc < 1 ? 2 : 0;
    }
    if (strcmp(argv[0], "train") == 0) return cmd_lm_train(argc - 1, argv + 1);
    if (strcmp(argv[0], "eval") == 0) return cmd_lm_eval(argc - 1, argv + 1);
    if (strcmp(argv[0], "train-bench") == 0) return cmd_lm_train_bench(argc - 1, argv + 1);
    const cli_spec *spec = strcmp(argv[0], "forward") == 0 ? &k_forward_spec
                           : strcmp(argv[0], "bench") == 0 ? &k_bench_spec
                                                            : NULL;
    if (!spec) {
        fprintf(stderr, "apmae: error: unknown 'lm' subcommand '%s'; see 'apmae lm --help'\n", argv[0]);
        return 2;
    }
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(spec, argc - 1, argv + 1, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    ap_status st = spec == &k_forward_spec ? run_forward(&a, &err) : run_bench(&a, &err);
    return st ? cli_report(&err) : 0;
}
