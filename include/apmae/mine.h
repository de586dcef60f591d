/* apmae/mine.h — mining fill-in-the-middle scenarios from Java code (docs/mining.md).
 *
 * Four layers, each usable on its own:
 *   corpus   — one streaming reader over a directory tree, a .zip/.tar[.gz|.xz|
 *              .zst] archive or a JSONL file (`content` field), with path-glob
 *              selection and skips counted by reason;
 *   finder   — the task definitions: byte spans of every target of a task in a
 *              file (tree-sitter-java tasks, PCRE2 regex tasks);
 *   fim      — the model input: exactly N tokens <fim_prefix> P <fim_suffix> S
 *              <fim_middle> around a target, and its label;
 *   miner    — one pass over a corpus drawing K scenarios per task, written as
 *              JSONL (docs/mining.md describes the sampling and the format).
 */
#ifndef APMAE_MINE_H
#define APMAE_MINE_H

#include "apmae/base.h"
#include "apmae/text.h"

/* ---- tasks ---------------------------------------------------------------- */

/* In docs/mining.md order, which is also the order of the output file. */
typedef enum ap_task {
    AP_TASK_IDENTIFIERS,
    AP_TASK_STRING_LITERALS,
    AP_TASK_BOOLEAN_LITERALS,
    AP_TASK_NUMERIC_LITERALS,
    AP_TASK_FUNCTION_CALL,
    AP_TASK_FUNCTION_NAME,
    AP_TASK_CLOSING_BRACKET,
    AP_TASK_EOL,
    AP_TASK_KEYWORDS,
    AP_TASK_MATHEMATICAL_OPERATORS,
    AP_TASK_BOOLEAN_OPERATORS,
    AP_TASK_ASSIGNMENT_OPERATORS,
    AP_TASK_STOP,
    AP_TASK_RANDOM,
    AP_TASK_NOISE,
    AP_TASK_COUNT
} ap_task;

const char *ap_task_name(ap_task t);
/* Returns 0 and sets *t when name is a task, -1 otherwise. */
int ap_task_from_name(const char *name, ap_task *t);
/* The task found by tree-sitter-java (the first six). */
int ap_task_is_syntax(ap_task t);
/* The task found by a regular expression (closing_bracket .. stop). */
int ap_task_is_regex(ap_task t);
/* "all" or a comma list of task names -> selected[t] = 1. An unknown name is an
 * AP_ERR_ARG error that lists the valid names. */
ap_status ap_task_parse_list(const char *s, int selected[AP_TASK_COUNT], ap_error *err);

/* Regex behaviour (docs/mining.md): AP_COMPAT_DEFAULT matches keywords only as whole
 * words and has no backslash operator; AP_COMPAT_REFERENCE reproduces the
 * published regexes (keywords inside identifiers, `\` as an operator). */
typedef enum ap_compat { AP_COMPAT_DEFAULT, AP_COMPAT_REFERENCE } ap_compat;
/* The PCRE2 pattern of a regex task in a mode (NULL for other tasks). */
const char *ap_task_regex(ap_task t, ap_compat compat);

/* A target: bytes [start, end) of the source file. */
typedef struct ap_span {
    size_t start, end;
} ap_span;

typedef struct ap_spans {
    ap_span *v;
    size_t n, cap;
} ap_spans;
void ap_spans_free(ap_spans *s);

/* The finders of the syntax and regex tasks: a tree-sitter parser and the
 * compiled regexes. Not thread-safe: one finder per thread. */
typedef struct ap_finder ap_finder;
ap_status ap_finder_new(ap_compat compat, ap_finder **out, ap_error *err);
void ap_finder_free(ap_finder *f);
/* All targets of every task with want[t] set (syntax and regex tasks only),
 * each list in order of position; out[t] is reset first for those tasks. The
 * file is parsed once however many syntax tasks are wanted. text must be
 * valid UTF-8. Empty spans (tree-sitter's MISSING nodes) are never targets. */
ap_status ap_finder_find(ap_finder *f, const char *text, size_t len, const int want[AP_TASK_COUNT],
                         ap_spans out[AP_TASK_COUNT], ap_error *err);

/* ---- model input ------------------------------------------------------------ */

/* The tokenizer facts mining needs: FIM token ids (looked up by name), which
 * ids are added/special tokens, and each id's length in bytes. */
