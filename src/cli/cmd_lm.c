/* apmae lm forward | bench: run the StarCoder2 model. */
#include "apmae/lm.h"
#include "apmae/text.h"
#include "cli.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const cli_flag k_forward_flags[] = {
    {"--model", CLI_PATH, "DIR", "Hugging Face StarCoder2 checkpoint directory (config.json, safetensors)", .required = 1},
    {"--ids", CLI_INT_LIST, NULL, "input token ids (needs no tokenizer)"},
    {"--text", CLI_STRING, "STR", "input text, tokenized with DIR/tokenizer.json"},
    {"--out", CLI_PATH, "OUT.safetensors", "output: input_ids I64 [T], logits F32 [T,V], attentions F32 [L,H,T,T]",
     .required = 1},
    {"--ablate", CLI_STRING, "L:H,...", "zero these heads' P.v before o_proj (0-based layer:head)"},
    {0},
};

static const cli_flag k_bench_flags[] = {
    {"--model", CLI_PATH, "DIR", "checkpoint directory", .required = 1},
    {"--tokens", CLI_INT, "T", "sequence length", .def = "256", .range = "1..65536"},
    {"--iters", CLI_INT, "K", "timed repetitions, best is reported", .def = "5", .range = "1..1000"},
    {0},
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
    const char *text = cli_str(a, "--text");
    if (cli_has(a, "--ids") == !!text) return ap_fail(err, AP_ERR_ARG, "give exactly one of --ids and --text");
    if (!text) return cli_int32s(a, "--ids", ids, n, err);
    ap_tokenizer *tok;
    ap_status st = ap_tokenizer_load(model_dir, &tok, err);
    if (st) return st;
    st = ap_tokenizer_encode(tok, text, strlen(text), ids, n, err);
    ap_tokenizer_free(tok);
    return st;
}

static ap_status run_forward(const cli_args *a, ap_error *err) {
    const char *dir = cli_str(a, "--model"), *out = cli_str(a, "--out");
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
    if (cli_has(a, "--ablate") && (st = parse_ablate(cli_str(a, "--ablate"), c, mask, err))) goto done;
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
    int64_t T = cli_int(a, "--tokens"), iters = cli_int(a, "--iters");
    ap_lm *lm = NULL;
    ap_lm_state *s = NULL;
    ap_status st;
    if ((st = ap_lm_load(cli_str(a, "--model"), &lm, err))) return st;
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

static const cli_spec k_forward_spec = {
    .name = "lm forward",
    .summary = "run the model on one sequence: logits and every head's attention pattern",
    .usage = "apmae lm forward --model DIR (--ids I,J,... | --text STR) --out OUT.safetensors [--ablate L:H,...]",
    .description = "Run the model on one sequence and write its logits and every head's attention pattern.",
    .docs = "docs/lm.md",
    .flags = k_forward_flags,
    .run = run_forward,
};

static const cli_spec k_bench_spec = {
    .name = "lm bench",
    .summary = "time the forward pass (tokens/s, GFLOP/s vs the sgemm rate)",
    .description =
        "Time the forward pass with attention capture (model load excluded, best of K after one warm-up) and\n"
        "print one JSON line: tokens_per_s, gflops, and the machine's sgemm rate measured in the same run.",
    .docs = "docs/performance.md",
    .flags = k_bench_flags,
    .run = run_bench,
};

int cmd_lm(int argc, char **argv) {
    static const cli_spec *const subs[] = {&k_forward_spec, &k_bench_spec, &cli_lm_train_spec, &cli_lm_eval_spec,
                                           &cli_lm_train_bench_spec};
    return cli_run_group("lm", subs, sizeof subs / sizeof *subs, argc, argv);
}
