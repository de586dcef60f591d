/* The apmae command line: verbs over the library, each declared as a table
 * of flags and a function (docs/architecture.md, "The command line").
 *
 * A verb is a cli_spec: its flags (name, type, default, range or choices,
 * required, help), its positional arguments, the docs page it belongs to
 * and the function that runs it. cli_run parses argv against the table --
 * types, ranges, choices, required flags, unknown flags, --flag=value --
 * and either prints the help generated from the table (--help), reports a
 * usage error (exit 2) or calls the function with the parsed values, which
 * it reads back with the typed getters (cli_int, cli_real, cli_str, ...).
 *
 *     static const cli_flag k_flags[] = {
 *         {"--store", CLI_PATH, "S", "pattern store (apmae extract)", .required = 1},
 *         {"--batch", CLI_INT, "B", "patterns per step", .def = "60", .range = "1..4096"},
 *         {"--compat", CLI_CHOICE, NULL, "encoding mode", .choices = "default|reference", .def = "default"},
 *         {0},
 *     };
 *     static ap_status run(const cli_args *a, ap_error *err) { ... cli_int(a, "--batch") ... }
 *     static const cli_spec k_spec = {.name = "mae train", .summary = "...", .description = "...",
 *                                     .docs = "docs/mae.md", .flags = k_flags, .run = run};
 *     int cmd_x(int argc, char **argv) { return cli_run(&k_spec, argc, argv); }
 *
 * Tables name only the fields a flag uses (the CLI is compiled with
 * -Wno-missing-field-initializers for that).
 *
 * Getters abort with an internal error when asked for a flag the spec does
 * not declare with that type: a bug in the verb, never a user's mistake.
 */
#ifndef APMAE_CLI_H
#define APMAE_CLI_H

#include "apmae/base.h"

typedef enum cli_type {
    CLI_SWITCH,   /* no value: given or not (cli_switch) */
    CLI_STRING,   /* any text (cli_str) */
    CLI_PATH,     /* a file or directory; not checked here, the library names what is wrong with it (cli_str) */
    CLI_INT,      /* an integer, within .range (cli_int) */
    CLI_COUNT,    /* an integer with an optional k/M/G suffix: 4096, 500k, 20M, 1.5G; within .range (cli_int) */
    CLI_REAL,     /* a finite number, within .range (cli_real) */
    CLI_CHOICE,   /* one of .choices (cli_choice: its index; cli_str: its text) */
    CLI_CHOICES,  /* a comma list of .choices, any subset (cli_choices: a bit mask, bit i = choice i) */
    CLI_INT_LIST, /* a comma list of integers, each within .range (cli_ints) */
} cli_type;

typedef struct cli_flag {
    const char *name;       /* "--batch" */
    cli_type type;
    const char *value_name; /* in help and usage: "B", "DIR"; NULL: from the type (choices for CLI_CHOICE) */
    const char *help;       /* one sentence; defaults, ranges and choices are added from the fields below */
    const char *def;        /* default, written as on the command line ("60", "bf16"); NULL: none */
    const char *def_note;   /* without def: what the verb does when the flag is absent ("20 per run") */
    /* Numeric types: "lo..hi", "lo.." or "..hi", inclusive; reals also an
     * interval such as "(0, 1]" or "[0, inf)". NULL: any value. */
    const char *range;
    const char *choices;    /* CLI_CHOICE, CLI_CHOICES: "default|reference" */
    int required;
} cli_flag;

typedef struct cli_args cli_args;

typedef struct cli_spec {
    const char *name;        /* the words after apmae: "mae train" */
    const char *summary;     /* one line, for the list of verbs or subcommands */
    const char *usage;       /* NULL: generated from the required flags and arguments; else the usage line(s) */
    const char *description; /* what the verb does and prints; may hold several lines */
    const char *docs;        /* the docs page of the verb: "docs/mae.md" */
    const cli_flag *flags;   /* terminated by {0} */
    const char *args;        /* positional arguments, e.g. "STORE.h5"; NULL: none accepted */
    const char *args_help;   /* what they are, e.g. "the shards to merge" */
    int nargs;               /* with args: exactly this many, or -1 for one or more */
    ap_status (*run)(const cli_args *a, ap_error *err);
} cli_spec;

enum { CLI_MAX_FLAGS = 40 };

