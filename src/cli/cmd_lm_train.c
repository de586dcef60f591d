/* apmae lm train | eval | train-bench: train a StarCoder2-architecture model,
 * evaluate a checkpoint, time training steps. */
#include "apmae/lm_train.h"
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cli_flag k_train_flags[] = {
    {"--corpus", "PATH", "Java corpus: directory, .zip/.tar archive or JSONL with a `content` field", 1},
    {"--tokenizer", "F", "tokenizer.json with StarCoder2's special tokens (see apmae tokenizer train)", 1},
    {"--tokens", "T", "training tokens, e.g. 20M (steps = T / (batch x seq-len), rounded up)", 1},
    {"--out", "DIR", "output: Hugging Face checkpoint + train_state.safetensors + train_log.jsonl", 1},
    {"--config", "small|tiny|FILE", "architecture: built-in name or a StarCoder2 config.json (default small)", 0},
    {"--resume", NULL, "continue the run in DIR from its last checkpoint (same options required)", 0},
    {"--seed", "S", "seed of initialisation, shuffling and FIM (default 1)", 0},
    {"--include", "GLOBS", "only corpus paths matching one of these comma-separated globs", 0},
    {"--exclude", "GLOBS", "skip corpus paths matching one of these globs", 0},
    {"--batch", "B", "sequences per step (default 16)", 0},
    {"--seq-len", "N", "tokens per sequence, the model's context (default 256)", 0},
    {"--lr", "X", "peak learning rate (default 2e-3)", 0},
    {"--min-lr-ratio", "R", "final learning rate as a share of the peak (default 0.1)", 0},
    {"--warmup", "STEPS", "linear warm-up steps (default 2% of the steps)", 0},
    {"--weight-decay", "W", "AdamW weight decay on matrices (default 0.1)", 0},
    {"--clip", "C", "gradient clipping: maximum global norm (default 1.0)", 0},
    {"--fim-rate", "R", "share of documents rewritten as fill-in-the-middle (default 0.5)", 0},
    {"--fim-split", "char|boundary", "FIM cut points: any character, or character-class boundaries (default char)", 0},
    {"--fim-chunk", "L", "FIM chunks of a document on their own, L/4..4L tokens log-uniform (default 0: whole pieces)", 0},
    {"--fim-middle-weight", "W", "gradient weight of the prediction at <fim_middle>, the middle's first token (default 1)", 0},
    {"--holdout", "R", "share of files held out for the eval loss, by path hash (default 0.01)", 0},
    {"--init-from", "DIR", "start from this checkpoint's weights (same architecture and tokenizer), not at random", 0},
    {"--eval-every", "STEPS", "held-out evaluation interval (default: 20 per run)", 0},
    {"--eval-batches", "K", "held-out batches per evaluation (default 4)", 0},
    {"--checkpoint-every", "STEPS", "checkpoint interval (default: 20 per run)", 0},
    {"--stop-after", "STEPS", "stop after this many steps with a checkpoint, as if interrupted", 0},
    {"--dtype", "f32|bf16", "dtype of model.safetensors (default f32; the training state is always f32)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_train_spec = {
    "apmae lm train --corpus PATH --tokenizer F --tokens T --out DIR [--config small|tiny|FILE] [--resume] ...",
    "Train a model of the StarCoder2 architecture from scratch: documents packed into sequences of N+1\n"
    "tokens separated by <|endoftext|>, half of them as fill-in-the-middle, AdamW (betas 0.9/0.95) with\n"
    "linear warm-up and cosine decay to 10%, gradient clipping, a held-out loss, progress with tokens/s and\n"
    "ETA, and checkpoints after which --resume continues bit for bit. DIR loads with apmae lm forward.\n"
    "Prints a JSON summary on stdout.",
    k_train_flags,
};

static const cli_flag k_eval_flags[] = {
    {"--model", "DIR", "checkpoint directory (config.json, model.safetensors, tokenizer.json)", 1},
    {"--scenarios", "F", "scenarios JSONL of apmae mine (fields task, input_ids, label_id)", 0},
    {"--corpus", "PATH", "held-out loss over this corpus", 0},
    {"--include", "GLOBS", "corpus paths to use", 0},
    {"--exclude", "GLOBS", "corpus paths to skip", 0},
    {"--max-tokens", "T", "corpus tokens evaluated at most (default 1M)", 0},
    {"--fim-rate", "R", "FIM share of the corpus sequences, as in training (default 0.5)", 0},
    {"--fim-split", "char|boundary", "FIM cut points, as in training (default char)", 0},
    {"--fim-chunk", "L", "FIM chunk length, as in training (default 0)", 0},
    {"--seed", "S", "seed of the corpus order and FIM (default 1)", 0},
    {"--batch", "B", "sequences per forward pass (default 16)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_eval_spec = {
    "apmae lm eval --model DIR [--scenarios F] [--corpus PATH [--include G] [--exclude G]]",
    "Evaluate a checkpoint and print JSON: FIM first-token accuracy per task and overall (argmax of the\n"
    "last position's logits == label_id; scenarios without a label are skipped) and, with --corpus, the\n"
    "mean loss over the corpus's sequences built as in training.",
    k_eval_flags,
};

static const cli_flag k_bench_flags[] = {
    {"--config", "small|tiny|FILE", "architecture (default small)", 0},
    {"--vocab", "V", "vocabulary size (default 16384)", 0},
    {"--batch", "B", "sequences per step (default 16)", 0},
    {"--seq-len", "N", "tokens per sequence (default 256)", 0},
    {"--steps", "K", "timed steps, best is reported (default 3)", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_bench_spec = {
    "apmae lm train-bench [--config small] [--vocab V] [--batch B] [--seq-len N] [--steps K]",
    "Time training steps (forward, backward, clipping, AdamW) on random tokens and print one JSON line:\n"
    "tokens_per_s, gflops, and the sgemm rate on the MLP's product shape measured in the same run.",
    k_bench_flags,
};

/* "20M", "1.5G", "500k", "4096" -> count. */
static ap_status parse_count(const char *s, const char *what, int64_t *out, ap_error *err) {
    char *end;
    double v = strtod(s, &end);
    double mult = 1;
    if (*end == 'k' || *end == 'K') mult = 1e3, end++;
    else if (*end == 'M' || *end == 'm') mult = 1e6, end++;
    else if (*end == 'G' || *end == 'g') mult = 1e9, end++;
    if (end == s || *end || !(v >= 0) || v * mult > 9e18)
        return ap_fail(err, AP_ERR_ARG, "%s: '%s' is not a count (e.g. 4096, 500k, 20M)", what, s);
    *out = (int64_t)llround(v * mult);
    return AP_OK;
}

static ap_status get_int(const cli_args *a, const char *flag, int lo, int hi, int *out, ap_error *err) {
    if (!cli_has(a, flag)) return AP_OK;
    int64_t v;
    ap_status st = ap_parse_i64(cli_get(a, flag), flag, &v, err);
    if (st) return st;
    if (v < lo || v > hi)
        return ap_fail(err, AP_ERR_ARG, "%s: %lld is out of range %d..%d", flag, (long long)v, lo, hi);
    *out = (int)v;
    return AP_OK;
}

static ap_status get_i64(const cli_args *a, const char *flag, int64_t *out, ap_error *err) {
    return cli_has(a, flag) ? parse_count(cli_get(a, flag), flag, out, err) : AP_OK;
}

static ap_status get_f64(const cli_args *a, const char *flag, double *out, ap_error *err) {
    return cli_has(a, flag) ? ap_parse_f64(cli_get(a, flag), flag, out, err) : AP_OK;
}

static ap_status get_seed(const cli_args *a, uint64_t *seed, ap_error *err) {
    int64_t s;
    if (!cli_has(a, "--seed")) return AP_OK;
    ap_status st = ap_parse_i64(cli_get(a, "--seed"), "--seed", &s, err);
    if (st) return st;
    if (s < 0) return ap_fail(err, AP_ERR_ARG, "--seed must be non-negative");
    *seed = (uint64_t)s;
    return AP_OK;
}

static ap_status get_fim_split(const cli_args *a, ap_fim_split *out, ap_error *err) {
    if (!cli_has(a, "--fim-split")) return AP_OK;
    const char *v = cli_get(a, "--fim-split");
    if (strcmp(v, "char") == 0) *out = AP_FIM_SPLIT_CHAR;
    else if (strcmp(v, "boundary") == 0) *out = AP_FIM_SPLIT_BOUNDARY;
    else return ap_fail(err, AP_ERR_ARG, "--fim-split: '%s' is not char or boundary", v);
    return AP_OK;
}

static ap_status run_train(const cli_args *a, ap_error *err) {
    ap_lm_train_options o;
    ap_lm_train_options_default(&o);
    o.corpus = cli_get(a, "--corpus");
    o.tokenizer = cli_get(a, "--tokenizer");
    o.out = cli_get(a, "--out");
    if (cli_has(a, "--config")) o.config = cli_get(a, "--config");
    o.corpus_opt.include = cli_get(a, "--include");
    o.corpus_opt.exclude = cli_get(a, "--exclude");
    o.resume = cli_has(a, "--resume");
    o.init_from = cli_get(a, "--init-from");
    o.progress = ap_log_get_level() >= AP_LOG_INFO;
    ap_status st;
    if ((st = parse_count(cli_get(a, "--tokens"), "--tokens", &o.tokens, err)) || (st = get_seed(a, &o.seed, err)) ||
        (st = get_int(a, "--batch", 1, 4096, &o.batch, err)) ||
        (st = get_int(a, "--seq-len", 8, 65536, &o.seq_len, err)) || (st = get_f64(a, "--lr", &o.lr, err)) ||
        (st = get_f64(a, "--min-lr-ratio", &o.min_lr_ratio, err)) || (st = get_i64(a, "--warmup", &o.warmup, err)) ||
        (st = get_f64(a, "--weight-decay", &o.weight_decay, err)) || (st = get_f64(a, "--clip", &o.clip, err)) ||
        (st = get_f64(a, "--fim-rate", &o.fim_rate, err)) || (st = get_fim_split(a, &o.fim_split, err)) ||
        (st = get_int(a, "--fim-chunk", 0, 65536, &o.fim_chunk, err)) ||
        (st = get_f64(a, "--fim-middle-weight", &o.fim_middle_weight, err)) ||
        (st = get_f64(a, "--holdout", &o.holdout, err)) ||
        (st = get_i64(a, "--eval-every", &o.eval_every, err)) ||
        (st = get_int(a, "--eval-batches", 1, 10000, &o.eval_batches, err)) ||
        (st = get_i64(a, "--checkpoint-every", &o.checkpoint_every, err)) ||
        (st = get_i64(a, "--stop-after", &o.stop_after, err)))
        return st;
    if (cli_has(a, "--dtype")) {
        const char *d = cli_get(a, "--dtype");
        if (strcmp(d, "f32") == 0) o.out_dtype = AP_F32;
        else if (strcmp(d, "bf16") == 0) o.out_dtype = AP_BF16;
        else if (strcmp(d, "f16") == 0) o.out_dtype = AP_F16;
        else return ap_fail(err, AP_ERR_ARG, "--dtype: '%s' is not f32, bf16 or f16", d);
    }
    ap_lm_train_result r;
    if ((st = ap_lm_train(&o, &r, err))) return st;
    printf("{\"out\":\"%s\",\"step\":%lld,\"steps\":%lld,\"params\":%lld,\"train_files\":%lld,\"holdout_files\":%lld,"
           "\"train_loss\":%.5f,\"eval_loss\":%.5f,\"tokens_per_s\":%.1f,\"seconds\":%.1f}\n",
           o.out, (long long)r.step, (long long)r.steps, (long long)r.params, (long long)r.train_files,
           (long long)r.holdout_files, isnan(r.train_loss) ? -1.0 : r.train_loss,
           isnan(r.eval_loss) ? -1.0 : r.eval_loss, r.tokens_per_s, r.seconds);
    return AP_OK;
}

static ap_status run_eval(const cli_args *a, ap_error *err) {
    ap_lm_eval_options o = {.model = cli_get(a, "--model"),
                            .scenarios = cli_get(a, "--scenarios"),
                            .corpus = cli_get(a, "--corpus"),
                            .corpus_opt = {.include = cli_get(a, "--include"), .exclude = cli_get(a, "--exclude")},
                            .max_tokens = 1000000,
                            .fim_rate = 0.5,
                            .seed = 1,
                            .batch = 16,
                            .progress = ap_log_get_level() >= AP_LOG_INFO};
    ap_status st;
    if ((st = get_i64(a, "--max-tokens", &o.max_tokens, err)) || (st = get_f64(a, "--fim-rate", &o.fim_rate, err)) ||
        (st = get_seed(a, &o.seed, err)) || (st = get_int(a, "--batch", 1, 4096, &o.batch, err)) ||
        (st = get_fim_split(a, &o.fim_split, err)) || (st = get_int(a, "--fim-chunk", 0, 65536, &o.fim_chunk, err)))
        return st;
    if (!(o.fim_rate >= 0 && o.fim_rate <= 1)) return ap_fail(err, AP_ERR_ARG, "--fim-rate must be in [0, 1]");
    ap_buf out = {0};
    if (!(st = ap_lm_eval(&o, &out, err)) && fwrite(out.data, 1, out.len, stdout) != out.len)
        st = ap_fail_errno(err, AP_ERR_IO, "cannot write to stdout");
    ap_buf_free(&out);
    return st;
}

static ap_status run_bench(const cli_args *a, ap_error *err) {
    int vocab = 16384, B = 16, T = 256, steps = 3;
    const char *config = cli_has(a, "--config") ? cli_get(a, "--config") : "small";
    ap_status st;
    if ((st = get_int(a, "--vocab", 1, 1 << 22, &vocab, err)) || (st = get_int(a, "--batch", 1, 4096, &B, err)) ||
        (st = get_int(a, "--seq-len", 8, 65536, &T, err)) || (st = get_int(a, "--steps", 1, 1000, &steps, err)))
        return st;
    ap_lm_config cfg;
    if ((st = ap_lm_train_config(config, vocab, T, &cfg, err))) return st;
    double tps, gflops;
    if ((st = ap_lm_train_bench(&cfg, B, T, steps, &tps, &gflops, err))) return st;
    double sgemm = measure_sgemm_gflops(B * T, cfg.hidden_size, cfg.intermediate_size, 5);
    printf("{\"impl\":\"apmae\",\"config\":\"%s\",\"vocab\":%d,\"batch\":%d,\"seq_len\":%d,\"tokens_per_s\":%.1f,"
           "\"gflops\":%.2f,\"sgemm_gflops\":%.2f,\"sgemm_share\":%.3f,\"threads\":%d}\n",
           config, cfg.vocab_size, B, T, tps, gflops, sgemm, sgemm > 0 ? gflops / sgemm : 0.0, ap_num_threads());
    return AP_OK;
}

static int dispatch(const cli_spec *spec, ap_status (*run)(const cli_args *, ap_error *), int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(spec, argc, argv, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    return run(&a, &err) ? cli_report(&err) : 0;
}

int cmd_lm_train(int argc, char **argv) { return dispatch(&k_train_spec, run_train, argc, argv); }
int cmd_lm_eval(int argc, char **argv) { return dispatch(&k_eval_spec, run_eval, argc, argv); }
int cmd_lm_train_bench(int argc, char **argv) { return dispatch(&k_bench_spec, run_bench, argc, argv); }
