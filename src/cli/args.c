/* The declarative flag parser of the verbs (cli.h): checking a verb's
 * table, parsing argv against it, the generated help, the typed getters. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HELP_WIDTH 100 /* columns of the help text */
#define HELP_LEFT 28   /* where a flag's description starts */

/* ---- values ---- */

/* "20M", "1.5G", "500k", "4096" -> an integer count. */
static ap_status parse_count(const char *s, const char *what, int64_t *out, ap_error *err) {
    char *end;
    double v = strtod(s, &end), mult = 1;
    if (*end == 'k' || *end == 'K') mult = 1e3, end++;
    else if (*end == 'M' || *end == 'm') mult = 1e6, end++;
    else if (*end == 'G' || *end == 'g') mult = 1e9, end++;
    if (end == s || *end || !(v >= 0) || v * mult > 9e18)
        return ap_fail(err, AP_ERR_ARG, "%s: '%s' is not a count (e.g. 4096, 500k, 20M)", what, s);
    *out = (int64_t)llround(v * mult);
    return AP_OK;
}

static ap_status parse_real(const char *s, const char *what, double *out, ap_error *err) {
    ap_status st = ap_parse_f64(s, what, out, err);
    if (!st && !isfinite(*out)) return ap_fail(err, AP_ERR_ARG, "%s: expected a finite number, got '%s'", what, s);
    return st;
}

/* One number of the flag's type, as a double (integers are exact up to 2^53,
 * far beyond any range a verb declares) and, for integer types, in *i. */
static ap_status parse_number(const cli_flag *f, const char *s, double *d, int64_t *i, ap_error *err) {
    if (f->type == CLI_REAL) return parse_real(s, f->name, d, err);
    ap_status st = f->type == CLI_COUNT ? parse_count(s, f->name, i, err) : ap_parse_i64(s, f->name, i, err);
    if (st == AP_OK) *d = (double)*i;
    return st;
}

static int is_numeric(cli_type t) { return t == CLI_INT || t == CLI_COUNT || t == CLI_REAL || t == CLI_INT_LIST; }

/* The flag's range: "lo..hi" (integers or reals, inclusive; either end may
 * be left out) or, for reals, an interval "(lo, hi)", "[lo, hi)", ... whose
 * ends may be -inf or inf. */
typedef struct range {
    char lo_text[64], hi_text[64]; /* "" when that end is open */
    double lo, hi;
    int interval, lo_excl, hi_excl;
} range;

static ap_status range_end(const cli_flag *f, const char *text, double *v, ap_error *err) {
    int64_t i;
    if (f->type == CLI_REAL && (strcmp(text, "inf") == 0 || strcmp(text, "-inf") == 0)) {
        *v = text[0] == '-' ? -INFINITY : INFINITY;
        return AP_OK;
    }
    return parse_number(f, text, v, &i, err);
}

/* [from, to) without surrounding spaces into out; 0 if it does not fit. */
static int copy_trimmed(char *out, size_t size, const char *from, const char *to) {
    while (from < to && *from == ' ') from++;
    while (to > from && to[-1] == ' ') to--;
    if ((size_t)(to - from) >= size) return 0;
    memcpy(out, from, (size_t)(to - from));
    out[to - from] = '\0';
    return 1;
}

