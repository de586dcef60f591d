/* Tests of src/mine: task finders (exact spans on hand-written Java), task
 * lists, path globs and the corpus readers (directory, zip, tar.gz, JSONL). */
#include "testutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/mine.h"

/* ---- finders ---- */

typedef struct span_case {
    ap_task task;
    size_t n;
    const size_t (*spans)[2];
    const char *const *texts; /* the same spans as text, so a failure reads well */
} span_case;

static void find_all(const char *text, size_t len, ap_compat compat, ap_spans out[AP_TASK_COUNT]) {
    ap_finder *f;
    TU_OK(ap_finder_new(compat, &f, tu_err()));
    int want[AP_TASK_COUNT] = {0};
    for (int t = 0; t < AP_TASK_COUNT; t++) want[t] = ap_task_is_syntax((ap_task)t) || ap_task_is_regex((ap_task)t);
    TU_OK(ap_finder_find(f, text, len, want, out, tu_err()));
    ap_finder_free(f);
}

static void check_spans(const char *text, const ap_spans *got, ap_task task, size_t n, const size_t (*spans)[2],
                        const char *const *texts) {
    if (got->n != n) {
        for (size_t i = 0; i < got->n; i++)
            print_message("  got {%zu,%zu} '%.*s'\n", got->v[i].start, got->v[i].end,
                          (int)(got->v[i].end - got->v[i].start), text + got->v[i].start);
        fail_msg("task %s: %zu spans, expected %zu", ap_task_name(task), got->n, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (got->v[i].start != spans[i][0] || got->v[i].end != spans[i][1])
            fail_msg("task %s span %zu: got {%zu,%zu}, expected {%zu,%zu}", ap_task_name(task), i, got->v[i].start,
                     got->v[i].end, spans[i][0], spans[i][1]);
        size_t len = spans[i][1] - spans[i][0];
        if (strlen(texts[i]) != len || memcmp(text + spans[i][0], texts[i], len) != 0)
            fail_msg("task %s span %zu: text '%.*s', expected '%s'", ap_task_name(task), i, (int)len,
                     text + spans[i][0], texts[i]);
    }
}

static char *read_fixture(const char *name, size_t *len) {
    char path[256];
    snprintf(path, sizeof path, "fixtures/mine/%s", name);
    char *data;
    TU_OK(ap_read_file(path, &data, len, tu_err()));
    return data;
}

#define SPANS(...) ((const size_t[][2]){__VA_ARGS__})
#define TEXTS(...) ((const char *const[]){__VA_ARGS__})
#define CHECK(task, n, spans, texts) check_spans(text, &out[task], task, n, spans, texts)

static void free_out(ap_spans out[AP_TASK_COUNT]) {
    for (int t = 0; t < AP_TASK_COUNT; t++) ap_spans_free(&out[t]);
}

/* Generics, shifts, lambdas, != against !. */
static void test_generics(void **state) {
    (void)state;
    size_t len;
    char *text = read_fixture("Generics.java", &len);
    ap_spans out[AP_TASK_COUNT] = {0};
    find_all(text, len, AP_COMPAT_DEFAULT, out);
    /* Type names (Box's K, V, List, Map) are type_identifier, not identifier. */
    CHECK(AP_TASK_IDENTIFIERS, 22,
          SPANS({8, 12}, {21, 24}, {53, 57}, {68, 71}, {76, 77}, {83, 84}, {96, 97}, {114, 115}, {139, 141},
                {144, 145}, {149, 150}, {156, 157}, {161, 162}, {167, 168}, {172, 173}, {183, 187}, {188, 195},
                {196, 197}, {201, 202}, {203, 208}, {228, 229}, {233, 234}),
          TEXTS("demo", "Box", "maps", "mix", "a", "b", "a", "b", "ok", "a", "b", "a", "b", "a", "b", "maps",
                "forEach", "m", "m", "clear", "a", "b"));
    CHECK(AP_TASK_NUMERIC_LITERALS, 2, SPANS({103, 104}, {120, 121}), TEXTS("2", "1"));
    CHECK(AP_TASK_FUNCTION_CALL, 2, SPANS({188, 195}, {203, 208}), TEXTS("forEach", "clear"));
    CHECK(AP_TASK_FUNCTION_NAME, 1, SPANS({68, 71}), TEXTS("mix"));
    CHECK(AP_TASK_STRING_LITERALS, 0, SPANS({0, 0}), TEXTS(""));
    CHECK(AP_TASK_CLOSING_BRACKET, 6, SPANS({84, 85}, {162, 163}, {209, 210}, {210, 211}, {240, 241}, {242, 243}),
          TEXTS(")", ")", ")", ")", "}", "}"));
    CHECK(AP_TASK_EOL, 7, SPANS({12, 14}, {57, 59}, {104, 106}, {121, 123}, {173, 175}, {211, 213}, {234, 236}),
          TEXTS(";\n", ";\n", ";\n", ";\n", ";\n", ";\n", ";\n"));
    /* `for` inside forEach only in reference mode (below). */
    CHECK(AP_TASK_KEYWORDS, 2, SPANS({0, 7}, {221, 227}), TEXTS("package", "return"));
    /* The < of Box<, List< and Map<, the > of Box<K, V> and of the lambda's
     * ->, and <=; never the >> closing List<Map<K, V>>, nor anything in >>>=,
     * <<=, >>, != or ==. */
    CHECK(AP_TASK_MATHEMATICAL_OPERATORS, 6, SPANS({24, 25}, {29, 30}, {41, 42}, {45, 46}, {169, 171}, {199, 200}),
          TEXTS("<", ">", "<", "<", "<=", ">"));
    CHECK(AP_TASK_BOOLEAN_OPERATORS, 5, SPANS({146, 148}, {151, 153}, {154, 155}, {158, 160}, {164, 166}),
          TEXTS("!=", "&&", "!", "==", "||"));
    /* >>>= is found as the >>= inside it (the published alternation has no >>>=). */
    CHECK(AP_TASK_ASSIGNMENT_OPERATORS, 2, SPANS({99, 102}, {116, 119}), TEXTS(">>=", "<<="));
    CHECK(AP_TASK_STOP, 2, SPANS({187, 188}, {202, 203}), TEXTS(".", "."));
    free_out(out);

    find_all(text, len, AP_COMPAT_REFERENCE, out);
    CHECK(AP_TASK_KEYWORDS, 3, SPANS({0, 7}, {188, 191}, {221, 227}), TEXTS("package", "for", "return"));
    CHECK(AP_TASK_MATHEMATICAL_OPERATORS, 6, SPANS({24, 25}, {29, 30}, {41, 42}, {45, 46}, {169, 171}, {199, 200}),
          TEXTS("<", ">", "<", "<", "<=", ">"));
    free_out(out);
    free(text);
}

/* Strings with escapes, char literals, a text block, number forms. */
static void test_literals(void **state) {
    (void)state;
    size_t len;
    char *text = read_fixture("Literals.java", &len);
    ap_spans out[AP_TASK_COUNT] = {0};
    find_all(text, len, AP_COMPAT_DEFAULT, out);
    CHECK(AP_TASK_STRING_LITERALS, 4, SPANS({27, 35}, {50, 54}, {69, 72}, {89, 125}),
          TEXTS("\"a\\\"b\\\\\"", "'\\''", "'x'", "\"\"\"\n        text \"block\"\n        \"\"\""));
    /* Octal 017 and hex float 0x1p3 are not among the four literal kinds mined. */
    CHECK(AP_TASK_NUMERIC_LITERALS, 5, SPANS({140, 144}, {147, 153}, {156, 166}, {175, 181}, {184, 187}),
          TEXTS("0xFF", "0b1010", "1_000_000L", "3.5e-2", ".5f"));
    CHECK(AP_TASK_BOOLEAN_LITERALS, 2, SPANS({213, 217}, {221, 226}), TEXTS("true", "false"));
    CHECK(AP_TASK_IDENTIFIERS, 8,
          SPANS({6, 9}, {23, 24}, {46, 47}, {65, 66}, {85, 86}, {136, 137}, {209, 210}, {239, 240}),
          TEXTS("Lit", "s", "c", "d", "t", "n", "f", "o"));
    CHECK(AP_TASK_MATHEMATICAL_OPERATORS, 7,
          SPANS({145, 146}, {154, 155}, {167, 168}, {173, 174}, {179, 180}, {182, 183}, {188, 189}),
          TEXTS("+", "+", "+", "+", "-", "+", "+"));
    CHECK(AP_TASK_STOP, 2, SPANS({176, 177}, {184, 185}), TEXTS(".", "."));
    CHECK(AP_TASK_KEYWORDS, 0, SPANS({0, 0}), TEXTS(""));
    free_out(out);
    /* Reference mode: every backslash of the escapes is an operator too. */
    find_all(text, len, AP_COMPAT_REFERENCE, out);
    CHECK(AP_TASK_MATHEMATICAL_OPERATORS, 11,
          SPANS({29, 30}, {32, 33}, {33, 34}, {51, 52}, {145, 146}, {154, 155}, {167, 168}, {173, 174}, {179, 180},
                {182, 183}, {188, 189}),
          TEXTS("\\", "\\", "\\", "\\", "+", "+", "+", "+", "-", "+", "+"));
    free_out(out);
    free(text);
}

/* Unicode identifiers (byte offsets, not characters) and CRLF line ends. */
static void test_unicode_crlf(void **state) {
    (void)state;
    size_t len;
    char *text = read_fixture("Unicode.java", &len);
    ap_spans out[AP_TASK_COUNT] = {0};
    find_all(text, len, AP_COMPAT_DEFAULT, out);
    CHECK(AP_TASK_IDENTIFIERS, 7, SPANS({6, 11}, {23, 28}, {44, 47}, {56, 61}, {67, 70}, {85, 88}, {91, 95}),
          TEXTS("Caf\xc3\xa9", "\xc3\xa9t\xc3\xa9", "\xce\xbbx", "\xc3\xa9t\xc3\xa9", "\xce\xbbx", "$if", "if\xc3\xa9"));
    CHECK(AP_TASK_FUNCTION_NAME, 1, SPANS({44, 47}), TEXTS("\xce\xbbx"));
    CHECK(AP_TASK_FUNCTION_CALL, 1, SPANS({67, 70}), TEXTS("\xce\xbbx"));
    /* ";\r\n" is not the task's ";\n". */
    CHECK(AP_TASK_EOL, 0, SPANS({0, 0}), TEXTS(""));
    CHECK(AP_TASK_CLOSING_BRACKET, 5, SPANS({48, 49}, {65, 66}, {71, 72}, {74, 75}, {98, 99}),
          TEXTS(")", ")", ")", "}", "}"));
    /* Java word boundaries: not in $if nor in ifé. */
    CHECK(AP_TASK_KEYWORDS, 2, SPANS({39, 43}, {52, 54}), TEXTS("void", "if"));
    free_out(out);
    find_all(text, len, AP_COMPAT_REFERENCE, out);
    CHECK(AP_TASK_KEYWORDS, 4, SPANS({39, 43}, {52, 54}, {86, 88}, {91, 93}), TEXTS("void", "if", "if", "if"));
    free_out(out);
    free(text);
}

/* The operator regexes on one line each, so every quirk is visible. */
static void test_operator_regexes(void **state) {
    (void)state;
    ap_spans out[AP_TASK_COUNT] = {0};
    /*                  0         1         2         3         4
     *                  0123456789012345678901234567890123456789012345678 */
    const char *text = "i++ + --j - k * 2 / 3 % 4; x *= 1; y /= 2; z %= 3;";
    find_all(text, strlen(text), AP_COMPAT_DEFAULT, out);
    CHECK(AP_TASK_MATHEMATICAL_OPERATORS, 10,
          SPANS({1, 3}, {4, 5}, {6, 8}, {10, 11}, {14, 15}, {18, 19}, {22, 23}, {29, 31}, {37, 39}, {45, 47}),
          TEXTS("++", "+", "--", "-", "*", "/", "%", "*=", "/=", "%="));
    CHECK(AP_TASK_ASSIGNMENT_OPERATORS, 3, SPANS({29, 31}, {37, 39}, {45, 47}), TEXTS("*=", "/=", "%="));
    free_out(out);

    /*     0         1         2         3
     *     0123456789012345678901234567890123456 */
    text = "a += 1; b -= 2; c &= d |= e ^= f;";
    find_all(text, strlen(text), AP_COMPAT_DEFAULT, out);
    /* += and -= are assignments, not + or - operators. */
    CHECK(AP_TASK_MATHEMATICAL_OPERATORS, 0, SPANS({0, 0}), TEXTS(""));
    CHECK(AP_TASK_ASSIGNMENT_OPERATORS, 5, SPANS({2, 4}, {10, 12}, {18, 20}, {23, 25}, {28, 30}),
          TEXTS("+=", "-=", "&=", "|=", "^="));
    free_out(out);

    /*     0         1         2
     *     012345678901234567890123456 */
    text = "if (!a && b != !c) x = !d;";
    find_all(text, strlen(text), AP_COMPAT_DEFAULT, out);
    CHECK(AP_TASK_BOOLEAN_OPERATORS, 5, SPANS({4, 5}, {7, 9}, {12, 14}, {15, 16}, {23, 24}),
          TEXTS("!", "&&", "!=", "!", "!"));
    CHECK(AP_TASK_ASSIGNMENT_OPERATORS, 0, SPANS({0, 0}), TEXTS(""));
    free_out(out);

    /* Keywords: the reference alternation finds them inside words. */
    /*     0         1         2         3
     *     0123456789012345678901234567890123456 */
    text = "if (modifier) document.doIt(); else throws";
    find_all(text, strlen(text), AP_COMPAT_DEFAULT, out);
    CHECK(AP_TASK_KEYWORDS, 3, SPANS({0, 2}, {31, 35}, {36, 42}), TEXTS("if", "else", "throws"));
    free_out(out);
    find_all(text, strlen(text), AP_COMPAT_REFERENCE, out);
    CHECK(AP_TASK_KEYWORDS, 6, SPANS({0, 2}, {7, 9}, {14, 16}, {23, 25}, {31, 35}, {36, 42}),
          TEXTS("if", "if", "do", "do", "else", "throws"));
    free_out(out);
}

static void test_task_names(void **state) {
    (void)state;
    int sel[AP_TASK_COUNT];
    TU_OK(ap_task_parse_list("all", sel, tu_err()));
    for (int t = 0; t < AP_TASK_COUNT; t++) assert_int_equal(sel[t], 1);
    TU_OK(ap_task_parse_list("eol,noise", sel, tu_err()));
    assert_int_equal(sel[AP_TASK_EOL], 1);
    assert_int_equal(sel[AP_TASK_NOISE], 1);
    assert_int_equal(sel[AP_TASK_IDENTIFIERS], 0);
    ap_error err = {0};
    assert_int_equal(ap_task_parse_list("eol,bogus", sel, &err), AP_ERR_ARG);
    assert_non_null(strstr(err.msg, "'bogus'"));
    assert_non_null(strstr(err.msg, "mathematical_operators")); /* lists the valid names */
    assert_int_equal(ap_task_parse_list("eol,", sel, &err), AP_ERR_ARG);
    assert_string_equal(ap_task_name(AP_TASK_FUNCTION_CALL), "function_call");
    assert_null(ap_task_regex(AP_TASK_IDENTIFIERS, AP_COMPAT_DEFAULT));
}

static void test_globs(void **state) {
    (void)state;
    assert_true(ap_glob_match("java.xml/**", "java.xml/javax/xml/X.java"));
    assert_false(ap_glob_match("java.xml/**", "java.base/java/lang/String.java"));
    assert_true(ap_glob_match("**/*.java", "A.java"));
    assert_true(ap_glob_match("**/*.java", "a/b/A.java"));
    assert_false(ap_glob_match("*.java", "a/A.java")); /* * stays in one segment */
    assert_true(ap_glob_match("a/*/C.java", "a/b/C.java"));
    assert_false(ap_glob_match("a/*/C.java", "a/b/c/C.java"));
    assert_true(ap_glob_match("a/**/C.java", "a/C.java"));
    assert_true(ap_glob_match("a/**/C.java", "a/b/c/C.java"));
    assert_true(ap_glob_match("?.java", "A.java"));
    assert_false(ap_glob_match("?.java", "AB.java"));
    assert_true(ap_glob_match("[A-C]x.java", "Bx.java"));
    assert_false(ap_glob_match("[!A-C]x.java", "Bx.java"));
    assert_true(ap_glob_match("java.*/**/Map*.java", "java.base/java/util/HashMap.java") == 0);
    assert_true(ap_glob_match("java.*/**/*Map.java", "java.base/java/util/HashMap.java"));
}

/* ---- corpus readers ---- */

typedef struct entry {
    const char *name, *data;
} entry;

/* One of each: good files (two of them below a/), a non-Java file, invalid
 * UTF-8, an empty and a whitespace-only file, and one over 64 bytes. */
static const entry k_entries[] = {
    {"a/One.java", "class One {}\n"},
    {"a/b/Two.java", "class Two { int x; }\n"},
    {"notes.txt", "not java\n"},
    {"Bad.java", "class B\xff {}\n"},
    {"Empty.java", ""},
    {"Blank.java", " \n\t\r\n"},
    {"Big.java", "class Big { /* 0123456789012345678901234567890123456789012345678901234567890123 */ }\n"},
    {"z/Three.java", "class Three {}\n"},
};
#define NENTRIES (sizeof k_entries / sizeof k_entries[0])

static void write_archive(const char *path, int zip) {
    struct archive *a = archive_write_new();
    if (zip) archive_write_set_format_zip(a);
    else {
        archive_write_set_format_pax_restricted(a);
        archive_write_add_filter_gzip(a);
    }
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < NENTRIES; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, k_entries[i].name);
        size_t len = strlen(k_entries[i].data);
        archive_entry_set_size(e, (la_int64_t)len);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (len) assert_int_equal(archive_write_data(a, k_entries[i].data, len), (la_ssize_t)len);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static void write_tree(const char *root) {
    for (size_t i = 0; i < NENTRIES; i++) {
        char full[512];
        snprintf(full, sizeof full, "%s/%s", root, k_entries[i].name);
        assert_int_equal(tu_run(NULL, "mkdir -p \"$(dirname '%s')\"", full), 0);
        tu_write_file(full, k_entries[i].data, strlen(k_entries[i].data));
    }
}

/* Reads a corpus to the end: the sources in order, joined by spaces. */
static char *read_all(const char *path, const ap_corpus_options *opt, ap_corpus_stats *stats) {
    ap_corpus *c;
    TU_OK(ap_corpus_open(path, opt, &c, tu_err()));
    ap_buf names = {0};
    ap_buf_append(&names, "", 1, NULL);
    names.len = 0;
    for (int64_t k = 0;; k++) {
        ap_corpus_file f;
        int has;
        TU_OK(ap_corpus_next(c, &f, &has, tu_err()));
        if (!has) break;
        assert_int_equal(f.ordinal, k);
        assert_int_equal(strlen(f.data), f.len); /* NUL-terminated */
        ap_buf_printf(&names, NULL, "%s%s", k ? " " : "", f.source);
    }
    int has;
    ap_corpus_file f;
    TU_OK(ap_corpus_next(c, &f, &has, tu_err())); /* still at the end, no error */
    assert_int_equal(has, 0);
    int64_t done, total;
    ap_corpus_progress(c, &done, &total);
    assert_int_equal(done, total);
    *stats = *ap_corpus_get_stats(c);
    ap_corpus_close(c);
    return names.data;
}

static void check_counts(const ap_corpus_stats *s, int64_t files, int64_t filtered) {
    assert_int_equal(s->files, files);
    assert_int_equal(s->filtered, filtered);
    assert_int_equal(s->not_java, 1);
    assert_int_equal(s->entries, (int64_t)NENTRIES);
    assert_int_equal(s->skipped[AP_SKIP_INVALID_UTF8], 1);
    assert_int_equal(s->skipped[AP_SKIP_EMPTY], 2);
    assert_int_equal(s->skipped[AP_SKIP_TOO_LARGE], 1);
    assert_int_equal(s->skipped[AP_SKIP_UNREADABLE], 0);
}

static void test_corpus_kinds(void **state) {
    (void)state;
    ap_corpus_options opt = {.max_file_bytes = 64};
    ap_corpus_stats s;
    char *dir = tu_tmp_path("tree"), *zip = tu_tmp_path("c.zip"), *tgz = tu_tmp_path("c.tar.gz");
    write_tree(dir);
    write_archive(zip, 1);
    write_archive(tgz, 0);

    char *names = read_all(dir, &opt, &s); /* sorted path order */
    assert_string_equal(names, "a/One.java a/b/Two.java z/Three.java");
    check_counts(&s, 3, 0);
    free(names);
    names = read_all(zip, &opt, &s); /* archive order */
    assert_string_equal(names, "a/One.java a/b/Two.java z/Three.java");
    check_counts(&s, 3, 0);
    free(names);
    names = read_all(tgz, &opt, &s);
    assert_string_equal(names, "a/One.java a/b/Two.java z/Three.java");
    check_counts(&s, 3, 0);
    free(names);

    /* Globs: includes then excludes; skipped files are filtered before they
     * are read. */
    opt.include = "a/**,z/*.java";
    opt.exclude = "a/b/**";
    names = read_all(zip, &opt, &s);
    assert_string_equal(names, "a/One.java z/Three.java");
    assert_int_equal(s.filtered, 5); /* Two, Bad, Empty, Blank, Big */
    assert_int_equal(s.skipped[AP_SKIP_INVALID_UTF8], 0);
    free(names);
    names = read_all(dir, &opt, &s);
    assert_string_equal(names, "a/One.java z/Three.java");
    free(names);

    /* `tar -C dir .` names its members ./a/One.java: read as a/One.java. */
    char *dot = tu_tmp_path("dot.tar.gz");
    assert_int_equal(tu_run(NULL, "tar -C '%s' -czf '%s' .", dir, dot), 0);
    opt.include = "a/One.java";
    opt.exclude = NULL;
    names = read_all(dot, &opt, &s);
    assert_string_equal(names, "a/One.java");
    free(names);
    free(dot);
    free(dir);
    free(zip);
    free(tgz);
}

static void test_corpus_jsonl(void **state) {
    (void)state;
    char *path = tu_tmp_path("rows.jsonl");
    const char *rows = "{\"content\": \"class A {}\\n\", \"path\": \"x/A.java\"}\n"
                       "this is not json\n"
                       "\n"
                       "{\"text\": \"no content field\"}\n"
                       "{\"content\": 42}\n"
                       "[1, 2]\n"
                       "{\"content\": \"   \"}\n"
                       "{\"content\": \"class B { String s = \\\"\\u00e9\\\"; }\"}";
    tu_write_file(path, rows, strlen(rows));
    ap_corpus_stats s;
    ap_corpus *c;
    TU_OK(ap_corpus_open(path, NULL, &c, tu_err()));
    ap_corpus_file f;
    int has;
    TU_OK(ap_corpus_next(c, &f, &has, tu_err()));
    assert_int_equal(has, 1);
    assert_string_equal(f.source, "line:1");
    assert_string_equal(f.data, "class A {}\n");
    TU_OK(ap_corpus_next(c, &f, &has, tu_err()));
    assert_int_equal(has, 1);
    assert_string_equal(f.source, "line:8"); /* line numbers count the blank line */
    assert_string_equal(f.data, "class B { String s = \"\xc3\xa9\"; }");
    TU_OK(ap_corpus_next(c, &f, &has, tu_err()));
    assert_int_equal(has, 0);
    s = *ap_corpus_get_stats(c);
    ap_corpus_close(c);
    assert_int_equal(s.entries, 7);
    assert_int_equal(s.files, 2);
    assert_int_equal(s.skipped[AP_SKIP_UNREADABLE], 4); /* not JSON, no content, content not a string, not an object */
    assert_int_equal(s.skipped[AP_SKIP_EMPTY], 1);

    /* Rows are selected by their path field, or by line:N without one. */
    ap_corpus_options opt = {.include = "x/**"};
    char *names = read_all(path, &opt, &s);
    assert_string_equal(names, "line:1");
    free(names);
    opt.include = "line:8";
    names = read_all(path, &opt, &s);
    assert_string_equal(names, "line:8");
    free(names);

    /* A gzip-compressed copy reads the same; an empty file has no rows. */
    char *gz = tu_tmp_path("rows.jsonl.gz");
    assert_int_equal(tu_run(NULL, "gzip -c '%s' > '%s'", path, gz), 0);
    names = read_all(gz, NULL, &s);
    assert_string_equal(names, "line:1 line:8");
    free(names);
    char *empty = tu_tmp_path("empty.jsonl");
    tu_write_file(empty, "", 0);
    names = read_all(empty, NULL, &s);
    assert_string_equal(names, "");
    free(names);
    free(gz);
    free(empty);
    free(path);
}

static void test_corpus_errors(void **state) {
    (void)state;
    ap_corpus *c;
    ap_error err = {0};
    assert_int_equal(ap_corpus_open("/nonexistent/corpus.zip", NULL, &c, &err), AP_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/corpus.zip"));

    char *bogus = tu_tmp_path("bogus.zip");
    tu_write_file(bogus, "this is not an archive at all\n", 30);
    assert_int_equal(ap_corpus_open(bogus, NULL, &c, &err), AP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, bogus));
    assert_non_null(strstr(err.msg, "not a readable archive"));

    /* A tar.gz cut short: the stream breaks while reading; an error, not a crash. */
    char *tgz = tu_tmp_path("whole.tar.gz"), *cut = tu_tmp_path("cut.tar.gz");
    write_archive(tgz, 0);
    char *data;
    size_t len;
    TU_OK(ap_read_file(tgz, &data, &len, tu_err()));
    tu_write_file(cut, data, len / 2);
    free(data);
    ap_status st = ap_corpus_open(cut, NULL, &c, &err);
    if (st == AP_OK) {
        ap_corpus_file f;
        int has = 1;
        while (has && (st = ap_corpus_next(c, &f, &has, &err)) == AP_OK) {
        }
        ap_corpus_close(c);
    }
    assert_int_not_equal(st, AP_OK);
    assert_non_null(strstr(err.msg, cut));

    ap_corpus_options opt = {.include = "a,,b"};
    assert_int_equal(ap_corpus_open(tgz, &opt, &c, &err), AP_ERR_ARG);
    free(bogus);
    free(tgz);
    free(cut);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generics),     cmocka_unit_test(test_literals),
        cmocka_unit_test(test_unicode_crlf), cmocka_unit_test(test_operator_regexes),
        cmocka_unit_test(test_task_names),   cmocka_unit_test(test_globs),
        cmocka_unit_test(test_corpus_kinds), cmocka_unit_test(test_corpus_jsonl),
        cmocka_unit_test(test_corpus_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
