/* Tests of the FIM model input and the miner (src/mine/fim.c, miner.c,
 * output.c) with the hand-made StarCoder2-style tokenizer of
 * fixtures/mine/tokenizer.json (5 special tokens, 256 bytes, a few merges).
 * Set APMAE_SC2_TOKENIZER to a full-size tokenizer.json to also check the
 * windowed tokenization with it. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "apmae/mine.h"

#define TOKENIZER "fixtures/mine/tokenizer.json"
#define JDK_SRC "/usr/lib/jvm/openjdk-17/lib/src.zip"

static ap_tokenizer *g_tok;
static ap_mine_vocab g_vocab;

static int setup(void **state) {
    (void)state;
    if (ap_tokenizer_load(TOKENIZER, &g_tok, tu_err()) != AP_OK) return -1;
    return ap_mine_vocab_init(&g_vocab, g_tok, TOKENIZER, tu_err()) == AP_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    ap_mine_vocab_free(&g_vocab);
    ap_tokenizer_free(g_tok);
    return 0;
}

static char *read_fixture(const char *name, size_t *len) {
    char path[256];
    snprintf(path, sizeof path, "fixtures/mine/%s", name);
    char *data;
    TU_OK(ap_read_file(path, &data, len, tu_err()));
    return data;
}

static void encode(const ap_tokenizer *tok, const char *s, size_t len, int32_t **ids, size_t *n) {
    TU_OK(ap_tokenizer_encode(tok, s, len, ids, n, tu_err()));
}

static void test_vocab(void **state) {
    (void)state;
    /* The FIM ids come from the tokenizer by name. */
    assert_int_equal(g_vocab.fim_prefix, 1);
    assert_int_equal(g_vocab.fim_middle, 2);
    assert_int_equal(g_vocab.fim_suffix, 3);
    assert_int_equal(g_vocab.nplain, ap_tokenizer_vocab_size(g_tok) - 5);
    for (int32_t id = 0; id < 5; id++) assert_int_equal(g_vocab.is_added[id], 1);
    assert_int_equal(g_vocab.byte_len[ap_tokenizer_token_id(g_tok, "<fim_prefix>")], 12);
    assert_int_equal(g_vocab.byte_len[ap_tokenizer_token_id(g_tok, "public")], 6);
    assert_int_equal(g_vocab.byte_len[ap_tokenizer_token_id(g_tok, "\xc4\xa0\xc4\xa0")], 2); /* "ĠĠ": two spaces */
    ap_mine_vocab v;
    ap_error err = {0};
    assert_int_equal(ap_mine_vocab_init(&v, g_tok, "/nonexistent/tokenizer.json", &err), AP_ERR_IO);
}

/* Everything a model input must satisfy, checked against tokenizing the
 * whole prefix and suffix: returns the prefix and suffix token counts. */
static void check_input(const char *text, size_t len, size_t start, size_t end, size_t n, const ap_fim_input *in) {
    const int32_t *ids = in->ids;
    size_t p = in->prefix_tokens, s = in->suffix_tokens;
    assert_int_equal(p + s, n - 3);
    assert_int_equal(ids[0], g_vocab.fim_prefix);
    assert_int_equal(ids[1 + p], g_vocab.fim_suffix);
    assert_int_equal(ids[n - 1], g_vocab.fim_middle);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || i == 1 + p || i == n - 1) continue;
        assert_false(ids[i] == g_vocab.fim_prefix || ids[i] == g_vocab.fim_middle || ids[i] == g_vocab.fim_suffix);
    }
    int32_t *full_p, *full_s, *lab;
    size_t np, ns, nl;
    encode(g_tok, text, start, &full_p, &np);
    encode(g_tok, text + end, len - end, &full_s, &ns);
    encode(g_tok, text + start, end - start, &lab, &nl);
    /* The kept tokens are the whole-text tokens nearest the target. */
    assert_true(np >= p && ns >= s);
    assert_memory_equal(ids + 1, full_p + (np - p), p * sizeof *ids);
    assert_memory_equal(ids + 2 + p, full_s, s * sizeof *ids);
    /* Slack: a side below its share keeps all it has, the other fills up. */
    size_t hs = (n - 3) / 2, hp = (n - 3) - hs;
    if (np >= hp && ns >= hs) {
        assert_int_equal(p, hp);
        assert_int_equal(s, hs);
    } else if (np < hp) {
        assert_int_equal(p, np);
    } else {
        assert_int_equal(s, ns);
    }
    /* They decode to the source bytes right before and after the target. */
    char *dp, *ds;
    size_t ldp, lds;
    TU_OK(ap_tokenizer_decode(g_tok, ids + 1, p, &dp, &ldp, tu_err()));
    TU_OK(ap_tokenizer_decode(g_tok, ids + 2 + p, s, &ds, &lds, tu_err()));
    assert_true(ldp <= start && lds <= len - end);
    assert_memory_equal(dp, text + start - ldp, ldp);
    assert_memory_equal(ds, text + end, lds);
    /* The label: the target's first token on its own. */
    assert_int_equal(in->label_id, lab[0]);
    free(dp);
    free(ds);
    free(full_p);
    free(full_s);
    free(lab);
}