static ap_status parse_range(const cli_flag *f, range *r, ap_error *err) {
    memset(r, 0, sizeof *r);
    r->lo = -INFINITY, r->hi = INFINITY;
    if (!f->range) return AP_OK;
    const char *body = f->range, *body_end = body + strlen(body), *sep;
    size_t seplen = 2;
    if (f->type == CLI_REAL && (*body == '(' || *body == '[')) {
        r->interval = 1;
        r->lo_excl = *body == '(';
        r->hi_excl = body_end[-1] == ')';
        if (body_end[-1] != ')' && body_end[-1] != ']') body_end = body; /* malformed: fails below */
        body++, body_end--;
        sep = body < body_end ? memchr(body, ',', (size_t)(body_end - body)) : NULL;
        seplen = 1;
    } else {
        sep = strstr(body, "..");
    }
    if (!sep || !copy_trimmed(r->lo_text, sizeof r->lo_text, body, sep) ||
        !copy_trimmed(r->hi_text, sizeof r->hi_text, sep + seplen, body_end))
        return ap_fail(err, AP_ERR_INTERNAL, "%s: range '%s' is neither lo..hi nor an interval", f->name, f->range);
    if ((r->lo_text[0] && range_end(f, r->lo_text, &r->lo, err)) || (r->hi_text[0] && range_end(f, r->hi_text, &r->hi, err)))
        return ap_error_prefix(err, "range '%s'", f->range);
    return AP_OK;
}

static ap_status check_range(const cli_flag *f, const char *what, const char *text, double v, ap_error *err) {
    range r;
    ap_status st = parse_range(f, &r, err);
    if (st) return st;
    int lo_ok = r.lo_excl ? v > r.lo : v >= r.lo, hi_ok = r.hi_excl ? v < r.hi : v <= r.hi;
    if (lo_ok && hi_ok) return AP_OK;
    if (r.interval || (r.lo_text[0] && r.hi_text[0]))
        return ap_fail(err, AP_ERR_ARG, "%s: must be in %s, got %s", what, f->range, text);
    if (!lo_ok) return ap_fail(err, AP_ERR_ARG, "%s: must be at least %s, got %s", what, r.lo_text, text);
    return ap_fail(err, AP_ERR_ARG, "%s: must be at most %s, got %s", what, r.hi_text, text);
}

/* Index of the choice of length n starting at s, or -1. */
static int find_choice(const char *choices, const char *s, size_t n) {
    int k = 0;
    for (const char *c = choices; *c; k++) {
        size_t len = strcspn(c, "|");
        if (len == n && strncmp(c, s, n) == 0) return k;
        c += len + (c[len] == '|');
    }
    return -1;
}

static size_t choice_count(const char *choices) {
    size_t count = 1;
    for (const char *c = choices; *c; c++) count += *c == '|';
    return count;
}

/* "'a' or 'b'", "'a', 'b' or 'c'". */
static ap_status bad_choice(const cli_flag *f, const char *s, size_t n, ap_error *err) {
    char list[512] = "";
    size_t used = 0, count = choice_count(f->choices), k = 0;
    for (const char *c = f->choices; *c && used < sizeof list; k++) {
        size_t len = strcspn(c, "|");
        used += (size_t)snprintf(list + used, sizeof list - used, "%s'%.*s'", k == 0 ? "" : k + 1 == count ? " or " : ", ",
                                 (int)len, c);
        c += len + (c[len] == '|');
    }
    return ap_fail(err, AP_ERR_ARG, "%s: '%.*s' is not %s", f->name, (int)n, s, list);
}

static ap_status parse_choices(const cli_flag *f, const char *s, cli_value *v, ap_error *err) {
    v->i = 0;
    if (!*s) return ap_fail(err, AP_ERR_ARG, "%s: empty list", f->name);
    for (const char *p = s;;) {
        size_t n = strcspn(p, ",");
        int k = find_choice(f->choices, p, n);
        if (k < 0) return bad_choice(f, p, n, err);
        v->i |= (int64_t)1 << k;
        if (!p[n]) return AP_OK;
        p += n + 1;
    }
}

static ap_status parse_int_list(const cli_flag *f, const char *s, cli_value *v, ap_error *err) {
    free(v->list);
    v->list = NULL;
    ap_status st = ap_parse_i64_list(s, f->name, &v->list, &v->n, err);
    for (size_t k = 0; !st && k < v->n; k++) {
        char what[96], text[32];
        snprintf(what, sizeof what, "%s: item %zu", f->name, k + 1);
        snprintf(text, sizeof text, "%lld", (long long)v->list[k]);
        st = check_range(f, what, text, (double)v->list[k], err);
    }
    return st;
}

