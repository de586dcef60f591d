/* apmae tokenizer train: learn a StarCoder2-style byte-level BPE tokenizer. */
#include "apmae/bpe_train.h"
#include "apmae/mine.h"
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const cli_flag k_train_flags[] = {
    {"--corpus", CLI_PATH, "PATH", "Java corpus: directory, .zip/.tar archive or JSONL with a `content` field", .required = 1},
    {"--vocab-size", CLI_INT, "V", "ids in total: 38 special tokens + 256 bytes + merges (e.g. 8192)", .range = "1..16777216",
     .required = 1},
    {"--out", CLI_PATH, "F", "the tokenizer.json to write", .required = 1},
    {"--include", CLI_STRING, "GLOBS", "only corpus paths matching one of these comma-separated globs"},
    {"--exclude", CLI_STRING, "GLOBS", "skip corpus paths matching one of these globs"},
    {"--min-frequency", CLI_INT, "N", "never merge a pair seen fewer than N times", .def = "2", .range = "1.."},
    {0},
};

/* Files are copied into batches of about this size and pre-tokenized in parallel. */
#define BATCH_BYTES ((size_t)16 << 20)

typedef struct batch {
    ap_buf text;
    size_t *off, *len;
    size_t n, cap;
} batch;

static ap_status batch_add(batch *b, const char *data, size_t len, ap_error *err) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        size_t *o = ap_realloc(b->off, cap * sizeof *o, err);
        if (!o) return AP_ERR_NOMEM;
        b->off = o;
        size_t *l = ap_realloc(b->len, cap * sizeof *l, err);
        if (!l) return AP_ERR_NOMEM;
        b->len = l;
        b->cap = cap;
    }
    b->off[b->n] = b->text.len;
    b->len[b->n] = len;
    b->n++;
    return ap_buf_append(&b->text, data, len, err);
}

static ap_status batch_feed(ap_bpe_trainer *t, batch *b, ap_error *err) {
    if (!b->n) return AP_OK;
    const char **texts = ap_malloc(b->n * sizeof *texts, err);
    if (!texts) return AP_ERR_NOMEM;
    for (size_t i = 0; i < b->n; i++) texts[i] = b->text.data + b->off[i];
    ap_status st = ap_bpe_trainer_feed(t, texts, b->len, b->n, err);
    free(texts);
    b->n = 0;
    b->text.len = 0;
    return st;
}

static ap_status run_train(const cli_args *a, ap_error *err) {
    int64_t vocab = cli_int(a, "--vocab-size"), min_freq = cli_int(a, "--min-frequency");
    ap_corpus_options copt = {.include = cli_str(a, "--include"), .exclude = cli_str(a, "--exclude")};
    const char *path = cli_str(a, "--corpus"), *out = cli_str(a, "--out");
    ap_status st;
    ap_bpe_trainer *t = NULL;
    ap_corpus *c = NULL;
    batch b = {0};
    ap_buf json = {0};
    if ((st = ap_bpe_trainer_new(&t, err)) || (st = ap_corpus_open(path, &copt, &c, err))) goto done;
    int progress = ap_log_get_level() >= AP_LOG_INFO;
    ap_progress bar;
    int64_t done_bytes, total;
    ap_corpus_progress(c, &done_bytes, &total);
    if (progress) ap_progress_begin(&bar, "count words", total);
    double t0 = ap_now();
    for (;;) {
        ap_corpus_file f;
        int has;
        if ((st = ap_corpus_next(c, &f, &has, err))) goto done;
        if (has && (st = batch_add(&b, f.data, f.len, err))) goto done;
        if ((!has || b.text.len >= BATCH_BYTES) && (st = batch_feed(t, &b, err))) goto done;
        if (progress) {
            ap_corpus_progress(c, &done_bytes, &total);
            ap_progress_update(&bar, done_bytes, NULL);
        }
        if (!has) break;
    }
    const ap_corpus_stats *cs = ap_corpus_get_stats(c);
    if (progress) {
        char extra[96];
        snprintf(extra, sizeof extra, "%lld files, %.1f MB", (long long)cs->files, (double)cs->bytes / 1e6);
        ap_progress_end(&bar, extra);
    }
    if (cs->files == 0) {
        st = ap_fail(err, AP_ERR_ARG, "%s: no Java files to train on (after --include/--exclude)", path);
        goto done;
    }
    ap_bpe_train_options o = {.vocab_size = (size_t)vocab, .min_frequency = min_freq, .progress = progress};
    ap_bpe_train_stats stats;
    if ((st = ap_bpe_trainer_train(t, &o, &json, &stats, err))) goto done;
    if ((st = ap_write_file_atomic(out, json.data, json.len, err))) goto done;
    if (stats.vocab_size < (size_t)vocab)
        ap_warn("only %zu ids: no pair is seen %lld times any more (corpus too small for --vocab-size %lld)",
                stats.vocab_size, (long long)min_freq, (long long)vocab);
    printf("{\"out\":\"%s\",\"vocab_size\":%zu,\"merges\":%zu,\"files\":%lld,\"bytes\":%lld,\"words\":%lld,"
           "\"unique_words\":%lld,\"merge_seconds\":%.2f,\"seconds\":%.2f}\n",
           out, stats.vocab_size, stats.merges, (long long)cs->files, (long long)cs->bytes, (long long)stats.words,
           (long long)stats.unique_words, stats.seconds, ap_now() - t0);
done:
    ap_bpe_trainer_free(t);
    ap_corpus_close(c);
    ap_buf_free(&b.text);
    free(b.off);
    free(b.len);
    ap_buf_free(&json);
    return st;
}

static const cli_spec k_train_spec = {
    .name = "tokenizer train",
    .summary = "train a StarCoder2-style byte-level BPE tokenizer on a corpus",
    .description =
        "Train a byte-level BPE tokenizer with StarCoder2's pre-tokenization (individual digits, GPT-2 split)\n"
        "and special tokens (ids 0-37: <|endoftext|>, <fim_prefix>, <fim_middle>, <fim_suffix>, <fim_pad>, ...),\n"
        "then the 256 bytes, then the merges, most frequent pair first (ties: smaller ids). Writes a Hugging\n"
        "Face tokenizer.json; prints a JSON summary on stdout.",
    .docs = "docs/training.md",
    .flags = k_train_flags,
    .run = run_train,
};

int cmd_tokenizer(int argc, char **argv) {
    static const cli_spec *const subs[] = {&k_train_spec};
    return cli_run_group("tokenizer", subs, 1, argc, argv);
}
