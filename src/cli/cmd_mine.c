/* apmae mine: FIM scenarios from a Java corpus (docs/mining.md). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "apmae/mine.h"
#include "apmae/text.h"

static const cli_flag k_flags[] = {
    {"--corpus", CLI_PATH, "PATH", "a directory of .java files, a .zip/.tar[.gz|.xz|.zst] archive, or JSONL with `content`",
     .required = 1},
    {"--tokenizer", CLI_PATH, "PATH", "tokenizer.json (or its directory) of the StarCoder2-style model", .required = 1},
    {"--out", CLI_PATH, "FILE", "scenarios JSONL; the stats go beside it (X.jsonl -> X.stats.json)", .required = 1},
    {"--tasks", CLI_STRING, "LIST", "all, or a comma list of task names", .def = "all"},
    {"--per-task", CLI_INT, "K", "scenarios per task", .def = "200", .range = "1.."},
    {"--max-length", CLI_INT, "N", "tokens of model input per scenario", .def = "256", .range = "16.."},
    {"--seed", CLI_INT, "S", "seed of every random choice", .def = "0", .range = "0.."},
    {"--include", CLI_STRING, "GLOBS", "comma list of path globs to read, e.g. 'java.xml/**'",
     .def_note = "all"},
    {"--exclude", CLI_STRING, "GLOBS", "comma list of path globs to leave out"},
    {"--compat", CLI_CHOICE, NULL, "regex tasks: keywords as whole words, or the published regexes",
     .choices = "default|reference", .def = "default"},
    {"--max-file-bytes", CLI_INT, "B", "skip files larger than this", .def = "1048576", .range = "1.."},
    {0},
};

static ap_status parse_options(const cli_args *a, ap_mine_options *opt, ap_error *err) {
    memset(opt, 0, sizeof *opt);
    ap_status st = ap_task_parse_list(cli_str(a, "--tasks"), opt->tasks, err);
    if (st) return st;
    opt->compat = cli_choice(a, "--compat") == 1 ? AP_COMPAT_REFERENCE : AP_COMPAT_DEFAULT;
    opt->per_task = cli_int(a, "--per-task");
    opt->max_length = (size_t)cli_int(a, "--max-length");
    opt->seed = (uint64_t)cli_int(a, "--seed");
    opt->corpus.include = cli_str(a, "--include");
    opt->corpus.exclude = cli_str(a, "--exclude");
    opt->corpus.max_file_bytes = (size_t)cli_int(a, "--max-file-bytes");
    opt->progress = ap_log_get_level() >= AP_LOG_INFO;
    return AP_OK;
}

/* X.jsonl -> X.stats.json; any other name gets ".stats.json" appended. */
static char *stats_path(const char *out, ap_error *err) {
    size_t n = strlen(out);
    if (n > 6 && ap_path_has_suffix(out, ".jsonl")) n -= 6;
    char *p = ap_malloc(n + 12, err);
    if (p) {
        memcpy(p, out, n);
        memcpy(p + n, ".stats.json", 12);
    }
    return p;
}

static void print_summary(const ap_mine_stats *st, const ap_mine_options *opt) {
    const ap_corpus_stats *c = &st->corpus;
    fprintf(stderr, "corpus: %lld entries, %lld files read (%.1f MB), %lld not .java, %lld filtered out; skipped:",
            (long long)c->entries, (long long)c->files, (double)c->bytes / 1e6, (long long)c->not_java,
            (long long)c->filtered);
    for (int r = 0; r < AP_SKIP_COUNT; r++)
        fprintf(stderr, " %s %lld", ap_skip_reason_name((ap_skip_reason)r), (long long)c->skipped[r]);
    fprintf(stderr, "\n%-24s %9s %9s %10s %7s %9s %8s %9s\n", "task", "examined", "no-match", "matches", "draws",
            "too-short", "special", "scenarios");
    for (int t = 0; t < AP_TASK_COUNT; t++) {
        if (!opt->tasks[t]) continue;
        const ap_task_stats *k = &st->task[t];
        fprintf(stderr, "%-24s %9lld %9lld %10lld %7lld %9lld %8lld %9lld%s\n", ap_task_name((ap_task)t),
                (long long)k->files_examined, (long long)k->files_without_match, (long long)k->matches,
                (long long)k->draws, (long long)k->too_short, (long long)k->special_token, (long long)k->scenarios,
                k->scenarios < opt->per_task ? "  (short of quota)" : "");
    }
}

