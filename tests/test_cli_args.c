/* The CLI's declarative flag parser (src/cli/args.c): every type, defaults,
 * ranges and intervals, choices, required flags, unknown flags,
 * --flag=value, positional arguments, the generated help, malformed tables,
 * and the exit codes of cli_run and cli_run_group. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static ap_status run_nothing(const cli_args *a, ap_error *err) { return AP_OK; }

static const cli_flag k_flags[] = {
    {"--model", CLI_PATH, "DIR", "the model", .required = 1},
    {"--name", CLI_STRING, "STR", "a name", .def = "anon"},
    {"--json", CLI_SWITCH, NULL, "JSON output"},
    {"--batch", CLI_INT, "B", "patterns per step", .def = "60", .range = "1..4096"},
    {"--length", CLI_INT, "N", "tokens", .range = "16.."},
    {"--offset", CLI_INT, NULL, "an offset", .range = "..10"},
    {"--tokens", CLI_COUNT, "T", "training tokens", .def = "1M"},
    {"--lr", CLI_REAL, "X", "learning rate", .def = "2e-3", .range = "(0, 1)"},
    {"--ratio", CLI_REAL, "R", "a share", .range = "0..1"},
    {"--clip", CLI_REAL, "C", "a norm", .range = "(0, inf)"},
    {"--dtype", CLI_CHOICE, NULL, "storage type", .choices = "f32|f16|bf16", .def = "bf16"},
    {"--compat", CLI_CHOICE, "MODE", "encoding", .choices = "default|reference"},
    {"--by", CLI_CHOICES, NULL, "groups", .choices = "task|layer|head"},
    {"--ids", CLI_INT_LIST, NULL, "token ids", .range = "-1..100"},
    {"--every", CLI_INT, "K", "interval", .def_note = "20 per run"},
    {0},
};

static const cli_spec k_spec = {
    .name = "demo verb",
    .summary = "a verb for the tests",
    .description = "Does nothing.",
    .docs = "docs/demo.md",
    .flags = k_flags,
    .run = run_nothing,
};

/* Parse a NULL-terminated argv (without the verb); returns cli_parse's result. */
static int parse(const cli_spec *spec, cli_args *a, ap_error *err, const char *const *argv) {
    int argc = 0;
    while (argv[argc]) argc++;
    memset(err, 0, sizeof *err);
    return cli_parse(spec, argc, (char **)argv, a, err);
}

static void test_defaults(void **state) {
    (void)state;
    cli_args a;
    ap_error err;
    assert_int_equal(parse(&k_spec, &a, &err, (const char *[]){"--model", "m", NULL}), 0);
    assert_string_equal(cli_str(&a, "--model"), "m");
    assert_true(cli_has(&a, "--model"));
    assert_string_equal(cli_str(&a, "--name"), "anon"); /* defaults, not given */
    assert_false(cli_has(&a, "--name"));
    assert_int_equal(cli_int(&a, "--batch"), 60);
    assert_int_equal(cli_int(&a, "--tokens"), 1000000);
    assert_true(cli_real(&a, "--lr") == 2e-3);
    assert_int_equal(cli_choice(&a, "--dtype"), 2);
    assert_string_equal(cli_str(&a, "--dtype"), "bf16");
    /* absent without a default: zero, NULL, -1 */
    assert_false(cli_switch(&a, "--json"));
    assert_int_equal(cli_int(&a, "--length"), 0);
    assert_int_equal(cli_int(&a, "--every"), 0);
    assert_true(cli_real(&a, "--ratio") == 0.0);
    assert_int_equal(cli_choice(&a, "--compat"), -1);
    assert_null(cli_str(&a, "--compat"));
    assert_int_equal(cli_choices(&a, "--by"), 0);
    size_t n = 9;
    assert_null(cli_ints(&a, "--ids", &n));
    assert_int_equal(n, 0);
    cli_free(&a);
}

