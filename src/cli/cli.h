/* The apmae command line: a table of verbs over the library, and a small
 * declarative flag parser so every verb documents its flags in --help. */
#ifndef APMAE_CLI_H
#define APMAE_CLI_H

#include "apmae/base.h"

/* One flag of a verb. value_name NULL = a switch without value. */
typedef struct cli_flag {
    const char *name;       /* "--model" */
    const char *value_name; /* "DIR", or NULL for a switch */
    const char *help;
    int required;
} cli_flag;

typedef struct cli_spec {
    const char *usage;       /* "apmae lm forward --model DIR ..." */
    const char *description; /* one paragraph */
    const cli_flag *flags;   /* terminated by {NULL} */
} cli_spec;

/* Parsed values, indexed like spec->flags. A switch that is set holds "". */
typedef struct cli_args {
    const cli_spec *spec;
    const char *values[32];
    const char *positional[256]; /* e.g. the shards of `apmae store merge` */
    int npositional;
} cli_args;

/* Parse argv (after the verb). Returns 1 when --help was printed (exit 0),
 * 0 on success, -1 on error (message in err). */
int cli_parse(const cli_spec *spec, int argc, char **argv, cli_args *args, ap_error *err);
const char *cli_get(const cli_args *args, const char *name); /* NULL when absent */
int cli_has(const cli_args *args, const char *name);
void cli_print_help(const cli_spec *spec, FILE *out);
/* Print "apmae: error: <msg>" and return the exit code for err. */
int cli_report(const ap_error *err);

/* Verbs. Each returns the process exit code. */
int cmd_tokenize(int argc, char **argv);
int cmd_lm(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_mae(int argc, char **argv);
int cmd_mine(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
/* Subcommands of `apmae lm` in cmd_lm_train.c (argv after the subcommand). */
int cmd_lm_train(int argc, char **argv);
int cmd_lm_eval(int argc, char **argv);
int cmd_lm_train_bench(int argc, char **argv);
/* The machine's sgemm rate on a [T,D] x [D,F] product, GFLOP/s (cmd_lm.c). */
double measure_sgemm_gflops(int T, int D, int F, int iters);
int cmd_store(int argc, char **argv);
int cmd_study(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_classify(int argc, char **argv);

#endif