/* The text s (given, or the default) as the flag's value. */
static ap_status parse_value(const cli_flag *f, const char *s, cli_value *v, ap_error *err) {
    v->text = s;
    switch (f->type) {
    case CLI_SWITCH:
    case CLI_STRING:
    case CLI_PATH: return AP_OK;
    case CLI_CHOICE: {
        int k = find_choice(f->choices, s, strlen(s));
        v->i = k;
        return k < 0 ? bad_choice(f, s, strlen(s), err) : AP_OK;
    }
    case CLI_CHOICES: return parse_choices(f, s, v, err);
    case CLI_INT_LIST: return parse_int_list(f, s, v, err);
    case CLI_INT:
    case CLI_COUNT:
    case CLI_REAL: {
        ap_status st = parse_number(f, s, &v->r, &v->i, err);
        return st ? st : check_range(f, f->name, s, v->r, err);
    }
    }
    return ap_fail(err, AP_ERR_INTERNAL, "%s: unknown flag type %d", f->name, (int)f->type);
}

/* ---- the table ---- */

/* One flag of a table: a mistake there is the verb's bug. */
static ap_status check_flag(const cli_spec *spec, const cli_flag *f, ap_error *err) {
    if (strncmp(f->name, "--", 2) != 0 || strchr(f->name, '='))
        return ap_fail(err, AP_ERR_INTERNAL, "flag name '%s' must start with -- and hold no '='", f->name);
    for (const cli_flag *g = spec->flags; g < f; g++)
        if (strcmp(g->name, f->name) == 0) return ap_fail(err, AP_ERR_INTERNAL, "%s is declared twice", f->name);
    if ((f->type == CLI_CHOICE || f->type == CLI_CHOICES) != (f->choices != NULL && f->choices[0] != '\0'))
        return ap_fail(err, AP_ERR_INTERNAL, "%s: choices go with CLI_CHOICE and CLI_CHOICES, and only there", f->name);
    if (f->type == CLI_CHOICES && choice_count(f->choices) > 32)
        return ap_fail(err, AP_ERR_INTERNAL, "%s: more than 32 choices do not fit the mask", f->name);
    if (f->range && !is_numeric(f->type))
        return ap_fail(err, AP_ERR_INTERNAL, "%s: a range goes with numeric flags only", f->name);
    if (f->type == CLI_SWITCH && (f->def || f->required || f->value_name))
        return ap_fail(err, AP_ERR_INTERNAL, "%s: a switch has no value, default or requirement", f->name);
    if (f->def && f->required) return ap_fail(err, AP_ERR_INTERNAL, "%s: a required flag has no default", f->name);
    range r;
    ap_status st = parse_range(f, &r, err);
    if (st || !f->def) return st;
    cli_value v = {0};
    if ((st = parse_value(f, f->def, &v, err))) ap_error_prefix(err, "default '%s'", f->def);
    free(v.list);
    return st;
}

/* Caught by any run or --help of the verb, so by its tests. */
static ap_status check_spec(const cli_spec *spec, ap_error *err) {
    int n = 0;
    for (const cli_flag *f = spec->flags; f->name; f++, n++) {
        ap_status st = n >= CLI_MAX_FLAGS ? ap_fail(err, AP_ERR_INTERNAL, "more than %d flags", CLI_MAX_FLAGS)
                                          : check_flag(spec, f, err);
        if (st) {
            ap_error_prefix(err, "apmae %s: its flag table", spec->name);
            err->code = AP_ERR_INTERNAL;
            return AP_ERR_INTERNAL;
        }
    }
    return AP_OK;
}

static int find_flag(const cli_spec *spec, const char *name, size_t n) {
    for (int i = 0; spec->flags[i].name; i++)
        if (strlen(spec->flags[i].name) == n && strncmp(spec->flags[i].name, name, n) == 0) return i;
    return -1;
}