typedef struct ap_mine_vocab {
    const ap_tokenizer *tok;
    int32_t fim_prefix, fim_middle, fim_suffix;
    size_t size;           /* ap_tokenizer_vocab_size */
    uint8_t *is_added;     /* [size]: 1 for added/special tokens and unused ids */
    uint32_t *byte_len;    /* [size]: bytes the id decodes to (0 for unused ids) */
    int32_t *plain_ids;    /* ids that are ordinary vocabulary entries, ascending */
    size_t nplain;
} ap_mine_vocab;
/* tokenizer_path as given to ap_tokenizer_load (its added_tokens are read from
 * the same tokenizer.json). Missing FIM tokens are an error naming the file. */
ap_status ap_mine_vocab_init(ap_mine_vocab *v, const ap_tokenizer *tok, const char *tokenizer_path, ap_error *err);
void ap_mine_vocab_free(ap_mine_vocab *v);

/* Why a draw gave no scenario. */
typedef enum ap_fim_result {
    AP_FIM_OK,
    AP_FIM_TOO_SHORT,     /* prefix + suffix hold fewer than N-3 tokens */
    AP_FIM_SPECIAL_TOKEN  /* the source text around the target tokenizes to an added token */
} ap_fim_result;

typedef struct ap_fim_input {
    int32_t *ids;                 /* [n]: caller's buffer of N ids */
    size_t prefix_tokens, suffix_tokens;
    int32_t label_id;             /* first token of the target tokenized alone */
    ap_fim_result result;
} ap_fim_input;

/* Builds the N-token FIM input for target [start, end) of text[0, len): the
 * prefix keeps its last tokens, the suffix its first, (N-3) - (N-3)/2 and
 * (N-3)/2 slots respectively, a short side giving its slack to the other.
 * Only a window of bytes around the target is tokenized; the result equals
 * tokenizing the whole prefix and suffix (docs/mining.md explains why).
 * N >= 16. A draw that cannot give a scenario is AP_OK with in->result set. */
ap_status ap_fim_build(const ap_mine_vocab *v, const char *text, size_t len, size_t start, size_t end, size_t n,
                       ap_fim_input *in, ap_error *err);

/* The tokens of text[0, len) that a prefix ending at len keeps: the last
 * `need` or more tokens (all of them when *whole), computed on a window (the
 * building block of ap_fim_build, exposed for tests). *ids is malloc'ed. */
ap_status ap_fim_prefix_tail(const ap_tokenizer *tok, const char *text, size_t len, size_t need, int32_t **ids,
                             size_t *n, int *whole, ap_error *err);
/* Likewise the first `need` or more tokens of text[0, len) for a suffix. */
ap_status ap_fim_suffix_head(const ap_tokenizer *tok, const char *text, size_t len, size_t need, int32_t **ids,
                             size_t *n, int *whole, ap_error *err);

/* ---- corpus ----------------------------------------------------------------- */

typedef enum ap_skip_reason {
    AP_SKIP_INVALID_UTF8,
    AP_SKIP_EMPTY,      /* no bytes, or only whitespace */
    AP_SKIP_TOO_LARGE,  /* over max_file_bytes */
    AP_SKIP_UNREADABLE, /* an archive entry that cannot be read; a JSONL line that is not JSON or has no `content` */
    AP_SKIP_COUNT
} ap_skip_reason;
const char *ap_skip_reason_name(ap_skip_reason r);

typedef struct ap_corpus_options {
    /* Comma-separated path globs (NULL = none). `*` and `?` stay within one
     * path segment, `**` spans segments (so "java.xml/" + "**" selects all
     * below java.xml/), `[...]`
     * is a character class. A file is read when it matches an include (or
     * there are none) and no exclude. JSONL rows match their `path` field
     * when they have one, else their source id `line:N`. */
    const char *include, *exclude;
    size_t max_file_bytes; /* 0 = 1 MiB */
} ap_corpus_options;

typedef struct ap_corpus_stats {
    int64_t entries;                 /* entries seen (files, archive members, JSONL lines) */
    int64_t not_java;                /* directory/archive entries that are not *.java files */
    int64_t filtered;                /* rejected by --include/--exclude */
    int64_t skipped[AP_SKIP_COUNT];
    int64_t files;                   /* files handed out */
    int64_t bytes;                   /* their total size */
} ap_corpus_stats;