/* One flag's parsed value (or its default). */
typedef struct cli_value {
    int given;           /* on the command line */
    const char *text;    /* as written (or the default's text); NULL: absent without default */
    int64_t i;           /* CLI_INT, CLI_COUNT; CLI_CHOICE: the index; CLI_CHOICES: the mask */
    double r;            /* CLI_REAL */
    int64_t *list;       /* CLI_INT_LIST (owned) */
    size_t n;
} cli_value;

struct cli_args {
    const cli_spec *spec;
    cli_value values[CLI_MAX_FLAGS]; /* indexed like spec->flags */
    const char **positional;         /* owned array; the strings point into argv */
    int npositional;
};

/* Parse argv (after the verb's words) against spec. Returns 0 on success, 1
 * when --help (or -h) was given (nothing else is checked), -1 on an error
 * (message in err naming the flag; AP_ERR_ARG for a usage error,
 * AP_ERR_INTERNAL for a malformed table). Release with cli_free either way. */
int cli_parse(const cli_spec *spec, int argc, char **argv, cli_args *a, ap_error *err);
void cli_free(cli_args *a);

/* The help text generated from the table: usage, description, arguments,
 * flags with their types, ranges, choices and defaults, and the docs page. */
void cli_print_help(const cli_spec *spec, FILE *out);

/* Parse, then print the help (exit 0), report a usage error (exit 2) or run
 * the verb (exit 0, or cli_report's code). */
int cli_run(const cli_spec *spec, int argc, char **argv);
/* A verb with subcommands (apmae lm forward|train|...): subs[i]->name is
 * "<group> <sub>". Without a subcommand, prints the list on stderr (exit 2);
 * with --help, on stdout (exit 0). */
int cli_run_group(const char *group, const cli_spec *const *subs, size_t n, int argc, char **argv);

/* Print "apmae: error: <msg>" and return the exit code for err (2 for a
 * usage error, AP_ERR_ARG; else 1). */
int cli_report(const ap_error *err);

/* Typed getters: the value given, else the flag's default, else 0 / NULL
 * (cli_choice: -1). */
int cli_has(const cli_args *a, const char *name); /* given on the command line */
int cli_switch(const cli_args *a, const char *name);
const char *cli_str(const cli_args *a, const char *name); /* CLI_STRING, CLI_PATH, CLI_CHOICE */
int64_t cli_int(const cli_args *a, const char *name);     /* CLI_INT, CLI_COUNT */
double cli_real(const cli_args *a, const char *name);
int cli_choice(const cli_args *a, const char *name);
unsigned cli_choices(const cli_args *a, const char *name);
const int64_t *cli_ints(const cli_args *a, const char *name, size_t *n);
/* A CLI_INT_LIST as 32-bit integers (token ids), malloc'ed; an error names
 * the flag when an item does not fit. */
ap_status cli_int32s(const cli_args *a, const char *name, int32_t **out, size_t *n, ap_error *err);

/* MPI (src/cli/mpi.c, docs/scale.md). apmae initialises MPI only when an
 * MPI launcher (Open MPI's mpirun, srun --mpi=pmix) started the process, so
 * the plain binary runs alone without an MPI runtime; the library sees only
 * an ap_parallel group. */
int cli_mpi_launched(void);
/* MPI_Init, and *par this process's rank of the job with MPI_Allreduce as
 * its sum. Unless threads_given, each rank takes the CPU set the launcher
 * bound it to or, unbound, its share of the node's threads (OMP_NUM_THREADS
 * or all cores, over the ranks mpirun put on the node); ranks other than 0
 * log only warnings and errors (one progress bar). */
void cli_mpi_begin(int threads_given, ap_parallel *par);
/* MPI_Finalize; an error st is prefixed with the rank. Returns st. */
ap_status cli_mpi_end(const ap_parallel *par, ap_status st, ap_error *err);

/* Verbs (registered in main.c). Each returns the process exit code. */
int cmd_tokenize(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_lm(int argc, char **argv);
int cmd_mae(int argc, char **argv);
int cmd_mine(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_store(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
int cmd_study(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_intervene(int argc, char **argv);
/* Subcommands of `apmae lm` defined in cmd_lm_train.c. */
extern const cli_spec cli_lm_train_spec, cli_lm_eval_spec, cli_lm_train_bench_spec;
/* The machine's sgemm rate on a [T,D] x [D,F] product, GFLOP/s (cmd_lm.c). */
double measure_sgemm_gflops(int T, int D, int F, int iters);

#endif