static void test_values(void **state) {
    (void)state;
    cli_args a;
    ap_error err;
    const char *argv[] = {"--model=dir", "--name", "x=y", "--json", "--batch", "4096", "--length=16", "--offset", "-5",
                          "--tokens", "1.5k", "--lr", "0.5", "--ratio=1", "--clip", "1e30", "--dtype", "f16",
                          "--compat=reference", "--by", "head,task", "--ids", "-1,0,100", "--every", "7", NULL};
    assert_int_equal(parse(&k_spec, &a, &err, argv), 0);
    assert_string_equal(cli_str(&a, "--model"), "dir");
    assert_string_equal(cli_str(&a, "--name"), "x=y"); /* only the flag's own '=' splits */
    assert_true(cli_switch(&a, "--json"));
    assert_int_equal(cli_int(&a, "--batch"), 4096); /* range ends are inclusive */
    assert_int_equal(cli_int(&a, "--length"), 16);
    assert_int_equal(cli_int(&a, "--offset"), -5);
    assert_int_equal(cli_int(&a, "--tokens"), 1500);
    assert_true(cli_real(&a, "--lr") == 0.5);
    assert_true(cli_real(&a, "--ratio") == 1.0);
    assert_true(cli_real(&a, "--clip") == 1e30);
    assert_int_equal(cli_choice(&a, "--dtype"), 1);
    assert_int_equal(cli_choice(&a, "--compat"), 1);
    assert_int_equal(cli_choices(&a, "--by"), 1u | 4u);
    size_t n;
    const int64_t *ids = cli_ints(&a, "--ids", &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], -1);
    assert_int_equal(ids[2], 100);
    int32_t *ids32;
    TU_OK(cli_int32s(&a, "--ids", &ids32, &n, tu_err()));
    assert_int_equal(ids32[0], -1);
    assert_int_equal(ids32[1], 0);
    free(ids32);
    assert_int_equal(cli_int(&a, "--every"), 7);
    cli_free(&a);
    /* a flag given twice: the last one counts */
    assert_int_equal(parse(&k_spec, &a, &err, (const char *[]){"--model", "a", "--batch", "2", "--batch", "3", NULL}), 0);
    assert_int_equal(cli_int(&a, "--batch"), 3);
    cli_free(&a);
}