static void test_fim_inputs(void **state) {
    (void)state;
    const char *files[] = {"Generics.java", "Literals.java", "Unicode.java"};
    size_t sizes[] = {16, 33, 64, 120};
    int ok = 0, short_ = 0, prefix_short = 0, suffix_short = 0;
    for (size_t f = 0; f < 3; f++) {
        size_t len;
        char *text = read_fixture(files[f], &len);
        ap_spans out[AP_TASK_COUNT] = {0};
        ap_finder *fd;
        TU_OK(ap_finder_new(AP_COMPAT_DEFAULT, &fd, tu_err()));
        int want[AP_TASK_COUNT] = {[AP_TASK_IDENTIFIERS] = 1, [AP_TASK_STRING_LITERALS] = 1, [AP_TASK_STOP] = 1};
        TU_OK(ap_finder_find(fd, text, len, want, out, tu_err()));
        for (size_t k = 0; k < 4; k++) {
            size_t n = sizes[k];
            int32_t *ids = malloc(n * sizeof *ids);
            for (int t = 0; t < AP_TASK_COUNT; t++) {
                for (size_t i = 0; i < out[t].n; i++) {
                    ap_fim_input in = {.ids = ids};
                    ap_span sp = out[t].v[i];
                    TU_OK(ap_fim_build(&g_vocab, text, len, sp.start, sp.end, n, &in, tu_err()));
                    if (in.result == AP_FIM_TOO_SHORT) {
                        short_++;
                        continue;
                    }
                    assert_int_equal(in.result, AP_FIM_OK);
                    check_input(text, len, sp.start, sp.end, n, &in);
                    ok++;
                    size_t hs = (n - 3) / 2;
                    prefix_short += in.prefix_tokens < n - 3 - hs;
                    suffix_short += in.suffix_tokens < hs;
                }
            }
            free(ids);
        }
        for (int t = 0; t < AP_TASK_COUNT; t++) ap_spans_free(&out[t]);
        ap_finder_free(fd);
        free(text);
    }
    /* All cases occurred: plain, short prefix, short suffix, too short. */
    assert_true(ok > 100);
    assert_true(short_ > 0);
    assert_true(prefix_short > 0);
    assert_true(suffix_short > 0);
}

static void test_fim_too_short(void **state) {
    (void)state;
    const char *text = "class A { int x = 1; }";
    size_t len = strlen(text), start = 14, end = 15; /* "x" */
    int32_t *pre, *suf;
    size_t np, ns;
    encode(g_tok, text, start, &pre, &np);
    encode(g_tok, text + end, len - end, &suf, &ns);
    free(pre);
    free(suf);
    int32_t ids[64];
    ap_fim_input in = {.ids = ids};
    /* Exactly enough context for N: fine; one token more: too short. */
    TU_OK(ap_fim_build(&g_vocab, text, len, start, end, np + ns + 3, &in, tu_err()));
    assert_int_equal(in.result, AP_FIM_OK);
    assert_int_equal(in.prefix_tokens, np);
    assert_int_equal(in.suffix_tokens, ns);
    TU_OK(ap_fim_build(&g_vocab, text, len, start, end, np + ns + 4, &in, tu_err()));
    assert_int_equal(in.result, AP_FIM_TOO_SHORT);
    ap_error err = {0};
    assert_int_equal(ap_fim_build(&g_vocab, text, len, start, end, 15, &in, &err), AP_ERR_ARG);
    assert_int_equal(ap_fim_build(&g_vocab, text, len, 5, 5, 16, &in, &err), AP_ERR_RANGE);
}