static const char *value_name(const cli_flag *f) {
    if (f->value_name) return f->value_name;
    switch (f->type) {
    case CLI_INT:
    case CLI_COUNT: return "N";
    case CLI_REAL: return "X";
    case CLI_PATH: return "PATH";
    case CLI_CHOICE: return f->choices;
    case CLI_CHOICES: return "A,B,...";
    case CLI_INT_LIST: return "I,J,...";
    default: return "STR";
    }
}

/* ---- parsing ---- */

static ap_status check_positional(const cli_args *a, ap_error *err) {
    const cli_spec *s = a->spec;
    if (!s->args && a->npositional)
        return ap_fail(err, AP_ERR_ARG, "unexpected argument '%s'; see --help", a->positional[0]);
    if (s->nargs > 0 && a->npositional != s->nargs) {
        if (s->nargs == 1) return ap_fail(err, AP_ERR_ARG, "%s needs exactly one %s; see --help", s->name, s->args);
        return ap_fail(err, AP_ERR_ARG, "%s needs %d arguments %s; see --help", s->name, s->nargs, s->args);
    }
    if (s->nargs < 0 && a->npositional < 1)
        return ap_fail(err, AP_ERR_ARG, "%s needs %s (%s); see --help", s->name, s->args_help ? s->args_help : "arguments",
                       s->args);
    return AP_OK;
}

/* --help (or -h) where a flag can stand, i.e. not the value of the flag
 * before it: it wins over any mistake in the other arguments. */
static int wants_help(const cli_spec *spec, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
        int k = strchr(argv[i], '=') ? -1 : find_flag(spec, argv[i], strlen(argv[i]));
        if (k >= 0 && spec->flags[k].type != CLI_SWITCH) i++; /* its value */
    }
    return 0;
}

static ap_status parse_args(const cli_spec *spec, int argc, char **argv, cli_args *a, ap_error *err) {
    if (!(a->positional = ap_calloc((size_t)argc + 1, sizeof *a->positional, err))) return AP_ERR_NOMEM;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) {
            a->positional[a->npositional++] = arg;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
        int k = find_flag(spec, arg, n);
        if (k < 0) return ap_fail(err, AP_ERR_ARG, "unknown flag '%.*s'; see --help", (int)n, arg);
        const cli_flag *f = &spec->flags[k];
        const char *text = "";
        if (f->type == CLI_SWITCH) {
            if (eq) return ap_fail(err, AP_ERR_ARG, "flag %s takes no value", f->name);
        } else if (eq) {
            text = eq + 1;
        } else if (i + 1 < argc) {
            text = argv[++i];
        } else {
            return ap_fail(err, AP_ERR_ARG, "flag %s needs a value (%s)", f->name, value_name(f));
        }
        ap_status st = parse_value(f, text, &a->values[k], err);
        if (st) return st;
        a->values[k].given = 1;
    }
    for (int k = 0; spec->flags[k].name; k++) {
        const cli_flag *f = &spec->flags[k];
        if (f->required && !a->values[k].given)
            return ap_fail(err, AP_ERR_ARG, "missing required flag %s %s; see --help", f->name, value_name(f));
        if (!a->values[k].given && f->def) {
            ap_status st = parse_value(f, f->def, &a->values[k], err); /* checked by check_spec */
            if (st) return st;
        }
    }
    return check_positional(a, err);
}

int cli_parse(const cli_spec *spec, int argc, char **argv, cli_args *a, ap_error *err) {
    memset(a, 0, sizeof *a);
    a->spec = spec;
    if (check_spec(spec, err)) return -1;
    if (wants_help(spec, argc, argv)) return 1;
    return parse_args(spec, argc, argv, a, err) ? -1 : 0;
}

void cli_free(cli_args *a) {
    for (int k = 0; k < CLI_MAX_FLAGS; k++) free(a->values[k].list);
    free(a->positional);
    memset(a, 0, sizeof *a);
}

/* ---- help ---- */

/* left, then text from column HELP_LEFT, wrapped at HELP_WIDTH (a word
 * longer than a line overflows). */