/* One file handed out by the reader; valid until the next ap_corpus_next. */
typedef struct ap_corpus_file {
    const char *source; /* path inside the corpus; `line:N` for JSONL rows */
    const char *data;   /* len bytes of valid UTF-8, NUL-terminated */
    size_t len;
    int64_t ordinal;    /* 0, 1, ... in reading order */
} ap_corpus_file;

typedef struct ap_corpus ap_corpus;
/* path: a directory (all *.java files below it, visited in sorted path order),
 * a file ending in .jsonl / .jsonl.gz / .jsonl.xz / .jsonl.zst / .json, or
 * any other file as an archive (zip, tar, optionally compressed). A missing
 * path or an unreadable archive is an error naming it. */
ap_status ap_corpus_open(const char *path, const ap_corpus_options *opt, ap_corpus **out, ap_error *err);
/* The next file: *has = 0 at the end. Skipped entries are counted (and a bad
 * JSONL line warned about with its line number), never returned. Errors are
 * only for a corpus that cannot be read on (a corrupt archive stream). */
ap_status ap_corpus_next(ap_corpus *c, ap_corpus_file *file, int *has, ap_error *err);
const ap_corpus_stats *ap_corpus_get_stats(const ap_corpus *c);
/* Progress in bytes of the corpus file(s) consumed so far out of total. */
void ap_corpus_progress(const ap_corpus *c, int64_t *done, int64_t *total);
void ap_corpus_close(ap_corpus *c);

/* A path glob test (the rules of ap_corpus_options). */
int ap_glob_match(const char *pattern, const char *path);

/* ---- miner ------------------------------------------------------------------ */

typedef struct ap_mine_options {
    int tasks[AP_TASK_COUNT];  /* selected tasks */
    int64_t per_task;          /* K >= 1 */
    size_t max_length;         /* N >= 16 */
    uint64_t seed;
    ap_compat compat;
    ap_corpus_options corpus;
    int progress;              /* draw a progress bar on stderr */
} ap_mine_options;

typedef struct ap_task_stats {
    int64_t files_examined;      /* files whose matches were computed for the task */
    int64_t files_without_match;
    int64_t matches;             /* targets found in the examined files */
    int64_t draws;               /* targets drawn (one per examined file with a match) */
    int64_t too_short;           /* draws skipped: fewer than N-3 context tokens */
    int64_t special_token;       /* draws skipped: added tokens in the context */
    int64_t scenarios;           /* written */
} ap_task_stats;

typedef struct ap_mine_stats {
    ap_corpus_stats corpus;
    ap_task_stats task[AP_TASK_COUNT];
    double seconds;
} ap_mine_stats;

/* One scenario. Noise has source/target NULL and label_id -1. */
typedef struct ap_scenario {
    ap_task task;
    char *source;
    size_t start, end;
    char *target;
    int32_t label_id;
    int32_t *input_ids; /* [max_length] */
    size_t prefix_tokens, suffix_tokens;
    uint64_t key;       /* the draw order within the task (see docs/mining.md) */
    int64_t ordinal;    /* the file's position in the corpus */
} ap_scenario;

typedef struct ap_scenario_set {
    ap_scenario *v; /* grouped by task in ap_task order, each group in draw order */
    size_t n;
    size_t max_length;
    uint64_t seed;
} ap_scenario_set;
void ap_scenario_set_free(ap_scenario_set *s);

/* Mine opt->per_task scenarios for each selected task from the corpus at
 * corpus_path in one pass (the corpus is not opened when only `noise` is
 * selected). Deterministic: the same arguments give the same set, whatever
 * the number of threads. A task with fewer eligible files gets fewer. */
ap_status ap_mine(const char *corpus_path, const ap_mine_vocab *vocab, const ap_mine_options *opt,
                  ap_scenario_set *out, ap_mine_stats *stats, ap_error *err);

/* The JSONL text of a scenario set (one object per line, fields as in
 * docs/mining.md), appended to b. */
ap_status ap_scenarios_to_jsonl(const ap_scenario_set *s, ap_buf *b, ap_error *err);
/* The `.stats.json` document (the arguments, corpus counts and per-task
 * counts; no timings, so it is as deterministic as the scenarios), appended
 * to b. */
ap_status ap_mine_stats_to_json(const ap_mine_stats *st, const ap_mine_options *opt, const char *corpus_path,
                                const char *tokenizer_path, ap_buf *b, ap_error *err);

#endif