/* Added tokens in the source would put FIM tokens in the wrong places. */
static void test_fim_special_token(void **state) {
    (void)state;
    const char *text =
        "class A { String s = \"<fim_middle>\"; int abcdefghijklmnop = 1; int x = 2; } // padding padding padding";
    size_t len = strlen(text);
    const char *x = strstr(text, "x = 2");
    int32_t ids[16];
    ap_fim_input in = {.ids = ids};
    TU_OK(ap_fim_build(&g_vocab, text, len, (size_t)(x - text), (size_t)(x - text) + 1, 16, &in, tu_err()));
    assert_int_equal(in.result, AP_FIM_OK); /* 7 prefix tokens do not reach the string */
    int32_t big[60];
    in.ids = big;
    TU_OK(ap_fim_build(&g_vocab, text, len, (size_t)(x - text), (size_t)(x - text) + 1, 60, &in, tu_err()));
    assert_int_equal(in.result, AP_FIM_SPECIAL_TOKEN);
}

/* The windowed prefix tail and suffix head equal the ends of the whole
 * tokenization at many positions of real files (JDK sources when installed,
 * else the fixtures), with small needs so that windows are cut often. */
static void check_window(const ap_tokenizer *tok, const char *text, size_t len, size_t pos) {
    static const size_t needs[] = {1, 7, 40, 200};
    int32_t *full_p, *full_s;
    size_t np, ns;
    encode(tok, text, pos, &full_p, &np);
    encode(tok, text + pos, len - pos, &full_s, &ns);
    for (size_t k = 0; k < 4; k++) {
        int32_t *ids;
        size_t n;
        int whole;
        TU_OK(ap_fim_prefix_tail(tok, text, pos, needs[k], &ids, &n, &whole, tu_err()));
        assert_true(n >= needs[k] || (whole && n == np));
        assert_true(n <= np);
        if (memcmp(ids, full_p + (np - n), n * sizeof *ids) != 0) fail_msg("prefix tail differs at byte %zu", pos);
        free(ids);
        TU_OK(ap_fim_suffix_head(tok, text + pos, len - pos, needs[k], &ids, &n, &whole, tu_err()));
        assert_true(n >= needs[k] || (whole && n == ns));
        assert_true(n <= ns);
        if (memcmp(ids, full_s, n * sizeof *ids) != 0) fail_msg("suffix head differs at byte %zu", pos);
        free(ids);
    }
    free(full_p);
    free(full_s);
}

static int64_t check_windows_on_corpus(const ap_tokenizer *tok, const char *corpus, const char *include,
                                       int max_files) {
    ap_corpus_options opt = {.include = include, .max_file_bytes = 40000};
    ap_corpus *c;
    TU_OK(ap_corpus_open(corpus, &opt, &c, tu_err()));
    int64_t checked = 0;
    for (int k = 0; k < max_files; k++) {
        ap_corpus_file f;
        int has;
        TU_OK(ap_corpus_next(c, &f, &has, tu_err()));
        if (!has) break;
        /* ~25 positions per file at character boundaries, plus the ends. */
        size_t step = f.len / 25 + 1;
        for (size_t pos = 0; pos <= f.len; pos += pos + step <= f.len || pos == f.len ? step : f.len - pos) {
            size_t p = pos;
            while (p < f.len && ((unsigned char)f.data[p] & 0xC0) == 0x80) p++;
            check_window(tok, f.data, f.len, p);
            checked++;
            if (pos == f.len) break;
        }
    }
    ap_corpus_close(c);
    return checked;
}

