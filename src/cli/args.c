/* Declarative flag parsing and help text for the verbs. */
#include "cli.h"

#include <string.h>

static int find_flag(const cli_spec *spec, const char *name) {
    for (int i = 0; spec->flags[i].name; i++)
        if (strcmp(spec->flags[i].name, name) == 0) return i;
    return -1;
}

void cli_print_help(const cli_spec *spec, FILE *out) {
    fprintf(out, "usage: %s\n\n%s\n", spec->usage, spec->description);
    if (spec->flags[0].name) fprintf(out, "\nflags:\n");
    for (int i = 0; spec->flags[i].name; i++) {
        const cli_flag *f = &spec->flags[i];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", f->name, f->value_name ? " " : "", f->value_name ? f->value_name : "");
        fprintf(out, "  %-26s %s%s\n", left, f->help, f->required ? " (required)" : "");
    }
    fprintf(out, "  %-26s %s\n", "--help", "show this help and exit");
}

int cli_parse(const cli_spec *spec, int argc, char **argv, cli_args *args, ap_error *err) {
    memset(args, 0, sizeof *args);
    args->spec = spec;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_print_help(spec, stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (args->npositional >= (int)(sizeof args->positional / sizeof *args->positional)) {
                ap_fail(err, AP_ERR_ARG, "too many arguments (at '%s'); see --help", a);
                return -1;
            }
            args->positional[args->npositional++] = a;
            continue;
        }
        /* Accept --flag=value as well as --flag value. */
        char name[64];
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, a, n);
        name[n] = '\0';
        int k = find_flag(spec, name);
        if (k < 0) {
            ap_fail(err, AP_ERR_ARG, "unknown flag '%s'; see --help", name);
            return -1;
        }
        if (!spec->flags[k].value_name) {
            if (eq) {
                ap_fail(err, AP_ERR_ARG, "flag %s takes no value", name);
                return -1;
            }
            args->values[k] = "";
        } else if (eq) {
            args->values[k] = eq + 1;
        } else {
            if (i + 1 >= argc) {
                ap_fail(err, AP_ERR_ARG, "flag %s needs a value (%s)", name, spec->flags[k].value_name);
                return -1;
            }
            args->values[k] = argv[++i];
        }
    }
    for (int i = 0; spec->flags[i].name; i++) {
        if (spec->flags[i].required && !args->values[i]) {
            ap_fail(err, AP_ERR_ARG, "missing required flag %s %s; see --help", spec->flags[i].name,
                    spec->flags[i].value_name ? spec->flags[i].value_name : "");
            return -1;
        }
    }
    return 0;
}

const char *cli_get(const cli_args *args, const char *name) {
    int k = find_flag(args->spec, name);
    return k < 0 ? NULL : args->values[k];
}

int cli_has(const cli_args *args, const char *name) { return cli_get(args, name) != NULL; }

int cli_report(const ap_error *err) {
    fprintf(stderr, "apmae: error: %s\n", err->msg[0] ? err->msg : ap_status_name(err->code));
    return err->code == AP_ERR_ARG ? 2 : 1;
}
