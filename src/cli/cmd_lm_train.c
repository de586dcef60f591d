/* apmae lm train | eval | train-bench: train a StarCoder2-architecture model,
 * evaluate a checkpoint, time training steps. */
#include "apmae/lm_train.h"
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cli_flag k_train_flags[] = {
    {"--corpus", CLI_PATH, "PATH", "Java corpus: directory, .zip/.tar archive or JSONL with a `content` field", .required = 1},
    {"--tokenizer", CLI_PATH, "F", "tokenizer.json with StarCoder2's special tokens (see apmae tokenizer train)",
     .required = 1},
    {"--tokens", CLI_COUNT, "T", "training tokens, e.g. 20M (steps = T / (batch x seq-len), rounded up)", .range = "1..",
     .required = 1},
    {"--out", CLI_PATH, "DIR", "output: Hugging Face checkpoint + train_state.safetensors + train_log.jsonl", .required = 1},
    {"--config", CLI_STRING, "small|tiny|FILE", "architecture: built-in name or a StarCoder2 config.json", .def = "small"},
    {"--resume", CLI_SWITCH, NULL, "continue the run in DIR from its last checkpoint (same options required)"},
    {"--seed", CLI_INT, "S", "seed of initialisation, shuffling and FIM", .def = "1", .range = "0.."},
    {"--include", CLI_STRING, "GLOBS", "only corpus paths matching one of these comma-separated globs"},
    {"--exclude", CLI_STRING, "GLOBS", "skip corpus paths matching one of these globs"},
    {"--batch", CLI_INT, "B", "sequences per step", .def = "16", .range = "1..4096"},
    {"--seq-len", CLI_INT, "N", "tokens per sequence, the model's context", .def = "256", .range = "8..65536"},
    {"--lr", CLI_REAL, "X", "peak learning rate", .def = "2e-3", .range = "(0, 1)"},
    {"--min-lr-ratio", CLI_REAL, "R", "final learning rate as a share of the peak", .def = "0.1", .range = "[0, 1]"},
    {"--warmup", CLI_COUNT, "STEPS", "linear warm-up steps", .def_note = "2% of the steps"},
    {"--weight-decay", CLI_REAL, "W", "AdamW weight decay on matrices", .def = "0.1", .range = "[0, 1)"},
    {"--clip", CLI_REAL, "C", "gradient clipping: maximum global norm", .def = "1.0", .range = "(0, inf)"},
    {"--fim-rate", CLI_REAL, "R", "share of documents rewritten as fill-in-the-middle", .def = "0.5", .range = "[0, 1]"},
    {"--fim-split", CLI_CHOICE, NULL, "FIM cut points: any character, or character-class boundaries",
     .choices = "char|boundary", .def = "char"},
    {"--fim-chunk", CLI_INT, "L", "FIM chunks of a document on their own, L/4..4L tokens log-uniform (0: whole pieces)",
     .def = "0", .range = "0..65536"},
    {"--fim-middle-weight", CLI_REAL, "W", "gradient weight of the prediction at <fim_middle>, the middle's first token",
     .def = "1", .range = "(0, 1000]"},
    {"--holdout", CLI_REAL, "R", "share of files held out for the eval loss, by path hash", .def = "0.01",
     .range = "[0, 1)"},
    {"--init-from", CLI_PATH, "DIR", "start from this checkpoint's weights (same architecture and tokenizer), not at random"},
    {"--eval-every", CLI_COUNT, "STEPS", "held-out evaluation interval", .def_note = "20 per run"},
    {"--eval-batches", CLI_INT, "K", "held-out batches per evaluation", .def = "4", .range = "1..10000"},
    {"--checkpoint-every", CLI_COUNT, "STEPS", "checkpoint interval", .def_note = "20 per run"},
    {"--stop-after", CLI_COUNT, "STEPS", "stop after this many steps with a checkpoint, as if interrupted"},
    {"--dtype", CLI_CHOICE, NULL, "dtype of model.safetensors (the training state is always f32)",
     .choices = "f32|bf16|f16", .def = "f32"},
    {0},
};