static void test_window_exact(void **state) {
    (void)state;
    int64_t n = check_windows_on_corpus(g_tok, "fixtures/mine", NULL, 10);
    assert_true(n > 50);
    if (ap_path_exists(JDK_SRC)) {
        n = check_windows_on_corpus(g_tok, JDK_SRC, "java.base/java/util/*.java", 12);
        assert_true(n > 250);
    } else {
        print_message("note: %s not installed; windowing checked on the fixtures only\n", JDK_SRC);
    }
    const char *big = getenv("APMAE_SC2_TOKENIZER");
    if (big && *big) {
        ap_tokenizer *tok;
        TU_OK(ap_tokenizer_load(big, &tok, tu_err()));
        n = check_windows_on_corpus(tok, JDK_SRC, "java.base/java/util/*.java,java.base/java/lang/*.java", 60);
        print_message("windowing checked with %s at %lld positions\n", big, (long long)n);
        ap_tokenizer_free(tok);
    }
}

/* ---- the miner ---- */

/* A corpus directory: the fixtures and 30 generated classes. */
static char *make_corpus(void) {
    char *dir = tu_tmp_path("corpus");
    assert_int_equal(tu_run(NULL, "mkdir -p '%s/gen' && cp fixtures/mine/*.java '%s/'", dir, dir), 0);
    for (int i = 0; i < 30; i++) {
        char path[600], src[1024];
        snprintf(path, sizeof path, "%s/gen/C%02d.java", dir, i);
        int n = snprintf(src, sizeof src,
                         "package gen;\n\nclass C%02d {\n    int f%d(int a, boolean b) {\n"
                         "        if (b && a != %d) {\n            a += %d;\n            b = false;\n        }\n"
                         "        System.out.println(a);\n        return helper(a * 2, \"s%d\") + 1;\n    }\n}\n",
                         i, i, i, i * 7, i);
        tu_write_file(path, src, (size_t)n);
    }
    return dir;
}

static void mine(const char *dir, const char *tasks, int64_t k, size_t n, uint64_t seed, ap_scenario_set *set,
                 ap_mine_stats *st) {
    ap_mine_options opt = {.per_task = k, .max_length = n, .seed = seed};
    TU_OK(ap_task_parse_list(tasks, opt.tasks, tu_err()));
    TU_OK(ap_mine(dir, &g_vocab, &opt, set, st, tu_err()));
}

static char *to_jsonl(const ap_scenario_set *set) {
    ap_buf b = {0};
    TU_OK(ap_scenarios_to_jsonl(set, &b, tu_err()));
    return b.data ? b.data : calloc(1, 1);
}

static void test_mine_deterministic(void **state) {
    (void)state;
    char *dir = make_corpus();
    ap_scenario_set a, b;
    ap_mine_stats sa, sb;
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    mine(dir, "all", 5, 32, 7, &a, &sa);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    mine(dir, "all", 5, 32, 7, &b, &sb);
    char *ja = to_jsonl(&a), *jb = to_jsonl(&b);
    assert_string_equal(ja, jb);
    assert_memory_equal(&sa.task, &sb.task, sizeof sa.task);
    /* Every task fills its quota of 5 from 33 files. */
    for (int t = 0; t < AP_TASK_COUNT; t++) assert_int_equal(sa.task[t].scenarios, 5);
    assert_int_equal(a.n, 5 * AP_TASK_COUNT);
    assert_int_equal(sa.corpus.files, 33);
    for (int t = 0; t < AP_TASK_NOISE; t++) {
        const ap_task_stats *k = &sa.task[t];
        assert_int_equal(k->draws, k->files_examined - k->files_without_match);
        assert_true(k->draws - k->too_short - k->special_token >= k->scenarios);
    }
    /* Another seed draws something else. */
    ap_scenario_set c;
    ap_mine_stats sc;
    mine(dir, "all", 5, 32, 8, &c, &sc);
    char *jc = to_jsonl(&c);
    assert_string_not_equal(ja, jc);
    free(ja);
    free(jb);
    free(jc);
    ap_scenario_set_free(&a);
    ap_scenario_set_free(&b);
    ap_scenario_set_free(&c);
    free(dir);
}

/* The seeded visiting order: K=1 takes the first file of the K=4 draw, and
 * the draws of a file do not depend on K. */