/* Each argv is a usage error (AP_ERR_ARG) whose message holds the text. */
static void test_usage_errors(void **state) {
    (void)state;
    static const struct {
        const char *argv[6], *want;
    } cases[] = {
        {{"--model", "m", "--bogus", NULL}, "unknown flag '--bogus'; see --help"},
        {{"--model", "m", "--bogus=1", NULL}, "unknown flag '--bogus'"},
        {{"--batch", "3", NULL}, "missing required flag --model DIR"},
        {{"--model", NULL}, "flag --model needs a value (DIR)"},
        {{"--model", "m", "--json=1", NULL}, "flag --json takes no value"},
        {{"--model", "m", "--batch", "many", NULL}, "--batch: expected an integer, got 'many'"},
        {{"--model", "m", "--batch", "", NULL}, "--batch: expected an integer, got an empty value"},
        {{"--model", "m", "--batch", "0", NULL}, "--batch: must be in 1..4096, got 0"},
        {{"--model", "m", "--batch=4097", NULL}, "--batch: must be in 1..4096, got 4097"},
        {{"--model", "m", "--length", "15", NULL}, "--length: must be at least 16, got 15"},
        {{"--model", "m", "--offset", "11", NULL}, "--offset: must be at most 10, got 11"},
        {{"--model", "m", "--tokens", "20X", NULL}, "--tokens: '20X' is not a count"},
        {{"--model", "m", "--tokens", "-1", NULL}, "--tokens: '-1' is not a count"},
        {{"--model", "m", "--lr", "1", NULL}, "--lr: must be in (0, 1), got 1"}, /* open ends */
        {{"--model", "m", "--lr", "0", NULL}, "--lr: must be in (0, 1), got 0"},
        {{"--model", "m", "--lr", "nan", NULL}, "--lr: expected a finite number, got 'nan'"},
        {{"--model", "m", "--ratio", "1.5", NULL}, "--ratio: must be in 0..1, got 1.5"},
        {{"--model", "m", "--clip", "0", NULL}, "--clip: must be in (0, inf), got 0"},
        {{"--model", "m", "--clip", "x", NULL}, "--clip: expected a number, got 'x'"},
        {{"--model", "m", "--dtype", "f64", NULL}, "--dtype: 'f64' is not 'f32', 'f16' or 'bf16'"},
        {{"--model", "m", "--compat", "other", NULL}, "--compat: 'other' is not 'default' or 'reference'"},
        {{"--model", "m", "--by", "task,colour", NULL}, "--by: 'colour' is not 'task', 'layer' or 'head'"},
        {{"--model", "m", "--by", "", NULL}, "--by: empty list"},
        {{"--model", "m", "--ids", "1,,2", NULL}, "--ids: item 2 of '1,,2' is empty"},
        {{"--model", "m", "--ids", "1,101", NULL}, "--ids: item 2: must be in -1..100, got 101"},
        {{"--model", "m", "extra", NULL}, "unexpected argument 'extra'; see --help"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cli_args a;
        ap_error err;
        int r = parse(&k_spec, &a, &err, cases[i].argv);
        if (r != -1 || err.code != AP_ERR_ARG || !strstr(err.msg, cases[i].want))
            fail_msg("case %zu: result %d, code %d, '%s' (wanted '%s')", i, r, err.code, err.msg, cases[i].want);
        cli_free(&a);
    }
}

static const cli_spec k_one_store = {
    .name = "store x", .flags = (const cli_flag[]){{0}}, .args = "STORE.h5", .nargs = 1, .run = run_nothing};
static const cli_spec k_shards = {.name = "store y",
                                  .flags = (const cli_flag[]){{0}},
                                  .args = "SHARD.h5...",
                                  .args_help = "the shards to merge",
                                  .nargs = -1,
                                  .run = run_nothing};

static void test_positional(void **state) {
    (void)state;
    cli_args a;
    ap_error err;
    assert_int_equal(parse(&k_one_store, &a, &err, (const char *[]){"s.h5", NULL}), 0);
    assert_int_equal(a.npositional, 1);
    assert_string_equal(a.positional[0], "s.h5");
    cli_free(&a);
    assert_int_equal(parse(&k_one_store, &a, &err, (const char *[]){"a.h5", "b.h5", NULL}), -1);
    assert_string_equal(err.msg, "store x needs exactly one STORE.h5; see --help");
    cli_free(&a);
    assert_int_equal(parse(&k_shards, &a, &err, (const char *[]){"a", "b", "c", NULL}), 0);
    assert_int_equal(a.npositional, 3);
    assert_string_equal(a.positional[2], "c");
    cli_free(&a);
    assert_int_equal(parse(&k_shards, &a, &err, (const char *[]){NULL}), -1);
    assert_string_equal(err.msg, "store y needs the shards to merge (SHARD.h5...); see --help");
    cli_free(&a);
}

static char *help_text(const cli_spec *spec) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    cli_print_help(spec, f);
    fclose(f);
    return text;
}