static const cli_flag k_eval_flags[] = {
    {"--model", CLI_PATH, "DIR", "checkpoint directory (config.json, model.safetensors, tokenizer.json)", .required = 1},
    {"--scenarios", CLI_PATH, "F", "scenarios JSONL of apmae mine (fields task, input_ids, label_id)"},
    {"--corpus", CLI_PATH, "PATH", "held-out loss over this corpus"},
    {"--include", CLI_STRING, "GLOBS", "corpus paths to use"},
    {"--exclude", CLI_STRING, "GLOBS", "corpus paths to skip"},
    {"--max-tokens", CLI_COUNT, "T", "corpus tokens evaluated at most", .def = "1M"},
    {"--fim-rate", CLI_REAL, "R", "FIM share of the corpus sequences, as in training", .def = "0.5", .range = "[0, 1]"},
    {"--fim-split", CLI_CHOICE, NULL, "FIM cut points, as in training", .choices = "char|boundary", .def = "char"},
    {"--fim-chunk", CLI_INT, "L", "FIM chunk length, as in training", .def = "0", .range = "0..65536"},
    {"--seed", CLI_INT, "S", "seed of the corpus order and FIM", .def = "1", .range = "0.."},
    {"--batch", CLI_INT, "B", "sequences per forward pass", .def = "16", .range = "1..4096"},
    {0},
};

static const cli_flag k_bench_flags[] = {
    {"--config", CLI_STRING, "small|tiny|FILE", "architecture", .def = "small"},
    {"--vocab", CLI_INT, "V", "vocabulary size", .def = "16384", .range = "1..4194304"},
    {"--batch", CLI_INT, "B", "sequences per step", .def = "16", .range = "1..4096"},
    {"--seq-len", CLI_INT, "N", "tokens per sequence", .def = "256", .range = "8..65536"},
    {"--steps", CLI_INT, "K", "timed steps, best is reported", .def = "3", .range = "1..1000"},
    {0},
};

static const ap_fim_split k_fim_splits[] = {AP_FIM_SPLIT_CHAR, AP_FIM_SPLIT_BOUNDARY}; /* as in --fim-split */

static ap_status run_train(const cli_args *a, ap_error *err) {
    static const ap_dtype dtypes[] = {AP_F32, AP_BF16, AP_F16}; /* as in --dtype */
    ap_lm_train_options o;
    ap_lm_train_options_default(&o);
    o.corpus = cli_str(a, "--corpus");
    o.tokenizer = cli_str(a, "--tokenizer");
    o.out = cli_str(a, "--out");
    o.config = cli_str(a, "--config");
    o.corpus_opt.include = cli_str(a, "--include");
    o.corpus_opt.exclude = cli_str(a, "--exclude");
    o.resume = cli_switch(a, "--resume");
    o.init_from = cli_str(a, "--init-from");
    o.progress = ap_log_get_level() >= AP_LOG_INFO;
    o.tokens = cli_int(a, "--tokens");
    o.seed = (uint64_t)cli_int(a, "--seed");
    o.batch = (int)cli_int(a, "--batch");
    o.seq_len = (int)cli_int(a, "--seq-len");
    o.lr = cli_real(a, "--lr");
    o.min_lr_ratio = cli_real(a, "--min-lr-ratio");
    o.warmup = cli_has(a, "--warmup") ? cli_int(a, "--warmup") : -1;
    o.weight_decay = cli_real(a, "--weight-decay");
    o.clip = cli_real(a, "--clip");
    o.fim_rate = cli_real(a, "--fim-rate");
    o.fim_split = k_fim_splits[cli_choice(a, "--fim-split")];
    o.fim_chunk = (int)cli_int(a, "--fim-chunk");
    o.fim_middle_weight = cli_real(a, "--fim-middle-weight");
    o.holdout = cli_real(a, "--holdout");
    o.eval_every = cli_int(a, "--eval-every");
    o.eval_batches = (int)cli_int(a, "--eval-batches");
    o.checkpoint_every = cli_int(a, "--checkpoint-every");
    o.stop_after = cli_int(a, "--stop-after");
    o.out_dtype = dtypes[cli_choice(a, "--dtype")];
    ap_lm_train_result r;
    ap_status st = ap_lm_train(&o, &r, err);
    if (st) return st;
    printf("{\"out\":\"%s\",\"step\":%lld,\"steps\":%lld,\"params\":%lld,\"train_files\":%lld,\"holdout_files\":%lld,"
           "\"train_loss\":%.5f,\"eval_loss\":%.5f,\"tokens_per_s\":%.1f,\"seconds\":%.1f}\n",
           o.out, (long long)r.step, (long long)r.steps, (long long)r.params, (long long)r.train_files,
           (long long)r.holdout_files, isnan(r.train_loss) ? -1.0 : r.train_loss,
           isnan(r.eval_loss) ? -1.0 : r.eval_loss, r.tokens_per_s, r.seconds);
    return AP_OK;
}