static void test_mine_order(void **state) {
    (void)state;
    char *dir = make_corpus();
    ap_scenario_set one, four;
    ap_mine_stats s1, s4;
    mine(dir, "identifiers,eol,random", 1, 24, 3, &one, &s1);
    mine(dir, "identifiers,eol,random", 4, 24, 3, &four, &s4);
    assert_int_equal(one.n, 3);
    assert_int_equal(four.n, 12);
    for (size_t t = 0; t < 3; t++) {
        const ap_scenario *x = &one.v[t], *y = &four.v[4 * t];
        assert_int_equal(x->task, y->task);
        assert_string_equal(x->source, y->source);
        assert_int_equal(x->start, y->start);
        assert_int_equal(x->end, y->end);
        assert_memory_equal(x->input_ids, y->input_ids, 24 * sizeof *x->input_ids);
        for (size_t i = 1; i < 4; i++) assert_true(four.v[4 * t + i - 1].key <= four.v[4 * t + i].key);
    }
    /* Different files within a task. */
    for (size_t i = 0; i < 4; i++)
        for (size_t j = i + 1; j < 4; j++) assert_string_not_equal(four.v[i].source, four.v[j].source);
    ap_scenario_set_free(&one);
    ap_scenario_set_free(&four);
    free(dir);
}

static void test_mine_random_and_noise(void **state) {
    (void)state;
    char *dir = make_corpus();
    ap_scenario_set set;
    ap_mine_stats st;
    mine(dir, "random,noise", 6, 20, 11, &set, &st);
    assert_int_equal(set.n, 12);
    for (size_t i = 0; i < set.n; i++) {
        const ap_scenario *s = &set.v[i];
        if (s->task == AP_TASK_NOISE) {
            assert_null(s->source);
            assert_int_equal(s->label_id, -1);
            assert_int_equal(s->input_ids[0], g_vocab.fim_prefix);
            assert_int_equal(s->input_ids[19], g_vocab.fim_middle);
            assert_int_equal(s->input_ids[1 + s->prefix_tokens], g_vocab.fim_suffix);
            assert_int_equal(s->prefix_tokens + s->suffix_tokens, 17);
            int suffixes = 0;
            for (size_t j = 1; j < 19; j++) {
                if (s->input_ids[j] == g_vocab.fim_suffix) suffixes++;
                else assert_int_equal(g_vocab.is_added[s->input_ids[j]], 0);
            }
            assert_int_equal(suffixes, 1);
            continue;
        }
        assert_int_equal(s->task, AP_TASK_RANDOM);
        /* The fixtures and generated files: the span is 3..10 whole tokens
         * (ASCII files have no characters to widen to), not in the last 15. */
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, s->source);
        char *text;
        size_t len;
        TU_OK(ap_read_file(path, &text, &len, tu_err()));
        int32_t *ids;
        size_t n;
        encode(g_tok, text, len, &ids, &n);
        size_t off = 0, first = SIZE_MAX, last = SIZE_MAX;
        for (size_t j = 0; j <= n; j++) {
            if (off == s->start) first = j;
            if (off == s->end) last = j;
            if (j < n) off += g_vocab.byte_len[ids[j]];
        }
        if (strstr(s->source, "Unicode") == NULL) {
            assert_int_not_equal(first, SIZE_MAX);
            assert_int_not_equal(last, SIZE_MAX);
            assert_true(last - first >= 3 && last - first <= 10);
            assert_true(first < n - 15);
        }
        assert_memory_equal(s->target, text + s->start, s->end - s->start);
        free(ids);
        free(text);
    }
    ap_scenario_set_free(&set);
    free(dir);
}