static void test_help(void **state) {
    (void)state;
    cli_args a;
    ap_error err;
    /* --help wins over everything else, even a missing required flag */
    assert_int_equal(parse(&k_spec, &a, &err, (const char *[]){"--bogus", "--help", NULL}), 1);
    cli_free(&a);
    assert_int_equal(parse(&k_spec, &a, &err, (const char *[]){"-h", NULL}), 1);
    cli_free(&a);
    /* ... but not as the value of a flag */
    assert_int_equal(parse(&k_spec, &a, &err, (const char *[]){"--model", "m", "--name", "--help", NULL}), 0);
    assert_string_equal(cli_str(&a, "--name"), "--help");
    cli_free(&a);
    char *h = help_text(&k_spec);
    static const char *want[] = {
        "usage: apmae demo verb --model DIR [flags]\n",
        "\nDoes nothing.\n",
        "  --model DIR",
        "the model (required)\n",
        "  --json                    JSON output\n",
        "patterns per step (range 1..4096; default: 60)\n",
        "tokens (at least 16)\n",
        "an offset (at most 10)\n",
        "  --offset N ",
        "learning rate (range (0, 1); default: 2e-3)\n",
        "  --dtype f32|f16|bf16      storage type (default: bf16)\n",
        "  --compat MODE             encoding (of: default|reference)\n",
        "  --by A,B,...              groups (of: task|layer|head)\n",
        "  --ids I,J,...",
        "interval (default: 20 per run)\n",
        "  --help                    show this help and exit\n",
        "\ndocs: docs/demo.md\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(h, want[i])) fail_msg("the help lacks '%s':\n%s", want[i], h);
    free(h);
    h = help_text(&k_shards);
    assert_non_null(strstr(h, "usage: apmae store y SHARD.h5...\n"));
    assert_non_null(strstr(h, "arguments:\n  SHARD.h5...               the shards to merge\n"));
    free(h);
}

/* A table's own mistakes are internal errors, found before any argument. */
static void test_bad_tables(void **state) {
    (void)state;
    static const cli_flag bad[][2] = {
        {{"--n", CLI_INT, .range = "1-4"}, {0}},
        {{"--n", CLI_INT, .range = "a..4"}, {0}},
        {{"--x", CLI_REAL, .range = "(0, 1"}, {0}},
        {{"--n", CLI_INT, .def = "0", .range = "1..4"}, {0}},
        {{"--c", CLI_CHOICE, .def = "c", .choices = "a|b"}, {0}},
        {{"--c", CLI_CHOICE}, {0}},
        {{"--s", CLI_STRING, .choices = "a|b"}, {0}},
        {{"--s", CLI_STRING, .range = "1..2"}, {0}},
        {{"--w", CLI_SWITCH, .def = "1"}, {0}},
        {{"--r", CLI_PATH, .def = "x", .required = 1}, {0}},
        {{"-r", CLI_PATH}, {0}},
        {{"--a", CLI_PATH}, {"--a", CLI_INT}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cli_flag flags[3] = {bad[i][0], bad[i][1], {0}};
        cli_spec spec = {.name = "bad", .flags = flags, .run = run_nothing};
        cli_args a;
        ap_error err;
        int r = parse(&spec, &a, &err, (const char *[]){"--help", NULL});
        if (r != -1 || err.code != AP_ERR_INTERNAL || !strstr(err.msg, "apmae bad: its flag table"))
            fail_msg("table %zu: result %d, code %d, '%s'", i, r, err.code, err.msg);
        cli_free(&a);
    }
}

/* cli_run: the verb's function sees the values; usage errors exit 2, the
 * verb's own failures 1. */
static int64_t g_seen_batch;
static ap_status run_record(const cli_args *a, ap_error *err) {
    g_seen_batch = cli_int(a, "--batch");
    return cli_switch(a, "--json") ? ap_fail(err, AP_ERR_IO, "cannot write") : AP_OK;
}

static void test_run(void **state) {
    (void)state;
    cli_spec spec = k_spec;
    spec.name = "demo run";
    spec.run = run_record;
    char *ok[] = {"--model", "m", "--batch", "7", NULL}, *usage[] = {"--batch", "7", NULL};
    char *failing[] = {"--model", "m", "--json", NULL}, *help[] = {"--help", NULL};
    assert_int_equal(cli_run(&spec, 4, ok), 0);
    assert_int_equal(g_seen_batch, 7);
    g_seen_batch = -1;
    assert_int_equal(cli_run(&spec, 2, usage), 2);
    assert_int_equal(g_seen_batch, -1); /* not run */
    assert_int_equal(cli_run(&spec, 3, failing), 1);
    fflush(stdout); /* the help goes to stdout: keep it out of the test log */
    int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    assert_int_equal(cli_run(&spec, 1, help), 0);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved), close(null);
    const cli_spec *subs[] = {&spec};
    char *sub_ok[] = {"run", "--model", "m", "--batch", "9", NULL}, *sub_bad[] = {"walk", NULL};
    assert_int_equal(cli_run_group("demo", subs, 1, 5, sub_ok), 0);
    assert_int_equal(g_seen_batch, 9);
    assert_int_equal(cli_run_group("demo", subs, 1, 1, sub_bad), 2);
    assert_int_equal(cli_run_group("demo", subs, 1, 0, sub_bad), 2); /* no subcommand */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_values),     cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_positional),   cmocka_unit_test(test_help),       cmocka_unit_test(test_bad_tables),
        cmocka_unit_test(test_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