static ap_status run(const cli_args *a, ap_error *err) {
    ap_mine_options opt;
    ap_status st = parse_options(a, &opt, err);
    if (st) return st;
    const char *corpus = cli_str(a, "--corpus"), *tok_path = cli_str(a, "--tokenizer"), *out = cli_str(a, "--out");
    if (!ap_path_exists(corpus)) return ap_fail(err, AP_ERR_IO, "--corpus: %s does not exist", corpus);
    /* Fail before mining, not after it, when the output cannot be written. */
    const char *slash = strrchr(out, '/');
    if (slash) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - out), out);
        if (dir[0] && !ap_path_is_dir(dir))
            return ap_fail(err, AP_ERR_IO, "--out: cannot create %s: directory %s does not exist", out, dir);
    }
    ap_tokenizer *tok = NULL;
    ap_mine_vocab vocab = {0};
    ap_scenario_set set = {0};
    ap_mine_stats stats;
    ap_buf jsonl = {0}, js = {0};
    char *spath = NULL;
    st = ap_tokenizer_load(tok_path, &tok, err);
    if (!st) st = ap_mine_vocab_init(&vocab, tok, tok_path, err);
    if (!st) st = ap_mine(corpus, &vocab, &opt, &set, &stats, err);
    if (!st) st = ap_scenarios_to_jsonl(&set, &jsonl, err);
    if (!st) st = ap_mine_stats_to_json(&stats, &opt, corpus, tok_path, &js, err);
    if (!st) st = (spath = stats_path(out, err)) ? AP_OK : AP_ERR_NOMEM;
    if (!st) st = ap_write_file_atomic(out, jsonl.data ? jsonl.data : "", jsonl.len, err);
    if (!st) st = ap_write_file_atomic(spath, js.data, js.len, err);
    if (!st && ap_log_get_level() >= AP_LOG_INFO) {
        print_summary(&stats, &opt);
        double s = stats.seconds > 0 ? stats.seconds : 1e-9;
        fprintf(stderr, "mined %zu scenarios from %lld files in %.2f s (%.0f files/s, %.1f scenarios/s) -> %s, %s\n",
                set.n, (long long)stats.corpus.files, stats.seconds, (double)stats.corpus.files / s,
                (double)set.n / s, out, spath);
    }
    free(spath);
    ap_buf_free(&jsonl);
    ap_buf_free(&js);
    ap_scenario_set_free(&set);
    ap_mine_vocab_free(&vocab);
    ap_tokenizer_free(tok);
    return st;
}

static const cli_spec k_spec = {
    .name = "mine",
    .summary = "mine fill-in-the-middle scenarios from a Java corpus",
    .description =
        "Mine fill-in-the-middle scenarios from Java code: for each task, K files drawn in a seeded order, one target\n"
        "per file drawn among its matches, and the model input <fim_prefix> prefix <fim_suffix> suffix <fim_middle>\n"
        "of exactly N tokens. Tasks: identifiers string_literals boolean_literals numeric_literals function_call\n"
        "function_name closing_bracket eol keywords mathematical_operators boolean_operators assignment_operators stop\n"
        "random noise. The same arguments give byte-identical output.",
    .docs = "docs/mining.md",
    .flags = k_flags,
    .run = run,
};

int cmd_mine(int argc, char **argv) { return cli_run(&k_spec, argc, argv); }