static void test_mine_jsonl(void **state) {
    (void)state;
    char *dir = make_corpus();
    ap_scenario_set set;
    ap_mine_stats st;
    mine(dir, "string_literals,noise", 2, 16, 5, &set, &st);
    char *jsonl = to_jsonl(&set);
    char *line = jsonl;
    int count = 0;
    while (*line) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        cJSON *j = cJSON_ParseWithLength(line, (size_t)(nl - line));
        assert_non_null(j);
        const char *task = cJSON_GetObjectItem(j, "task")->valuestring;
        char want_id[64];
        snprintf(want_id, sizeof want_id, "%s-%06d", task, count % 2);
        assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, want_id);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "input_ids")), 16);
        assert_int_equal(cJSON_GetObjectItem(j, "seed")->valuedouble, 5);
        if (strcmp(task, "noise") == 0) {
            assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "label_id")));
            assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "source")));
        } else {
            /* The target round-trips through JSON escaping (quotes, backslashes, newlines). */
            const ap_scenario *s = &set.v[count];
            assert_string_equal(cJSON_GetObjectItem(j, "target")->valuestring, s->target);
            assert_string_equal(cJSON_GetObjectItem(j, "source")->valuestring, s->source);
            assert_int_equal(cJSON_GetObjectItem(j, "start")->valuedouble, s->start);
            assert_int_equal(cJSON_GetObjectItem(j, "label_id")->valuedouble, s->label_id);
        }
        cJSON_Delete(j);
        count++;
        line = nl + 1;
    }
    assert_int_equal(count, 4);
    free(jsonl);

    ap_buf js = {0};
    ap_mine_options opt = {.per_task = 2, .max_length = 16, .seed = 5};
    TU_OK(ap_task_parse_list("string_literals,noise", opt.tasks, tu_err()));
    TU_OK(ap_mine_stats_to_json(&st, &opt, dir, TOKENIZER, &js, tu_err()));
    cJSON *j = cJSON_Parse(js.data);
    assert_non_null(j);
    cJSON *tasks = cJSON_GetObjectItem(j, "tasks");
    assert_int_equal(cJSON_GetArraySize(tasks), 2);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(tasks, "noise"), "quota_met")));
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "files"), "read")->valuedouble, 33);
    cJSON_Delete(j);
    ap_buf_free(&js);
    ap_scenario_set_free(&set);
    free(dir);
}

/* A target with a NUL byte, quotes and a newline is written whole, escaped. */
static void test_jsonl_escapes(void **state) {
    (void)state;
    int32_t ids[16] = {1, 5, 3, 6, 2};
    char target[] = "\"a\0b\n\\";
    ap_scenario sc = {.task = AP_TASK_STRING_LITERALS, .source = "x/\"q\".java", .start = 10, .end = 16,
                      .target = target, .label_id = 7, .input_ids = ids, .prefix_tokens = 1, .suffix_tokens = 1};
    ap_scenario_set set = {.v = &sc, .n = 1, .max_length = 5, .seed = 3};
    ap_buf b = {0};
    TU_OK(ap_scenarios_to_jsonl(&set, &b, tu_err()));
    assert_string_equal(b.data, "{\"id\":\"string_literals-000000\",\"task\":\"string_literals\",\"source\":"
                                "\"x/\\\"q\\\".java\",\"start\":10,\"end\":16,\"target\":\"\\\"a\\u0000b\\n\\\\\","
                                "\"label_id\":7,\"seed\":3,\"prefix_tokens\":1,\"suffix_tokens\":1,"
                                "\"input_ids\":[1,5,3,6,2]}\n");
    ap_buf_free(&b);
}

static void test_mine_errors(void **state) {
    (void)state;
    ap_scenario_set set;
    ap_mine_stats st;
    ap_error err = {0};
    ap_mine_options opt = {.per_task = 1, .max_length = 15};
    opt.tasks[AP_TASK_EOL] = 1;
    assert_int_equal(ap_mine("fixtures/mine", &g_vocab, &opt, &set, &st, &err), AP_ERR_ARG);
    assert_non_null(strstr(err.msg, "16"));
    opt.max_length = 16;
    assert_int_equal(ap_mine("/nonexistent/dir", &g_vocab, &opt, &set, &st, &err), AP_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/dir"));
    /* Too few files: fewer scenarios, not an error. */
    opt.per_task = 50;
    TU_OK(ap_mine("fixtures/mine", &g_vocab, &opt, &set, &st, tu_err()));
    assert_int_equal(st.task[AP_TASK_EOL].scenarios, 2); /* Unicode.java has CRLF: no ";\n" */
    ap_scenario_set_free(&set);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab),
        cmocka_unit_test(test_fim_inputs),
        cmocka_unit_test(test_fim_too_short),
        cmocka_unit_test(test_fim_special_token),
        cmocka_unit_test(test_window_exact),
        cmocka_unit_test(test_mine_deterministic),
        cmocka_unit_test(test_mine_order),
        cmocka_unit_test(test_mine_random_and_noise),
        cmocka_unit_test(test_mine_jsonl),
        cmocka_unit_test(test_jsonl_escapes),
        cmocka_unit_test(test_mine_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