static ap_status run_eval(const cli_args *a, ap_error *err) {
    ap_lm_eval_options o = {.model = cli_str(a, "--model"),
                            .scenarios = cli_str(a, "--scenarios"),
                            .corpus = cli_str(a, "--corpus"),
                            .corpus_opt = {.include = cli_str(a, "--include"), .exclude = cli_str(a, "--exclude")},
                            .max_tokens = cli_int(a, "--max-tokens"),
                            .fim_rate = cli_real(a, "--fim-rate"),
                            .fim_split = k_fim_splits[cli_choice(a, "--fim-split")],
                            .fim_chunk = (int)cli_int(a, "--fim-chunk"),
                            .seed = (uint64_t)cli_int(a, "--seed"),
                            .batch = (int)cli_int(a, "--batch"),
                            .progress = ap_log_get_level() >= AP_LOG_INFO};
    ap_buf out = {0};
    ap_status st = ap_lm_eval(&o, &out, err);
    if (!st && fwrite(out.data, 1, out.len, stdout) != out.len) st = ap_fail_errno(err, AP_ERR_IO, "cannot write to stdout");
    ap_buf_free(&out);
    return st;
}

static ap_status run_bench(const cli_args *a, ap_error *err) {
    int vocab = (int)cli_int(a, "--vocab"), B = (int)cli_int(a, "--batch"), T = (int)cli_int(a, "--seq-len");
    const char *config = cli_str(a, "--config");
    ap_lm_config cfg;
    ap_status st = ap_lm_train_config(config, vocab, T, &cfg, err);
    if (st) return st;
    double tps, gflops;
    if ((st = ap_lm_train_bench(&cfg, B, T, (int)cli_int(a, "--steps"), &tps, &gflops, err))) return st;
    double sgemm = measure_sgemm_gflops(B * T, cfg.hidden_size, cfg.intermediate_size, 5);
    printf("{\"impl\":\"apmae\",\"config\":\"%s\",\"vocab\":%d,\"batch\":%d,\"seq_len\":%d,\"tokens_per_s\":%.1f,"
           "\"gflops\":%.2f,\"sgemm_gflops\":%.2f,\"sgemm_share\":%.3f,\"threads\":%d}\n",
           config, cfg.vocab_size, B, T, tps, gflops, sgemm, sgemm > 0 ? gflops / sgemm : 0.0, ap_num_threads());
    return AP_OK;
}

const cli_spec cli_lm_train_spec = {
    .name = "lm train",
    .summary = "train a StarCoder2-architecture model on a Java corpus (resumable)",
    .usage = "apmae lm train --corpus PATH --tokenizer F --tokens T --out DIR [--config small|tiny|FILE] [--resume] ...",
    .description =
        "Train a model of the StarCoder2 architecture from scratch: documents packed into sequences of N+1\n"
        "tokens separated by <|endoftext|>, half of them as fill-in-the-middle, AdamW (betas 0.9/0.95) with\n"
        "linear warm-up and cosine decay to 10%, gradient clipping, a held-out loss, progress with tokens/s and\n"
        "ETA, and checkpoints after which --resume continues bit for bit. DIR loads with apmae lm forward.\n"
        "Prints a JSON summary on stdout.",
    .docs = "docs/training.md",
    .flags = k_train_flags,
    .run = run_train,
};

const cli_spec cli_lm_eval_spec = {
    .name = "lm eval",
    .summary = "FIM first-token accuracy on scenarios, held-out loss on a corpus",
    .usage = "apmae lm eval --model DIR [--scenarios F] [--corpus PATH [--include G] [--exclude G]] [flags]",
    .description =
        "Evaluate a checkpoint and print JSON: FIM first-token accuracy per task and overall (argmax of the\n"
        "last position's logits == label_id; scenarios without a label are skipped) and, with --corpus, the\n"
        "mean loss over the corpus's sequences built as in training.",
    .docs = "docs/training.md",
    .flags = k_eval_flags,
    .run = run_eval,
};

const cli_spec cli_lm_train_bench_spec = {
    .name = "lm train-bench",
    .summary = "time training steps (tokens/s, GFLOP/s vs the sgemm rate)",
    .description =
        "Time training steps (forward, backward, clipping, AdamW) on random tokens and print one JSON line:\n"
        "tokens_per_s, gflops, and the sgemm rate on the MLP's product shape measured in the same run.",
    .docs = "docs/performance.md",
    .flags = k_bench_flags,
    .run = run_bench,
};