static void print_item(FILE *out, const char *left, const char *text) {
    int col = fprintf(out, "  %s", left);
    if (col >= HELP_LEFT) fputc('\n', out), col = 0;
    for (const char *p = text; *p;) {
        while (*p == ' ') p++;
        size_t w = strcspn(p, " ");
        if (!w) break;
        if (col > HELP_LEFT && col + 1 + (int)w > HELP_WIDTH) fputc('\n', out), col = 0;
        if (col < HELP_LEFT) col += fprintf(out, "%*s", HELP_LEFT - col, "");
        else col += fprintf(out, " ");
        col += fprintf(out, "%.*s", (int)w, p);
        p += w;
    }
    fputc('\n', out);
}

/* The flag's help, then what the table says about it: "(required; range
 * 1..4096; default: 60)". */
static void flag_text(const cli_flag *f, char *buf, size_t size) {
    char notes[4][192];
    int k = 0;
    range r;
    if (f->required) snprintf(notes[k++], sizeof *notes, "required");
    if ((f->type == CLI_CHOICE && f->value_name) || f->type == CLI_CHOICES)
        snprintf(notes[k++], sizeof *notes, "of: %s", f->choices);
    if (f->range && parse_range(f, &r, NULL) == AP_OK) {
        if (!r.interval && !r.hi_text[0]) snprintf(notes[k++], sizeof *notes, "at least %s", r.lo_text);
        else if (!r.interval && !r.lo_text[0]) snprintf(notes[k++], sizeof *notes, "at most %s", r.hi_text);
        else snprintf(notes[k++], sizeof *notes, "range %s", f->range);
    }
    if (f->def || f->def_note) snprintf(notes[k++], sizeof *notes, "default: %s", f->def ? f->def : f->def_note);
    size_t n = (size_t)snprintf(buf, size, "%s", f->help ? f->help : "");
    for (int i = 0; i < k && n < size; i++) n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "; " : " (", notes[i]);
    if (k && n < size) snprintf(buf + n, size - n, ")");
}

static void print_usage_line(const cli_spec *spec, FILE *out) {
    if (spec->usage) {
        fprintf(out, "usage: %s\n", spec->usage);
        return;
    }
    int optional = 0;
    fprintf(out, "usage: apmae %s", spec->name);
    for (const cli_flag *f = spec->flags; f->name; f++) {
        if (f->required) fprintf(out, " %s %s", f->name, value_name(f));
        else optional = 1;
    }
    if (spec->args) fprintf(out, " %s", spec->args);
    fprintf(out, "%s\n", optional ? " [flags]" : "");
}

void cli_print_help(const cli_spec *spec, FILE *out) {
    print_usage_line(spec, out);
    if (spec->description) fprintf(out, "\n%s\n", spec->description);
    if (spec->args) {
        fprintf(out, "\narguments:\n");
        print_item(out, spec->args, spec->args_help ? spec->args_help : "");
    }
    fprintf(out, "\nflags:\n");
    for (const cli_flag *f = spec->flags; f->name; f++) {
        char left[96], text[1024];
        snprintf(left, sizeof left, "%s%s%s", f->name, f->type == CLI_SWITCH ? "" : " ",
                 f->type == CLI_SWITCH ? "" : value_name(f));
        flag_text(f, text, sizeof text);
        print_item(out, left, text);
    }
    print_item(out, "--help", "show this help and exit");
    if (spec->docs) fprintf(out, "\ndocs: %s\n", spec->docs);
}

/* ---- running ---- */

int cli_report(const ap_error *err) {
    fprintf(stderr, "apmae: error: %s\n", err->msg[0] ? err->msg : ap_status_name(err->code));
    return err->code == AP_ERR_ARG ? 2 : 1;
}

int cli_run(const cli_spec *spec, int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(spec, argc, argv, &a, &err), code = 0;
    if (r > 0) cli_print_help(spec, stdout);
    else if (r < 0 || spec->run(&a, &err) != AP_OK) code = cli_report(&err);
    cli_free(&a);
    return code;
}

int cli_run_group(const char *group, const cli_spec *const *subs, size_t n, int argc, char **argv) {
    size_t glen = strlen(group);
    if (argc >= 1 && strcmp(argv[0], "--help") != 0 && strcmp(argv[0], "-h") != 0) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(subs[i]->name + glen + 1, argv[0]) == 0) return cli_run(subs[i], argc - 1, argv + 1);
        fprintf(stderr, "apmae: error: unknown '%s' subcommand '%s'; see 'apmae %s --help'\n", group, argv[0], group);
        return 2;
    }
    FILE *out = argc < 1 ? stderr : stdout;
    fprintf(out, "usage: apmae %s SUBCOMMAND [flags]   (apmae %s SUBCOMMAND --help for its flags)\n\n", group, group);
    for (size_t i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s", subs[i]->name + glen + 1);
        print_item(out, left, subs[i]->summary);
    }
    fprintf(out, "\ndocs:");
    for (size_t i = 0; i < n; i++) { /* each page once */
        size_t j = 0;
        while (j < i && strcmp(subs[j]->docs, subs[i]->docs) != 0) j++;
        if (j == i) fprintf(out, "%s %s", i ? "," : "", subs[i]->docs);
    }
    fprintf(out, "\n");
    return argc < 1 ? 2 : 0;
}

/* ---- getters ---- */

/* The value of a flag of one of the given types; a verb asking for another
 * flag or type is a bug, reported and stopped here. */
static const cli_value *value_of(const cli_args *a, const char *name, unsigned types) {
    int k = find_flag(a->spec, name, strlen(name));
    if (k < 0 || !(types & (1u << a->spec->flags[k].type))) {
        fprintf(stderr, "apmae: internal error: apmae %s reads %s, which its table does not declare with that type\n",
                a->spec->name, name);
        abort();
    }
    return &a->values[k];
}

#define T(type) (1u << (type))

int cli_has(const cli_args *a, const char *name) { return value_of(a, name, ~0u)->given; }
int cli_switch(const cli_args *a, const char *name) { return value_of(a, name, T(CLI_SWITCH))->given; }
const char *cli_str(const cli_args *a, const char *name) {
    return value_of(a, name, T(CLI_STRING) | T(CLI_PATH) | T(CLI_CHOICE))->text;
}
int64_t cli_int(const cli_args *a, const char *name) { return value_of(a, name, T(CLI_INT) | T(CLI_COUNT))->i; }
double cli_real(const cli_args *a, const char *name) { return value_of(a, name, T(CLI_REAL))->r; }
int cli_choice(const cli_args *a, const char *name) {
    const cli_value *v = value_of(a, name, T(CLI_CHOICE));
    return v->text ? (int)v->i : -1;
}
unsigned cli_choices(const cli_args *a, const char *name) { return (unsigned)value_of(a, name, T(CLI_CHOICES))->i; }
const int64_t *cli_ints(const cli_args *a, const char *name, size_t *n) {
    const cli_value *v = value_of(a, name, T(CLI_INT_LIST));
    *n = v->n;
    return v->list;
}

ap_status cli_int32s(const cli_args *a, const char *name, int32_t **out, size_t *n, ap_error *err) {
    const int64_t *v = cli_ints(a, name, n);
    *out = NULL;
    for (size_t k = 0; k < *n; k++)
        if (v[k] < INT32_MIN || v[k] > INT32_MAX)
            return ap_fail(err, AP_ERR_ARG, "%s: item %zu, %lld, is out of range (32-bit integers)", name, k + 1,
                           (long long)v[k]);
    if (!(*out = ap_malloc((*n ? *n : 1) * sizeof **out, err))) return AP_ERR_NOMEM;
    for (size_t k = 0; k < *n; k++) (*out)[k] = (int32_t)v[k];
    return AP_OK;
}
